//! vrf, end to end: chained after macvlan it takes interfaces and their
//! routes into its table, goes when its last interface leaves, refuses bad
//! input and a second master, and interoperates with the reference. This
//! machine's kernel lacks VRFs, so these are ignored here and run by
//! scripts/vm-tests.sh under a full distribution kernel (--ignored): never
//! silently skipped.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

/// A macvlan `ifname` in `ctr` with IPv4 and IPv6 addresses, the result
/// a chained vrf gets as prevResult.
fn macvlan_for_vrf(w: &World, ctr: &Netns, id: &str, ifname: &str) -> (Value, Value) {
    let conf = json!({"cniVersion": "1.0.0", "name": w.net, "type": "macvlan", "master": "m0",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.67.0.0/24"}], [{"subnet": "fd67::/64"}]],
                 "routes": [{"dst": "10.99.0.0/16"}], "dataDir": w.data.path().to_str().unwrap()}});
    let r = Call::rcni("macvlan", "ADD", &w.host, Some(ctr))
        .id(id)
        .ifname(ifname)
        .run(&conf)
        .ok();
    (conf, r)
}

fn vrf_conf(w: &World, prev: &Value, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": w.net, "type": "vrf", "vrfname": "blue", "prevResult": prev});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// `ip route show table <t>` lines in `ns`, both families.
fn table_routes(ns: &Netns, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        let text = sh(
            "ip",
            &["-n", &ns.name, fam, "route", "show", "table", table],
        );
        out.extend(text.lines().map(|l| l.trim().to_string()));
    }
    out
}

#[test]
#[ignore = "needs vrf: run by scripts/vm-tests.sh"]
fn vrf_takes_interfaces_and_their_routes_and_goes_when_empty() {
    let w = World::with_master("vr", None);
    let (a, b) = (Netns::new("vra"), Netns::new("vrb"));
    let (mconf, r0) = macvlan_for_vrf(&w, &a, "a", "eth0");
    let (_, peer) = macvlan_for_vrf(&w, &b, "b", "eth0");
    let c0 = vrf_conf(&w, &r0, json!({}));
    let out = Call::rcni("vrf", "ADD", &w.host, Some(&a))
        .id("a")
        .run(&c0)
        .ok();
    assert_eq!(out, r0, "vrf passes the previous result on");
    let vrf = link_details(&a, "blue");
    assert_eq!(vrf["linkinfo"]["info_kind"], "vrf", "{vrf}");
    assert_eq!(vrf["linkinfo"]["info_data"]["table"], 1, "{vrf}");
    assert_eq!(link_details(&a, "eth0")["master"], "blue");
    let t1 = table_routes(&a, "1");
    assert!(
        t1.iter()
            .any(|l| l.starts_with("10.99.0.0/16 via 10.67.0.1")),
        "{t1:?}"
    );
    assert!(!a
        .routes()
        .iter()
        .any(|l| l.starts_with("10.99.0.0/16") && !l.contains("table")));
    // The IPv6 address the kernel drops on enslaving is back.
    let v6 = r0["ips"][1]["address"].as_str().unwrap();
    assert!(
        a.addrs("eth0").contains(&v6.to_string()),
        "{:?}",
        a.addrs("eth0")
    );
    // Traffic bound to the VRF reaches the peer.
    let peer_ip = peer["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(a.try_exec(&["ping", "-c1", "-W2", "-I", "blue", &peer_ip]));
    let mut check = c0.clone();
    check["prevResult"] = out;
    Call::rcni("vrf", "CHECK", &w.host, Some(&a))
        .id("a")
        .run(&check)
        .ok();

    // A second interface joins the same VRF; a different table is refused.
    let (mconf1, r1) = macvlan_for_vrf(&w, &a, "a", "eth1");
    let (code, msg) = Call::rcni("vrf", "ADD", &w.host, Some(&a))
        .id("a")
        .ifname("eth1")
        .run(&vrf_conf(&w, &r1, json!({"table": 99})))
        .err();
    assert_eq!((code, msg.starts_with("table")), (7, true), "{msg}");
    let c1 = vrf_conf(&w, &r1, json!({}));
    Call::rcni("vrf", "ADD", &w.host, Some(&a))
        .id("a")
        .ifname("eth1")
        .run(&c1)
        .ok();
    assert_eq!(link_details(&a, "eth1")["master"], "blue");

    // DEL: the VRF stays while it has an interface, then goes; twice is fine.
    Call::rcni("vrf", "DEL", &w.host, Some(&a))
        .id("a")
        .run(&c0)
        .ok();
    assert!(a.links().contains(&"blue".to_string()));
    assert!(link_details(&a, "eth0").get("master").is_none());
    for _ in 0..2 {
        Call::rcni("vrf", "DEL", &w.host, Some(&a))
            .id("a")
            .ifname("eth1")
            .run(&c1)
            .ok();
    }
    assert!(!a.links().contains(&"blue".to_string()), "{:?}", a.links());
    for (ns, id, ifname, conf) in [
        (&a, "a", "eth0", &mconf),
        (&a, "a", "eth1", &mconf1),
        (&b, "b", "eth0", &mconf),
    ] {
        Call::rcni("macvlan", "DEL", &w.host, Some(ns))
            .id(id)
            .ifname(ifname)
            .run(conf)
            .ok();
    }
    assert_only_lo(&a);
    assert_only_lo(&b);
    assert!(w.allocated().is_empty());
}

#[test]
#[ignore = "needs vrf: run by scripts/vm-tests.sh"]
fn vrf_explicit_table_bad_input_and_reference_interop() {
    let w = World::with_master("vr", None);
    let a = Netns::new("vra");
    let (mconf, r) = macvlan_for_vrf(&w, &a, "a", "eth0");
    let c = vrf_conf(&w, &r, json!({"table": 42}));
    Call::rcni("vrf", "ADD", &w.host, Some(&a)).run(&c).ok();
    assert_eq!(
        link_details(&a, "blue")["linkinfo"]["info_data"]["table"],
        42
    );
    assert!(table_routes(&a, "42")
        .iter()
        .any(|l| l.starts_with("10.99.0.0/16")));
    Call::rcni("vrf", "DEL", &w.host, Some(&a)).run(&c).ok();
    assert!(!a.links().contains(&"blue".to_string()));

    // The kernel re-adds eth0's IPv6 local route on its own time after the
    // release from the VRF, so compare links and addresses.
    let state = |ns: &Netns| (ns.links(), ns.addrs("eth0"));
    let before = state(&a);
    let mut no_name = c.clone();
    no_name.as_object_mut().unwrap().remove("vrfname");
    let mut no_prev = c.clone();
    no_prev.as_object_mut().unwrap().remove("prevResult");
    let not_vrf = vrf_conf(&w, &r, json!({"vrfname": "lo"}));
    for (conf, field) in [
        (no_name, "vrfname"),
        (no_prev, "prevResult"),
        (not_vrf, "vrfname"),
    ] {
        let (code, msg) = Call::rcni("vrf", "ADD", &w.host, Some(&a)).run(&conf).err();
        assert_eq!(code, 7, "{field}: {msg}");
        assert!(msg.starts_with(field), "{field}: {msg}");
        assert_eq!(state(&a), before);
    }
    // eth0 already has a master: refused, and the VRF made for it goes.
    a.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    a.exec(&["ip", "link", "set", "eth0", "master", "br0"]);
    let (_, msg) = Call::rcni("vrf", "ADD", &w.host, Some(&a)).run(&c).err();
    assert!(msg.contains("has already a master set: br0"), "{msg}");
    assert!(!a.links().contains(&"blue".to_string()));
    a.exec(&["ip", "link", "del", "br0"]);
    a.exec(&["ip", "link", "set", "eth0", "up"]);

    require_reference();
    for reference_adds in [true, false] {
        let (add, del) = interop_pair("vrf", &w.host, &a, reference_adds);
        add.run(&c).ok();
        assert_eq!(link_details(&a, "eth0")["master"], "blue");
        del.run(&c).ok();
        assert!(!a.links().contains(&"blue".to_string()), "{reference_adds}");
    }
    Call::rcni("macvlan", "DEL", &w.host, Some(&a))
        .run(&mconf)
        .ok();
    assert_only_lo(&a);
}
