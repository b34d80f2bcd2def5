//! rcni's nftables layout for the firewall plugin (the reference has none),
//! with the iptables layout's semantics, in table `inet cni_firewall`:
//! - `forward` (filter hook forward, priority filter, policy accept)
//!   jumps to `isolation-stage-1`, then to `cni-forward`;
//! - `cni-forward` jumps first to the admin chain (`CNI-ADMIN` unless
//!   `iptablesAdminChainName` says otherwise; created empty, never
//!   flushed, so a user's rules there survive), then accepts per address
//!   `daddr ip ct state established,related` and `saddr ip`, each rule
//!   commented as ipMasq's nftables rules are
//!   (`<h16(net)>-<h16(ifname:id)>, net: ..., if: ..., id: ...`) so that
//!   DEL needs no addresses and GC finds a network's attachments;
//! - `isolation-stage-1` sends traffic from a policy's bridge out through
//!   another interface to `isolation-stage-2`, which drops it when that
//!   interface is another policy's bridge; `isolated` also drops from the
//!   bridge back to itself. Those rules are per bridge, commented with the
//!   bridge, and stay, as in the reference.
//!
//! As with any nftables base chain, an accept here does not override a
//! drop in another table's forward hook (iptables' `FORWARD` policy, say);
//! the drops here are final.

use super::{Attachment, Isolation, Setup};
use crate::error::FirewallError;
use crate::nft::{
    self, Action, AddrField, BaseChain, Change, Hook, ListedTable, Match, NfFamily, NftDeletion,
    TableChange, Verdict,
};
use crate::rule_names::{nft_attachment_comment, nft_attachment_prefix, nft_network_prefix};
use crate::script::ChainName;
use ipnet::IpNet;

/// rcni's table for the firewall plugin (family `inet`).
pub const TABLE: &str = "cni_firewall";
const FORWARD: &str = "cni-forward";
const STAGE_1: &str = "isolation-stage-1";
const STAGE_2: &str = "isolation-stage-2";
/// The chains of the layout, which an admin chain may not be.
const OWN_CHAINS: [&str; 4] = ["forward", FORWARD, STAGE_1, STAGE_2];

/// The admin chain's name as an nft identifier: nft reads no quoted chain
/// names, and a bare one must start with a letter or `_`.
fn admin_name(admin: &ChainName) -> Result<&str, FirewallError> {
    let name = admin.as_str();
    if OWN_CHAINS.contains(&name) {
        return Err(FirewallError::Config(format!(
            "iptablesAdminChainName: {name:?} is a chain of the nftables layout"
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(FirewallError::Config(format!(
            "iptablesAdminChainName: {name:?} must start with a letter or '_' on nftables"
        )));
    }
    Ok(name)
}

fn attachment_comment(a: &Attachment<'_>) -> String {
    nft_attachment_comment(a.network, a.ifname, a.container_id)
}

/// The isolation rules of a bridge, as (chain, comment, matches, verdict).
fn isolation_rules(i: &Isolation<'_>) -> Vec<(&'static str, String, Vec<Match<'static>>, Verdict)> {
    let name = i.bridge.as_str();
    let port = |output, equal| Match::Ifname {
        output,
        name: name.into(),
        equal,
    };
    let mut rules = vec![(
        STAGE_1,
        format!("bridge {name}: to stage 2"),
        vec![port(false, true), port(true, false)],
        Verdict::Jump(STAGE_2.into()),
    )];
    if i.isolated {
        rules.push((
            STAGE_1,
            format!("bridge {name}: isolated"),
            vec![port(false, true), port(true, true)],
            Verdict::Drop,
        ));
    }
    rules.push((
        STAGE_2,
        format!("bridge {name}: other bridges"),
        vec![port(true, true)],
        Verdict::Drop,
    ));
    rules
}

/// The transaction that brings the table (as listed) to what `s` needs;
/// an attachment's earlier rules are replaced.
pub(super) fn add_changes(
    listed: &ListedTable,
    s: &Setup<'_>,
) -> Result<Vec<TableChange<'static>>, FirewallError> {
    let rule = |chain: &str, first, matches, verdict, comment: Option<String>| Change::Rule {
        chain: chain.into(),
        first,
        matches,
        action: Action::Verdict(verdict),
        comment,
    };
    let mut out = vec![
        Change::Table(None),
        Change::Chain(
            "forward".into(),
            Some(BaseChain {
                kind: "filter",
                hook: Hook::Forward,
                priority: 0,
                policy_accept: true,
            }),
            None,
        ),
    ];
    for chain in [STAGE_1, STAGE_2, FORWARD] {
        out.push(Change::Chain(chain.into(), None, None));
    }
    out.push(Change::Flush("forward".into()));
    for to in [STAGE_1, FORWARD] {
        out.push(rule(
            "forward",
            false,
            vec![],
            Verdict::Jump(to.into()),
            None,
        ));
    }
    if let Some(admin) = s.admin_chain {
        let admin = admin_name(admin)?;
        out.push(Change::Chain(admin.into(), None, None));
        if !listed
            .rules_of(FORWARD)
            .any(|r| r.jumps_to.as_deref() == Some(admin))
        {
            out.push(rule(
                FORWARD,
                true,
                vec![],
                Verdict::Jump(admin.into()),
                Some("admin overrides".into()),
            ));
        }
        let comment = attachment_comment(&s.attachment);
        for old in listed.rules_of(FORWARD).filter(|r| r.comment == comment) {
            out.push(Change::Delete {
                chain: FORWARD.into(),
                handle: old.handle,
            });
        }
        for ip in s.ips {
            let addr = |field| Match::Addr {
                field,
                net: IpNet::from(*ip),
                equal: true,
            };
            out.push(rule(
                FORWARD,
                false,
                vec![addr(AddrField::Daddr), Match::EstablishedOrRelated],
                Verdict::Accept,
                Some(comment.clone()),
            ));
            out.push(rule(
                FORWARD,
                false,
                vec![addr(AddrField::Saddr)],
                Verdict::Accept,
                Some(comment.clone()),
            ));
        }
    }
    if let Some(i) = &s.isolation {
        for (chain, comment, matches, verdict) in isolation_rules(i) {
            if !listed.rules_of(chain).any(|r| r.comment == comment) {
                out.push(rule(
                    chain,
                    chain == STAGE_1,
                    matches,
                    verdict,
                    Some(comment),
                ));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|c| (NfFamily::Inet, TABLE, c))
        .collect())
}

fn list() -> Result<ListedTable, FirewallError> {
    if nft::table_may_exist(NfFamily::Inet, TABLE) {
        nft::list_table(NfFamily::Inet, TABLE)
    } else {
        Ok(ListedTable::default())
    }
}

/// Sets up the rules: one transaction, planned from one listing, both under
/// the namespace's nftables lock.
pub(super) fn add(s: &Setup<'_>) -> Result<(), FirewallError> {
    nft::locked(|| nft::apply(&add_changes(&list()?, s)?))
}

/// Deletes the accept rules whose comment passes `stale` (one transaction).
fn delete_where(stale: impl Fn(&str) -> bool) -> Result<(), FirewallError> {
    if !nft::table_may_exist(NfFamily::Inet, TABLE) {
        return Ok(());
    }
    nft::locked(|| {
        let what: Vec<NftDeletion> = nft::list_rules(NfFamily::Inet, TABLE, FORWARD)?
            .into_iter()
            .filter(|r| stale(&r.comment))
            .map(|r| NftDeletion::Rule {
                chain: FORWARD.to_string(),
                handle: r.handle,
            })
            .collect();
        nft::delete(NfFamily::Inet, TABLE, &what)
    })
}

pub(super) fn del(a: &Attachment<'_>) -> Result<(), FirewallError> {
    let prefix = nft_attachment_prefix(a.network, a.ifname, a.container_id);
    delete_where(|c| c.starts_with(&prefix))
}

pub(super) fn gc(network: &str, valid: &[(String, String)]) -> Result<(), FirewallError> {
    let keep: Vec<String> = valid
        .iter()
        .map(|(id, ifname)| {
            attachment_comment(&Attachment {
                network,
                container_id: id,
                ifname,
            })
        })
        .collect();
    let prefix = nft_network_prefix(network);
    delete_where(|c| c.starts_with(&prefix) && !keep.iter().any(|k| k == c))
}

/// The first thing CHECK misses: the jumps to `cni-forward` and the admin
/// chain, two accept rules per address.
pub(super) fn missing(
    listed: &ListedTable,
    s: &Setup<'_>,
) -> Result<Option<String>, FirewallError> {
    let Some(admin) = s.admin_chain else {
        return Ok(None);
    };
    let admin = admin_name(admin)?;
    let jumps = |chain: &str, to: &str| {
        listed
            .rules_of(chain)
            .any(|r| r.jumps_to.as_deref() == Some(to))
    };
    if !jumps("forward", FORWARD) {
        return Ok(Some(format!("no jump from forward to {FORWARD}")));
    }
    if !jumps(FORWARD, admin) {
        return Ok(Some(format!("no jump from {FORWARD} to {admin}")));
    }
    let comment = attachment_comment(&s.attachment);
    let found = listed
        .rules_of(FORWARD)
        .filter(|r| r.comment == comment)
        .count();
    if found != 2 * s.ips.len() {
        return Ok(Some(format!(
            "expected {} accept rules commented {comment:?}, found {found}",
            2 * s.ips.len()
        )));
    }
    Ok(None)
}

pub(super) fn check(s: &Setup<'_>) -> Result<(), FirewallError> {
    match missing(&list()?, s)? {
        Some(what) => Err(FirewallError::NotInPlace(what)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::setup;
    use crate::nft::ListedRule;
    use crate::script::InterfaceName;
    use std::net::IpAddr;

    fn script(listed: &ListedTable, s: &Setup<'_>) -> Result<String, FirewallError> {
        Ok(nft::script(&add_changes(listed, s)?))
    }

    #[test]
    fn script_replaces_the_attachment_and_keeps_the_admin_chain() {
        let admin = ChainName::new("f", "CNI-ADMIN").unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let s = setup(&ips, &admin, None);
        let fresh = script(&ListedTable::default(), &s).unwrap();
        assert!(fresh.contains("add chain inet cni_firewall CNI-ADMIN\n"));
        assert!(!fresh.contains("flush chain inet cni_firewall CNI-ADMIN"));
        assert!(fresh.contains("insert rule inet cni_firewall cni-forward jump CNI-ADMIN comment"));
        assert!(fresh.contains("add rule inet cni_firewall cni-forward ip daddr 10.0.0.2 ct state established,related accept comment"));
        assert!(fresh
            .contains("add rule inet cni_firewall cni-forward ip6 saddr fd00::2 accept comment"));
        let comment = attachment_comment(&s.attachment);
        let listed = ListedTable {
            rules: vec![
                ListedRule {
                    chain: FORWARD.into(),
                    handle: 4,
                    comment: "admin overrides".into(),
                    jumps_to: Some("CNI-ADMIN".into()),
                    source: None,
                },
                ListedRule {
                    chain: FORWARD.into(),
                    handle: 7,
                    comment,
                    jumps_to: None,
                    source: None,
                },
            ],
        };
        let again = script(&listed, &s).unwrap();
        assert!(!again.contains("insert rule inet cni_firewall cni-forward jump"));
        assert!(again.contains("delete rule inet cni_firewall cni-forward handle 7\n"));
        assert!(!again.contains("handle 4"));
        let bad = ChainName::new("f", "forward").unwrap();
        assert!(add_changes(&listed, &setup(&ips, &bad, None)).is_err());
        let digit = ChainName::new("f", "1ADMIN").unwrap();
        assert!(add_changes(&listed, &setup(&ips, &digit, None)).is_err());
    }

    #[test]
    fn isolation_rules_are_added_once_per_bridge() {
        let admin = ChainName::new("f", "CNI-ADMIN").unwrap();
        let br = InterfaceName::new("f", "cni0").unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
        let iso = Isolation {
            bridge: &br,
            isolated: false,
        };
        let s = setup(&ips, &admin, Some(iso));
        let fresh = script(&ListedTable::default(), &s).unwrap();
        assert!(fresh.contains("insert rule inet cni_firewall isolation-stage-1 iifname \"cni0\" oifname != \"cni0\" jump isolation-stage-2 comment \"bridge cni0: to stage 2\""));
        assert!(fresh.contains("add rule inet cni_firewall isolation-stage-2 oifname \"cni0\" drop comment \"bridge cni0: other bridges\""));
        assert!(!fresh.contains("isolated"));
        let listed = ListedTable {
            rules: isolation_rules(&iso)
                .into_iter()
                .enumerate()
                .map(|(i, (chain, comment, _, _))| ListedRule {
                    chain: chain.into(),
                    handle: i as u64,
                    comment,
                    jumps_to: None,
                    source: None,
                })
                .collect(),
        };
        assert!(!script(&listed, &s).unwrap().contains("iifname"));
    }

    /// The layout reads back from the kernel as the rules `nft -f` makes
    /// of the same script: v4 and v6 accept rules, the admin chain, and
    /// both isolation policies.
    #[test]
    fn netlink_rules_are_the_ones_nft_makes() {
        let admin = ChainName::new("f", "CNI-ADMIN").unwrap();
        let br = InterfaceName::new("f", "cni0").unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        for isolated in [false, true] {
            let iso = Isolation {
                bridge: &br,
                isolated,
            };
            let s = setup(&ips, &admin, Some(iso));
            nft::tests::assert_same_in_kernel(&add_changes(&ListedTable::default(), &s).unwrap());
        }
    }
}
