//! Config values that are written into `iptables-restore` and `nft -f`
//! scripts. Each type here can only be built by validating the value for
//! the script it goes into, so no caller can paste unchecked text: the
//! reference hands such values to iptables as single argv elements, where
//! nothing can escape; rcni writes scripts, where a line break, a `;` or a
//! quote would start a statement of the config's choosing.

use crate::error::FirewallError;

/// Whether `s` holds a character that ends or splits a script line.
pub(crate) fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

/// Match tokens (portmap's `conditionsV4`/`conditionsV6`), rendered for
/// one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    rendered: String,
}

impl Conditions {
    /// No conditions.
    pub const fn none() -> Conditions {
        Conditions {
            rendered: String::new(),
        }
    }

    /// iptables match tokens, each of which iptables-restore must read back
    /// as exactly one argument: no control characters (a line break would
    /// end the rule), and tokens with spaces, quotes or backslashes quoted
    /// the way iptables-restore unquotes them.
    pub fn iptables(field: &str, tokens: &[String]) -> Result<Conditions, FirewallError> {
        let mut parts = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if t.is_empty() || has_control(t) {
                return Err(bad_token(field, i, t, "empty or has a control character"));
            }
            if t.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
            {
                parts.push(crate::iptables::quote(t));
            } else {
                parts.push(t.clone());
            }
        }
        Ok(Conditions {
            rendered: parts.join(" "),
        })
    }

    /// nftables match tokens: printable ASCII without what ends a statement
    /// (`;`, line breaks), starts a comment (`#`), opens a string (quotes),
    /// continues a line (`\`) or names a variable (`$`).
    pub fn nftables(field: &str, tokens: &[String]) -> Result<Conditions, FirewallError> {
        for (i, t) in tokens.iter().enumerate() {
            let allowed = |c: char| {
                (c.is_ascii_graphic() || c == ' ')
                    && !matches!(c, ';' | '#' | '"' | '\'' | '\\' | '$')
            };
            if t.trim().is_empty() || !t.chars().all(allowed) {
                return Err(bad_token(
                    field,
                    i,
                    t,
                    "only printable ASCII without ; # quotes \\ or $ is allowed",
                ));
            }
        }
        Ok(Conditions {
            rendered: tokens.join(" "),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rendered.is_empty()
    }

    /// The tokens as they go into the script.
    pub fn as_str(&self) -> &str {
        &self.rendered
    }
}

fn bad_token(field: &str, index: usize, token: &str, why: &str) -> FirewallError {
    FirewallError::Config(format!("{field}[{index}]: invalid token {token:?}: {why}"))
}

/// An iptables chain name from a config (portmap's
/// `externalSetMarkChain`): letters, digits, `_`, `-` and `.`, not starting
/// with `-`, at most 28 characters (iptables' limit). It also names a file
/// under /run/rcni, which these characters keep inside that directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainName(String);

/// iptables' longest chain name (XT_EXTENSION_MAXNAMELEN - 1).
pub const CHAIN_NAME_MAX: usize = 28;

impl ChainName {
    pub fn new(field: &str, name: &str) -> Result<ChainName, FirewallError> {
        let charset_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if name.is_empty()
            || name.len() > CHAIN_NAME_MAX
            || !charset_ok
            || name.starts_with('-')
            || name.starts_with('.')
        {
            return Err(FirewallError::Config(format!(
                "{field}: invalid chain name {name:?}: 1 to {CHAIN_NAME_MAX} letters, digits, '_', '-' or '.', not starting with '-' or '.'"
            )));
        }
        Ok(ChainName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A network interface name from a prevResult (the firewall plugin's
/// bridge for `ingressPolicy`): 1 to 15 letters, digits, `_`, `-` or `.`,
/// not starting with `-` or `.`. Enough for every name the bridge plugin
/// makes, and nothing that iptables reads as a wildcard (`+`), an option
/// or a second argument, or that ends an nft statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceName(String);

/// The kernel's longest interface name (IFNAMSIZ - 1).
pub const INTERFACE_NAME_MAX: usize = 15;

impl InterfaceName {
    pub fn new(field: &str, name: &str) -> Result<InterfaceName, FirewallError> {
        let charset_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if name.is_empty()
            || name.len() > INTERFACE_NAME_MAX
            || !charset_ok
            || name.starts_with(['-', '.'])
        {
            return Err(FirewallError::Config(format!(
                "{field}: invalid interface name {name:?}: 1 to {INTERFACE_NAME_MAX} letters, digits, '_', '-' or '.', not starting with '-' or '.'"
            )));
        }
        Ok(InterfaceName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn iptables_tokens_stay_one_argument_each() {
        let c = Conditions::iptables(
            "conditionsV4",
            &s(&["-s", "10.0.0.0/8", "-m", "comment", "--comment", "a \"b\""]),
        )
        .unwrap();
        assert_eq!(
            c.as_str(),
            r#"-s 10.0.0.0/8 -m comment --comment "a \"b\"""#
        );
        let e = Conditions::iptables("conditionsV4", &s(&["-s 10.0.0.0/8\nCOMMIT"])).unwrap_err();
        assert!(e.to_string().starts_with("conditionsV4[0]: "), "{e}");
        assert!(Conditions::iptables("c", &s(&[""])).is_err());
    }

    #[test]
    fn nft_tokens_cannot_end_the_statement() {
        assert!(
            Conditions::nftables("c", &s(&["ip saddr { 10.0.0.0/8, 192.168.0.0/16 }"])).is_ok()
        );
        for bad in [
            "ip saddr 1.2.3.4 ; add table inet x ; #",
            "a\nadd table ip x",
            "a #",
            "\"x\"",
            "$v",
            "a\\",
        ] {
            let e = Conditions::nftables("conditionsV6", &s(&["ip6", bad])).unwrap_err();
            assert!(e.to_string().starts_with("conditionsV6[1]: "), "{e}");
        }
    }

    #[test]
    fn chain_names_are_iptables_names() {
        assert!(ChainName::new("f", "KUBE-MARK-MASQ").is_ok());
        for bad in ["", "a\nb", "../../x", "-j", "a b", &"x".repeat(29)] {
            assert!(ChainName::new("f", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interface_names_are_plain_words() {
        assert!(InterfaceName::new("f", "cni-podman0").is_ok());
        for bad in ["", "br+", "a b", "-i", "x\"", "a;b", "abcdefghijklmnop"] {
            let e = InterfaceName::new("f", bad).unwrap_err();
            assert!(e.to_string().starts_with("f: "), "{bad:?}");
        }
    }
}
