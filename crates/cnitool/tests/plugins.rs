//! cnitool with real plugins, in throwaway namespaces: rcni's plugins and
//! the reference's (Debian's containernetworking-plugins in /usr/lib/cni)
//! give the same results, attachments made with one are removed with the
//! other, and GC removes exactly the stale attachments.

#![allow(clippy::unwrap_used)]

use rcni_testkit::{rcni_bin_dir, require_reference, Netns, REFERENCE_DIR};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

/// rcni's plugins, from the rcni binary built next to this test.
fn rcni_dir() -> &'static Path {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let built = Command::new("cargo")
            .args(["build", "-q", "-p", "rcni"])
            .status()
            .unwrap();
        assert!(built.success());
    });
    rcni_bin_dir()
}

struct Setup {
    conf_dir: tempfile::TempDir,
    cache_dir: tempfile::TempDir,
    data_dir: tempfile::TempDir,
    host: Netns,
}

impl Setup {
    fn new(version: &str) -> Setup {
        let s = Setup {
            conf_dir: tempfile::tempdir().unwrap(),
            cache_dir: tempfile::tempdir().unwrap(),
            data_dir: tempfile::tempdir().unwrap(),
            host: Netns::new("ch"),
        };
        let list = json!({"cniVersion": version, "name": "podnet", "plugins": [
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.33.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                                     "dataDir": s.data_dir.path().to_str().unwrap()}},
            {"type": "loopback"}
        ]});
        std::fs::write(
            s.conf_dir.path().join("10-podnet.conflist"),
            list.to_string(),
        )
        .unwrap();
        s
    }

    fn cnitool(&self, plugins: &Path, args: &[&str]) -> Output {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.host.name,
                env!("CARGO_BIN_EXE_cnitool"),
            ])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NETCONFPATH", self.conf_dir.path())
            .env("CNI_PATH", plugins)
            .env("CNI_CACHE_DIR", self.cache_dir.path())
            .output()
            .unwrap()
    }

    fn ok(&self, plugins: &Path, args: &[&str]) -> String {
        let out = self.cnitool(plugins, args);
        assert!(
            out.status.success(),
            "cnitool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn allocated(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data_dir.path().join("podnet"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// The result without what differs per run: MACs, the host veth name,
/// the netns path.
fn normalized(mut r: Value) -> Value {
    for iface in r["interfaces"].as_array_mut().into_iter().flatten() {
        iface["mac"] = json!("<mac>");
        if iface.get("sandbox").is_some() {
            iface["sandbox"] = json!("<netns>");
        } else {
            iface["name"] = json!("<veth>");
        }
    }
    r
}

#[test]
fn same_results_with_rcni_and_the_reference() {
    require_reference();
    let mut results = Vec::new();
    for plugins in [rcni_dir(), Path::new(REFERENCE_DIR)] {
        let s = Setup::new("1.0.0");
        let ctr = Netns::new("cc");
        let host_links = s.host.links();
        let added: Value =
            serde_json::from_str(&s.ok(plugins, &["add", "podnet", &ctr.path()])).unwrap();
        assert!(
            ctr.try_exec(&["ping", "-c1", "-w5", "10.33.0.1"]),
            "{plugins:?}: no connectivity"
        );
        s.ok(plugins, &["check", "podnet", &ctr.path()]);
        s.ok(plugins, &["del", "podnet", &ctr.path()]);
        assert_eq!(s.host.links(), host_links, "{plugins:?}: host not clean");
        assert_eq!(ctr.links(), ["lo"], "{plugins:?}: container not clean");
        assert!(s.allocated().is_empty(), "{plugins:?}: address leaked");
        results.push(normalized(added));
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn added_with_one_removed_with_the_other() {
    require_reference();
    for (adder, deleter) in [
        (rcni_dir(), Path::new(REFERENCE_DIR)),
        (Path::new(REFERENCE_DIR), rcni_dir()),
    ] {
        let s = Setup::new("1.0.0");
        let ctr = Netns::new("cc");
        let host_links = s.host.links();
        s.ok(adder, &["add", "podnet", &ctr.path()]);
        s.ok(deleter, &["check", "podnet", &ctr.path()]);
        s.ok(deleter, &["del", "podnet", &ctr.path()]);
        assert_eq!(s.host.links(), host_links);
        assert_eq!(ctr.links(), ["lo"]);
        assert!(s.allocated().is_empty());
    }
}

#[test]
fn gc_removes_exactly_the_stale_attachments() {
    let s = Setup::new("1.1.0");
    let containers: Vec<Netns> = (0..3).map(|_| Netns::new("cg")).collect();
    let mut ids = Vec::new();
    for c in &containers {
        s.ok(rcni_dir(), &["add", "podnet", &c.path()]);
        let cached: Vec<String> = std::fs::read_dir(s.cache_dir.path().join("results"))
            .unwrap()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        let mine = cached
            .iter()
            .map(|t| serde_json::from_str::<Value>(t).unwrap())
            .find(|v| v["netns"] == c.path())
            .unwrap();
        ids.push(mine["containerId"].as_str().unwrap().to_string());
    }
    assert_eq!(s.allocated().len(), 3);
    assert_eq!(s.host.links().len(), 4, "lo and three host veths");
    // A stale host-local reservation with no cache entry at all: only the
    // plugin-level GC can find it.
    std::fs::write(
        s.data_dir.path().join("podnet/10.33.0.200"),
        "ghost\r\neth0",
    )
    .unwrap();

    s.ok(
        rcni_dir(),
        &["gc", "podnet", "--valid", &format!("{}/eth0", ids[0])],
    );
    assert_eq!(
        s.allocated(),
        ["10.33.0.2"],
        "only the valid container keeps its address"
    );
    assert_eq!(s.host.links().len(), 2, "lo and the valid container's veth");
    assert_eq!(containers[1].links(), ["lo"]);
    assert_eq!(containers[2].links(), ["lo"]);
    assert!(
        containers[0].try_exec(&["ping", "-c1", "-w5", "10.33.0.1"]),
        "the valid attachment was harmed"
    );
    s.ok(rcni_dir(), &["status", "podnet"]);
    s.ok(rcni_dir(), &["del", "podnet", &containers[0].path()]);
    assert!(s.allocated().is_empty());
}
