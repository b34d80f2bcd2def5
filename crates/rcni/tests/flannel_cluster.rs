//! A flannel cluster on one machine. N nodes (default 4,
//! `RCNI_CLUSTER_NODES` to change) are network namespaces on a shared
//! underlay bridge (in a namespace of its own, which also plays the
//! outside world); each has its subnet.env, data dirs and result cache in
//! a temp dir. The test plays flanneld: the vxlan backend (`flannel.1`,
//! VNI 1, port 8472, nolearning, FDB and neighbour entries for the other
//! VTEPs, routes to the other subnets through it) or host-gw (routes via
//! the other nodes' addresses). Each node runs k3s's flannel + portmap +
//! bandwidth conflist through rcni's runtime library, with pods on every
//! node (one with a host port, one shaped).
//!
//! Asserted: pod → pod across nodes (ping and TCP, the full matrix), node
//! → remote pod, pod → outside through masquerading, a host port on one
//! node reached from another, the pod MTU is FLANNEL_MTU; and that DEL of
//! every pod leaves no link, address, route, rule, firewall rule, IP
//! file, flannel data file or cached result on any node. IPv4 and dual
//! stack on both backends.
//!
//! ```text
//!             underlay netns: bridge ul0 192.168.100.1 (the "outside")
//!        ┌──────────────┬──────────────┬──────────────┐
//!   node1 eth0 .11   node2 eth0 .12   node3 .13      node4 .14
//!   flannel.1 ══════ vxlan VNI 1, udp 8472 ══════ (or host-gw routes)
//!   cni0 10.244.1.1  cni0 10.244.2.1  ...
//!    ├ pod 10.244.1.2 ├ pod 10.244.2.2
//!    └ pod 10.244.1.3 └ pod 10.244.2.3
//! ```

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use rcni_runtime::{Cni, NetworkList, RuntimeConf};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PODS_PER_NODE: usize = 2;
const POD_PORT: u16 = 8080;
const HOST_PORT: u16 = 30080;
const OUTSIDE_V4: &str = "192.168.100.1";
const OUTSIDE_V6: &str = "fd00:100::1";

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Vxlan,
    HostGw,
}

fn node_count() -> usize {
    std::env::var("RCNI_CLUSTER_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| (2..=200).contains(n))
        .unwrap_or(4)
}

/// Node `i` (from 1): its underlay and pod-subnet addresses.
fn node_v4(i: usize) -> String {
    format!("192.168.100.{}", 10 + i)
}
fn node_v6(i: usize) -> String {
    format!("fd00:100::{:x}", 0x10 + i)
}
fn subnet_v4(i: usize) -> String {
    format!("10.244.{i}.0")
}
fn subnet_v6(i: usize) -> String {
    format!("fd00:10:244:{i:x}::")
}
fn vtep_mac(i: usize, v6: bool) -> String {
    format!("0e:00:00:00:{:02x}:{:02x}", u8::from(v6), i)
}

/// A TCP server in a pod answering every client (IPv4 or IPv6) with
/// `reply`, until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(ns: &Netns, reply: String) -> Server {
        use std::io::Write;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = in_netns(&ns.name, move || {
            // [::] takes IPv4 clients too (v6only is off by default).
            let listener = std::net::TcpListener::bind(("::", POD_PORT)).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx.recv().unwrap();
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Pod {
    ns: Netns,
    id: String,
    v4: String,
    v6: Option<String>,
}

struct Node {
    i: usize,
    ns: Netns,
    dir: tempfile::TempDir,
    list: NetworkList,
    cni: Cni,
    pods: Vec<Pod>,
    /// What the node looked like before any pod.
    before: Vec<String>,
}

struct Cluster {
    underlay: Netns,
    nodes: Vec<Node>,
    backend: Backend,
    dual: bool,
}

impl Cluster {
    fn new(backend: Backend, dual: bool) -> Cluster {
        let underlay = Netns::new("ul");
        underlay.exec(&["ip", "link", "add", "ul0", "type", "bridge"]);
        underlay.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE_V4}/24"),
            "dev",
            "ul0",
        ]);
        underlay.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE_V6}/64"),
            "dev",
            "ul0",
            "nodad",
        ]);
        underlay.exec(&["ip", "link", "set", "ul0", "up"]);
        let n = node_count();
        let nodes = (1..=n).map(|i| Node::new(i, &underlay, dual)).collect();
        let mut cluster = Cluster {
            underlay,
            nodes,
            backend,
            dual,
        };
        cluster.play_flanneld();
        for node in &mut cluster.nodes {
            node.before = node.state();
        }
        cluster
    }

    /// What flanneld does on each node once it knows the others' leases.
    fn play_flanneld(&mut self) {
        let n = self.nodes.len();
        for node in &self.nodes {
            let ns = &node.ns;
            let others = (1..=n).filter(|j| *j != node.i);
            match self.backend {
                Backend::Vxlan => {
                    let mut families = vec![(false, "flannel.1", node_v4(node.i))];
                    if self.dual {
                        families.push((true, "flannel-v6.1", node_v6(node.i)));
                    }
                    for (v6, dev, local) in families {
                        let mac = vtep_mac(node.i, v6);
                        ns.exec(&[
                            "ip",
                            "link",
                            "add",
                            dev,
                            "address",
                            &mac,
                            "type",
                            "vxlan",
                            "id",
                            "1",
                            "local",
                            &local,
                            "dev",
                            "eth0",
                            "dstport",
                            "8472",
                            "nolearning",
                        ]);
                        let own = if v6 {
                            format!("{}/128", subnet_v6(node.i))
                        } else {
                            format!("{}/32", subnet_v4(node.i))
                        };
                        ns.exec(&["ip", "addr", "add", &own, "dev", dev, "nodad"]);
                        ns.exec(&["ip", "link", "set", dev, "up"]);
                        for j in others.clone() {
                            let (vtep, remote, prefix) = if v6 {
                                (subnet_v6(j), node_v6(j), 64)
                            } else {
                                (subnet_v4(j), node_v4(j), 24)
                            };
                            let mac = vtep_mac(j, v6);
                            ns.exec(&[
                                "ip",
                                "neigh",
                                "replace",
                                &vtep,
                                "lladdr",
                                &mac,
                                "dev",
                                dev,
                                "nud",
                                "permanent",
                            ]);
                            ns.exec(&["bridge", "fdb", "append", &mac, "dev", dev, "dst", &remote]);
                            ns.exec(&[
                                "ip",
                                "route",
                                "replace",
                                &format!("{vtep}/{prefix}"),
                                "via",
                                &vtep,
                                "dev",
                                dev,
                                "onlink",
                            ]);
                        }
                    }
                }
                Backend::HostGw => {
                    for j in others {
                        ns.exec(&[
                            "ip",
                            "route",
                            "replace",
                            &format!("{}/24", subnet_v4(j)),
                            "via",
                            &node_v4(j),
                        ]);
                        if self.dual {
                            ns.exec(&[
                                "ip",
                                "-6",
                                "route",
                                "replace",
                                &format!("{}/64", subnet_v6(j)),
                                "via",
                                &node_v6(j),
                            ]);
                        }
                    }
                }
            }
            if self.ipmasq() {
                // flanneld's own masquerading: leaving the cluster only.
                let mut rules = vec![("iptables", "10.244.0.0/16", "224.0.0.0/4")];
                if self.dual {
                    rules.push(("ip6tables", "fd00:10:244::/56", "ff00::/8"));
                }
                for (tool, cluster, multicast) in rules {
                    ns.exec(&[
                        tool,
                        "-t",
                        "nat",
                        "-A",
                        "POSTROUTING",
                        "-s",
                        cluster,
                        "-d",
                        cluster,
                        "-j",
                        "RETURN",
                    ]);
                    ns.exec(&[
                        tool,
                        "-t",
                        "nat",
                        "-A",
                        "POSTROUTING",
                        "-s",
                        cluster,
                        "!",
                        "-d",
                        multicast,
                        "-j",
                        "MASQUERADE",
                    ]);
                }
            }
        }
    }

    /// vxlan runs as flanneld usually does (it masquerades, so the
    /// delegate does not); host-gw lets the bridge delegate masquerade
    /// (FLANNEL_IPMASQ=false).
    fn ipmasq(&self) -> bool {
        self.backend == Backend::Vxlan
    }

    fn mtu(&self) -> u32 {
        match (self.backend, self.dual) {
            (Backend::HostGw, _) => 1500,
            (Backend::Vxlan, false) => 1450,
            // flanneld takes the smaller of the two families' MTUs.
            (Backend::Vxlan, true) => 1430,
        }
    }

    fn write_leases(&self) {
        for node in &self.nodes {
            let mut env = format!(
                "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.{}.1/24\n",
                node.i
            );
            if self.dual {
                env += &format!(
                    "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET={}1/64\n",
                    subnet_v6(node.i)
                );
            }
            env += &format!(
                "FLANNEL_MTU={}\nFLANNEL_IPMASQ={}\n",
                self.mtu(),
                self.ipmasq()
            );
            std::fs::create_dir_all(node.run_dir()).unwrap();
            std::fs::write(node.run_dir().join("subnet.env"), env).unwrap();
        }
    }

    /// ADDs on all nodes at once (pods of one node one after the other,
    /// as one kubelet's sandboxes may well be).
    fn add_pods(&mut self) {
        let adds: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let pods: Vec<(Netns, RuntimeConf)> = (0..PODS_PER_NODE)
                    .map(|k| {
                        let ns = Netns::new("pod");
                        let mut rt = RuntimeConf {
                            container_id: format!("pod-{}-{k}", node.i),
                            netns: ns.path(),
                            ifname: "eth0".into(),
                            ..RuntimeConf::default()
                        };
                        shaping_and_mappings(&mut rt, k);
                        (ns, rt)
                    })
                    .collect();
                let (cni, list) = (node.cni.clone(), node.list.clone());
                let rts: Vec<RuntimeConf> = pods.iter().map(|(_, rt)| rt.clone()).collect();
                let started = std::time::Instant::now();
                let thread = in_netns(&node.ns.name, move || {
                    rts.iter()
                        .map(|rt| cni.add_network_list(&list, rt).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                });
                (pods, thread, started)
            })
            .collect();
        for (node, (pods, thread, started)) in self.nodes.iter_mut().zip(adds) {
            let results = thread.join().unwrap();
            eprintln!(
                "node {}: {} ADDs in {:?}",
                node.i,
                results.len(),
                started.elapsed()
            );
            for ((ns, rt), result) in pods.into_iter().zip(results) {
                let result = result.unwrap_or_else(|e| panic!("ADD {}: {e}", rt.container_id));
                let ip = |v6: bool| {
                    result["ips"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|ip| ip["address"].as_str())
                        .find(|a| a.contains(':') == v6)
                        .map(|a| a.split('/').next().unwrap().to_string())
                };
                node.pods.push(Pod {
                    ns,
                    id: rt.container_id.clone(),
                    v4: ip(false).unwrap(),
                    v6: ip(true),
                });
            }
        }
    }

    fn del_pods(&mut self) {
        let dels: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let (cni, list) = (node.cni.clone(), node.list.clone());
                let rts: Vec<RuntimeConf> = node
                    .pods
                    .iter()
                    .enumerate()
                    .map(|(k, p)| {
                        let mut rt = RuntimeConf {
                            container_id: p.id.clone(),
                            netns: p.ns.path(),
                            ifname: "eth0".into(),
                            ..RuntimeConf::default()
                        };
                        shaping_and_mappings(&mut rt, k);
                        rt
                    })
                    .collect();
                in_netns(&node.ns.name, move || {
                    rts.iter()
                        .map(|rt| cni.del_network_list(&list, rt).map_err(|e| e.to_string()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for thread in dels {
            for outcome in thread.join().unwrap() {
                outcome.unwrap();
            }
        }
    }

    fn run(backend: Backend, dual: bool) {
        let mut cluster = Cluster::new(backend, dual);
        cluster.write_leases();
        cluster.add_pods();
        for node in &cluster.nodes {
            let shaped = node
                .ns
                .links()
                .iter()
                .filter(|l| l.starts_with("bwp"))
                .count();
            assert_eq!(shaped, 1, "node {}: the shaped pod's IFB", node.i);
        }
        let servers: Vec<Server> = cluster
            .nodes
            .iter()
            .flat_map(|n| &n.pods)
            .map(|p| Server::start(&p.ns, p.id.clone()))
            .collect();
        cluster.assert_pods();
        cluster.wait_for_dad();
        cluster.assert_pod_to_pod();
        cluster.assert_node_to_remote_pod();
        cluster.assert_outside();
        cluster.assert_host_port();
        drop(servers);
        cluster.del_pods();
        cluster.assert_clean();
    }

    /// IPv6 addresses are usable once the kernel's duplicate address
    /// detection is over: the gateway on cni0 starts it only when the
    /// first pod's port brings the bridge up.
    fn wait_for_dad(&self) {
        if !self.dual {
            return;
        }
        let spaces = self
            .nodes
            .iter()
            .map(|n| &n.ns)
            .chain(self.pods().map(|(_, p)| &p.ns));
        for ns in spaces {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !ns
                .exec(&["ip", "-6", "addr", "show", "tentative"])
                .trim()
                .is_empty()
            {
                assert!(
                    std::time::Instant::now() < deadline,
                    "DAD never ends in {}",
                    ns.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn pods(&self) -> impl Iterator<Item = (&Node, &Pod)> {
        self.nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(move |p| (n, p)))
    }

    fn assert_pods(&self) {
        for (node, pod) in self.pods() {
            assert!(
                pod.v4.starts_with(&format!("10.244.{}.", node.i)),
                "{}",
                pod.v4
            );
            assert_eq!(pod.v6.is_some(), self.dual, "{}", pod.id);
            let mtu = link_details(&pod.ns, "eth0")["mtu"].as_u64().unwrap();
            assert_eq!(mtu, u64::from(self.mtu()), "{}", pod.id);
        }
    }

    /// The addresses of `pod` to test, with the TCP address form.
    fn targets(&self, pod: &Pod) -> Vec<(String, String)> {
        let mut v = vec![(pod.v4.clone(), format!("{}:{POD_PORT}", pod.v4))];
        if let Some(v6) = &pod.v6 {
            v.push((v6.clone(), format!("[{v6}]:{POD_PORT}")));
        }
        v
    }

    fn assert_pod_to_pod(&self) {
        let small = self.nodes.len() <= 4;
        for (from_node, from) in self.pods() {
            for (to_node, to) in self.pods() {
                if from_node.i == to_node.i {
                    continue;
                }
                // The full matrix for small clusters, one pod per other
                // node otherwise.
                if !small && !to.id.ends_with("-0") {
                    continue;
                }
                for (ip, tcp) in self.targets(to) {
                    assert!(
                        from.ns.try_exec(&["ping", "-c1", "-W2", &ip]),
                        "ping {} -> {} ({ip})",
                        from.id,
                        to.id
                    );
                    assert_eq!(
                        tcp_get(&from.ns, &tcp).as_deref(),
                        Some(to.id.as_str()),
                        "TCP {} -> {tcp}",
                        from.id
                    );
                }
            }
        }
    }

    fn assert_node_to_remote_pod(&self) {
        for node in &self.nodes {
            for (to_node, to) in self.pods() {
                if to_node.i == node.i || !to.id.ends_with("-0") {
                    continue;
                }
                for (ip, tcp) in self.targets(to) {
                    assert!(
                        node.ns.try_exec(&["ping", "-c1", "-W2", &ip]),
                        "node {} -> {ip}",
                        node.i
                    );
                    assert_eq!(tcp_get(&node.ns, &tcp).as_deref(), Some(to.id.as_str()));
                }
            }
        }
    }

    /// The underlay namespace has no route to any pod subnet: answers
    /// reach the pods only through masquerading on their node.
    fn assert_outside(&self) {
        let mut outside = vec![OUTSIDE_V4];
        if self.dual {
            outside.push(OUTSIDE_V6);
        }
        for (_, pod) in self.pods() {
            for addr in &outside {
                assert!(
                    pod.ns.try_exec(&["ping", "-c1", "-W2", addr]),
                    "{} -> {addr}",
                    pod.id
                );
            }
        }
        let routes = self.underlay.routes();
        assert!(
            !routes
                .iter()
                .any(|r| r.contains("10.244.") || r.contains("fd00:10:244")),
            "{routes:?}"
        );
    }

    /// Pod 0 of node 1 publishes HOST_PORT: every other node reaches it
    /// through node 1's address.
    fn assert_host_port(&self) {
        let target = &self.nodes[0].pods[0];
        for node in &self.nodes[1..] {
            assert_eq!(
                tcp_get(&node.ns, &format!("{}:{HOST_PORT}", node_v4(1))).as_deref(),
                Some(target.id.as_str()),
                "node {} -> host port on node 1",
                node.i
            );
        }
    }

    fn assert_clean(&self) {
        for node in &self.nodes {
            for pod in &node.pods {
                assert_only_lo(&pod.ns);
            }
            // The bridge stays, as flannel leaves it (it is the node's).
            let after: Vec<String> = node
                .state()
                .into_iter()
                .filter(|s| !s.contains("cni0"))
                .collect();
            assert_eq!(after, node.before, "node {} after DEL", node.i);
            let firewall = [
                node.ns.exec(&["iptables-save"]),
                node.ns.exec(&["ip6tables-save"]),
                node.ns.exec(&["nft", "list", "ruleset"]),
            ]
            .join("\n");
            for pod in &node.pods {
                for needle in [Some(&pod.v4), pod.v6.as_ref(), Some(&pod.id)]
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        !firewall.contains(needle.as_str()),
                        "node {}: {needle} left in\n{firewall}",
                        node.i
                    );
                }
            }
            assert_eq!(
                allocated_ips(&node.dir.path().join("ipam"), "cbr0"),
                Vec::<String>::new()
            );
            for dir in ["flannel", "cache/results"] {
                let left: Vec<_> = std::fs::read_dir(node.dir.path().join(dir))
                    .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
                    .unwrap_or_default();
                assert!(left.is_empty(), "node {}: {dir} holds {left:?}", node.i);
            }
        }
    }
}

impl Node {
    fn new(i: usize, underlay: &Netns, dual: bool) -> Node {
        let ns = Netns::new(&format!("node{i}-"));
        let port = format!("n{i}");
        underlay.exec(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        underlay.exec(&["ip", "link", "set", &port, "master", "ul0", "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", node_v4(i)),
            "dev",
            "eth0",
        ]);
        if dual {
            ns.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{}/64", node_v6(i)),
                "dev",
                "eth0",
                "nodad",
            ]);
        }
        ns.exec(&["ip", "link", "set", "eth0", "up"]);
        // A Kubernetes node forwards.
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        let dir = data_dir();
        let run_dir = dir.path().join("run/flannel");
        let conflist = json!({"cniVersion": "1.0.0", "name": "cbr0", "plugins": [
            {"type": "flannel", "subnetFile": run_dir.join("subnet.env"),
             "dataDir": dir.path().join("flannel"),
             "delegate": {"hairpinMode": true, "forceAddress": true, "isDefaultGateway": true},
             "ipam": {"dataDir": dir.path().join("ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}}]});
        let list = NetworkList::from_bytes(conflist.to_string().as_bytes()).unwrap();
        let mut cni = Cni::new(vec![rcni_bin_dir().to_path_buf()]);
        cni.cache_dir = dir.path().join("cache");
        cni.timeout = Some(Duration::from_secs(30));
        Node {
            i,
            ns,
            dir,
            list,
            cni,
            pods: Vec::new(),
            before: Vec::new(),
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run/flannel")
    }

    /// Links, addresses, routes and policy rules.
    fn state(&self) -> Vec<String> {
        let mut s = self.ns.snapshot();
        for family in ["-4", "-6"] {
            s.extend(
                self.ns
                    .exec(&["ip", family, "rule", "show"])
                    .lines()
                    .map(|r| format!("rule {r}")),
            );
        }
        s
    }
}

#[test]
fn vxlan_ipv4() {
    Cluster::run(Backend::Vxlan, false);
}

#[test]
fn vxlan_dual_stack() {
    Cluster::run(Backend::Vxlan, true);
}

#[test]
fn host_gw_ipv4() {
    Cluster::run(Backend::HostGw, false);
}

#[test]
fn host_gw_dual_stack() {
    Cluster::run(Backend::HostGw, true);
}

/// What the runtime passes for pod `k` of a node, as kubelet would: a
/// host port for the first pod, a bandwidth limit for the second (high
/// enough not to slow the checks, so that its IFB is made and removed).
fn shaping_and_mappings(rt: &mut RuntimeConf, k: usize) {
    match k {
        0 => {
            rt.capability_args.insert(
                "portMappings".into(),
                json!([{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]),
            );
        }
        1 => {
            rt.capability_args.insert(
                "bandwidth".into(),
                json!({"ingressRate": 200_000_000, "ingressBurst": 4_000_000,
                       "egressRate": 200_000_000, "egressBurst": 4_000_000}),
            );
        }
        _ => {}
    }
}
