//! bridge (+ host-local), end to end in throwaway namespaces: L3 with a
//! gateway on the bridge, masquerading on both backends, L2 only, port
//! flags, MAC overrides, spoof checking, bad input, and interop with the
//! reference; VLANs (access, separation, trunks with a native VLAN) need
//! bridge VLAN filtering, which this machine's kernel lacks: those are
//! ignored here and run by scripts/vm-tests.sh (--ignored).

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

fn conf(version: &str, net: &str, data: &std::path::Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version, "name": net, "type": "bridge", "bridge": "br-test", "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": data.to_str().unwrap()},
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn flags(ns: &Netns, dev: &str) -> Vec<String> {
    ns.ip_json(&["link", "show", dev])[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_containers_reach_each_other_and_the_gateway() {
    for version in VERSIONS {
        let host = Netns::new("bh");
        let (a, b) = (Netns::new("ba"), Netns::new("bb"));
        let data = data_dir();
        let net = unique("brnet");
        let c = conf(
            version,
            &net,
            data.path(),
            json!({"isDefaultGateway": true, "mtu": 1400}),
        );
        let ra = Call::rcni("bridge", "ADD", &host, Some(&a))
            .id("a")
            .run(&c)
            .ok();
        let rb = Call::rcni("bridge", "ADD", &host, Some(&b))
            .id("b")
            .run(&c)
            .ok();
        assert_eq!(ra["cniVersion"], *version);
        let names: Vec<&str> = ra["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "br-test");
        assert!(names[1].starts_with("veth"));
        assert_eq!(names[2], "eth0");
        assert_eq!(ra["interfaces"][2]["sandbox"], a.path());
        assert_eq!(ra["ips"][0]["interface"], 2);
        assert_eq!(ra["ips"][0]["address"], "10.99.0.2/24");
        assert_eq!(ra["ips"][0]["gateway"], "10.99.0.1");
        assert_eq!(rb["ips"][0]["address"], "10.99.0.3/24");
        assert_eq!(ra["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(ra["routes"][0]["gw"], "10.99.0.1");
        // The bridge holds the gateway; the host end is its port.
        assert!(host.addrs("br-test").contains(&"10.99.0.1/24".to_string()));
        let port = &host.ip_json(&["link", "show", names[1]])[0];
        assert_eq!(port["master"], "br-test");
        assert_eq!(port["mtu"], 1400);
        assert!(a
            .routes()
            .iter()
            .any(|r| r.starts_with("default via 10.99.0.1 dev eth0")));
        // The container end announces its address and skips DAD; the host
        // end takes no router advertisements (the reference's sysctls).
        let sysctl = |ns: &Netns, key: &str| ns.exec(&["sysctl", "-n", key]).trim().to_string();
        assert_eq!(sysctl(&a, "net.ipv4.conf.eth0.arp_notify"), "1");
        assert_eq!(sysctl(&a, "net.ipv6.conf.eth0.accept_dad"), "0");
        let host_end = format!("net.ipv6.conf.{}.accept_ra", names[1]);
        assert_eq!(sysctl(&host, &host_end), "0");
        assert!(
            a.try_exec(&["ping", "-c1", "-w5", "10.99.0.1"]),
            "{version}: no gateway"
        );
        assert!(
            a.try_exec(&["ping", "-c1", "-w5", "10.99.0.3"]),
            "{version}: containers cannot talk"
        );
        if *version != "0.3.1" {
            let mut chk = c.clone();
            chk["prevResult"] = ra.clone();
            Call::rcni("bridge", "CHECK", &host, Some(&a))
                .id("a")
                .run(&chk)
                .ok();
        }
        for (id, ns) in [("a", &a), ("b", &b)] {
            Call::rcni("bridge", "DEL", &host, Some(ns))
                .id(id)
                .run(&c)
                .ok();
            assert_eq!(ns.links(), ["lo"]);
        }
        // Only the bridge stays (the reference never removes it).
        let left: Vec<String> = host.links().into_iter().filter(|l| l != "lo").collect();
        assert_eq!(left, ["br-test"], "{version}");
        assert!(allocated_ips(data.path(), &net).is_empty());
    }
}

#[test]
fn masquerading_on_both_backends() {
    for backend in ["iptables", "nftables"] {
        let host = Netns::new("bh");
        let _outside = outside_of(&host);
        let ctr = Netns::new("bc");
        let data = data_dir();
        let net = unique("brnet");
        let c = conf(
            "1.0.0",
            &net,
            data.path(),
            json!({"isDefaultGateway": true, "ipMasq": true, "ipMasqBackend": backend}),
        );
        let call = Call::rcni("bridge", "ADD", &host, Some(&ctr));
        call.run(&c).ok();
        assert!(
            ctr.try_exec(&["ping", "-c1", "-w5", "203.0.113.2"]),
            "{backend}: not masqueraded"
        );
        // DEL with the netns already gone still removes the rules.
        drop(ctr);
        call.clone().command("DEL").run(&c).ok();
        assert!(
            !host.exec(&["iptables-save", "-t", "nat"]).contains("CNI-"),
            "{backend}: iptables rules left"
        );
        let nft = std::process::Command::new("ip")
            .args(["netns", "exec", &host.name, "nft", "list", "ruleset"])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&nft.stdout).contains("id: ctr1"),
            "{backend}: nft rules left"
        );
        assert!(allocated_ips(data.path(), &net).is_empty());
    }
}

#[test]
fn layer2_only() {
    let host = Netns::new("bh");
    let (a, b) = (Netns::new("ba"), Netns::new("bb"));
    let c = json!({"cniVersion": "1.0.0", "name": "l2", "type": "bridge", "bridge": "br-l2", "ipam": {}});
    let r = Call::rcni("bridge", "ADD", &host, Some(&a))
        .id("a")
        .run(&c)
        .ok();
    Call::rcni("bridge", "ADD", &host, Some(&b))
        .id("b")
        .run(&c)
        .ok();
    assert!(r.get("ips").is_none());
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
    assert!(flags(&a, "eth0").contains(&"UP".to_string()));
    assert!(host.addrs("br-l2").iter().all(|x| x.starts_with("fe80")));
    a.exec(&["ip", "addr", "add", "192.0.2.10/24", "dev", "eth0"]);
    b.exec(&["ip", "addr", "add", "192.0.2.11/24", "dev", "eth0"]);
    assert!(
        a.try_exec(&["ping", "-c1", "-w5", "192.0.2.11"]),
        "no L2 connectivity"
    );
    for (id, ns) in [("a", &a), ("b", &b)] {
        Call::rcni("bridge", "DEL", &host, Some(ns))
            .id(id)
            .run(&c)
            .ok();
    }
    assert_eq!(a.links(), ["lo"]);
}

#[test]
fn port_flags_mac_and_promiscuity() {
    let host = Netns::new("bh");
    let ctr = Netns::new("bc");
    let data = data_dir();
    let net = unique("brnet");
    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"hairpinMode": true, "portIsolation": true,
        "runtimeConfig": {"mac": "02:11:22:33:44:55"}}),
    );
    let r = Call::rcni("bridge", "ADD", &host, Some(&ctr))
        .args("IgnoreUnknown=1;MAC=02:00:00:00:00:01")
        .run(&c)
        .ok();
    assert_eq!(
        r["interfaces"][2]["mac"], "02:11:22:33:44:55",
        "runtimeConfig.mac wins"
    );
    assert_eq!(
        ctr.ip_json(&["link", "show", "eth0"])[0]["address"],
        "02:11:22:33:44:55"
    );
    let veth = r["interfaces"][1]["name"].as_str().unwrap();
    let detail = host.exec(&["bridge", "-d", "link", "show", "dev", veth]);
    assert!(detail.contains("hairpin on"), "{detail}");
    assert!(detail.contains("isolated on"), "{detail}");
    Call::rcni("bridge", "DEL", &host, Some(&ctr))
        .args("IgnoreUnknown=1;MAC=02:00:00:00:00:01")
        .run(&c)
        .ok();

    let c = conf(
        "1.0.0",
        &net,
        data.path(),
        json!({"bridge": "br-promisc", "promiscMode": true}),
    );
    // host-local, like the reference's, refuses unknown CNI_ARGS without
    // IgnoreUnknown.
    let (code, _) = Call::rcni("bridge", "ADD", &host, Some(&ctr))
        .args("MAC=02:00:00:00:00:01")
        .run(&c)
        .err();
    assert_eq!(code, 4);
    assert_eq!(ctr.links(), ["lo"]);
    Call::rcni("bridge", "ADD", &host, Some(&ctr))
        .args("IgnoreUnknown=1;MAC=02:00:00:00:00:01")
        .run(&c)
        .ok();
    assert!(flags(&host, "br-promisc").contains(&"PROMISC".to_string()));
    assert_eq!(
        ctr.ip_json(&["link", "show", "eth0"])[0]["address"],
        "02:00:00:00:00:01"
    );
    Call::rcni("bridge", "DEL", &host, Some(&ctr))
        .args("IgnoreUnknown=1;MAC=02:00:00:00:00:01")
        .run(&c)
        .ok();
}

#[test]
fn mac_spoof_check_drops_other_source_macs() {
    let host = Netns::new("bh");
    let ctr = Netns::new("bc");
    let data = data_dir();
    let net = unique("brnet");
    let c = conf("1.0.0", &net, data.path(), json!({"macspoofchk": true}));
    let call = Call::rcni("bridge", "ADD", &host, Some(&ctr));
    call.run(&c).ok();
    let rules = host.exec(&["nft", "list", "table", "bridge", "nat"]);
    assert!(
        rules.contains("cni-br-iface-ctr1-eth0") && rules.contains("macspoofchk-ctr1-eth0"),
        "{rules}"
    );
    assert!(ctr.try_exec(&["ping", "-c1", "-w5", "10.99.0.1"]));
    ctr.exec(&["ip", "link", "set", "eth0", "address", "02:de:ad:be:ef:01"]);
    ctr.exec(&["ip", "neigh", "flush", "all"]);
    assert!(
        !ctr.try_exec(&["ping", "-c1", "-W1", "10.99.0.1"]),
        "a spoofed MAC got through"
    );
    call.clone().command("DEL").run(&c).ok();
    let rules = host.exec(&["nft", "list", "table", "bridge", "nat"]);
    assert!(!rules.contains("ctr1-eth0"), "{rules}");
}

/// macspoofchk's rules go over netlink: ADD and DEL need no `nft`
/// program, and DEL still removes them all.
#[test]
fn mac_spoof_check_needs_no_nft_program() {
    let host = Netns::new("bh");
    let ctr = Netns::new("bc");
    let data = data_dir();
    let net = unique("brnet");
    let c = conf("1.0.0", &net, data.path(), json!({"macspoofchk": true}));
    let call = Call::rcni("bridge", "ADD", &host, Some(&ctr)).env("PATH", "/nonexistent");
    call.run(&c).ok();
    let rules = host.exec(&["nft", "list", "table", "bridge", "nat"]);
    assert!(
        rules.contains("iifname") && rules.contains("macspoofchk-ctr1-eth0"),
        "{rules}"
    );
    call.clone().command("DEL").run(&c).ok();
    let rules = host.exec(&["nft", "list", "table", "bridge", "nat"]);
    assert!(!rules.contains("ctr1-eth0"), "{rules}");
}

#[test]
fn force_address_replaces_a_conflicting_gateway() {
    let host = Netns::new("bh");
    let ctr = Netns::new("bc");
    let data = data_dir();
    let net = unique("brnet");
    host.exec(&["ip", "link", "add", "br-test", "type", "bridge"]);
    host.exec(&["ip", "addr", "add", "10.98.0.1/24", "dev", "br-test"]);
    let c = conf("1.0.0", &net, data.path(), json!({}));
    let (_, msg) = Call::rcni("bridge", "ADD", &host, Some(&ctr)).run(&c).err();
    assert!(msg.contains("already has an IP address"), "{msg}");
    assert_eq!(ctr.links(), ["lo"], "nothing left after the failed ADD");
    assert!(allocated_ips(data.path(), &net).is_empty());
    assert_eq!(
        host.links(),
        ["lo", "br-test"],
        "the pre-existing bridge stays, no veth left"
    );
    let c = conf("1.0.0", &net, data.path(), json!({"forceAddress": true}));
    Call::rcni("bridge", "ADD", &host, Some(&ctr)).run(&c).ok();
    assert_eq!(
        host.addrs("br-test")
            .iter()
            .filter(|a| !a.starts_with("fe80"))
            .cloned()
            .collect::<Vec<_>>(),
        ["10.99.0.1/24"]
    );
    Call::rcni("bridge", "DEL", &host, Some(&ctr)).run(&c).ok();
}

#[test]
fn bad_input_leaves_nothing() {
    let host = Netns::new("bh");
    let ctr = Netns::new("bc");
    let data = data_dir();
    let net = unique("brnet");
    host.exec(&[
        "ip",
        "link",
        "add",
        "notabridge",
        "type",
        "veth",
        "peer",
        "name",
        "nb-peer",
    ]);
    let before = host.snapshot();
    let cases = [
        (json!({"vlan": 5000}), "VLAN"),
        (json!({"hairpinMode": true, "promiscMode": true}), "hairpin"),
        (json!({"bridge": "notabridge"}), "not a bridge"),
        (json!({"disableContainerInterface": true}), "IPAM"),
        (json!({"vlanTrunk": [{"minID": 5}]}), "maxID"),
        (
            json!({"ipMasq": true, "ipMasqBackend": "bpf"}),
            "ipMasqBackend",
        ),
        (
            json!({"runtimeConfig": {"mac": "zz:zz"}}),
            "runtimeConfig.mac",
        ),
    ];
    for (extra, needle) in cases {
        let c = conf("1.0.0", &net, data.path(), extra.clone());
        let (code, msg) = Call::rcni("bridge", "ADD", &host, Some(&ctr)).run(&c).err();
        assert_eq!(code, 7, "{extra}: {msg}");
        assert!(msg.contains(needle), "{extra}: {msg}");
        assert_eq!(host.snapshot(), before, "{extra}: host changed");
        assert_eq!(ctr.links(), ["lo"], "{extra}");
        assert!(allocated_ips(data.path(), &net).is_empty(), "{extra}");
    }
}

#[test]
fn interop_with_the_reference() {
    require_reference();
    for rcni_adds in [true, false] {
        let host = Netns::new("bh");
        let ctr = Netns::new("bc");
        let data = data_dir();
        let net = unique("brnet");
        let c = conf(
            "1.0.0",
            &net,
            data.path(),
            json!({"isDefaultGateway": true, "ipMasq": true}),
        );
        let ours = Call::rcni("bridge", "ADD", &host, Some(&ctr));
        let theirs = ours.clone().reference();
        let (adder, deleter) = if rcni_adds {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        let r = adder.run(&c).ok();
        assert!(ctr.try_exec(&["ping", "-c1", "-w5", "10.99.0.1"]));
        let mut chk = c.clone();
        chk["prevResult"] = r;
        deleter.clone().command("CHECK").run(&chk).ok();
        deleter.command("DEL").run(&c).ok();
        assert_eq!(ctr.links(), ["lo"]);
        assert!(!host.exec(&["iptables-save", "-t", "nat"]).contains("CNI-"));
        assert!(allocated_ips(data.path(), &net).is_empty());
        let left: Vec<String> = host.links().into_iter().filter(|l| l != "lo").collect();
        assert_eq!(left, ["br-test"]);
    }
}

/// An interface name may hold `;` or `#`, which would end or cut the
/// macspoofchk statements in the nft script (its chain names hold the
/// name): such an ADD fails and leaves nothing.
#[test]
fn mac_spoof_check_refuses_an_ifname_that_would_cut_the_script() {
    let host = Netns::new("bh");
    let ctr = Netns::new("bc");
    let data = data_dir();
    let net = unique("brnet");
    let c = conf("1.0.0", &net, data.path(), json!({"macspoofchk": true}));
    let (code, msg) = Call::rcni("bridge", "ADD", &host, Some(&ctr))
        .ifname("e;x#")
        .run(&c)
        .err();
    assert_ne!(code, 0);
    assert!(msg.contains("may only hold"), "{msg}");
    assert_eq!(ctr.links(), ["lo"]);
    assert!(allocated_ips(data.path(), &net).is_empty());
    let ruleset = host.exec(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("cni-br-iface"), "{ruleset}");
}

// VLANs: this machine's kernel has no bridge VLAN filtering, so these are
// ignored here and run by scripts/vm-tests.sh under a full distribution
// kernel (--ignored): they are never silently skipped.

/// `bridge -j vlan show dev <dev>` as (vid, pvid, untagged).
fn port_vlans(host: &Netns, dev: &str) -> Vec<(u64, bool, bool)> {
    let v: Value =
        serde_json::from_str(&host.exec(&["bridge", "-j", "vlan", "show", "dev", dev])).unwrap();
    let mut out = Vec::new();
    for port in v.as_array().into_iter().flatten() {
        for vl in port["vlans"].as_array().into_iter().flatten() {
            let flags: Vec<&str> = vl["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            out.push((
                vl["vlan"].as_u64().unwrap(),
                flags.contains(&"PVID"),
                flags.contains(&"Egress Untagged"),
            ));
        }
    }
    out
}

/// A VLAN bridge config of its own (bridge `br-vl`), with `extra` keys.
fn vlan_conf(net: &str, data: &std::path::Path, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "br-vl", "isGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.97.0.0/24", "dataDir": data.to_str().unwrap()}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
#[ignore = "needs bridge VLAN filtering: run by scripts/vm-tests.sh"]
fn access_vlan_with_gateway_on_the_vlan_interface() {
    let host = Netns::new("vh");
    let (a, b) = (Netns::new("va"), Netns::new("vb"));
    let data = data_dir();
    let net = unique("vlnet");
    let c = vlan_conf(&net, data.path(), json!({"vlan": 10}));
    let ra = Call::rcni("bridge", "ADD", &host, Some(&a))
        .id("a")
        .run(&c)
        .ok();
    Call::rcni("bridge", "ADD", &host, Some(&b))
        .id("b")
        .run(&c)
        .ok();
    let veth = ra["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(
        port_vlans(&host, veth),
        [(10, true, true)],
        "access port on VLAN 10 only"
    );
    assert_eq!(
        ra["interfaces"][3]["name"], "br-vl.10",
        "the VLAN gateway interface is reported"
    );
    assert!(host.addrs("br-vl.10").contains(&"10.97.0.1/24".to_string()));
    let detail = host.exec(&["ip", "-d", "link", "show", "br-vl"]);
    assert!(detail.contains("vlan_filtering 1"), "{detail}");
    assert!(
        a.try_exec(&["ping", "-c1", "-w15", "10.97.0.1"]),
        "no gateway on the VLAN"
    );
    assert!(
        a.try_exec(&["ping", "-c1", "-w15", "10.97.0.3"]),
        "same-VLAN containers cannot talk"
    );
    for (id, ns) in [("a", &a), ("b", &b)] {
        Call::rcni("bridge", "DEL", &host, Some(ns))
            .id(id)
            .run(&c)
            .ok();
        assert_eq!(ns.links(), ["lo"]);
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
#[ignore = "needs bridge VLAN filtering: run by scripts/vm-tests.sh"]
fn different_vlans_are_separated() {
    let host = Netns::new("vh");
    let (a, b) = (Netns::new("va"), Netns::new("vb"));
    let l2 = |vlan: u16| json!({"cniVersion": "1.0.0", "name": "l2vl", "type": "bridge", "bridge": "br-sep", "vlan": vlan, "ipam": {}});
    Call::rcni("bridge", "ADD", &host, Some(&a))
        .id("a")
        .run(&l2(10))
        .ok();
    Call::rcni("bridge", "ADD", &host, Some(&b))
        .id("b")
        .run(&l2(20))
        .ok();
    a.exec(&["ip", "addr", "add", "192.0.2.10/24", "dev", "eth0"]);
    b.exec(&["ip", "addr", "add", "192.0.2.11/24", "dev", "eth0"]);
    assert!(
        !a.try_exec(&["ping", "-c1", "-W1", "192.0.2.11"]),
        "VLAN 10 reached VLAN 20"
    );
    Call::rcni("bridge", "DEL", &host, Some(&b))
        .id("b")
        .run(&l2(20))
        .ok();
    Call::rcni("bridge", "ADD", &host, Some(&b))
        .id("b")
        .run(&l2(10))
        .ok();
    b.exec(&["ip", "addr", "add", "192.0.2.11/24", "dev", "eth0"]);
    // Forget the failed resolution of the first attempt; the VM is slow.
    a.exec(&["ip", "neigh", "flush", "all"]);
    assert!(
        a.try_exec(&["ping", "-c1", "-w15", "192.0.2.11"]),
        "same VLAN, no connectivity"
    );
    Call::rcni("bridge", "DEL", &host, Some(&a))
        .id("a")
        .run(&l2(10))
        .ok();
    Call::rcni("bridge", "DEL", &host, Some(&b))
        .id("b")
        .run(&l2(10))
        .ok();
}

#[test]
#[ignore = "needs bridge VLAN filtering: run by scripts/vm-tests.sh"]
fn trunks_keep_a_native_vlan() {
    let host = Netns::new("vh");
    let ctr = Netns::new("vc");
    let data = data_dir();
    let net = unique("vlnet");
    let c = vlan_conf(
        &net,
        data.path(),
        json!({"isGateway": false, "vlanTrunk": [{"minID": 101, "maxID": 103}, {"id": 200}]}),
    );
    let r = Call::rcni("bridge", "ADD", &host, Some(&ctr)).run(&c).ok();
    let veth = r["interfaces"][1]["name"].as_str().unwrap();
    let mut vlans = port_vlans(&host, veth);
    vlans.sort();
    assert_eq!(
        vlans,
        [
            (1, true, true),
            (101, false, false),
            (102, false, false),
            (103, false, false),
            (200, false, false)
        ]
    );
    Call::rcni("bridge", "DEL", &host, Some(&ctr)).run(&c).ok();
    let mut keep = vlan_conf(
        &net,
        data.path(),
        json!({"isGateway": false, "vlan": 7, "preserveDefaultVlan": true}),
    );
    keep["bridge"] = json!("br-keep");
    let r = Call::rcni("bridge", "ADD", &host, Some(&ctr))
        .run(&keep)
        .ok();
    let veth = r["interfaces"][1]["name"].as_str().unwrap();
    let vids: Vec<u64> = port_vlans(&host, veth).into_iter().map(|v| v.0).collect();
    assert!(vids.contains(&1) && vids.contains(&7), "{vids:?}");
    Call::rcni("bridge", "DEL", &host, Some(&ctr))
        .run(&keep)
        .ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}
