//! The reference's iptables layout, in the `filter` table of each family:
//! `FORWARD` jumps first to `CNI-FORWARD`, which jumps first to the admin
//! chain (`CNI-ADMIN`, the user's, never flushed), then accepts per address
//! `-d ip -m conntrack --ctstate RELATED,ESTABLISHED` and `-s ip`. Isolation
//! is Docker's `CNI-ISOLATION-STAGE-1/2`, jumped to before `CNI-FORWARD`.
//! The lines are written as `iptables-save` prints them, so what is in
//! place is found by comparing text; ADD and DEL read the table once and
//! write one `iptables-restore` batch.

use super::{host_cidr, Isolation, Setup};
use crate::error::FirewallError;
use crate::iptables::{delete_line, quote, save, Batch, Table};
use crate::Family;
use std::net::IpAddr;

const TABLE: &str = "filter";
const FORWARD: &str = "CNI-FORWARD";
const STAGE_1: &str = "CNI-ISOLATION-STAGE-1";
const STAGE_2: &str = "CNI-ISOLATION-STAGE-2";

// reference text: the comments identify the rules to either implementation
const FORWARD_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";

fn policy_comment(i: &Isolation<'_>) -> String {
    quote(&format!(
        "CNI firewall plugin rules (ingressPolicy: {})",
        i.policy_name()
    ))
}

fn forward_jump() -> String {
    format!(
        "-A FORWARD -m comment --comment {} -j {FORWARD}",
        quote(FORWARD_COMMENT)
    )
}

fn admin_jump(admin: &str) -> String {
    format!(
        "-A {FORWARD} -m comment --comment {} -j {admin}",
        quote(ADMIN_COMMENT)
    )
}

fn isolation_jump(quoted_comment: &str) -> String {
    format!("-A FORWARD -m comment --comment {quoted_comment} -j {STAGE_1}")
}

fn isolation_return(chain: &str, quoted_comment: &str) -> String {
    format!("-A {chain} -m comment --comment {quoted_comment} -j RETURN")
}

/// The comments the reference has given the isolation rules that bridges
/// share (the jump, the returns, stage 2's drop): today's, and, before
/// v1.2, the ingress policy of the ADD that made them. Any one of them
/// means the rule is in place.
const SHARED_COMMENTS: [&str; 3] = [
    ISOLATION_COMMENT,
    "CNI firewall plugin rules (ingressPolicy: same-bridge)",
    "CNI firewall plugin rules (ingressPolicy: isolated)",
];

/// The shared isolation rule `make` gives for a comment, as in place
/// (`Ok`, in whichever comment) or as it is to be written (`Err`).
fn shared_rule(table: &Table, make: impl Fn(&str) -> String) -> Result<String, String> {
    SHARED_COMMENTS
        .iter()
        .map(|c| make(&quote(c)))
        .find(|r| has(table, r))
        .ok_or_else(|| make(&quote(ISOLATION_COMMENT)))
}

/// The two accept rules of one address.
fn accept_rules(ip: &IpAddr) -> [String; 2] {
    let cidr = host_cidr(ip);
    [
        format!("-A {FORWARD} -d {cidr} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        format!("-A {FORWARD} -s {cidr} -j ACCEPT"),
    ]
}

/// `-A CHAIN rest` as `-I CHAIN 1 rest`.
fn insert_first(rule: &str) -> String {
    let rest = &rule[3..];
    match rest.split_once(' ') {
        Some((chain, spec)) => format!("-I {chain} 1 {spec}"),
        None => format!("-I {rest} 1"),
    }
}

fn has(table: &Table, rule: &str) -> bool {
    table.rules.iter().any(|r| r == rule)
}

fn ips_of(ips: &[IpAddr], family: Family) -> Vec<&IpAddr> {
    ips.iter().filter(|ip| Family::of(**ip) == family).collect()
}

/// The batch that brings `table` (one family's) to what `s` needs.
pub(super) fn add_batch(table: &Table, s: &Setup<'_>, family: Family) -> Batch {
    let mut b = Batch::default();
    let ips = ips_of(s.ips, family);
    let new_chain = |b: &mut Batch, chain: &str| {
        if !table.has_chain(chain) {
            b.push(format!(":{chain} - [0:0]"));
        }
    };
    let mut forward_jump_added = false;
    if let Some(admin) = s.admin_chain {
        new_chain(&mut b, FORWARD);
        new_chain(&mut b, admin.as_str());
        if !has(table, &forward_jump()) {
            b.push(insert_first(&forward_jump()));
            forward_jump_added = true;
        }
        let admin_jump = admin_jump(admin.as_str());
        if !has(table, &admin_jump) {
            b.push(insert_first(&admin_jump));
        }
        for ip in &ips {
            for rule in accept_rules(ip) {
                if !has(table, &rule) {
                    b.push(rule);
                }
            }
        }
    }
    if let Some(i) = &s.isolation {
        new_chain(&mut b, STAGE_1);
        new_chain(&mut b, STAGE_2);
        match shared_rule(table, isolation_jump) {
            // The isolation must come before the accept rules.
            Ok(jump) if forward_jump_added => {
                b.push(delete_line(&jump));
                b.push(insert_first(&jump));
            }
            Ok(_) => {}
            Err(jump) => b.push(insert_first(&jump)),
        }
        let br = i.bridge.as_str();
        let comment = policy_comment(i);
        let mut stage_1 = vec![format!(
            "-A {STAGE_1} -i {br} ! -o {br} -m comment --comment {comment} -j {STAGE_2}"
        )];
        if i.isolated {
            stage_1.push(format!(
                "-A {STAGE_1} -i {br} -o {br} -m comment --comment {comment} -j DROP"
            ));
        }
        for rule in stage_1 {
            if !has(table, &rule) {
                b.push(insert_first(&rule));
            }
        }
        let stage_2 = shared_rule(table, |c| {
            format!("-A {STAGE_2} -o {br} -m comment --comment {c} -j DROP")
        });
        if let Err(rule) = stage_2 {
            b.push(insert_first(&rule));
        }
        for chain in [STAGE_1, STAGE_2] {
            if let Err(ret) = shared_rule(table, |c| isolation_return(chain, c)) {
                b.push(ret);
            }
        }
    }
    b
}

/// The families whose rules a setup touches: those of its addresses.
fn families(ips: &[IpAddr]) -> Vec<Family> {
    Family::BOTH
        .into_iter()
        .filter(|f| ips.iter().any(|ip| Family::of(*ip) == *f))
        .collect()
}

/// Reads and writes under the namespace's firewall lock: two ADDs that both
/// found a chain missing would otherwise both declare it, and the second
/// declaration flushes the first one's rules.
pub(super) fn add(s: &Setup<'_>) -> Result<(), FirewallError> {
    crate::nft::locked(|| {
        for family in families(s.ips) {
            let table = save(family, TABLE)?;
            add_batch(&table, s, family).apply(family, TABLE)?;
        }
        Ok(())
    })
}

/// Deletes every copy of the accept rules of `ips`.
pub(super) fn del_batch(table: &Table, ips: &[IpAddr], family: Family) -> Batch {
    let mut b = Batch::default();
    for ip in ips_of(ips, family) {
        for rule in accept_rules(ip) {
            for _ in table.rules.iter().filter(|r| **r == rule) {
                b.push(delete_line(&rule));
            }
        }
    }
    b
}

pub(super) fn del(ips: &[IpAddr]) -> Result<(), FirewallError> {
    crate::nft::locked(|| {
        for family in families(ips) {
            let table = save(family, TABLE)?;
            del_batch(&table, ips, family).apply(family, TABLE)?;
        }
        Ok(())
    })
}

/// What the reference's CHECK looks for, the first thing missing.
pub(super) fn missing(table: &Table, s: &Setup<'_>, family: Family) -> Option<String> {
    let admin = s.admin_chain?;
    for chain in [FORWARD, admin.as_str()] {
        if !table.has_chain(chain) {
            return Some(format!("chain {chain} not found"));
        }
    }
    let mut expected = vec![forward_jump(), admin_jump(admin.as_str())];
    for ip in ips_of(s.ips, family) {
        expected.extend(accept_rules(ip));
    }
    expected
        .into_iter()
        .find(|r| !has(table, r))
        .map(|r| format!("expected rule {r:?} not found"))
}

pub(super) fn check(s: &Setup<'_>) -> Result<(), FirewallError> {
    for family in families(s.ips) {
        if let Some(what) = missing(&save(family, TABLE)?, s, family) {
            return Err(FirewallError::NotInPlace(what));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::tests::setup;
    use crate::script::{ChainName, InterfaceName};

    fn ips() -> Vec<IpAddr> {
        vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()]
    }

    #[test]
    fn first_add_creates_the_reference_layout() {
        let admin = ChainName::new("f", "CNI-ADMIN").unwrap();
        let ips = ips();
        let b = add_batch(&Table::default(), &setup(&ips, &admin, None), Family::V4);
        assert_eq!(
            b.lines,
            [
                ":CNI-FORWARD - [0:0]",
                ":CNI-ADMIN - [0:0]",
                "-I FORWARD 1 -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD",
                "-I CNI-FORWARD 1 -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN",
                "-A CNI-FORWARD -d 10.0.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
            ]
        );
        let v6 = add_batch(&Table::default(), &setup(&ips, &admin, None), Family::V6);
        assert!(v6
            .lines
            .contains(&"-A CNI-FORWARD -s fd00::2/128 -j ACCEPT".to_string()));
    }

    #[test]
    fn a_second_add_adds_only_what_is_missing() {
        let admin = ChainName::new("f", "CNI-ADMIN").unwrap();
        let ips = ips();
        let s = setup(&ips, &admin, None);
        let first = add_batch(&Table::default(), &s, Family::V4);
        // What iptables-save prints after the first batch.
        let mut saved = Table {
            chains: vec!["FORWARD".into(), "CNI-FORWARD".into(), "CNI-ADMIN".into()],
            rules: vec![forward_jump(), admin_jump("CNI-ADMIN")],
        };
        saved
            .rules
            .extend(first.lines.iter().filter(|l| l.starts_with("-A")).cloned());
        assert!(add_batch(&saved, &s, Family::V4).is_empty());
        let other: Vec<IpAddr> = vec!["10.0.0.3".parse().unwrap()];
        assert_eq!(
            add_batch(&saved, &setup(&other, &admin, None), Family::V4)
                .lines
                .len(),
            2
        );
        assert_eq!(del_batch(&saved, &ips, Family::V4).lines, [
            "-D CNI-FORWARD -d 10.0.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-D CNI-FORWARD -s 10.0.0.2/32 -j ACCEPT",
        ]);
        assert_eq!(missing(&saved, &s, Family::V4), None);
        let gone = missing(&saved, &setup(&other, &admin, None), Family::V4).unwrap();
        assert!(gone.contains("10.0.0.3/32"), "{gone}");
    }

    #[test]
    fn isolation_comes_before_the_accept_rules() {
        let admin = ChainName::new("f", "CNI-ADMIN").unwrap();
        let br = InterfaceName::new("f", "cni0").unwrap();
        let ips = ips();
        let iso = Isolation {
            bridge: &br,
            isolated: true,
        };
        let b = add_batch(
            &Table::default(),
            &setup(&ips, &admin, Some(iso)),
            Family::V4,
        );
        let l = &b.lines;
        let pos = |s: &str| l.iter().position(|x| x.contains(s)).unwrap();
        assert!(
            pos("-j CNI-ISOLATION-STAGE-1") > pos("-j CNI-FORWARD"),
            "inserted later, so first"
        );
        assert!(l.contains(&"-I CNI-ISOLATION-STAGE-1 1 -i cni0 -o cni0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j DROP".to_string()));
        assert!(l.contains(&"-I CNI-ISOLATION-STAGE-1 1 -i cni0 ! -o cni0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: isolated)\" -j CNI-ISOLATION-STAGE-2".to_string()));
        assert!(l.contains(&"-I CNI-ISOLATION-STAGE-2 1 -o cni0 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j DROP".to_string()));
        assert!(l.contains(&"-A CNI-ISOLATION-STAGE-2 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)\" -j RETURN".to_string()));
    }
}
