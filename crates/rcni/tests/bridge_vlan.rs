//! bridge VLANs. This machine's kernel has no bridge VLAN filtering, so
//! these are ignored here and run by scripts/vm-tests.sh under a full
//! distribution kernel (--ignored): they are never silently skipped.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

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

fn conf(net: &str, data: &std::path::Path, extra: Value) -> Value {
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
    let c = conf(&net, data.path(), json!({"vlan": 10}));
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
    let c = conf(
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
    let mut keep = conf(
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
