//! `rcni check-config` and `rcni help`: the mistakes users make are found
//! in fixtures (typos with the intended key, wrong types, capability
//! names no plugin declares, unsupported versions, overlapping subnets),
//! and every example config of the README passes.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check-config")
}

fn check(target: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rcni"))
        .arg("check-config")
        .arg(target)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn typos_types_capabilities_and_versions_are_found() {
    let (code, out) = check(&fixtures().join("typos"));
    assert_eq!(code, 1, "{out}");
    for want in [
        "disableChek: unknown key, likely a typo of disableCheck",
        "plugins[0] (bridge): error: ipMasqq: unknown key, likely a typo of ipMasq",
        "plugins[0] (bridge): error: mtu: invalid type: string \"abc\"",
        "ipam (host-local): error: rangeStrat: unknown key, likely a typo of rangeStart",
        "plugins[1] (portmap): error: snat: invalid type: string \"yes\"",
        "capabilities.portMapping: no plugin declares this capability (did you mean portMappings?)",
        "plugins[1] (portmap): warning: capabilities.mac: this plugin does not read it",
        "plugins[0] (ptp): error: cniVersion \"9.9.9\" is not supported",
        "plugins[0] (ptp): warning: someUnknownSetting: unknown key (ignored)",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn overlapping_subnets_across_networks_are_found() {
    let (code, out) = check(&fixtures().join("overlap"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("network netb: subnet 10.210.5.0/24 overlaps 10.210.0.0/16 of network neta"),
        "{out}"
    );
    assert!(!out.contains("netc"), "{out}");
}

/// The README's whole configs, and each plugin's one-line example from
/// its table made into a config, pass without errors.
#[test]
fn every_readme_example_passes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for block in readme.split("```json\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        let ext = if value.get("plugins").is_some() {
            "conflist"
        } else {
            "conf"
        };
        let name = format!("{n:02}-example.{ext}");
        let path = dir.path().join(&name);
        std::fs::write(&path, body).unwrap();
        let (code, out) = check(&path);
        assert_eq!(code, 0, "{name}:\n{body}\n{out}");
        n += 1;
    }
    for row in readme.lines().filter(|l| l.starts_with("| `")) {
        let Some(example) = row.rsplit("| `").next().and_then(|c| c.strip_suffix("` |")) else {
            continue;
        };
        let Ok(serde_json::Value::Object(mut plugin)) = serde_json::from_str(example) else {
            continue;
        };
        // An IPAM plugin's row shows its `ipam` section: put it under ptp.
        if matches!(
            plugin.get("type").and_then(|t| t.as_str()),
            Some("host-local" | "static" | "dhcp")
        ) {
            let ipam = serde_json::Value::Object(plugin);
            plugin = serde_json::json!({"type": "ptp", "ipam": ipam})
                .as_object()
                .unwrap()
                .clone();
        }
        plugin.insert("cniVersion".into(), "1.0.0".into());
        plugin.insert("name".into(), format!("example{n}").into());
        let path = dir.path().join(format!("{n:02}-row.conf"));
        std::fs::write(&path, serde_json::Value::Object(plugin).to_string()).unwrap();
        let (code, out) = check(&path);
        assert_eq!(code, 0, "{row}\n{out}");
        n += 1;
    }
    assert!(n >= 20, "only {n} examples found");
}

#[test]
fn help_lists_the_keys_the_plugin_reads() {
    let out = Command::new(env!("CARGO_BIN_EXE_rcni"))
        .args(["help", "portmap"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "markMasqBit",
        "int (0-31)",
        "default: 13",
        "portMappings",
        "example:",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let unknown = Command::new(env!("CARGO_BIN_EXE_rcni"))
        .args(["help", "no-such"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}
