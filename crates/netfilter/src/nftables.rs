//! nftables: rules are added with one `nft -f -` transaction per change;
//! reads and deletions go over netlink (`rcni_net::nf_tables`), with no
//! process. Only ever in rcni's (the reference's) own tables.

use crate::error::FirewallError;
use crate::run::{installed, run};

/// Whether nft is installed (looked up on PATH, no exec).
pub fn supported() -> bool {
    installed("nft")
}

fn nf_family(family: &str) -> Option<rcni_net::nf_tables::NfFamily> {
    use rcni_net::nf_tables::NfFamily;
    Some(match family {
        "inet" => NfFamily::Inet,
        "ip" => NfFamily::Ipv4,
        "ip6" => NfFamily::Ipv6,
        "bridge" => NfFamily::Bridge,
        _ => return None,
    })
}

/// Whether the table `family name` may exist (a netlink probe, no
/// process; "maybe" when the probe fails).
pub fn table_may_exist(family: &str, name: &str) -> bool {
    nf_family(family).is_none_or(|nf| rcni_net::nf_tables::table_exists(nf, name).unwrap_or(true))
}

/// Whether the chain `chain` of `family table` may exist (as
/// [`table_may_exist`]).
pub fn chain_may_exist(family: &str, table: &str, chain: &str) -> bool {
    nf_family(family)
        .is_none_or(|nf| rcni_net::nf_tables::chain_exists(nf, table, chain).unwrap_or(true))
}

pub use rcni_net::nf_tables::{NftDeletion, NftRule as ListedRule};

fn netlink_err(e: rcni_net::NetError) -> FirewallError {
    FirewallError::Tool {
        program: "nf_tables (netlink)".into(),
        message: e.to_string(),
    }
}

/// A table as listed: all the rules of its chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedTable {
    pub rules: Vec<ListedRule>,
}

impl ListedTable {
    /// The rules of one chain.
    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// The rules of a whole table, read over netlink (no process); an absent
/// table has none.
pub fn list_table(family: &str, table: &str) -> Result<ListedTable, FirewallError> {
    let Some(nf) = nf_family(family) else {
        return Ok(ListedTable::default());
    };
    Ok(ListedTable {
        rules: rcni_net::nf_tables::list_rules(nf, table, None).map_err(netlink_err)?,
    })
}

/// The rules of one chain; an absent table or chain has none.
pub fn list_rules(
    family: &str,
    table: &str,
    chain: &str,
) -> Result<Vec<ListedRule>, FirewallError> {
    let Some(nf) = nf_family(family) else {
        return Ok(Vec::new());
    };
    rcni_net::nf_tables::list_rules(nf, table, Some(chain)).map_err(netlink_err)
}

/// Deletes rules and chains of one table in one transaction, over netlink.
pub fn delete(family: &str, table: &str, what: &[NftDeletion]) -> Result<(), FirewallError> {
    let Some(nf) = nf_family(family) else {
        return Err(FirewallError::Config(format!(
            "unknown nft family {family}"
        )));
    };
    if what.is_empty() {
        return Ok(());
    }
    rcni_net::nf_tables::delete(nf, table, what).map_err(netlink_err)
}

/// Applies an nft script atomically (one exec).
pub fn apply(script: &str) -> Result<(), FirewallError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    run("nft", &["-f", "-"], Some(script)).map(|_| ())
}

/// Quotes a string for an nft script; quotes and control characters are
/// dropped, as nothing may end the string or the line.
pub fn quote(s: &str) -> String {
    let inner: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{inner}\"")
}
