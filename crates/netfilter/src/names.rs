//! The reference's names: chain names and comments must match byte for
//! byte so each implementation finds the other's rules.

use sha2::{Digest, Sha512};

/// `prefix` followed by the hex SHA-512 of `to_hash`, cut to `length`.
pub fn hash_with_prefix(length: usize, prefix: &str, to_hash: &str) -> String {
    let digest = Sha512::digest(to_hash.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut s = format!("{prefix}{hex}");
    s.truncate(length);
    s
}

/// `CNI-` + hash of network name and container ID, 28 characters.
pub fn chain_name(network: &str, container_id: &str) -> String {
    chain_name_with_prefix(network, container_id, "")
}

/// `CNI-<prefix>` + hash, 28 characters (portmap's `DN-`, `SN-`).
pub fn chain_name_with_prefix(network: &str, container_id: &str, prefix: &str) -> String {
    hash_with_prefix(
        28,
        &format!("CNI-{prefix}"),
        &format!("{network}{container_id}"),
    )
}

/// Go's `%q` of a string: double-quoted with Go escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `name: "<net>" id: "<cid>"`, the iptables comment of ipMasq rules.
pub fn comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_28_chars_of_the_reference_hash() {
        let c = chain_name("mynet", "abc");
        assert_eq!(c.len(), 28);
        assert!(c.starts_with("CNI-"));
        // sha512("mynetabc"), computed independently, begins with e88f49d9.
        assert_eq!(&c[4..12], "e88f49d9");
        assert_eq!(chain_name_with_prefix("n", "c", "DN-").len(), 28);
    }

    #[test]
    fn comments_quote_like_go() {
        assert_eq!(comment("net", "c1"), r#"name: "net" id: "c1""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
    }
}
