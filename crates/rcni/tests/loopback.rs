//! loopback: sets `lo` up in the container and reports it.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;

#[test]
fn add_check_del_across_versions() {
    for version in VERSIONS {
        let host = Netns::new("lh");
        let ctr = Netns::new("lc");
        ctr.exec(&["ip", "link", "set", "lo", "down"]);
        let conf = json!({"cniVersion": version, "name": "lo-net", "type": "loopback"});
        let call = Call::rcni("loopback", "ADD", &host, Some(&ctr)).ifname("ignored0");
        let r = call.run(&conf).ok();
        assert_eq!(r["cniVersion"], *version);
        assert_eq!(r["interfaces"][0]["name"], "lo");
        assert_eq!(r["interfaces"][0]["mac"], "00:00:00:00:00:00");
        assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
        assert_eq!(r["ips"][0]["address"], "127.0.0.1/8");
        let flags = ctr.ip_json(&["link", "show", "lo"])[0]["flags"].clone();
        assert!(flags.as_array().unwrap().contains(&json!("UP")), "{flags}");
        assert!(ctr.try_exec(&["ping", "-c1", "-w5", "127.0.0.1"]));
        if *version != "0.3.1" {
            call.clone().command("CHECK").run(&conf).ok();
        }
        call.clone().command("DEL").run(&conf).ok();
        let flags = ctr.ip_json(&["link", "show", "lo"])[0]["flags"].clone();
        assert!(!flags.as_array().unwrap().contains(&json!("UP")), "{flags}");
        if *version != "0.3.1" {
            call.clone().command("CHECK").run(&conf).err();
        }
        drop(ctr);
        call.clone().command("DEL").run(&conf).ok();
    }
}

#[test]
fn passes_prev_result_through() {
    let host = Netns::new("lh");
    let ctr = Netns::new("lc");
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}], "ips": [{"interface": 0, "address": "10.5.0.2/24"}]});
    let conf =
        json!({"cniVersion": "1.0.0", "name": "lo-net", "type": "loopback", "prevResult": prev});
    let r = Call::rcni("loopback", "ADD", &host, Some(&ctr))
        .run(&conf)
        .ok();
    assert_eq!(r["ips"][0]["address"], "10.5.0.2/24");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
}

#[test]
fn non_loopback_address_on_lo_is_an_error() {
    let host = Netns::new("lh");
    let ctr = Netns::new("lc");
    ctr.exec(&["ip", "addr", "add", "192.0.2.9/32", "dev", "lo"]);
    let conf = json!({"cniVersion": "1.0.0", "name": "lo-net", "type": "loopback"});
    let (_, msg) = Call::rcni("loopback", "ADD", &host, Some(&ctr))
        .run(&conf)
        .err();
    assert!(msg.contains("192.0.2.9"), "{msg}");
}
