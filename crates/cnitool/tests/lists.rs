//! The runtime library through cnitool, with the `noop` test plugin:
//! order, prevResult chaining, reverse DEL, CHECK, GC and STATUS fan-out,
//! error propagation, the result cache, and bad input.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The built `noop` example (cargo test builds examples first).
fn noop_dir() -> PathBuf {
    let cnitool = PathBuf::from(env!("CARGO_BIN_EXE_cnitool"));
    let dir = cnitool.parent().unwrap().join("examples");
    if !dir.join("noop").exists() {
        let ok = Command::new("cargo")
            .args(["build", "-q", "-p", "rcni-cnitool", "--examples"])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    dir
}

struct Env {
    conf_dir: tempfile::TempDir,
    cache_dir: tempfile::TempDir,
    record: PathBuf,
}

impl Env {
    fn new() -> Env {
        let conf_dir = tempfile::tempdir().unwrap();
        let record = conf_dir.path().join("calls.jsonl");
        Env {
            conf_dir,
            cache_dir: tempfile::tempdir().unwrap(),
            record,
        }
    }

    /// Writes a conflist of noops with these labels and extra keys.
    fn list(&self, name: &str, version: &str, plugins: Vec<Value>) -> Value {
        let plugins: Vec<Value> = plugins
            .into_iter()
            .map(|mut p| {
                p["type"] = json!("noop");
                p["record"] = json!(self.record.to_str().unwrap());
                p
            })
            .collect();
        let list = json!({"cniVersion": version, "name": name, "plugins": plugins});
        std::fs::write(
            self.conf_dir.path().join(format!("{name}.conflist")),
            list.to_string(),
        )
        .unwrap();
        list
    }

    fn cnitool(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnitool"));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NETCONFPATH", self.conf_dir.path())
            .env("CNI_PATH", noop_dir())
            .env("CNI_CACHE_DIR", self.cache_dir.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// The calls recorded since the last take.
    fn take_calls(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        let _ = std::fs::remove_file(&self.record);
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn cache_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.cache_dir.path().join("results"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cnitool failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn labels(calls: &[Value]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["command"].as_str().unwrap(),
                c["label"].as_str().unwrap()
            )
        })
        .collect()
}

fn three(env: &Env, version: &str) -> Value {
    env.list(
        "net",
        version,
        vec![
            json!({"label": "a", "capabilities": {"portMappings": true}}),
            json!({"label": "b"}),
            json!({"label": "c", "capabilities": {"mac": true, "portMappings": false}}),
        ],
    )
}

const NS: &str = "/var/run/netns/test";
const CID: &str = "cnitool-7b8a61d5d8e94d07cbe4";

#[test]
fn add_chains_prev_results_and_caches() {
    let env = Env::new();
    let list = three(&env, "1.1.0");
    let caps = r#"{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"mac":"aa:bb:cc:dd:ee:ff"}"#;
    let out = ok(&env.cnitool(
        &["add", "net", NS],
        &[("CNI_ARGS", "FOO=bar;X=1"), ("CAP_ARGS", caps)],
    ));
    let result: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);

    let calls = env.take_calls();
    assert_eq!(labels(&calls), ["ADD:a", "ADD:b", "ADD:c"]);
    for c in &calls {
        assert_eq!(c["env"]["CNI_CONTAINERID"], CID);
        assert_eq!(c["env"]["CNI_NETNS"], NS);
        assert_eq!(c["env"]["CNI_IFNAME"], "eth0");
        assert_eq!(c["env"]["CNI_ARGS"], "FOO=bar;X=1");
        assert_eq!(c["stdin"]["name"], "net");
        assert_eq!(c["stdin"]["cniVersion"], "1.1.0");
    }
    assert!(calls[0]["stdin"].get("prevResult").is_none());
    assert_eq!(
        calls[1]["stdin"]["prevResult"]["interfaces"][0]["name"],
        "a"
    );
    assert_eq!(
        calls[2]["stdin"]["prevResult"]["interfaces"][1]["name"],
        "b"
    );
    // runtimeConfig carries only the capabilities each plugin declares.
    assert_eq!(
        calls[0]["stdin"]["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    assert!(calls[1]["stdin"].get("runtimeConfig").is_none());
    assert_eq!(
        calls[2]["stdin"]["runtimeConfig"],
        json!({"mac": "aa:bb:cc:dd:ee:ff"})
    );

    // The cache, field by field, in the reference's layout.
    assert_eq!(env.cache_files(), [format!("net-{CID}-eth0")]);
    let path = env
        .cache_dir
        .path()
        .join("results")
        .join(format!("net-{CID}-eth0"));
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let keys: Vec<&str> = cached
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "kind",
            "containerId",
            "config",
            "ifName",
            "networkName",
            "netns",
            "cniArgs",
            "capabilityArgs",
            "result"
        ]
    );
    assert_eq!(cached["kind"], "cniCacheV1");
    assert_eq!(cached["containerId"], CID);
    assert_eq!(cached["ifName"], "eth0");
    assert_eq!(cached["networkName"], "net");
    assert_eq!(cached["netns"], NS);
    assert_eq!(cached["cniArgs"], json!([["FOO", "bar"], ["X", "1"]]));
    assert_eq!(cached["capabilityArgs"]["mac"], "aa:bb:cc:dd:ee:ff");
    assert_eq!(cached["result"], result);
    use base64::Engine;
    let config = base64::engine::general_purpose::STANDARD
        .decode(cached["config"].as_str().unwrap())
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&config).unwrap(), list);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

#[test]
fn del_runs_in_reverse_with_the_cached_result() {
    let env = Env::new();
    three(&env, "1.0.0");
    let added: Value =
        serde_json::from_str(&ok(&env.cnitool(&["add", "net", NS, "-i", "net1"], &[]))).unwrap();
    env.take_calls();
    ok(&env.cnitool(&["del", "net", NS, "--ifname", "net1"], &[]));
    let calls = env.take_calls();
    assert_eq!(labels(&calls), ["DEL:c", "DEL:b", "DEL:a"]);
    for c in &calls {
        assert_eq!(c["stdin"]["prevResult"], added);
        assert_eq!(c["env"]["CNI_IFNAME"], "net1");
    }
    assert!(env.cache_files().is_empty());
    // Idempotent: a second DEL runs the plugins without prevResult.
    ok(&env.cnitool(&["del", "net", NS, "-i", "net1"], &[]));
    assert!(env
        .take_calls()
        .iter()
        .all(|c| c["stdin"].get("prevResult").is_none()));
}

#[test]
fn legacy_versions_get_no_prev_result_on_del() {
    let env = Env::new();
    env.list("old", "0.3.1", vec![json!({"label": "a", "result": {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.2/24"}]}})]);
    ok(&env.cnitool(&["add", "old", NS], &[]));
    env.take_calls();
    ok(&env.cnitool(&["del", "old", NS], &[]));
    assert!(env.take_calls()[0]["stdin"].get("prevResult").is_none());
    let err = failed(&env.cnitool(&["check", "old", NS], &[]));
    assert!(err.contains("CHECK"), "{err}");
}

#[test]
fn check_in_order_and_disable_check() {
    let env = Env::new();
    three(&env, "0.4.0");
    let added: Value = serde_json::from_str(&ok(&env.cnitool(&["add", "net", NS], &[]))).unwrap();
    env.take_calls();
    ok(&env.cnitool(&["check", "net", NS], &[]));
    let calls = env.take_calls();
    assert_eq!(labels(&calls), ["CHECK:a", "CHECK:b", "CHECK:c"]);
    assert!(calls.iter().all(|c| c["stdin"]["prevResult"] == added));
    let mut list: Value = serde_json::from_str(
        &std::fs::read_to_string(env.conf_dir.path().join("net.conflist")).unwrap(),
    )
    .unwrap();
    list["disableCheck"] = json!("true");
    std::fs::write(env.conf_dir.path().join("net.conflist"), list.to_string()).unwrap();
    ok(&env.cnitool(&["check", "net", NS], &[]));
    assert!(env.take_calls().is_empty());
}

#[test]
fn errors_stop_the_list_and_name_the_plugin() {
    let env = Env::new();
    env.list(
        "net",
        "1.0.0",
        vec![
            json!({"label": "a"}),
            json!({"label": "b", "failOn": "ADD", "errorCode": 11, "errorMsg": "come back later"}),
            json!({"label": "c"}),
        ],
    );
    let err = failed(&env.cnitool(&["add", "net", NS], &[]));
    assert!(
        err.contains("noop") && err.contains("come back later") && err.contains("code 11"),
        "{err}"
    );
    assert_eq!(labels(&env.take_calls()), ["ADD:a", "ADD:b"]);
    assert!(env.cache_files().is_empty(), "no cache for a failed ADD");
}

#[test]
fn garbage_hangs_and_missing_plugins() {
    let env = Env::new();
    env.list(
        "garbage",
        "1.0.0",
        vec![json!({"label": "g", "rawStdout": "ADD", "raw": "this is not json", "exitCode": 0})],
    );
    let err = failed(&env.cnitool(&["add", "garbage", NS], &[]));
    assert!(err.contains("noop") && err.contains("unmarshal"), "{err}");
    env.list(
        "stderr",
        "1.0.0",
        vec![json!({"label": "s", "rawStdout": "ADD", "raw": "", "exitCode": 3})],
    );
    let err = failed(&env.cnitool(&["add", "stderr", NS], &[]));
    assert!(err.contains("noop") && err.contains("failed"), "{err}");
    env.list(
        "hang",
        "1.0.0",
        vec![json!({"label": "h", "sleepOn": "ADD", "sleepSeconds": 30})],
    );
    let start = std::time::Instant::now();
    let err = failed(&env.cnitool(&["add", "hang", NS], &[("CNI_TIMEOUT", "0.5")]));
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        err.contains("timed out") && err.contains("code 11"),
        "{err}"
    );
    std::fs::write(
        env.conf_dir.path().join("missing.conflist"),
        r#"{"cniVersion":"1.0.0","name":"missing","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let err = failed(&env.cnitool(&["add", "missing", NS], &[]));
    assert!(err.contains("no-such-plugin"), "{err}");
}

#[test]
fn gc_deletes_stale_attachments_then_fans_out() {
    let env = Env::new();
    three(&env, "1.1.0");
    ok(&env.cnitool(&["add", "net", "/run/netns/keep"], &[]));
    ok(&env.cnitool(&["add", "net", "/run/netns/stale"], &[]));
    env.take_calls();
    let stale_netns = "/run/netns/stale";
    // Which cached file is which container: read them.
    let mut keep = String::new();
    for f in &env.cache_files() {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(env.cache_dir.path().join("results").join(f)).unwrap(),
        )
        .unwrap();
        if v["netns"] == "/run/netns/keep" {
            keep = v["containerId"].as_str().unwrap().to_string();
        }
    }
    ok(&env.cnitool(&["gc", "net", "--valid", &format!("{keep}/eth0")], &[]));
    let calls = env.take_calls();
    assert_eq!(
        labels(&calls),
        ["DEL:c", "DEL:b", "DEL:a", "GC:a", "GC:b", "GC:c"]
    );
    assert!(calls[..3]
        .iter()
        .all(|c| c["env"]["CNI_NETNS"] == stale_netns));
    for c in &calls[3..] {
        let valid = json!([{"containerID": keep, "ifname": "eth0"}]);
        assert_eq!(c["stdin"]["cni.dev/valid-attachments"], valid);
        assert_eq!(c["stdin"]["cni.dev/attachments"], valid);
        assert_eq!(c["env"]["CNI_CONTAINERID"], "");
        assert!(c["stdin"].get("prevResult").is_none());
    }
    assert_eq!(env.cache_files().len(), 1);
    // Without --valid, every cached attachment of the network goes.
    ok(&env.cnitool(&["gc", "net", "/run/netns/any"], &[]));
    assert!(env.cache_files().is_empty());
    let calls = env.take_calls();
    assert_eq!(
        labels(&calls),
        ["DEL:c", "DEL:b", "DEL:a", "GC:a", "GC:b", "GC:c"]
    );
    assert!(calls[3]["stdin"].get("cni.dev/valid-attachments").is_none());
}

#[test]
fn status_in_order_first_error_wins() {
    let env = Env::new();
    env.list(
        "net",
        "1.1.0",
        vec![json!({"label": "a"}), json!({"label": "b", "failOn": "STATUS", "errorCode": 50, "errorMsg": "no addresses left"}), json!({"label": "c"})],
    );
    let err = failed(&env.cnitool(&["status", "net"], &[]));
    assert!(
        err.contains("no addresses left") && err.contains("code 50"),
        "{err}"
    );
    assert_eq!(labels(&env.take_calls()), ["STATUS:a", "STATUS:b"]);
    env.list("old", "1.0.0", vec![json!({"label": "a"})]);
    ok(&env.cnitool(&["status", "old"], &[]));
    assert!(env.take_calls().is_empty(), "no STATUS below 1.1.0");
}

#[test]
fn reference_cache_files_and_broken_ones() {
    let env = Env::new();
    three(&env, "1.0.0");
    let results = env.cache_dir.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let path = results.join(format!("net-{CID}-eth0"));
    // As the reference's libcni writes it (config is base64 of the list).
    let reference = json!({"kind": "cniCacheV1", "containerId": CID, "config": "eyJuYW1lIjoibmV0In0=", "ifName": "eth0",
        "networkName": "net", "netns": NS, "result": {"cniVersion": "0.4.0", "interfaces": [{"name": "ref0"}],
        "ips": [{"version": "4", "interface": 0, "address": "10.9.0.2/24"}]}});
    std::fs::write(&path, reference.to_string()).unwrap();
    ok(&env.cnitool(&["del", "net", NS], &[]));
    let calls = env.take_calls();
    assert_eq!(calls.len(), 3);
    // Converted to the list's version (1.0.0): no ips[].version.
    assert_eq!(
        calls[0]["stdin"]["prevResult"]["interfaces"][0]["name"],
        "ref0"
    );
    assert_eq!(calls[0]["stdin"]["prevResult"]["cniVersion"], "1.0.0");
    assert!(calls[0]["stdin"]["prevResult"]["ips"][0]
        .get("version")
        .is_none());
    assert!(!path.exists());
    for broken in ["", "{\"kind\":\"cniCacheV1\",\"conta", "garbage"] {
        std::fs::write(&path, broken).unwrap();
        ok(&env.cnitool(&["del", "net", NS], &[]));
        let calls = env.take_calls();
        assert_eq!(
            calls.len(),
            3,
            "DEL must still run with a broken cache {broken:?}"
        );
        assert!(calls[0]["stdin"].get("prevResult").is_none());
        assert!(!path.exists());
    }
    std::fs::write(&path, "{").unwrap();
    let err = failed(&env.cnitool(&["check", "net", NS], &[]));
    assert!(err.contains(&format!("net-{CID}-eth0")), "{err}");
}

#[test]
fn config_errors_and_the_extra_commands() {
    let env = Env::new();
    three(&env, "1.0.0");
    let err = failed(&env.cnitool(&["add", "nope", NS], &[]));
    assert!(err.contains("nope"), "{err}");
    std::fs::write(env.conf_dir.path().join("0-broken.conflist"), "{oops").unwrap();
    let err = failed(&env.cnitool(&["add", "net", NS], &[]));
    assert!(err.contains("0-broken.conflist"), "{err}");
    std::fs::remove_file(env.conf_dir.path().join("0-broken.conflist")).unwrap();
    let usage = env.cnitool(&["add", "net"], &[]);
    assert_eq!(usage.status.code(), Some(2));
    assert_eq!(env.cnitool(&["frob"], &[]).status.code(), Some(2));
    let usage = env.cnitool(&["add", "net", NS], &[("CNI_ARGS", "broken")]);
    assert_eq!(usage.status.code(), Some(2));
    let usage = env.cnitool(&["add", "net", NS], &[("CAP_ARGS", "[1")]);
    assert_eq!(usage.status.code(), Some(2));
    for cmd in ["add", "check", "del", "gc", "status", "version", "list"] {
        let help = ok(&env.cnitool(&[cmd, "--help"], &[]));
        assert!(help.contains(&format!("cnitool {cmd}")), "{cmd}: {help}");
    }
    let v: Value = serde_json::from_str(&ok(&env.cnitool(&["version", "noop"], &[]))).unwrap();
    assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
    std::fs::write(
        env.conf_dir.path().join("single.conf"),
        r#"{"cniVersion":"0.4.0","name":"single","type":"noop"}"#,
    )
    .unwrap();
    let listed = ok(&env.cnitool(&["list"], &[]));
    assert!(listed.contains("net\t1.0.0\tnoop,noop,noop"), "{listed}");
    assert!(listed.contains("single\t0.4.0\tnoop"), "{listed}");
}

#[test]
fn validate_checks_versions_and_unions_capabilities() {
    let env = Env::new();
    three(&env, "1.1.0");
    let list = rcni_runtime::conf::load(env.conf_dir.path(), "net").unwrap();
    let cni = rcni_runtime::Cni::new(vec![noop_dir()]);
    assert_eq!(
        cni.validate_network_list(&list).unwrap(),
        ["mac", "portMappings"]
    );
    let mut future = list.clone();
    future.cni_version = "9.9.9".into();
    let err = cni.validate_network_list(&future).unwrap_err().to_string();
    assert!(err.contains("9.9.9"), "{err}");
    let mut missing = list.clone();
    missing.plugins[1].plugin_type = "absent-plugin".into();
    let err = cni.validate_network_list(&missing).unwrap_err().to_string();
    assert!(err.contains("absent-plugin"), "{err}");
}
