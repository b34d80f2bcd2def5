//! The store shared with the reference's host-local (Debian's
//! containernetworking-plugins in /usr/lib/cni): what one allocates the
//! other sees, continues after and releases; the files are identical; and
//! both allocating at once never hand out one address twice.

#![allow(clippy::unwrap_used)]

use rcni_ipam::{canonicalize_set, Allocator, DiskStore, Range};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

const REFERENCE: &str = "/usr/lib/cni/host-local";

fn require_reference() {
    assert!(
        Path::new(REFERENCE).exists(),
        "the reference plugins are not installed at {REFERENCE} (scripts/deps.sh installs them)"
    );
}

fn conf(data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "mynet",
        "type": "host-local",
        "ipam": {
            "type": "host-local",
            "dataDir": data_dir,
            "ranges": [
                [{"subnet": "10.1.2.0/24"}],
                [{"subnet": "2001:db8:1::/120"}]
            ]
        }
    })
}

fn sets() -> Vec<Vec<Range>> {
    ["10.1.2.0/24", "2001:db8:1::/120"]
        .iter()
        .map(|s| {
            let mut set = vec![Range::new(s.parse().unwrap())];
            canonicalize_set(&mut set).unwrap();
            set
        })
        .collect()
}

/// Runs the reference plugin; returns the addresses of an ADD's result.
fn reference(cmd: &str, data_dir: &Path, id: &str, ifname: &str) -> Vec<IpAddr> {
    let mut child = Command::new(REFERENCE)
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/proc/self/ns/net")
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), &conf(data_dir)).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "reference {cmd}: {stdout}");
    if cmd != "ADD" {
        return Vec::new();
    }
    let result: Value = serde_json::from_str(&stdout).unwrap();
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| {
            let cidr: ipnet::IpNet = ip["address"].as_str().unwrap().parse().unwrap();
            cidr.addr()
        })
        .collect()
}

fn ours(store: &DiskStore, sets: &[Vec<Range>], id: &str, ifname: &str) -> Vec<IpAddr> {
    sets.iter()
        .enumerate()
        .map(|(i, set)| {
            Allocator::new(set, store, i)
                .allocate(id, ifname, None)
                .unwrap()
                .address
                .addr()
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn add_by_one_release_by_the_other() {
    require_reference();
    let d = tempfile::tempdir().unwrap();
    let sets = sets();
    let a = reference("ADD", d.path(), "ctr-a", "eth0");
    assert_eq!(a, [ip("10.1.2.2"), ip("2001:db8:1::2")]);

    let store = DiskStore::open(d.path(), "mynet").unwrap();
    assert_eq!(store.get_by_id("ctr-a", "eth0").unwrap(), a);
    // Round robin goes on after the reference's last address, and the
    // reference goes on after ours.
    let b = ours(&store, &sets, "ctr-b", "eth0");
    assert_eq!(b, [ip("10.1.2.3"), ip("2001:db8:1::3")]);
    let c = reference("ADD", d.path(), "ctr-c", "eth0");
    assert_eq!(c, [ip("10.1.2.4"), ip("2001:db8:1::4")]);

    // Byte-identical files, same modes.
    let dir = d.path().join("mynet");
    for (mine, theirs) in [("10.1.2.3", "10.1.2.4"), ("2001:db8:1::3", "2001:db8:1::4")] {
        let (m, t) = (dir.join(mine), dir.join(theirs));
        assert_eq!(
            fs::read_to_string(&m).unwrap().replace("ctr-b", "ctr-c"),
            fs::read_to_string(&t).unwrap()
        );
        // Upstream writes 0600 since v1.4.0 (CIS benchmark); Debian's
        // 1.1.1 still writes 0644. We follow upstream.
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&m), 0o600);
        assert!([0o600, 0o644].contains(&mode(&t)), "{:o}", mode(&t));
    }
    assert_eq!(
        fs::read(dir.join("last_reserved_ip.0")).unwrap(),
        b"10.1.2.4"
    );
    assert_eq!(
        fs::read(dir.join("last_reserved_ip.1")).unwrap(),
        b"2001:db8:1::4"
    );

    // Duplicate detection sees the other's files.
    assert!(Allocator::new(&sets[0], &store, 0)
        .allocate("ctr-a", "eth0", None)
        .unwrap_err()
        .to_string()
        .contains("duplicate allocation is not allowed"));

    // The reference releases ours; we release the reference's.
    reference("DEL", d.path(), "ctr-b", "eth0");
    assert!(store.get_by_id("ctr-b", "eth0").unwrap().is_empty());
    assert_eq!(
        Allocator::new(&sets[0], &store, 0)
            .release("ctr-a", "eth0")
            .unwrap(),
        a
    );
    reference("CHECK", d.path(), "ctr-c", "eth0");
    let left: Vec<IpAddr> = store.allocations().unwrap().iter().map(|x| x.ip).collect();
    assert_eq!(left, c);
    reference("DEL", d.path(), "ctr-c", "eth0");
    assert!(store.allocations().unwrap().is_empty());
}

#[test]
fn both_at_once_never_share_an_address() {
    require_reference();
    let d = tempfile::tempdir().unwrap();
    let sets = sets();
    let (theirs, mine) = std::thread::scope(|scope| {
        let refs: Vec<_> = (0..4)
            .map(|t| {
                let dir = d.path();
                scope.spawn(move || {
                    (0..6)
                        .flat_map(|i| reference("ADD", dir, &format!("ref{t}-{i}"), "eth0"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let ours_handles: Vec<_> = (0..2)
            .map(|t| {
                let (dir, sets) = (d.path(), &sets);
                scope.spawn(move || {
                    let store = DiskStore::open(dir, "mynet").unwrap();
                    (0..30)
                        .flat_map(|i| ours(&store, sets, &format!("rcni{t}-{i}"), "eth0"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        (
            refs.into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect::<Vec<_>>(),
            ours_handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect::<Vec<_>>(),
        )
    });
    let all: Vec<IpAddr> = theirs.iter().chain(&mine).copied().collect();
    assert_eq!(all.len(), 2 * (24 + 60));
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
    let store = DiskStore::open(d.path(), "mynet").unwrap();
    assert_eq!(store.allocations().unwrap().len(), all.len());
}

/// rcni's walks may skip listing the store while its change time is the
/// one rcni sealed; each change the reference makes right after one of
/// rcni's (often in the same clock tick) is still seen: its address counts
/// as a duplicate, and rcni releases it by container ID.
#[test]
fn ours_see_what_the_reference_just_did() {
    require_reference();
    let d = tempfile::tempdir().unwrap();
    let sets = sets();
    let store = DiskStore::open(d.path(), "mynet").unwrap();
    ours(&store, &sets, "resident", "eth0");
    for i in 0..15 {
        let (mine, theirs) = (format!("rcni-{i}"), format!("ref-{i}"));
        ours(&store, &sets, &mine, "eth0");
        let taken = reference("ADD", d.path(), &theirs, "eth0");
        assert_eq!(store.get_by_id(&theirs, "eth0").unwrap(), taken);
        for (n, set) in sets.iter().enumerate() {
            let dup = Allocator::new(set, &store, n).allocate(&theirs, "eth0", None);
            assert!(dup.unwrap_err().to_string().contains("duplicate"), "{i}");
        }
        reference("DEL", d.path(), &mine, "eth0");
        let released = Allocator::new(&sets[0], &store, 0)
            .release(&theirs, "eth0")
            .unwrap();
        assert_eq!(released, taken, "{i}");
        assert!(store.get_by_id(&mine, "eth0").unwrap().is_empty());
    }
    assert_eq!(store.allocations().unwrap().len(), 2);
}
