//! IP masquerading for a container's addresses (`ipMasq` of bridge and
//! ptp), laid out exactly as the reference does on both backends:
//!
//! - iptables (nat): chain `CNI-<hash(net+id)>` holding `-d <subnet> -j
//!   ACCEPT` and `! -d <multicast> -j MASQUERADE`, jumped to from
//!   `POSTROUTING -s <ip>`; every rule commented `name: "<net>" id: "<id>"`.
//! - nftables: table `inet cni_plugins_masquerade`, base chain
//!   `postrouting` (returns for multicast, then goes to `masq_checks`),
//!   one rule per address in `masq_checks` commented
//!   `<h16(net)>-<h16(ifname:id)>, net: ..., if: ..., id: ...`.
//!
//! Teardown does not need the container's addresses (so DEL still cleans
//! up when the netns is gone) and tries both backends.

use crate::error::FirewallError;
use crate::iptables::{self, Batch, Family};
use crate::names::{chain_name, comment, hash_with_prefix};
use crate::nftables::{self, quote};
use crate::Backend;
use ipnet::IpNet;

const NFT_TABLE: &str = "cni_plugins_masquerade";
const NFT_CHAIN: &str = "masq_checks";
/// nft's longest comment.
const NFT_COMMENT_MAX: usize = 128;

/// The attachment the rules belong to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub network: &'a str,
    pub ifname: &'a str,
    pub container_id: &'a str,
}

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
pub fn nft_comment(o: &Owner<'_>) -> String {
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

fn family_of(net: &IpNet) -> Family {
    if net.addr().is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

/// The iptables batch that sets up masquerading for the addresses of one
/// family.
pub fn iptables_setup_batch(ips: &[IpNet], o: &Owner<'_>, family: Family) -> Batch {
    let chain = chain_name(o.network, o.container_id);
    let c = iptables::quote(&comment(o.network, o.container_id));
    let multicast = if family == Family::V4 {
        "224.0.0.0/4"
    } else {
        "ff00::/8"
    };
    let mine: Vec<&IpNet> = ips.iter().filter(|n| family_of(n) == family).collect();
    let mut b = Batch::default();
    if mine.is_empty() {
        return b;
    }
    b.push(format!(":{chain} - [0:0]"));
    for net in &mine {
        b.push(format!(
            "-A {chain} -d {} -m comment --comment {c} -j ACCEPT",
            net.trunc()
        ));
    }
    b.push(format!(
        "-A {chain} ! -d {multicast} -m comment --comment {c} -j MASQUERADE"
    ));
    for net in &mine {
        b.push(format!(
            "-A POSTROUTING -s {} -m comment --comment {c} -j {chain}",
            net.addr()
        ));
    }
    b
}

/// The nft script that sets up masquerading for `ips`.
pub fn nft_setup_script(ips: &[IpNet], o: &Owner<'_>) -> String {
    let t = format!("inet {NFT_TABLE}");
    let mut s = String::new();
    s.push_str(&format!(
        "add table {t} {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\"; }}\n"
    ));
    s.push_str(&format!(
        "add chain {t} {NFT_CHAIN} {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\"; }}\n"
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
    s.push_str(&format!("add rule {t} postrouting goto {NFT_CHAIN}\n"));
    let c = quote(&nft_comment(o));
    for net in ips {
        let ip = if net.addr().is_ipv4() { "ip" } else { "ip6" };
        s.push_str(&format!(
            "add rule {t} {NFT_CHAIN} {ip} saddr == {} {ip} daddr != {} masquerade comment {c}\n",
            net.addr(),
            net.trunc()
        ));
    }
    s
}

/// Sets up masquerading for `ips` (one batch per IP family on iptables,
/// one transaction on nftables).
pub fn setup(backend: Backend, ips: &[IpNet], o: &Owner<'_>) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => {
            for family in [Family::V4, Family::V6] {
                iptables_setup_batch(ips, o, family).apply(family, "nat")?;
            }
            Ok(())
        }
        Backend::Nftables => nftables::apply(&nft_setup_script(ips, o)),
    }
}

/// The iptables batch that removes the chain `chain` and every jump to it.
fn iptables_remove_chain(table: &iptables::Table, chain: &str) -> Batch {
    let mut b = Batch::default();
    let jump = format!(" -j {chain}");
    for rule in table
        .rules
        .iter()
        .filter(|r| r.ends_with(&jump) || r.contains(&format!("{jump} ")))
    {
        b.push(iptables::delete_line(rule));
    }
    if table.has_chain(chain) {
        b.push(format!(":{chain} - [0:0]"));
        b.push(format!("-X {chain}"));
    }
    b
}

/// The batch that removes the rules of `ips` (one family) without reading
/// the table first: right when the jumps from POSTROUTING are exactly one
/// per address, as setup makes them; otherwise iptables-restore refuses the
/// whole batch and nothing changes.
fn iptables_known_teardown_batch(ips: &[&IpNet], o: &Owner<'_>, chain: &str) -> Batch {
    let c = iptables::quote(&comment(o.network, o.container_id));
    let mut b = Batch::default();
    for net in ips {
        b.push(format!(
            "-D POSTROUTING -s {} -m comment --comment {c} -j {chain}",
            net.addr()
        ));
    }
    b.push(format!(":{chain} - [0:0]"));
    b.push(format!("-X {chain}"));
    b
}

fn iptables_teardown(o: &Owner<'_>, known: &[IpNet]) -> Result<(), FirewallError> {
    let chain = chain_name(o.network, o.container_id);
    for family in [Family::V4, Family::V6] {
        // The rules jump to the chain: no chain, nothing to remove.
        if !iptables::nat_chains_may_exist(family, &[&chain]) {
            continue;
        }
        let mine: Vec<&IpNet> = known.iter().filter(|n| family_of(n) == family).collect();
        if !mine.is_empty()
            && iptables_known_teardown_batch(&mine, o, &chain)
                .apply(family, "nat")
                .is_ok()
        {
            continue;
        }
        let table = iptables::save(family, "nat")?;
        iptables_remove_chain(&table, &chain).apply(family, "nat")?;
    }
    Ok(())
}

/// Deletes rules of the masquerading chain by handle (one transaction).
fn nft_delete(handles: &[u64]) -> Result<(), FirewallError> {
    let what: Vec<nftables::NftDeletion> = handles
        .iter()
        .map(|h| nftables::NftDeletion::Rule {
            chain: NFT_CHAIN.to_string(),
            handle: *h,
        })
        .collect();
    nftables::delete("inet", NFT_TABLE, &what)
}

fn nft_teardown(o: &Owner<'_>) -> Result<(), FirewallError> {
    if !nftables::table_may_exist("inet", NFT_TABLE) {
        return Ok(());
    }
    let prefix = instance_hash(o);
    nftables::locked(|| {
        let rules = nftables::list_rules("inet", NFT_TABLE, NFT_CHAIN)?;
        let handles: Vec<u64> = rules
            .iter()
            .filter(|r| r.comment.starts_with(&prefix))
            .map(|r| r.handle)
            .collect();
        nft_delete(&handles)
    })
}

/// Removes an attachment's masquerading from both backends (each one
/// only where its tools work).
pub fn teardown(o: &Owner<'_>) -> Result<(), FirewallError> {
    teardown_known(o, &[])
}

/// As [`teardown`], with the attachment's addresses when the caller knows
/// them (a DEL's prevResult): iptables then needs no `iptables-save`.
pub fn teardown_known(o: &Owner<'_>, known: &[IpNet]) -> Result<(), FirewallError> {
    let mut errors = Vec::new();
    if iptables::supported() {
        if let Err(e) = iptables_teardown(o, known) {
            errors.push(e.to_string());
        }
    }
    if nftables::supported() {
        if let Err(e) = nft_teardown(o) {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(FirewallError::Tool {
            program: "ipmasq teardown".into(),
            message: errors.join("; "),
        })
    }
}

/// Removes the masquerading of every attachment of `network` that is not
/// in `valid` (container ID, ifname), on both backends.
pub fn gc(network: &str, valid: &[(String, String)]) -> Result<(), FirewallError> {
    if nftables::supported() {
        let keep: Vec<String> = valid
            .iter()
            .map(|(id, ifname)| {
                nft_comment(&Owner {
                    network,
                    ifname,
                    container_id: id,
                })
            })
            .collect();
        let prefix = network_hash(network);
        nftables::locked(|| {
            let rules = nftables::list_rules("inet", NFT_TABLE, NFT_CHAIN)?;
            let stale: Vec<u64> = rules
                .iter()
                .filter(|r| r.comment.starts_with(&prefix) && !keep.contains(&r.comment))
                .map(|r| r.handle)
                .collect();
            nft_delete(&stale)
        })?;
    }
    if iptables::supported() {
        // The iptables layout names chains by network and container only.
        let keep: Vec<String> = valid
            .iter()
            .map(|(id, _)| chain_name(network, id))
            .collect();
        let marker = iptables::quote(&format!("name: {} id: ", crate::names::go_quote(network)));
        let marker = marker.trim_end_matches('"').to_string();
        for family in [Family::V4, Family::V6] {
            let table = iptables::save(family, "nat")?;
            let mut batch = Batch::default();
            let mut stale_chains: Vec<String> = Vec::new();
            for rule in table.rules_of("POSTROUTING") {
                if !rule.contains(&marker) {
                    continue;
                }
                if let Some(chain) = rule.rsplit(" -j ").next().filter(|c| c.starts_with("CNI-")) {
                    if !keep.iter().any(|k| k == chain) && !stale_chains.iter().any(|s| s == chain)
                    {
                        stale_chains.push(chain.to_string());
                    }
                }
            }
            for chain in &stale_chains {
                batch
                    .lines
                    .extend(iptables_remove_chain(&table, chain).lines);
            }
            batch.apply(family, "nat")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner<'static> {
        Owner {
            network: "mynet",
            ifname: "eth0",
            container_id: "c1",
        }
    }

    #[test]
    fn iptables_layout_matches_the_reference() {
        let ips: Vec<IpNet> = vec![
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let chain = chain_name("mynet", "c1");
        let v4 = iptables_setup_batch(&ips, &owner(), Family::V4);
        let c = r#""name: \"mynet\" id: \"c1\"""#;
        assert_eq!(
            v4.lines,
            [
                format!(":{chain} - [0:0]"),
                format!("-A {chain} -d 10.1.0.0/24 -m comment --comment {c} -j ACCEPT"),
                format!("-A {chain} ! -d 224.0.0.0/4 -m comment --comment {c} -j MASQUERADE"),
                format!("-A POSTROUTING -s 10.1.0.5 -m comment --comment {c} -j {chain}"),
            ]
        );
        let v6 = iptables_setup_batch(&ips, &owner(), Family::V6);
        assert!(v6.lines[2].contains("! -d ff00::/8"));
        assert!(iptables_setup_batch(&ips[..1], &owner(), Family::V6).is_empty());
    }

    #[test]
    fn nft_comment_and_script() {
        let c = nft_comment(&owner());
        assert!(c.starts_with(&format!("{}-", hash_with_prefix(16, "", "mynet"))));
        assert!(c.ends_with(", net: mynet, if: eth0, id: c1"));
        let s = nft_setup_script(&["10.1.0.5/24".parse().unwrap()], &owner());
        assert!(s.contains("add rule inet cni_plugins_masquerade masq_checks ip saddr == 10.1.0.5 ip daddr != 10.1.0.0/24 masquerade comment"));
    }

    #[test]
    fn removing_a_chain_deletes_its_jumps() {
        let table = iptables::Table::parse(
            ":POSTROUTING ACCEPT [0:0]\n:CNI-x - [0:0]\n-A POSTROUTING -s 10.0.0.2/32 -m comment --comment \"c\" -j CNI-x\n-A POSTROUTING -j OTHER\n",
        );
        let b = iptables_remove_chain(&table, "CNI-x");
        assert_eq!(
            b.lines,
            [
                "-D POSTROUTING -s 10.0.0.2/32 -m comment --comment \"c\" -j CNI-x",
                ":CNI-x - [0:0]",
                "-X CNI-x"
            ]
        );
    }
}
