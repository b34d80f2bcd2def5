//! vlan, end to end: a container reaches a peer on its VLAN only, bad
//! input leaves nothing, the master may be a link of the container, and
//! DEL (ours or the reference's) removes everything. This machine's kernel
//! lacks 8021q, so these are ignored here and run by scripts/vm-tests.sh
//! under a full distribution kernel (--ignored): never silently skipped.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

#[test]
#[ignore = "needs 8021q: run by scripts/vm-tests.sh"]
fn vlan_container_reaches_a_peer_on_its_vlan_only() {
    for version in VERSIONS {
        let peer = Netns::new("vlp");
        let w = World::with_master("vl", Some(&peer));
        // The peer: VLAN 100 on the other end of the master's wire.
        peer.exec(&[
            "ip", "link", "add", "link", "m0p", "name", "v100", "type", "vlan", "id", "100",
        ]);
        peer.exec(&["ip", "addr", "add", "10.63.0.250/24", "dev", "v100"]);
        peer.exec(&["ip", "link", "set", "v100", "up"]);
        let (a, b) = (Netns::new("vla"), Netns::new("vlb"));
        let on_100 = w.link_conf(
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
        let on_200 = w.link_conf(
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
    let w = World::with_master("vl", None);
    let a = Netns::new("vla");
    let base = |extra: Value| w.link_conf("vlan", "1.0.0", "10.63.0.0/24", extra);
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
