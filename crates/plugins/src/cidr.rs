//! Address syntaxes of plugin configs that `std` and `ipnet` do not parse
//! as the reference does.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `ip/prefix` keeping the host bits (`10.1.2.3/24` stays as is).
/// A bare IP is not accepted.
pub fn parse_cidr_keep_host(s: &str) -> Option<IpNet> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    IpNet::new(ip, prefix).ok()
}

/// Parses `ip` or `ip/prefix` (the prefix is ignored), as the reference's
/// `ip.IP` type accepts both.
pub fn parse_ip_maybe_cidr(s: &str) -> Option<IpAddr> {
    s.split_once('/').map_or(s, |(ip, _)| ip).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_host_bits_and_ignores_prefixes() {
        assert_eq!(
            parse_cidr_keep_host("10.1.2.3/24").unwrap().to_string(),
            "10.1.2.3/24"
        );
        assert!(parse_cidr_keep_host("10.1.2.3").is_none());
        assert!(parse_cidr_keep_host("10.1.2.3/33").is_none());
        assert_eq!(
            parse_ip_maybe_cidr("fd00::1/64"),
            Some("fd00::1".parse().unwrap())
        );
        assert_eq!(
            parse_ip_maybe_cidr("10.0.0.1"),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
