//! Round-robin allocation over one range set, with the reference's walk
//! (`backend/allocator/allocator.go`): start after the last address handed
//! out (if still in the set), else at the first range's start; go forward
//! across ranges, wrapping; skip each range's gateway; give up after one
//! full lap.

use crate::error::IpamError;
use crate::range::{next_ip, set_to_string, Range, RangeSetExt};
use crate::store::DiskStore;
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;

/// An address handed out: the address with its subnet's prefix, and the
/// gateway of its range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

/// The allocator of range set number `range_set_index` of a config.
#[derive(Debug, Clone, Copy)]
pub struct Allocator<'a> {
    range_set: &'a [Range],
    store: &'a DiskStore,
    range_set_index: usize,
}

/// The reference's candidate walk over a canonicalized range set. Yields
/// each address of the set once (gateways excluded) with its range,
/// starting after `last_reserved` when that lies in the set, else at the
/// first range's start.
#[derive(Debug, Clone)]
pub struct RangeIter<'a> {
    set: &'a [Range],
    range: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
    done: bool,
}

impl<'a> RangeIter<'a> {
    pub fn new(set: &'a [Range], last_reserved: Option<IpAddr>) -> RangeIter<'a> {
        let from = last_reserved.and_then(|ip| {
            let ip = ip.to_canonical();
            set.iter().position(|r| r.contains(ip)).map(|i| (i, ip))
        });
        RangeIter {
            set,
            range: from.map_or(0, |(i, _)| i),
            cur: from.map(|(_, ip)| ip),
            start: None,
            done: set.is_empty(),
        }
    }
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let mut r = &self.set[self.range];
            let (first, end) = r.bounds();
            let cur = match self.cur {
                None => {
                    self.start = Some(first);
                    first
                }
                Some(cur) => {
                    let next = if cur == end {
                        self.range = (self.range + 1) % self.set.len();
                        r = &self.set[self.range];
                        r.bounds().0
                    } else {
                        next_ip(cur)
                    };
                    match self.start {
                        None => self.start = Some(next),
                        Some(start) if start == next => {
                            self.done = true;
                            return None;
                        }
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
        None
    }
}

impl std::iter::FusedIterator for RangeIter<'_> {}

fn allocated(ip: IpAddr, range: &Range) -> Allocated {
    Allocated {
        address: IpNet::new(ip, range.subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip)),
        gateway: range.gateway,
    }
}

impl<'a> Allocator<'a> {
    /// `range_set` must be canonicalized; `range_set_index` is its place in
    /// the config (it names `last_reserved_ip.<index>`).
    pub fn new(
        range_set: &'a [Range],
        store: &'a DiskStore,
        range_set_index: usize,
    ) -> Allocator<'a> {
        Allocator {
            range_set,
            store,
            range_set_index,
        }
    }

    pub fn range_set(&self) -> &'a [Range] {
        self.range_set
    }

    /// Hands out an address to `id`/`ifname`, holding the store's lock.
    ///
    /// With `requested`: it must lie in a range of the set, not be that
    /// range's gateway, and be free (as in the reference, no duplicate
    /// check is made then). Without: fails if `id`/`ifname` already holds
    /// an address of this set ("duplicate allocation is not allowed"),
    /// else takes the next free address of the round-robin walk.
    pub fn allocate(
        &self,
        id: &str,
        ifname: &str,
        requested: Option<IpAddr>,
    ) -> Result<Allocated, IpamError> {
        let lock = self.store.lock()?;
        if let Some(ip) = requested {
            let ip = ip.to_canonical();
            let range = self.range_set.range_for(ip)?;
            if Some(ip) == range.gateway {
                return Err(IpamError::RequestedGateway { ip });
            }
            if !self.store.reserve(id, ifname, ip, self.range_set_index)? {
                return Err(IpamError::RequestedTaken {
                    ip,
                    set: set_to_string(self.range_set),
                });
            }
            return Ok(allocated(ip, range));
        }
        if let Some(held) = self
            .store
            .get_by_id_locked(&lock, id, ifname)?
            .into_iter()
            .find(|ip| self.range_set.contains_ip(*ip))
        {
            return Err(IpamError::Duplicate {
                ip: held,
                id: id.to_string(),
            });
        }
        for (ip, range) in self.iter() {
            if self.store.reserve(id, ifname, ip, self.range_set_index)? {
                return Ok(allocated(ip, range));
            }
        }
        Err(IpamError::Exhausted {
            set: set_to_string(self.range_set),
        })
    }

    /// Releases everything `id`/`ifname` holds in the store (in any set,
    /// as the reference does), holding the lock; returns the addresses.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let _lock = self.store.lock()?;
        self.store.release_by_id(id, ifname)
    }

    /// The walk the next allocation will take (without the lock, so only
    /// a snapshot).
    pub fn iter(&self) -> RangeIter<'a> {
        RangeIter::new(
            self.range_set,
            self.store.last_reserved(self.range_set_index),
        )
    }

    /// Whether at least one address of the set is free.
    pub fn has_free(&self) -> Result<bool, IpamError> {
        let _lock = self.store.lock()?;
        let taken: HashSet<IpAddr> = self
            .store
            .allocations()?
            .into_iter()
            .map(|a| a.ip)
            .collect();
        Ok(RangeIter::new(self.range_set, None).any(|(ip, _)| !taken.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::{canonicalize_set, to_u128};
    use proptest::prelude::*;
    use std::fs;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

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

    fn walk(s: &[Range], last: Option<&str>) -> Vec<String> {
        RangeIter::new(s, last.map(ip))
            .map(|(ip, _)| ip.to_string())
            .collect()
    }

    #[test]
    fn iteration_order_and_wrap() {
        let s = set(&["192.168.1.0/29"]);
        let all = [
            "192.168.1.2",
            "192.168.1.3",
            "192.168.1.4",
            "192.168.1.5",
            "192.168.1.6",
        ];
        assert_eq!(walk(&s, None), all);
        assert_eq!(walk(&s, Some("192.168.1.6")), all);
        assert_eq!(
            walk(&s, Some("192.168.1.3")),
            [
                "192.168.1.4",
                "192.168.1.5",
                "192.168.1.6",
                "192.168.1.2",
                "192.168.1.3"
            ]
        );
        // Outside the set (or unparsable, i.e. None): from the start.
        assert_eq!(walk(&s, Some("10.9.9.9")), all);
        assert_eq!(walk(&s, Some("192.168.1.7")), all);
        // Fused.
        let mut it = RangeIter::new(&s, None);
        assert_eq!(it.by_ref().count(), 5);
        assert!(it.next().is_none());
        assert!(RangeIter::new(&[], None).next().is_none());
    }

    #[test]
    fn iteration_across_ranges() {
        let s = set(&["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"]);
        assert_eq!(walk(&s, None), ["10.0.0.2", "10.0.1.2", "10.0.2.2"]);
        assert_eq!(
            walk(&s, Some("10.0.0.2")),
            ["10.0.1.2", "10.0.2.2", "10.0.0.2"]
        );
        assert_eq!(
            walk(&s, Some("10.0.2.2")),
            ["10.0.0.2", "10.0.1.2", "10.0.2.2"]
        );
        // The reference's multi-range case: explicit bounds including the
        // network addresses, and last reserved at the end of a range.
        let mut m = vec![
            Range {
                range_start: Some(ip("192.168.1.0")),
                range_end: Some(ip("192.168.1.3")),
                ..Range::new("192.168.1.0/30".parse().unwrap())
            },
            Range {
                range_start: Some(ip("192.168.2.0")),
                range_end: Some(ip("192.168.2.3")),
                ..Range::new("192.168.2.0/30".parse().unwrap())
            },
        ];
        canonicalize_set(&mut m).unwrap();
        assert_eq!(
            walk(&m, Some("192.168.1.3")),
            [
                "192.168.2.0",
                "192.168.2.2",
                "192.168.2.3",
                "192.168.1.0",
                "192.168.1.2",
                "192.168.1.3"
            ]
        );
        assert_eq!(walk(&m, None)[0], "192.168.1.0");
    }

    #[test]
    fn gateway_only_ranges_end_the_walk() {
        let mut s = vec![Range {
            range_start: Some(ip("10.0.0.1")),
            range_end: Some(ip("10.0.0.1")),
            ..Range::new("10.0.0.0/24".parse().unwrap())
        }];
        canonicalize_set(&mut s).unwrap();
        assert!(walk(&s, None).is_empty());
        assert!(walk(&s, Some("10.0.0.1")).is_empty());
        s[0].gateway = Some(ip("10.0.0.254"));
        assert_eq!(walk(&s, Some("10.0.0.1")), ["10.0.0.1"]);
    }

    /// The reference's table of round-robin cases (`allocator_test.go`).
    #[test]
    fn reference_round_robin_cases() {
        /// Subnets, taken addresses, expected address, last reserved.
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (&["10.0.0.0/29"], &[], "10.0.0.2", None),
            (&["2001:db8:1::0/64"], &[], "2001:db8:1::2", None),
            (&["10.0.0.0/30"], &[], "10.0.0.2", None),
            (&["10.0.0.0/29"], &["10.0.0.2"], "10.0.0.3", None),
            (&["10.0.0.0/29"], &[], "10.0.0.6", Some("10.0.0.5")),
            (
                &["10.0.0.0/29"],
                &["10.0.0.4", "10.0.0.5"],
                "10.0.0.6",
                Some("10.0.0.3"),
            ),
            (
                &["10.0.0.0/29"],
                &["10.0.0.6"],
                "10.0.0.2",
                Some("10.0.0.5"),
            ),
            (
                &["10.0.0.0/29"],
                &["10.0.0.2"],
                "10.0.0.3",
                Some("10.0.0.128"),
            ),
            (
                &["10.0.0.0/29"],
                &["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
                "10.0.0.3",
                Some("10.0.0.3"),
            ),
            (&["10.0.0.0/30", "10.0.1.0/30"], &[], "10.0.0.2", None),
            (
                &["10.0.0.0/30", "10.0.1.0/30"],
                &[],
                "10.0.1.2",
                Some("10.0.0.2"),
            ),
            (
                &["10.0.0.0/30", "10.0.1.0/30", "10.0.2.0/30"],
                &[],
                "10.0.0.2",
                Some("10.0.2.2"),
            ),
        ];
        for (subnets, taken, expected, last) in cases {
            let d = tempfile::tempdir().unwrap();
            let store = DiskStore::open(d.path(), "n").unwrap();
            for t in *taken {
                fs::write(store.dir().join(t), "id").unwrap();
            }
            if let Some(last) = last {
                fs::write(store.dir().join("last_reserved_ip.0"), last).unwrap();
            }
            let s = set(subnets);
            let got = Allocator::new(&s, &store, 0)
                .allocate("ID", "eth0", None)
                .unwrap();
            assert_eq!(got.address.addr().to_string(), *expected, "{subnets:?}");
        }
    }

    #[test]
    fn exhaustion_of_a_small_range() {
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
        let e = a.allocate("c5", "eth0", None).unwrap_err();
        assert!(e.is_allocation());
        assert_eq!(
            e.to_string(),
            "no IP addresses available in range set: 10.0.0.1-10.0.0.6"
        );
        assert!(!a.has_free().unwrap());
        // Several ranges, all full.
        let d2 = tempfile::tempdir().unwrap();
        let store2 = DiskStore::open(d2.path(), "n").unwrap();
        let s2 = set(&["10.0.0.0/30", "10.0.1.0/30"]);
        let a2 = Allocator::new(&s2, &store2, 0);
        a2.allocate("x", "eth0", None).unwrap();
        a2.allocate("y", "eth0", None).unwrap();
        assert_eq!(
            a2.allocate("z", "eth0", None).unwrap_err().to_string(),
            "no IP addresses available in range set: 10.0.0.1-10.0.0.2,10.0.1.1-10.0.1.2"
        );
    }

    #[test]
    fn round_robin_across_allocate_and_release() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let s = set(&["10.0.0.0/29"]);
        let a = Allocator::new(&s, &store, 0);
        // A released address is not handed out again at once.
        assert_eq!(
            addr(&a.allocate("ID", "eth0", None).unwrap()),
            "10.0.0.2/29"
        );
        assert_eq!(a.release("ID", "eth0").unwrap(), [ip("10.0.0.2")]);
        assert_eq!(
            addr(&a.allocate("ID", "eth0", None).unwrap()),
            "10.0.0.3/29"
        );
        for i in 0..4 {
            a.allocate(&format!("c{i}"), "eth0", None).unwrap();
        }
        a.release("c1", "eth0").unwrap();
        a.release("c3", "eth0").unwrap();
        // c3 wrapped around to .2; the walk goes on after it: .5 first,
        // then past .6 around to .2 again.
        assert_eq!(
            addr(&a.allocate("c6", "eth0", None).unwrap()),
            "10.0.0.5/29"
        );
        assert_eq!(
            addr(&a.allocate("c7", "eth0", None).unwrap()),
            "10.0.0.2/29"
        );
        assert!(a.allocate("c8", "eth0", None).is_err());
        assert_eq!(store.last_reserved(0), Some(ip("10.0.0.2")));
    }

    #[test]
    fn walks_across_ranges_and_skips_gateways() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let mut s = vec![
            Range::new("10.0.0.0/30".parse().unwrap()),
            Range {
                range_start: Some(ip("10.1.0.1")),
                range_end: Some(ip("10.1.0.2")),
                ..Range::new("10.1.0.0/24".parse().unwrap())
            },
        ];
        canonicalize_set(&mut s).unwrap();
        let a = Allocator::new(&s, &store, 0);
        let first = a.allocate("c0", "eth0", None).unwrap();
        assert_eq!(addr(&first), "10.0.0.2/30");
        assert_eq!(first.gateway, Some(ip("10.0.0.1")));
        // 10.1.0.1 is the second range's gateway: skipped.
        let second = a.allocate("c1", "eth0", None).unwrap();
        assert_eq!(addr(&second), "10.1.0.2/24");
        assert_eq!(second.gateway, Some(ip("10.1.0.1")));
        assert!(a.allocate("c2", "eth0", None).is_err());
        assert!(!a.has_free().unwrap());
    }

    #[test]
    fn requested_addresses() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let s = set(&["192.168.1.0/29"]);
        let a = Allocator::new(&s, &store, 0);
        assert_eq!(
            addr(&a.allocate("c1", "eth0", Some(ip("192.168.1.5"))).unwrap()),
            "192.168.1.5/29"
        );
        let taken = a
            .allocate("c2", "eth0", Some(ip("192.168.1.5")))
            .unwrap_err();
        assert!(taken.is_allocation());
        assert_eq!(
            taken.to_string(),
            "requested IP address 192.168.1.5 is not available in range set 192.168.1.1-192.168.1.6"
        );
        let gw = a
            .allocate("c2", "eth0", Some(ip("192.168.1.1")))
            .unwrap_err();
        assert_eq!(
            gw.to_string(),
            "requested ip 192.168.1.1 is subnet's gateway"
        );
        for outside in ["192.168.1.7", "192.168.1.0", "10.0.0.1", "fd00::1"] {
            let e = a.allocate("c2", "eth0", Some(ip(outside))).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{outside} not in range set 192.168.1.1-192.168.1.6")
            );
        }
        // A mapped request is its IPv4 address.
        assert_eq!(
            addr(
                &a.allocate("c3", "eth0", Some(ip("::ffff:192.168.1.2")))
                    .unwrap()
            ),
            "192.168.1.2/29"
        );
        // Round robin continues after the requested address.
        assert_eq!(
            addr(&a.allocate("c4", "eth0", None).unwrap()),
            "192.168.1.3/29"
        );
        // Failed requests leave nothing behind.
        assert_eq!(store.allocations().unwrap().len(), 3);
    }

    #[test]
    fn duplicate_allocation() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let v4 = set(&["10.0.0.0/24"]);
        let v6 = set(&["fd00::/120"]);
        let a4 = Allocator::new(&v4, &store, 0);
        let a6 = Allocator::new(&v6, &store, 1);
        a4.allocate("c1", "eth0", None).unwrap();
        let dup = a4.allocate("c1", "eth0", None).unwrap_err();
        assert!(dup.is_allocation());
        assert_eq!(
            dup.to_string(),
            "10.0.0.2 has been allocated to c1, duplicate allocation is not allowed"
        );
        // Another interface, or another set, is fine.
        a4.allocate("c1", "eth1", None).unwrap();
        a6.allocate("c1", "eth0", None).unwrap();
        // A legacy file counts for every interface.
        fs::write(store.dir().join("10.0.0.77"), "old").unwrap();
        assert!(a4.allocate("old", "eth3", None).is_err());
        // A requested address skips the check, as in the reference.
        a4.allocate("c1", "eth0", Some(ip("10.0.0.9"))).unwrap();
        assert_eq!(
            a4.release("c1", "eth0").unwrap(),
            [ip("10.0.0.2"), ip("10.0.0.9"), ip("fd00::2")]
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
        assert_eq!(store.last_reserved(3), Some(ip("fd00::3")));
        assert_eq!(
            fs::read(store.dir().join("fd00::3")).unwrap(),
            b"c1\r\neth0"
        );
        // A big IPv6 range with an explicit window.
        let mut big = vec![Range {
            range_start: Some(ip("2001:db8::ffff:fffe")),
            range_end: Some(ip("2001:db8::1:0:1")),
            ..Range::new("2001:db8::/64".parse().unwrap())
        }];
        canonicalize_set(&mut big).unwrap();
        assert_eq!(
            walk(&big, None),
            [
                "2001:db8::ffff:fffe",
                "2001:db8::ffff:ffff",
                "2001:db8::1:0:0",
                "2001:db8::1:0:1"
            ]
        );
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

    /// One store shared by threads: each `lock()` opens its own descriptor,
    /// so the flock excludes threads of one process too.
    #[test]
    fn threads_sharing_one_store() {
        let d = tempfile::tempdir().unwrap();
        let store = DiskStore::open(d.path(), "n").unwrap();
        let s = set(&["10.0.0.0/26"]);
        let a = Allocator::new(&s, &store, 0);
        let ips: Vec<IpAddr> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    scope.spawn(move || {
                        (0..15)
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
        assert_eq!(ips.iter().collect::<HashSet<_>>().len(), 60);
    }

    const WORKER_ENV: &str = "RCNI_IPAM_TEST_WORKER_DIR";

    /// The child side of `processes_never_share_an_address`; does nothing
    /// in a normal test run.
    #[test]
    fn process_worker() {
        let Ok(dir) = std::env::var(WORKER_ENV) else {
            return;
        };
        let tag = std::env::var("RCNI_IPAM_TEST_WORKER_TAG").unwrap();
        let store = DiskStore::open(std::path::Path::new(&dir), "n").unwrap();
        let s = set(&["10.0.0.0/24", "10.0.1.0/25"]);
        let a = Allocator::new(&s, &store, 0);
        for i in 0..25 {
            let got = a.allocate(&format!("{tag}-{i}"), "eth0", None).unwrap();
            println!("ALLOCATED {tag}-{i} {}", got.address.addr());
            if i % 5 == 4 {
                a.release(&format!("{tag}-{}", i - 1), "eth0").unwrap();
                println!("RELEASED {tag}-{}", i - 1);
            }
        }
    }

    #[test]
    fn processes_never_share_an_address() {
        if std::env::var(WORKER_ENV).is_ok() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..6)
            .map(|p| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "allocator::tests::process_worker",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(WORKER_ENV, d.path())
                    .env("RCNI_IPAM_TEST_WORKER_TAG", format!("p{p}"))
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Who holds what, by the children's own reports.
        let mut holders: std::collections::HashMap<String, IpAddr> = Default::default();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                // The harness may print "test … " on the same line first.
                let line = ["ALLOCATED ", "RELEASED "]
                    .iter()
                    .find_map(|m| line.find(m).map(|at| &line[at..]))
                    .unwrap_or("");
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["ALLOCATED", id, ip] => {
                        holders.insert(id.to_string(), ip.parse().unwrap());
                    }
                    ["RELEASED", id] => {
                        holders.remove(*id).unwrap();
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(holders.len(), 6 * 20);
        let distinct: HashSet<_> = holders.values().collect();
        assert_eq!(distinct.len(), holders.len());
        let store = DiskStore::open(d.path(), "n").unwrap();
        let on_disk = store.allocations().unwrap();
        assert_eq!(on_disk.len(), holders.len());
        for alloc in on_disk {
            assert_eq!(holders[&alloc.container_id], alloc.ip);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn exhaustion_gives_distinct_usable_addresses(
            base in 0u32..64,
            prefix in 26u8..=30,
            start_off in 0u32..4,
            end_off in 0u32..4,
            gw_off in proptest::option::of(0u32..64),
            releases in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let d = tempfile::tempdir().unwrap();
            let store = DiskStore::open(d.path(), "n").unwrap();
            let size = 1u32 << (32 - prefix);
            let net = 0x0a05_0000 + base * 64;
            let mut r = Range::new(format!("{}/{prefix}", std::net::Ipv4Addr::from(net)).parse().unwrap());
            r.range_start = Some(std::net::Ipv4Addr::from(net + start_off).into());
            r.range_end = Some(std::net::Ipv4Addr::from(net + size - 1 - end_off).into());
            r.gateway = gw_off.map(|g| std::net::Ipv4Addr::from(net + g).into());
            let mut s = vec![r];
            prop_assume!(canonicalize_set(&mut s).is_ok());
            let a = Allocator::new(&s, &store, 0);
            let mut got = Vec::new();
            while let Ok(x) = a.allocate(&format!("c{}", got.len()), "eth0", None) {
                prop_assert_eq!(x.address.prefix_len(), prefix);
                prop_assert_eq!(x.gateway, s[0].gateway);
                got.push(x.address.addr());
                prop_assert!(got.len() <= 64);
            }
            prop_assert!(!a.has_free().unwrap());
            let distinct: HashSet<_> = got.iter().collect();
            prop_assert_eq!(distinct.len(), got.len());
            for ip in &got {
                prop_assert!(s[0].contains(*ip));
                prop_assert!(Some(*ip) != s[0].gateway);
            }
            let (start, end) = s[0].bounds();
            let usable = (to_u128(end) - to_u128(start) + 1) as usize
                - usize::from(s[0].contains(s[0].gateway.unwrap()));
            prop_assert_eq!(got.len(), usable);
            let mut releases = releases;
            releases.retain(|i| *i < got.len());
            releases.sort_unstable();
            releases.dedup();
            for i in &releases {
                prop_assert_eq!(a.release(&format!("c{i}"), "eth0").unwrap(), vec![got[*i]]);
            }
            prop_assert_eq!(a.has_free().unwrap(), !releases.is_empty());
            // Every released address comes back, each exactly once.
            let mut again: Vec<IpAddr> = releases
                .iter()
                .map(|i| a.allocate(&format!("again{i}"), "eth0", None).unwrap().address.addr())
                .collect();
            prop_assert!(a.allocate("more", "eth0", None).is_err());
            again.sort();
            let mut expected: Vec<IpAddr> = releases.iter().map(|i| got[*i]).collect();
            expected.sort();
            prop_assert_eq!(again, expected);
        }
    }
}
