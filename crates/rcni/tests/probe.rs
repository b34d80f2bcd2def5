//! The hostile-input probe: every plugin that runs on this kernel is
//! called, as a runtime would call it, with configs, capability args and
//! `CNI_*` values mutated at random (see `common/mutate.rs`), and each call
//! must answer within a time bound, with success or a CNI error object,
//! without a signal, a panic or more than a bounded amount of memory, and
//! must leave the host exactly as it found it once DEL has run (or at once
//! when ADD fails): links, addresses, routes, every iptables table and the
//! nftables ruleset, no file outside the test's temp dirs, no rule or path
//! that an injected string named.
//!
//! Deterministic: `RCNI_PROBE_SEED` (default 1) and the case number give
//! each case its input, so a failure can be replayed alone with
//! `RCNI_PROBE_SEED=<seed> RCNI_PROBE_FIRST=<case> RCNI_PROBE_CASES=1`.
//! `RCNI_PROBE_CASES` (default 120) sets how many cases run,
//! `RCNI_PROBE_THREADS` (default 2) how many hosts run them side by side,
//! `RCNI_PROBE_REPORT` names a file that gets one line per failure.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::mutate::{self, Rng, CANARY, CANARY_PATHS};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest a plugin call may take before it counts as hung.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest resident set a plugin may reach, in KiB. stdin is capped at
/// 4 MiB, which can hold 2 million one-byte JSON values, about 160 MiB per
/// decoded copy; a plugin holds at most two (the document and the section
/// it reads: `ipam`, `runtimeConfig`, `args`). The reference needs as much:
/// its ptp peaks at 148 MiB on a 2 MB array inside `ipam`.
const MAX_RSS_KIB: u64 = 512 * 1024;
/// The bridge the bridge cases create (deleted after each case: the
/// bridge plugin never removes it, by design).
const PROBE_BRIDGE: &str = "pbr0";
/// The bridge of the attachment portmap is chained after; it stays.
const PORTMAP_BRIDGE: &str = "pmbr";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Bridge,
    Ptp,
    Macvlan,
    HostDevice,
    Tap,
    Loopback,
    HostLocal,
    Static,
    Portmap,
}

const KINDS: [Kind; 9] = [
    Kind::Bridge,
    Kind::Ptp,
    Kind::Macvlan,
    Kind::HostDevice,
    Kind::Tap,
    Kind::Loopback,
    Kind::HostLocal,
    Kind::Static,
    Kind::Portmap,
];

/// Keys whose values point the plugin at the test's temp dirs: mutating
/// them would make the plugin write where the admin never would.
const PROTECTED: &[&str] = &["dataDir"];

fn backend(rng: &mut Rng) -> &'static str {
    if rng.one_in(2) {
        "iptables"
    } else {
        "nftables"
    }
}

fn static_ipam(subnet: u8) -> Value {
    json!({"type": "static",
        "addresses": [{"address": format!("10.{subnet}.0.5/24"), "gateway": format!("10.{subnet}.0.1")},
                      {"address": format!("fd00:{subnet}::5/64")}],
        "routes": [{"dst": format!("10.{}.0.0/16", subnet + 1)}, {"dst": "::/0"}],
        "dns": {"nameservers": [format!("10.{subnet}.0.1")], "search": ["probe.test"]}})
}

fn host_local_ipam(subnet: u8, data: &str) -> Value {
    json!({"type": "host-local", "dataDir": data,
        "ranges": [[{"subnet": format!("10.{subnet}.0.0/24"), "rangeStart": format!("10.{subnet}.0.10"),
                     "gateway": format!("10.{subnet}.0.1")}], [{"subnet": format!("fd00:{subnet}::/64")}]],
        "routes": [{"dst": format!("10.{}.0.0/16", subnet + 1)}]})
}

/// The capability args and `args.cni` a runtime may inject for a plugin
/// over `subnet`.
fn user_args(conf: &mut Value, subnet: u8, rng: &mut Rng) {
    // One of the two: host-local would look for both addresses in one range.
    match rng.below(3) {
        0 => {
            conf["runtimeConfig"] = json!({"mac": "02:00:00:00:00:42",
                "ips": [format!("10.{subnet}.0.20/24")]})
        }
        1 => {
            conf["args"] = json!({"cni": {"ips": [format!("10.{subnet}.0.21/24")], "mac": "02:00:00:00:00:43"}})
        }
        _ => {}
    }
}

/// A valid config of `kind` (random among its variants) and the plugin it
/// is for.
fn base(kind: Kind, rng: &mut Rng, host: &Host) -> (&'static str, Value) {
    let data = host.data.path().to_str().unwrap();
    let version = *rng.pick(VERSIONS);
    let mut conf = json!({"cniVersion": version, "name": "probenet"});
    let plugin = match kind {
        Kind::Bridge => {
            conf["type"] = json!("bridge");
            conf["bridge"] = json!(PROBE_BRIDGE);
            conf["isGateway"] = json!(true);
            conf["isDefaultGateway"] = json!(rng.one_in(2));
            conf["ipMasq"] = json!(rng.one_in(2));
            conf["ipMasqBackend"] = json!(backend(rng));
            conf["hairpinMode"] = json!(rng.one_in(2));
            conf["macspoofchk"] = json!(rng.one_in(3));
            conf["mtu"] = json!(1400);
            conf["capabilities"] = json!({"mac": true, "ips": true});
            conf["ipam"] = host_local_ipam(99, data);
            user_args(&mut conf, 99, rng);
            "bridge"
        }
        Kind::Ptp => {
            conf["type"] = json!("ptp");
            conf["ipMasq"] = json!(rng.one_in(2));
            conf["ipMasqBackend"] = json!(backend(rng));
            conf["mtu"] = json!(1300);
            conf["dns"] = json!({"nameservers": ["10.97.0.1"]});
            // ptp needs a gateway, which addresses from the user lack.
            if rng.one_in(2) {
                conf["ipam"] = host_local_ipam(97, data);
                user_args(&mut conf, 97, rng);
            } else {
                conf["ipam"] = static_ipam(97);
            }
            "ptp"
        }
        Kind::Macvlan => {
            conf["type"] = json!("macvlan");
            conf["master"] = json!("m0");
            conf["mode"] = json!(*rng.pick(&["bridge", "private", "vepa"]));
            conf["mac"] = json!("02:00:00:00:00:44");
            conf["ipam"] = if rng.one_in(2) {
                host_local_ipam(95, data)
            } else {
                static_ipam(95)
            };
            user_args(&mut conf, 95, rng);
            "macvlan"
        }
        Kind::HostDevice => {
            conf["type"] = json!("host-device");
            conf["device"] = json!("hd0");
            conf["ipam"] = static_ipam(93);
            "host-device"
        }
        Kind::Tap => {
            conf["type"] = json!("tap");
            conf["mtu"] = json!(1400);
            conf["mac"] = json!("02:00:00:00:00:45");
            conf["multiQueue"] = json!(rng.one_in(2));
            conf["owner"] = json!(0);
            conf["group"] = json!(0);
            conf["ipam"] = static_ipam(91);
            "tap"
        }
        Kind::Loopback => {
            conf["type"] = json!("loopback");
            "loopback"
        }
        Kind::HostLocal => {
            conf["type"] = json!("probe");
            conf["ipam"] = host_local_ipam(89, data);
            conf["ipam"]["resolvConf"] = json!(host.scratch.path().join("resolv.conf"));
            user_args(&mut conf, 89, rng);
            if rng.one_in(2) {
                conf["runtimeConfig"]["ipRanges"] = json!([[{"subnet": "10.87.0.0/28"}]]);
            }
            "host-local"
        }
        Kind::Static => {
            conf["type"] = json!("probe");
            conf["ipam"] = static_ipam(85);
            user_args(&mut conf, 85, rng);
            "static"
        }
        Kind::Portmap => {
            let version = *rng.pick(&["1.0.0", "1.1.0"]);
            let be = backend(rng);
            conf["cniVersion"] = json!(version);
            conf["type"] = json!("portmap");
            conf["backend"] = json!(be);
            conf["snat"] = json!(rng.one_in(2));
            conf["masqAll"] = json!(rng.one_in(3));
            conf["capabilities"] = json!({"portMappings": true});
            if be == "iptables" {
                if rng.one_in(2) {
                    conf["externalSetMarkChain"] = json!("CNI-PROBE-MARK");
                } else {
                    conf["markMasqBit"] = json!(13);
                }
                conf["conditionsV4"] = json!(["-s", "10.0.0.0/8"]);
                conf["conditionsV6"] = json!(["-s", "fd00::/8"]);
            } else {
                conf["conditionsV4"] = json!(["ip", "saddr", "10.0.0.0/8"]);
                conf["conditionsV6"] = json!(["ip6", "saddr", "fd00::/8"]);
            }
            conf["runtimeConfig"] = json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 8443, "containerPort": 443, "protocol": "udp", "hostIP": "10.83.0.1"},
                {"hostPort": 9090, "containerPort": 90, "protocol": "sctp", "hostIP": "fd00:83::1"}]});
            conf["prevResult"] = host.prev_result.clone();
            "portmap"
        }
    };
    (plugin, conf)
}

/// What one plugin call did.
struct Outcome {
    /// Exit code; None after a signal or when killed for a hang.
    code: Option<i32>,
    hung: bool,
    stdout: String,
    stderr: String,
    rss_kib: u64,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Every way the reply breaks the contract, as text.
    fn problems(&self, verb: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.hung {
            out.push(format!("{verb} did not finish within {CALL_TIMEOUT:?}"));
            return out;
        }
        if self.stderr.contains("panicked at") || self.code == Some(101) {
            out.push(format!("{verb} panicked: {}", clip(&self.stderr)));
        }
        match self.code {
            None => out.push(format!("{verb} died of a signal: {}", clip(&self.stderr))),
            Some(0) => {
                if !self.stdout.trim().is_empty()
                    && !serde_json::from_str::<Value>(&self.stdout).is_ok_and(|v| v.is_object())
                {
                    out.push(format!(
                        "{verb} succeeded with a non-JSON reply: {}",
                        clip(&self.stdout)
                    ));
                }
            }
            Some(_) => match serde_json::from_str::<Value>(&self.stdout) {
                Ok(v) if v["code"].is_u64() && v["msg"].is_string() => {}
                _ => out.push(format!(
                    "{verb} failed without a CNI error object: stdout {} stderr {}",
                    clip(&self.stdout),
                    clip(&self.stderr)
                )),
            },
        }
        if self.rss_kib > MAX_RSS_KIB {
            out.push(format!("{verb} peaked at {} KiB of memory", self.rss_kib));
        }
        out
    }
}

/// At most 600 characters of `s`, for messages.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(600).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Runs `call` with `stdin` under GNU time (for the peak RSS), in its own
/// process group so that a hung plugin and its children can be killed.
fn run_bounded(call: &Call, stdin: &[u8], scratch: &Path) -> Outcome {
    use std::os::unix::process::CommandExt;
    let io = |name: &str| scratch.join(name);
    std::fs::write(io("stdin"), stdin).unwrap();
    let rss = io("rss");
    let _ = std::fs::remove_file(&rss);
    let mut cmd = call.wrapped(&["/usr/bin/time", "-f", "%M", "-o", rss.to_str().unwrap()]);
    cmd.stdin(File::open(io("stdin")).unwrap())
        .stdout(File::create(io("stdout")).unwrap())
        .stderr(File::create(io("stderr")).unwrap())
        // Relative paths a plugin writes to land where the test looks.
        .current_dir(scratch)
        .process_group(0);
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let mut hung = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CALL_TIMEOUT {
            hung = true;
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let time_report = std::fs::read_to_string(&rss).unwrap_or_default();
    let read = |name: &str| String::from_utf8_lossy(&std::fs::read(io(name)).unwrap()).into_owned();
    // GNU time passes the exit code on, and says so when a signal ended
    // the plugin.
    let signalled = time_report.contains("terminated by signal");
    Outcome {
        code: if signalled || hung {
            None
        } else {
            status.code()
        },
        hung,
        stdout: read("stdout"),
        stderr: read("stderr"),
        rss_kib: time_report
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// The host-side state a plugin could change: links, addresses, routes,
/// and the firewall.
#[derive(Clone, PartialEq)]
struct State {
    net: Vec<String>,
    firewall: BTreeSet<String>,
}

/// The top-level chains portmap shares between all attachments and never
/// deletes.
const SHARED_CHAINS: &[&str] = &[
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
];

/// A firewall line (as [`Netns::firewall`] writes it) of or to a shared chain;
/// the DNAT chain's own rules belong to attachments.
fn is_shared(entry: &str) -> bool {
    let (context, line) = entry.split_once(" | ").unwrap_or(("", entry));
    let chain = context.rsplit(' ').next().unwrap_or("");
    let line = without_comments(line);
    let declares = line.starts_with(':') || line.starts_with("chain ") || line == "}";
    let jumps = SHARED_CHAINS
        .iter()
        .any(|c| line.ends_with(&format!("-j {c}")) || line.ends_with(&format!("jump {c}")));
    jumps || (SHARED_CHAINS.contains(&chain) && (declares || chain != "CNI-HOSTPORT-DNAT"))
}

/// `line` without its rule comments (`--comment X`, `comment "X"`), which
/// legitimately carry network names and container IDs.
fn without_comments(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("comment ") {
        let before = &rest[..at];
        let after = &rest[at + "comment ".len()..];
        // iptables' `-m comment` loads the match; its `--comment` follows.
        if !after.starts_with('"') && !before.ends_with("--") {
            out.push_str(before);
            out.push_str("comment ");
            rest = after;
            continue;
        }
        out.push_str(before.strip_suffix("--").unwrap_or(before));
        rest = if let Some(quoted) = after.strip_prefix('"') {
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            &quoted[end.min(quoted.len())..]
        } else {
            after.find(' ').map_or("", |i| &after[i..])
        };
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Firewall lines that name the canary outside a comment: a rule, chain
/// or table an injected string made.
fn injected_rules(firewall: &BTreeSet<String>) -> Vec<String> {
    firewall
        .iter()
        .filter(|l| without_comments(l).to_ascii_lowercase().contains(CANARY))
        .cloned()
        .collect()
}

/// A throwaway host with what every case needs: a veth master for
/// macvlan, a device for host-device, a bridge attachment for portmap to
/// chain after, a container netns, a data dir and odd netns paths.
struct Host {
    ns: Netns,
    ctr: Netns,
    /// The container of portmap's bridge attachment.
    _pm_ctr: Netns,
    _pm_data: tempfile::TempDir,
    data: tempfile::TempDir,
    scratch: tempfile::TempDir,
    prev_result: Value,
    baseline: State,
}

impl Host {
    fn new() -> Host {
        let ns = Netns::new("fzh");
        let ctr = Netns::new("fzc");
        let pm_ctr = Netns::new("fzp");
        veth_master(&ns, "m0");
        ns.exec(&[
            "ip", "link", "add", "hd0", "type", "veth", "peer", "name", "hd0p",
        ]);
        // The admin's own mark chain, for portmap's externalSetMarkChain.
        for tool in ["iptables", "ip6tables"] {
            ns.exec(&[tool, "-t", "nat", "-N", "CNI-PROBE-MARK"]);
        }
        let data = data_dir();
        let pm_data = data_dir();
        let scratch = tempfile::Builder::new()
            .prefix("rcni-probe-")
            .tempdir()
            .unwrap();
        sh("mkfifo", &[scratch.path().join("fifo").to_str().unwrap()]);
        std::fs::create_dir(scratch.path().join("dir")).unwrap();
        std::fs::write(scratch.path().join("file"), "not a netns").unwrap();
        std::fs::write(
            scratch.path().join("resolv.conf"),
            "nameserver 10.89.0.1\nsearch probe.test\n",
        )
        .unwrap();
        let attachment = json!({"cniVersion": "1.0.0", "name": "pmnet", "type": "bridge",
            "bridge": PORTMAP_BRIDGE, "isGateway": true,
            "ipam": {"type": "host-local", "dataDir": pm_data.path().to_str().unwrap(),
                     "ranges": [[{"subnet": "10.83.0.0/24"}], [{"subnet": "fd00:83::/64"}]]}});
        let prev_result = Call::rcni("bridge", "ADD", &ns, Some(&pm_ctr))
            .id("pmctr")
            .run(&attachment)
            .ok();
        let mut host = Host {
            ns,
            ctr,
            _pm_ctr: pm_ctr,
            _pm_data: pm_data,
            data,
            scratch,
            prev_result,
            baseline: State {
                net: Vec::new(),
                firewall: BTreeSet::new(),
            },
        };
        host.warm_up();
        host.baseline = host.state();
        host
    }

    /// An ADD and DEL of each plugin that keeps shared firewall objects
    /// (masquerading, macspoofchk and portmap tables and chains), on both
    /// backends, so that those are part of the baseline.
    fn warm_up(&self) {
        let mut rng = Rng::new(0);
        for backend in ["iptables", "nftables"] {
            for kind in [Kind::Bridge, Kind::Ptp, Kind::Portmap] {
                let (plugin, mut conf) = base(kind, &mut rng, self);
                for (key, value) in [
                    ("ipMasq", json!(true)),
                    ("ipMasqBackend", json!(backend)),
                    ("macspoofchk", json!(true)),
                    ("backend", json!(backend)),
                    ("snat", json!(true)),
                ] {
                    if conf.get(key).is_some() {
                        conf[key] = value;
                    }
                }
                if let Some(c) = conf.as_object_mut() {
                    for key in ["externalSetMarkChain", "conditionsV4", "conditionsV6"] {
                        c.remove(key);
                    }
                }
                let call = Call::rcni(plugin, "ADD", &self.ns, Some(&self.ctr)).id("pctr");
                call.run(&conf).ok();
                call.clone().command("DEL").run(&conf).ok();
            }
        }
        self.remove_probe_bridges();
    }

    fn state(&self) -> State {
        State {
            net: self.ns.snapshot(),
            firewall: self.ns.firewall(),
        }
    }

    fn remove_probe_bridges(&self) {
        for link in self
            .ns
            .ip_json(&["link", "show", "type", "bridge"])
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = link["ifname"].as_str().unwrap_or_default();
            if name != PORTMAP_BRIDGE {
                self.ns.exec(&["ip", "link", "del", name]);
            }
        }
    }

    /// Every way the host differs from its baseline, as text. Shared
    /// chains that portmap creates once and keeps (as the reference does)
    /// join the baseline.
    fn differences(&mut self) -> Vec<String> {
        let now = self.state();
        let shared_only = self.baseline.net == now.net
            && self.baseline.firewall.is_subset(&now.firewall)
            && now
                .firewall
                .difference(&self.baseline.firewall)
                .all(|l| is_shared(l));
        if shared_only {
            self.baseline = now;
            return Vec::new();
        }
        let mut out = Vec::new();
        let before: BTreeSet<&String> = self.baseline.net.iter().collect();
        let after: BTreeSet<&String> = now.net.iter().collect();
        for gone in before.difference(&after) {
            out.push(format!("host lost {gone}"));
        }
        for new in after.difference(&before) {
            out.push(format!("host gained {new}"));
        }
        for gone in self.baseline.firewall.difference(&now.firewall) {
            out.push(format!("firewall lost {gone}"));
        }
        for new in now.firewall.difference(&self.baseline.firewall) {
            out.push(format!("firewall gained {new}"));
        }
        out
    }
}

/// Files a plugin must never create: the canary paths, anything named
/// after the canary in the usual places, files other than host-local's
/// own in the data dir, and anything but rcni's per-netns files in
/// /run/rcni.
/// Each is removed once reported (except in /run/rcni), so that it is
/// reported once.
fn stray_files(host: &Host) -> Vec<String> {
    let mut out = Vec::new();
    let mut report = |path: &Path, what: &str| {
        out.push(format!("{} {what}", path.display()));
        let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
    };
    for path in CANARY_PATHS {
        if Path::new(path).symlink_metadata().is_ok() {
            report(Path::new(path), "exists");
        }
    }
    let scratch = host.scratch.path().to_path_buf();
    for dir in [
        PathBuf::from("/tmp"),
        PathBuf::from("/etc"),
        PathBuf::from("/run"),
        PathBuf::from("/var/lib/cni"),
        PathBuf::from("/var/lib/cni/networks"),
        scratch.clone(),
        scratch.join("dir"),
    ] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = dir == scratch
                && [
                    "fifo",
                    "dir",
                    "file",
                    "resolv.conf",
                    "stdin",
                    "stdout",
                    "stderr",
                    "rss",
                ]
                .contains(&name.as_str());
            if !ours && (name.to_ascii_lowercase().contains(CANARY) || dir.starts_with(&scratch)) {
                report(&dir.join(name), "appeared");
            }
        }
    }
    let mut unknown_markers = Vec::new();
    for entry in std::fs::read_dir("/run/rcni")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        // rcni's per-netns state is `<what>ns<inode><suffix>`, plain names
        // (files or directories; other plugins and versions add their own).
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        let per_netns = name
            .split("ns")
            .skip(1)
            .any(|after| after.starts_with(|c: char| c.is_ascii_digit()));
        let known = plain && per_netns && !name.to_ascii_lowercase().contains(CANARY);
        if !known {
            unknown_markers.push(format!("/run/rcni/{name} is not one of rcni's markers"));
        }
    }
    let mut pending = vec![host.data.path().to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                pending.push(path);
            } else if !["lock", "rcni-index"].contains(&name.as_str())
                && !name.starts_with("last_reserved_ip.")
            {
                report(&path, "left in the data dir");
            }
        }
    }
    out.extend(unknown_markers);
    out
}

/// Odd `CNI_NETNS` values: a FIFO, a directory, a regular file, the
/// plugin's own netns, a missing path, a path through `..`, nothing.
fn odd_netns(host: &Host, rng: &mut Rng) -> String {
    let scratch = host.scratch.path();
    let own_way_round = format!("/run/netns/../netns/{}", host.ctr.name);
    let choices = [
        scratch.join("fifo").display().to_string(),
        scratch.join("dir").display().to_string(),
        scratch.join("file").display().to_string(),
        "/proc/self/ns/net".to_string(),
        "/proc/thread-self/ns/net".to_string(),
        scratch.join("missing").display().to_string(),
        "relative/netns".to_string(),
        own_way_round,
        String::new(),
        format!("/{}", "a".repeat(5000)),
    ];
    rng.pick(&choices).clone()
}

/// Mutates one `CNI_*` value of `call`.
fn mutate_env(call: &mut Call, host: &Host, rng: &mut Rng, strings: &[String]) {
    let hostile = rng.pick(strings).clone();
    match rng.below(6) {
        0 => call.container_id = hostile,
        1 => {
            call.ifname = match rng.below(3) {
                0 => "a".repeat(15 + rng.below(2)),
                _ => hostile,
            }
        }
        2 => {
            call.cni_args = match rng.below(4) {
                0 => format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME={hostile}"),
                1 => format!("IP={hostile}"),
                2 => format!("IgnoreUnknown=1;MAC={hostile}"),
                _ => hostile,
            }
        }
        3 | 4 => call.netns = odd_netns(host, rng),
        _ => {
            let verbs = ["add", "VERSION", "CHECK", "GC", "STATUS", ""];
            call.command = if rng.one_in(2) {
                hostile
            } else {
                rng.pick(&verbs).to_string()
            };
        }
    }
}

/// One case: the input, and everything it did wrong.
struct Report {
    case: u64,
    kind: Kind,
    plugin: &'static str,
    env: String,
    stdin: String,
    problems: Vec<String>,
}

fn run_case(host: &mut Host, seed: u64, case: u64, strings: &[String]) -> Report {
    let mut rng = Rng::new(seed.wrapping_mul(0x1000_0000_01b3) ^ case);
    let kind = *rng.pick(&KINDS);
    let (plugin, mut conf) = base(kind, &mut rng, host);
    if !rng.one_in(8) {
        for _ in 0..=rng.below(3) {
            mutate::mutate(&mut conf, &mut rng, PROTECTED, strings);
        }
    }
    let mut add = Call::rcni(plugin, "ADD", &host.ns, Some(&host.ctr)).id("pctr");
    if rng.one_in(3) {
        mutate_env(&mut add, host, &mut rng, strings);
    }
    let mut stdin = mutate::render(&conf);
    if rng.one_in(16) {
        stdin = mutate::mutate_text(stdin, &mut rng);
    }
    let mut report = Report {
        case,
        kind,
        plugin,
        env: format!(
            "CNI_COMMAND={:?} CNI_CONTAINERID={:?} CNI_NETNS={:?} CNI_IFNAME={:?} CNI_ARGS={:?}",
            add.command,
            clip(&add.container_id),
            clip(&add.netns),
            clip(&add.ifname),
            clip(&add.cni_args)
        ),
        stdin: clip(&String::from_utf8_lossy(&stdin)),
        problems: Vec::new(),
    };
    let scratch = host.scratch.path().to_path_buf();
    let added = run_bounded(&add, &stdin, &scratch);
    report.problems.extend(added.problems("ADD"));
    if added.hung {
        return report;
    }
    if added.ok() {
        let injected = injected_rules(&host.ns.firewall());
        report.problems.extend(
            injected
                .into_iter()
                .map(|l| format!("ADD made the injected rule {l}")),
        );
    } else {
        if kind == Kind::Bridge {
            host.remove_probe_bridges();
        }
        report.problems.extend(
            host.differences()
                .into_iter()
                .map(|d| format!("after the failed ADD: {d}")),
        );
    }
    let del = add.clone().command("DEL");
    let deleted = run_bounded(&del, &stdin, &scratch);
    report.problems.extend(deleted.problems("DEL"));
    if deleted.hung {
        return report;
    }
    if added.ok() && add.command == "ADD" && !deleted.ok() {
        report.problems.push(format!(
            "DEL of a successful ADD failed: {}",
            clip(&deleted.stdout)
        ));
    }
    if kind == Kind::Bridge {
        host.remove_probe_bridges();
    }
    report.problems.extend(
        host.differences()
            .into_iter()
            .map(|d| format!("after DEL: {d}")),
    );
    let left: Vec<String> = host.ctr.links().into_iter().filter(|l| l != "lo").collect();
    if !left.is_empty() {
        report
            .problems
            .push(format!("after DEL the container still has {left:?}"));
    }
    report.problems.extend(stray_files(host));
    report
}

/// Runs the cases `first + t, first + t + threads, ...` on one host, and
/// starts a fresh host after a case that failed, so that one failure does
/// not cascade.
fn worker(seed: u64, cases: Vec<u64>, report_file: Option<PathBuf>) -> (usize, Vec<String>) {
    let strings = mutate::hostile_strings();
    let mut host = Host::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    let start = Instant::now();
    for case in cases {
        let report = run_case(&mut host, seed, case, &strings);
        ran += 1;
        if ran % 1000 == 0 {
            eprintln!(
                "probe: {ran} cases on this host after {:.0?}",
                start.elapsed()
            );
        }
        if report.problems.is_empty() {
            continue;
        }
        let text = format!(
            "seed {seed} case {} ({:?}, {}): {}\n  env: {}\n  stdin: {}",
            report.case,
            report.kind,
            report.plugin,
            report.problems.join("; "),
            report.env,
            report.stdin
        );
        eprintln!("{text}");
        if let Some(path) = &report_file {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            // One write, so that the lines of two threads do not mix.
            let line = format!("{}\n", text.replace('\n', " "));
            f.write_all(line.as_bytes()).unwrap();
        }
        failures.push(text);
        // Start over from a clean host if this one is not.
        let ctr_clean = host.ctr.links() == ["lo"];
        if !host.differences().is_empty() || !ctr_clean {
            drop(host);
            host = Host::new();
        }
    }
    (ran, failures)
}

#[test]
fn hostile_input_never_escapes_the_attachment() {
    let seed = env_number("RCNI_PROBE_SEED", 1);
    let first = env_number("RCNI_PROBE_FIRST", 0);
    let count = env_number("RCNI_PROBE_CASES", 120);
    let threads = env_number("RCNI_PROBE_THREADS", 2).max(1);
    let report_file = std::env::var_os("RCNI_PROBE_REPORT").map(PathBuf::from);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let cases: Vec<u64> = (first..first + count)
                .filter(|c| c % threads == t)
                .collect();
            let report_file = report_file.clone();
            std::thread::spawn(move || worker(seed, cases, report_file))
        })
        .collect();
    let mut ran = 0;
    let mut failures = Vec::new();
    for w in workers {
        let (n, f) = w.join().unwrap();
        ran += n;
        failures.extend(f);
    }
    eprintln!(
        "probe: {ran} cases, seed {seed}, {} failures, {:.0?}",
        failures.len(),
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn comments_are_told_from_rules() {
    let iptables = r#"-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \"n\" id: \"rcniprobe\"" -j CNI-x"#;
    assert_eq!(
        without_comments(iptables),
        "-A POSTROUTING -s 10.0.0.2/32 -m comment -j CNI-x"
    );
    let bare = "-A X -m comment --comment rcniprobe -j RCNIPROBE";
    assert_eq!(without_comments(bare), "-A X -m comment -j RCNIPROBE");
    let nft = r#"tcp dport 80 dnat to 10.0.0.2:80 comment "rcniprobe""#;
    assert_eq!(without_comments(nft), "tcp dport 80 dnat to 10.0.0.2:80");
}
