//! tuning: each key's effect in the container's kernel state, DEL putting
//! the link back and removing its backup file, CHECK, the overrides, the
//! allowlist, bad input, and interop with the reference both ways.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};

const ORIGINAL_MAC: &str = "02:00:00:00:aa:01";
const ORIGINAL_MTU: u64 = 1500;

/// A host netns, a container netns whose `eth0` (one end of a veth pair,
/// the other end `peer0` also inside) has known values, and a data dir.
struct TuningSetup {
    host: Netns,
    ctr: Netns,
    data: tempfile::TempDir,
}

impl TuningSetup {
    fn new() -> TuningSetup {
        let host = Netns::new("tuh");
        let ctr = Netns::new("tuc");
        ctr.exec(&[
            "ip",
            "link",
            "add",
            "eth0",
            "address",
            ORIGINAL_MAC,
            "type",
            "veth",
            "peer",
            "name",
            "peer0",
        ]);
        ctr.exec(&["ip", "link", "set", "eth0", "up"]);
        TuningSetup {
            host,
            ctr,
            data: data_dir(),
        }
    }

    fn conf(&self, version: &str, keys: Value) -> Value {
        let prev = if version.starts_with("0.1") || version.starts_with("0.2") {
            json!({"cniVersion": version, "ip4": {"ip": "10.9.0.2/24"}})
        } else {
            let mut ip = json!({"address": "10.9.0.2/24", "interface": 0});
            if version.starts_with("0.") {
                ip["version"] = json!("4");
            }
            json!({"cniVersion": version,
                   "interfaces": [{"name": "eth0", "mac": ORIGINAL_MAC, "sandbox": self.ctr.path()}],
                   "ips": [ip]})
        };
        let mut conf = json!({"cniVersion": version, "name": "tunenet", "type": "tuning",
                              "dataDir": self.data.path(), "prevResult": prev});
        for (k, v) in keys.as_object().expect("keys").clone() {
            conf[k] = v;
        }
        conf
    }

    fn call(&self, command: &str) -> Call {
        Call::rcni("tuning", command, &self.host, Some(&self.ctr))
    }

    fn backup(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.data.path().join("ctr1_eth0.json")).ok()?;
        Some(serde_json::from_str(&text).expect("backup JSON"))
    }
}

/// What a user sees of a link: MAC, MTU, promisc, allmulti, txqlen.
#[derive(Debug, PartialEq)]
struct LinkState {
    mac: String,
    mtu: u64,
    promisc: bool,
    allmulti: bool,
    txqlen: u64,
}

fn link_state(ns: &Netns, dev: &str) -> LinkState {
    let l = link_details(ns, dev);
    let flags: Vec<&str> = l["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    LinkState {
        mac: l["address"].as_str().expect("address").to_string(),
        mtu: l["mtu"].as_u64().expect("mtu"),
        promisc: flags.contains(&"PROMISC"),
        allmulti: flags.contains(&"ALLMULTI"),
        txqlen: l["txqlen"].as_u64().expect("txqlen"),
    }
}

fn original() -> LinkState {
    LinkState {
        mac: ORIGINAL_MAC.into(),
        mtu: ORIGINAL_MTU,
        promisc: false,
        allmulti: false,
        txqlen: 1000,
    }
}

/// A sysctl as read inside `ns`.
fn sysctl(ns: &Netns, key: &str) -> String {
    ns.exec(&["cat", &format!("/proc/sys/{key}")])
        .trim()
        .to_string()
}

fn every_key() -> Value {
    json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1",
                      "net/ipv4/conf/all/arp_announce": "2"},
           "mac": "02:00:00:00:bb:02", "promisc": true, "mtu": 1400,
           "txQLen": 42, "allmulti": true})
}

fn tuned() -> LinkState {
    LinkState {
        mac: "02:00:00:00:bb:02".into(),
        mtu: 1400,
        promisc: true,
        allmulti: true,
        txqlen: 42,
    }
}

#[test]
fn every_key_applied_checked_and_restored_on_each_version() {
    for version in ["0.1.0", "0.2.0"].iter().chain(VERSIONS) {
        let w = TuningSetup::new();
        assert_eq!(link_state(&w.ctr, "eth0"), original());
        let conf = w.conf(version, every_key());
        let result = w.call("ADD").run(&conf).ok();
        assert_eq!(result["cniVersion"], *version);
        if !version.starts_with("0.1") && !version.starts_with("0.2") {
            assert_eq!(result["interfaces"][0]["mac"], "02:00:00:00:bb:02");
        }
        assert_eq!(link_state(&w.ctr, "eth0"), tuned(), "{version}");
        assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "1");
        assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/all/arp_announce"), "2");
        // Only the container's: the host's stay as they were.
        assert_eq!(sysctl(&w.host, "net/ipv4/conf/all/arp_announce"), "0");
        assert_eq!(
            w.backup().expect("backup file"),
            json!({"mac": ORIGINAL_MAC, "promisc": false, "mtu": 1500,
                   "allmulti": false, "txQLen": 1000})
        );
        if *version >= "0.4.0" {
            w.call("CHECK").run(&conf).ok();
        }
        w.call("DEL").run(&conf).ok();
        assert_eq!(link_state(&w.ctr, "eth0"), original(), "{version}");
        assert_eq!(w.backup(), None, "the backup file is removed");
        // As the reference: the sysctls stay (they go with the netns).
        assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "1");
        w.call("DEL").run(&conf).ok();
        assert_eq!(link_state(&w.ctr, "eth0"), original());
    }
}

#[test]
fn only_sysctls_leave_no_backup_and_unset_keys_stay() {
    let w = TuningSetup::new();
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.eth0.arp_ignore": "2"}}),
    );
    w.call("ADD").run(&conf).ok();
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "2");
    assert_eq!(w.backup(), None);
    // Only the MTU: only the MTU is saved.
    let conf = w.conf("1.0.0", json!({"mtu": 1300}));
    w.call("ADD").run(&conf).ok();
    assert_eq!(w.backup(), Some(json!({"mtu": 1500})));
    assert_eq!(
        link_state(&w.ctr, "eth0"),
        LinkState {
            mtu: 1300,
            ..original()
        }
    );
    w.call("DEL").run(&conf).ok();
    assert_eq!(link_state(&w.ctr, "eth0"), original());
}

#[test]
fn check_reports_what_drifted() {
    let w = TuningSetup::new();
    let conf = w.conf("1.0.0", every_key());
    w.call("ADD").run(&conf).ok();
    w.call("CHECK").run(&conf).ok();
    w.ctr.exec(&["ip", "link", "set", "eth0", "mtu", "1450"]);
    let (code, msg) = w.call("CHECK").run(&conf).err();
    assert_eq!(code, 999);
    assert!(
        msg.contains("MTU of eth0 is 1400, current value is 1450"),
        "{msg}"
    );
    w.ctr.exec(&["ip", "link", "set", "eth0", "mtu", "1400"]);
    w.ctr.exec(&[
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore",
    ]);
    let (code, msg) = w.call("CHECK").run(&conf).err();
    assert_eq!(code, 999);
    assert!(msg.contains("arp_ignore is 1, current value is 0"), "{msg}");
    w.ctr.exec(&[
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_ignore",
    ]);
    w.ctr
        .exec(&["ip", "link", "set", "eth0", "allmulticast", "off"]);
    let (_, msg) = w.call("CHECK").run(&conf).err();
    assert!(msg.contains("all-multicast"), "{msg}");
    // promisc false in the config: a promiscuous link is drift too.
    let plain = w.conf("1.0.0", json!({}));
    let (_, msg) = w.call("CHECK").run(&plain).err();
    assert!(msg.contains("promisc"), "{msg}");
    w.call("DEL").run(&conf).ok();
}

#[test]
fn overrides_in_the_references_order() {
    let w = TuningSetup::new();
    let mac_of = |call: Call, conf: &Value| {
        call.run(conf).ok();
        let mac = link_state(&w.ctr, "eth0").mac;
        w.call("DEL").run(conf).ok();
        assert_eq!(link_state(&w.ctr, "eth0"), original());
        mac
    };
    let base = w.conf("1.0.0", json!({"mac": "02:00:00:00:00:0a"}));
    assert_eq!(mac_of(w.call("ADD"), &base), "02:00:00:00:00:0a");
    let env_mac = w.call("ADD").args("IgnoreUnknown=1;MAC=02:00:00:00:00:0b");
    assert_eq!(mac_of(env_mac.clone(), &base), "02:00:00:00:00:0b");
    let runtime = with(
        base.clone(),
        "runtimeConfig",
        json!({"mac": "02:00:00:00:00:0c"}),
    );
    assert_eq!(mac_of(env_mac.clone(), &runtime), "02:00:00:00:00:0c");
    let args = with(
        runtime,
        "args",
        json!({"cni": {"mac": "02:00:00:00:00:0d"}}),
    );
    assert_eq!(mac_of(env_mac, &args), "02:00:00:00:00:0d");

    // args.cni overrides every other key.
    let conf = with(
        w.conf("1.0.0", every_key()),
        "args",
        json!({"cni": {"mtu": 1280, "promisc": false, "allmulti": false, "txQLen": 7,
                       "sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "2"}}}),
    );
    w.call("ADD").run(&conf).ok();
    assert_eq!(
        link_state(&w.ctr, "eth0"),
        LinkState {
            mac: "02:00:00:00:bb:02".into(),
            mtu: 1280,
            promisc: false,
            allmulti: false,
            txqlen: 7,
        }
    );
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "2");
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/all/arp_announce"), "2");
    w.call("CHECK").run(&conf).ok();
    w.call("DEL").run(&conf).ok();
    assert_eq!(link_state(&w.ctr, "eth0"), original());
}

#[test]
fn ifname_with_a_dot_in_a_sysctl_key() {
    let w = TuningSetup::new();
    w.ctr.exec(&[
        "ip", "link", "add", "eth0.7", "type", "veth", "peer", "name", "peer7",
    ]);
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1"}}),
    );
    w.call("ADD").ifname("eth0.7").run(&conf).ok();
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0.7/arp_ignore"), "1");
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "0");
}

#[test]
fn bad_input_is_refused_naming_the_key_and_changes_nothing() {
    let w = TuningSetup::new();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"sysctl": {"kernel.hostname": "x"}}), "sysctl"),
        (json!({"sysctl": {"net/../kernel/hostname": "x"}}), "sysctl"),
        (
            json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": 1}}),
            "sysctl",
        ),
        (
            json!({"sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1\n2"}}),
            "sysctl",
        ),
        (
            json!({"sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1",
                           "net/ipv4/conf/IFNAME/arp_ignore": "2"}}),
            "sysctl",
        ),
        (json!({"sysctl": "net.x"}), "sysctl"),
        (json!({"mac": "02:00:00:00:00"}), "mac"),
        (json!({"mtu": -1}), "mtu"),
        (json!({"mtu": "big"}), "mtu"),
        (json!({"txQLen": -5}), "txQLen"),
        (json!({"promisc": "yes"}), "promisc"),
        (json!({"allmulti": 1}), "allmulti"),
        (json!({"dataDir": "relative/dir", "mtu": 1400}), "dataDir"),
        (json!({"args": {"cni": {"mtu": "x"}}}), "args.cni.mtu"),
        (json!({"args": {"cni": {"mac": "nope"}}}), "args.cni.mac"),
        (
            json!({"args": {"cni": {"promisc": "on"}}}),
            "args.cni.promisc",
        ),
        (
            json!({"args": {"cni": {"allmulti": 2}}}),
            "args.cni.allmulti",
        ),
        (json!({"args": {"cni": {"txQLen": -1}}}), "args.cni.txQLen"),
        (
            json!({"args": {"cni": {"sysctl": {"vm.swappiness": "1"}}}}),
            "args.cni.sysctl",
        ),
        (
            json!({"runtimeConfig": {"mac": "nope"}}),
            "runtimeConfig.mac",
        ),
        // A sysctl the container lacks, after one that worked: that one
        // is put back.
        (
            json!({"sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1",
                           "net.ipv4.no_such_sysctl": "1"}, "mtu": 1400}),
            "no_such_sysctl",
        ),
    ];
    for (keys, field) in cases {
        let conf = w.conf("1.0.0", keys.clone());
        let (code, msg) = w.call("ADD").run(&conf).err();
        assert_eq!(code, 7, "{keys}: {msg}");
        assert!(msg.contains(field), "{keys}: {msg} does not name {field}");
        assert_eq!(link_state(&w.ctr, "eth0"), original(), "{keys}");
        assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "0");
        assert_eq!(w.backup(), None, "{keys}");
    }
    // Keys repeated in the text: only the raw config shows them.
    let raw = format!(
        r#"{{"cniVersion":"1.0.0","name":"tunenet","type":"tuning","prevResult":{},
            "sysctl":{{"net.ipv4.conf.eth0.arp_ignore":"1","net.ipv4.conf.eth0.arp_ignore":"2"}}}}"#,
        w.conf("1.0.0", json!({}))["prevResult"]
    );
    let (code, msg) = w.call("ADD").run_raw(raw.as_bytes()).err();
    assert_eq!(code, 7);
    assert!(msg.contains("duplicated sysctl keys"), "{msg}");
    let bad_env = w.call("ADD").args("IgnoreUnknown=1;MAC=zz");
    let (code, msg) = bad_env.run(&w.conf("1.0.0", json!({}))).err();
    assert_eq!((code, msg.contains("MAC")), (7, true), "{msg}");
    let mut no_prev = w.conf("1.0.0", every_key());
    no_prev
        .as_object_mut()
        .expect("object")
        .remove("prevResult");
    let (code, msg) = w.call("ADD").run(&no_prev).err();
    assert_eq!((code, msg.contains("prevResult")), (7, true), "{msg}");
    assert_eq!(link_state(&w.ctr, "eth0"), original());
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "0");
}

#[test]
fn a_failing_add_undoes_its_changes() {
    let w = TuningSetup::new();
    // veth takes at most 65535: the kernel refuses the MTU after the
    // sysctl and the MAC are set.
    let conf = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"},
               "mac": "02:00:00:00:bb:02", "mtu": 70000}),
    );
    let (code, msg) = w.call("ADD").run(&conf).err();
    assert_eq!(code, 999, "{msg}");
    assert!(msg.contains("mtu"), "{msg}");
    assert_eq!(link_state(&w.ctr, "eth0"), original());
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "0");
    assert_eq!(w.backup(), None);
}

#[test]
fn del_with_the_netns_or_the_link_gone() {
    let w = TuningSetup::new();
    let conf = w.conf("1.0.0", every_key());
    w.call("ADD").run(&conf).ok();
    w.ctr.exec(&["ip", "link", "del", "eth0"]);
    w.call("DEL").run(&conf).ok();
    assert_eq!(w.backup(), None);

    let w = TuningSetup::new();
    let conf = w.conf("1.0.0", every_key());
    w.call("ADD").run(&conf).ok();
    let del = w.call("DEL");
    let TuningSetup {
        host: _host,
        ctr,
        data,
    } = w;
    sh("ip", &["netns", "del", &ctr.name]);
    // Already deleted: no second `ip netns del` on drop.
    std::mem::forget(ctr);
    del.run(&conf).ok();
    assert!(!data.path().join("ctr1_eth0.json").exists());
    let mut no_netns = del.clone();
    no_netns.netns = String::new();
    no_netns.run(&conf).ok();
}

#[test]
fn del_restores_with_keys_it_does_not_use_broken() {
    let w = TuningSetup::new();
    let conf = w.conf("1.0.0", every_key());
    w.call("ADD").run(&conf).ok();
    let broken = w.conf(
        "1.0.0",
        json!({"sysctl": 5, "mtu": -1, "mac": "nope", "txQLen": "x", "args": 7}),
    );
    w.call("DEL").run(&broken).ok();
    assert_eq!(link_state(&w.ctr, "eth0"), original());
    assert_eq!(w.backup(), None);
}

/// Runs `call` as the last arguments of the command `wrapper`, with the
/// call's environment: under `timeout`, or in a mount namespace of its own.
fn run_wrapped(call: &Call, wrapper: &[&str], conf: &Value) -> Reply {
    let inner = call.process();
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the wrapper");
    // The plugin may fail before reading stdin: a broken pipe is fine.
    let _ = std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        conf.to_string().as_bytes(),
    );
    let out = child.wait_with_output().expect("wait");
    Reply {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `call` with `allowlist` as `/etc/cni/tuning/allowlist.conf`: in a
/// private mount namespace whose `/etc` is an overlay on the real one, so
/// nothing of the machine's `/etc` changes and the plugin itself has no
/// way of being pointed at another file.
fn run_with_allowlist(call: &Call, allowlist: &str, conf: &Value) -> Reply {
    let scratch = tempfile::tempdir().expect("scratch dir");
    std::fs::write(scratch.path().join("allowlist.conf"), allowlist).expect("allowlist");
    std::fs::create_dir(scratch.path().join("t")).expect("mount point");
    let script = r#"set -e
s="$1"; shift
mount -t tmpfs tmpfs "$s/t"
mkdir "$s/t/upper" "$s/t/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$s/t/upper,workdir=$s/t/work" /etc
mkdir -p /etc/cni/tuning
cp "$s/allowlist.conf" /etc/cni/tuning/allowlist.conf
exec "$@""#;
    let dir = scratch.path().to_str().expect("utf8");
    let wrapper = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        dir,
    ];
    run_wrapped(call, &wrapper, conf)
}

/// A FIFO or a symlink planted as the backup file, or a FIFO as the
/// netns: every call answers (under `timeout`, which would kill it), and
/// nothing is written through the link.
#[test]
fn planted_files_neither_hang_nor_redirect() {
    let w = TuningSetup::new();
    let bounded = ["timeout", "10"];
    let conf = w.conf("1.0.0", json!({"mtu": 1400}));
    let backup = w.data.path().join("ctr1_eth0.json");
    sh("mkfifo", &[backup.to_str().expect("utf8")]);
    for verb in ["ADD", "DEL"] {
        let (code, msg) = run_wrapped(&w.call(verb), &bounded, &conf).err();
        assert_ne!(code, 124, "{verb} hung");
        assert!(msg.contains("ctr1_eth0.json"), "{verb}: {msg}");
    }
    assert_eq!(link_state(&w.ctr, "eth0"), original());
    std::fs::remove_file(&backup).expect("remove the FIFO");

    let target = w.data.path().join("target");
    std::fs::write(&target, "keep").expect("target");
    std::os::unix::fs::symlink(&target, &backup).expect("symlink");
    let (code, _) = run_wrapped(&w.call("ADD"), &bounded, &conf).err();
    assert_ne!(code, 124);
    assert_eq!(std::fs::read_to_string(&target).expect("target"), "keep");
    assert_eq!(link_state(&w.ctr, "eth0"), original());
    std::fs::remove_file(&backup).expect("remove the symlink");

    let fifo = w.data.path().join("netns-fifo");
    sh("mkfifo", &[fifo.to_str().expect("utf8")]);
    // With a backup to restore, DEL opens the netns too.
    std::fs::write(&backup, r#"{"mtu": 1500}"#).expect("backup");
    for verb in ["ADD", "CHECK", "DEL"] {
        let mut call = w.call(verb);
        call.netns = fifo.to_string_lossy().into_owned();
        let (code, msg) = run_wrapped(&call, &bounded, &conf).err();
        assert_ne!(code, 124, "{verb} hung");
        assert!(msg.contains("not a network namespace"), "{verb}: {msg}");
    }
}

#[test]
fn allowlist_lines_are_unanchored_regexes() {
    let w = TuningSetup::new();
    let before = std::fs::read_dir("/etc/cni").map(|d| d.count()).ok();
    // Unanchored: "arp_ignore" allows any key containing it; the anchored
    // line allows exactly its key.
    let allowlist = "\n  arp_ignore  \n^net\\.ipv4\\.conf\\.all\\.arp_announce$\n";
    let allowed = w.conf(
        "1.0.0",
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_ignore": "1",
                          "net.ipv4.conf.all.arp_announce": "2"}}),
    );
    let r = run_with_allowlist(&w.call("ADD"), allowlist, &allowed);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/eth0/arp_ignore"), "1");
    assert_eq!(sysctl(&w.ctr, "net/ipv4/conf/all/arp_announce"), "2");

    for key in [
        "net.ipv4.conf.eth0.arp_announce",
        "net/ipv4/conf/all/arp_announce",
    ] {
        let refused = w.conf("1.0.0", json!({"sysctl": {key: "1"}, "mtu": 1400}));
        let r = run_with_allowlist(&w.call("ADD"), allowlist, &refused);
        let (code, msg) = r.err();
        assert_eq!(code, 7, "{msg}");
        assert!(
            msg.contains(&format!("Sysctl {key} is not allowed")),
            "{msg}"
        );
        assert_eq!(link_state(&w.ctr, "eth0"), original());
    }
    // A broken expression is the administrator's error, reported as such.
    let r = run_with_allowlist(&w.call("ADD"), "net.(", &allowed);
    let (code, msg) = r.err();
    assert_eq!(code, 999);
    assert!(msg.contains("allowlist"), "{msg}");
    assert_eq!(
        std::fs::read_dir("/etc/cni").map(|d| d.count()).ok(),
        before,
        "the machine's /etc/cni is untouched"
    );
}

fn interop_keys() -> Value {
    // What Debian's 1.1.1 knows (it has no txQLen).
    json!({"mac": "02:00:00:00:bb:02", "promisc": true, "mtu": 1400, "allmulti": true})
}

fn interop_tuned() -> LinkState {
    LinkState {
        txqlen: 1000,
        ..tuned()
    }
}

#[test]
fn interop_with_the_reference() {
    require_reference();
    for reference_adds in [false, true] {
        let w = TuningSetup::new();
        let conf = w.conf("1.0.0", interop_keys());
        let (add, del) = interop_pair("tuning", &w.host, &w.ctr, reference_adds);
        add.run(&conf).ok();
        assert_eq!(link_state(&w.ctr, "eth0"), interop_tuned());
        assert!(w.backup().is_some());
        del.run(&conf).ok();
        assert_eq!(
            link_state(&w.ctr, "eth0"),
            original(),
            "reference_adds={reference_adds}"
        );
        assert_eq!(w.backup(), None);
    }
}

#[test]
fn same_backup_file_as_the_reference() {
    require_reference();
    let mut files = Vec::new();
    for reference in [false, true] {
        let w = TuningSetup::new();
        let conf = w.conf("1.0.0", interop_keys());
        let mut add = w.call("ADD");
        if reference {
            add = add.reference();
        }
        add.run(&conf).ok();
        let path = w.data.path().join("ctr1_eth0.json");
        files.push(std::fs::read_to_string(Path::new(&path)).expect("backup"));
        w.call("DEL").run(&conf).ok();
    }
    assert_eq!(files[0], files[1]);
}
