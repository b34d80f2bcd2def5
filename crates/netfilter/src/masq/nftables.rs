//! ipMasq's nftables layout, as the reference's: table `inet
//! cni_plugins_masquerade`, base chain `postrouting` (returns for
//! multicast, then goes to `masq_checks`), one rule per address in
//! `masq_checks` commented `<h16(net)>-<h16(ifname:id)>, net: ..., if:
//! ..., id: ...`.

use super::Owner;
use crate::error::FirewallError;
use crate::nft::{self, quote, NfFamily};
use crate::rule_names::{hash_with_prefix, NFT_COMMENT_MAX};
use crate::Family;
use ipnet::IpNet;

const TABLE: &str = "cni_plugins_masquerade";
const CHAIN: &str = "masq_checks";

fn network_hash(network: &str) -> String {
    hash_with_prefix(16, "", network)
}

fn instance_hash(o: &Owner<'_>) -> String {
    format!(
        "{}-{}",
        network_hash(o.network),
        hash_with_prefix(16, "", &format!("{}:{}", o.ifname, o.container_id))
    )
}

/// The nftables comment of an attachment's rules.
pub(super) fn comment(o: &Owner<'_>) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut c = format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(o),
        strip(o.network),
        strip(o.ifname),
        strip(o.container_id)
    );
    c.truncate(NFT_COMMENT_MAX);
    c
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
    let prefix = instance_hash(o);
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
    let prefix = network_hash(network);
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
        assert!(c.starts_with(&format!("{}-", hash_with_prefix(16, "", "mynet"))));
        assert!(c.ends_with(", net: mynet, if: eth0, id: c1"));
        let s = setup_script(&["10.1.0.5/24".parse().unwrap()], &owner());
        assert!(s.contains("add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.1.0.5 ip daddr != 10.1.0.0/24 masquerade comment"));
    }
}
