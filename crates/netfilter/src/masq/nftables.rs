//! ipMasq's nftables layout, as the reference's: table `inet
//! cni_plugins_masquerade`, base chain `postrouting` (returns for
//! multicast, then goes to `masq_checks`), one rule per address in
//! `masq_checks` commented `<h16(net)>-<h16(ifname:id)>, net: ..., if:
//! ..., id: ...`.

use super::Owner;
use crate::error::FirewallError;
use crate::nft::{self, quote, NfFamily};
use crate::rule_names::{nft_attachment_comment, nft_attachment_prefix, nft_network_prefix};
use crate::Family;
use ipnet::IpNet;

const TABLE: &str = "cni_plugins_masquerade";
const CHAIN: &str = "masq_checks";

/// The nftables comment of an attachment's rules.
pub(super) fn comment(o: &Owner<'_>) -> String {
    nft_attachment_comment(o.network, o.ifname, o.container_id)
}

/// The nft script that sets up masquerading for `ips`.
pub(super) fn setup_script(ips: &[IpNet], o: &Owner<'_>) -> String {
    let t = format!("inet {TABLE}");
    let mut s = String::new();
    s.push_str(&format!(
        "add table {t} {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\"; }}\n"
    ));
    s.push_str(&format!(
        "add chain {t} {CHAIN} {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\"; }}\n"
    ));
    s.push_str(&format!(
        "add chain {t} postrouting {{ type nat hook postrouting priority srcnat; }}\n"
    ));
    s.push_str(&format!("flush chain {t} postrouting\n"));
    s.push_str(&format!(
        "add rule {t} postrouting ip daddr == 224.0.0.0/4 return\n"
    ));
    s.push_str(&format!(
        "add rule {t} postrouting ip6 daddr == ff00::/8 return\n"
    ));
    s.push_str(&format!("add rule {t} postrouting goto {CHAIN}\n"));
    let c = quote(&comment(o));
    for net in ips {
        let ip = Family::of(net.addr()).nft_keyword();
        s.push_str(&format!(
            "add rule {t} {CHAIN} {ip} saddr == {} {ip} daddr != {} masquerade comment {c}\n",
            net.addr(),
            net.trunc()
        ));
    }
    s
}

/// Sets up masquerading for `ips`: one transaction.
pub(super) fn setup(ips: &[IpNet], o: &Owner<'_>) -> Result<(), FirewallError> {
    nft::apply(&setup_script(ips, o))
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
        let s = setup_script(&["10.1.0.5/24".parse().unwrap()], &owner());
        assert!(s.contains("add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.1.0.5 ip daddr != 10.1.0.0/24 masquerade comment"));
    }
}
