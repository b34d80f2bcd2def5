//! ipMasq's iptables layout (table `nat`), as the reference's: chain
//! `CNI-<hash(net+id)>` holding `-d <subnet> -j ACCEPT` and `! -d
//! <multicast> -j MASQUERADE`, jumped to from `POSTROUTING -s <ip>`; every
//! rule commented `name: "<net>" id: "<id>"`.

use super::Owner;
use crate::error::FirewallError;
use crate::iptables::{self, Batch};
use crate::nft::{self, NftDeletion};
use crate::rule_names::{chain_name, comment};
use crate::Family;
use ipnet::IpNet;

/// The iptables batch that sets up masquerading for the addresses of one
/// family. When the chain already exists (`shared`: another interface of
/// the container, or another attachment whose network name and container
/// ID concatenate to the same string), it is not flushed: the addresses'
/// own-subnet exceptions go first in it, next to the other's.
pub(super) fn setup_batch(ips: &[IpNet], o: &Owner<'_>, family: Family, shared: bool) -> Batch {
    let chain = chain_name(o.network, o.container_id);
    let c = iptables::quote(&comment(o.network, o.container_id));
    let multicast = if family == Family::V4 {
        "224.0.0.0/4"
    } else {
        "ff00::/8"
    };
    let mine: Vec<&IpNet> = ips
        .iter()
        .filter(|n| Family::of(n.addr()) == family)
        .collect();
    let mut b = Batch::default();
    if mine.is_empty() {
        return b;
    }
    if shared {
        for net in &mine {
            b.push(format!("-I {chain} 1 {}", own_subnet_rule(net, &c)));
        }
    } else {
        b.push(format!(":{chain} - [0:0]"));
        for net in &mine {
            b.push(format!("-A {chain} {}", own_subnet_rule(net, &c)));
        }
        b.push(format!(
            "-A {chain} ! -d {multicast} -m comment --comment {c} -j MASQUERADE"
        ));
    }
    for net in &mine {
        b.push(format!(
            "-A POSTROUTING -s {} -m comment --comment {c} -j {chain}",
            net.addr()
        ));
    }
    b
}

/// The rule (without `-A CHAIN`) that keeps traffic to the address's own
/// subnet unmasqueraded.
fn own_subnet_rule(net: &IpNet, quoted_comment: &str) -> String {
    format!(
        "-d {} -m comment --comment {quoted_comment} -j ACCEPT",
        net.trunc()
    )
}

/// Sets up masquerading for `ips`: one batch per IP family.
pub(super) fn setup(ips: &[IpNet], o: &Owner<'_>) -> Result<(), FirewallError> {
    for family in Family::BOTH {
        let chain = chain_name(o.network, o.container_id);
        let shared = iptables::nat_chain_exists(family, &chain) == Some(true);
        setup_batch(ips, o, family, shared).apply(family, "nat")?;
    }
    Ok(())
}

/// The iptables batch that removes an attachment's jumps to `chain` (and
/// the chain once nothing else jumps to it). A jump is the attachment's
/// when it carries its comment and, when its addresses are known
/// (`known`) and some such jump has one of them as source, that source:
/// the chain is named after network and container only, so two interfaces
/// of a container share it, and so do two attachments whose network name
/// and container ID concatenate to the same string (`relnet`+`x1`,
/// `relne`+`tx1`). Without addresses, or with addresses no jump has (a
/// prevResult that does not describe the rules), every jump with the
/// comment is the attachment's, as the reference's layout cannot tell
/// the interfaces apart.
fn remove_own(
    table: &iptables::Table,
    chain: &str,
    quoted_comment: &str,
    known: &[&IpNet],
) -> Batch {
    let mut b = Batch::default();
    let c = format!(" --comment {quoted_comment} ");
    let mut sources: Vec<String> = known
        .iter()
        .map(|n| {
            format!(
                "-s {}/{} ",
                n.addr(),
                if n.addr().is_ipv4() { 32 } else { 128 }
            )
        })
        .collect();
    let jump = format!(" -j {chain}");
    let jumps = || table.rules.iter().filter(|r| r.ends_with(&jump));
    if !jumps().any(|r| r.contains(&c) && sources.iter().any(|s| r.contains(s))) {
        sources.clear();
    }
    let mut others_left = false;
    for rule in jumps() {
        let own =
            rule.contains(&c) && (sources.is_empty() || sources.iter().any(|s| rule.contains(s)));
        if own {
            b.push(iptables::delete_line(rule));
        } else {
            others_left = true;
        }
    }
    if !table.has_chain(chain) {
        return b;
    }
    if others_left {
        // One copy of each own-subnet exception of the removed addresses
        // (a shared setup inserts its own copy).
        for net in known.iter().filter(|_| !sources.is_empty()) {
            let rule = format!("-A {chain} {}", own_subnet_rule(net, quoted_comment));
            if table.rules_of(chain).any(|r| *r == rule) {
                b.push(iptables::delete_line(&rule));
            }
        }
    } else {
        b.push(format!(":{chain} - [0:0]"));
        b.push(format!("-X {chain}"));
    }
    b
}

/// The source address of a POSTROUTING jump (`-s <ip>/<len>`).
fn source_of(rule: &str) -> Option<IpNet> {
    let (_, rest) = rule.split_once(" -s ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The batch that removes the rules of `ips` (one family) without reading
/// the table first: right when the jumps from POSTROUTING are exactly one
/// per address, as setup makes them; otherwise iptables-restore refuses the
/// whole batch and nothing changes.
fn known_teardown_batch(ips: &[&IpNet], o: &Owner<'_>, chain: &str) -> Batch {
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

/// [`remove_own`] over netlink, for the nf_tables flavour of iptables,
/// when every jump to `chain` from POSTROUTING is the attachment's (its
/// comment, and one of `known` as source when addresses are known): the
/// jumps and the chain go in one transaction, with no `iptables-save` or
/// `iptables-restore`. `None` when some jump is another's (a second
/// interface of the container, a colliding attachment), or the listing
/// fails: the table is then read and rewritten with iptables' own tools.
fn teardown_over_netlink(
    family: Family,
    (chain, chain_exists): (&str, bool),
    own_comment: &str,
    known: &[&IpNet],
) -> Option<Result<(), FirewallError>> {
    let jumps: Vec<nft::ListedRule> = nft::list_rules(family.into(), "nat", "POSTROUTING")
        .ok()?
        .into_iter()
        .filter(|r| r.jumps_to.as_deref() == Some(chain))
        .collect();
    let own = |r: &nft::ListedRule| {
        r.comment == own_comment
            && (known.is_empty()
                || r.source
                    .is_some_and(|s| known.iter().any(|k| k.addr() == s)))
    };
    if !jumps.iter().all(own) {
        return None;
    }
    let mut gone: Vec<NftDeletion> = jumps
        .into_iter()
        .map(|r| NftDeletion::Rule {
            chain: "POSTROUTING".into(),
            handle: r.handle,
        })
        .collect();
    if chain_exists {
        gone.push(NftDeletion::Chain(chain.to_string()));
    }
    Some(nft::delete(family.into(), "nat", &gone))
}

pub(super) fn teardown(o: &Owner<'_>, known: &[IpNet]) -> Result<(), FirewallError> {
    let chain = chain_name(o.network, o.container_id);
    for family in Family::BOTH {
        // The rules jump to the chain: no chain, nothing to remove (None:
        // the legacy flavour, or a failed probe).
        let exists = iptables::nat_chain_exists(family, &chain);
        if exists == Some(false) {
            continue;
        }
        let mine: Vec<&IpNet> = known
            .iter()
            .filter(|n| Family::of(n.addr()) == family)
            .collect();
        if iptables::uses_nf_tables()
            && teardown_over_netlink(
                family,
                (&chain, exists == Some(true)),
                &comment(o.network, o.container_id),
                &mine,
            )
            .is_some_and(|done| done.is_ok())
        {
            continue;
        }
        if !mine.is_empty()
            && known_teardown_batch(&mine, o, &chain)
                .apply(family, "nat")
                .is_ok()
        {
            continue;
        }
        let table = iptables::save(family, "nat")?;
        let c = iptables::quote(&comment(o.network, o.container_id));
        remove_own(&table, &chain, &c, &mine).apply(family, "nat")?;
    }
    Ok(())
}

/// Removes the masquerading of every attachment of `network` whose
/// container is not in `valid` (container ID, ifname), and, for a valid
/// container, the jumps from addresses outside `held` (see
/// [`super::gc`]).
pub(super) fn gc(
    network: &str,
    valid: &[(String, String)],
    held: Option<&[std::net::IpAddr]>,
) -> Result<(), FirewallError> {
    // The iptables layout names chains by network and container only,
    // and the comments may be cut: an attachment is known by its
    // whole comment.
    let keep: Vec<String> = valid
        .iter()
        .map(|(id, _)| iptables::quote(&comment(network, id)))
        .collect();
    let prefix = iptables::quote(&format!(
        "name: {} id: ",
        crate::rule_names::go_quote(network)
    ));
    let prefix = prefix.trim_end_matches('"');
    for family in Family::BOTH {
        let table = iptables::save(family, "nat")?;
        // (comment, chain) of stale attachments: every jump goes, or,
        // for a valid container, the jumps from released addresses.
        let mut stale: Vec<(&str, &str, Vec<IpNet>)> = Vec::new();
        for rule in table.rules_of("POSTROUTING") {
            let (Some(c), Some(chain)) = (iptables::comment_of(rule), iptables::jump_target(rule))
            else {
                continue;
            };
            if !c.starts_with(prefix) {
                continue;
            }
            let released = match (keep.iter().any(|k| k == c), held, source_of(rule)) {
                (false, _, _) => None,
                (true, Some(held), Some(src)) if !held.contains(&src.addr()) => Some(src),
                (true, _, _) => continue,
            };
            match stale
                .iter_mut()
                .find(|(sc, sch, _)| *sc == c && *sch == chain)
            {
                Some((_, _, sources)) => sources.extend(released),
                None => stale.push((c, chain, released.into_iter().collect())),
            }
        }
        let mut batch = Batch::default();
        for (c, chain, sources) in &stale {
            let sources: Vec<&IpNet> = sources.iter().collect();
            batch
                .lines
                .extend(remove_own(&table, chain, c, &sources).lines);
        }
        batch.apply(family, "nat")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masq::tests::owner;

    #[test]
    fn iptables_layout_matches_the_reference() {
        let ips: Vec<IpNet> = vec![
            "10.1.0.5/24".parse().unwrap(),
            "fd00::5/64".parse().unwrap(),
        ];
        let chain = chain_name("mynet", "c1");
        let v4 = setup_batch(&ips, &owner(), Family::V4, false);
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
        let v6 = setup_batch(&ips, &owner(), Family::V6, false);
        assert!(v6.lines[2].contains("! -d ff00::/8"));
        assert!(setup_batch(&ips[..1], &owner(), Family::V6, false).is_empty());
        let shared = setup_batch(&ips[..1], &owner(), Family::V4, true);
        assert_eq!(
            shared.lines,
            [
                format!("-I {chain} 1 -d 10.1.0.0/24 -m comment --comment {c} -j ACCEPT"),
                format!("-A POSTROUTING -s 10.1.0.5 -m comment --comment {c} -j {chain}"),
            ],
            "a chain in use is not flushed"
        );
    }

    #[test]
    fn removing_a_chain_keeps_jumps_of_other_attachments() {
        let own = iptables::quote(&comment("relnet", "x1"));
        let other = iptables::quote(&comment("relne", "tx1"));
        let chain = chain_name("relnet", "x1");
        assert_eq!(
            chain,
            chain_name("relne", "tx1"),
            "the reference's hash collides"
        );
        let table = iptables::Table::parse(&format!(
            ":POSTROUTING ACCEPT [0:0]\n:{chain} - [0:0]\n\
             -A POSTROUTING -s 10.0.0.2/32 -m comment --comment {own} -j {chain}\n\
             -A POSTROUTING -s 10.0.0.3/32 -m comment --comment {own} -j {chain}\n\
             -A POSTROUTING -s 10.0.1.2/32 -m comment --comment {other} -j {chain}\n"
        ));
        let b = remove_own(&table, &chain, &own, &[]);
        assert_eq!(
            b.lines.len(),
            2,
            "only the own jumps, the chain stays: {b:?}"
        );
        let eth1: IpNet = "10.0.0.3/24".parse().unwrap();
        let b = remove_own(&table, &chain, &own, &[&eth1]);
        assert_eq!(
            b.lines,
            [format!(
                "-D POSTROUTING -s 10.0.0.3/32 -m comment --comment {own} -j {chain}"
            )]
        );
    }
}
