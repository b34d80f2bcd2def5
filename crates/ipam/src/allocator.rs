//! Round-robin allocation over one range set, with the reference's walk:
//! start after the last address handed out (if still in the set), else at
//! the first range's start; go forward across ranges, wrapping; skip each
//! range's gateway; give up after one full lap.

use crate::error::IpamError;
use crate::range::{next_ip, set_to_string, Range};
use crate::store::DiskStore;
use ipnet::IpNet;
use std::net::IpAddr;

/// An address handed out: the address with its subnet's prefix, and the
/// gateway of its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// The allocator of range set number `index` of a config.
pub struct Allocator<'a> {
    set: &'a [Range],
    store: &'a DiskStore,
    index: usize,
}

/// The candidate walk. Yields each usable address once.
struct Walk<'a> {
    set: &'a [Range],
    range: usize,
    cur: Option<IpAddr>,
    first: Option<IpAddr>,
}

impl<'a> Walk<'a> {
    fn new(set: &'a [Range], last_reserved: Option<IpAddr>) -> Walk<'a> {
        match last_reserved.and_then(|ip| set.iter().position(|r| r.contains(ip)).map(|i| (i, ip)))
        {
            Some((range, ip)) => Walk {
                set,
                range,
                cur: Some(ip),
                first: None,
            },
            None => Walk {
                set,
                range: 0,
                cur: None,
                first: None,
            },
        }
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut r = &self.set[self.range];
            let (start, end) = r.bounds();
            let cur = match self.cur {
                None => {
                    self.first = Some(start);
                    start
                }
                Some(cur) => {
                    let next = if cur == end {
                        self.range = (self.range + 1) % self.set.len();
                        r = &self.set[self.range];
                        r.bounds().0
                    } else {
                        next_ip(cur)
                    };
                    match self.first {
                        None => self.first = Some(next),
                        Some(first) if first == next => return None,
                        Some(_) => {}
                    }
                    next
                }
            };
            self.cur = Some(cur);
            if Some(cur) != r.gateway {
                return Some((cur, r));
            }
        }
    }
}

fn with_prefix(ip: IpAddr, range: &Range) -> IpNet {
    IpNet::new(ip, range.subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip))
}

impl<'a> Allocator<'a> {
    /// `set` must be canonicalized.
    pub fn new(set: &'a [Range], store: &'a DiskStore, index: usize) -> Allocator<'a> {
        Allocator { set, store, index }
    }

    /// Hands out an address to `id`/`ifname`: `requested` if given (it must
    /// be in the set, not a gateway, and free), else the next free one.
    pub fn allocate(
        &self,
        id: &str,
        ifname: &str,
        requested: Option<IpAddr>,
    ) -> Result<Allocated, IpamError> {
        let _lock = self.store.lock()?;
        if let Some(ip) = requested {
            let range = self.set.iter().find(|r| r.contains(ip)).ok_or_else(|| {
                IpamError::Config(format!("{ip} not in range set {}", set_to_string(self.set)))
            })?;
            if Some(ip) == range.gateway {
                return Err(IpamError::Config(format!(
                    "requested ip {ip} is subnet's gateway"
                )));
            }
            if !self.store.reserve(id, ifname, ip, self.index)? {
                return Err(IpamError::Allocation(format!(
                    "requested IP address {ip} is not available in range set {}",
                    set_to_string(self.set)
                )));
            }
            return Ok(Allocated {
                address: with_prefix(ip, range),
                gateway: range.gateway,
            });
        }
        if let Some(held) = self
            .store
            .get_by_id(id, ifname)?
            .into_iter()
            .find(|ip| self.set.iter().any(|r| r.contains(*ip)))
        {
            return Err(IpamError::Allocation(format!(
                "{held} has been allocated to {id}, duplicate allocation is not allowed"
            )));
        }
        for (ip, range) in Walk::new(self.set, self.store.last_reserved(self.index)) {
            if self.store.reserve(id, ifname, ip, self.index)? {
                return Ok(Allocated {
                    address: with_prefix(ip, range),
                    gateway: range.gateway,
                });
            }
        }
        Err(IpamError::Allocation(format!(
            "no IP addresses available in range set: {}",
            set_to_string(self.set)
        )))
    }

    /// Releases what `id`/`ifname` holds in the store.
    pub fn release(&self, id: &str, ifname: &str) -> Result<(), IpamError> {
        let _lock = self.store.lock()?;
        self.store.release_by_id(id, ifname).map(|_| ())
    }

    /// Whether at least one address of the set is free.
    pub fn has_free(&self) -> Result<bool, IpamError> {
        let _lock = self.store.lock()?;
        let taken: std::collections::HashSet<IpAddr> = self
            .store
            .allocations()?
            .into_iter()
            .map(|a| a.ip)
            .collect();
        Ok(Walk::new(self.set, None).any(|(ip, _)| !taken.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::canonicalize_set;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn set(specs: &[&str]) -> Vec<Range> {
        let mut s: Vec<Range> = specs
            .iter()
            .map(|n| Range::new(n.parse().unwrap()))
            .collect();
        canonicalize_set(&mut s).unwrap();
        s
    }

    fn addr(a: &Allocated) -> String {
        a.address.to_string()
    }

    #[test]
    fn round_robin_and_wrap() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let s = set(&["10.0.0.0/29"]);
        let a = Allocator::new(&s, &store, 0);
        let got: Vec<String> = (0..5)
            .map(|i| addr(&a.allocate(&format!("c{i}"), "eth0", None).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.2/29",
                "10.0.0.3/29",
                "10.0.0.4/29",
                "10.0.0.5/29",
                "10.0.0.6/29"
            ]
        );
        let e = a.allocate("c5", "eth0", None).unwrap_err().to_string();
        assert_eq!(
            e,
            "no IP addresses available in range set: 10.0.0.1-10.0.0.6"
        );
        a.release("c1", "eth0").unwrap();
        a.release("c3", "eth0").unwrap();
        // After .6 the walk wraps to the start and finds .3 first.
        assert_eq!(
            addr(&a.allocate("c6", "eth0", None).unwrap()),
            "10.0.0.3/29"
        );
        assert_eq!(
            addr(&a.allocate("c7", "eth0", None).unwrap()),
            "10.0.0.5/29"
        );
    }

    #[test]
    fn walks_across_ranges_and_skips_gateways() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let mut s = vec![
            Range::new("10.0.0.0/30".parse().unwrap()),
            Range::new("10.1.0.0/24".parse().unwrap()),
        ];
        s[1].range_start = Some("10.1.0.1".parse().unwrap());
        s[1].range_end = Some("10.1.0.2".parse().unwrap());
        canonicalize_set(&mut s).unwrap();
        let a = Allocator::new(&s, &store, 0);
        let first = a.allocate("c0", "eth0", None).unwrap();
        assert_eq!(addr(&first), "10.0.0.2/30");
        assert_eq!(first.gateway, Some("10.0.0.1".parse().unwrap()));
        // 10.1.0.1 is the second range's gateway: skipped.
        let second = a.allocate("c1", "eth0", None).unwrap();
        assert_eq!(addr(&second), "10.1.0.2/24");
        assert_eq!(second.gateway, Some("10.1.0.1".parse().unwrap()));
        assert!(a.allocate("c2", "eth0", None).is_err());
        assert!(!a.has_free().unwrap());
    }

    #[test]
    fn requested_and_duplicate() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let s = set(&["10.0.0.0/24"]);
        let a = Allocator::new(&s, &store, 0);
        let ip: IpAddr = "10.0.0.77".parse().unwrap();
        assert_eq!(
            addr(&a.allocate("c1", "eth0", Some(ip)).unwrap()),
            "10.0.0.77/24"
        );
        assert!(a
            .allocate("c2", "eth0", Some(ip))
            .unwrap_err()
            .to_string()
            .contains("not available"));
        assert!(a
            .allocate("c2", "eth0", Some("10.0.0.1".parse().unwrap()))
            .unwrap_err()
            .to_string()
            .contains("gateway"));
        assert!(a
            .allocate("c2", "eth0", Some("10.9.0.1".parse().unwrap()))
            .unwrap_err()
            .is_config());
        let dup = a.allocate("c1", "eth0", None).unwrap_err().to_string();
        assert!(dup.contains("duplicate allocation is not allowed"), "{dup}");
        // Round robin continues after the requested address.
        assert_eq!(
            addr(&a.allocate("c3", "eth0", None).unwrap()),
            "10.0.0.78/24"
        );
    }

    #[test]
    fn ipv6_sets() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let s = set(&["fd00::/126"]);
        let a = Allocator::new(&s, &store, 3);
        let got: Vec<String> = (0..2)
            .map(|i| addr(&a.allocate(&format!("c{i}"), "eth0", None).unwrap()))
            .collect();
        assert_eq!(got, ["fd00::2/126", "fd00::3/126"]);
        assert!(a.allocate("c2", "eth0", None).is_err());
        assert_eq!(store.last_reserved(3), Some("fd00::3".parse().unwrap()));
    }

    #[test]
    fn threads_never_share_an_address() {
        let d = tempfile::tempdir().unwrap();
        let s = set(&["10.0.0.0/24"]);
        let ips: Vec<IpAddr> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (s, dir) = (&s, d.path());
                    scope.spawn(move || {
                        let store = DiskStore::open(dir, "n").unwrap();
                        let a = Allocator::new(s, &store, 0);
                        (0..20)
                            .map(|i| {
                                a.allocate(&format!("t{t}c{i}"), "eth0", None)
                                    .unwrap()
                                    .address
                                    .addr()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let distinct: HashSet<_> = ips.iter().collect();
        assert_eq!(distinct.len(), 160);
    }

    proptest! {
        #[test]
        fn exhaustion_gives_distinct_usable_addresses(prefix in 26u8..=30, start_off in 1u32..4, releases in proptest::collection::vec(0usize..8, 0..4)) {
            let d = tempfile::tempdir().unwrap();
            let store = DiskStore::open(d.path(), "n").unwrap();
            let mut r = Range::new(format!("10.5.0.0/{prefix}").parse().unwrap());
            r.range_start = Some(std::net::Ipv4Addr::from(0x0a05_0000 + start_off).into());
            let mut s = vec![r];
            prop_assume!(canonicalize_set(&mut s).is_ok());
            let a = Allocator::new(&s, &store, 0);
            let mut got = Vec::new();
            while let Ok(x) = a.allocate(&format!("c{}", got.len()), "eth0", None) {
                got.push(x.address.addr());
                prop_assert!(got.len() <= 64);
            }
            let distinct: HashSet<_> = got.iter().collect();
            prop_assert_eq!(distinct.len(), got.len());
            for ip in &got {
                prop_assert!(s[0].contains(*ip));
                prop_assert!(Some(*ip) != s[0].gateway);
            }
            let (start, end) = s[0].bounds();
            let usable = (crate::range::to_u128(end) - crate::range::to_u128(start) + 1) as usize
                - usize::from(s[0].contains(s[0].gateway.unwrap()));
            prop_assert_eq!(got.len(), usable);
            let mut releases = releases;
            releases.sort_unstable();
            releases.dedup();
            for i in &releases {
                if *i < got.len() {
                    a.release(&format!("c{i}"), "eth0").unwrap();
                    let again = a.allocate(&format!("again{i}"), "eth0", None).unwrap();
                    prop_assert_eq!(again.address.addr(), got[*i]);
                }
            }
        }
    }
}
