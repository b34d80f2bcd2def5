//! The flannel cluster scenario: node namespaces, each with its own
//! flanneld lease (subnet.env), data dirs and result cache, and pods on
//! every node, the ADDs of all nodes at once (one runtime per node, its
//! pods one after another, as one kubelet's). The chain is k3s's:
//! flannel, portmap and bandwidth, every pod with two host ports and a
//! bandwidth limit, as kubelet passes them. rcni runs `flannel`, which
//! delegates to its bridge + host-local; the reference `flannel` binary
//! is not in Debian's package, so the reference runs bridge + host-local
//! with the delegate config flannel would hand them. Each node checks that
//! its pods got their IFB, TBF and port rules, and that DEL left none.

use crate::measure::{port_mappings, Impl};
use rcni_runtime::{Cni, NetworkList, RuntimeConf};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

/// ADD latencies of one implementation, per node.
pub struct ClusterRun {
    pub label: String,
    pub add_ms: Vec<Vec<f64>>,
}

const MTU: u32 = 1450;

fn lease(node: usize) -> String {
    format!(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.{node}.1/24\nFLANNEL_MTU={MTU}\nFLANNEL_IPMASQ=true\n"
    )
}

/// What flannel builds from `lease(node)` for the conflist below.
fn delegate(node: usize, ipam_dir: &Path) -> Value {
    json!({"type": "bridge", "hairpinMode": true, "forceAddress": true, "isDefaultGateway": true,
           "isGateway": true, "ipMasq": false, "mtu": MTU,
           "ipam": {"type": "host-local", "dataDir": ipam_dir,
                    "ranges": [[{"subnet": format!("10.244.{node}.0/24")}]],
                    "routes": [{"dst": "10.244.0.0/16"}]}})
}

fn list(flannel: bool, node: usize, dir: &Path) -> Value {
    let main = if flannel {
        json!({"type": "flannel", "subnetFile": dir.join("subnet.env"), "dataDir": dir.join("flannel"),
               "delegate": {"hairpinMode": true, "forceAddress": true, "isDefaultGateway": true},
               "ipam": {"dataDir": dir.join("ipam")}})
    } else {
        delegate(node, &dir.join("ipam"))
    };
    json!({"cniVersion": "1.0.0", "name": "cbr0", "plugins": [
        main, {"type": "portmap", "capabilities": {"portMappings": true}},
        {"type": "bandwidth", "capabilities": {"bandwidth": true}}]})
}

/// Pod `k`'s first host port (its second is the next one); the nodes
/// are separate namespaces, so every node uses the same ports.
fn host_port(k: usize) -> usize {
    30000 + 2 * k
}

/// What a node holds of its pods, as seen from inside its namespace.
struct NodeState {
    links: Vec<String>,
    ifbs: Vec<String>,
    /// `tc qdisc show` lines of TBFs and ingress qdiscs.
    shaping: Vec<String>,
    /// The words of `iptables-save` (split at anything but digits and
    /// dots: addresses and ports stand alone).
    firewall: HashSet<String>,
}

fn output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd} {} failed", args.join(" ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Interface names of `ip -o link show` lines (`2: name@peer: <...`).
fn link_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

fn node_state() -> Result<NodeState, String> {
    let qdiscs = output("tc", &["qdisc", "show"])?;
    let firewall = output("iptables-save", &[])?;
    Ok(NodeState {
        links: link_names(&output("ip", &["-o", "link", "show"])?),
        ifbs: link_names(&output("ip", &["-o", "link", "show", "type", "ifb"])?),
        shaping: qdiscs
            .lines()
            .filter(|l| l.starts_with("qdisc tbf") || l.starts_with("qdisc ingress"))
            .map(str::to_string)
            .collect(),
        firewall: firewall
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|word| !word.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// The words a pod's port rules hold: its address and its two host ports.
fn port_rule_words(pods: &[(String, usize)]) -> Vec<String> {
    pods.iter()
        .flat_map(|(address, port)| [address.clone(), port.to_string(), (port + 1).to_string()])
        .collect()
}

/// The names in `dir` (none when it does not exist).
fn file_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The addresses host-local holds in the node's store.
fn held_addresses(dir: &Path) -> Vec<String> {
    file_names(&dir.join("ipam/cbr0"))
        .into_iter()
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// What each added pod must have in its node: its address and host ports
/// in the port rules, an IFB with a TBF, and its address held.
fn check_added(node: usize, pods: &[(String, usize)], dir: &Path) -> Result<(), String> {
    let state = node_state()?;
    let ifb_tbfs = state
        .shaping
        .iter()
        .filter(|l| l.starts_with("qdisc tbf") && l.contains(" dev bwp"))
        .count();
    if state.ifbs.len() != pods.len() || ifb_tbfs != pods.len() {
        return Err(format!(
            "node {node}: {} pods, but IFBs {:?} and {ifb_tbfs} TBFs on them",
            pods.len(),
            state.ifbs
        ));
    }
    if let Some(word) = port_rule_words(pods)
        .into_iter()
        .find(|word| !state.firewall.contains(word))
    {
        return Err(format!("node {node}: no port rule names {word}"));
    }
    let held = held_addresses(dir);
    if held.len() != pods.len() {
        return Err(format!(
            "node {node}: {} pods, but host-local holds {held:?}",
            pods.len()
        ));
    }
    Ok(())
}

/// After DEL: only the loopback and the bridge (flannel leaves it, it is
/// the node's) in the node, no shaping, no port rule naming a pod, no
/// address held, no cached result or flannel file.
fn check_deleted(node: usize, pods: &[(String, usize)], dir: &Path) -> Result<(), String> {
    let state = node_state()?;
    let links: Vec<_> = state
        .links
        .iter()
        .filter(|l| *l != "lo" && *l != "cni0")
        .collect();
    if !links.is_empty() || !state.ifbs.is_empty() || !state.shaping.is_empty() {
        return Err(format!(
            "node {node} after DEL: links {links:?}, IFBs {:?}, qdiscs {:?}",
            state.ifbs, state.shaping
        ));
    }
    if let Some(word) = port_rule_words(pods)
        .into_iter()
        .find(|word| state.firewall.contains(word))
    {
        return Err(format!("node {node} after DEL: a port rule names {word}"));
    }
    let files = [
        file_names(&dir.join("flannel")),
        file_names(&dir.join("cache/results")),
        held_addresses(dir),
    ]
    .concat();
    if !files.is_empty() {
        return Err(format!("node {node} after DEL: files left {files:?}"));
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<(), String> {
    let ok = std::process::Command::new("ip")
        .args(args)
        .status()
        .map_err(|e| format!("ip: {e}"))?
        .success();
    ok.then_some(())
        .ok_or_else(|| format!("ip {} failed", args.join(" ")))
}

/// Node `node` (namespace `rbn<tag>-<node>`, pods `rbp<tag>n<node>-<k>`):
/// joins its namespace, attaches `pods` pods (timed), checks them, waits
/// for every node to be done, detaches them again and checks that nothing
/// is left.
fn node(
    imp_dir: &Path,
    flannel: bool,
    node: usize,
    pods: usize,
    tag: &str,
    all_added: &Barrier,
) -> Result<Vec<f64>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("subnet.env"), lease(node)).map_err(|e| e.to_string())?;
    let ns =
        std::fs::File::open(format!("/run/netns/rbn{tag}-{node}")).map_err(|e| e.to_string())?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&ns),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("setns: {e}"))?;
    let list = list(flannel, node, dir.path());
    let list = NetworkList::from_bytes(list.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let mut cni = Cni::new(vec![imp_dir.to_path_buf()]);
    cni.cache_dir = dir.path().join("cache");
    let pod_ns = |k: usize| format!("rbp{tag}n{node}-{k}");
    let rt = |k: usize| {
        let mut rt = RuntimeConf {
            container_id: format!("pod-{node}-{k}"),
            netns: format!("/run/netns/{}", pod_ns(k)),
            ifname: "eth0".into(),
            ..RuntimeConf::default()
        };
        rt.capability_args
            .insert("portMappings".into(), port_mappings(host_port(k)));
        rt.capability_args.insert(
            "bandwidth".into(),
            json!({"ingressRate": 10_000_000, "ingressBurst": 10_000_000,
                   "egressRate": 10_000_000, "egressBurst": 10_000_000}),
        );
        rt
    };
    let mut add_ms = Vec::new();
    // Each added pod's address and first host port.
    let mut added = Vec::new();
    let mut outcome = Ok(());
    for k in 0..pods {
        if let Err(e) = ip(&["netns", "add", &pod_ns(k)]) {
            outcome = Err(e);
            break;
        }
        let start = Instant::now();
        let result = match cni.add_network_list(&list, &rt(k)) {
            Ok(result) => result,
            Err(e) => {
                outcome = Err(format!("node {node} ADD pod {k}: {e}"));
                break;
            }
        };
        add_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        let Some(address) = result["ips"][0]["address"].as_str() else {
            outcome = Err(format!("node {node} ADD pod {k}: no address in {result}"));
            break;
        };
        let address = address.split('/').next().unwrap_or(address).to_string();
        added.push((address, host_port(k)));
    }
    if outcome.is_ok() {
        outcome = check_added(node, &added, dir.path());
    }
    // Always reached, so no node waits forever for a failed one.
    all_added.wait();
    for k in 0..pods {
        if let Err(e) = cni.del_network_list(&list, &rt(k)) {
            outcome = outcome.and(Err(format!("node {node} DEL pod {k}: {e}")));
        }
    }
    // Before the pods' namespaces go, which would take their veths along.
    outcome = outcome.and_then(|()| check_deleted(node, &added, dir.path()));
    for k in 0..pods {
        let _ = ip(&["netns", "del", &pod_ns(k)]);
    }
    outcome.map(|()| add_ms)
}

/// `nodes` × `pods` ADDs with `imp`'s plugins, all nodes at once.
pub fn run(imp: &Impl, flannel: bool, nodes: usize, pods: usize) -> Result<ClusterRun, String> {
    let tag = format!("{}", std::process::id() % 10000);
    let node_ns = |i: usize| format!("rbn{tag}-{i}");
    for i in 1..=nodes {
        ip(&["netns", "add", &node_ns(i)])?;
        ip(&["-n", &node_ns(i), "link", "set", "lo", "up"])?;
    }
    let all_added = Arc::new(Barrier::new(nodes));
    let threads: Vec<_> = (1..=nodes)
        .map(|i| {
            let (dir, tag, barrier) = (imp.dir.clone(), tag.clone(), all_added.clone());
            std::thread::spawn(move || node(&dir, flannel, i, pods, &tag, &barrier))
        })
        .collect();
    let results: Vec<Result<Vec<f64>, String>> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| Err("a node thread panicked".into()))
        })
        .collect();
    for i in 1..=nodes {
        let _ = ip(&["netns", "del", &node_ns(i)]);
    }
    Ok(ClusterRun {
        label: imp.label.clone(),
        add_ms: results.into_iter().collect::<Result<_, _>>()?,
    })
}
