//! bridge's `macspoofchk`: frames entering the bridge from a container's
//! port must carry the container's MAC. The reference's layout: table
//! `bridge nat`, base chain `PREROUTING` (filter, priority -300), per
//! attachment chains `cni-br-iface-<id>` and `cni-br-iface-<id>-mac`, every
//! rule commented `macspoofchk-<id>` where `<id>` is `<containerID>-<ifname>`.

use crate::error::FirewallError;
use crate::nft::{self, quote, NfFamily, NftDeletion};

const TABLE: &str = "bridge nat";

fn chain(id: &str) -> String {
    format!("cni-br-iface-{id}")
}

fn comment(id: &str) -> String {
    quote(&format!("macspoofchk-{id}"))
}

/// The nft script that installs the check for the port `host_iface`.
pub fn setup_script(host_iface: &str, mac: &str, id: &str) -> String {
    let iface_chain = chain(id);
    let mac_chain = format!("{iface_chain}-mac");
    let c = comment(id);
    format!(
        "add table {TABLE}\n\
         add chain {TABLE} PREROUTING {{ type filter hook prerouting priority -300; policy accept; }}\n\
         add chain {TABLE} {iface_chain}\n\
         add chain {TABLE} {mac_chain}\n\
         flush chain {TABLE} {iface_chain}\n\
         flush chain {TABLE} {mac_chain}\n\
         add rule {TABLE} PREROUTING iifname {} jump {iface_chain} comment {c}\n\
         add rule {TABLE} {iface_chain} jump {mac_chain} comment {c}\n\
         add rule {TABLE} {mac_chain} ether saddr {mac} return comment {c}\n\
         add rule {TABLE} {mac_chain} drop comment {c}\n",
        quote(host_iface)
    )
}

/// Installs the check (one transaction). The id is part of unquoted chain
/// names in the script, and an interface name may hold characters such as
/// `;` or `#`: those are refused.
pub fn setup(host_iface: &str, mac: &str, id: &str) -> Result<(), FirewallError> {
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(FirewallError::Config(format!(
            "macspoofchk: {id:?} (container ID and interface name) may only hold letters, digits, '_', '-' and '.'"
        )));
    }
    nft::apply_script(&setup_script(host_iface, mac, id))
}

/// Removes the check of attachment `id`: its jump from PREROUTING and its
/// two chains (whatever of them exists), in one transaction over netlink.
pub fn teardown(id: &str) -> Result<(), FirewallError> {
    let iface_chain = chain(id);
    // The chains come and go together: without the first, nothing to do.
    if !nft::supported() || !nft::chain_may_exist(NfFamily::Bridge, "nat", &iface_chain) {
        return Ok(());
    }
    let mac_chain = format!("{iface_chain}-mac");
    let want_comment = format!("macspoofchk-{id}");
    let table = nft::list_table(NfFamily::Bridge, "nat")?;
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
    if nft::chain_may_exist(NfFamily::Bridge, "nat", &mac_chain) {
        what.push(NftDeletion::Chain(mac_chain));
    }
    what.push(NftDeletion::Chain(iface_chain));
    nft::delete(NfFamily::Bridge, "nat", &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_the_reference_names() {
        let s = setup_script("veth1234", "aa:bb:cc:dd:ee:ff", "c1-eth0");
        assert!(s.contains("add chain bridge nat cni-br-iface-c1-eth0-mac"));
        assert!(s.contains(
            "iifname \"veth1234\" jump cni-br-iface-c1-eth0 comment \"macspoofchk-c1-eth0\""
        ));
        assert!(s.contains("ether saddr aa:bb:cc:dd:ee:ff return"));
        assert!(s.contains("priority -300"));
    }
}
