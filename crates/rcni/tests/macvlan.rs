//! macvlan, end to end on this kernel: containers on a veth master reach
//! each other in bridge mode, every key shows in the link, bad input
//! leaves nothing, and DEL (ours or the reference's) removes everything.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

/// macvlan's config on the shared [`World`] (built with the master `m0`).
trait MacvlanConf {
    fn conf(&self, version: &str, extra: Value) -> Value;
}

impl MacvlanConf for World {
    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": self.net, "type": "macvlan", "master": "m0",
            "ipam": {"type": "host-local", "subnet": "10.60.0.0/24", "routes": [{"dst": "10.61.0.0/16"}],
                     "dataDir": self.data.path().to_str().unwrap()}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }
}

#[test]
fn two_containers_reach_each_other_and_del_leaves_nothing() {
    for version in VERSIONS {
        let w = World::with_master("mv", None);
        let (a, b) = (Netns::new("mva"), Netns::new("mvb"));
        let conf = w.conf(version, json!({"mtu": 1400}));
        let ra = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
            .id("a")
            .run(&conf)
            .ok();
        let rb = Call::rcni("macvlan", "ADD", &w.host, Some(&b))
            .id("b")
            .run(&conf)
            .ok();
        assert_eq!(ra["cniVersion"], *version);
        let link = link_details(&a, "eth0");
        assert_eq!(link["linkinfo"]["info_kind"], "macvlan", "{link}");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], "bridge", "{link}");
        assert_eq!(link["mtu"], 1400);
        assert_eq!(link["operstate"], "UP");
        if *version != "0.3.1" || ra.get("interfaces").is_some() {
            assert_eq!(ra["interfaces"][0]["name"], "eth0");
            assert_eq!(ra["interfaces"][0]["mac"], link["address"]);
            assert_eq!(ra["interfaces"][0]["sandbox"], a.path());
            assert_eq!(ra["ips"][0]["interface"], 0);
        }
        assert_eq!(a.addrs("eth0")[0], format!("{}/24", ip_of(&ra)));
        assert!(
            a.routes()
                .iter()
                .any(|r| r.starts_with("10.61.0.0/16 via 10.60.0.1 dev eth0")),
            "{:?}",
            a.routes()
        );
        assert!(
            a.try_exec(&["ping", "-c1", "-W2", &ip_of(&rb)]),
            "{version}: a cannot reach b"
        );
        if *version != "0.3.1" {
            let mut check = conf.clone();
            check["prevResult"] = ra.clone();
            Call::rcni("macvlan", "CHECK", &w.host, Some(&a))
                .id("a")
                .run(&check)
                .ok();
            // The link changed behind the runtime's back: CHECK says so.
            a.exec(&["ip", "addr", "flush", "dev", "eth0"]);
            let (code, msg) = Call::rcni("macvlan", "CHECK", &w.host, Some(&a))
                .id("a")
                .run(&check)
                .err();
            assert_eq!(code, 999, "{msg}");
            assert!(msg.contains("Failed to match addr"), "{msg}");
        }
        for (id, ns) in [("a", &a), ("b", &b)] {
            for _ in 0..2 {
                Call::rcni("macvlan", "DEL", &w.host, Some(ns))
                    .id(id)
                    .run(&conf)
                    .ok();
            }
            assert_only_lo(ns);
        }
        assert!(w.allocated().is_empty(), "{:?}", w.allocated());
        assert_eq!(w.host.links().len(), 3, "{:?}", w.host.links());
    }
}

#[test]
fn every_mode_is_applied_and_private_mode_isolates() {
    for mode in ["bridge", "private", "vepa", "passthru"] {
        let w = World::with_master("mv", None);
        let a = Netns::new("mva");
        let conf = w.conf("1.0.0", json!({"mode": mode}));
        Call::rcni("macvlan", "ADD", &w.host, Some(&a))
            .run(&conf)
            .ok();
        let link = link_details(&a, "eth0");
        assert_eq!(link["linkinfo"]["info_data"]["mode"], mode, "{link}");
        Call::rcni("macvlan", "DEL", &w.host, Some(&a))
            .run(&conf)
            .ok();
        assert_only_lo(&a);
    }
    let w = World::with_master("mv", None);
    let (a, b) = (Netns::new("mva"), Netns::new("mvb"));
    let conf = w.conf("1.0.0", json!({"mode": "private"}));
    Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .id("a")
        .run(&conf)
        .ok();
    let rb = Call::rcni("macvlan", "ADD", &w.host, Some(&b))
        .id("b")
        .run(&conf)
        .ok();
    assert!(
        !a.try_exec(&["ping", "-c1", "-W1", &ip_of(&rb)]),
        "private macvlans must not reach each other"
    );
    for (id, ns) in [("a", &a), ("b", &b)] {
        Call::rcni("macvlan", "DEL", &w.host, Some(ns))
            .id(id)
            .run(&conf)
            .ok();
        assert_only_lo(ns);
    }
    assert!(w.allocated().is_empty());
}

#[test]
fn mac_sources_in_order_and_bcqueuelen() {
    let w = World::with_master("mv", None);
    let a = Netns::new("mva");
    let cases = [
        (json!({"mac": "02:00:00:00:00:01"}), "", "02:00:00:00:00:01"),
        (
            json!({"mac": "02:00:00:00:00:01"}),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
            "02:00:00:00:00:02",
        ),
        (
            json!({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}}),
            "IgnoreUnknown=1;MAC=02:00:00:00:00:02",
            "02:00:00:00:00:03",
        ),
    ];
    for (extra, cni_args, want) in cases {
        let conf = w.conf("1.1.0", extra);
        let r = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
            .args(cni_args)
            .run(&conf)
            .ok();
        assert_eq!(r["interfaces"][0]["mac"], want);
        assert_eq!(link_details(&a, "eth0")["address"], want);
        Call::rcni("macvlan", "DEL", &w.host, Some(&a))
            .run(&conf)
            .ok();
    }
    let conf = w.conf("1.1.0", json!({"bcqueuelen": 2000}));
    Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .ok();
    let link = link_details(&a, "eth0");
    assert_eq!(link["linkinfo"]["info_data"]["bcqueuelen"], 2000, "{link}");
    Call::rcni("macvlan", "DEL", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert_only_lo(&a);
}

#[test]
fn layer2_only_default_master_and_link_in_container() {
    // ipam: {} gives an address-less link that is up.
    let w = World::with_master("mv", None);
    let a = Netns::new("mva");
    let mut conf = w.conf("1.0.0", json!({}));
    conf["ipam"] = json!({});
    let r = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert!(r.get("ips").is_none(), "{r}");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert!(a.addrs("eth0").iter().all(|x| x.starts_with("fe80:")));
    assert_eq!(link_details(&a, "eth0")["operstate"], "UP");
    Call::rcni("macvlan", "DEL", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert_only_lo(&a);
    // 0.2.0 results need an address: refused as the reference does, and
    // the link made for it goes again.
    let mut old = conf.clone();
    old["cniVersion"] = json!("0.2.0");
    let (_, msg) = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&old)
        .err();
    assert!(msg.contains("no valid IP addresses"), "{msg}");
    assert_only_lo(&a);

    // No master: the interface of the default route.
    w.host
        .exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "m0"]);
    w.host
        .exec(&["ip", "route", "add", "default", "via", "192.0.2.254"]);
    let mut conf = w.conf("1.0.0", json!({}));
    conf.as_object_mut().unwrap().remove("master");
    Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .ok();
    let m0 = link_details(&w.host, "m0")["ifindex"].clone();
    assert_eq!(link_details(&a, "eth0")["link_index"], m0, "not on m0");
    Call::rcni("macvlan", "DEL", &w.host, Some(&a))
        .run(&conf)
        .ok();

    // linkInContainer: the master is a link of the container.
    veth_master(&a, "inner0");
    let conf = w.conf(
        "1.0.0",
        json!({"master": "inner0", "linkInContainer": true}),
    );
    Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert_eq!(link_details(&a, "eth0")["link"], "inner0");
    Call::rcni("macvlan", "DEL", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert!(!a.links().contains(&"eth0".to_string()));
}

#[test]
fn bad_input_names_the_field_and_leaves_nothing() {
    let w = World::with_master("mv", None);
    let a = Netns::new("mva");
    let cases = [
        (json!({"master": "nope0"}), "master"),
        (json!({"mode": "sideways"}), "mode"),
        (json!({"mtu": 9000}), "mtu"),
        (json!({"mac": "not-a-mac"}), "mac"),
    ];
    for (extra, field) in cases {
        let (code, msg) = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
            .run(&w.conf("1.0.0", extra))
            .err();
        assert_eq!(code, 7, "{field}: {msg}");
        assert!(msg.starts_with(field), "{field}: {msg}");
        assert_only_lo(&a);
        assert!(w.allocated().is_empty());
    }
    // IPAM fails after the link exists: the link goes again.
    let mut conf = w.conf("1.0.0", json!({}));
    conf["ipam"]["subnet"] = json!("10.60.0.0/33");
    let (code, _) = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .err();
    assert_ne!(code, 0);
    assert_only_lo(&a);
    // The container's name is taken: nothing of ours is left.
    a.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ]);
    let before = a.snapshot();
    let (_, msg) = Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&w.conf("1.0.0", json!({})))
        .err();
    assert!(msg.contains("eth0"), "{msg}");
    assert_eq!(a.snapshot(), before);
    assert!(w.allocated().is_empty());
}

#[test]
fn interop_with_the_reference() {
    require_reference();
    for reference_adds in [true, false] {
        let w = World::with_master("mv", None);
        let a = Netns::new("mva");
        let conf = w.conf("1.0.0", json!({"mode": "bridge"}));
        let (add, del) = interop_pair("macvlan", &w.host, &a, reference_adds);
        let r = add.run(&conf).ok();
        assert_eq!(link_details(&a, "eth0")["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(a.addrs("eth0")[0], format!("{}/24", ip_of(&r)));
        del.run(&conf).ok();
        assert_only_lo(&a);
        assert!(w.allocated().is_empty());
    }
}

/// STATUS is IPAM's (here: a /30 with its one address taken), and DEL
/// succeeds once the netns is gone.
#[test]
fn status_forwards_to_ipam_and_del_without_netns() {
    let w = World::with_master("mv", None);
    let a = Netns::new("mva");
    let mut conf = w.conf("1.1.0", json!({}));
    conf["ipam"]["subnet"] = json!("10.60.0.0/30");
    let status = || {
        let mut s = Call::rcni("macvlan", "STATUS", &w.host, None);
        s.container_id.clear();
        s.ifname.clear();
        s
    };
    status().run(&conf).ok();
    Call::rcni("macvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .ok();
    let (code, msg) = status().run(&conf).err();
    assert_eq!(code, 50, "{msg}");
    let mut l2 = conf.clone();
    l2["ipam"] = json!({});
    status().run(&l2).ok();

    let path = a.path();
    drop(a);
    let mut del = Call::rcni("macvlan", "DEL", &w.host, None);
    del.netns = path;
    del.run(&conf).ok();
    assert!(w.allocated().is_empty());
    status().run(&conf).ok();
}
