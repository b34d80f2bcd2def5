//! The opt-in call log (`RCNI_CALL_LOG`, or the node-wide
//! `/etc/rcni/call-log`): one JSON line per plugin call, delegated IPAM
//! calls included, errors with their code and message, the file bounded.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_call_is_logged_when_enabled() {
    let host = Netns::new("clh");
    let ctr = Netns::new("clc");
    let data = data_dir();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("calls.log");
    let log_env = log.to_str().unwrap();
    let conf = json!({"cniVersion": "1.0.0", "name": "clnet", "type": "ptp",
        "ipam": {"type": "host-local", "subnet": "10.80.0.0/24", "dataDir": data.path()}});

    // Off: nothing is written anywhere we can see.
    Call::rcni("ptp", "ADD", &host, Some(&ctr))
        .id("off")
        .run(&conf)
        .ok();
    Call::rcni("ptp", "DEL", &host, Some(&ctr))
        .id("off")
        .run(&conf)
        .ok();
    assert!(!log.exists());

    Call::rcni("ptp", "ADD", &host, Some(&ctr))
        .env("RCNI_CALL_LOG", log_env)
        .run(&conf)
        .ok();
    Call::rcni("ptp", "DEL", &host, Some(&ctr))
        .env("RCNI_CALL_LOG", log_env)
        .run(&conf)
        .ok();
    let bad = Call::rcni("ptp", "ADD", &host, Some(&ctr))
        .id("bad")
        .env("RCNI_CALL_LOG", log_env)
        .run(
            &json!({"cniVersion": "1.0.0", "name": "clnet", "type": "ptp", "mtu": "x",
            "ipam": {"type": "host-local", "subnet": "10.80.0.0/24", "dataDir": data.path()}}),
        );
    assert_eq!(bad.err().0, 7);
    assert_only_lo(&ctr);

    let got = lines(&log);
    let summary: Vec<(String, String, String)> = got
        .iter()
        .map(|l| {
            (
                l["plugin"].as_str().unwrap().to_string(),
                l["command"].as_str().unwrap().to_string(),
                l["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("host-local", "ADD", "ok"),
        ("ptp", "ADD", "ok"),
        ("host-local", "DEL", "ok"),
        ("ptp", "DEL", "ok"),
        ("ptp", "ADD", "error"),
    ];
    assert_eq!(
        summary,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    for l in &got[..4] {
        assert_eq!(l["network"], "clnet");
        assert_eq!(l["containerID"], "ctr1");
        assert_eq!(l["ifname"], "eth0");
        assert!(l["durationUs"].as_u64().is_some());
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(got[4]["code"], 7);
    assert!(
        got[4]["msg"].as_str().unwrap().contains("mtu"),
        "{}",
        got[4]
    );
}

#[test]
fn the_log_is_bounded() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("calls.log");
    let bin = rcni_bin_dir().join("loopback");
    for _ in 0..20 {
        let out = std::process::Command::new(&bin)
            .env("CNI_COMMAND", "VERSION")
            .env("RCNI_CALL_LOG", &log)
            .env("RCNI_CALL_LOG_MAX", "1000")
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size <= 1000, "{size}");
    assert!(logs.path().join("calls.log.1").exists());
    assert!(lines(&log).iter().all(|l| l["command"] == "VERSION"));
}

/// For runtimes that do not pass the environment on: the node-wide file
/// names the log. Run in a private mount namespace with its own /etc, so
/// the machine's is never touched.
#[test]
fn the_node_wide_file_enables_it() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("node.log");
    let script = format!(
        "mount -t tmpfs tmpfs /etc && mkdir /etc/rcni && echo {} > /etc/rcni/call-log && \
         CNI_COMMAND=VERSION {}",
        log.display(),
        rcni_bin_dir().join("bridge").display()
    );
    sh(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
    );
    let got = lines(&log);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["plugin"], "bridge");
}

/// Off, the log costs one failed open of the node-wide file per call and
/// nothing else (no other file is touched for it).
#[test]
fn off_it_costs_one_failed_open() {
    let trace = tempfile::NamedTempFile::new().unwrap();
    sh(
        "strace",
        &[
            "-qq",
            "-e",
            "trace=%file",
            "-o",
            trace.path().to_str().unwrap(),
            "env",
            "CNI_COMMAND=VERSION",
            rcni_bin_dir().join("ptp").to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(trace.path()).unwrap();
    let touching: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rcni/call-log"))
        .collect();
    assert_eq!(touching.len(), 1, "{text}");
    assert!(touching[0].contains("ENOENT"), "{text}");
}
