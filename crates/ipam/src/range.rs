//! Ranges and range sets, validated and completed exactly as the reference
//! does (`backend/allocator/range.go`, `range_set.go`, `config.go`).
//!
//! Like the reference, addresses are canonicalized first: an IPv4-mapped
//! IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address.

use crate::error::IpamError;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One range of a range set. After [`Range::canonicalize`] the optional
/// fields are all set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// A CIDR string in JSON; host bits are kept so canonicalization can
    /// reject them, as the reference does.
    pub subnet: IpNet,
    #[serde(
        rename = "rangeStart",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub range_start: Option<IpAddr>,
    #[serde(
        rename = "rangeEnd",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub range_end: Option<IpAddr>,
    #[serde(
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway: Option<IpAddr>,
}

/// A list of ranges handing out one address per attachment; every range of
/// a set is of one family and they do not overlap.
pub type RangeSet = Vec<Range>;

/// Go's `net.IP` reads `""` as no address.
fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format_args!("invalid IP address: {s}"))),
    }
}

/// An address as a number, for arithmetic across both families.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address after `ip`, wrapping at the end of the family's space.
pub(crate) fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_add(1))),
    }
}

/// The reference's `ip.Cmp`: `None` when the families differ.
fn cmp_ip(a: IpAddr, b: IpAddr) -> Option<Ordering> {
    let (a, b) = (a.to_canonical(), b.to_canonical());
    (a.is_ipv4() == b.is_ipv4()).then(|| to_u128(a).cmp(&to_u128(b)))
}

/// The text the reference gives an address (and names its store file by):
/// IPv4-mapped IPv6 addresses print as IPv4.
pub fn ip_text(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
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

    /// Validates the range and fills in the reference's defaults:
    /// gateway = network+1, rangeStart = network+1 (the gateway is skipped
    /// when allocating), rangeEnd = the last address (IPv4: the one before
    /// broadcast). The subnet must be at most a /30 (IPv6: /126) and have
    /// no host bits; rangeStart and rangeEnd must lie in it, in order.
    ///
    /// Like the reference, the gateway may lie outside the subnet; unlike
    /// it, a gateway of the other family is rejected.
    pub fn canonicalize(&mut self) -> Result<(), IpamError> {
        let subnet = self.subnet;
        let bits = match subnet {
            IpNet::V4(_) => 32,
            IpNet::V6(_) => 128,
        };
        if subnet.prefix_len() > bits - 2 {
            return Err(IpamError::TooSmall { subnet });
        }
        if subnet.addr().to_canonical().is_ipv4() != subnet.addr().is_ipv4() {
            return Err(IpamError::MaskMismatch { subnet });
        }
        let network = subnet.network();
        if subnet.addr() != network {
            return Err(IpamError::HostBits { subnet });
        }
        for ip in [
            &mut self.gateway,
            &mut self.range_start,
            &mut self.range_end,
        ]
        .into_iter()
        .flatten()
        {
            *ip = ip.to_canonical();
        }

        match self.gateway {
            None => self.gateway = Some(next_ip(network)),
            Some(gateway) if gateway.is_ipv4() != network.is_ipv4() => {
                return Err(IpamError::GatewayFamily { gateway, subnet });
            }
            Some(_) => {}
        }

        match self.range_start {
            None => self.range_start = Some(next_ip(network)),
            Some(start) if !self.contains(start) => {
                return Err(match self.range_end {
                    Some(end)
                        if subnet.contains(&start)
                            && cmp_ip(start, end) == Some(Ordering::Greater) =>
                    {
                        IpamError::StartAfterEnd { start, end, subnet }
                    }
                    _ => IpamError::NotInNetwork {
                        field: "RangeStart",
                        ip: start,
                        subnet,
                    },
                });
            }
            Some(_) => {}
        }

        match self.range_end {
            None => {
                let broadcast = subnet.broadcast();
                self.range_end = Some(match broadcast {
                    IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) - 1)),
                    IpAddr::V6(_) => broadcast,
                });
            }
            Some(end) if !self.contains(end) => {
                return Err(IpamError::NotInNetwork {
                    field: "RangeEnd",
                    ip: end,
                    subnet,
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// First and last address (after canonicalization; before, the
    /// missing ends are the subnet's network and broadcast addresses).
    pub fn bounds(&self) -> (IpAddr, IpAddr) {
        let start = self.range_start.unwrap_or_else(|| self.subnet.network());
        let end = self.range_end.unwrap_or_else(|| self.subnet.broadcast());
        (start, end)
    }

    /// Whether `ip` lies in the subnet and between rangeStart and rangeEnd
    /// (each bound only if set), with the reference's comparison rules.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.subnet.addr().is_ipv4() || !self.subnet.contains(&ip) {
            return false;
        }
        if let Some(start) = self.range_start {
            // Families that differ compare as "less" in the reference.
            if !matches!(cmp_ip(ip, start), Some(Ordering::Greater | Ordering::Equal)) {
                return false;
            }
        }
        if let Some(end) = self.range_end {
            if cmp_ip(ip, end) == Some(Ordering::Greater) {
                return false;
            }
        }
        true
    }

    /// Whether two ranges share an address (never across families).
    pub fn overlaps(&self, other: &Range) -> bool {
        let (s1, e1) = self.bounds();
        let (s2, e2) = other.bounds();
        if s1.is_ipv4() != s2.is_ipv4() {
            return false;
        }
        self.contains(s2) || self.contains(e2) || other.contains(s1) || other.contains(e1)
    }

    pub fn is_ipv4(&self) -> bool {
        self.subnet.addr().is_ipv4()
    }
}

impl std::fmt::Display for Range {
    /// `start-end`, as the reference prints a range.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (start, end) = self.bounds();
        write!(f, "{start}-{end}")
    }
}

/// Range-set operations, on any slice of ranges (so on [`RangeSet`]).
pub trait RangeSetExt {
    /// Canonicalizes every range and checks the set: not empty, one
    /// family, no two ranges overlapping.
    fn canonicalize(&mut self) -> Result<(), IpamError>;
    /// The range holding `ip`, or the reference's "… not in range set …".
    fn range_for(&self, ip: IpAddr) -> Result<&Range, IpamError>;
    /// Whether some range holds `ip`.
    fn contains_ip(&self, ip: IpAddr) -> bool;
    /// Whether any range of `self` overlaps any range of `other`.
    fn overlaps(&self, other: &[Range]) -> bool;
    /// `start-end,start-end`, as the reference prints a set.
    fn display_string(&self) -> String;
}

impl RangeSetExt for [Range] {
    fn canonicalize(&mut self) -> Result<(), IpamError> {
        canonicalize_set(self)
    }

    fn range_for(&self, ip: IpAddr) -> Result<&Range, IpamError> {
        self.iter()
            .find(|r| r.contains(ip))
            .ok_or_else(|| IpamError::NotInRangeSet {
                ip: ip.to_canonical(),
                set: set_to_string(self),
            })
    }

    fn contains_ip(&self, ip: IpAddr) -> bool {
        self.iter().any(|r| r.contains(ip))
    }

    fn overlaps(&self, other: &[Range]) -> bool {
        sets_overlap(self, other)
    }

    fn display_string(&self) -> String {
        set_to_string(self)
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
/// family (checked range by range, as the reference does), no overlaps.
pub fn canonicalize_set(set: &mut [Range]) -> Result<(), IpamError> {
    if set.is_empty() {
        return Err(IpamError::EmptySet);
    }
    let mut v4 = None;
    for r in set.iter_mut() {
        r.canonicalize()?;
        let this = r.bounds().0.is_ipv4();
        if *v4.get_or_insert(this) != this {
            return Err(IpamError::MixedFamilies);
        }
    }
    for (i, a) in set.iter().enumerate() {
        for b in &set[i + 1..] {
            if a.overlaps(b) {
                return Err(IpamError::RangesOverlap {
                    a: a.to_string(),
                    b: b.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Whether any range of `a` overlaps any range of `b`.
pub fn sets_overlap(a: &[Range], b: &[Range]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

/// The reference's checks on a config's range sets: each canonicalized
/// ("invalid range set N: …"), then no two sets overlapping ("range set I
/// overlaps with J"). The reference checks "more than one address per
/// family needs cniVersion ≥ 0.3.0" between the two; that is the plugin's.
pub fn validate_sets(sets: &mut [RangeSet]) -> Result<(), IpamError> {
    for (index, set) in sets.iter_mut().enumerate() {
        canonicalize_set(set).map_err(|e| IpamError::InvalidSet {
            index,
            source: Box::new(e),
        })?;
    }
    for (a, x) in sets.iter().enumerate() {
        for (b, y) in sets.iter().enumerate().skip(a + 1) {
            if sets_overlap(x, y) {
                return Err(IpamError::SetsOverlap { a, b });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(s: &str) -> Range {
        Range::new(s.parse().unwrap())
    }

    fn with(s: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> Range {
        Range {
            subnet: s.parse().unwrap(),
            range_start: start.map(ip),
            range_end: end.map(ip),
            gateway: gw.map(ip),
        }
    }

    fn err(mut r: Range) -> String {
        let e = r.canonicalize().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        e.to_string()
    }

    #[test]
    fn ipv4_defaults() {
        let mut r = range("10.1.2.0/24");
        r.canonicalize().unwrap();
        assert_eq!(r.gateway, Some(ip("10.1.2.1")));
        assert_eq!(r.range_start, Some(ip("10.1.2.1")));
        assert_eq!(r.range_end, Some(ip("10.1.2.254")));
        assert_eq!(r.to_string(), "10.1.2.1-10.1.2.254");
        let mut small = range("192.0.2.0/30");
        small.canonicalize().unwrap();
        assert_eq!(small.to_string(), "192.0.2.1-192.0.2.2");
        // Canonicalizing twice changes nothing.
        let again = r.clone();
        r.canonicalize().unwrap();
        assert_eq!(r, again);
    }

    #[test]
    fn ipv6_defaults() {
        let mut r6 = range("2001:db8:1::/64");
        r6.canonicalize().unwrap();
        assert_eq!(r6.gateway, Some(ip("2001:db8:1::1")));
        assert_eq!(r6.range_start, Some(ip("2001:db8:1::1")));
        assert_eq!(r6.range_end, Some(ip("2001:db8:1::ffff:ffff:ffff:ffff")));
        let mut r = range("fd00::/126");
        r.canonicalize().unwrap();
        assert_eq!(r.to_string(), "fd00::1-fd00::3");
        assert!(range("fd00::/127").canonicalize().is_err());
    }

    #[test]
    fn explicit_fields_are_kept() {
        let mut r = with(
            "192.0.2.0/24",
            Some("192.0.2.40"),
            Some("192.0.2.50"),
            Some("192.0.2.254"),
        );
        r.canonicalize().unwrap();
        assert_eq!(r.bounds(), (ip("192.0.2.40"), ip("192.0.2.50")));
        assert_eq!(r.gateway, Some(ip("192.0.2.254")));
        // As in the reference, the network and broadcast addresses are
        // accepted as explicit bounds, and the gateway may be outside.
        let mut r = with(
            "192.0.2.0/24",
            Some("192.0.2.0"),
            Some("192.0.2.255"),
            Some("10.0.0.1"),
        );
        r.canonicalize().unwrap();
        // IPv4-mapped addresses are IPv4.
        let mut r = with("192.0.2.0/24", Some("::ffff:192.0.2.9"), None, None);
        r.canonicalize().unwrap();
        assert_eq!(r.range_start, Some(ip("192.0.2.9")));
        assert!(r.contains(ip("::ffff:192.0.2.10")));
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            err(range("192.0.2.10/24")),
            "Network 192.0.2.10/24 has host bits set. For a subnet mask of length 24 the network address is 192.0.2.0"
        );
        assert_eq!(
            err(range("2001:db8:24:19ff::/63")),
            "Network 2001:db8:24:19ff::/63 has host bits set. For a subnet mask of length 63 the network address is 2001:db8:24:19fe::"
        );
        assert_eq!(
            err(range("192.0.2.0/31")),
            "Network 192.0.2.0/31 too small to allocate from"
        );
        assert!(err(range("192.0.2.0/32")).contains("too small"));
        assert!(err(range("::ffff:10.0.0.0/120")).contains("version mismatch"));
        assert_eq!(
            err(with("192.0.2.0/24", Some("192.0.3.0"), None, None)),
            "RangeStart 192.0.3.0 not in network 192.0.2.0/24"
        );
        assert_eq!(
            err(with("192.0.2.0/24", None, Some("192.0.4.0"), None)),
            "RangeEnd 192.0.4.0 not in network 192.0.2.0/24"
        );
        assert_eq!(
            err(with(
                "192.0.2.0/24",
                Some("192.0.2.50"),
                Some("192.0.2.40"),
                None
            )),
            "RangeStart 192.0.2.50 not in network 192.0.2.0/24: it is after RangeEnd 192.0.2.40"
        );
        assert_eq!(
            err(with("192.0.2.0/24", Some("fd00::1"), None, None)),
            "RangeStart fd00::1 not in network 192.0.2.0/24"
        );
        assert_eq!(
            err(with(
                "192.0.2.0/24",
                Some("192.0.2.5"),
                Some("fd00::1"),
                None
            )),
            "RangeEnd fd00::1 not in network 192.0.2.0/24"
        );
        assert_eq!(
            err(with("192.0.2.0/24", None, None, Some("fd00::1"))),
            "gateway fd00::1 is not of the address family of network 192.0.2.0/24"
        );
    }

    #[test]
    fn contains_and_overlaps() {
        let mut r = with("192.0.2.0/24", Some("192.0.2.10"), Some("192.0.2.20"), None);
        r.canonicalize().unwrap();
        assert!(r.contains(ip("192.0.2.10")) && r.contains(ip("192.0.2.20")));
        assert!(!r.contains(ip("192.0.2.9")) && !r.contains(ip("192.0.2.21")));
        assert!(!r.contains(ip("::1")));
        let canon = |mut r: Range| {
            r.canonicalize().unwrap();
            r
        };
        let cases = [
            (range("10.0.0.0/24"), range("10.0.1.0/24"), false),
            (range("0.0.0.0/24"), range("::/24"), false),
            (range("10.0.0.0/24"), range("10.0.0.0/24"), true),
            (range("10.0.0.0/20"), range("10.0.1.0/24"), true),
            (
                with("10.0.0.0/24", None, Some("10.0.0.127"), None),
                with("10.0.0.0/24", Some("10.0.0.128"), None, None),
                false,
            ),
            (
                with("10.0.0.0/24", None, Some("10.0.0.127"), None),
                with("10.0.0.0/24", Some("10.0.0.127"), None, None),
                true,
            ),
        ];
        for (a, b, expected) in cases {
            let (a, b) = (canon(a), canon(b));
            assert_eq!(a.overlaps(&b), expected, "{a} {b}");
            assert_eq!(b.overlaps(&a), expected, "{b} {a}");
        }
    }

    #[test]
    fn sets() {
        let mut set: RangeSet = vec![range("192.168.0.0/20"), range("192.168.2.0/24")];
        assert_eq!(
            set.canonicalize().unwrap_err().to_string(),
            "subnets 192.168.0.1-192.168.15.254 and 192.168.2.1-192.168.2.254 overlap"
        );
        let mut mixed = vec![range("10.1.0.0/24"), range("fd00::/64")];
        assert_eq!(
            canonicalize_set(&mut mixed).unwrap_err().to_string(),
            "mixed address families"
        );
        assert_eq!(
            canonicalize_set(&mut []).unwrap_err().to_string(),
            "empty range set"
        );
        let mut set: RangeSet = vec![range("192.168.0.0/24"), range("172.16.1.0/24")];
        set.canonicalize().unwrap();
        assert_eq!(
            set.range_for(ip("172.16.1.5")).unwrap().subnet.to_string(),
            "172.16.1.0/24"
        );
        assert!(set.contains_ip(ip("192.168.0.7")));
        assert!(!set.contains_ip(ip("192.168.0.255")));
        assert_eq!(
            set.range_for(ip("192.168.99.99")).unwrap_err().to_string(),
            "192.168.99.99 not in range set 192.168.0.1-192.168.0.254,172.16.1.1-172.16.1.254"
        );
        let mut a = vec![range("10.1.0.0/24")];
        let mut b = vec![range("10.2.0.0/24"), range("10.1.0.0/25")];
        canonicalize_set(&mut a).unwrap();
        canonicalize_set(&mut b).unwrap();
        assert!(a.overlaps(&b) && sets_overlap(&b, &a));
    }

    #[test]
    fn config_level_validation() {
        let mut sets = vec![
            vec![range("10.1.0.0/24")],
            vec![range("fd00::/64")],
            vec![range("10.1.0.0/25")],
        ];
        assert_eq!(
            validate_sets(&mut sets).unwrap_err().to_string(),
            "range set 0 overlaps with 2"
        );
        let mut sets = vec![vec![range("10.1.0.0/24")], vec![range("10.2.0.1/24")]];
        let e = validate_sets(&mut sets).unwrap_err();
        assert!(e.is_config());
        assert!(
            e.to_string()
                .starts_with("invalid range set 1: Network 10.2.0.1/24"),
            "{e}"
        );
        let mut sets = vec![vec![range("10.1.0.0/24")], vec![range("10.2.0.0/24")]];
        validate_sets(&mut sets).unwrap();
    }

    #[test]
    fn serde_names() {
        let r: Range = serde_json::from_str(
            r#"{"subnet":"10.1.2.3/24","rangeStart":"10.1.2.10","rangeEnd":"","gateway":"10.1.2.1"}"#,
        )
        .unwrap();
        assert_eq!(r.subnet.to_string(), "10.1.2.3/24");
        assert_eq!(r.range_start, Some(ip("10.1.2.10")));
        assert_eq!(r.range_end, None);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"subnet":"10.1.2.3/24","rangeStart":"10.1.2.10","gateway":"10.1.2.1"}"#
        );
        assert!(
            serde_json::from_str::<Range>(r#"{"subnet":"10.1.2.0/24","gateway":"x"}"#).is_err()
        );
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
            any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
            any::<u32>().prop_map(|n| IpAddr::V6(Ipv4Addr::from(n).to_ipv6_mapped())),
        ]
    }

    fn any_subnet() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| IpNet::new(Ipv4Addr::from(a).into(), p).unwrap()),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| IpNet::new(Ipv6Addr::from(a).into(), p).unwrap()),
            // Small subnets with some host bits cleared, so the valid
            // paths run often too.
            (any::<u32>(), 22u8..=32).prop_map(|(a, p)| IpNet::new(
                Ipv4Addr::from(a & !0xff).into(),
                p
            )
            .unwrap()),
        ]
    }

    proptest! {
        #[test]
        fn canonicalize_never_panics(
            subnet in any_subnet(),
            start in proptest::option::of(any_ip()),
            end in proptest::option::of(any_ip()),
            gw in proptest::option::of(any_ip()),
        ) {
            let mut r = Range { subnet, range_start: start, range_end: end, gateway: gw };
            let _ = r.to_string();
            if r.canonicalize().is_ok() {
                let (s, e) = r.bounds();
                prop_assert!(r.subnet.contains(&s) && r.subnet.contains(&e));
                prop_assert!(to_u128(s) <= to_u128(e));
                prop_assert!(r.contains(s) && r.contains(e));
                prop_assert_eq!(r.gateway.map(|g| g.is_ipv4()), Some(s.is_ipv4()));
                prop_assert!(r.overlaps(&r.clone()));
            }
        }

        #[test]
        fn random_sets_never_panic(subnets in proptest::collection::vec(any_subnet(), 0..4)) {
            let mut set: RangeSet = subnets.into_iter().map(Range::new).collect();
            if set.canonicalize().is_ok() {
                for (i, a) in set.iter().enumerate() {
                    for b in &set[i + 1..] {
                        prop_assert!(!a.overlaps(b));
                    }
                }
            }
        }
    }
}
