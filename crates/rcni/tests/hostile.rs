//! Hostile or mistaken calls: a CNI_NETNS that is the plugin's own
//! namespace or not a namespace at all, planted files in the host-local
//! store, configs that ask for unbounded work. Each call must answer
//! quickly with an error (or succeed where the reference does) and leave
//! the "host" namespace as it was.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Runs `call` with `conf`, killing it if it has not answered within
/// `limit`; panics then, naming the call.
fn run_bounded(call: &Call, conf: &Value, limit: Duration) -> Reply {
    let mut child = call.process().spawn().unwrap();
    // The plugin may fail before reading stdin: ignore a broken pipe.
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {} with CNI_NETNS={:?} did not answer within {limit:?}",
                call.plugin, call.command, call.netns
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .ok();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .ok();
    Reply {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

const LIMIT: Duration = Duration::from_secs(10);

/// A config for each plugin that would act if given a namespace: the main
/// plugins with host-local, the chained ones with a prevResult.
fn confs(data: &tempfile::TempDir, net: &str) -> Vec<(&'static str, Value)> {
    let ipam = json!({"type": "host-local", "subnet": "10.97.0.0/24",
                      "dataDir": data.path().to_str().unwrap()});
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 0, "address": "10.97.0.5/24"}]});
    let main = |kind: &str, extra: Value| {
        let mut c = json!({"cniVersion": "1.0.0", "name": net, "type": kind, "ipam": ipam});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    vec![
        ("bridge", main("bridge", json!({"bridge": "eth0"}))),
        ("ptp", main("ptp", json!({}))),
        ("macvlan", main("macvlan", json!({"master": "eth0"}))),
        ("ipvlan", main("ipvlan", json!({"master": "eth0"}))),
        ("vlan", main("vlan", json!({"master": "eth0", "vlanId": 5}))),
        (
            "host-device",
            main("host-device", json!({"device": "eth0"})),
        ),
        ("dummy", main("dummy", json!({}))),
        ("tap", main("tap", json!({}))),
        (
            "loopback",
            json!({"cniVersion": "1.0.0", "name": net, "type": "loopback"}),
        ),
        (
            "vrf",
            json!({"cniVersion": "1.0.0", "name": net, "type": "vrf", "vrfname": "blue",
                   "prevResult": prev}),
        ),
        (
            "portmap",
            json!({"cniVersion": "1.0.0", "name": net, "type": "portmap",
                   "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                   "prevResult": prev}),
        ),
        ("host-local", main("host-local", json!({}))),
        (
            "static",
            json!({"cniVersion": "1.0.0", "name": net, "type": "static",
                   "ipam": {"type": "static", "addresses": [{"address": "10.97.0.9/24"}]}}),
        ),
    ]
}

/// A "host" with an `eth0` carrying an address and a route, and `lo` up:
/// what bridge DEL and loopback DEL used to destroy.
fn host_with_eth0() -> Netns {
    let host = Netns::new("hh");
    host.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    host.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    host.exec(&["ip", "link", "set", "eth0", "up"]);
    host.exec(&["ip", "link", "set", "eth0p", "up"]);
    host
}

fn lo_is_up(ns: &Netns) -> bool {
    ns.ip_json(&["link", "show", "lo"])[0]["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("UP"))
}

/// Item: harm to the host. CNI_NETNS naming the plugin's own namespace (as
/// when a runtime passes the path of a reused PID) is refused with code 8
/// by every plugin and every verb before anything is touched; with
/// `CNI_NETNS_OVERRIDE=1` the call goes through, as in the reference.
#[test]
fn own_netns_is_refused_before_anything_is_touched() {
    let host = host_with_eth0();
    let data = data_dir();
    let net = unique("own");
    let before = host.snapshot();
    for own in [host.path(), "/proc/self/ns/net".to_string()] {
        for (plugin, conf) in confs(&data, &net) {
            for verb in ["ADD", "CHECK", "DEL"] {
                let mut call = Call::rcni(plugin, verb, &host, None);
                call.netns = own.clone();
                let reply = run_bounded(&call, &conf, LIMIT);
                let (code, msg) = reply.err();
                assert_eq!(code, 8, "{plugin} {verb} {own}: {msg}");
                assert!(
                    msg.contains("plugin's netns and netns from CNI_NETNS should not be the same"),
                    "{plugin} {verb}: {msg}"
                );
                assert_eq!(host.snapshot(), before, "{plugin} {verb} touched the host");
                assert!(lo_is_up(&host), "{plugin} {verb} brought lo down");
            }
        }
    }
    assert!(allocated_ips(data.path(), &net).is_empty());

    // The override is the runtime's way to say it means it.
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "loopback"});
    let mut call = Call::rcni("loopback", "DEL", &host, None).env("CNI_NETNS_OVERRIDE", "1");
    call.netns = host.path();
    run_bounded(&call, &conf, LIMIT).ok();
    assert!(!lo_is_up(&host), "the override must let the call through");
}
