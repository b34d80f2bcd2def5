//! ipvlan, end to end: l2, l3 and l3s containers on a veth master reach
//! each other, the chained form takes its master and addresses from the
//! previous result, bad input leaves nothing, and DEL (ours or the
//! reference's) removes everything. This machine's kernel lacks ipvlan, so
//! these are ignored here and run by scripts/vm-tests.sh under a full
//! distribution kernel (--ignored): never silently skipped.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

#[test]
#[ignore = "needs ipvlan: run by scripts/vm-tests.sh"]
fn ipvlan_l2_and_l3_containers_reach_each_other() {
    let modes: [(&str, &[&str]); 3] = [("l2", VERSIONS), ("l3", &["1.1.0"]), ("l3s", &["1.0.0"])];
    for (mode, versions) in modes {
        for version in versions {
            let w = World::with_master("iv", None);
            let (a, b) = (Netns::new("iva"), Netns::new("ivb"));
            let conf = w.link_conf(
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
    let w = World::with_master("iv", None);
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
    let w = World::with_master("iv", None);
    let a = Netns::new("iva");
    let base = |extra: Value| w.link_conf("ipvlan", "1.0.0", "10.62.0.0/24", extra);
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
