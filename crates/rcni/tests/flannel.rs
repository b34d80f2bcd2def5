//! flannel (meta) over bridge + host-local, as flanneld leaves a node:
//! the pod gets an address of the node's subnet, the flannel MTU and a
//! route to each flannel network; the delegate config is saved for DEL;
//! DEL leaves nothing, also when the saved file is gone; one container
//! on two flannel networks; bad subnet.env; CHECK, GC, STATUS; interop
//! with the reference's bridge and host-local as the delegates.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

const LEASE_V4: &str =
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1410\nFLANNEL_IPMASQ=true\n";
const LEASE_DUAL: &str = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:3::/64\nFLANNEL_MTU=1410\nFLANNEL_IPMASQ=true\n";

/// A node: its netns, and temp dirs for subnet.env, flannel's saved
/// configs and host-local's store.
struct Node {
    host: Netns,
    dir: tempfile::TempDir,
    net: String,
}

impl Node {
    fn new(lease: &str) -> Node {
        let node = Node {
            host: Netns::new("fl"),
            dir: data_dir(),
            net: unique("fl"),
        };
        node.lease(lease);
        node
    }

    fn subnet_file(&self) -> PathBuf {
        self.dir.path().join("subnet.env")
    }

    fn lease(&self, text: &str) {
        std::fs::write(self.subnet_file(), text).unwrap();
    }

    fn flannel_dir(&self) -> PathBuf {
        self.dir.path().join("flannel")
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    fn conf(&self, version: &str) -> Value {
        json!({"cniVersion": version, "name": self.net, "type": "flannel",
               "subnetFile": self.subnet_file(), "dataDir": self.flannel_dir(),
               "delegate": {"bridge": "cni-fl"},
               "ipam": {"dataDir": self.ipam_dir()}})
    }

    /// The saved delegate configs, by file name.
    fn saved(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.flannel_dir())
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn ips(&self) -> Vec<String> {
        allocated_ips(&self.ipam_dir(), &self.net)
    }

    fn call(&self, command: &str, ctr: &Netns) -> Call {
        Call::rcni("flannel", command, &self.host, Some(ctr))
    }

    /// Asserts the attachment is gone: container, addresses, saved file.
    fn assert_clean(&self, ctr: &Netns) {
        assert_only_lo(ctr);
        assert_eq!(self.ips(), Vec::<String>::new());
        assert_eq!(self.saved(), Vec::<String>::new());
        let veths: Vec<String> = self
            .host
            .links()
            .into_iter()
            .filter(|l| l.starts_with("veth"))
            .collect();
        assert_eq!(veths, Vec::<String>::new(), "host veths left");
    }
}

fn mtu(ns: &Netns, dev: &str) -> u64 {
    link_details(ns, dev)["mtu"].as_u64().unwrap()
}

/// What the pod sees after ADD: an address of the node's subnet(s), the
/// flannel MTU, and a route to each flannel network via the bridge.
fn assert_pod(ctr: &Netns, dual: bool) {
    let addrs = ctr.addrs("eth0");
    assert!(
        addrs.iter().any(|a| a.starts_with("10.244.3.")),
        "{addrs:?}"
    );
    assert_eq!(
        addrs.iter().any(|a| a.starts_with("fd00:10:244:3:")),
        dual,
        "{addrs:?}"
    );
    assert_eq!(mtu(ctr, "eth0"), 1410);
    let routes = ctr.routes();
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("10.244.0.0/16 via 10.244.3.1")),
        "{routes:?}"
    );
    if dual {
        assert!(
            routes
                .iter()
                .any(|r| r.starts_with("fd00:10:244::/56 via fd00:10:244:3::1")),
            "{routes:?}"
        );
    }
}

#[test]
fn add_and_del_on_every_version() {
    for version in VERSIONS.iter().copied().chain(["0.2.0"]) {
        let node = Node::new(LEASE_V4);
        let ctr = Netns::new("flc");
        let conf = node.conf(version);
        node.call("ADD", &ctr).run(&conf).ok();
        assert_pod(&ctr, false);
        // The bridge is the gateway, with flannel's MTU; flanneld
        // masquerades (FLANNEL_IPMASQ=true), so the delegate does not.
        assert!(node
            .host
            .addrs("cni-fl")
            .contains(&"10.244.3.1/24".to_string()));
        let saved: Value =
            serde_json::from_slice(&std::fs::read(node.flannel_dir().join("ctr1")).unwrap())
                .unwrap();
        assert_eq!(
            (
                &saved["name"],
                &saved["type"],
                &saved["ipMasq"],
                &saved["mtu"]
            ),
            (
                &json!(node.net),
                &json!("bridge"),
                &json!(false),
                &json!(1410)
            ),
            "{version}"
        );
        assert_eq!(node.ips(), ["10.244.3.2"], "{version}");
        node.call("DEL", &ctr).run(&conf).ok();
        node.assert_clean(&ctr);
        node.call("DEL", &ctr).run(&conf).ok();
    }
}

#[test]
fn dual_stack() {
    let node = Node::new(LEASE_DUAL);
    let ctr = Netns::new("flc");
    let conf = node.conf("1.0.0");
    let result = node.call("ADD", &ctr).run(&conf).ok();
    assert_eq!(result["ips"].as_array().unwrap().len(), 2, "{result}");
    assert_pod(&ctr, true);
    node.call("DEL", &ctr).run(&conf).ok();
    node.assert_clean(&ctr);
}

#[test]
fn ipmasq_false_masquerades_in_the_delegate() {
    let node = Node::new(&LEASE_V4.replace("FLANNEL_IPMASQ=true", "FLANNEL_IPMASQ=false"));
    let outside = outside_of(&node.host);
    serve(&outside, 8081, "outside", 20);
    let ctr = Netns::new("flc");
    let conf = node.conf("1.0.0");
    node.call("ADD", &ctr).run(&conf).ok();
    ctr.exec(&["ip", "route", "add", "default", "via", "10.244.3.1"]);
    // The outside has no route back to 10.244.3.0/24: an answer means
    // the pod's traffic was masqueraded.
    assert_eq!(
        tcp_get(&ctr, "203.0.113.2:8081").as_deref(),
        Some("outside")
    );
    node.call("DEL", &ctr).run(&conf).ok();
    node.assert_clean(&ctr);
    for rules in [
        node.host.exec(&["iptables-save", "-t", "nat"]),
        node.host.exec(&["nft", "list", "ruleset"]),
    ] {
        assert!(!rules.contains("10.244.3."), "{rules}");
    }
}

#[test]
fn del_without_the_saved_file_recomputes_the_delegate() {
    let node = Node::new(LEASE_V4);
    let ctr = Netns::new("flc");
    let conf = node.conf("1.0.0");
    node.call("ADD", &ctr).run(&conf).ok();
    std::fs::remove_file(node.flannel_dir().join("ctr1")).unwrap();
    node.call("DEL", &ctr).run(&conf).ok();
    node.assert_clean(&ctr);
    // Nothing saved and no subnet.env: nothing to do, and that is fine.
    std::fs::remove_file(node.subnet_file()).unwrap();
    node.call("DEL", &ctr).run(&conf).ok();
}

#[test]
fn one_container_on_two_flannel_networks() {
    let a = Node::new(LEASE_V4);
    let b_lease = "FLANNEL_NETWORK=10.245.0.0/16\nFLANNEL_SUBNET=10.245.3.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n";
    let b_file = a.dir.path().join("b.env");
    std::fs::write(&b_file, b_lease).unwrap();
    let b_net = unique("flb");
    let mut b_conf = a.conf("1.0.0");
    b_conf["name"] = json!(b_net);
    b_conf["subnetFile"] = json!(b_file);
    b_conf["delegate"] = json!({"bridge": "cni-fl2"});
    let ctr = Netns::new("flc");
    let a_conf = a.conf("1.0.0");
    a.call("ADD", &ctr).run(&a_conf).ok();
    a.call("ADD", &ctr).ifname("eth1").run(&b_conf).ok();
    assert_eq!(a.saved(), ["ctr1".to_string(), format!("ctr1@{b_net}")]);
    assert_eq!(mtu(&ctr, "eth1"), 1400);
    // DEL of the second network leaves the first one's attachment.
    a.call("DEL", &ctr).ifname("eth1").run(&b_conf).ok();
    assert_eq!(a.saved(), ["ctr1"]);
    assert_pod(&ctr, false);
    assert_eq!(ctr.links(), ["lo", "eth0"]);
    a.call("DEL", &ctr).run(&a_conf).ok();
    a.assert_clean(&ctr);
    assert_eq!(allocated_ips(&a.ipam_dir(), &b_net), Vec::<String>::new());
}

#[test]
fn bad_subnet_env_names_the_file_and_key_and_leaves_nothing() {
    let cases: [(Option<&str>, &str); 6] = [
        (None, "subnet.env"),
        (Some(""), "FLANNEL_NETWORK"),
        (
            Some(&LEASE_V4.replace("FLANNEL_MTU=1410\n", "")),
            "FLANNEL_MTU",
        ),
        (
            Some(&LEASE_V4.replace("FLANNEL_IPMASQ=true\n", "")),
            "FLANNEL_IPMASQ",
        ),
        (
            Some(&LEASE_V4.replace("10.244.3.1/24", "10.244.3.1")),
            "FLANNEL_SUBNET",
        ),
        (Some(&LEASE_V4.replace("1410", "14x0")), "FLANNEL_MTU"),
    ];
    for (lease, key) in cases {
        let node = Node::new("");
        match lease {
            Some(text) => node.lease(text),
            None => std::fs::remove_file(node.subnet_file()).unwrap(),
        }
        let ctr = Netns::new("flc");
        let (code, msg) = node.call("ADD", &ctr).run(&node.conf("1.0.0")).err();
        assert_eq!(code, 7, "{key}: {msg}");
        let file = node.subnet_file().to_string_lossy().into_owned();
        assert!(msg.contains(&file) && msg.contains(key), "{key}: {msg}");
        assert_only_lo(&ctr);
        assert_eq!(node.host.links(), ["lo"]);
        assert_eq!(node.saved(), Vec::<String>::new());
        node.call("DEL", &ctr).run(&node.conf("1.0.0")).ok();
    }
}

#[test]
fn bad_config_is_refused_before_anything_happens() {
    let node = Node::new(LEASE_V4);
    let ctr = Netns::new("flc");
    let cases = [
        ("delegate", json!({"name": "x"})),
        ("delegate", json!({"ipam": {"type": "static"}})),
        ("subnetFile", json!("../subnet.env")),
        ("dataDir", json!("relative")),
    ];
    for (key, value) in cases {
        let conf = with(node.conf("1.0.0"), key, value);
        let (code, msg) = node.call("ADD", &ctr).run(&conf).err();
        assert_eq!(code, 7, "{key}: {msg}");
        assert!(msg.contains(key), "{key}: {msg}");
        assert_only_lo(&ctr);
        assert_eq!(node.host.links(), ["lo"]);
        // The runtime's DEL of the failed ADD succeeds.
        node.call("DEL", &ctr).run(&conf).ok();
    }
    let (code, _) = node
        .call("ADD", &ctr)
        .id("a/../../b")
        .run(&node.conf("1.0.0"))
        .err();
    assert_ne!(code, 0);
    assert_eq!(node.saved(), Vec::<String>::new());
}

#[test]
fn check_gc_and_status_are_forwarded() {
    let node = Node::new(LEASE_V4);
    let ctr = Netns::new("flc");
    let conf = node.conf("1.1.0");
    let result = node.call("ADD", &ctr).run(&conf).ok();
    let with_prev = with(conf.clone(), "prevResult", result);
    node.call("CHECK", &ctr).run(&with_prev).ok();
    // CHECK reaches the delegate: a missing pod link is noticed.
    ctr.exec(&["ip", "link", "set", "eth0", "name", "eth9"]);
    node.call("CHECK", &ctr).run(&with_prev).err();
    ctr.exec(&["ip", "link", "set", "eth9", "name", "eth0"]);

    node.call("STATUS", &ctr).run(&conf).ok();
    // GC keeps a valid attachment...
    let gc = |valid: Value| {
        let c = with(conf.clone(), "cni.dev/valid-attachments", valid);
        node.call("GC", &ctr).id("").run(&c).ok();
    };
    gc(json!([{"containerID": "ctr1", "ifname": "eth0"}]));
    assert_eq!(node.saved(), ["ctr1"]);
    assert_eq!(node.ips(), ["10.244.3.2"]);
    // ...and drops a stale one's address and saved config.
    gc(json!([]));
    assert_eq!(node.saved(), Vec::<String>::new());
    assert_eq!(node.ips(), Vec::<String>::new());
    node.call("DEL", &ctr).run(&conf).ok();
    node.assert_clean(&ctr);

    // Without flanneld's lease the node cannot serve ADD: 50.
    std::fs::remove_file(node.subnet_file()).unwrap();
    let (code, msg) = node.call("STATUS", &ctr).run(&conf).err();
    assert_eq!(code, 50, "{msg}");
    assert!(msg.contains("subnet.env"), "{msg}");
}

/// The plugin dirs in CNI_PATH order: the first has the delegates used.
fn cni_path(reference_first: bool) -> String {
    let ours = rcni_bin_dir().to_string_lossy().into_owned();
    if reference_first {
        format!("{REFERENCE_DIR}:{ours}")
    } else {
        format!("{ours}:{REFERENCE_DIR}")
    }
}

/// rcni's flannel with the reference's bridge and host-local as the
/// delegates (found first in CNI_PATH) for ADD and rcni's for DEL, and the
/// other way round. The reference flannel plugin itself is not packaged
/// here (Debian's containernetworking-plugins lacks it); its DEL reads
/// `<dataDir>/<containerID>` and runs the delegate's DEL with it, which
/// the last round does by hand with the reference bridge.
#[test]
fn interop_with_the_reference_delegates() {
    require_reference();
    for reference_adds in [true, false] {
        let node = Node::new(LEASE_DUAL);
        let ctr = Netns::new("flc");
        let conf = node.conf("1.0.0");
        let mut add = node.call("ADD", &ctr);
        add.cni_path = cni_path(reference_adds);
        add.run(&conf).ok();
        assert_pod(&ctr, true);
        let mut del = node.call("DEL", &ctr);
        del.cni_path = cni_path(!reference_adds);
        del.run(&conf).ok();
        node.assert_clean(&ctr);
    }
    // The reference flannel's DEL: the saved file as the delegate's stdin.
    let node = Node::new(LEASE_V4);
    let ctr = Netns::new("flc");
    node.call("ADD", &ctr).run(&node.conf("1.0.0")).ok();
    let saved = std::fs::read(node.flannel_dir().join("ctr1")).unwrap();
    let mut del = Call::rcni("bridge", "DEL", &node.host, Some(&ctr)).reference();
    del.cni_path = cni_path(true);
    del.run_raw(&saved).ok();
    assert_only_lo(&ctr);
    assert_eq!(node.ips(), Vec::<String>::new());
}
