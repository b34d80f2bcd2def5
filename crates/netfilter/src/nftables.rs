//! nftables through `nft`: one `nft -f -` transaction per change, reads
//! with `nft -j`, and only ever in rcni's (the reference's) own tables.

use crate::error::FirewallError;
use crate::run::{installed, run};
use serde_json::Value;

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

/// A rule as listed: its chain, handle and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

/// A table as listed: its chain names and all their rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedTable {
    pub chains: Vec<String>,
    pub rules: Vec<ListedRule>,
}

impl ListedTable {
    /// The rules of one chain.
    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// A whole table in one exec; an absent table is empty.
pub fn list_table(family: &str, table: &str) -> Result<ListedTable, FirewallError> {
    let Some(out) = list(&["-j", "list", "table", family, table])? else {
        return Ok(ListedTable::default());
    };
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    Ok(ListedTable {
        chains: items
            .iter()
            .filter_map(|i| Some(i.get("chain")?.get("name")?.as_str()?.to_string()))
            .collect(),
        rules: parse_rules(&out),
    })
}

/// Runs an nft listing; `None` when the table or chain does not exist.
fn list(args: &[&str]) -> Result<Option<String>, FirewallError> {
    match run("nft", args, None) {
        Ok(out) => Ok(Some(out)),
        Err(FirewallError::Tool { message, .. })
            if message.contains("No such file or directory") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The rules of one chain; an absent table or chain has none.
pub fn list_rules(
    family: &str,
    table: &str,
    chain: &str,
) -> Result<Vec<ListedRule>, FirewallError> {
    Ok(list(&["-j", "list", "chain", family, table, chain])?
        .map(|out| parse_rules(&out))
        .unwrap_or_default())
}

fn parse_rules(json: &str) -> Vec<ListedRule> {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("rule"))
        .filter_map(|r| {
            Some(ListedRule {
                chain: r.get("chain")?.as_str()?.to_string(),
                handle: r.get("handle")?.as_u64()?,
                comment: r
                    .get("comment")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
        })
        .collect()
}

/// Applies an nft script atomically (one exec).
pub fn apply(script: &str) -> Result<(), FirewallError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    run("nft", &["-f", "-"], Some(script)).map(|_| ())
}

/// Quotes a string for an nft script.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listed_rules() {
        let json = r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},{"chain":{"name":"c"}},
            {"rule":{"family":"inet","table":"t","chain":"c","handle":7,"comment":"abc, net: n","expr":[]}},
            {"rule":{"family":"inet","table":"t","chain":"c","handle":9,"expr":[]}}]}"#;
        let rules = parse_rules(json);
        assert_eq!(
            rules,
            [
                ListedRule {
                    chain: "c".into(),
                    handle: 7,
                    comment: "abc, net: n".into()
                },
                ListedRule {
                    chain: "c".into(),
                    handle: 9,
                    comment: String::new()
                }
            ]
        );
        assert!(parse_rules("garbage").is_empty());
    }
}
