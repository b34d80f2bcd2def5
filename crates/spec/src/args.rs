//! `CNI_ARGS`: `KEY=VALUE;KEY=VALUE`, checked against the keys a plugin knows.

use crate::error::CniError;

/// Parsed `CNI_ARGS`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub pairs: Vec<(String, String)>,
}

impl CniArgs {
    /// Splits `CNI_ARGS`; every pair must have exactly one `=`.
    pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        if raw.is_empty() {
            return Ok(CniArgs { pairs });
        }
        for pair in raw.split(';') {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) => pairs.push((k.to_string(), v.to_string())),
                _ => {
                    return Err(CniError::invalid_env(format!(
                        "ARGS: invalid pair {pair:?}"
                    )))
                }
            }
        }
        Ok(CniArgs { pairs })
    }

    /// The last value given for `key` (keys are case-sensitive, as in the
    /// reference's struct field lookup).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when `IgnoreUnknown` is `1` or `true` (any case).
    pub fn ignore_unknown(&self) -> Result<bool, CniError> {
        match self.get("IgnoreUnknown") {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| {
                CniError::invalid_env(format!(
                    "ARGS: error parsing value of pair \"IgnoreUnknown={v}\": boolean unmarshal error: invalid input {}",
                    v.to_lowercase()
                ))
            }),
        }
    }

    /// Parses and fails on keys outside `known` unless `IgnoreUnknown` is set.
    pub fn parse_known(raw: &str, known: &[&str]) -> Result<CniArgs, CniError> {
        let args = CniArgs::parse(raw)?;
        let ignore_unknown = args.ignore_unknown()?;
        let unknown: Vec<String> = args
            .pairs
            .iter()
            .filter(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !unknown.is_empty() && !ignore_unknown {
            return Err(CniError::invalid_env(format!(
                "ARGS: unknown args {unknown:?}"
            )));
        }
        Ok(args)
    }
}

/// The reference's lenient boolean: `1`/`true`/`0`/`false`, any case.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pairs() {
        let a = CniArgs::parse("IP=10.0.0.2;K8S_POD_NAME=web").unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.2"));
        assert_eq!(a.get("ip"), None);
        assert!(CniArgs::parse("").unwrap().pairs.is_empty());
        assert!(CniArgs::parse("a=b=c").is_err());
        assert!(CniArgs::parse("novalue").is_err());
        assert!(CniArgs::parse("a=b;").is_err());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        assert!(CniArgs::parse_known("IP=1.2.3.4;FOO=bar", &["IP"]).is_err());
        assert!(CniArgs::parse_known("IgnoreUnknown=1;FOO=bar", &["IP"]).is_ok());
        assert!(CniArgs::parse_known("IgnoreUnknown=TRUE;FOO=bar", &["IP"]).is_ok());
        assert!(CniArgs::parse_known("IgnoreUnknown=0;FOO=bar", &["IP"]).is_err());
        assert!(CniArgs::parse_known("IgnoreUnknown=maybe", &["IP"]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = CniArgs::parse_known(&s, &["IP", "MAC"]);
        }

        #[test]
        fn round_trips(pairs in proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,8}", "[^;=]{0,8}"), 1..6)) {
            let raw = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
            let parsed = CniArgs::parse(&raw).unwrap();
            prop_assert_eq!(parsed.pairs, pairs);
        }
    }
}
