//! ipMasq's nftables layout, as the reference's: table `inet
//! cni_plugins_masquerade`, base chain `postrouting` (returns for
//! multicast, then goes to `masq_checks`), one rule per address in
//! `masq_checks` commented `<h16(net)>-<h16(ifname:id)>, net: ..., if:
//! ..., id: ...`.

use super::Owner;
use crate::error::FirewallError;
use crate::nft::{
    self, Action, AddrField, BaseChain, Change, Hook, Match, NfFamily, TableChange, Verdict,
};
use crate::rule_names::{nft_attachment_comment, nft_attachment_prefix, nft_network_prefix};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

const TABLE: &str = "cni_plugins_masquerade";
const CHAIN: &str = "masq_checks";

/// The nftables comment of an attachment's rules.
pub(super) fn comment(o: &Owner<'_>) -> String {
    nft_attachment_comment(o.network, o.ifname, o.container_id)
}

/// The changes that set up masquerading for `ips`: the table and chains
/// (the base chain's rules rewritten), then one rule per address.
pub(super) fn setup_changes(ips: &[IpNet], o: &Owner<'_>) -> Vec<TableChange<'static>> {
    let rule = Change::append;
    let multicast_return = |net: IpNet| {
        let multicast = Match::Addr {
            field: AddrField::Daddr,
            net,
            equal: true,
        };
        rule(
            "postrouting",
            vec![multicast],
            Action::Verdict(Verdict::Return),
            None,
        )
    };
    let mut out = vec![
        Change::Table(Some(
            "Masquerading for plugins from github.com/containernetworking/plugins",
        )),
        Change::Chain(
            CHAIN.into(),
            None,
            Some("Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"),
        ),
        Change::Chain(
            "postrouting".into(),
            Some(BaseChain {
                kind: "nat",
                hook: Hook::Postrouting,
                priority: 100,
                policy_accept: false,
            }),
            None,
        ),
        Change::Flush("postrouting".into()),
        multicast_return(Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4).into()),
        multicast_return(Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8).into()),
        rule(
            "postrouting",
            vec![],
            Action::Verdict(Verdict::Goto(CHAIN.into())),
            None,
        ),
    ];
    let c = comment(o);
    for net in ips {
        out.push(rule(
            CHAIN,
            vec![
                Match::Addr {
                    field: AddrField::Saddr,
                    net: IpNet::from(net.addr()),
                    equal: true,
                },
                Match::Addr {
                    field: AddrField::Daddr,
                    net: net.trunc(),
                    equal: false,
                },
            ],
            Action::Masquerade,
            Some(c.clone()),
        ));
    }
    out.into_iter()
        .map(|c| (NfFamily::Inet, TABLE, c))
        .collect()
}

/// Sets up masquerading for `ips`: one transaction.
pub(super) fn setup(ips: &[IpNet], o: &Owner<'_>) -> Result<(), FirewallError> {
    nft::apply(&setup_changes(ips, o))
}

/// Deletes rules of the masquerading chain by handle (one transaction).
fn delete(handles: &[u64]) -> Result<(), FirewallError> {
    let what: Vec<nft::NftDeletion> = handles
        .iter()
        .map(|h| nft::NftDeletion::Rule {
            chain: CHAIN.to_string(),
            handle: *h,
        })
        .collect();
    nft::delete(NfFamily::Inet, TABLE, &what)
}

pub(super) fn teardown(o: &Owner<'_>) -> Result<(), FirewallError> {
    if !nft::table_may_exist(NfFamily::Inet, TABLE) {
        return Ok(());
    }
    let prefix = nft_attachment_prefix(o.network, o.ifname, o.container_id);
    nft::locked(|| {
        let rules = nft::list_rules(NfFamily::Inet, TABLE, CHAIN)?;
        let handles: Vec<u64> = rules
            .iter()
            .filter(|r| r.comment.starts_with(&prefix))
            .map(|r| r.handle)
            .collect();
        delete(&handles)
    })
}

/// Removes the masquerading of every attachment of `network` that is not
/// in `valid` (container ID, ifname).
pub(super) fn gc(network: &str, valid: &[(String, String)]) -> Result<(), FirewallError> {
    let keep: Vec<String> = valid
        .iter()
        .map(|(id, ifname)| {
            comment(&Owner {
                network,
                ifname,
                container_id: id,
            })
        })
        .collect();
    let prefix = nft_network_prefix(network);
    nft::locked(|| {
        let rules = nft::list_rules(NfFamily::Inet, TABLE, CHAIN)?;
        let stale: Vec<u64> = rules
            .iter()
            .filter(|r| r.comment.starts_with(&prefix) && !keep.contains(&r.comment))
            .map(|r| r.handle)
            .collect();
        delete(&stale)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masq::tests::owner;

    #[test]
    fn nft_comment_and_script() {
        let c = comment(&owner());
        assert!(c.starts_with(&format!("{}-", nft_network_prefix("mynet"))));
        assert!(c.ends_with(", net: mynet, if: eth0, id: c1"));
        let s = nft::script(&setup_changes(&["10.1.0.5/24".parse().unwrap()], &owner()));
        assert!(s.contains("add rule inet cni_plugins_masquerade masq_checks ip saddr 10.1.0.5 ip daddr != 10.1.0.0/24 masquerade comment"));
    }

    /// ipMasq's rules read back from the kernel as the rules `nft -f`
    /// makes of the same script, for v4 and v6 and prefixes on and off a
    /// byte boundary.
    #[test]
    fn netlink_rules_are_the_ones_nft_makes() {
        let ips: Vec<IpNet> = ["10.1.0.5/24", "10.2.3.4/20", "fd00::5/64", "fd00:1::5/57"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        nft::tests::assert_same_in_kernel(&setup_changes(&ips, &owner()));
    }

    /// A second attachment's setup leaves the first one's objects alone.
    #[test]
    fn a_second_setup_only_adds() {
        let first = setup_changes(&["10.1.0.5/24".parse().unwrap()], &owner());
        let second = setup_changes(&["10.1.0.6/24".parse().unwrap()], &owner());
        nft::tests::assert_same_in_kernel_after(&first, &second);
    }
}
