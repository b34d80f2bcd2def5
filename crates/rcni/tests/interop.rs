//! Interop with the reference plugins (Debian's containernetworking-plugins
//! in /usr/lib/cni): an attachment added by one is checked and deleted by
//! the other, and both give the same result for the same config.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

fn ptp_conf(net: &str, data: &std::path::Path) -> Value {
    // Debian's reference build supports spec versions up to 1.0.0.
    json!({
        "cniVersion": "1.0.0",
        "name": net,
        "type": "ptp",
        "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                 "dataDir": data.to_str().unwrap()},
    })
}

/// The result without what is random per run (MACs, veth names).
fn normalized(mut r: Value) -> Value {
    for iface in r["interfaces"].as_array_mut().into_iter().flatten() {
        iface["mac"] = json!("<mac>");
        if iface.get("sandbox").is_none() {
            iface["name"] = json!("<veth>");
        }
    }
    r
}

#[test]
fn ptp_added_by_one_is_deleted_by_the_other() {
    require_reference();
    for (adder_is_rcni, name) in [(true, "rcni→ref"), (false, "ref→rcni")] {
        let host = Netns::new("ih");
        let ctr = Netns::new("ic");
        let data = data_dir();
        let net = unique("inet");
        let host_before = host.snapshot();
        let ctr_before = ctr.snapshot();
        let conf = ptp_conf(&net, data.path());
        let rcni = Call::rcni("ptp", "ADD", &host, Some(&ctr));
        let reference = rcni.clone().reference();
        let (adder, deleter) = if adder_is_rcni {
            (rcni, reference)
        } else {
            (reference, rcni)
        };
        let result = adder.run(&conf).ok();
        assert!(
            ctr.try_exec(&["ping", "-c1", "-w5", "10.66.0.1"]),
            "{name}: no connectivity"
        );
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = result;
        deleter.clone().command("CHECK").run(&with_prev).ok();
        deleter.command("DEL").run(&with_prev).ok();
        assert_eq!(host.snapshot(), host_before, "{name}: host not clean");
        assert_eq!(ctr.snapshot(), ctr_before, "{name}: container not clean");
        assert!(
            allocated_ips(data.path(), &net).is_empty(),
            "{name}: IP leaked"
        );
    }
}

#[test]
fn same_result_for_the_same_config() {
    require_reference();
    let mut results = Vec::new();
    for use_rcni in [true, false] {
        let host = Netns::new("ih");
        let ctr = Netns::new("ic");
        let data = data_dir();
        let net = "samenet";
        let mut conf = ptp_conf(net, data.path());
        conf["dns"] = json!({"nameservers": ["10.66.0.53"]});
        let mut call = Call::rcni("ptp", "ADD", &host, Some(&ctr));
        if !use_rcni {
            call = call.reference();
        }
        let r = call.run(&conf).ok();
        call.command("DEL").run(&conf).ok();
        // The sandbox path differs per run.
        let mut r = normalized(r);
        r["interfaces"][1]["sandbox"] = json!("<netns>");
        results.push(r);
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn static_and_host_local_results_match_the_reference() {
    require_reference();
    let host = Netns::new("ih");
    let data = data_dir();
    for version in ["0.2.0", "0.3.1", "0.4.0", "1.0.0"] {
        let confs = [
            json!({"cniVersion": version, "name": "st", "type": "x", "ipam": {"type": "static",
                "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}, {"address": "fd00::5/64"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}], "dns": {"nameservers": ["10.10.0.53"]}}}),
        ];
        for conf in confs {
            let mut c = Call::rcni("static", "ADD", &host, None);
            c.netns = "/run/netns/unused".into();
            let ours = c.run(&conf).ok();
            let theirs = c.clone().reference().run(&conf).ok();
            assert_eq!(ours, theirs, "static {version}");
        }
        for (i, use_rcni) in [true, false].into_iter().enumerate() {
            let net = format!("hl{version}-{i}").replace('.', "");
            let conf = json!({"cniVersion": version, "name": net, "type": "x", "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.11.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": data.path().to_str().unwrap()}});
            let mut c = Call::rcni("host-local", "ADD", &host, None);
            c.netns = "/run/netns/unused".into();
            if !use_rcni {
                c = c.reference();
            }
            let r = c.run(&conf).ok();
            assert_eq!(r["cniVersion"], version);
            if version == "0.2.0" {
                assert_eq!(r["ip4"]["ip"], "10.11.0.2/24");
            } else {
                assert_eq!(r["ips"][0]["address"], "10.11.0.2/24");
            }
        }
    }
}
