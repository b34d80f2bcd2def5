//! Concurrency on shared objects: containers attach at once to one bridge
//! network with ipMasq, chained with portmap, on the iptables and on the
//! nftables backend. The address pool is smaller than the crowd, so some
//! ADDs fail and roll back, and some plugin processes are killed (SIGKILL)
//! at random points, as a node crash or an OOM kill would. While the
//! survivors run, nothing they share may be lost: each keeps its veth on
//! the bridge, reaches the gateway, and keeps its masquerade and port
//! mapping rules. After DEL of every attachment (as a runtime does, also
//! for the failed and killed ones) and a GC, nothing is left: no veth, no
//! address file, no rule naming a container, no attachment chain.
//!
//! The kill points come from `RCNI_CONCURRENCY_SEED` (default: the clock;
//! round n uses seed + n), printed with every failure.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::mutate::Rng;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

const CROWD: usize = 18;
/// Addresses in the pool: fewer than the crowd.
const POOL: usize = 10;
const LIMIT: Duration = Duration::from_secs(30);
const BRIDGE: &str = "br-race";

/// Where a container's chain of calls is cut short.
#[derive(Clone, Copy, Debug)]
enum Kill {
    Never,
    Bridge(Duration),
    Portmap(Duration),
}

/// What became of one container's ADD of the chain.
struct Attached {
    /// bridge's result, when its ADD succeeded.
    bridge: Option<Value>,
    /// portmap's ADD succeeded too.
    portmap: bool,
}

fn container_id(i: usize) -> String {
    format!("race-ctr-{i}")
}

fn host_port(i: usize) -> u16 {
    20_000 + i as u16
}

fn bridge_conf(net: &str, backend: &str, data: &str) -> Value {
    json!({"cniVersion": "1.1.0", "name": net, "type": "bridge", "bridge": BRIDGE,
        "isGateway": true, "ipMasq": true, "ipMasqBackend": backend,
        "ipam": {"type": "host-local", "subnet": "10.94.0.0/24", "rangeStart": "10.94.0.10",
                 "rangeEnd": format!("10.94.0.{}", 10 + POOL - 1), "dataDir": data}})
}

fn portmap_conf(net: &str, backend: &str, i: usize, prev: Option<&Value>) -> Value {
    let mut conf = json!({"cniVersion": "1.1.0", "name": net, "type": "portmap", "backend": backend,
        "snat": true, "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [{"hostPort": host_port(i), "containerPort": 80, "protocol": "tcp"}]}});
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf
}

/// The container's address from bridge's result, without the prefix.
fn address(result: &Value) -> String {
    let cidr = result["ips"][0]["address"].as_str().unwrap();
    cidr.split('/').next().unwrap().to_string()
}

/// Three rounds, each with fresh namespaces and its own kill points.
fn races(backend: &str) {
    let seed = std::env::var("RCNI_CONCURRENCY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    for round in 0..3 {
        race(backend, seed + round);
    }
}

fn race(backend: &str, seed: u64) {
    let context = format!("{backend}, RCNI_CONCURRENCY_SEED={seed}");
    let mut rng = Rng::new(seed);
    let host = Netns::new("rh");
    let data = data_dir();
    let net = unique("race");
    let ctrs: Vec<Netns> = (0..CROWD).map(|_| Netns::new("rc")).collect();
    let bridge = bridge_conf(&net, backend, data.path().to_str().unwrap());
    // A third of the chains are cut short, in bridge's ADD or in portmap's.
    let kills: Vec<Kill> = (0..CROWD)
        .map(|i| match i % 6 {
            1 => Kill::Bridge(Duration::from_millis(rng.below(60) as u64)),
            4 => Kill::Portmap(Duration::from_millis(rng.below(40) as u64)),
            _ => Kill::Never,
        })
        .collect();
    let call = |plugin: &str, verb: &str, i: usize| {
        Call::rcni(plugin, verb, &host, Some(&ctrs[i])).id(&container_id(i))
    };
    let attached: Vec<Attached> = std::thread::scope(|s| {
        let running: Vec<_> = (0..CROWD)
            .map(|i| {
                let (bridge, kill, call, net) = (&bridge, kills[i], &call, net.as_str());
                s.spawn(move || {
                    let (kill_bridge, kill_portmap) = match kill {
                        Kill::Never => (None, None),
                        Kill::Bridge(d) => (Some(d), None),
                        Kill::Portmap(d) => (None, Some(d)),
                    };
                    let stdin = bridge.to_string().into_bytes();
                    let reply = run_or_kill(&call("bridge", "ADD", i), &stdin, kill_bridge, LIMIT);
                    let result = reply.filter(|r| r.code == 0).map(|r| r.json());
                    let Some(result) = result else {
                        return Attached {
                            bridge: None,
                            portmap: false,
                        };
                    };
                    let pm = portmap_conf(net, backend, i, Some(&result))
                        .to_string()
                        .into_bytes();
                    let reply = run_or_kill(&call("portmap", "ADD", i), &pm, kill_portmap, LIMIT);
                    Attached {
                        bridge: Some(result),
                        portmap: reply.is_some_and(|r| r.code == 0),
                    }
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });

    let whole: Vec<usize> = (0..CROWD).filter(|&i| attached[i].portmap).collect();
    assert!(!whole.is_empty(), "{context}: no chain succeeded");
    assert!(
        (0..CROWD).filter(|&i| attached[i].bridge.is_some()).count() <= POOL,
        "{context}: more addresses handed out than the pool holds"
    );
    assert!(
        host.addrs(BRIDGE).contains(&"10.94.0.1/24".to_string()),
        "{context}: the gateway address is gone"
    );
    let rules = host.firewall();
    for &i in &whole {
        let result = attached[i].bridge.as_ref().unwrap();
        let veth = result["interfaces"][1]["name"].as_str().unwrap();
        let master = host.ip_json(&["link", "show", "dev", veth])[0]["master"].clone();
        assert_eq!(
            master,
            json!(BRIDGE),
            "{context}: {}'s veth is off the bridge",
            container_id(i)
        );
        assert!(
            ctrs[i].try_exec(&["ping", "-c1", "-w5", "10.94.0.1"]),
            "{context}: {} cannot reach the gateway",
            container_id(i)
        );
        let ip = address(result);
        let dnat = format!("{ip}:80");
        let dnat_rule = rules.iter().find(|l| l.contains(&dnat));
        assert!(
            dnat_rule.is_some(),
            "{context}: {}'s port mapping is gone",
            container_id(i)
        );
        // On iptables the mapping lives in the container's own chain, which
        // only works while the shared chain still jumps to it (a racing
        // first ADD that redeclares the shared chain flushes that jump).
        if backend == "iptables" {
            let saved = rules
                .iter()
                .find(|l| l.starts_with("v4 ") && l.contains(&dnat));
            let mut words = saved
                .expect("iptables-save shows the mapping")
                .split_whitespace();
            let own_chain = words
                .by_ref()
                .find(|w| *w == "-A")
                .and(words.next())
                .unwrap();
            assert!(
                rules.iter().any(|l| l.contains("-A CNI-HOSTPORT-DNAT ")
                    && l.ends_with(&format!("-j {own_chain}"))),
                "{context}: nothing jumps to {}'s chain {own_chain}",
                container_id(i)
            );
        }
        let masq = if backend == "nftables" {
            format!("saddr {ip}")
        } else {
            format!("-s {ip}/32")
        };
        assert!(
            rules.iter().any(|l| l.contains(&masq)),
            "{context}: {}'s masquerade rule is gone",
            container_id(i)
        );
    }

    // DEL of every attachment, the chain in reverse, with what the runtime
    // has cached (nothing for a chain that failed or was cut short).
    for (i, chain) in attached.iter().enumerate() {
        let prev = chain.bridge.as_ref();
        let pm = portmap_conf(&net, backend, i, prev);
        call("portmap", "DEL", i).run(&pm).ok();
        let mut conf = bridge.clone();
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        call("bridge", "DEL", i).run(&conf).ok();
    }
    let gc_conf = with(bridge.clone(), "cni.dev/valid-attachments", json!([]));
    for plugin in ["bridge", "portmap"] {
        let mut gc = Call::rcni(plugin, "GC", &host, None);
        gc.container_id.clear();
        gc.ifname.clear();
        let conf = if plugin == "portmap" {
            with(
                portmap_conf(&net, backend, 0, None),
                "cni.dev/valid-attachments",
                json!([]),
            )
        } else {
            gc_conf.clone()
        };
        gc.run(&conf).ok();
    }

    assert_eq!(host.links(), ["lo", BRIDGE], "{context}: links left");
    for ctr in &ctrs {
        assert_only_lo(ctr);
    }
    assert!(
        allocated_ips(data.path(), &net).is_empty(),
        "{context}: addresses left"
    );
    let pool: Vec<String> = (0..POOL).map(|n| format!("10.94.0.{}", 10 + n)).collect();
    let left: Vec<String> = host
        .firewall()
        .into_iter()
        .filter(|l| {
            l.contains("race-ctr-")
                || l.contains(&net)
                || l.contains("rcni_attachments")
                || pool.iter().any(|ip| l.contains(&format!("{ip}/")) || l.contains(&format!("{ip} ")))
                || (0..CROWD).any(|i| l.contains(&host_port(i).to_string()))
                // Per-attachment iptables chains (ipMasq's CNI-<hash>,
                // portmap's CNI-DN-/CNI-SN-): only the shared ones may stay.
                || (l.contains(":CNI-") && !l.contains(":CNI-HOSTPORT-"))
        })
        .collect();
    assert!(
        left.is_empty(),
        "{context}: rules left:\n{}",
        left.join("\n")
    );
}

#[test]
fn racing_chains_lose_nothing_shared_and_leave_nothing_on_iptables() {
    races("iptables");
}

#[test]
fn racing_chains_lose_nothing_shared_and_leave_nothing_on_nftables() {
    races("nftables");
}
