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

use super::PortMap;
use crate::error::FirewallError;
use crate::nft::{
    self, Action, AddrField, BaseChain, Change, Hook, Match, NfFamily, NftDeletion, TableChange,
    Verdict, L4,
};
use crate::rule_names::{hash_with_prefix, nft_container_comment};
use crate::Family;
use ipnet::IpNet;
use std::net::IpAddr;

const TABLE: &str = "cni_hostport";
/// The reference's chains that hold per-container rules.
const CONTAINER_CHAINS: [&str; 3] = ["hostports", "hostip_hostports", "masquerading"];
const ATTACHMENTS_PREFIX: &str = "rcni_attachments_";

/// The chain in which rcni notes the network's nftables attachments.
fn attachments_chain(network: &str) -> String {
    hash_with_prefix(ATTACHMENTS_PREFIX.len() + 16, ATTACHMENTS_PREFIX, network)
}

/// The changes for one container address: the shared chains and entry
/// rules (rewritten by each ADD), the attachment's note and its rules.
pub(super) fn add_changes<'a>(
    pm: &'a PortMap<'_>,
    container: IpNet,
) -> Result<Vec<TableChange<'a>>, FirewallError> {
    let family = Family::of(container.addr());
    let nf = NfFamily::from(family);
    let mut out: Vec<Change<'a>> = vec![Change::Table(Some("CNI portmap plugin"))];
    for chain in ["hostports", "hostip_hostports", "hostports_all"] {
        out.push(Change::Chain(chain.into(), None, None));
    }
    out.push(Change::Flush("hostports_all".into()));
    for to in ["hostip_hostports", "hostports"] {
        out.push(Change::append("hostports_all", vec![], jump(to), None));
    }
    for (chain, hook) in [("prerouting", Hook::Prerouting), ("output", Hook::Output)] {
        out.push(Change::Chain(
            chain.into(),
            Some(nat_chain(hook, DSTNAT)),
            None,
        ));
        out.push(Change::Flush(chain.into()));
        out.push(Change::append(
            chain,
            vec![Match::LocalDestination],
            jump("hostports_all"),
            None,
        ));
    }
    if pm.snat {
        out.push(Change::Chain(
            "masquerading".into(),
            Some(nat_chain(Hook::Postrouting, SRCNAT)),
            None,
        ));
    }
    let comment = Some(nft_container_comment(pm.container_id));
    let attachments = attachments_chain(pm.network);
    out.push(Change::Chain(attachments.clone(), None, None));
    out.push(Change::append(
        &attachments,
        vec![],
        Action::Verdict(Verdict::Return),
        comment.clone(),
    ));
    // The entry rules are shared by every network, so a network's
    // conditions go on its own DNAT rules.
    let conditions = pm.conditions(family).as_str();
    for m in pm.applicable(family) {
        let mut matches = Vec::new();
        if !conditions.is_empty() {
            matches.push(Match::Text(conditions));
        }
        if let Some(ip) = m.host_ip.filter(|ip| !ip.is_unspecified()) {
            matches.push(addr(AddrField::Daddr, IpNet::from(ip)));
        }
        matches.push(Match::Dport(L4::named(&m.protocol)?, m.host_port));
        out.push(Change::append(
            "hostports",
            matches,
            Action::Dnat(container.addr(), m.container_port),
            comment.clone(),
        ));
    }
    if pm.snat {
        let own = IpNet::from(container.addr());
        let source = pm.masq_source(family, own);
        let mut sources = vec![source];
        if family == Family::V4 && !pm.masq_all {
            sources.push(IpNet::from(IpAddr::from([127, 0, 0, 1])));
        }
        for source in sources {
            out.push(Change::append(
                "masquerading",
                vec![addr(AddrField::Saddr, source), addr(AddrField::Daddr, own)],
                Action::Masquerade,
                comment.clone(),
            ));
        }
    }
    Ok(out.into_iter().map(|c| (nf, TABLE, c)).collect())
}

/// nft's `dstnat` and `srcnat` priorities.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

fn nat_chain(hook: Hook, priority: i32) -> BaseChain {
    BaseChain {
        kind: "nat",
        hook,
        priority,
        policy_accept: false,
    }
}

fn jump(chain: &str) -> Action {
    Action::Verdict(Verdict::Jump(chain.into()))
}

fn addr<'a>(field: AddrField, net: IpNet) -> Match<'a> {
    Match::Addr {
        field,
        net,
        equal: true,
    }
}

/// Sets up the mappings for the container's addresses: one transaction in
/// all (over netlink, or one `nft -f -` when a network has conditions).
pub(super) fn add(pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    let mut changes = Vec::new();
    for c in containers {
        changes.extend(add_changes(pm, *c)?);
    }
    nft::apply(&changes)
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
    use crate::hostport::Mapping;
    use crate::nft::tests::assert_same_in_kernel;
    use crate::script::Conditions;

    fn script(pm: &PortMap<'_>, container: &str) -> String {
        nft::script(&add_changes(pm, container.parse().unwrap()).unwrap())
    }

    #[test]
    fn nft_rules_are_local_only() {
        let m = maps();
        let s = script(&pm(&m), "10.88.0.5/16");
        assert!(s.contains(
            "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all"
        ));
        assert!(s.contains(
            "add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.88.0.5:80 comment \"c1\""
        ));
        assert!(s.contains("hostports ip daddr 203.0.113.1 udp dport 8053 dnat to 10.88.0.5:53"));
        assert!(s.contains("masquerading ip saddr 127.0.0.1 ip daddr 10.88.0.5 masquerade"));
        let cond = Conditions::nftables("conditionsV4", &["ip saddr 192.0.2.0/24".into()]).unwrap();
        let with_conditions = PortMap {
            conditions_v4: &cond,
            ..pm(&m)
        };
        let changes = add_changes(&with_conditions, "10.88.0.5/16".parse().unwrap()).unwrap();
        let s = nft::script(&changes);
        assert!(
            s.contains(
                "add rule ip cni_hostport prerouting fib daddr type local jump hostports_all"
            ),
            "the shared entry rules carry no network's conditions"
        );
        assert!(s.contains("hostports ip saddr 192.0.2.0/24 tcp dport 8080 dnat to 10.88.0.5:80"));
    }

    /// Every shape of portmap's rules reads back from the kernel as the
    /// rules `nft -f` makes of the same script: v4 and v6, a host IP or
    /// none, tcp, udp and sctp, snat or not, masqAll.
    #[test]
    fn netlink_rules_are_the_ones_nft_makes() {
        let mut m = maps();
        m.push(Mapping {
            host_port: 9000,
            container_port: 9000,
            protocol: "sctp".into(),
            host_ip: None,
        });
        m.push(Mapping {
            host_port: 8443,
            container_port: 443,
            protocol: "tcp".into(),
            host_ip: Some("fd00::1".parse().unwrap()),
        });
        for (snat, masq_all) in [(true, false), (true, true), (false, false)] {
            let p = PortMap {
                snat,
                masq_all,
                ..pm(&m)
            };
            let mut changes = add_changes(&p, "10.88.0.5/16".parse().unwrap()).unwrap();
            changes.extend(add_changes(&p, "fd00:88::5/64".parse().unwrap()).unwrap());
            assert_same_in_kernel(&changes);
        }
    }

    /// A second container's ADD writes the shared chains and entry rules
    /// again: the kernel ends up as with nft, and over netlink nothing of
    /// the first is touched.
    #[test]
    fn a_second_add_only_adds() {
        let m = maps();
        let one = pm(&m);
        let first = add_changes(&one, "10.88.0.5/16".parse().unwrap()).unwrap();
        let other = PortMap {
            container_id: "c2",
            ..pm(&m)
        };
        let second = add_changes(&other, "10.88.0.6/16".parse().unwrap()).unwrap();
        nft::tests::assert_same_in_kernel_after(&first, &second);
    }
}
