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
        (
            "bandwidth",
            json!({"cniVersion": "1.0.0", "name": net, "type": "bandwidth",
                   "ingressRate": 8000, "ingressBurst": 8000, "prevResult": prev}),
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

/// Item: hangs. A CNI_NETNS that is a FIFO (which a blocking open waits on
/// forever), a directory, a regular file or another kind of namespace
/// gets an error at once from every plugin that enters the namespace, and
/// nothing is left behind; a missing one is an error on ADD and success on
/// DEL.
#[test]
fn netns_that_is_not_a_namespace_answers_at_once() {
    let host = host_with_eth0();
    let data = data_dir();
    let net = unique("bad");
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    sh("mkfifo", &[fifo.to_str().unwrap()]);
    let file = scratch.path().join("file");
    std::fs::write(&file, "not a namespace").unwrap();
    let missing = scratch.path().join("missing");
    let before = host.snapshot();
    let entering = [
        "bridge",
        "ptp",
        "macvlan",
        "ipvlan",
        "vlan",
        "host-device",
        "dummy",
        "tap",
        "loopback",
        "vrf",
        "bandwidth",
    ];
    for (plugin, conf) in confs(&data, &net) {
        if !entering.contains(&plugin) {
            continue;
        }
        for path in [
            &fifo,
            &scratch.path().to_path_buf(),
            &file,
            &"/proc/self/ns/mnt".into(),
        ] {
            for verb in ["ADD", "CHECK", "DEL"] {
                let mut call = Call::rcni(plugin, verb, &host, None);
                call.netns = path.to_string_lossy().into_owned();
                let (code, msg) = run_bounded(&call, &conf, LIMIT).err();
                assert_ne!(code, 8, "{plugin} {verb} {path:?}: {msg}");
                // CHECK may fail earlier, on the missing IPAM record.
                assert!(
                    verb == "CHECK" || msg.contains("not a network namespace"),
                    "{plugin} {verb} {path:?}: {msg}"
                );
                assert_eq!(host.snapshot(), before, "{plugin} {verb} {path:?}");
            }
        }
        let mut call = Call::rcni(plugin, "ADD", &host, None);
        call.netns = missing.to_string_lossy().into_owned();
        let (_, msg) = run_bounded(&call, &conf, LIMIT).err();
        assert!(msg.contains("missing"), "{plugin} ADD: {msg}");
        run_bounded(&call.clone().command("DEL"), &conf, LIMIT).ok();
        assert_eq!(host.snapshot(), before, "{plugin} with a missing netns");
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// Item: hangs. FIFOs planted in the host-local store (an address file,
/// `last_reserved_ip.0`, the lock, rcni's index) neither hang ADD nor DEL; the planted
/// address is treated as taken and survives.
#[test]
fn host_local_store_with_planted_fifos_answers() {
    let host = Netns::new("sh");
    let ctr = Netns::new("sc");
    let data = data_dir();
    let net = unique("fifo");
    let store = data.path().join(&net);
    std::fs::create_dir_all(&store).unwrap();
    for name in ["lock", "last_reserved_ip.0", "rcni-index", "10.97.0.1"] {
        sh("mkfifo", &[store.join(name).to_str().unwrap()]);
    }
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.97.0.0/24", "rangeStart": "10.97.0.1",
                 "gateway": "10.97.0.254", "dataDir": data.path().to_str().unwrap()}});
    let add = Call::rcni("host-local", "ADD", &host, Some(&ctr));
    let r = run_bounded(&add, &conf, LIMIT).ok();
    assert_eq!(r["ips"][0]["address"], "10.97.0.2/24");
    assert_eq!(allocated_ips(data.path(), &net), ["10.97.0.1", "10.97.0.2"]);
    run_bounded(&add.clone().command("CHECK"), &conf, LIMIT).ok();
    run_bounded(&add.clone().command("DEL"), &conf, LIMIT).ok();
    assert_eq!(allocated_ips(data.path(), &net), ["10.97.0.1"]);
}

/// Item: hangs. Thousands of range sets (each one more store walk per ADD)
/// are refused at once with code 7 naming `ipam.ranges`; the store is not
/// touched.
#[test]
fn thousands_of_range_sets_are_refused() {
    let host = Netns::new("rh");
    let ctr = Netns::new("rc");
    let data = data_dir();
    let net = unique("many");
    let sets: Vec<Value> = (0..4000u32)
        .map(|i| {
            let subnet = format!(
                "10.{}.{}.{}/30",
                100 + i / 16384,
                (i / 64) % 256,
                (i % 64) * 4
            );
            json!([{ "subnet": subnet }])
        })
        .collect();
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "host-local",
        "ipam": {"type": "host-local", "ranges": sets, "dataDir": data.path().to_str().unwrap()}});
    let add = Call::rcni("host-local", "ADD", &host, Some(&ctr));
    let (code, msg) = run_bounded(&add, &conf, LIMIT).err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("ipam.ranges"), "{msg}");
    assert!(allocated_ips(data.path(), &net).is_empty());
    // The limit leaves room for any real network.
    let few = json!({"cniVersion": "1.0.0", "name": net, "type": "host-local",
        "ipam": {"type": "host-local", "ranges": sets[..64], "dataDir": data.path().to_str().unwrap()}});
    let r = run_bounded(&add, &few, LIMIT).ok();
    assert_eq!(r["ips"].as_array().unwrap().len(), 64);
    run_bounded(&add.clone().command("DEL"), &few, LIMIT).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// The master of `dev` in `ns`, if any.
fn master_of(ns: &Netns, dev: &str) -> Option<String> {
    ns.ip_json(&["link", "show", "dev", dev])[0]["master"]
        .as_str()
        .map(String::from)
}

/// Item: concurrency. Many ADDs race into a fresh bridge network whose pool
/// is smaller than the crowd, some asking for an address outside it: the
/// ADDs that fail (pool exhausted, bad `IP`) must not take the bridge away
/// from the ones that succeed. Every success has its veth on the bridge,
/// the gateway address is there, and it reaches the gateway; DEL of all
/// leaves nothing.
#[test]
fn failing_adds_keep_the_bridge_of_concurrent_ones() {
    const CROWD: usize = 40;
    for round in 0..5 {
        let host = Netns::new("ch");
        let data = data_dir();
        let net = unique("crowd");
        let ctrs: Vec<Netns> = (0..CROWD).map(|_| Netns::new("cc")).collect();
        let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "br-crowd",
            "isGateway": true,
            "ipam": {"type": "host-local", "subnet": "10.96.0.0/24", "rangeStart": "10.96.0.10",
                     "rangeEnd": "10.96.0.29", "dataDir": data.path().to_str().unwrap()}});
        let calls: Vec<Call> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let call = Call::rcni("bridge", "ADD", &host, Some(ctr)).id(&format!("c{i}"));
                if i % 7 == 3 {
                    call.args("IgnoreUnknown=1;IP=10.96.0.200")
                } else {
                    call
                }
            })
            .collect();
        let replies: Vec<Reply> = std::thread::scope(|s| {
            let running: Vec<_> = calls
                .iter()
                .map(|call| s.spawn(|| run_bounded(call, &conf, Duration::from_secs(60))))
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let ok: Vec<usize> = (0..CROWD).filter(|i| replies[*i].code == 0).collect();
        assert_eq!(ok.len(), 20, "round {round}: the whole pool is handed out");
        for (i, reply) in replies.iter().enumerate() {
            if reply.code != 0 {
                let (code, msg) = reply.err();
                assert!(msg.contains("failed to allocate"), "c{i}: {code} {msg}");
            }
        }
        assert!(
            host.links().contains(&"br-crowd".to_string()),
            "round {round}: a failed ADD deleted the bridge"
        );
        assert!(
            host.addrs("br-crowd").contains(&"10.96.0.1/24".to_string()),
            "round {round}: the gateway address is gone"
        );
        for &i in &ok {
            let r = replies[i].json();
            let veth = r["interfaces"][1]["name"].as_str().unwrap();
            assert_eq!(
                master_of(&host, veth).as_deref(),
                Some("br-crowd"),
                "round {round}: container {i}'s veth is off the bridge"
            );
            assert!(
                ctrs[i].try_exec(&["ping", "-c1", "-w5", "10.96.0.1"]),
                "round {round}: container {i} cannot reach the gateway"
            );
        }
        for call in &calls {
            run_bounded(&call.clone().command("DEL"), &conf, LIMIT).ok();
        }
        assert_eq!(host.links(), ["lo", "br-crowd"], "round {round}");
        for ctr in &ctrs {
            assert_only_lo(ctr);
        }
        assert!(allocated_ips(data.path(), &net).is_empty(), "round {round}");
    }
}

/// The container's routes, both families, without the kernel's own
/// link-local and multicast entries.
fn container_routes(ns: &Netns) -> Vec<String> {
    let mut routes: Vec<String> = ns
        .routes()
        .into_iter()
        .filter(|r| {
            !r.contains("table local") && !r.contains("fe80::") && !r.starts_with("multicast")
        })
        .collect();
    routes.sort();
    routes
}

/// Item: a second network whose IPAM also routes `0.0.0.0/0` and `::/0`
/// (Multus-style) is added next to the first, as the reference does (two
/// default routes in IPv4, a multipath one in IPv6), not refused with
/// "File exists"; each DEL takes its own away.
#[test]
fn second_network_with_a_default_route_is_appended() {
    let conf = |n: u8, data: &tempfile::TempDir| {
        json!({"cniVersion": "1.0.0", "name": format!("multi{n}"), "type": "ptp",
            "ipam": {"type": "host-local",
                     "ranges": [[{"subnet": format!("10.8{n}.0.0/24")}], [{"subnet": format!("fd0{n}::/64")}]],
                     "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                     "dataDir": data.path().to_str().unwrap()}})
    };
    let mut seen = Vec::new();
    for reference in [false, true] {
        let data = data_dir();
        let conf = |n: u8| conf(n, &data);
        let host = Netns::new("mh");
        let ctr = Netns::new("mc");
        let empty = container_routes(&ctr);
        let call = |n: u8| {
            let c = Call::rcni("ptp", "ADD", &host, Some(&ctr)).ifname(&format!("eth{n}"));
            if reference {
                c.reference()
            } else {
                c
            }
        };
        call(1).run(&conf(1)).ok();
        call(2).run(&conf(2)).ok();
        let routes = container_routes(&ctr);
        let defaults: Vec<&String> = routes.iter().filter(|r| r.starts_with("default")).collect();
        assert!(
            defaults.iter().any(|r| r.contains("10.81.0.1"))
                && defaults.iter().any(|r| r.contains("10.82.0.1")),
            "{routes:?}"
        );
        for gw in ["10.81.0.1", "10.82.0.1"] {
            assert!(ctr.try_exec(&["ping", "-c1", "-w5", gw]), "{gw}");
        }
        seen.push(routes);
        call(2).command("DEL").run(&conf(2)).ok();
        let after = container_routes(&ctr);
        assert!(
            after.iter().all(|r| !r.contains("eth2"))
                && after.iter().any(|r| r.starts_with("default via 10.81.0.1")),
            "{after:?}"
        );
        call(1).command("DEL").run(&conf(1)).ok();
        assert_eq!(container_routes(&ctr), empty);
        assert_only_lo(&ctr);
    }
    assert_eq!(seen[0], seen[1], "rcni's routes, then the reference's");
}

/// Item: `%` in a link name. The kernel takes `eth%d` as a template and
/// names the link `eth0`, so the plugin could not find it again (the
/// reference then fails and leaves the link in the container). CNI_IFNAME
/// with `%` is refused up front (code 4), and a bridge name with `%` before
/// anything is made; nothing is left anywhere.
#[test]
fn percent_in_ifname_is_refused_and_leaves_nothing() {
    let host = host_with_eth0();
    let ctr = Netns::new("pc");
    let data = data_dir();
    let net = unique("pct");
    let before = host.snapshot();
    for (plugin, conf) in confs(&data, &net) {
        let conf = match plugin {
            "macvlan" | "ipvlan" | "vlan" => with(conf, "master", json!("eth0p")),
            _ => conf,
        };
        let (code, msg) = Call::rcni(plugin, "ADD", &host, Some(&ctr))
            .ifname("eth%d")
            .run(&conf)
            .err();
        assert_eq!(code, 4, "{plugin}: {msg}");
        assert!(msg.contains('%'), "{plugin}: {msg}");
        assert_only_lo(&ctr);
        assert_eq!(host.snapshot(), before, "{plugin}");
    }
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "bridge", "bridge": "br%d",
        "ipam": {"type": "host-local", "subnet": "10.97.0.0/24", "dataDir": data.path().to_str().unwrap()}});
    Call::rcni("bridge", "ADD", &host, Some(&ctr))
        .run(&conf)
        .err();
    assert_only_lo(&ctr);
    assert_eq!(host.snapshot(), before, "bridge named br%d");
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// Item: host-device paths. `pciBusID` and `runtimeConfig.deviceID` must
/// be device names (a PCI address, an auxiliary device) and `kernelpath` a
/// plain path under /sys/devices, never a way to climb elsewhere in sysfs
/// with `..`: code 7 naming the field, and the host's devices stay.
#[test]
fn host_device_paths_must_name_devices() {
    let host = host_with_eth0();
    let ctr = Netns::new("dc");
    let data = data_dir();
    let net = unique("hdp");
    let before = host.snapshot();
    let base = json!({"cniVersion": "1.0.0", "name": net, "type": "host-device",
        "ipam": {"type": "host-local", "subnet": "10.97.0.0/24", "dataDir": data.path().to_str().unwrap()}});
    let cases = [
        (
            "pciBusID",
            json!({"pciBusID": "../../../class/net/eth0/device"}),
        ),
        (
            "pciBusID",
            json!({"pciBusID": "0000:00:05.0/../../../../class/net/eth0"}),
        ),
        (
            "kernelpath",
            json!({"kernelpath": "/sys/devices/../class/net/eth0"}),
        ),
        (
            "runtimeConfig.deviceID",
            json!({"runtimeConfig": {"deviceID": "../../../class/net/eth0"}}),
        ),
    ];
    for (field, extra) in cases {
        let mut conf = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            conf[k] = v.clone();
        }
        for verb in ["ADD", "DEL"] {
            if verb == "DEL" && field != "pciBusID" {
                continue;
            }
            let (code, msg) = Call::rcni("host-device", verb, &host, Some(&ctr))
                .run(&conf)
                .err();
            assert_eq!(code, 7, "{verb} {extra}: {msg}");
            assert!(msg.starts_with(field), "{verb} {extra}: {msg}");
            assert_eq!(host.snapshot(), before, "{extra}");
            assert_only_lo(&ctr);
        }
    }
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// Runs `call` with `stdin` under an address-space limit of `limit_mib`,
/// so that a call that tries to use more fails instead of passing.
fn run_with_memory_limit(call: &Call, stdin: &[u8], limit_mib: u64) -> Reply {
    let inner = call.process();
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--as={}", limit_mib << 20))
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // The plugin stops reading at its limit: write from a thread and
    // ignore the broken pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Reply {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Item: memory. A 50 MB JSON document on stdin (the reference peaks at
/// about 170 MiB on it, rcni used to reach 3.6 GiB) is refused with code 7
/// after reading at most 4 MiB, within a 128 MiB address space; a large but
/// legal config (over 500 KB) still works.
#[test]
fn oversized_config_is_refused_within_bounded_memory() {
    let host = Netns::new("zh");
    let ctr = Netns::new("zc");
    let data = data_dir();
    let net = unique("big");
    let add = Call::rcni("host-local", "ADD", &host, Some(&ctr));
    let mut huge = b"[".to_vec();
    huge.extend(std::iter::repeat_n(b"0,".as_slice(), 25_000_000).flatten());
    huge.extend(b"0]");
    let (code, msg) = run_with_memory_limit(&add, &huge, 128).err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("larger than 4 MiB"), "{msg}");

    let padding: Vec<Value> = (0..100_000).map(|i| json!(i)).collect();
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "host-local", "padding": padding,
        "ipam": {"type": "host-local", "subnet": "10.97.0.0/24", "dataDir": data.path().to_str().unwrap()}});
    let large = conf.to_string().into_bytes();
    assert!(large.len() > 500_000, "{}", large.len());
    let r = run_bounded(&add, &conf, LIMIT).ok();
    assert_eq!(r["ips"][0]["address"], "10.97.0.2/24");
    run_bounded(&add.clone().command("DEL"), &conf, LIMIT).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

/// Item: shared objects under failure. ADDs race into one bridge network
/// whose pool is smaller than the crowd (so some fail and roll back) while
/// others are killed (SIGKILL) at random points. Every ADD that succeeded
/// still has its veth on the bridge, the gateway address and reachability;
/// then DEL of every attachment (as the runtime does for the killed ones)
/// and a GC leave only the bridge, no address taken, no container link.
#[test]
fn racing_failing_and_killed_adds_lose_no_shared_object() {
    const CROWD: usize = 24;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut state = seed;
    let mut random = move |below: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    for round in 0..3 {
        let host = Netns::new("kh");
        let data = data_dir();
        let net = unique("kill");
        let ctrs: Vec<Netns> = (0..CROWD).map(|_| Netns::new("kc")).collect();
        let conf = json!({"cniVersion": "1.1.0", "name": net, "type": "bridge", "bridge": "br-kill",
            "isGateway": true,
            "ipam": {"type": "host-local", "subnet": "10.95.0.0/24", "rangeStart": "10.95.0.10",
                     "rangeEnd": "10.95.0.21", "dataDir": data.path().to_str().unwrap()}});
        let calls: Vec<Call> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| Call::rcni("bridge", "ADD", &host, Some(ctr)).id(&format!("k{i}")))
            .collect();
        // Every third call is killed after 0-40 ms.
        let kill_after: Vec<Option<Duration>> = (0..CROWD)
            .map(|i| (i % 3 == 1).then(|| Duration::from_millis(random(40))))
            .collect();
        let conf_ref = &conf;
        let outcomes: Vec<Option<Reply>> = std::thread::scope(|s| {
            let running: Vec<_> = calls
                .iter()
                .zip(&kill_after)
                .map(|(call, kill)| {
                    s.spawn(move || match kill {
                        None => Some(run_bounded(call, conf_ref, Duration::from_secs(60))),
                        Some(delay) => {
                            let mut child = call.process().spawn().unwrap();
                            let _ = child
                                .stdin
                                .take()
                                .unwrap()
                                .write_all(conf_ref.to_string().as_bytes());
                            std::thread::sleep(*delay);
                            let _ = child.kill();
                            let _ = child.wait();
                            None
                        }
                    })
                })
                .collect();
            running.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let context = format!("seed {seed} round {round}");
        assert!(
            host.links().contains(&"br-kill".to_string()),
            "{context}: the bridge is gone"
        );
        let succeeded: Vec<usize> = (0..CROWD)
            .filter(|i| outcomes[*i].as_ref().is_some_and(|r| r.code == 0))
            .collect();
        assert!(!succeeded.is_empty(), "{context}: no ADD succeeded");
        assert!(
            host.addrs("br-kill").contains(&"10.95.0.1/24".to_string()),
            "{context}: the gateway address is gone"
        );
        for &i in &succeeded {
            let r = outcomes[i].as_ref().unwrap().json();
            let veth = r["interfaces"][1]["name"].as_str().unwrap();
            assert_eq!(
                master_of(&host, veth).as_deref(),
                Some("br-kill"),
                "{context}: k{i}'s veth is off the bridge"
            );
            assert!(
                ctrs[i].try_exec(&["ping", "-c1", "-w5", "10.95.0.1"]),
                "{context}: k{i} cannot reach the gateway"
            );
        }
        for call in &calls {
            run_bounded(&call.clone().command("DEL"), &conf, LIMIT).ok();
        }
        let mut gc = Call::rcni("bridge", "GC", &host, None);
        gc.container_id.clear();
        gc.ifname.clear();
        let gc_conf = with(conf.clone(), "cni.dev/valid-attachments", json!([]));
        run_bounded(&gc, &gc_conf, LIMIT).ok();
        assert_eq!(host.links(), ["lo", "br-kill"], "{context}");
        for ctr in &ctrs {
            assert_only_lo(ctr);
        }
        assert!(allocated_ips(data.path(), &net).is_empty(), "{context}");
    }
}
