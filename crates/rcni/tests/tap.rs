//! tap, end to end: the device is made over the tun driver (no `ip`
//! process), carries every key, joins a bridge in the container, and DEL
//! leaves nothing.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

fn conf(version: &str, net: &str, data: &tempfile::TempDir, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": net, "type": "tap",
        "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "routes": [{"dst": "10.99.0.0/16"}],
                 "dataDir": data.path().to_str().unwrap()}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn tap_with_every_key_and_del_leaves_nothing() {
    for version in VERSIONS {
        let host = Netns::new("tph");
        let ctr = Netns::new("tpc");
        let (data, net) = (data_dir(), unique("tp"));
        let c = conf(
            version,
            &net,
            &data,
            json!({"mtu": 1300, "mac": "02:00:00:00:aa:01", "multiQueue": true, "owner": 1234, "group": 4321}),
        );
        let (reply, execs) = Call::rcni("tap", "ADD", &host, Some(&ctr)).run_traced(&c);
        let r = reply.ok();
        // `ip` once: the test's own `ip netns exec` starting the plugin;
        // host-local, rcni itself on CNI_PATH, runs in-process.
        assert_eq!(execs, ["ip", "tap"], "tap must not run other programs");
        let link = link_details(&ctr, "eth0");
        let info = &link["linkinfo"]["info_data"];
        assert_eq!(link["linkinfo"]["info_kind"], "tun", "{link}");
        assert_eq!(info["type"], "tap", "{link}");
        assert_eq!(info["multi_queue"], true, "{link}");
        assert_eq!(info["vnet_hdr"], true, "{link}");
        assert_eq!(info["persist"], true, "{link}");
        assert_eq!(info["user"], 1234, "{link}");
        assert_eq!(info["group"], 4321, "{link}");
        assert_eq!(link["mtu"], 1300);
        assert_eq!(link["address"], "02:00:00:00:aa:01");
        assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:aa:01");
        assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
        assert!(ctr.addrs("eth0").iter().any(|a| a.starts_with("10.66.0.")));
        assert!(ctr
            .routes()
            .iter()
            .any(|l| l.starts_with("10.99.0.0/16 via 10.66.0.1")));
        if *version != "0.3.1" {
            let mut check = c.clone();
            check["prevResult"] = r.clone();
            Call::rcni("tap", "CHECK", &host, Some(&ctr))
                .run(&check)
                .ok();
        }
        for _ in 0..2 {
            Call::rcni("tap", "DEL", &host, Some(&ctr)).run(&c).ok();
        }
        assert_only_lo(&ctr);
        assert!(allocated_ips(data.path(), &net).is_empty());
        assert_eq!(
            host.links(),
            ["lo"],
            "the tap must be made in the container"
        );
    }
}

#[test]
fn tap_joins_a_bridge_layer2_only() {
    let host = Netns::new("tph");
    let ctr = Netns::new("tpc");
    ctr.exec(&["ip", "link", "add", "br0", "type", "bridge"]);
    let (data, net) = (data_dir(), unique("tp"));
    let mut c = conf("1.1.0", &net, &data, json!({"bridge": "br0"}));
    c["ipam"] = json!({});
    let r = Call::rcni("tap", "ADD", &host, Some(&ctr))
        .args("IgnoreUnknown=1;MAC=02:00:00:00:bb:02")
        .run(&c)
        .ok();
    assert!(r.get("ips").is_none());
    let link = link_details(&ctr, "eth0");
    assert_eq!(link["master"], "br0", "{link}");
    assert_eq!(link["address"], "02:00:00:00:bb:02");
    assert!(link["flags"].as_array().unwrap().contains(&json!("UP")));
    Call::rcni("tap", "DEL", &host, Some(&ctr)).run(&c).ok();
    assert_eq!(ctr.links(), ["lo", "br0"]);
}

#[test]
fn bad_input_names_the_field_and_leaves_nothing() {
    let host = Netns::new("tph");
    let ctr = Netns::new("tpc");
    let (data, net) = (data_dir(), unique("tp"));
    let cases = [
        (json!({"mac": "02:00"}), "mac", 7),
        (json!({"mtu": -5}), "mtu", 7),
        (json!({"mtu": 20}), "mtu", 7),
        (json!({"bridge": "nobr"}), "bridge", 7),
        // This machine has no SELinux: setting the label fails, as in
        // the reference.
        (
            json!({"selinuxContext": "system_u:system_r:container_t:s0"}),
            "selinuxContext",
            999,
        ),
    ];
    for (extra, field, want) in cases {
        let (code, msg) = Call::rcni("tap", "ADD", &host, Some(&ctr))
            .run(&conf("1.0.0", &net, &data, extra))
            .err();
        assert_eq!(code, want, "{field}: {msg}");
        assert!(msg.starts_with(field), "{field}: {msg}");
        assert_only_lo(&ctr);
        assert!(allocated_ips(data.path(), &net).is_empty());
    }
}
