//! ipvlan, vlan and dummy, end to end. This machine's kernel lacks their
//! link kinds, so these are ignored here and run by scripts/vm-tests.sh
//! under a full distribution kernel (--ignored): never silently skipped.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

struct World {
    host: Netns,
    data: tempfile::TempDir,
    net: String,
}

impl World {
    /// A host namespace whose `m0` is one end of a veth; the other end is
    /// `m0p` in `peer` when given, else next to it.
    fn new(peer: Option<&Netns>) -> World {
        let host = Netns::new("lkh");
        match peer {
            None => veth_master(&host, "m0"),
            Some(p) => {
                host.exec(&[
                    "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m0p", "netns",
                    &p.name,
                ]);
                host.exec(&["ip", "link", "set", "m0", "up"]);
                p.exec(&["ip", "link", "set", "m0p", "up"]);
            }
        }
        World {
            host,
            data: data_dir(),
            net: unique("lk"),
        }
    }

    fn conf(&self, plugin: &str, version: &str, subnet: &str, extra: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": self.net, "type": plugin,
            "ipam": {"type": "host-local", "subnet": subnet, "rangeStart": subnet.replace(".0/24", ".10"),
                     "routes": [{"dst": "10.99.0.0/16"}],
                     "dataDir": self.data.path().to_str().unwrap()}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn allocated(&self) -> Vec<String> {
        allocated_ips(self.data.path(), &self.net)
    }

    /// Whether host-local still holds an address for container `id`.
    fn holds_address_of(&self, id: &str) -> bool {
        self.allocated().iter().any(|ip| {
            let file = self.data.path().join(&self.net).join(ip);
            std::fs::read_to_string(file).is_ok_and(|c| c.lines().next() == Some(id))
        })
    }
}

fn ip_of(result: &Value) -> String {
    let cidr = result["ips"][0]["address"].as_str().unwrap();
    cidr.split('/').next().unwrap().to_string()
}

/// ADD, the checks every such plugin shares (kind, address, route, result,
/// CHECK), returning the result.
fn add_and_check(
    w: &World,
    plugin: &str,
    ctr: &Netns,
    id: &str,
    conf: &Value,
    kind: &str,
) -> Value {
    let r = Call::rcni(plugin, "ADD", &w.host, Some(ctr))
        .id(id)
        .run(conf)
        .ok();
    let link = link_details(ctr, "eth0");
    assert_eq!(link["linkinfo"]["info_kind"], kind, "{link}");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
    assert_eq!(r["interfaces"][0]["mac"], link["address"]);
    let prefix = r["ips"][0]["address"].as_str().unwrap();
    assert!(ctr.addrs("eth0").contains(&prefix.to_string()), "{r}");
    assert!(
        ctr.routes()
            .iter()
            .any(|l| l.starts_with("10.99.0.0/16 via")),
        "{:?}",
        ctr.routes()
    );
    if conf["cniVersion"] != "0.3.1" {
        let mut check = conf.clone();
        check["prevResult"] = r.clone();
        Call::rcni(plugin, "CHECK", &w.host, Some(ctr))
            .id(id)
            .run(&check)
            .ok();
    }
    r
}

/// DEL twice (idempotent), then nothing is left in the container nor in
/// the IPAM store, and the master is still there.
fn del_and_assert_gone(w: &World, plugin: &str, ctr: &Netns, id: &str, conf: &Value) {
    for _ in 0..2 {
        Call::rcni(plugin, "DEL", &w.host, Some(ctr))
            .id(id)
            .run(conf)
            .ok();
    }
    assert_only_lo(ctr);
    assert!(!w.holds_address_of(id), "{:?}", w.allocated());
    assert!(w.host.links().contains(&"m0".to_string()));
}

/// A bad config: code 7, a message starting with the field, nothing left.
fn assert_refused(w: &World, plugin: &str, ctr: &Netns, conf: &Value, field: &str) {
    let (code, msg) = Call::rcni(plugin, "ADD", &w.host, Some(ctr))
        .run(conf)
        .err();
    assert_eq!(code, 7, "{field}: {msg}");
    assert!(msg.contains(field), "{field}: {msg}");
    assert_only_lo(ctr);
    assert!(w.allocated().is_empty());
}

#[test]
#[ignore = "needs ipvlan: run by scripts/vm-tests.sh"]
fn ipvlan_l2_and_l3_containers_reach_each_other() {
    let modes: [(&str, &[&str]); 3] = [("l2", VERSIONS), ("l3", &["1.1.0"]), ("l3s", &["1.0.0"])];
    for (mode, versions) in modes {
        for version in versions {
            let w = World::new(None);
            let (a, b) = (Netns::new("iva"), Netns::new("ivb"));
            let conf = w.conf(
                "ipvlan",
                version,
                "10.62.0.0/24",
                json!({"master": "m0", "mode": mode, "mtu": 1400}),
            );
            let ra = add_and_check(&w, "ipvlan", &a, "a", &conf, "ipvlan");
            let rb = add_and_check(&w, "ipvlan", &b, "b", &conf, "ipvlan");
            let link = link_details(&a, "eth0");
            assert_eq!(link["linkinfo"]["info_data"]["mode"], mode, "{link}");
            assert_eq!(link["mtu"], 1400);
            // ipvlan slaves share the master's MAC.
            assert_eq!(link["address"], link_details(&w.host, "m0")["address"]);
            assert!(
                a.try_exec(&["ping", "-c1", "-W2", &ip_of(&rb)]),
                "{mode} {version}: a cannot reach b"
            );
            assert!(b.try_exec(&["ping", "-c1", "-W2", &ip_of(&ra)]));
            del_and_assert_gone(&w, "ipvlan", &a, "a", &conf);
            del_and_assert_gone(&w, "ipvlan", &b, "b", &conf);
        }
    }
}

#[test]
#[ignore = "needs ipvlan: run by scripts/vm-tests.sh"]
fn ipvlan_chained_takes_master_and_addresses_from_the_previous_result() {
    let w = World::new(None);
    let a = Netns::new("iva");
    let conf = json!({"cniVersion": "1.0.0", "name": w.net, "type": "ipvlan",
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "m0"}],
                       "ips": [{"address": "10.62.1.5/24", "gateway": "10.62.1.1", "interface": 0}],
                       "routes": [{"dst": "10.99.0.0/16"}]}});
    let r = Call::rcni("ipvlan", "ADD", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert_eq!(
        r["interfaces"],
        json!([{"name": "eth0", "mac": link_details(&a, "eth0")["address"], "sandbox": a.path()}])
    );
    assert_eq!(a.addrs("eth0")[0], "10.62.1.5/24");
    assert!(a
        .routes()
        .iter()
        .any(|l| l.starts_with("10.99.0.0/16 via 10.62.1.1")));
    let m0 = link_details(&w.host, "m0")["ifindex"].clone();
    assert_eq!(link_details(&a, "eth0")["link_index"], m0);
    Call::rcni("ipvlan", "DEL", &w.host, Some(&a))
        .run(&conf)
        .ok();
    assert_only_lo(&a);

    // Without a single named interface to use as master: refused.
    let mut bad = conf.clone();
    bad["prevResult"]["interfaces"] = json!([{"name": "m0"}, {"name": "x"}]);
    assert_refused(&w, "ipvlan", &a, &bad, "master");
}

#[test]
#[ignore = "needs ipvlan: run by scripts/vm-tests.sh"]
fn ipvlan_bad_input_and_reference_interop() {
    let w = World::new(None);
    let a = Netns::new("iva");
    let base = |extra: Value| w.conf("ipvlan", "1.0.0", "10.62.0.0/24", extra);
    assert_refused(
        &w,
        "ipvlan",
        &a,
        &base(json!({"master": "nope0"})),
        "master",
    );
    assert_refused(
        &w,
        "ipvlan",
        &a,
        &base(json!({"master": "m0", "mode": "l4"})),
        "mode",
    );
    assert_refused(
        &w,
        "ipvlan",
        &a,
        &base(json!({"master": "m0", "mtu": 65000})),
        "mtu",
    );
    let mut no_ipam = base(json!({"master": "m0"}));
    no_ipam.as_object_mut().unwrap().remove("ipam");
    assert_refused(&w, "ipvlan", &a, &no_ipam, "ipam");

    // linkInContainer: the master is a link of the container.
    veth_master(&a, "inner0");
    let inside = base(json!({"master": "inner0", "linkInContainer": true}));
    Call::rcni("ipvlan", "ADD", &w.host, Some(&a))
        .run(&inside)
        .ok();
    assert_eq!(link_details(&a, "eth0")["link"], "inner0");
    Call::rcni("ipvlan", "DEL", &w.host, Some(&a))
        .run(&inside)
        .ok();
    assert!(!a.links().contains(&"eth0".to_string()));
    a.exec(&["ip", "link", "del", "inner0"]);
    assert!(w.allocated().is_empty());

    require_reference();
    let conf = base(json!({"master": "m0", "mode": "l3"}));
    for reference_adds in [true, false] {
        let (add, del) = interop_pair("ipvlan", &w.host, &a, reference_adds);
        add.run(&conf).ok();
        assert_eq!(
            link_details(&a, "eth0")["linkinfo"]["info_data"]["mode"],
            "l3"
        );
        del.run(&conf).ok();
        assert_only_lo(&a);
        assert!(w.allocated().is_empty());
    }
}

#[test]
#[ignore = "needs 8021q: run by scripts/vm-tests.sh"]
fn vlan_container_reaches_a_peer_on_its_vlan_only() {
    for version in VERSIONS {
        let peer = Netns::new("vlp");
        let w = World::new(Some(&peer));
        // The peer: VLAN 100 on the other end of the master's wire.
        peer.exec(&[
            "ip", "link", "add", "link", "m0p", "name", "v100", "type", "vlan", "id", "100",
        ]);
        peer.exec(&["ip", "addr", "add", "10.63.0.250/24", "dev", "v100"]);
        peer.exec(&["ip", "link", "set", "v100", "up"]);
        let (a, b) = (Netns::new("vla"), Netns::new("vlb"));
        let on_100 = w.conf(
            "vlan",
            version,
            "10.63.0.0/24",
            json!({"master": "m0", "vlanId": 100, "mtu": 1400}),
        );
        add_and_check(&w, "vlan", &a, "a", &on_100, "vlan");
        let link = link_details(&a, "eth0");
        assert_eq!(link["linkinfo"]["info_data"]["id"], 100, "{link}");
        assert_eq!(link["mtu"], 1400);
        assert!(
            a.try_exec(&["ping", "-c1", "-W2", "10.63.0.250"]),
            "{version}: the peer on VLAN 100 is not reachable"
        );
        let on_200 = w.conf(
            "vlan",
            version,
            "10.63.0.0/24",
            json!({"master": "m0", "vlanId": 200}),
        );
        add_and_check(&w, "vlan", &b, "b", &on_200, "vlan");
        assert!(
            !b.try_exec(&["ping", "-c1", "-W1", "10.63.0.250"]),
            "VLAN 200 reached VLAN 100"
        );
        del_and_assert_gone(&w, "vlan", &b, "b", &on_200);
        del_and_assert_gone(&w, "vlan", &a, "a", &on_100);
        assert_eq!(w.host.links().len(), 2, "{:?}", w.host.links());
    }
}

#[test]
#[ignore = "needs 8021q: run by scripts/vm-tests.sh"]
fn vlan_bad_input_link_in_container_and_reference_interop() {
    let w = World::new(None);
    let a = Netns::new("vla");
    let base = |extra: Value| w.conf("vlan", "1.0.0", "10.63.0.0/24", extra);
    assert_refused(&w, "vlan", &a, &base(json!({"vlanId": 5})), "master");
    assert_refused(
        &w,
        "vlan",
        &a,
        &base(json!({"master": "nope0", "vlanId": 5})),
        "master",
    );
    assert_refused(
        &w,
        "vlan",
        &a,
        &base(json!({"master": "m0", "vlanId": 4095})),
        "vlanId",
    );
    assert_refused(
        &w,
        "vlan",
        &a,
        &base(json!({"master": "m0", "vlanId": -1})),
        "vlanId",
    );
    assert_refused(
        &w,
        "vlan",
        &a,
        &base(json!({"master": "m0", "vlanId": 5, "mtu": 9000})),
        "mtu",
    );

    veth_master(&a, "inner0");
    let inside = base(json!({"master": "inner0", "vlanId": 7, "linkInContainer": true}));
    Call::rcni("vlan", "ADD", &w.host, Some(&a))
        .run(&inside)
        .ok();
    assert_eq!(link_details(&a, "eth0")["link"], "inner0");
    Call::rcni("vlan", "DEL", &w.host, Some(&a))
        .run(&inside)
        .ok();
    assert!(!a.links().contains(&"eth0".to_string()));
    a.exec(&["ip", "link", "del", "inner0"]);

    require_reference();
    let conf = base(json!({"master": "m0", "vlanId": 42}));
    for reference_adds in [true, false] {
        let (add, del) = interop_pair("vlan", &w.host, &a, reference_adds);
        add.run(&conf).ok();
        assert_eq!(link_details(&a, "eth0")["linkinfo"]["info_data"]["id"], 42);
        del.run(&conf).ok();
        assert_only_lo(&a);
        assert!(w.allocated().is_empty());
    }
}

#[test]
#[ignore = "needs dummy: run by scripts/vm-tests.sh"]
fn dummy_carries_the_addresses_and_del_leaves_nothing() {
    for version in VERSIONS {
        let w = World::new(None);
        let a = Netns::new("dma");
        let conf = w.conf("dummy", version, "10.64.0.0/24", json!({}));
        let r = add_and_check(&w, "dummy", &a, "a", &conf, "dummy");
        // The address answers locally.
        assert!(a.try_exec(&["ping", "-c1", "-W1", &ip_of(&r)]));
        // CHECK notices the link went down.
        if *version == "0.3.1" {
            del_and_assert_gone(&w, "dummy", &a, "a", &conf);
            continue;
        }
        a.exec(&["ip", "link", "set", "eth0", "down"]);
        let mut check = conf.clone();
        check["prevResult"] = r;
        let (_, msg) = Call::rcni("dummy", "CHECK", &w.host, Some(&a))
            .id("a")
            .run(&check)
            .err();
        assert!(msg.contains("Interface eth0 is down"), "{msg}");
        del_and_assert_gone(&w, "dummy", &a, "a", &conf);
    }
    let w = World::new(None);
    let a = Netns::new("dma");
    let mut no_ipam = w.conf("dummy", "1.0.0", "10.64.0.0/24", json!({}));
    no_ipam["ipam"] = json!({});
    assert_refused(&w, "dummy", &a, &no_ipam, "ipam");
}

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
    let w = World::new(None);
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
    let w = World::new(None);
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
