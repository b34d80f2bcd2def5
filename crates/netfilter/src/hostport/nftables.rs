//! portmap's nftables layout, as the reference's: table `ip`/`ip6
//! cni_hostport`; `prerouting`/`output` jump to `hostports_all` only for
//! local destinations (`fib daddr type local`), DNAT rules in `hostports`
//! (each carrying its network's `conditionsV4`/`V6`, as the entry rules are
//! shared by all networks) and masquerading in `masquerading`, every
//! per-container rule commented with the container ID. The reference's
//! comment does not name the network, so rcni also notes each attachment as
//! a no-op rule (commented with the container ID) in a chain of the
//! network's own, `rcni_attachments_<hash>`, that nothing jumps to: it lets
//! GC, which works per network, find the network's attachments in the same
//! place and lifetime as their rules.

use super::{ip_port, PortMap};
use crate::error::FirewallError;
use crate::nft::{self, quote, NftDeletion};
use crate::rule_names::{hash_with_prefix, nft_container_comment};
use crate::Family;
use ipnet::IpNet;

const TABLE: &str = "cni_hostport";
/// The reference's chains that hold per-container rules.
const CONTAINER_CHAINS: [&str; 3] = ["hostports", "hostip_hostports", "masquerading"];
const ATTACHMENTS_PREFIX: &str = "rcni_attachments_";

/// The chain in which rcni notes the network's nftables attachments.
fn attachments_chain(network: &str) -> String {
    hash_with_prefix(ATTACHMENTS_PREFIX.len() + 16, ATTACHMENTS_PREFIX, network)
}

/// The nft script for one container address.
pub(super) fn add_script(pm: &PortMap<'_>, container: IpNet) -> String {
    let family = Family::of(container.addr());
    let ipx = family.nft_keyword();
    let t = format!("{ipx} {TABLE}");
    // The entry rules are shared by every network and rewritten by each
    // ADD, so a network's conditions go on its own DNAT rules.
    let cond = match pm.conditions(family).as_str() {
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
    let attachments = attachments_chain(pm.network);
    s.push_str(&format!("add chain {t} {attachments}\n"));
    s.push_str(&format!("add rule {t} {attachments} return comment {c}\n"));
    for m in pm.applicable(family) {
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
        let src = pm.masq_source(family, container.addr().to_string());
        s.push_str(&format!(
            "add rule {t} masquerading {ipx} saddr {src} {ipx} daddr {} masquerade comment {c}\n",
            container.addr()
        ));
        if family == Family::V4 && !pm.masq_all {
            s.push_str(&format!(
                "add rule {t} masquerading ip saddr 127.0.0.1 ip daddr {} masquerade comment {c}\n",
                container.addr()
            ));
        }
    }
    s
}

/// Sets up the mappings for the container's addresses: one `nft -f -` in
/// all.
pub(super) fn add(pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    let script: String = containers.iter().map(|c| add_script(pm, *c)).collect();
    nft::apply(&script)
}

/// What removes a container's rules from one family's table (as listed)
/// and its note in `network`'s attachment chain; the mapping rules stay
/// when `keep_mappings` (another network still claims the same container
/// ID, and the rules cannot be told apart).
fn forget(
    table: &nft::ListedTable,
    network: &str,
    container_id: &str,
    keep_mappings: bool,
) -> Vec<NftDeletion> {
    let attachments = attachments_chain(network);
    let own = nft_container_comment(container_id);
    let mut out = Vec::new();
    let mut delete = |rule: &nft::ListedRule| {
        out.push(NftDeletion::Rule {
            chain: rule.chain.clone(),
            handle: rule.handle,
        });
    };
    let chains: &[&str] = if keep_mappings {
        &[]
    } else {
        &CONTAINER_CHAINS
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
fn claimed_elsewhere(table: &nft::ListedTable, network: &str, comment: &str) -> bool {
    let own = attachments_chain(network);
    table
        .rules
        .iter()
        .any(|r| r.chain.starts_with(ATTACHMENTS_PREFIX) && r.chain != own && r.comment == comment)
}

/// Removes a container's mappings of `network`: one listing and one
/// transaction per family, over netlink.
pub(super) fn del(network: &str, container_id: &str) -> Result<(), FirewallError> {
    for family in Family::BOTH {
        // Listing and deleting under the lock: a concurrent DEL must not
        // see this attachment's note and keep the chain for it.
        nft::locked(|| {
            let table = nft::list_table(family.into(), TABLE)?;
            let what = forget(&table, network, container_id, false);
            nft::delete(family.into(), TABLE, &what)
        })?;
    }
    Ok(())
}

/// Whether the container's mappings are in place (CHECK).
pub(super) fn check(pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    for c in containers {
        let family = Family::of(c.addr());
        let want = pm.applicable(family).count();
        let have = nft::list_rules(family.into(), TABLE, "hostports")?
            .iter()
            .filter(|r| r.comment == nft_container_comment(pm.container_id))
            .count();
        if have < want {
            return Err(FirewallError::NotInPlace(
                "missing hostport rules in \"hostports\" chain".into(),
            ));
        }
    }
    Ok(())
}

/// Removes the mappings of attachments of `network` whose container is
/// not in `valid`.
pub(super) fn gc(network: &str, valid: &[String]) -> Result<(), FirewallError> {
    for family in Family::BOTH {
        nft::locked(|| gc_family(family, network, valid))?;
    }
    Ok(())
}

/// [`gc`] for one family.
fn gc_family(family: Family, network: &str, valid: &[String]) -> Result<(), FirewallError> {
    let attachments = attachments_chain(network);
    let mut what = Vec::new();
    let table = nft::list_table(family.into(), TABLE)?;
    let stale: Vec<&str> = table
        .rules_of(&attachments)
        .map(|r| r.comment.as_str())
        .filter(|c| !valid.iter().any(|v| nft_container_comment(v) == *c))
        .collect();
    let mut forgotten = table.clone();
    for id in stale {
        let shared = claimed_elsewhere(&table, network, id);
        what.extend(forget(&forgotten, network, id, shared));
        // Later ids must not delete the same rules again.
        forgotten.rules.retain(|r| r.comment != id);
    }
    nft::delete(family.into(), TABLE, &what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostport::tests::{maps, pm};
    use crate::script::Conditions;

    #[test]
    fn nft_rules_are_local_only() {
        let m = maps();
        let s = add_script(&pm(&m), "10.88.0.5/16".parse().unwrap());
        assert!(s.contains(
            "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all"
        ));
        assert!(s.contains(
            "add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.88.0.5:80 comment \"c1\""
        ));
        assert!(s.contains("hostports ip daddr 203.0.113.1 udp dport 8053 dnat to 10.88.0.5:53"));
        assert!(s.contains("masquerading ip saddr 127.0.0.1 ip daddr 10.88.0.5 masquerade"));
        let cond = Conditions::nftables("conditionsV4", &["ip saddr 192.0.2.0/24".into()]).unwrap();
        let s = add_script(
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
