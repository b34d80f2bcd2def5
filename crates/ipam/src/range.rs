//! Ranges and range sets, as the reference canonicalizes them.

use crate::error::IpamError;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One range of a range set. After [`Range::canonicalize`] the optional
/// fields are all set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub subnet: IpNet,
    #[serde(
        rename = "rangeStart",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub range_start: Option<IpAddr>,
    #[serde(rename = "rangeEnd", default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// An address as a number, for arithmetic across both families.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of the same family as `like` with the value `n`.
pub(crate) fn from_u128(n: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// The address after `ip`, wrapping at the end of the family's space.
pub(crate) fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_add(1))),
    }
}

impl Range {
    /// A range covering `subnet` with every default.
    pub fn new(subnet: IpNet) -> Range {
        Range {
            subnet,
            range_start: None,
            range_end: None,
            gateway: None,
        }
    }

    /// Validates the range and fills in the defaults: gateway = network+1,
    /// rangeStart = network+1, rangeEnd = last address (IPv4: the one
    /// before broadcast).
    pub fn canonicalize(&mut self) -> Result<(), IpamError> {
        let subnet = self.subnet;
        let bits = if subnet.addr().is_ipv4() { 32 } else { 128 };
        if subnet.prefix_len() > bits - 2 {
            return Err(IpamError::Config(format!(
                "Network {subnet} too small to allocate from"
            )));
        }
        let network = subnet.network();
        if subnet.addr() != network {
            return Err(IpamError::Config(format!(
                "Network {subnet} has host bits set. For a subnet mask of length {} the network address is {network}",
                subnet.prefix_len()
            )));
        }
        let same_family = |ip: IpAddr| ip.is_ipv4() == network.is_ipv4();
        if let Some(gw) = self.gateway {
            if !same_family(gw) {
                return Err(IpamError::Config(format!(
                    "gateway {gw} is not of the family of {subnet}"
                )));
            }
        } else {
            self.gateway = Some(next_ip(network));
        }
        let first = next_ip(network);
        let last = {
            let broadcast = subnet.broadcast();
            if broadcast.is_ipv4() {
                from_u128(to_u128(broadcast) - 1, broadcast)
            } else {
                broadcast
            }
        };
        for (field, value, default) in [
            ("rangeStart", &mut self.range_start, first),
            ("rangeEnd", &mut self.range_end, last),
        ] {
            match *value {
                Some(ip) if !subnet.contains(&ip) || !same_family(ip) => {
                    return Err(IpamError::Config(format!(
                        "{field} {ip} not in network {subnet}"
                    )));
                }
                Some(_) => {}
                None => *value = Some(default),
            }
        }
        let (start, end) = self.bounds();
        if to_u128(start) > to_u128(end) {
            return Err(IpamError::Config(format!(
                "rangeStart {start} is after rangeEnd {end} in {subnet}"
            )));
        }
        Ok(())
    }

    /// First and last address (after canonicalization).
    pub fn bounds(&self) -> (IpAddr, IpAddr) {
        let start = self.range_start.unwrap_or_else(|| self.subnet.network());
        let end = self.range_end.unwrap_or_else(|| self.subnet.broadcast());
        (start, end)
    }

    /// Whether `ip` lies in the subnet and between start and end.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if ip.is_ipv4() != self.subnet.addr().is_ipv4() || !self.subnet.contains(&ip) {
            return false;
        }
        let (start, end) = self.bounds();
        (to_u128(start)..=to_u128(end)).contains(&to_u128(ip))
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        let (s1, e1) = self.bounds();
        let (s2, e2) = other.bounds();
        if s1.is_ipv4() != s2.is_ipv4() {
            return false;
        }
        self.contains(s2) || self.contains(e2) || other.contains(s1) || other.contains(e1)
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (start, end) = self.bounds();
        write!(f, "{start}-{end}")
    }
}

/// `start-end,start-end` as the reference prints a range set.
pub fn set_to_string(set: &[Range]) -> String {
    set.iter()
        .map(Range::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Canonicalizes every range of a set and checks the set: not empty, one
/// family, no overlaps.
pub fn canonicalize_set(set: &mut [Range]) -> Result<(), IpamError> {
    if set.is_empty() {
        return Err(IpamError::Config("empty range set".into()));
    }
    for r in set.iter_mut() {
        r.canonicalize()?;
    }
    if set
        .iter()
        .any(|r| r.subnet.addr().is_ipv4() != set[0].subnet.addr().is_ipv4())
    {
        return Err(IpamError::Config("mixed address families".into()));
    }
    for (i, a) in set.iter().enumerate() {
        for b in &set[i + 1..] {
            if a.overlaps(b) {
                return Err(IpamError::Config(format!("subnets {a} and {b} overlap")));
            }
        }
    }
    Ok(())
}

/// Whether any range of `a` overlaps any range of `b`.
pub fn sets_overlap(a: &[Range], b: &[Range]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(s: &str) -> Range {
        Range::new(s.parse().unwrap())
    }

    #[test]
    fn defaults() {
        let mut r = range("10.1.2.0/24");
        r.canonicalize().unwrap();
        assert_eq!(r.gateway, Some("10.1.2.1".parse().unwrap()));
        assert_eq!(r.range_start, Some("10.1.2.1".parse().unwrap()));
        assert_eq!(r.range_end, Some("10.1.2.254".parse().unwrap()));
        let mut r6 = range("fd00::/120");
        r6.canonicalize().unwrap();
        assert_eq!(r6.range_end, Some("fd00::ff".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = range("10.1.2.3/24").canonicalize().unwrap_err().to_string();
        assert!(e.contains("host bits") && e.contains("10.1.2.3/24"), "{e}");
        assert!(range("10.1.2.0/31")
            .canonicalize()
            .unwrap_err()
            .to_string()
            .contains("too small"));
        let mut r = range("10.1.2.0/24");
        r.range_start = Some("10.9.0.1".parse().unwrap());
        assert!(r
            .canonicalize()
            .unwrap_err()
            .to_string()
            .contains("rangeStart"));
        let mut r = range("10.1.2.0/24");
        r.range_end = Some("fd00::1".parse().unwrap());
        assert!(r
            .canonicalize()
            .unwrap_err()
            .to_string()
            .contains("rangeEnd"));
        let mut r = range("10.1.2.0/24");
        r.range_start = Some("10.1.2.100".parse().unwrap());
        r.range_end = Some("10.1.2.50".parse().unwrap());
        assert!(r.canonicalize().is_err());
    }

    #[test]
    fn sets() {
        let mut set = vec![range("10.1.0.0/24"), range("10.1.0.128/25")];
        assert!(canonicalize_set(&mut set)
            .unwrap_err()
            .to_string()
            .contains("overlap"));
        let mut mixed = vec![range("10.1.0.0/24"), range("fd00::/64")];
        assert!(canonicalize_set(&mut mixed)
            .unwrap_err()
            .to_string()
            .contains("mixed"));
        let mut a = vec![range("10.1.0.0/24")];
        let mut b = vec![range("10.2.0.0/24"), range("10.1.0.0/25")];
        canonicalize_set(&mut a).unwrap();
        canonicalize_set(&mut b).unwrap();
        assert!(sets_overlap(&a, &b));
        assert!(canonicalize_set(&mut []).is_err());
    }

    proptest! {
        #[test]
        fn canonicalize_never_panics(addr in any::<u32>(), prefix in 0u8..=32, start in any::<u32>(), end in any::<u32>(), gw in any::<u32>()) {
            let mut r = Range {
                subnet: IpNet::new(Ipv4Addr::from(addr).into(), prefix).unwrap(),
                range_start: Some(Ipv4Addr::from(start).into()),
                range_end: Some(Ipv4Addr::from(end).into()),
                gateway: Some(Ipv4Addr::from(gw).into()),
            };
            if r.canonicalize().is_ok() {
                let (s, e) = r.bounds();
                prop_assert!(r.subnet.contains(&s) && r.subnet.contains(&e));
            }
        }
    }
}
