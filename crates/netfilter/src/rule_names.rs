//! The reference's names: chain names and comments must match byte for
//! byte so each implementation finds the other's rules.

use sha2::{Digest, Sha512};

/// `prefix` followed by the hex SHA-512 of `to_hash`, cut to `length`.
pub fn hash_with_prefix(length: usize, prefix: &str, to_hash: &str) -> String {
    let digest = Sha512::digest(to_hash.as_bytes());
    // The digest's own hex formatting writes only the digits asked for, at
    // most all 128 (a `format!` per byte cost a tenth of a ptp ADD's
    // instructions).
    let digits = length.saturating_sub(prefix.len()).min(2 * digest.len());
    let mut s = format!("{prefix}{digest:.digits$x}");
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

/// iptables' longest comment (the kernel's 256 bytes less the NUL):
/// iptables cuts the reference's longer comments there.
pub const IPTABLES_COMMENT_MAX: usize = 255;
/// nftables' longest comment.
pub const NFT_COMMENT_MAX: usize = 128;

/// The first `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `name: "<net>" id: "<cid>"`, the iptables comment of ipMasq rules, cut
/// at 255 characters as iptables cuts the reference's (a container ID may
/// be longer than a comment).
pub fn comment(network: &str, container_id: &str) -> String {
    cut(
        &format!("name: {} id: {}", go_quote(network), go_quote(container_id)),
        IPTABLES_COMMENT_MAX,
    )
}

/// `dnat name: "<net>" id: "<cid>"`, the comment of portmap's iptables
/// entry rules. The reference trims a longer one to 253 characters and
/// `...`, which iptables then cuts at 255: the result is the same.
pub fn dnat_comment(network: &str, container_id: &str) -> String {
    let c = format!("dnat name: \"{network}\" id: \"{container_id}\"");
    if c.chars().count() <= IPTABLES_COMMENT_MAX {
        c
    } else {
        format!("{}..", cut(&c, IPTABLES_COMMENT_MAX - 2))
    }
}

/// The nftables comment that names a container (portmap's rules and
/// attachment notes): the ID itself, or, when it is longer than a comment
/// may be, its first 111 characters, `-` and 16 hex digits of its hash,
/// so that distinct long IDs still get distinct comments.
pub fn nft_container_comment(container_id: &str) -> String {
    if container_id.chars().count() <= NFT_COMMENT_MAX {
        return container_id.to_string();
    }
    format!(
        "{}-{}",
        cut(container_id, NFT_COMMENT_MAX - 17),
        hash_with_prefix(16, "", container_id)
    )
}

/// The start of the nftables comment of every attachment of `network`
/// (the reference's ipMasq layout, which rcni's firewall rules follow): 16
/// hex digits of its hash.
pub fn nft_network_prefix(network: &str) -> String {
    hash_with_prefix(16, "", network)
}

/// The start of the nftables comment of one attachment:
/// `<h16(net)>-<h16(ifname:id)>`.
pub fn nft_attachment_prefix(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        nft_network_prefix(network),
        hash_with_prefix(16, "", &format!("{ifname}:{container_id}"))
    )
}

/// The nftables comment of an attachment's rules:
/// `<h16(net)>-<h16(ifname:id)>, net: ..., if: ..., id: ...`, without
/// quotes, cut to the comment limit.
pub fn nft_attachment_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let strip = |s: &str| s.replace('"', "");
    let c = format!(
        "{}, net: {}, if: {}, id: {}",
        nft_attachment_prefix(network, ifname, container_id),
        strip(network),
        strip(ifname),
        strip(container_id)
    );
    cut(&c, NFT_COMMENT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_28_chars_of_the_reference_hash() {
        let c = chain_name("mynet", "abc");
        assert_eq!(c.len(), 28);
        assert!(c.starts_with("CNI-"));
        // sha512("mynetabc"), computed independently (sha512sum), begins
        // with e88f49d94512ff752ebe6070d372324043165b5a.
        assert_eq!(c, "CNI-e88f49d94512ff752ebe6070");
        assert_eq!(hash_with_prefix(13, "", "mynetabc"), "e88f49d94512f");
        assert_eq!(hash_with_prefix(200, "CNI-", "mynetabc").len(), 4 + 128);
        assert_eq!(hash_with_prefix(2, "CNI-", "mynetabc"), "CN");
        assert_eq!(chain_name_with_prefix("n", "c", "DN-").len(), 28);
    }

    #[test]
    fn long_ids_fit_in_comments() {
        let id = "a".repeat(1100);
        let c = comment("net", &id);
        assert_eq!(c.len(), IPTABLES_COMMENT_MAX);
        assert!(c.starts_with("name: \"net\" id: \"aaa"));
        let d = dnat_comment("net", &id);
        assert_eq!(d.len(), IPTABLES_COMMENT_MAX);
        assert!(d.ends_with("aa.."));
        assert_eq!(dnat_comment("n", "c"), r#"dnat name: "n" id: "c""#);
        let n = nft_container_comment(&id);
        assert_eq!(n.len(), NFT_COMMENT_MAX);
        assert_ne!(n, nft_container_comment(&format!("{id}b")));
        assert_eq!(nft_container_comment("c1"), "c1");
    }

    #[test]
    fn comments_quote_like_go() {
        assert_eq!(comment("net", "c1"), r#"name: "net" id: "c1""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
    }
}
