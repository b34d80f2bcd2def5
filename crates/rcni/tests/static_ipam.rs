//! static IPAM as a plugin, and chained behind ptp.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;

#[test]
fn ptp_with_static_addresses() {
    for version in VERSIONS {
        let host = Netns::new("sh");
        let ctr = Netns::new("sc");
        let host_before = host.snapshot();
        let conf = json!({
            "cniVersion": version, "name": "static-net", "type": "ptp",
            "ipam": {"type": "static", "addresses": [{"address": "10.44.0.7/24", "gateway": "10.44.0.1"}],
                     "routes": [{"dst": "192.0.2.0/24"}]}
        });
        let call = Call::rcni("ptp", "ADD", &host, Some(&ctr));
        let r = call.run(&conf).ok();
        assert_eq!(r["ips"][0]["address"], "10.44.0.7/24");
        assert!(ctr.addrs("eth0").contains(&"10.44.0.7/24".to_string()));
        assert!(ctr
            .routes()
            .iter()
            .any(|r| r.starts_with("192.0.2.0/24 via 10.44.0.1 dev eth0")));
        assert!(ctr.try_exec(&["ping", "-c1", "-w5", "10.44.0.1"]));
        if *version != "0.3.1" {
            let mut c = conf.clone();
            c["prevResult"] = r.clone();
            call.clone().command("CHECK").run(&c).ok();
        }
        call.clone().command("DEL").run(&conf).ok();
        assert_eq!(host.snapshot(), host_before);
        assert_eq!(ctr.links(), ["lo"]);
    }
}

#[test]
fn check_compares_prev_result() {
    let host = Netns::new("sh");
    let mut c = Call::rcni("static", "CHECK", &host, None);
    c.netns = "/run/netns/unused".into();
    let conf = json!({"cniVersion": "1.0.0", "name": "s", "type": "x",
        "ipam": {"type": "static", "addresses": [{"address": "10.44.0.7/24", "gateway": "10.44.0.1"}]},
        "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "10.44.0.7/24", "gateway": "10.44.0.9"}]}});
    let (_, msg) = c.run(&conf).err();
    assert!(msg.contains("10.44.0.7"), "{msg}");
    let mut good = conf.clone();
    good["prevResult"]["ips"][0]["gateway"] = json!("10.44.0.1");
    c.run(&good).ok();
}
