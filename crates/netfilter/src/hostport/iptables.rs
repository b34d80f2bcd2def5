//! portmap's iptables layout (table `nat`), as the reference's:
//! `PREROUTING`/`OUTPUT` `-m addrtype --dst-type LOCAL -j
//! CNI-HOSTPORT-DNAT`; in it, per protocol and up to 15 ports, a multiport
//! rule commented `dnat name: "<net>" id: "<id>"` jumping to
//! `CNI-DN-<hash>`, which marks hairpin/localhost traffic for masquerade
//! (`CNI-HOSTPORT-SETMARK`) and DNATs; `CNI-HOSTPORT-MASQ`, jumped to first
//! in `POSTROUTING`, masquerades marked packets.

use super::{ip_port, PortMap};
use crate::error::FirewallError;
use crate::iptables::{self, Batch, Table};
use crate::netns_state::Marker;
use crate::nft::{self, NftDeletion};
use crate::rule_names::{chain_name_with_prefix, dnat_comment};
use crate::script::ChainName;
use crate::Family;
use ipnet::IpNet;

pub const TOP_DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
pub const SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
pub const MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
pub const OLD_SNAT_CHAIN: &str = "CNI-HOSTPORT-SNAT";

/// iptables multiport takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

/// The iptables batch for one container address, given the table as it
/// is now (shared chains are created only when missing).
pub(super) fn add_batch(pm: &PortMap<'_>, container: IpNet, table: &Table) -> Batch {
    let family = Family::of(container.addr());
    let mut b = Batch::default();
    let has_rule = |chain: &str, needle: &str| table.rules_of(chain).any(|r| r.contains(needle));
    let mark = pm.mark();
    if pm.snat && pm.external_set_mark_chain.is_none() {
        if !table.has_chain(SETMARK_CHAIN) {
            b.push(format!(":{SETMARK_CHAIN} - [0:0]"));
        }
        if !has_rule(SETMARK_CHAIN, &format!("--set-xmark {mark}")) {
            b.push(format!(
                "-A {SETMARK_CHAIN} -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark {mark}"
            ));
        }
        if !table.has_chain(MASQ_CHAIN) {
            b.push(format!(":{MASQ_CHAIN} - [0:0]"));
        }
        if !has_rule(MASQ_CHAIN, &format!("--mark {mark}")) {
            b.push(format!(
                "-A {MASQ_CHAIN} -m mark --mark {mark} -j MASQUERADE"
            ));
        }
        if !has_rule("POSTROUTING", &format!("-j {MASQ_CHAIN}")) {
            b.push(format!(
                "-I POSTROUTING 1 -m comment --comment \"CNI portfwd requiring masquerade\" -j {MASQ_CHAIN}"
            ));
        }
    }
    if !table.has_chain(TOP_DNAT_CHAIN) {
        b.push(format!(":{TOP_DNAT_CHAIN} - [0:0]"));
    }
    for entry in ["PREROUTING", "OUTPUT"] {
        if !has_rule(entry, &format!("-j {TOP_DNAT_CHAIN}")) {
            b.push(format!(
                "-A {entry} -m addrtype --dst-type LOCAL -j {TOP_DNAT_CHAIN}"
            ));
        }
    }
    // The container's own chain and its entry rules are rewritten whole.
    let chain = pm.dnat_chain();
    let comment = iptables::quote(&dnat_comment(pm.network, pm.container_id));
    for rule in table.rules_of(TOP_DNAT_CHAIN).filter(|r| {
        iptables::jump_target(r) == Some(chain.as_str())
            && iptables::comment_of(r) == Some(comment.as_str())
    }) {
        b.push(iptables::delete_line(rule));
    }
    b.push(format!(":{chain} - [0:0]"));
    let conditions = pm.conditions(family).as_str();
    let mut protocols: Vec<&str> = pm.applicable(family).map(|m| m.protocol.as_str()).collect();
    protocols.sort_unstable();
    protocols.dedup();
    for proto in protocols {
        let ports: Vec<String> = pm
            .applicable(family)
            .filter(|m| m.protocol == proto)
            .map(|m| m.host_port.to_string())
            .collect();
        for group in ports.chunks(MULTIPORT_MAX) {
            let mut rule = format!(
                "-A {TOP_DNAT_CHAIN} -m comment --comment {comment} -m multiport -p {proto} --destination-ports {}",
                group.join(",")
            );
            if !conditions.is_empty() {
                rule.push(' ');
                rule.push_str(conditions);
            }
            rule.push_str(&format!(" -j {chain}"));
            b.push(rule);
        }
    }
    let setmark = pm
        .external_set_mark_chain
        .map_or(SETMARK_CHAIN, ChainName::as_str);
    for m in pm.applicable(family) {
        let mut base = format!("-p {} --dport {}", m.protocol, m.host_port);
        if let Some(ip) = m.host_ip.filter(|ip| !ip.is_unspecified()) {
            base.push_str(&format!(" -d {ip}"));
        }
        if pm.snat {
            let masq_src = pm.masq_source(family, container);
            b.push(format!("-A {chain} {base} -s {masq_src} -j {setmark}"));
            if family == Family::V4 && !pm.masq_all {
                b.push(format!("-A {chain} {base} -s 127.0.0.1 -j {setmark}"));
            }
        }
        b.push(format!(
            "-A {chain} {base} -j DNAT --to-destination {}",
            ip_port(container.addr(), m.container_port)
        ));
    }
    b
}

/// The jumps from the built-in chains into the shared chains.
fn entry_jumps(pm: &PortMap<'_>) -> Vec<(&'static str, &'static str)> {
    let mut jumps = vec![("PREROUTING", TOP_DNAT_CHAIN), ("OUTPUT", TOP_DNAT_CHAIN)];
    if pm.snat && pm.external_set_mark_chain.is_none() {
        jumps.push(("POSTROUTING", MASQ_CHAIN));
    }
    jumps
}

/// A table that has the shared chains and their rules, as the fast path
/// assumes.
fn shared_chains_present(pm: &PortMap<'_>) -> Table {
    let mark = pm.mark();
    Table {
        chains: vec![
            SETMARK_CHAIN.into(),
            MASQ_CHAIN.into(),
            TOP_DNAT_CHAIN.into(),
        ],
        rules: vec![
            format!("-A {SETMARK_CHAIN} -j MARK --set-xmark {mark}"),
            format!("-A {MASQ_CHAIN} -m mark --mark {mark} -j MASQUERADE"),
            format!("-A POSTROUTING -j {MASQ_CHAIN}"),
            format!("-A PREROUTING -j {TOP_DNAT_CHAIN}"),
            format!("-A OUTPUT -j {TOP_DNAT_CHAIN}"),
        ],
    }
}

/// Sets up the mappings for the container's addresses: one
/// `iptables-restore` per family once the shared chains exist, else one
/// `iptables-save` and one `iptables-restore`.
pub(super) fn add(pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    for c in containers {
        let family = Family::of(c.addr());
        // Fast path: the shared chains were set up by an earlier
        // call in this netns, so one iptables-restore does it. If
        // they are gone (a firewall reload), the batch fails and
        // the slow path reads the table first; if only the jumps
        // from the built-in chains are gone (a flush of those),
        // the netlink probe sees it and the slow path restores
        // them.
        let marker = Marker::hostport_iptables_ready(
            family,
            pm.external_set_mark_chain,
            pm.mark_bit,
            pm.snat,
        );
        if marker.as_ref().is_some_and(Marker::is_set)
            && iptables::nat_jumps_present(family, &entry_jumps(pm))
        {
            let assumed = shared_chains_present(pm);
            if add_batch(pm, *c, &assumed).apply(family, "nat").is_ok() {
                continue;
            }
        }
        // Read and write under the namespace's lock: two first ADDs that
        // both found a shared chain missing would both declare it, and the
        // second declaration flushes the jump the first one added.
        nft::locked(|| {
            let table = iptables::save(family, "nat")?;
            add_batch(pm, *c, &table).apply(family, "nat")
        })?;
        if let Some(m) = marker {
            m.set();
        }
    }
    Ok(())
}

/// The batch that removes the container's chains (and the old SNAT chain
/// of older reference versions), leaving the shared chains in place. Only
/// entry rules with the attachment's comment go, and a chain only once
/// nothing else jumps to it: the chain name hashes network name and
/// container ID concatenated, which two attachments can share.
pub(super) fn del_batch(network: &str, container_id: &str, table: &Table) -> Batch {
    let own = iptables::quote(&dnat_comment(network, container_id));
    let dnat = chain_name_with_prefix(network, container_id, "DN-");
    let snat = chain_name_with_prefix(network, container_id, "SN-");
    let mut b = remove_entries(table, TOP_DNAT_CHAIN, &dnat, Some(&own));
    // Older references' SNAT entries are not commented as the DNAT ones.
    b.lines
        .extend(remove_entries(table, OLD_SNAT_CHAIN, &snat, None).lines);
    b
}

/// Which of the rules of an entry chain that jump to a container's chain
/// go (those with the attachment's comment, or all when no comment is
/// asked for), and whether the chain goes too (no other rule jumps to it):
/// the one rule of both ways of deleting, [`remove_entries`] and
/// [`entries_over_netlink`]. `comment_is` tells whether a rule carries the
/// wanted comment.
fn select_entries<R>(
    jumping: impl Iterator<Item = R>,
    comment_is: impl Fn(&R) -> bool,
    comment_wanted: bool,
) -> (Vec<R>, bool) {
    let mut gone = Vec::new();
    let mut others_left = false;
    for rule in jumping {
        if !comment_wanted || comment_is(&rule) {
            gone.push(rule);
        } else {
            others_left = true;
        }
    }
    (gone, !others_left)
}

/// Deletes the rules of `entry` that jump to `chain` (with the comment
/// `quoted_comment`, when given), then the chain if no other rule jumps
/// to it.
fn remove_entries(table: &Table, entry: &str, chain: &str, quoted_comment: Option<&str>) -> Batch {
    let (gone, chain_goes) = select_entries(
        table
            .rules_of(entry)
            .filter(|r| iptables::jump_target(r) == Some(chain)),
        |r| iptables::comment_of(r) == quoted_comment,
        quoted_comment.is_some(),
    );
    let mut b = Batch::default();
    for rule in gone {
        b.push(iptables::delete_line(rule));
    }
    if table.has_chain(chain) && chain_goes {
        b.push(format!(":{chain} - [0:0]"));
        b.push(format!("-X {chain}"));
    }
    b
}

/// [`del_batch`] over netlink, for the nf_tables flavour of iptables
/// (whose rules are nf_tables rules): the same rules and chains go, in one
/// transaction, with no `iptables-save` or `iptables-restore` (whose exit
/// waits for the kernel to free what its transaction deleted, 10 to 25 ms
/// here; rcni's own socket hands that wait to a kernel worker).
/// `dnat` and `snat`: the container's chains, each with whether it exists.
fn del_over_netlink(
    family: Family,
    network: &str,
    container_id: &str,
    dnat: (&str, bool),
    snat: (&str, bool),
) -> Result<(), FirewallError> {
    let own = dnat_comment(network, container_id);
    let mut gone = entries_over_netlink(family, TOP_DNAT_CHAIN, dnat, Some(&own))?;
    // Older references' SNAT entries are not commented as the DNAT ones.
    gone.extend(entries_over_netlink(family, OLD_SNAT_CHAIN, snat, None)?);
    nft::delete(family.into(), "nat", &gone)
}

/// [`remove_entries`] over netlink: the rules of `entry` that jump to
/// `chain` (with the comment `comment`, when given), then the chain (and
/// its rules), if it exists, when no other rule of `entry` jumps to it.
fn entries_over_netlink(
    family: Family,
    entry: &str,
    (chain, chain_exists): (&str, bool),
    comment: Option<&str>,
) -> Result<Vec<NftDeletion>, FirewallError> {
    let (rules, chain_goes) = select_entries(
        nft::list_rules(family.into(), "nat", entry)?
            .into_iter()
            .filter(|r| r.jumps_to.as_deref() == Some(chain)),
        |r| Some(r.comment.as_str()) == comment,
        comment.is_some(),
    );
    let mut gone: Vec<NftDeletion> = rules
        .into_iter()
        .map(|r| NftDeletion::Rule {
            chain: entry.to_string(),
            handle: r.handle,
        })
        .collect();
    if chain_goes && chain_exists {
        gone.push(NftDeletion::Chain(chain.to_string()));
    }
    Ok(gone)
}

/// Removes a container's mappings: over netlink with the nf_tables
/// flavour of iptables, else (or if that fails, on a concurrent change to
/// the chains, say) by reading the table with `iptables-save`.
pub(super) fn del(network: &str, container_id: &str) -> Result<(), FirewallError> {
    let dnat = chain_name_with_prefix(network, container_id, "DN-");
    let snat = chain_name_with_prefix(network, container_id, "SN-");
    for family in Family::BOTH {
        // Some(false): surely absent; None: the legacy flavour, or a
        // failed probe.
        let (dn, sn) = (
            iptables::nat_chain_exists(family, &dnat),
            iptables::nat_chain_exists(family, &snat),
        );
        if dn == Some(false) && sn == Some(false) {
            continue;
        }
        if iptables::uses_nf_tables()
            && del_over_netlink(
                family,
                network,
                container_id,
                (&dnat, dn == Some(true)),
                (&snat, sn == Some(true)),
            )
            .is_ok()
        {
            continue;
        }
        let table = iptables::save(family, "nat")?;
        del_batch(network, container_id, &table).apply(family, "nat")?;
    }
    Ok(())
}

/// Whether the container's mappings are in place (CHECK).
pub(super) fn check(pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    for c in containers {
        let family = Family::of(c.addr());
        let table = iptables::save(family, "nat")?;
        let chain = pm.dnat_chain();
        if !table.has_chain(&chain) {
            return Err(FirewallError::NotInPlace(format!(
                "chain {chain} not found in iptables table nat"
            )));
        }
        if !table
            .rules_of(TOP_DNAT_CHAIN)
            .any(|r| r.ends_with(&format!("-j {chain}")))
        {
            return Err(FirewallError::NotInPlace(format!(
                "no rule in {TOP_DNAT_CHAIN} jumps to {chain}"
            )));
        }
        let want = pm.applicable(family).count();
        let dnats = table
            .rules_of(&chain)
            .filter(|r| r.contains("-j DNAT"))
            .count();
        if dnats < want {
            return Err(FirewallError::NotInPlace(format!(
                "missing DNAT rules in {chain}"
            )));
        }
    }
    Ok(())
}

/// Removes the mappings of attachments of `network` whose container is
/// not in `valid`: the DNAT entry rules' comments name the
/// network and the container (cut for long IDs, so compared whole).
pub(super) fn gc(network: &str, valid: &[String]) -> Result<(), FirewallError> {
    let keep: Vec<String> = valid
        .iter()
        .map(|id| iptables::quote(&dnat_comment(network, id)))
        .collect();
    let prefix = iptables::quote(&format!("dnat name: \"{network}\" id: "));
    let prefix = prefix.trim_end_matches('"');
    for family in Family::BOTH {
        let table = iptables::save(family, "nat")?;
        let mut stale: Vec<(&str, &str)> = Vec::new();
        for rule in table.rules_of(TOP_DNAT_CHAIN) {
            let (Some(c), Some(chain)) = (iptables::comment_of(rule), iptables::jump_target(rule))
            else {
                continue;
            };
            if c.starts_with(prefix) && !keep.iter().any(|k| k == c) && !stale.contains(&(c, chain))
            {
                stale.push((c, chain));
            }
        }
        let mut batch = Batch::default();
        for (c, chain) in stale {
            batch
                .lines
                .extend(remove_entries(&table, TOP_DNAT_CHAIN, chain, Some(c)).lines);
        }
        batch.apply(family, "nat")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostport::tests::{maps, pm};
    use crate::hostport::PortMap;

    #[test]
    fn iptables_layout_matches_the_reference() {
        let m = maps();
        let b = add_batch(&pm(&m), "10.88.0.5/16".parse().unwrap(), &Table::default());
        let dn = chain_name_with_prefix("net", "c1", "DN-");
        let want = [
            ":CNI-HOSTPORT-SETMARK - [0:0]".to_string(),
            "-A CNI-HOSTPORT-SETMARK -m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000".into(),
            ":CNI-HOSTPORT-MASQ - [0:0]".into(),
            "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE".into(),
            "-I POSTROUTING 1 -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ".into(),
            ":CNI-HOSTPORT-DNAT - [0:0]".into(),
            "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".into(),
            "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT".into(),
            format!(":{dn} - [0:0]"),
            format!("-A CNI-HOSTPORT-DNAT -m comment --comment \"dnat name: \\\"net\\\" id: \\\"c1\\\"\" -m multiport -p tcp --destination-ports 8080 -j {dn}"),
            format!("-A CNI-HOSTPORT-DNAT -m comment --comment \"dnat name: \\\"net\\\" id: \\\"c1\\\"\" -m multiport -p udp --destination-ports 8053 -j {dn}"),
            format!("-A {dn} -p tcp --dport 8080 -s 10.88.0.5/16 -j CNI-HOSTPORT-SETMARK"),
            format!("-A {dn} -p tcp --dport 8080 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK"),
            format!("-A {dn} -p tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80"),
            format!("-A {dn} -p udp --dport 8053 -d 203.0.113.1 -s 10.88.0.5/16 -j CNI-HOSTPORT-SETMARK"),
            format!("-A {dn} -p udp --dport 8053 -d 203.0.113.1 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK"),
            format!("-A {dn} -p udp --dport 8053 -d 203.0.113.1 -j DNAT --to-destination 10.88.0.5:53"),
        ];
        assert_eq!(b.lines, want);
        // A v6 address skips the v4-only hostIP mapping.
        let b6 = add_batch(&pm(&m), "fd00::5/64".parse().unwrap(), &Table::default());
        assert!(b6
            .lines
            .iter()
            .any(|l| l.contains("--to-destination [fd00::5]:80")));
        assert!(!b6.lines.iter().any(|l| l.contains("8053")));
    }

    #[test]
    fn shared_chains_are_not_recreated() {
        let m = maps();
        let first = add_batch(&pm(&m), "10.88.0.5/16".parse().unwrap(), &Table::default());
        let mut text = String::from(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
        );
        for l in &first.lines {
            text.push_str(&l.replace("-I POSTROUTING 1", "-A POSTROUTING"));
            text.push('\n');
        }
        let table = Table::parse(&text);
        let again = add_batch(
            &PortMap {
                container_id: "c2",
                ..pm(&m)
            },
            "10.88.0.6/16".parse().unwrap(),
            &table,
        );
        assert!(again
            .lines
            .iter()
            .all(|l| !l.contains("SETMARK - [0:0]") && !l.starts_with("-A PREROUTING")));
    }

    #[test]
    fn del_keeps_the_entries_of_an_attachment_sharing_the_chain() {
        let dn = chain_name_with_prefix("relnet", "x1", "DN-");
        assert_eq!(dn, chain_name_with_prefix("relne", "tx1", "DN-"));
        let entry = |net: &str, id: &str| {
            format!(
                "-A {TOP_DNAT_CHAIN} -p tcp -m comment --comment {} -m multiport --dports 80 -j {dn}",
                iptables::quote(&dnat_comment(net, id))
            )
        };
        let table = Table::parse(&format!(
            ":{TOP_DNAT_CHAIN} - [0:0]\n:{dn} - [0:0]\n{}\n{}\n",
            entry("relnet", "x1"),
            entry("relne", "tx1")
        ));
        let b = del_batch("relnet", "x1", &table);
        assert_eq!(b.lines, [iptables::delete_line(&entry("relnet", "x1"))]);
        let alone = Table::parse(&format!(
            ":{TOP_DNAT_CHAIN} - [0:0]\n:{dn} - [0:0]\n{}\n",
            entry("relne", "tx1")
        ));
        assert_eq!(
            del_batch("relne", "tx1", &alone).lines.last(),
            Some(&format!("-X {dn}"))
        );
    }
}
