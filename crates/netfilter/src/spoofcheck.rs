//! bridge's `macspoofchk`: frames entering the bridge from a container's
//! port must carry the container's MAC. The reference's layout: table
//! `bridge nat`, base chain `PREROUTING` (filter, priority -300), per
//! attachment chains `cni-br-iface-<id>` and `cni-br-iface-<id>-mac`, every
//! rule commented `macspoofchk-<id>` where `<id>` is `<containerID>-<ifname>`.

use crate::error::FirewallError;
use crate::nft::{
    self, Action, BaseChain, Change, Hook, Match, NfFamily, NftDeletion, TableChange, Verdict,
};

const TABLE: &str = "nat";

fn chain(id: &str) -> String {
    format!("cni-br-iface-{id}")
}

fn comment(id: &str) -> String {
    format!("macspoofchk-{id}")
}

/// The changes that install the check for the port `host_iface`.
fn setup_changes(host_iface: &str, mac: [u8; 6], id: &str) -> Vec<TableChange<'static>> {
    let iface_chain = chain(id);
    let mac_chain = format!("{iface_chain}-mac");
    let rule = |chain: &str, matches, verdict| {
        Change::append(chain, matches, Action::Verdict(verdict), Some(comment(id)))
    };
    let from_port = Match::Ifname {
        output: false,
        name: host_iface.into(),
        equal: true,
    };
    let changes = vec![
        Change::Table(None),
        Change::Chain(
            "PREROUTING".into(),
            Some(BaseChain {
                kind: "filter",
                hook: Hook::Prerouting,
                priority: -300,
                policy_accept: true,
            }),
            None,
        ),
        Change::Chain(iface_chain.clone(), None, None),
        Change::Chain(mac_chain.clone(), None, None),
        Change::Flush(iface_chain.clone()),
        Change::Flush(mac_chain.clone()),
        rule(
            "PREROUTING",
            vec![from_port],
            Verdict::Jump(iface_chain.clone()),
        ),
        rule(&iface_chain, vec![], Verdict::Jump(mac_chain.clone())),
        rule(&mac_chain, vec![Match::EtherSaddr(mac)], Verdict::Return),
        rule(&mac_chain, vec![], Verdict::Drop),
    ];
    changes
        .into_iter()
        .map(|c| (NfFamily::Bridge, TABLE, c))
        .collect()
}

/// Installs the check (one transaction over netlink). The id names the
/// chains, which the reference's and older rcni's scripts wrote unquoted:
/// it may only hold what such a name may.
pub fn setup(host_iface: &str, mac: &str, id: &str) -> Result<(), FirewallError> {
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(FirewallError::Config(format!(
            "macspoofchk: {id:?} (container ID and interface name) may only hold letters, digits, '_', '-' and '.'"
        )));
    }
    let mac =
        rcni_net::parse_mac(mac).map_err(|e| FirewallError::Config(format!("macspoofchk: {e}")))?;
    nft::apply(&setup_changes(host_iface, mac, id))
}

/// Removes the check of attachment `id`: its jump from PREROUTING and its
/// two chains (whatever of them exists), in one transaction over netlink.
pub fn teardown(id: &str) -> Result<(), FirewallError> {
    let iface_chain = chain(id);
    // The chains come and go together: without the first, nothing to do.
    if !nft::kernel_supported() || !nft::chain_may_exist(NfFamily::Bridge, TABLE, &iface_chain) {
        return Ok(());
    }
    let mac_chain = format!("{iface_chain}-mac");
    let want_comment = comment(id);
    let table = nft::list_table(NfFamily::Bridge, TABLE)?;
    let mut what: Vec<NftDeletion> = table
        .rules
        .iter()
        .filter(|r| {
            (r.chain == "PREROUTING" && r.comment == want_comment)
                || r.chain == iface_chain
                || r.chain == mac_chain
        })
        .map(|r| NftDeletion::Rule {
            chain: r.chain.clone(),
            handle: r.handle,
        })
        .collect();
    // The first chain is known to exist (probed above); the second is
    // made with it but looked up all the same.
    if nft::chain_may_exist(NfFamily::Bridge, TABLE, &mac_chain) {
        what.push(NftDeletion::Chain(mac_chain));
    }
    what.push(NftDeletion::Chain(iface_chain));
    nft::delete(NfFamily::Bridge, TABLE, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];

    #[test]
    fn script_has_the_reference_names() {
        let s = nft::script(&setup_changes("veth1234", MAC, "c1-eth0"));
        assert!(s.contains("add chain bridge nat cni-br-iface-c1-eth0-mac"));
        assert!(s.contains(
            "iifname \"veth1234\" jump cni-br-iface-c1-eth0 comment \"macspoofchk-c1-eth0\""
        ));
        assert!(s.contains("ether saddr aa:bb:cc:dd:ee:ff return"));
        assert!(s.contains("priority -300; policy accept;"));
    }

    #[test]
    fn netlink_rules_are_the_ones_nft_makes() {
        nft::tests::assert_same_in_kernel(&setup_changes("veth1234", MAC, "c1-eth0"));
    }
}
