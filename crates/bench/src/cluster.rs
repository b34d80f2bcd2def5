//! The flannel cluster scenario: node namespaces, each with its own
//! flanneld lease (subnet.env), data dirs and result cache, and pods on
//! every node, the ADDs of all nodes at once (one runtime per node, its
//! pods one after another, as one kubelet's). rcni runs `flannel`, which
//! delegates to its bridge + host-local; the reference `flannel` binary
//! is not in Debian's package, so the reference runs bridge + host-local
//! with the delegate config flannel would hand them.

use crate::measure::Impl;
use rcni_runtime::{Cni, NetworkList, RuntimeConf};
use serde_json::{json, Value};
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
        main, {"type": "portmap", "capabilities": {"portMappings": true}}]})
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
/// joins its namespace, attaches `pods` pods (timed), waits
/// for every node to be done, and detaches them again.
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
    let rt = |k: usize| RuntimeConf {
        container_id: format!("pod-{node}-{k}"),
        netns: format!("/run/netns/{}", pod_ns(k)),
        ifname: "eth0".into(),
        ..RuntimeConf::default()
    };
    let mut add_ms = Vec::new();
    let mut outcome = Ok(());
    for k in 0..pods {
        if let Err(e) = ip(&["netns", "add", &pod_ns(k)]) {
            outcome = Err(e);
            break;
        }
        let start = Instant::now();
        if let Err(e) = cni.add_network_list(&list, &rt(k)) {
            outcome = Err(format!("node {node} ADD pod {k}: {e}"));
            break;
        }
        add_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    // Always reached, so no node waits forever for a failed one.
    all_added.wait();
    for k in 0..pods {
        let _ = cni.del_network_list(&list, &rt(k));
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
