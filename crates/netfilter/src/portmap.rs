//! Port mappings (the portmap plugin's rules), laid out as the reference
//! does so that either implementation removes the other's:
//!
//! - iptables (nat): `PREROUTING`/`OUTPUT` `-m addrtype --dst-type LOCAL -j
//!   CNI-HOSTPORT-DNAT`; in it, per protocol and up to 15 ports, a
//!   multiport rule commented `dnat name: "<net>" id: "<id>"` jumping to
//!   `CNI-DN-<hash>`, which marks hairpin/localhost traffic for masquerade
//!   (`CNI-HOSTPORT-SETMARK`) and DNATs; `CNI-HOSTPORT-MASQ`, jumped to
//!   first in `POSTROUTING`, masquerades marked packets.
//! - nftables: table `ip`/`ip6 cni_hostport`; `prerouting`/`output`
//!   jump to `hostports_all` only for local destinations (`fib daddr type
//!   local`), DNAT rules in `hostports` (each carrying its network's
//!   `conditionsV4`/`V6`, as the entry rules are shared by all networks)
//!   and masquerading in `masquerading`, every per-container rule
//!   commented with the container ID. The reference's comment does not name the network, so
//!   rcni also notes each attachment as a no-op rule (commented with the
//!   container ID) in a chain of the network's own, `rcni_attachments_<hash>`,
//!   that nothing jumps to: it lets GC, which works per network, find the
//!   network's attachments in the same place and lifetime as their rules.
//!
//! Only traffic addressed to the node itself is translated (the reference's
//! CVE-2025-67499 was DNAT of transit traffic).

use crate::error::FirewallError;
use crate::iptables::{self, Batch, Family, Table};
use crate::names::{chain_name_with_prefix, dnat_comment, hash_with_prefix, nft_container_comment};
use crate::nftables::{self, quote, NftDeletion};
use crate::script::{ChainName, Conditions};
use crate::Backend;
use ipnet::IpNet;
use std::net::IpAddr;

pub const TOP_DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
pub const SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
pub const MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
pub const OLD_SNAT_CHAIN: &str = "CNI-HOSTPORT-SNAT";
const NFT_TABLE: &str = "cni_hostport";
/// The reference's chains that hold per-container rules.
const NFT_CONTAINER_CHAINS: [&str; 3] = ["hostports", "hostip_hostports", "masquerading"];
const NFT_ATTACHMENTS_PREFIX: &str = "rcni_attachments_";

/// The chain in which rcni notes the network's nftables attachments.
fn nft_attachments_chain(network: &str) -> String {
    hash_with_prefix(
        NFT_ATTACHMENTS_PREFIX.len() + 16,
        NFT_ATTACHMENTS_PREFIX,
        network,
    )
}
/// iptables multiport takes at most 15 ports.
const MULTIPORT_MAX: usize = 15;

/// One mapping, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

/// Everything the rules depend on.
#[derive(Debug, Clone)]
pub struct PortMap<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub mappings: &'a [Mapping],
    pub snat: bool,
    pub mark_bit: u8,
    pub external_set_mark_chain: Option<&'a ChainName>,
    pub masq_all: bool,
    pub conditions_v4: &'a Conditions,
    pub conditions_v6: &'a Conditions,
}

impl PortMap<'_> {
    fn dnat_chain(&self) -> String {
        chain_name_with_prefix(self.network, self.container_id, "DN-")
    }

    fn mark(&self) -> String {
        let v = 1u32 << self.mark_bit;
        format!("{v:#x}/{v:#x}")
    }

    fn conditions(&self, v6: bool) -> &Conditions {
        if v6 {
            self.conditions_v6
        } else {
            self.conditions_v4
        }
    }

    /// The mappings that apply to a container address of this family.
    fn applicable<'b>(&'b self, v6: bool) -> impl Iterator<Item = &'b Mapping> + 'b {
        self.mappings
            .iter()
            .filter(move |m| m.host_ip.is_none_or(|ip| ip.is_ipv6() == v6))
    }
}

fn family_of(ip: IpAddr) -> Family {
    if ip.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

fn ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// The iptables batch for one container address, given the table as it
/// is now (shared chains are created only when missing).
pub fn iptables_add_batch(pm: &PortMap<'_>, container: IpNet, table: &Table) -> Batch {
    let v6 = container.addr().is_ipv6();
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
    let conditions = pm.conditions(v6).as_str();
    let mut protocols: Vec<&str> = pm.applicable(v6).map(|m| m.protocol.as_str()).collect();
    protocols.sort_unstable();
    protocols.dedup();
    for proto in protocols {
        let ports: Vec<String> = pm
            .applicable(v6)
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
    for m in pm.applicable(v6) {
        let mut base = format!("-p {} --dport {}", m.protocol, m.host_port);
        if let Some(ip) = m.host_ip.filter(|ip| !ip.is_unspecified()) {
            base.push_str(&format!(" -d {ip}"));
        }
        if pm.snat {
            let masq_src = if pm.masq_all {
                if v6 {
                    "::/0".to_string()
                } else {
                    "0.0.0.0/0".to_string()
                }
            } else {
                container.to_string()
            };
            b.push(format!("-A {chain} {base} -s {masq_src} -j {setmark}"));
            if !v6 && !pm.masq_all {
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

/// Where rcni notes that the shared portmap chains exist in this network
/// namespace for this family and mark (keyed by the netns inode, since
/// /run is shared by every namespace of the node).
fn ready_marker(family: Family, pm: &PortMap<'_>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/net").ok()?.ino();
    let fam = if family == Family::V4 { "v4" } else { "v6" };
    let mark = match pm.external_set_mark_chain {
        Some(chain) => format!("ext-{}", chain.as_str()),
        None => format!("bit{}", pm.mark_bit),
    };
    Some(std::path::PathBuf::from(format!(
        "/run/rcni/portmap-iptables-{fam}-{mark}-snat{}-ns{ns}",
        u8::from(pm.snat)
    )))
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

/// The batch that removes the container's chains (and the old SNAT chain
/// of older reference versions), leaving the shared chains in place. Only
/// entry rules with the attachment's comment go, and a chain only once
/// nothing else jumps to it: the chain name hashes network name and
/// container ID concatenated, which two attachments can share.
pub fn iptables_del_batch(network: &str, container_id: &str, table: &Table) -> Batch {
    let own = iptables::quote(&dnat_comment(network, container_id));
    let dnat = chain_name_with_prefix(network, container_id, "DN-");
    let snat = chain_name_with_prefix(network, container_id, "SN-");
    let mut b = iptables_remove_entries(table, TOP_DNAT_CHAIN, &dnat, Some(&own));
    // Older references' SNAT entries are not commented as the DNAT ones.
    b.lines
        .extend(iptables_remove_entries(table, OLD_SNAT_CHAIN, &snat, None).lines);
    b
}

/// Deletes the rules of `entry` that jump to `chain` (with the comment
/// `quoted_comment`, when given), then the chain if no other rule jumps
/// to it.
fn iptables_remove_entries(
    table: &Table,
    entry: &str,
    chain: &str,
    quoted_comment: Option<&str>,
) -> Batch {
    let mut b = Batch::default();
    let mut others_left = false;
    for rule in table
        .rules_of(entry)
        .filter(|r| iptables::jump_target(r) == Some(chain))
    {
        if quoted_comment.is_none_or(|c| iptables::comment_of(rule) == Some(c)) {
            b.push(iptables::delete_line(rule));
        } else {
            others_left = true;
        }
    }
    if table.has_chain(chain) && !others_left {
        b.push(format!(":{chain} - [0:0]"));
        b.push(format!("-X {chain}"));
    }
    b
}

/// The nft script for one container address.
pub fn nft_add_script(pm: &PortMap<'_>, container: IpNet) -> String {
    let v6 = container.addr().is_ipv6();
    let ipx = if v6 { "ip6" } else { "ip" };
    let t = format!("{ipx} {NFT_TABLE}");
    // The entry rules are shared by every network and rewritten by each
    // ADD, so a network's conditions go on its own DNAT rules.
    let cond = match pm.conditions(v6).as_str() {
        "" => String::new(),
        conditions => format!("{conditions} "),
    };
    let c = quote(&nft_container_comment(pm.container_id));
    let mut s = format!("add table {t} {{ comment \"CNI portmap plugin\"; }}\n");
    for chain in ["hostports", "hostip_hostports", "hostports_all"] {
        s.push_str(&format!("add chain {t} {chain}\n"));
    }
    s.push_str(&format!("flush chain {t} hostports_all\n"));
    s.push_str(&format!(
        "add rule {t} hostports_all jump hostip_hostports\n"
    ));
    s.push_str(&format!("add rule {t} hostports_all jump hostports\n"));
    for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        // -100 is "dstnat"; older nft accepts that name only on prerouting.
        s.push_str(&format!(
            "add chain {t} {chain} {{ type nat hook {hook} priority -100; }}\n"
        ));
        s.push_str(&format!("flush chain {t} {chain}\n"));
        s.push_str(&format!(
            "add rule {t} {chain} fib daddr type local jump hostports_all\n"
        ));
    }
    if pm.snat {
        s.push_str(&format!(
            "add chain {t} masquerading {{ type nat hook postrouting priority srcnat; }}\n"
        ));
    }
    let attachments = nft_attachments_chain(pm.network);
    s.push_str(&format!("add chain {t} {attachments}\n"));
    s.push_str(&format!("add rule {t} {attachments} return comment {c}\n"));
    for m in pm.applicable(v6) {
        let dst = match m.host_ip.filter(|ip| !ip.is_unspecified()) {
            Some(ip) => format!("{ipx} daddr {ip} "),
            None => String::new(),
        };
        s.push_str(&format!(
            "add rule {t} hostports {cond}{dst}{} dport {} dnat to {} comment {c}\n",
            m.protocol,
            m.host_port,
            ip_port(container.addr(), m.container_port)
        ));
    }
    if pm.snat {
        let src = if pm.masq_all {
            if v6 {
                "::/0".to_string()
            } else {
                "0.0.0.0/0".to_string()
            }
        } else {
            container.addr().to_string()
        };
        s.push_str(&format!(
            "add rule {t} masquerading {ipx} saddr {src} {ipx} daddr {} masquerade comment {c}\n",
            container.addr()
        ));
        if !v6 && !pm.masq_all {
            s.push_str(&format!(
                "add rule {t} masquerading ip saddr 127.0.0.1 ip daddr {} masquerade comment {c}\n",
                container.addr()
            ));
        }
    }
    s
}

/// Sets up the mappings for the container's addresses (at most one IPv4
/// and one IPv6). iptables: one `iptables-save` and one
/// `iptables-restore` per family; nftables: one `nft -f -` in all.
pub fn add(backend: Backend, pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => {
            for c in containers {
                let family = family_of(c.addr());
                // Fast path: the shared chains were set up by an earlier
                // call in this netns, so one iptables-restore does it. If
                // they are gone (a firewall reload), the batch fails and
                // the slow path reads the table first; if only the jumps
                // from the built-in chains are gone (a flush of those),
                // the netlink probe sees it and the slow path restores
                // them.
                let marker = ready_marker(family, pm);
                if marker.as_ref().is_some_and(|m| m.exists())
                    && iptables::nat_jumps_present(family, &entry_jumps(pm))
                {
                    let assumed = shared_chains_present(pm);
                    if iptables_add_batch(pm, *c, &assumed)
                        .apply(family, "nat")
                        .is_ok()
                    {
                        continue;
                    }
                }
                let table = iptables::save(family, "nat")?;
                iptables_add_batch(pm, *c, &table).apply(family, "nat")?;
                if let Some(m) = marker {
                    let _ =
                        std::fs::create_dir_all(m.parent().unwrap_or(std::path::Path::new("/run")));
                    let _ = std::fs::write(&m, b"");
                }
            }
            Ok(())
        }
        Backend::Nftables => {
            let script: String = containers.iter().map(|c| nft_add_script(pm, *c)).collect();
            nftables::apply(&script)
        }
    }
}

/// What removes a container's rules from one family's table (as listed)
/// and its note in `network`'s attachment chain; the mapping rules stay
/// when `keep_mappings` (another network still claims the same container
/// ID, and the rules cannot be told apart).
fn nft_forget(
    table: &nftables::ListedTable,
    network: &str,
    container_id: &str,
    keep_mappings: bool,
) -> Vec<NftDeletion> {
    let attachments = nft_attachments_chain(network);
    let own = nft_container_comment(container_id);
    let mut out = Vec::new();
    let mut delete = |rule: &nftables::ListedRule| {
        out.push(NftDeletion::Rule {
            chain: rule.chain.clone(),
            handle: rule.handle,
        });
    };
    let chains: &[&str] = if keep_mappings {
        &[]
    } else {
        &NFT_CONTAINER_CHAINS
    };
    for chain in chains {
        table
            .rules_of(chain)
            .filter(|r| r.comment == own)
            .for_each(&mut delete);
    }
    let mut notes = table.rules_of(&attachments).peekable();
    let had_notes = notes.peek().is_some();
    let mut others_left = false;
    for rule in notes {
        if rule.comment == own {
            delete(rule);
        } else {
            others_left = true;
        }
    }
    if had_notes && !others_left {
        out.push(NftDeletion::Chain(attachments));
    }
    out
}

/// Whether a network other than `network` notes the container commented
/// `comment`.
fn nft_claimed_elsewhere(table: &nftables::ListedTable, network: &str, comment: &str) -> bool {
    let own = nft_attachments_chain(network);
    table.rules.iter().any(|r| {
        r.chain.starts_with(NFT_ATTACHMENTS_PREFIX) && r.chain != own && r.comment == comment
    })
}

/// The batch that removes the container's rules of one address as ADD
/// wrote them, without reading the table: the entry rules of
/// `CNI-HOSTPORT-DNAT` and the container's chain. If the rules differ (the
/// runtime passed other mappings on DEL), iptables-restore refuses the
/// whole batch and nothing changes.
fn iptables_known_del_batch(pm: &PortMap<'_>, container: IpNet) -> Batch {
    let add = iptables_add_batch(pm, container, &shared_chains_present(pm));
    let entry = format!("-A {TOP_DNAT_CHAIN} ");
    let mut b = Batch::default();
    for line in add.lines.iter().filter(|l| l.starts_with(&entry)) {
        b.push(format!("-D{}", &line[2..]));
    }
    let chain = pm.dnat_chain();
    b.push(format!(":{chain} - [0:0]"));
    b.push(format!("-X {chain}"));
    b
}

/// Removes a container's mappings from both backends (where they work).
/// When the DEL carries the mappings and the container's addresses
/// (`known`), iptables needs no `iptables-save`. nftables: one listing and
/// one transaction per family, over netlink.
pub fn del(
    network: &str,
    container_id: &str,
    known: Option<(&PortMap<'_>, &[IpNet])>,
) -> Result<(), FirewallError> {
    if iptables::supported() {
        let dnat = chain_name_with_prefix(network, container_id, "DN-");
        let snat = chain_name_with_prefix(network, container_id, "SN-");
        for family in [Family::V4, Family::V6] {
            if !iptables::nat_chains_may_exist(family, &[&dnat, &snat]) {
                continue;
            }
            let mine = known.and_then(|(pm, containers)| {
                let c = containers.iter().find(|c| family_of(c.addr()) == family)?;
                Some((pm, *c))
            });
            if let Some((pm, container)) = mine {
                // Older references' SNAT chain is not in the known layout.
                if pm.applicable(container.addr().is_ipv6()).next().is_some()
                    && !iptables::nat_chains_may_exist(family, &[&snat])
                    && iptables_known_del_batch(pm, container)
                        .apply(family, "nat")
                        .is_ok()
                {
                    continue;
                }
            }
            let table = iptables::save(family, "nat")?;
            iptables_del_batch(network, container_id, &table).apply(family, "nat")?;
        }
    }
    if nftables::supported() {
        for family in ["ip", "ip6"] {
            // Listing and deleting under the lock: a concurrent DEL must not
            // see this attachment's note and keep the chain for it.
            nftables::locked(|| {
                let table = nftables::list_table(family, NFT_TABLE)?;
                let what = nft_forget(&table, network, container_id, false);
                nftables::delete(family, NFT_TABLE, &what)
            })?;
        }
    }
    Ok(())
}

/// Whether the container's mappings are in place (CHECK).
pub fn check(
    backend: Backend,
    pm: &PortMap<'_>,
    containers: &[IpNet],
) -> Result<(), FirewallError> {
    let missing = |what: String| Err(FirewallError::Config(what));
    match backend {
        Backend::Iptables => {
            for c in containers {
                let table = iptables::save(family_of(c.addr()), "nat")?;
                let chain = pm.dnat_chain();
                if !table.has_chain(&chain) {
                    return missing(format!("chain {chain} not found in iptables table nat"));
                }
                if !table
                    .rules_of(TOP_DNAT_CHAIN)
                    .any(|r| r.ends_with(&format!("-j {chain}")))
                {
                    return missing(format!("no rule in {TOP_DNAT_CHAIN} jumps to {chain}"));
                }
                let want = pm.applicable(c.addr().is_ipv6()).count();
                let dnats = table
                    .rules_of(&chain)
                    .filter(|r| r.contains("-j DNAT"))
                    .count();
                if dnats < want {
                    return missing(format!("missing DNAT rules in {chain}"));
                }
            }
            Ok(())
        }
        Backend::Nftables => {
            for c in containers {
                let family = if c.addr().is_ipv4() { "ip" } else { "ip6" };
                let want = pm.applicable(c.addr().is_ipv6()).count();
                let have = nftables::list_rules(family, NFT_TABLE, "hostports")?
                    .iter()
                    .filter(|r| r.comment == nft_container_comment(pm.container_id))
                    .count();
                if have < want {
                    return missing("missing hostport rules in \"hostports\" chain".into());
                }
            }
            Ok(())
        }
    }
}

/// Removes the mappings of attachments of `network` whose container is
/// not in `valid`, on both backends.
pub fn gc(network: &str, valid: &[String]) -> Result<(), FirewallError> {
    if iptables::supported() {
        iptables_gc(network, valid)?;
    }
    if nftables::supported() {
        for family in ["ip", "ip6"] {
            nftables::locked(|| nft_gc(family, network, valid))?;
        }
    }
    Ok(())
}

/// The nftables side of [`gc`] for one family.
fn nft_gc(family: &str, network: &str, valid: &[String]) -> Result<(), FirewallError> {
    let attachments = nft_attachments_chain(network);
    let mut what = Vec::new();
    let table = nftables::list_table(family, NFT_TABLE)?;
    let stale: Vec<&str> = table
        .rules_of(&attachments)
        .map(|r| r.comment.as_str())
        .filter(|c| !valid.iter().any(|v| nft_container_comment(v) == *c))
        .collect();
    let mut forgotten = table.clone();
    for id in stale {
        let shared = nft_claimed_elsewhere(&table, network, id);
        what.extend(nft_forget(&forgotten, network, id, shared));
        // Later ids must not delete the same rules again.
        forgotten.rules.retain(|r| r.comment != id);
    }
    nftables::delete(family, NFT_TABLE, &what)
}

/// The iptables side of [`gc`]: the DNAT entry rules' comments name the
/// network and the container (cut for long IDs, so compared whole).
fn iptables_gc(network: &str, valid: &[String]) -> Result<(), FirewallError> {
    let keep: Vec<String> = valid
        .iter()
        .map(|id| iptables::quote(&dnat_comment(network, id)))
        .collect();
    let prefix = iptables::quote(&format!("dnat name: \"{network}\" id: "));
    let prefix = prefix.trim_end_matches('"');
    for family in [Family::V4, Family::V6] {
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
                .extend(iptables_remove_entries(&table, TOP_DNAT_CHAIN, chain, Some(c)).lines);
        }
        batch.apply(family, "nat")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps() -> Vec<Mapping> {
        vec![
            Mapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None,
            },
            Mapping {
                host_port: 8053,
                container_port: 53,
                protocol: "udp".into(),
                host_ip: Some("203.0.113.1".parse().unwrap()),
            },
        ]
    }

    static NO_CONDITIONS: Conditions = Conditions::none();

    fn pm(m: &[Mapping]) -> PortMap<'_> {
        PortMap {
            network: "net",
            container_id: "c1",
            mappings: m,
            snat: true,
            mark_bit: 13,
            external_set_mark_chain: None,
            masq_all: false,
            conditions_v4: &NO_CONDITIONS,
            conditions_v6: &NO_CONDITIONS,
        }
    }

    #[test]
    fn iptables_layout_matches_the_reference() {
        let m = maps();
        let b = iptables_add_batch(&pm(&m), "10.88.0.5/16".parse().unwrap(), &Table::default());
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
        let b6 = iptables_add_batch(&pm(&m), "fd00::5/64".parse().unwrap(), &Table::default());
        assert!(b6
            .lines
            .iter()
            .any(|l| l.contains("--to-destination [fd00::5]:80")));
        assert!(!b6.lines.iter().any(|l| l.contains("8053")));
    }

    #[test]
    fn shared_chains_are_not_recreated() {
        let m = maps();
        let first = iptables_add_batch(&pm(&m), "10.88.0.5/16".parse().unwrap(), &Table::default());
        let mut text = String::from(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
        );
        for l in &first.lines {
            text.push_str(&l.replace("-I POSTROUTING 1", "-A POSTROUTING"));
            text.push('\n');
        }
        let table = Table::parse(&text);
        let again = iptables_add_batch(
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
        let b = iptables_del_batch("relnet", "x1", &table);
        assert_eq!(b.lines, [iptables::delete_line(&entry("relnet", "x1"))]);
        let alone = Table::parse(&format!(
            ":{TOP_DNAT_CHAIN} - [0:0]\n:{dn} - [0:0]\n{}\n",
            entry("relne", "tx1")
        ));
        assert_eq!(
            iptables_del_batch("relne", "tx1", &alone).lines.last(),
            Some(&format!("-X {dn}"))
        );
    }

    #[test]
    fn nft_rules_are_local_only() {
        let m = maps();
        let s = nft_add_script(&pm(&m), "10.88.0.5/16".parse().unwrap());
        assert!(s.contains(
            "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all"
        ));
        assert!(s.contains(
            "add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.88.0.5:80 comment \"c1\""
        ));
        assert!(s.contains("hostports ip daddr 203.0.113.1 udp dport 8053 dnat to 10.88.0.5:53"));
        assert!(s.contains("masquerading ip saddr 127.0.0.1 ip daddr 10.88.0.5 masquerade"));
        let cond = Conditions::nftables("conditionsV4", &["ip saddr 192.0.2.0/24".into()]).unwrap();
        let s = nft_add_script(
            &PortMap {
                conditions_v4: &cond,
                ..pm(&m)
            },
            "10.88.0.5/16".parse().unwrap(),
        );
        assert!(
            s.contains(
                "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all"
            ),
            "the shared entry rules carry no network's conditions"
        );
        assert!(s.contains("hostports ip saddr 192.0.2.0/24 tcp dport 8080 dnat to 10.88.0.5:80"));
    }
}
