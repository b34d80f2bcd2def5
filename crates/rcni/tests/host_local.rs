//! host-local IPAM run as a plugin: allocation, requested IPs, DEL, CHECK,
//! GC, STATUS, concurrency, bad input, and sharing a data dir with the
//! reference.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

fn conf(version: &str, net: &str, data: &Path, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data.to_str().unwrap());
    json!({"cniVersion": version, "name": net, "type": "ipam-test", "ipam": ipam})
}

/// host-local needs no netns; it runs from a throwaway host namespace all
/// the same so nothing can reach the machine.
fn call(host: &Netns, command: &str, id: &str) -> Call {
    let mut c = Call::rcni("host-local", command, host, None);
    c.container_id = id.into();
    c.netns = "/run/netns/unused".into();
    c
}

#[test]
fn allocates_round_robin_and_releases() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.88.0.0/29", "routes": [{"dst": "0.0.0.0/0"}]}),
    );
    let r1 = call(&host, "ADD", "c1").run(&c).ok();
    assert_eq!(r1["ips"][0]["address"], "10.88.0.2/29");
    assert_eq!(r1["ips"][0]["gateway"], "10.88.0.1");
    assert!(r1["ips"][0].get("interface").is_none());
    assert_eq!(r1["routes"][0]["dst"], "0.0.0.0/0");
    let r2 = call(&host, "ADD", "c2").run(&c).ok();
    assert_eq!(r2["ips"][0]["address"], "10.88.0.3/29");
    // On-disk format shared with the reference.
    let file = std::fs::read(data.path().join(&net).join("10.88.0.2")).unwrap();
    assert_eq!(file, b"c1\r\neth0");
    assert_eq!(
        std::fs::read_to_string(data.path().join(&net).join("last_reserved_ip.0")).unwrap(),
        "10.88.0.3"
    );
    // Releasing c1 does not make the next ADD reuse .2: round robin goes on.
    call(&host, "DEL", "c1").run(&c).ok();
    let r3 = call(&host, "ADD", "c3").run(&c).ok();
    assert_eq!(r3["ips"][0]["address"], "10.88.0.4/29");
    // CHECK finds c3, not c1.
    call(&host, "CHECK", "c3").run(&c).ok();
    call(&host, "CHECK", "c1").run(&c).err();
    for id in ["c2", "c3"] {
        call(&host, "DEL", id).run(&c).ok();
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
    // DEL of an unknown container succeeds.
    call(&host, "DEL", "never").run(&c).ok();
}

#[test]
fn exhausts_and_wraps() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    // .1 is the gateway; .2 to .6 are usable in a /29.
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"ranges": [[{"subnet": "10.88.0.0/29"}]]}),
    );
    for i in 0..5 {
        call(&host, "ADD", &format!("c{i}")).run(&c).ok();
    }
    assert_eq!(allocated_ips(data.path(), &net).len(), 5);
    let (code, msg) = call(&host, "ADD", "c5").run(&c).err();
    assert!(
        msg.contains("no IP addresses available in range set"),
        "{code} {msg}"
    );
    call(&host, "DEL", "c2").run(&c).ok();
    let r = call(&host, "ADD", "c5").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.4/29");
}

#[test]
fn several_ranges_and_families() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "0.4.0",
        &net,
        data.path(),
        json!({"ranges": [
            [{"subnet": "10.88.0.0/30"}, {"subnet": "10.99.0.0/24", "rangeStart": "10.99.0.10", "rangeEnd": "10.99.0.11", "gateway": "10.99.0.254"}],
            [{"subnet": "fd00:88::/64", "rangeStart": "fd00:88::100"}]
        ]}),
    );
    let r = call(&host, "ADD", "a").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.2/30");
    assert_eq!(r["ips"][0]["version"], "4");
    assert_eq!(r["ips"][1]["address"], "fd00:88::100/64");
    assert_eq!(r["ips"][1]["version"], "6");
    // The first range of the v4 set is full: the next comes from the second.
    let r = call(&host, "ADD", "b").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.99.0.10/24");
    assert_eq!(r["ips"][0]["gateway"], "10.99.0.254");
    assert_eq!(r["ips"][1]["address"], "fd00:88::101/64");
    for id in ["a", "b"] {
        call(&host, "DEL", id).run(&c).ok();
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn requested_ips_from_every_source() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let base = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "fd00:88::/64"}]]}),
    );
    let r = call(&host, "ADD", "a")
        .args("IP=10.88.0.50")
        .run(&base)
        .ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.50/24");
    let mut c = base.clone();
    c["args"] = json!({"cni": {"ips": ["10.88.0.60"]}});
    c["runtimeConfig"] = json!({"ips": ["fd00:88::60/64"]});
    let r = call(&host, "ADD", "b").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.60/24");
    assert_eq!(r["ips"][1]["address"], "fd00:88::60/64");
    // Taken, gateway, outside every range: errors, and nothing left.
    let before = allocated_ips(data.path(), &net);
    for (args, needle) in [
        ("IP=10.88.0.50", "10.88.0.50"),
        ("IP=10.88.0.1", "10.88.0.1"),
        ("IP=192.0.2.7", "192.0.2.7"),
    ] {
        let (code, msg) = call(&host, "ADD", "c").args(args).run(&base).err();
        assert!(msg.contains(needle), "{args}: {code} {msg}");
        assert_eq!(
            allocated_ips(data.path(), &net),
            before,
            "{args} left state"
        );
    }
    // Unknown CNI_ARGS need IgnoreUnknown.
    let (code, _) = call(&host, "ADD", "d").args("FOO=bar").run(&base).err();
    assert_eq!(code, 4);
    call(&host, "ADD", "d")
        .args("IgnoreUnknown=1;FOO=bar")
        .run(&base)
        .ok();
    for id in ["a", "b", "d"] {
        call(&host, "DEL", id).run(&base).ok();
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn ip_ranges_capability_comes_first() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let mut c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"ranges": [[{"subnet": "10.88.0.0/24"}]]}),
    );
    c["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.66.0.0/24"}]]});
    let r = call(&host, "ADD", "a").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.66.0.2/24");
    assert_eq!(r["ips"][1]["address"], "10.88.0.2/24");
}

#[test]
fn resolv_conf_becomes_dns() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let resolv = data.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 192.0.2.53\nsearch a.test b.test\ndomain a.test\noptions ndots:2\n",
    )
    .unwrap();
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.88.0.0/24", "resolvConf": resolv.to_str().unwrap()}),
    );
    let r = call(&host, "ADD", "a").run(&c).ok();
    assert_eq!(r["dns"]["nameservers"], json!(["192.0.2.53"]));
    assert_eq!(r["dns"]["search"], json!(["a.test", "b.test"]));
    assert_eq!(r["dns"]["domain"], "a.test");
    assert_eq!(r["dns"]["options"], json!(["ndots:2"]));
}

#[test]
fn gc_releases_stale_attachments_only() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.1.0",
        &net,
        data.path(),
        json!({"subnet": "10.88.0.0/24"}),
    );
    for id in ["keep", "stale1", "stale2"] {
        call(&host, "ADD", id).run(&c).ok();
    }
    call(&host, "ADD", "keep").ifname("net1").run(&c).ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}, {"containerID": "keep", "ifname": "net1"}]);
    let mut g = call(&host, "GC", "");
    g.container_id.clear();
    g.ifname.clear();
    g.run(&gc).ok();
    assert_eq!(allocated_ips(data.path(), &net), ["10.88.0.2", "10.88.0.5"]);
    // GC needs 1.1.0.
    let old = with(gc.clone(), "cniVersion", json!("1.0.0"));
    assert_eq!(g.run(&old).err().0, 1);
}

#[test]
fn status_reports_exhaustion() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.1.0",
        &net,
        data.path(),
        json!({"subnet": "10.88.0.0/30"}),
    );
    let status = || {
        let mut s = call(&host, "STATUS", "");
        s.container_id.clear();
        s.ifname.clear();
        s
    };
    status().run(&c).ok();
    call(&host, "ADD", "a").run(&c).ok();
    let (code, msg) = status().run(&c).err();
    assert_eq!(code, 50, "{msg}");
    call(&host, "DEL", "a").run(&c).ok();
    status().run(&c).ok();
}

#[test]
fn bad_configs_name_the_field() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let cases: Vec<(Value, &str)> = vec![
        (json!({"subnet": "10.88.0.1/24"}), "10.88.0.1/24"),
        (json!({"subnet": "not-a-subnet"}), "subnet"),
        (json!({"subnet": "10.88.0.0/31"}), "10.88.0.0/31"),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24", "rangeStart": "10.99.0.5"}]]}),
            "rangeStart",
        ),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24", "rangeEnd": "10.99.0.5"}]]}),
            "rangeEnd",
        ),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24", "gateway": "not-an-ip"}]]}),
            "gateway",
        ),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.9", "rangeEnd": "10.88.0.5"}]]}),
            "rangeStart",
        ),
        (json!({"ranges": [[{"rangeStart": "10.88.0.9"}]]}), "subnet"),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24"}, {"subnet": "fd00::/64"}]]}),
            "mixed",
        ),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "10.88.0.0/25"}]]}),
            "overlap",
        ),
        (
            json!({"ranges": [[{"subnet": "10.88.0.0/24"}, {"subnet": "10.88.0.128/25"}]]}),
            "overlap",
        ),
        (json!({}), "no IP ranges"),
    ];
    for (ipam, needle) in cases {
        let c = conf("1.0.0", &net, data.path(), ipam.clone());
        let (code, msg) = call(&host, "ADD", "a").run(&c).err();
        assert_eq!(code, 7, "{ipam}: {msg}");
        // The reference's wording capitalises some field names
        // ("RangeStart ... not in network").
        assert!(
            msg.to_lowercase().contains(&needle.to_lowercase()),
            "{ipam}: {msg}"
        );
    }
    assert!(!data.path().join(&net).join("10.88.0.2").exists());
    // A network name that would escape the data dir.
    for name in ["../escape", "a/b", ".."] {
        let c = conf(
            "1.0.0",
            name,
            data.path(),
            json!({"subnet": "10.88.0.0/24"}),
        );
        let (code, _) = call(&host, "ADD", "a").run(&c).err();
        assert_eq!(code, 7, "{name}");
    }
    assert!(!data.path().parent().unwrap().join("escape").exists());
    // Two IPs of one family need 0.3.0 or later.
    let c = conf(
        "0.2.0",
        &net,
        data.path(),
        json!({"ranges": [[{"subnet": "10.88.0.0/24"}], [{"subnet": "10.89.0.0/24"}]]}),
    );
    assert_eq!(call(&host, "ADD", "a").run(&c).err().0, 7);
}

#[test]
fn hundred_parallel_adds_never_share_an_address() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.88.0.0/24"}),
    );
    let stdin = c.to_string();
    let results: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let stdin = stdin.clone();
                let host = &host;
                s.spawn(move || {
                    (0..13)
                        .map(|i| {
                            let r = call(host, "ADD", &format!("w{w}i{i}"))
                                .run_raw(stdin.as_bytes())
                                .ok();
                            r["ips"][0]["address"].as_str().unwrap().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(results.len(), 104);
    let mut unique_ips = results.clone();
    unique_ips.sort();
    unique_ips.dedup();
    assert_eq!(
        unique_ips.len(),
        results.len(),
        "an address was handed out twice"
    );
    assert_eq!(allocated_ips(data.path(), &net).len(), 104);
    std::thread::scope(|s| {
        for w in 0..8 {
            let (host, stdin) = (&host, stdin.clone());
            s.spawn(move || {
                for i in 0..13 {
                    call(host, "DEL", &format!("w{w}i{i}"))
                        .run_raw(stdin.as_bytes())
                        .ok();
                }
            });
        }
    });
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn interop_with_the_reference_store() {
    require_reference();
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.88.0.0/24"}),
    );
    // rcni allocates, the reference releases.
    let r = call(&host, "ADD", "x").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.2/24");
    call(&host, "DEL", "x").reference().run(&c).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
    // The reference allocates (round robin continues from rcni's
    // last_reserved_ip), rcni releases.
    let r = call(&host, "ADD", "y").reference().run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.3/24");
    // And rcni continues after the reference's reservation.
    let r = call(&host, "ADD", "z").run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.88.0.4/24");
    call(&host, "DEL", "y").run(&c).ok();
    call(&host, "DEL", "z").reference().run(&c).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// rcni's index of the store must not hide what the reference does
/// between two rcni calls: an address it hands out (even under a name rcni
/// indexed for someone else) counts for the duplicate check, CHECK and
/// DEL, and one it releases is free for rcni's next ADD. The reference in
/// turn never takes the index for an allocation.
#[test]
fn the_reference_writing_between_rcni_calls_is_seen() {
    require_reference();
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.86.0.0/29"}),
    );
    let store = data.path().join(&net);
    let address = |r: &Value| r["ips"][0]["address"].as_str().unwrap().to_string();
    assert_eq!(
        address(&call(&host, "ADD", "a").run(&c).ok()),
        "10.86.0.2/29"
    );
    assert!(store.join("rcni-index").exists());
    assert_eq!(
        address(&call(&host, "ADD", "b").reference().run(&c).ok()),
        "10.86.0.3/29"
    );
    // b's address, written by the reference, makes a second one for b a
    // duplicate; CHECK finds it.
    let (code, msg) = call(&host, "ADD", "b").run(&c).err();
    assert!(msg.contains("duplicate allocation"), "{code} {msg}");
    call(&host, "CHECK", "b").run(&c).ok();
    assert_eq!(allocated_ips(data.path(), &net), ["10.86.0.2", "10.86.0.3"]);
    // The reference releases a: rcni no longer counts .2 as a's.
    call(&host, "DEL", "a").reference().run(&c).ok();
    call(&host, "CHECK", "a").run(&c).err();
    assert_eq!(
        address(&call(&host, "ADD", "a").run(&c).ok()),
        "10.86.0.4/29"
    );
    // rcni releases a, and the reference gives the same name to c.
    call(&host, "DEL", "a").run(&c).ok();
    std::fs::write(store.join("last_reserved_ip.0"), "10.86.0.3").unwrap();
    assert_eq!(
        address(&call(&host, "ADD", "c").reference().run(&c).ok()),
        "10.86.0.4/29"
    );
    let (_, msg) = call(&host, "ADD", "c").run(&c).err();
    assert!(msg.contains("10.86.0.4 has been allocated to c"), "{msg}");
    assert_eq!(
        address(&call(&host, "ADD", "a").run(&c).ok()),
        "10.86.0.5/29"
    );
    // rcni's DEL frees the reference's files, the reference's DEL rcni's.
    call(&host, "DEL", "b").run(&c).ok();
    call(&host, "DEL", "c").run(&c).ok();
    call(&host, "DEL", "a").reference().run(&c).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
    // All along, the reference saw no allocation in the index.
    assert_eq!(
        address(&call(&host, "ADD", "d").reference().run(&c).ok()),
        "10.86.0.6/29"
    );
    call(&host, "DEL", "d").reference().run(&c).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// A store whose index was lost, damaged or left behind by another copy
/// of the store is rebuilt from the address files, and no answer changes.
#[test]
fn a_stale_or_damaged_index_is_rebuilt() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.87.0.0/24"}),
    );
    let index = data.path().join(&net).join("rcni-index");
    for id in ["a", "b", "c"] {
        call(&host, "ADD", id).run(&c).ok();
    }
    let with_three = std::fs::read(&index).unwrap();
    call(&host, "DEL", "b").run(&c).ok();
    // Stale: the index of an earlier state (b still there).
    std::fs::write(&index, &with_three).unwrap();
    call(&host, "CHECK", "b").run(&c).err();
    call(&host, "ADD", "b").run(&c).ok();
    let (_, msg) = call(&host, "ADD", "a").run(&c).err();
    assert!(msg.contains("duplicate allocation"), "{msg}");
    // Damaged: one byte changed, or garbage.
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::write(&index, text.replacen("\ta\t", "\tx\t", 1)).unwrap();
    let (_, msg) = call(&host, "ADD", "a").run(&c).err();
    assert!(msg.contains("duplicate allocation"), "{msg}");
    call(&host, "CHECK", "a").run(&c).ok();
    std::fs::write(&index, b"\xff\0garbage").unwrap();
    let (_, msg) = call(&host, "ADD", "c").run(&c).err();
    assert!(msg.contains("duplicate allocation"), "{msg}");
    assert!(std::fs::read_to_string(&index)
        .unwrap()
        .starts_with("# rcni host-local index v2 "));
    // Lost.
    std::fs::remove_file(&index).unwrap();
    call(&host, "CHECK", "c").run(&c).ok();
    for id in ["a", "b", "c"] {
        call(&host, "DEL", id).run(&c).ok();
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// DEL frees the addresses prevResult names without walking the store
/// when they are all the attachment's; when prevResult names someone
/// else's address it falls back to the walk, and only the attachment's own
/// addresses go either way.
#[test]
fn del_with_prev_result_frees_only_its_own() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hlnet");
    let base = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"ranges": [[{"subnet": "10.89.0.0/24"}], [{"subnet": "fd00:89::/64"}]]}),
    );
    let mine = call(&host, "ADD", "mine").run(&base).ok();
    let other = call(&host, "ADD", "other").run(&base).ok();
    assert_eq!(allocated_ips(data.path(), &net).len(), 4);
    let with_prev = |prev: Value| {
        let mut c = base.clone();
        c["prevResult"] = prev;
        c
    };
    // A prevResult that names the other container's address: the walk
    // frees what is "mine" and leaves "other" whole.
    call(&host, "DEL", "mine")
        .run(&with_prev(other.clone()))
        .ok();
    let left = allocated_ips(data.path(), &net);
    assert_eq!(left.len(), 2, "{left:?}");
    for ip in other["ips"].as_array().unwrap() {
        let addr = ip["address"].as_str().unwrap().split('/').next().unwrap();
        assert!(left.contains(&addr.to_string()), "{addr} went: {left:?}");
    }
    // Its own prevResult: freed directly.
    let again = call(&host, "ADD", "mine").run(&base).ok();
    assert_ne!(again, mine, "round robin moves on");
    call(&host, "DEL", "mine").run(&with_prev(again)).ok();
    assert_eq!(allocated_ips(data.path(), &net).len(), 2);
    call(&host, "DEL", "other").run(&with_prev(other)).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// A container ID as long as an environment variable may be (70,000
/// characters, all valid): the address file holds it whole, and DEL must
/// still read it and free the address (found by the hostile-input probe).
#[test]
fn del_frees_the_address_of_a_very_long_container_id() {
    let host = Netns::new("hl");
    let data = data_dir();
    let net = unique("hl");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"subnet": "10.81.0.0/24"}),
    );
    let id = "a".repeat(70_000);
    call(&host, "ADD", &id).run(&c).ok();
    assert_eq!(allocated_ips(data.path(), &net), ["10.81.0.2"]);
    call(&host, "DEL", &id).run(&c).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}
