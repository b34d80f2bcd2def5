//! The measurements. Every plugin process is started the same way for
//! both implementations (through rcni's runtime library, or a plain exec),
//! so the ratios compare the plugins, not the harness.

use crate::{Settings, REFERENCE_DIR};
use rcni_runtime::{Cni, NetworkList, RuntimeConf};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many pods the reference's bridge+portmap series attaches at most.
pub const REFERENCE_BRIDGE_PODS: usize = 200;

/// How many pods the reference's ptp series attaches at most: at a quarter
/// of a second per pod (ADD, DEL and the namespace), 1,000 would take a
/// third of the run's 15 minutes.
pub const REFERENCE_PTP_PODS: usize = 300;

/// How many pods each Podman-chain series attaches at most: the
/// reference's firewall adds iptables calls to its already slowest series.
pub const PODMAN_CHAIN_PODS: usize = 100;

/// One implementation under test.
pub struct Impl {
    pub label: String,
    pub dir: PathBuf,
    /// Firewall backend to configure (`None`: the plugin's default).
    pub backend: Option<&'static str>,
}

/// Per-pod latencies of one scenario run.
pub struct PodRun {
    pub label: String,
    pub add_ms: Vec<f64>,
    pub del_ms: Vec<f64>,
    /// CPU time (user + system) of all plugin processes during the DELs.
    pub del_cpu_ms: f64,
}

/// Everything the report shows.
pub struct Results {
    pub version_ms: Vec<(String, String, Vec<f64>)>,
    pub ptp: Vec<PodRun>,
    pub bridge: Vec<PodRun>,
    /// bridge + portmap + firewall + tuning, as Podman's networks chain them.
    pub podman: Vec<PodRun>,
    pub peak_rss_kib: Vec<(String, String, u64)>,
    pub size_bytes: (u64, u64),
    pub hostlocal_us: HostLocalMicro,
    pub hostlocal_taken: usize,
    pub pods: usize,
    pub cluster: Vec<crate::cluster::ClusterRun>,
    /// The kernel floor: ptp, then bridge + portmap.
    pub floor: Vec<PodRun>,
}

pub(crate) fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let ok = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{cmd}: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(format!("{cmd} {args:?} failed"))
    }
}

/// The children's CPU time so far (user + system, ms), from /proc/self/stat.
fn children_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, cutime 16, cstime 17.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(16) + ticks(17)) * 10.0
}

/// Waits (at most 60 s) until the machine is quiet: the CPUs busy less
/// than a tenth of a quarter-second. Deleting a series' namespaces hands
/// their teardown to kernel workers, which run for seconds after and hold
/// the locks an ADD takes; a series started meanwhile would time that.
pub(crate) fn settle() {
    let busy_and_total = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = cpu.iter().sum();
        // idle and iowait are the 4th and 5th fields.
        let idle = cpu.get(3)? + cpu.get(4).unwrap_or(&0);
        Some((total - idle, total))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some((b0, t0)) = busy_and_total() else {
            return;
        };
        std::thread::sleep(Duration::from_millis(250));
        let Some((b1, t1)) = busy_and_total() else {
            return;
        };
        if t1 > t0 && (b1 - b0) * 10 < t1 - t0 {
            return;
        }
    }
}

fn exec_plugin(
    dir: &Path,
    plugin: &str,
    env: &[(&str, &str)],
    stdin: &str,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(dir.join(plugin))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{plugin}: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    child.wait().map_err(|e| e.to_string())?;
    Ok(start.elapsed())
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// VERSION start-up, `runs` times per plugin. The plugins take turns, so
/// that a busy moment of the machine falls on all of them alike (run one
/// after the other, the last one measured looked slower: portmap's "slow
/// start-up" of an earlier page was that).
fn version_startup(imp: &Impl, runs: usize) -> Result<Vec<(String, String, Vec<f64>)>, String> {
    let plugins = ["ptp", "bridge", "host-local", "portmap"];
    let mut samples = vec![Vec::with_capacity(runs); plugins.len()];
    for _ in 0..runs {
        for (plugin, samples) in plugins.iter().zip(samples.iter_mut()) {
            samples.push(ms(exec_plugin(
                &imp.dir,
                plugin,
                &[("CNI_COMMAND", "VERSION")],
                "",
            )?));
        }
    }
    Ok(plugins
        .iter()
        .zip(samples)
        .map(|(plugin, samples)| (imp.label.clone(), plugin.to_string(), samples))
        .collect())
}

/// Peak resident memory (the kernel's VmHWM, KiB) of one plugin process,
/// read from /proc while strace holds the process at its exit. Not GNU
/// time's `%M`: the rusage maximum also counts the launcher's pages the
/// child holds between fork and exec, which for a small plugin is more
/// than the plugin itself (a static rcni read 1.7 MiB through it, 1.1 MiB
/// in /proc).
fn peak_rss(dir: &Path, plugin: &str, env: &[(&str, &str)], stdin: &str) -> Result<u64, String> {
    let mut child = Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "-e", "trace=exit_group"])
        .args(["-e", "inject=exit_group:delay_enter=300000"])
        .arg(dir.join(plugin))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("strace: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let tracer = child.id();
    let children = format!("/proc/{tracer}/task/{tracer}/children");
    let mut peak = None;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        // VmHWM only grows, and the process stops 300 ms at its exit: the
        // last value read is its peak. Before its exec, the child is a
        // copy of strace under another name.
        let pids = std::fs::read_to_string(&children).unwrap_or_default();
        for pid in pids.split_whitespace() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let name = status.lines().next().and_then(|l| l.strip_prefix("Name:"));
            if name.map(str::trim) != Some(&plugin[..plugin.len().min(15)]) {
                continue;
            }
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak = Some(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    peak.ok_or_else(|| format!("could not read the peak RSS of {plugin}"))
}

/// Puts `binary` in the page cache as a binary installed long ago is:
/// read back from disk by one run, not left as written. The kernel maps a
/// file's pages into a process in blocks around each one touched, and
/// pages just written (rcni's copy is) come in larger blocks.
fn settle_page_cache(binary: &Path) -> Result<(), String> {
    let file = std::fs::File::open(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    exec_plugin(
        binary.parent().unwrap_or(Path::new("/")),
        &binary.file_name().unwrap_or_default().to_string_lossy(),
        &[("CNI_COMMAND", "VERSION")],
        "",
    )
    .map(drop)
}

fn ptp_list(data: &Path, backend: Option<&str>) -> Value {
    let mut ptp = json!({"type": "ptp", "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.200.0.0/16", "dataDir": data.to_str()}});
    if let Some(b) = backend {
        ptp["ipMasqBackend"] = json!(b);
    }
    json!({"cniVersion": "1.0.0", "name": "benchptp", "plugins": [ptp]})
}

fn bridge_list(data: &Path, backend: Option<&str>) -> Value {
    let mut br = json!({"type": "bridge", "bridge": "rbench0", "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.201.0.0/16", "dataDir": data.to_str()}});
    let mut pm = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    if let Some(b) = backend {
        br["ipMasqBackend"] = json!(b);
        pm["backend"] = json!(b);
    }
    json!({"cniVersion": "1.0.0", "name": "benchbr", "plugins": [br, pm]})
}

/// The conflist `podman network create` writes (Podman 4.3's CNI backend),
/// but with the firewall backend set: Podman's `""` means firewalld when it
/// is on the machine's bus, and the benchmark must not touch the machine's
/// firewall.
fn podman_list(data: &Path, backend: Option<&str>) -> Value {
    let mut br = json!({"type": "bridge", "bridge": "rbench1", "isGateway": true, "ipMasq": true,
        "hairpinMode": true,
        "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data.to_str(),
                 "ranges": [[{"subnet": "10.202.0.0/16", "gateway": "10.202.0.1"}]]}});
    let mut pm = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    if let Some(b) = backend {
        br["ipMasqBackend"] = json!(b);
        pm["backend"] = json!(b);
    }
    let firewall = json!({"type": "firewall", "backend": backend.unwrap_or("iptables")});
    json!({"cniVersion": "0.4.0", "name": "benchpodman",
           "plugins": [br, pm, firewall, {"type": "tuning"}]})
}

/// A pod's `portMappings` capability: host ports `base` and `base + 1`
/// to the pod's 80 and 443.
pub(crate) fn port_mappings(base: usize) -> Value {
    json!([{"hostPort": base, "containerPort": 80, "protocol": "tcp"},
           {"hostPort": base + 1, "containerPort": 443, "protocol": "tcp"}])
}

/// Attaches `pods` pods one after another, then deletes them, timing each
/// list operation as a runtime runs it.
fn pod_run(imp: &Impl, list: &Value, pods: usize, with_ports: bool) -> Result<PodRun, String> {
    let cache = tempfile::tempdir().map_err(|e| e.to_string())?;
    let list = NetworkList::from_bytes(list.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let mut cni = Cni::new(vec![imp.dir.clone()]);
    cni.cache_dir = cache.path().to_path_buf();
    let prefix = format!("rbp{}", std::process::id() % 10000);
    let mut run = PodRun {
        label: imp.label.clone(),
        add_ms: Vec::new(),
        del_ms: Vec::new(),
        del_cpu_ms: 0.0,
    };
    let rt_of = |i: usize| {
        let mut rt = RuntimeConf {
            container_id: format!("pod{i}"),
            netns: format!("/run/netns/{prefix}-{i}"),
            ifname: "eth0".into(),
            ..RuntimeConf::default()
        };
        if with_ports {
            rt.capability_args
                .insert("portMappings".into(), port_mappings(20000 + 2 * i));
        }
        rt
    };
    settle();
    for i in 0..pods {
        sh("ip", &["netns", "add", &format!("{prefix}-{i}")])?;
        let rt = rt_of(i);
        let start = Instant::now();
        cni.add_network_list(&list, &rt)
            .map_err(|e| format!("{} ADD pod {i}: {e}", imp.label))?;
        run.add_ms.push(ms(start.elapsed()));
    }
    let cpu_before = children_cpu_ms();
    for i in 0..pods {
        let rt = rt_of(i);
        let start = Instant::now();
        cni.del_network_list(&list, &rt)
            .map_err(|e| format!("{} DEL pod {i}: {e}", imp.label))?;
        run.del_ms.push(ms(start.elapsed()));
    }
    run.del_cpu_ms = children_cpu_ms() - cpu_before;
    for i in 0..pods {
        let _ = sh("ip", &["netns", "del", &format!("{prefix}-{i}")]);
    }
    Ok(run)
}

/// Allocation and release in a /16 with `taken` addresses already taken,
/// in µs: released as a DEL with prevResult does (the addresses known),
/// and by container ID (a DEL without prevResult, which walks the store),
/// the two taking turns.
fn hostlocal_micro(taken: usize, samples: usize) -> Result<HostLocalMicro, String> {
    use rcni_ipam::{canonicalize_set, Allocator, DiskStore, Range};
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = DiskStore::open(dir.path(), "micro").map_err(|e| e.to_string())?;
    let mut set = vec![Range::new(
        "10.210.0.0/16".parse().map_err(|e| format!("{e}"))?,
    )];
    canonicalize_set(&mut set).map_err(|e| e.to_string())?;
    let alloc = Allocator::new(&set, &store, 0);
    {
        // Filled directly: allocating them one by one would itself be
        // quadratic (each allocation reads the store for duplicates).
        let _lock = store.lock().map_err(|e| e.to_string())?;
        let mut ip: std::net::Ipv4Addr = "10.210.0.2".parse().map_err(|e| format!("{e}"))?;
        for i in 0..taken {
            store
                .reserve(&format!("taken{i}"), "eth0", ip.into(), 0)
                .map_err(|e| e.to_string())?;
            ip = (u32::from(ip) + 1).into();
        }
    }
    let mut out = HostLocalMicro::default();
    for i in 0..2 * samples {
        let id = format!("probe{i}");
        let start = Instant::now();
        let got = alloc
            .allocate(&id, "eth0", None)
            .map_err(|e| e.to_string())?;
        if i % 2 == 0 {
            let lock = store.lock().map_err(|e| e.to_string())?;
            store
                .release_known(&id, "eth0", &[got.address.addr()])
                .map_err(|e| e.to_string())?
                .ok_or("the allocated address was not the probe's")?;
            drop(lock);
            out.known.push(start.elapsed().as_secs_f64() * 1e6);
        } else {
            alloc.release(&id, "eth0").map_err(|e| e.to_string())?;
            out.by_id.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(out)
}

/// [`hostlocal_micro`]'s two series, µs per allocate + release.
#[derive(Default)]
pub struct HostLocalMicro {
    pub known: Vec<f64>,
    pub by_id: Vec<f64>,
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::symlink_metadata(e.path()).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Runs everything.
pub fn run_all(s: &Settings) -> Result<Results, String> {
    if !Path::new(REFERENCE_DIR).join("ptp").exists() {
        return Err(format!(
            "the reference plugins are not installed in {REFERENCE_DIR}"
        ));
    }
    let install = tempfile::tempdir().map_err(|e| e.to_string())?;
    let rcni_dir = install.path().join("bin");
    let ok = Command::new(&s.rcni_binary)
        .args(["install", rcni_dir.to_str().unwrap_or_default(), "--force"])
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", s.rcni_binary.display()))?
        .success();
    if !ok {
        return Err("rcni install failed".into());
    }
    sh("ip", &["link", "set", "lo", "up"])?;
    let rcni = |backend| Impl {
        label: "rcni".into(),
        dir: rcni_dir.clone(),
        backend,
    };
    let reference = Impl {
        label: "reference".into(),
        dir: PathBuf::from(REFERENCE_DIR),
        backend: None,
    };

    let mut version_ms = Vec::new();
    if s.wants("version") {
        eprintln!("== VERSION start-up");
        version_ms = version_startup(&rcni(None), s.version_runs)?;
        version_ms.extend(version_startup(&reference, s.version_runs)?);
    }

    let mut peak_rss_kib = Vec::new();
    let memory_runs = if s.wants("memory") {
        eprintln!("== peak memory");
        vec![
            ("rcni", rcni_dir.as_path()),
            ("reference", Path::new(REFERENCE_DIR)),
        ]
    } else {
        Vec::new()
    };
    for (label, dir) in memory_runs {
        for plugin in ["ptp", "bridge", "host-local", "portmap"] {
            settle_page_cache(&dir.join(plugin))?;
            peak_rss_kib.push((
                label.to_string(),
                format!("{plugin} VERSION"),
                peak_rss(dir, plugin, &[("CNI_COMMAND", "VERSION")], "")?,
            ));
        }
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ns = format!("rbmem{}", std::process::id() % 10000);
        sh("ip", &["netns", "add", &ns])?;
        let mut conf = ptp_list(data.path(), None)["plugins"][0].clone();
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = json!("benchmem");
        let netns = format!("/run/netns/{ns}");
        let path = dir.to_string_lossy().into_owned();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "mem"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        peak_rss_kib.push((
            label.to_string(),
            "ptp ADD".into(),
            peak_rss(dir, "ptp", &env, &conf.to_string())?,
        ));
        let del = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "mem"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        exec_plugin(dir, "ptp", &del, &conf.to_string())?;
        let _ = sh("ip", &["netns", "del", &ns]);
    }

    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut ptp = Vec::new();
    let mut bridge = Vec::new();
    let mut podman = Vec::new();
    // rcni's ptp twice: masquerading with its default backend (iptables,
    // as the reference), and on nftables, where it runs no process and is
    // held to the kernel floor.
    let ptp_runs = if s.wants("ptp") {
        vec![
            (
                Impl {
                    label: "rcni (iptables)".into(),
                    ..rcni(None)
                },
                s.pods,
            ),
            (
                Impl {
                    label: "rcni (nftables)".into(),
                    ..rcni(Some("nftables"))
                },
                s.pods,
            ),
            (
                Impl {
                    label: "reference".into(),
                    ..reference
                },
                s.pods.min(REFERENCE_PTP_PODS),
            ),
        ]
    } else {
        Vec::new()
    };
    for (imp, pods) in ptp_runs {
        eprintln!("== ptp + host-local (ipMasq), {pods} pods: {}", imp.label);
        ptp.push(pod_run(
            &imp,
            &ptp_list(data.path(), imp.backend),
            pods,
            false,
        )?);
    }
    let firewall_backends = || {
        [
            (rcni(Some("iptables")), "rcni (iptables)"),
            (rcni(Some("nftables")), "rcni (nftables)"),
            (
                Impl {
                    label: "reference".into(),
                    dir: PathBuf::from(REFERENCE_DIR),
                    backend: None,
                },
                "reference (iptables)",
            ),
        ]
    };
    for (imp, label) in firewall_backends()
        .into_iter()
        .filter(|_| s.wants("bridge"))
    {
        // The reference's bridge+portmap cost grows with every pod (each of
        // its iptables calls re-reads the ruleset): 1,000 of them alone
        // would take over 15 minutes, so it runs a shorter series.
        let pods = if imp.label == "reference" {
            s.pods.min(REFERENCE_BRIDGE_PODS)
        } else {
            s.pods
        };
        eprintln!("== bridge + host-local + portmap, {pods} pods: {label}");
        let mut run = pod_run(&imp, &bridge_list(data.path(), imp.backend), pods, true)?;
        run.label = label.to_string();
        bridge.push(run);
    }
    let _ = sh("ip", &["link", "del", "rbench0"]);
    let mut floor = Vec::new();
    if s.wants("floor") {
        eprintln!(
            "== the kernel floor, {} pods each: ptp, bridge + portmap",
            s.pods
        );
        floor.push(crate::floor::ptp(s.pods)?);
        floor.push(crate::floor::bridge_portmap(s.pods)?);
    }
    let pods = s.pods.min(PODMAN_CHAIN_PODS);
    for (imp, label) in firewall_backends()
        .into_iter()
        .filter(|_| s.wants("podman"))
    {
        eprintln!("== Podman's chain: bridge + host-local + portmap + firewall + tuning, {pods} pods: {label}");
        let mut run = pod_run(&imp, &podman_list(data.path(), imp.backend), pods, true)?;
        run.label = label.to_string();
        podman.push(run);
    }
    let _ = sh("ip", &["link", "del", "rbench1"]);

    let mut cluster = Vec::new();
    if s.wants("cluster") {
        let (nodes, per_node) = s.cluster;
        eprintln!("== flannel cluster, {nodes} nodes x {per_node} pods, ADDs on all nodes at once");
        cluster.push(crate::cluster::run(&rcni(None), true, nodes, per_node)?);
        cluster.push(crate::cluster::run(
            &Impl {
                label: "reference".into(),
                dir: PathBuf::from(REFERENCE_DIR),
                backend: None,
            },
            false,
            nodes,
            per_node,
        )?);
    }

    let taken = if s.pods >= 100 { 10_000 } else { 1_000 };
    let mut hostlocal_us = HostLocalMicro::default();
    if s.wants("host-local") {
        eprintln!("== host-local allocation with {taken} addresses taken");
        hostlocal_us = hostlocal_micro(taken, 50)?;
    }

    let rcni_size = std::fs::metadata(&s.rcni_binary)
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(Results {
        version_ms,
        ptp,
        bridge,
        podman,
        peak_rss_kib,
        size_bytes: (rcni_size, dir_size(Path::new(REFERENCE_DIR))),
        hostlocal_us,
        hostlocal_taken: taken,
        pods: s.pods,
        cluster,
        floor,
    })
}
