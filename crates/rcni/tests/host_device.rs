//! host-device, end to end: a veth end of the "host" moves into the
//! container under CNI_IFNAME (and reaches its peer), comes back under its
//! own name on DEL, and bad input or a failed move leaves it where it was.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

/// The shared [`World`] whose host has the device `hd0`, a veth whose
/// peer is in `peer`.
struct DeviceHost {
    world: World,
    peer: Netns,
}

impl std::ops::Deref for DeviceHost {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl DeviceHost {
    /// `hd0` in the host, its veth peer (10.65.0.250/24) in `peer`.
    fn new() -> DeviceHost {
        let world = World::new("hd");
        let host = &world.host;
        let peer = Netns::new("hdp");
        host.exec(&[
            "ip", "link", "add", "hd0", "type", "veth", "peer", "name", "hd0p", "netns", &peer.name,
        ]);
        host.exec(&["ip", "link", "set", "hd0", "up"]);
        peer.exec(&["ip", "addr", "add", "10.65.0.250/24", "dev", "hd0p"]);
        peer.exec(&["ip", "link", "set", "hd0p", "up"]);
        DeviceHost { world, peer }
    }

    fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": self.net, "type": "host-device",
            "ipam": {"type": "host-local", "subnet": "10.65.0.0/24", "rangeStart": "10.65.0.10",
                     "dataDir": self.data.path().to_str().unwrap()}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn mac(&self) -> Value {
        link_details(&self.host, "hd0")["address"].clone()
    }

    /// hd0 is in the host under its name, without alias or addresses.
    fn assert_home(&self) {
        let link = link_details(&self.host, "hd0");
        assert!(link.get("ifalias").is_none(), "{link}");
        assert!(
            self.host
                .addrs("hd0")
                .iter()
                .all(|a| a.starts_with("fe80:")),
            "{:?}",
            self.host.addrs("hd0")
        );
    }
}

#[test]
fn device_moves_in_reaches_its_peer_and_comes_back() {
    for version in VERSIONS {
        let w = DeviceHost::new();
        let ctr = Netns::new("hdc");
        let mac = w.mac();
        let conf = w.conf(version, json!({"device": "hd0"}));
        let r = Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
            .run(&conf)
            .ok();
        assert!(!w.host.links().contains(&"hd0".to_string()));
        let link = link_details(&ctr, "eth0");
        assert_eq!(link["ifalias"], "hd0", "{link}");
        assert_eq!(link["address"], mac);
        assert_eq!(link["operstate"], "UP");
        assert_eq!(r["interfaces"][0]["name"], "eth0");
        assert_eq!(r["interfaces"][0]["mac"], mac);
        assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
        assert_eq!(ctr.addrs("eth0")[0], "10.65.0.10/24");
        assert!(ctr.try_exec(&["ping", "-c1", "-W2", "10.65.0.250"]));
        if *version != "0.3.1" {
            let mut check = conf.clone();
            check["prevResult"] = r.clone();
            Call::rcni("host-device", "CHECK", &w.host, Some(&ctr))
                .run(&check)
                .ok();
        }
        for _ in 0..2 {
            Call::rcni("host-device", "DEL", &w.host, Some(&ctr))
                .run(&conf)
                .ok();
        }
        assert_only_lo(&ctr);
        w.assert_home();
        assert_eq!(w.mac(), mac);
        assert!(w.allocated().is_empty());
        drop(w.peer);
    }
}

#[test]
fn selected_by_mac_and_layer2_only() {
    let w = DeviceHost::new();
    let ctr = Netns::new("hdc");
    let mac = w.mac();
    let mut conf = w.conf("1.1.0", json!({"hwaddr": mac}));
    conf.as_object_mut().unwrap().remove("ipam");
    let r = Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
        .ifname("net1")
        .run(&conf)
        .ok();
    assert_eq!(
        r["interfaces"],
        json!([{"name": "net1", "mac": mac, "sandbox": ctr.path()}])
    );
    assert!(r.get("ips").is_none());
    assert_eq!(link_details(&ctr, "net1")["operstate"], "UP");
    Call::rcni("host-device", "DEL", &w.host, Some(&ctr))
        .ifname("net1")
        .run(&conf)
        .ok();
    assert_only_lo(&ctr);
    w.assert_home();
}

#[test]
fn bad_input_and_failed_moves_leave_the_device_home() {
    let w = DeviceHost::new();
    let ctr = Netns::new("hdc");
    let before = w.host.snapshot();
    let cases = [
        (json!({}), "specify either"),
        (
            json!({"device": "hd0", "hwaddr": "02:00:00:00:00:01"}),
            "device, hwaddr",
        ),
        (json!({"device": "nope0"}), "device"),
        (json!({"hwaddr": "zz"}), "hwaddr"),
        (json!({"kernelpath": "/tmp/x"}), "kernelpath"),
        (
            json!({"runtimeConfig": {"deviceID": "0000:ff:1f.7"}}),
            "runtimeConfig.deviceID",
        ),
    ];
    for (extra, field) in cases {
        let (code, msg) = Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
            .run(&w.conf("1.0.0", extra))
            .err();
        assert_eq!(code, 7, "{field}: {msg}");
        assert!(msg.starts_with(field), "{field}: {msg}");
    }
    assert_eq!(w.host.snapshot(), before);
    assert_only_lo(&ctr);

    // A bridge port is in use.
    w.host.exec(&["ip", "link", "add", "brx", "type", "bridge"]);
    w.host.exec(&["ip", "link", "set", "hd0", "master", "brx"]);
    let (code, msg) = Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
        .run(&w.conf("1.0.0", json!({"device": "hd0"})))
        .err();
    assert_eq!((code, msg.contains("in use")), (7, true), "{msg}");
    w.host.exec(&["ip", "link", "del", "brx"]);
    w.host.exec(&["ip", "link", "set", "hd0", "up"]);

    // The container name is taken: the device returns, up, under its name.
    ctr.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ]);
    let (_, msg) = Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
        .run(&w.conf("1.0.0", json!({"device": "hd0"})))
        .err();
    assert!(msg.contains("eth0"), "{msg}");
    w.assert_home();
    assert!(link_details(&w.host, "hd0")["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("UP")));
    assert!(w.allocated().is_empty());
    ctr.exec(&["ip", "link", "del", "eth0"]);

    // IPAM fails after the move: the device comes back.
    let mut conf = w.conf("1.0.0", json!({"device": "hd0"}));
    conf["ipam"]["subnet"] = json!("10.65.0.0/33");
    let (code, _) = Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
        .run(&conf)
        .err();
    assert_ne!(code, 0);
    w.assert_home();
    assert_only_lo(&ctr);
}

#[test]
fn del_with_the_netns_gone_still_releases_the_address() {
    let w = DeviceHost::new();
    let ctr = Netns::new("hdc");
    let conf = w.conf("1.0.0", json!({"device": "hd0"}));
    Call::rcni("host-device", "ADD", &w.host, Some(&ctr))
        .run(&conf)
        .ok();
    assert_eq!(w.allocated().len(), 1);
    let path = ctr.path();
    drop(ctr);
    let mut del = Call::rcni("host-device", "DEL", &w.host, None);
    del.netns = path;
    del.run(&conf).ok();
    assert!(w.allocated().is_empty(), "{:?}", w.allocated());
}

#[test]
fn interop_with_the_reference() {
    require_reference();
    for reference_adds in [true, false] {
        let w = DeviceHost::new();
        let ctr = Netns::new("hdc");
        let conf = w.conf("1.0.0", json!({"device": "hd0"}));
        let (add, del) = interop_pair("host-device", &w.host, &ctr, reference_adds);
        add.run(&conf).ok();
        assert_eq!(link_details(&ctr, "eth0")["ifalias"], "hd0");
        assert!(ctr.try_exec(&["ping", "-c1", "-W2", "10.65.0.250"]));
        del.run(&conf).ok();
        assert_only_lo(&ctr);
        if reference_adds {
            w.assert_home();
        } else {
            // Debian's reference (1.1.1) leaves the alias set on DEL.
            assert_eq!(w.host.links().len(), 2, "{:?}", w.host.links());
            assert!(w.host.links().contains(&"hd0".to_string()));
        }
        assert!(w.allocated().is_empty());
    }
}
