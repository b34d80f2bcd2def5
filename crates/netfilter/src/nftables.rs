//! nftables through `nft`: one `nft -f -` transaction per change, reads
//! with `nft -j`, and only ever in rcni's (the reference's) own tables.

use crate::error::FirewallError;
use crate::run::{installed, run};
use serde_json::Value;

/// Whether nft is installed (looked up on PATH, no exec).
pub fn supported() -> bool {
    installed("nft")
}

/// A rule as listed: its handle and comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub handle: u64,
    pub comment: String,
}

/// The rules of one chain; an absent table or chain has none.
pub fn list_rules(
    family: &str,
    table: &str,
    chain: &str,
) -> Result<Vec<ListedRule>, FirewallError> {
    let out = match run("nft", &["-j", "list", "chain", family, table, chain], None) {
        Ok(out) => out,
        Err(FirewallError::Tool { message, .. })
            if message.contains("No such file or directory") =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    Ok(parse_rules(&out))
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
                    handle: 7,
                    comment: "abc, net: n".into()
                },
                ListedRule {
                    handle: 9,
                    comment: String::new()
                }
            ]
        );
        assert!(parse_rules("garbage").is_empty());
    }
}
