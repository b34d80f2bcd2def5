//! What every plugin does the same way: the environment, the version
//! handshake, the error JSON, the about text, install and dispatch.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;

fn conf(version: &str) -> serde_json::Value {
    json!({"cniVersion": version, "name": "fw", "type": "loopback"})
}

#[test]
fn version_lists_every_spec_version() {
    let host = Netns::new("fw");
    for plugin in ["loopback", "host-local", "static", "ptp"] {
        let v = Call::rcni(plugin, "VERSION", &host, None).run_raw(b"").ok();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
}

#[test]
fn bad_environment_and_input() {
    let host = Netns::new("fw");
    let ctr = Netns::new("fc");
    let base = Call::rcni("loopback", "ADD", &host, Some(&ctr));
    let cases: Vec<(Call, Vec<u8>, u64, &str)> = vec![
        (
            base.clone().id("a/b"),
            conf("1.0.0").to_string().into_bytes(),
            4,
            "containerID",
        ),
        (
            base.clone().id(""),
            conf("1.0.0").to_string().into_bytes(),
            4,
            "CNI_CONTAINERID",
        ),
        (
            base.clone().ifname("way-too-long-ifname"),
            conf("1.0.0").to_string().into_bytes(),
            4,
            "interface name",
        ),
        (
            base.clone().ifname("eth 0"),
            conf("1.0.0").to_string().into_bytes(),
            4,
            "interface name",
        ),
        (
            base.clone().command("FROB"),
            conf("1.0.0").to_string().into_bytes(),
            4,
            "FROB",
        ),
        (base.clone(), b"{not json".to_vec(), 6, "network config"),
        (
            base.clone(),
            json!({"cniVersion": "1.0.0"}).to_string().into_bytes(),
            7,
            "network name",
        ),
        (
            base.clone(),
            json!({"cniVersion": "1.0.0", "name": "a/b"})
                .to_string()
                .into_bytes(),
            7,
            "network name",
        ),
        (
            base.clone(),
            conf("7.0.0").to_string().into_bytes(),
            1,
            "7.0.0",
        ),
        (
            base.clone(),
            conf("garbage").to_string().into_bytes(),
            1,
            "garbage",
        ),
        (
            base.clone().command("CHECK"),
            conf("0.3.1").to_string().into_bytes(),
            1,
            "CHECK",
        ),
        (
            base.clone().command("GC"),
            conf("1.0.0").to_string().into_bytes(),
            1,
            "GC",
        ),
        (
            base.clone().command("STATUS"),
            conf("0.4.0").to_string().into_bytes(),
            1,
            "STATUS",
        ),
    ];
    for (call, stdin, code, needle) in cases {
        let reply = call.run_raw(&stdin);
        let (got, msg) = reply.err();
        assert_eq!(got, code, "{needle}: {msg}");
        assert!(msg.contains(needle), "{needle}: {msg}");
        assert!(reply.json().get("msg").is_some());
    }
    let mut missing = base.clone();
    missing.cni_path.clear();
    missing.netns.clear();
    let (code, msg) = missing.run(&conf("1.0.0")).err();
    assert_eq!(code, 4);
    assert!(
        msg.contains("CNI_NETNS") && msg.contains("CNI_PATH"),
        "{msg}"
    );
    assert_eq!(ctr.links(), ["lo"]);
}

#[test]
fn about_text_without_a_command() {
    let out = std::process::Command::new(rcni_bin_dir().join("ptp"))
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ptp") && err.contains("CNI protocol versions supported: 0.1.0"),
        "{err}"
    );
}

#[test]
fn multi_call_dispatch_and_install() {
    let bin = env!("CARGO_BIN_EXE_rcni");
    let out = std::process::Command::new(bin)
        .arg("static")
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("supportedVersions"));
    let listed = sh(bin, &["list"]);
    let installed = tempfile::tempdir().unwrap();
    sh(bin, &["install", installed.path().to_str().unwrap()]);
    for p in ["loopback", "host-local", "static", "ptp"] {
        assert!(listed.lines().any(|l| l == p), "{listed}");
        let link = installed.path().join(p);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            std::path::Path::new("rcni")
        );
    }
    let unknown = std::process::Command::new(bin)
        .arg("no-such-plugin")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    // install refuses to overwrite a foreign file without --force.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ptp"), b"not ours").unwrap();
    let refused = std::process::Command::new(bin)
        .args(["install", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(std::fs::read(dir.path().join("ptp")).unwrap(), b"not ours");
    sh(bin, &["install", dir.path().to_str().unwrap(), "--force"]);
    assert_eq!(
        std::fs::read_link(dir.path().join("ptp")).unwrap(),
        std::path::Path::new("rcni")
    );
}

#[test]
fn sample_plugin_passes_prev_result_through() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/sample");
    let status = std::process::Command::new("cargo")
        .args(["build", "-q", "-p", "rcni-sample"])
        .status()
        .unwrap();
    assert!(status.success());
    let host = Netns::new("fw");
    let mut call = Call::rcni("sample", "ADD", &host, None);
    call.plugin_dir = sample.parent().unwrap().to_path_buf();
    call.netns = "/run/netns/unused".into();
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.3.0.2/24"}]});
    let c = json!({"cniVersion": "1.0.0", "name": "s", "type": "sample", "anotherAwesomeArg": "yes", "prevResult": prev});
    let r = call.run(&c).ok();
    assert_eq!(r["ips"][0]["address"], "10.3.0.2/24");
    let (code, msg) = call
        .run(&json!({"cniVersion": "1.0.0", "name": "s", "type": "sample"}))
        .err();
    assert_eq!(code, 7);
    assert!(msg.contains("anotherAwesomeArg"));
}

/// rcni's entry point skips std's start-up, which kept descriptors 0-2
/// open and SIGPIPE ignored: started with them closed, rcni holds them
/// open on /dev/null (so no file it opens takes descriptor 1 and receives
/// its answer), still runs and leaves its answer out of its files; and one
/// whose reader has gone fails its write, not killed by SIGPIPE.
#[test]
fn closed_standard_streams_and_a_gone_reader() {
    use std::os::unix::process::ExitStatusExt;
    let bin = env!("CARGO_BIN_EXE_rcni");
    let listed = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" list >&- 2>&-"])
        .arg(bin)
        .status()
        .unwrap();
    assert!(listed.success(), "{listed:?}");
    // Started with all three closed, a process holds them open on
    // /dev/null (seen in /proc while `rcni pause` sleeps).
    let mut paused = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" pause <&- >&- 2>&-"])
        .arg(bin)
        .spawn()
        .unwrap();
    let pid = paused.id();
    let null = Some(std::path::PathBuf::from("/dev/null"));
    let want = vec![null.clone(), null.clone(), null];
    let held = || -> Vec<_> {
        (0..3)
            .map(|n| std::fs::read_link(format!("/proc/{pid}/fd/{n}")).ok())
            .collect()
    };
    // Until the shell has become rcni and rcni has started (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while held() != want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let seen = held();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    paused.kill().unwrap();
    paused.wait().unwrap();
    assert_eq!(seen, want, "fds 0-2 of {exe:?}");
    let data = tempfile::tempdir().unwrap();
    let conf_file = data.path().join("conf.json");
    let store = data.path().join("store");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "fds", "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.99.0.0/24",
                 "dataDir": store.to_str().unwrap()},
    });
    std::fs::write(&conf_file, conf.to_string()).unwrap();
    let ctr = Netns::new("fd");
    let netns = ctr.path();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "fds"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ];
    let closed = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" host-local <\"$1\" >&- 2>&-"])
        .arg(bin)
        .arg(&conf_file)
        .envs(env)
        .status()
        .unwrap();
    assert!(closed.success(), "{closed:?}");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(store.join("fds")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains("cniVersion"), "{path:?} holds the answer");
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    assert!(files.iter().any(|f| f == "10.99.0.2"), "{files:?}");
    // DEL, closed the same way, releases the address.
    let deleted = std::process::Command::new("sh")
        .args(["-c", "exec \"$0\" host-local <\"$1\" >&- 2>&-"])
        .arg(bin)
        .arg(&conf_file)
        .envs(env)
        .env("CNI_COMMAND", "DEL")
        .status()
        .unwrap();
    assert!(deleted.success(), "{deleted:?}");
    assert!(
        !store.join("fds").join("10.99.0.2").exists(),
        "the address is still held"
    );

    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let gone = std::process::Command::new(bin)
        .arg("host-local")
        .env("CNI_COMMAND", "VERSION")
        .stdout(writer)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(gone.signal(), None, "killed by a signal: {gone:?}");
}
