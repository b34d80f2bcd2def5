//! IPAM delegation without exec: when `CNI_PATH` finds rcni itself under
//! the IPAM plugin's name, ptp and bridge run it in-process. Results,
//! store and errors must be those of the exec'd plugin, and anything else
//! on `CNI_PATH` (the reference's host-local) is still exec'd.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn conf(plugin: &str, net: &str, data: &Path, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = "host-local".into();
    ipam["dataDir"] = data.to_str().unwrap().into();
    let mut conf = json!({
        "cniVersion": "1.0.0",
        "name": net,
        "type": plugin,
        "ipam": ipam,
    });
    if plugin == "bridge" {
        conf["bridge"] = unique("inbr").into();
        conf["isGateway"] = true.into();
    }
    conf
}

fn subnet(cidr: &str) -> Value {
    json!({"ranges": [[{"subnet": cidr}]], "routes": [{"dst": "0.0.0.0/0"}]})
}

/// A plugin dir whose host-local is rcni behind a script, so it is a
/// different file from the running binary and is exec'd; the main plugins
/// are links as usual.
fn exec_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rcni-exec-ipam-")
        .tempdir()
        .unwrap();
    for plugin in ["ptp", "bridge"] {
        std::os::unix::fs::symlink(rcni_binary(), dir.path().join(plugin)).unwrap();
    }
    let script = dir.path().join("host-local");
    let body = format!("#!/bin/sh\nexec {} host-local\n", rcni_binary().display());
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn call_from(dir: &Path, plugin: &str, host: &Netns, ctr: &Netns) -> Call {
    let mut call = Call::rcni(plugin, "ADD", host, Some(ctr));
    call.plugin_dir = dir.to_path_buf();
    call.cni_path = dir.to_string_lossy().into_owned();
    call
}

/// The store's files (names and contents), lock and index left out.
fn store(data: &Path, net: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = read_dir_names(&data.join(net))
        .into_iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok() || n.starts_with("last_reserved_ip"))
        .map(|n| {
            let text = std::fs::read_to_string(data.join(net).join(&n)).unwrap();
            (n, text)
        })
        .collect();
    files.sort();
    files
}

/// What of a result does not depend on the veth's random name and MAC.
fn addressing(result: &Value) -> Value {
    json!({"ips": result["ips"], "routes": result["routes"], "dns": result["dns"]})
}

#[test]
fn rcni_host_local_runs_without_exec() {
    for plugin in ["ptp", "bridge"] {
        let host = Netns::new("iph");
        let ctr = Netns::new("ipc");
        let data = data_dir();
        let net = unique("ipnet");
        let conf = conf(plugin, &net, data.path(), subnet("10.91.0.0/24"));
        let add = Call::rcni(plugin, "ADD", &host, Some(&ctr));

        let (reply, programs) = add.run_traced(&conf);
        let result = reply.ok();
        assert!(!programs.iter().any(|p| p == "host-local"), "{programs:?}");
        assert_eq!(result["ips"][0]["address"], "10.91.0.2/24", "{plugin}");
        assert!(ctr.addrs("eth0").contains(&"10.91.0.2/24".to_string()));
        assert!(
            ctr.try_exec(&["ping", "-c1", "-w5", "10.91.0.1"]),
            "{plugin}"
        );
        assert_eq!(allocated_ips(data.path(), &net), ["10.91.0.2"]);

        let mut del_conf = conf.clone();
        del_conf["prevResult"] = result;
        let (reply, programs) = add.clone().command("DEL").run_traced(&del_conf);
        reply.ok();
        assert!(!programs.iter().any(|p| p == "host-local"), "{programs:?}");
        assert!(allocated_ips(data.path(), &net).is_empty(), "{plugin}");
        assert_only_lo(&ctr);
    }
}

#[test]
fn in_process_results_and_store_match_the_exec_path() {
    let exec = exec_dir();
    let net = unique("ipnet");
    let run = |dir: Option<&Path>, plugin: &str| {
        let host = Netns::new("iph");
        let ctr = Netns::new("ipc");
        let data = data_dir();
        let ipam = json!({
            "ranges": [[{"subnet": "10.92.0.0/24", "rangeStart": "10.92.0.10"}],
                       [{"subnet": "fd00:92::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.200.0.0/16", "gw": "10.92.0.1"}],
        });
        let mut conf = conf(plugin, &net, data.path(), ipam);
        conf["dns"] = json!({"nameservers": ["10.92.0.53"]});
        let add = match dir {
            Some(d) => call_from(d, plugin, &host, &ctr),
            None => Call::rcni(plugin, "ADD", &host, Some(&ctr)),
        };
        let (reply, programs) = add.run_traced(&conf);
        let result = reply.ok();
        assert_eq!(
            programs.iter().any(|p| p == "host-local"),
            dir.is_some(),
            "{programs:?}"
        );
        let after_add = store(data.path(), &net);
        let mut del_conf = conf.clone();
        del_conf["prevResult"] = result.clone();
        add.clone().command("DEL").run(&del_conf).ok();
        (addressing(&result), after_add, store(data.path(), &net))
    };
    for plugin in ["ptp", "bridge"] {
        let in_process = run(None, plugin);
        let exec = run(Some(exec.path()), plugin);
        assert_eq!(in_process, exec, "{plugin}");
        assert_eq!(in_process.0["ips"][0]["address"], "10.92.0.10/24");
        assert_eq!(
            in_process
                .1
                .iter()
                .find(|(n, _)| n == "10.92.0.10")
                .unwrap()
                .1,
            "ctr1\r\neth0"
        );
    }
}

#[test]
fn reference_host_local_is_still_execd() {
    require_reference();
    let host = Netns::new("iph");
    let ctr = Netns::new("ipc");
    let data = data_dir();
    let net = unique("ipnet");
    let conf = conf("ptp", &net, data.path(), subnet("10.93.0.0/24"));
    let mut add = Call::rcni("ptp", "ADD", &host, Some(&ctr));
    add.cni_path = REFERENCE_DIR.into();

    let (reply, programs) = add.run_traced(&conf);
    let result = reply.ok();
    assert!(programs.iter().any(|p| p == "host-local"), "{programs:?}");
    assert_eq!(result["ips"][0]["address"], "10.93.0.2/24");
    assert_eq!(allocated_ips(data.path(), &net), ["10.93.0.2"]);

    let mut del_conf = conf.clone();
    del_conf["prevResult"] = result;
    let (reply, programs) = add.clone().command("DEL").run_traced(&del_conf);
    reply.ok();
    assert!(programs.iter().any(|p| p == "host-local"), "{programs:?}");
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn in_process_errors_keep_their_code_and_message() {
    let exec = exec_dir();
    let bad = [
        // An invalid config, named by its field.
        (subnet("10.94.0.0/33"), 7, "subnet"),
        (
            json!({"ranges": [[{"subnet": "10.94.0.0/24", "rangeStart": "10.95.0.1"}]]}),
            7,
            "RangeStart 10.95.0.1",
        ),
        // The range is full: a runtime error, not a config one.
        (
            json!({"ranges": [[{"subnet": "10.94.0.0/30", "rangeStart": "10.94.0.2",
                                "rangeEnd": "10.94.0.2"}]]}),
            999,
            "no IP addresses available",
        ),
    ];
    for (ipam, code, needle) in bad {
        let mut errors = Vec::new();
        for dir in [None, Some(exec.path())] {
            let host = Netns::new("iph");
            let ctr = Netns::new("ipc");
            let data = data_dir();
            let net = unique("ipnet");
            let conf = conf("ptp", &net, data.path(), ipam.clone());
            // Fill a one-address range first, through another container.
            let other = Netns::new("ipo");
            if code == 999 {
                Call::rcni("ptp", "ADD", &host, Some(&other))
                    .id("other")
                    .run(&conf)
                    .ok();
            }
            let host_before = host.snapshot();
            let add = match dir {
                Some(d) => call_from(d, "ptp", &host, &ctr),
                None => Call::rcni("ptp", "ADD", &host, Some(&ctr)),
            };
            let (reply, programs) = add.run_traced(&conf);
            assert_eq!(
                programs.iter().any(|p| p == "host-local"),
                dir.is_some(),
                "{programs:?}"
            );
            let (got_code, msg) = reply.err();
            assert_eq!(got_code, code, "{msg}");
            assert!(msg.contains(needle), "{msg}");
            assert_eq!(host.snapshot(), host_before, "{msg}");
            assert_only_lo(&ctr);
            errors.push(reply.json());
        }
        assert_eq!(errors[0], errors[1]);
    }
}
