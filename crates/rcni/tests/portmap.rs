//! bridge + host-local + portmap, on both firewall backends: TCP and UDP
//! from an outside namespace and from the host itself reach the
//! container's servers; hostIP restricts the address; transit traffic is
//! not translated; DEL, CHECK and GC; interop with the reference.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

/// The shared [`World`] with an outside namespace that reaches the
/// host's ports.
struct PortmapHost {
    world: World,
    outside: Netns,
    /// iptables' legacy flavour first on the plugins' PATH, if set.
    legacy: Option<LegacyIptables>,
}

impl std::ops::Deref for PortmapHost {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl PortmapHost {
    /// host (203.0.113.1) ↔ outside (203.0.113.2); the host also owns
    /// 198.51.100.1 on lo; the outside routes 198.51.100.1 and the transit
    /// range 198.18.0.0/24 through the host.
    fn new() -> PortmapHost {
        let world = World::new("pm");
        let host = &world.host;
        let outside = outside_of(host);
        host.exec(&["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"]);
        outside.exec(&[
            "ip",
            "route",
            "add",
            "198.51.100.1/32",
            "via",
            "203.0.113.1",
        ]);
        outside.exec(&["ip", "route", "add", "198.18.0.0/24", "via", "203.0.113.1"]);
        PortmapHost {
            world,
            outside,
            legacy: None,
        }
    }

    /// The same, with iptables' legacy flavour first on the plugins' PATH.
    fn with_legacy_iptables() -> PortmapHost {
        PortmapHost {
            legacy: Some(LegacyIptables::new()),
            ..PortmapHost::new()
        }
    }

    /// A call of an rcni plugin on this host, with its PATH.
    fn call(&self, plugin: &str, command: &str, ctr: &Netns) -> Call {
        let call = Call::rcni(plugin, command, &self.host, Some(ctr));
        match &self.legacy {
            Some(legacy) => call.env("PATH", &legacy.path),
            None => call,
        }
    }

    fn bridge_conf(&self, version: &str) -> Value {
        json!({"cniVersion": version, "name": self.net, "type": "bridge", "bridge": "br-pm", "isGateway": true,
               "ipam": {"type": "host-local", "subnet": "10.96.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.data.path().to_str().unwrap()}})
    }

    /// ADD bridge then portmap as a runtime would; returns the portmap
    /// config (with prevResult) for CHECK and DEL.
    fn attach(
        &self,
        ctr: &Netns,
        version: &str,
        portmap: Value,
        reference_portmap: bool,
    ) -> (Value, Value) {
        let br = self.bridge_conf(version);
        let prev = Call::rcni("bridge", "ADD", &self.host, Some(ctr))
            .run(&br)
            .ok();
        let mut pm = portmap;
        pm["cniVersion"] = json!(version);
        pm["name"] = json!(self.net);
        pm["type"] = json!("portmap");
        pm["prevResult"] = prev.clone();
        let mut call = self.call("portmap", "ADD", ctr);
        if reference_portmap {
            call = call.reference();
        }
        let mut out = call.run(&pm).ok();
        // Debian's older reference still prints an empty "dns" in 1.0.0.
        if out.get("dns") == Some(&json!({})) {
            out.as_object_mut().unwrap().remove("dns");
        }
        assert_eq!(out, prev, "portmap passes the previous result on");
        (br, pm)
    }

    fn detach(&self, ctr: &Netns, br: &Value, pm: &Value, reference_portmap: bool) {
        let mut call = Call::rcni("portmap", "DEL", &self.host, Some(ctr));
        if reference_portmap {
            call = call.reference();
        }
        call.run(pm).ok();
        Call::rcni("bridge", "DEL", &self.host, Some(ctr))
            .run(br)
            .ok();
    }

    fn iptables_nat(&self) -> String {
        match self.legacy {
            Some(_) => self.host.exec(&["iptables-legacy-save", "-t", "nat"]),
            None => self.host.exec(&["iptables-save", "-t", "nat"]),
        }
    }

    fn nft_ruleset(&self) -> String {
        self.host.exec(&["nft", "list", "ruleset"])
    }
}

fn mappings(backend: &str, extra: Value) -> Value {
    let mut pm = json!({"backend": backend, "capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 8053, "containerPort": 53, "protocol": "udp"},
        {"hostPort": 9090, "containerPort": 90, "protocol": "tcp", "hostIP": "203.0.113.1"},
    ]}});
    for (k, v) in extra.as_object().unwrap() {
        pm[k] = v.clone();
    }
    pm
}

#[test]
fn tcp_and_udp_reach_the_container_on_both_backends() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let ctr = Netns::new("pc");
        let (br, pm) = w.attach(&ctr, "1.0.0", mappings(backend, json!({})), false);
        for port in [80, 53, 90] {
            serve(&ctr, port, "hello from the container", 20);
        }
        let from_outside = tcp_get(&w.outside, "203.0.113.1:8080");
        assert_eq!(
            from_outside.as_deref(),
            Some("hello from the container"),
            "{backend}: TCP from outside"
        );
        assert_eq!(
            udp_get(&w.outside, "203.0.113.1:8053").as_deref(),
            Some("hello from the container"),
            "{backend}: UDP"
        );
        assert_eq!(
            tcp_get(&w.host, "127.0.0.1:8080").as_deref(),
            Some("hello from the container"),
            "{backend}: localhost"
        );
        assert_eq!(
            tcp_get(&w.host, "203.0.113.1:8080").as_deref(),
            Some("hello from the container"),
            "{backend}: host address"
        );
        // hostIP: only that address.
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:9090").as_deref(),
            Some("hello from the container"),
            "{backend}: hostIP"
        );
        assert_eq!(
            tcp_get(&w.outside, "198.51.100.1:9090"),
            None,
            "{backend}: hostIP mapping answered on another address"
        );
        assert!(
            tcp_get(&w.outside, "198.51.100.1:8080").is_some(),
            "{backend}: a local address without hostIP"
        );
        // Transit traffic (not addressed to the node) is never DNAT'd.
        assert_eq!(
            tcp_get(&w.outside, "198.18.0.1:8080"),
            None,
            "{backend}: transit traffic was translated"
        );
        assert_eq!(
            w.host
                .exec(&["sysctl", "-n", "net.ipv4.conf.br-pm.route_localnet"])
                .trim(),
            "1"
        );

        Call::rcni("portmap", "CHECK", &w.host, Some(&ctr))
            .run(&pm)
            .ok();
        w.detach(&ctr, &br, &pm, false);
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:8080"),
            None,
            "{backend}: still mapped after DEL"
        );
        assert!(
            !w.iptables_nat().contains("CNI-DN-"),
            "{backend}: iptables chain left"
        );
        assert!(
            !w.nft_ruleset().contains("comment \"ctr1\""),
            "{backend}: nft rules left"
        );
        let check = Call::rcni("portmap", "CHECK", &w.host, Some(&ctr)).run(&pm);
        assert_ne!(check.code, 0, "{backend}: CHECK passed with the rules gone");
    }
}

#[test]
fn layout_is_the_references() {
    let w = PortmapHost::new();
    let ctr = Netns::new("pc");
    let (br, pm) = w.attach(&ctr, "1.0.0", mappings("iptables", json!({})), false);
    let nat = w.iptables_nat();
    for needle in [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ",
        "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
        "--set-xmark 0x2000/0x2000",
        "--dports 8080,9090",
        "-j DNAT --to-destination 10.96.0.2:80",
    ] {
        assert!(nat.contains(needle), "missing {needle:?} in\n{nat}");
    }
    w.detach(&ctr, &br, &pm, false);
    let nat = w.iptables_nat();
    assert!(
        nat.contains("-j CNI-HOSTPORT-DNAT"),
        "the shared chains stay, as in the reference"
    );
    assert!(!nat.contains("CNI-DN-"));
}

#[test]
fn del_without_mappings_in_the_config_still_cleans_up() {
    let w = PortmapHost::new();
    let ctr = Netns::new("pc");
    let (br, mut pm) = w.attach(&ctr, "1.0.0", mappings("iptables", json!({})), false);
    pm["runtimeConfig"] = json!({});
    Call::rcni("portmap", "DEL", &w.host, Some(&ctr))
        .run(&pm)
        .ok();
    assert!(!w.iptables_nat().contains("CNI-DN-"));
    Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
        .run(&br)
        .ok();
}

/// DEL reads and deletes nftables rules over netlink: it needs no `nft`
/// program (nor iptables) on PATH, and leaves nothing.
#[test]
fn nft_del_needs_no_nft_program() {
    let w = PortmapHost::new();
    let ctr = Netns::new("pc");
    let (br, pm) = w.attach(&ctr, "1.0.0", mappings("nftables", json!({})), false);
    assert!(w.nft_ruleset().contains("dnat to"));
    Call::rcni("portmap", "DEL", &w.host, Some(&ctr))
        .env("PATH", "/nonexistent")
        .run(&pm)
        .ok();
    let ruleset = w.nft_ruleset();
    assert!(!ruleset.contains("dnat to"), "{ruleset}");
    assert!(!ruleset.contains("masquerade comment"), "{ruleset}");
    Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
        .run(&br)
        .ok();
}

/// GC of one network removes the mappings of its attachments that are not
/// valid any more, and leaves those of another network alone.
#[test]
fn gc_removes_stale_mappings() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let other_net = unique("pmo");
        let br = w.bridge_conf("1.1.0");
        let attachments = [
            ("keep", w.net.clone(), 8080),
            ("gone", w.net.clone(), 8081),
            ("other", other_net.clone(), 8082),
        ];
        let mut attached = Vec::new();
        for (id, net, port) in &attachments {
            let ns = Netns::new("pg");
            let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ns))
                .id(id)
                .run(&br)
                .ok();
            let mut pm = mappings(backend, json!({}));
            pm["cniVersion"] = json!("1.1.0");
            pm["name"] = json!(net);
            pm["type"] = json!("portmap");
            pm["prevResult"] = prev;
            pm["runtimeConfig"]["portMappings"] =
                json!([{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]);
            Call::rcni("portmap", "ADD", &w.host, Some(&ns))
                .id(id)
                .run(&pm)
                .ok();
            serve(&ns, 80, id, 10);
            attached.push((ns, pm));
        }
        let reachable = |port: u16| tcp_get(&w.outside, &format!("203.0.113.1:{port}"));
        let mut gc = json!({"cniVersion": "1.1.0", "name": w.net, "type": "portmap", "backend": backend,
            "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]});
        let mut call = Call::rcni("portmap", "GC", &w.host, None);
        call.container_id.clear();
        call.ifname.clear();
        call.run(&gc).ok();
        assert_eq!(reachable(8080).as_deref(), Some("keep"), "{backend}");
        assert_eq!(
            reachable(8081),
            None,
            "{backend}: the stale mapping is kept"
        );
        assert_eq!(reachable(8082).as_deref(), Some("other"), "{backend}");

        gc["cni.dev/valid-attachments"] = json!([]);
        call.run(&gc).ok();
        assert_eq!(reachable(8080), None, "{backend}");
        assert_eq!(
            reachable(8082).as_deref(),
            Some("other"),
            "{backend}: another network's mapping went"
        );
        let (nat, nft) = (w.iptables_nat(), w.nft_ruleset());
        assert!(
            !nat.contains("dports 8080") && !nat.contains("dports 8081"),
            "{nat}"
        );
        assert!(
            !nft.contains("\"keep\"") && !nft.contains("\"gone\""),
            "{nft}"
        );

        for ((id, _, _), (ns, pm)) in attachments.iter().zip(&attached) {
            Call::rcni("portmap", "DEL", &w.host, Some(ns))
                .id(id)
                .run(pm)
                .ok();
            Call::rcni("bridge", "DEL", &w.host, Some(ns))
                .id(id)
                .run(&br)
                .ok();
        }
        let (nat, nft) = (w.iptables_nat(), w.nft_ruleset());
        assert!(!nat.contains("CNI-DN-"), "{backend}: {nat}");
        let left = attachments
            .iter()
            .any(|(id, _, _)| nft.contains(&format!("comment \"{id}\"")));
        assert!(
            !left && !nft.contains("rcni_attachments"),
            "{backend}: {nft}"
        );
    }
}

#[test]
fn interop_with_the_reference() {
    require_reference();
    for reference_adds in [true, false] {
        let w = PortmapHost::new();
        let ctr = Netns::new("pc");
        // Debian's reference (1.1.1) speaks up to 1.0.0 and only iptables.
        let mut maps = mappings("iptables", json!({}));
        maps.as_object_mut().unwrap().remove("backend");
        let (br, pm) = w.attach(&ctr, "1.0.0", maps, reference_adds);
        serve(&ctr, 80, "hi", 10);
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:8080").as_deref(),
            Some("hi")
        );
        w.detach(&ctr, &br, &pm, !reference_adds);
        assert!(
            !w.iptables_nat().contains("CNI-DN-"),
            "chains left:\n{}",
            w.iptables_nat()
        );
        assert_eq!(tcp_get(&w.outside, "203.0.113.1:8080"), None);
    }
}

#[test]
fn bad_config_leaves_nothing() {
    let w = PortmapHost::new();
    let ctr = Netns::new("pc");
    let br = w.bridge_conf("1.0.0");
    let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ctr))
        .run(&br)
        .ok();
    let before = w.iptables_nat();
    for (maps, needle) in [
        (
            json!([{"hostPort": 65536, "containerPort": 80, "protocol": "tcp"}]),
            "hostPort",
        ),
        (
            json!([{"hostPort": 80, "containerPort": 80, "protocol": "gre"}]),
            "protocol",
        ),
    ] {
        let pm = json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap", "prevResult": prev,
            "runtimeConfig": {"portMappings": maps}});
        let (code, msg) = Call::rcni("portmap", "ADD", &w.host, Some(&ctr))
            .run(&pm)
            .err();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert_eq!(
            w.iptables_nat()
                .lines()
                .filter(|l| l.starts_with('-'))
                .count(),
            before.lines().filter(|l| l.starts_with('-')).count()
        );
    }
    let chained_only = json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap",
        "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "tcp"}]}});
    let (_, msg) = Call::rcni("portmap", "ADD", &w.host, Some(&ctr))
        .run(&chained_only)
        .err();
    assert!(msg.contains("chained"), "{msg}");
    Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
        .run(&br)
        .ok();
}

#[test]
fn stale_udp_flows_are_flushed_on_add() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let ctr = Netns::new("pc");
        // Connection tracking only runs in a namespace once a rule needs
        // it; make it run, as it does on any real node.
        w.host.exec(&[
            "iptables",
            "-A",
            "INPUT",
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID",
            "-j",
            "DROP",
        ]);
        // A flow to the host's port 8053 exists before the mapping does.
        assert_eq!(udp_get_from(&w.outside, 40053, "203.0.113.1:8053"), None);
        let (br, pm) = w.attach(&ctr, "1.0.0", mappings(backend, json!({})), false);
        serve(&ctr, 53, "fresh", 10);
        assert_eq!(
            udp_get_from(&w.outside, 40053, "203.0.113.1:8053").as_deref(),
            Some("fresh"),
            "{backend}: the stale conntrack entry kept the old path"
        );
        w.detach(&ctr, &br, &pm, false);
    }
}

#[test]
fn deleting_one_container_keeps_the_others_mappings() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let (a, b) = (Netns::new("pa"), Netns::new("pb"));
        let br = w.bridge_conf("1.0.0");
        let mut confs = Vec::new();
        for (id, ns, port) in [("a", &a, 8080), ("b", &b, 8081)] {
            let prev = Call::rcni("bridge", "ADD", &w.host, Some(ns))
                .id(id)
                .run(&br)
                .ok();
            let pm = json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap", "backend": backend, "prevResult": prev,
                "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}});
            Call::rcni("portmap", "ADD", &w.host, Some(ns))
                .id(id)
                .run(&pm)
                .ok();
            confs.push(pm);
        }
        serve(&a, 80, "a", 10);
        serve(&b, 80, "b", 10);
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:8081").as_deref(),
            Some("b")
        );
        Call::rcni("portmap", "DEL", &w.host, Some(&a))
            .id("a")
            .run(&confs[0])
            .ok();
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:8080"),
            None,
            "{backend}: a still mapped"
        );
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:8081").as_deref(),
            Some("b"),
            "{backend}: b lost its mapping"
        );
        Call::rcni("portmap", "DEL", &w.host, Some(&b))
            .id("b")
            .run(&confs[1])
            .ok();
    }
}

#[test]
fn a_backend_that_is_not_installed_is_refused() {
    let w = PortmapHost::new();
    let ctr = Netns::new("pc");
    let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ctr))
        .run(&w.bridge_conf("1.0.0"))
        .ok();
    let pm = json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap", "backend": "nftables", "prevResult": prev,
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}});
    // No nft (nor anything else) on PATH.
    let (code, msg) = Call::rcni("portmap", "ADD", &w.host, Some(&ctr))
        .env("PATH", "/nonexistent")
        .run(&pm)
        .err();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("nftables"), "{msg}");
    Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
        .run(&w.bridge_conf("1.0.0"))
        .ok();
}

/// The acceptance budget: one ADD of bridge + host-local + portmap with two
/// mappings runs at most one firewall program per table (iptables) or none
/// at all (nftables: the rules go over netlink). Measured on a node where
/// the shared chains already exist (the first pod sets them up).
#[test]
fn firewall_programs_per_add() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let (first, second) = (Netns::new("pf"), Netns::new("ps"));
        let pm_conf = |prev: Value, base: u16| {
            json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap", "backend": backend, "prevResult": prev,
                "runtimeConfig": {"portMappings": [{"hostPort": base, "containerPort": 80, "protocol": "tcp"},
                                                   {"hostPort": base + 1, "containerPort": 443, "protocol": "tcp"}]}})
        };
        let mut br = w.bridge_conf("1.0.0");
        br["ipMasq"] = json!(true);
        br["ipMasqBackend"] = json!(backend);
        let prev = Call::rcni("bridge", "ADD", &w.host, Some(&first))
            .id("first")
            .run(&br)
            .ok();
        let first_pm = pm_conf(prev, 8080);
        Call::rcni("portmap", "ADD", &w.host, Some(&first))
            .id("first")
            .run(&first_pm)
            .ok();

        let (reply, bridge_progs) = Call::rcni("bridge", "ADD", &w.host, Some(&second))
            .id("second")
            .run_traced(&br);
        let prev = reply.ok();
        let second_pm = pm_conf(prev, 9080);
        let (reply, portmap_progs) = Call::rcni("portmap", "ADD", &w.host, Some(&second))
            .id("second")
            .run_traced(&second_pm);
        reply.ok();
        let firewall = |progs: &[String]| -> Vec<String> {
            progs
                .iter()
                .filter(|p| p.starts_with("ip") && p.contains("tables") || *p == "nft")
                .cloned()
                .collect()
        };
        let (b, p) = (firewall(&bridge_progs), firewall(&portmap_progs));
        match backend {
            "iptables" => {
                assert!(
                    b.iter()
                        .filter(|x| x.contains("restore") || x.contains("save"))
                        .count()
                        <= 1,
                    "bridge ran {b:?}"
                );
                assert_eq!(p, ["iptables-restore"], "portmap ran {p:?}");
            }
            _ => {
                assert!(b.is_empty(), "bridge ran {b:?}");
                assert!(p.is_empty(), "portmap ran {p:?}");
            }
        }
        serve(&second, 443, "tls-ish", 5);
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:9081").as_deref(),
            Some("tls-ish")
        );
        for (id, ns, pm) in [
            ("first", &first, &first_pm),
            ("second", &second, &second_pm),
        ] {
            Call::rcni("portmap", "DEL", &w.host, Some(ns))
                .id(id)
                .run(pm)
                .ok();
            Call::rcni("bridge", "DEL", &w.host, Some(ns))
                .id(id)
                .run(&br)
                .ok();
        }
        let (nat, nft) = (w.iptables_nat(), w.nft_ruleset());
        assert!(
            !nat.contains("CNI-DN-") && !nat.contains("name: "),
            "{backend}: {nat}"
        );
        assert!(
            !nft.contains("comment \"first\"") && !nft.contains("comment \"second\""),
            "{backend}: {nft}"
        );
    }
}

/// With iptables' nf_tables flavour (Debian's default) a DEL removes the
/// iptables rules over netlink and runs no program, whatever it carries.
/// The legacy flavour cannot be asked without a process: a DEL reads both
/// families' tables and rewrites the one that holds the rules. Every way
/// leaves nothing, and the shared chains stay.
#[test]
fn del_reads_the_table_only_when_it_must() {
    let none: &[&str] = &[];
    let reads: &[&str] = &["iptables-save", "iptables-restore", "ip6tables-save"];
    let cases: [(bool, &str, &[&str]); 6] = [
        (false, "same", none),
        (false, "other", none),
        (false, "none", none),
        (true, "same", reads),
        (true, "other", reads),
        (true, "none", reads),
    ];
    for (legacy, del_mappings, programs) in cases {
        let w = if legacy {
            PortmapHost::with_legacy_iptables()
        } else {
            PortmapHost::new()
        };
        let ctr = Netns::new("pd");
        let maps = mappings("iptables", json!({}));
        let (br, pm) = w.attach(&ctr, "1.0.0", maps, false);
        assert!(w.iptables_nat().contains("CNI-DN-"));
        let mut del = pm.clone();
        match del_mappings {
            "other" => {
                del["runtimeConfig"]["portMappings"] =
                    json!([{"hostPort": 7000, "containerPort": 70, "protocol": "tcp"}])
            }
            "none" => {
                del.as_object_mut().unwrap().remove("runtimeConfig");
            }
            _ => {}
        }
        let (reply, execs) = w.call("portmap", "DEL", &ctr).run_traced(&del);
        reply.ok();
        // The first two are the test's `ip netns exec` and the plugin.
        let what = format!("legacy {legacy}, {del_mappings}");
        assert_eq!(&execs[2..], programs, "{what}: {execs:?}");
        let nat = w.iptables_nat();
        assert!(
            !nat.contains("CNI-DN-") && !nat.contains("dnat name"),
            "{what}: {nat}"
        );
        // The shared chains stay, as the reference leaves them.
        assert!(nat.contains(":CNI-HOSTPORT-DNAT"), "{what}: {nat}");
        Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
            .run(&br)
            .ok();
        assert_only_lo(&ctr);
        assert!(allocated_ips(w.data.path(), &w.net).is_empty());
    }
}

/// What a runtime checks after the last DEL of a pod: no rule that names
/// the container, no address taken, no veth on the host, an empty
/// container.
fn assert_nothing_left(w: &PortmapHost, ctr: &Netns, what: &str) {
    assert!(
        !w.iptables_nat().contains("ctr1"),
        "{what}: iptables rules left:\n{}",
        w.iptables_nat()
    );
    assert!(
        !w.nft_ruleset().contains("ctr1"),
        "{what}: nft rules left:\n{}",
        w.nft_ruleset()
    );
    assert!(
        allocated_ips(w.data.path(), &w.net).is_empty(),
        "{what}: IP left"
    );
    assert!(
        !w.host.links().iter().any(|l| l.starts_with("veth")),
        "{what}: veth left"
    );
    assert_only_lo(ctr);
}

/// containerd's CRI sends the mappings with Go's field names
/// (`HostPort`, `Protocol`, an empty `HostIP`) and gives every pod three
/// DELs: with the netns and the cached result, then twice with neither,
/// still carrying the mappings.
#[test]
fn containerd_capitalised_mappings_and_its_three_dels() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let ctr = Netns::new("pc");
        let cri = json!({"backend": backend, "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]}});
        let (br, pm) = w.attach(&ctr, "1.0.0", cri, false);
        serve(&ctr, 80, "hello from the pod", 10);
        for (from, addr) in [
            (&w.outside, "203.0.113.1:18080"),
            (&w.host, "127.0.0.1:18080"),
        ] {
            assert_eq!(
                tcp_get(from, addr).as_deref(),
                Some("hello from the pod"),
                "{backend}: {addr}"
            );
        }
        w.detach(&ctr, &br, &pm, false);
        let mut gone = pm.clone();
        gone.as_object_mut().unwrap().remove("prevResult");
        for _ in 0..2 {
            Call::rcni("portmap", "DEL", &w.host, None).run(&gone).ok();
            Call::rcni("bridge", "DEL", &w.host, None).run(&br).ok();
        }
        assert_eq!(tcp_get(&w.outside, "203.0.113.1:18080"), None, "{backend}");
        assert_nothing_left(&w, &ctr, backend);
    }
}

/// A DEL needs neither the mappings nor prevResult nor args, nor values
/// that ADD would refuse: malformed, they are ignored (with a warning) and
/// everything the ADD made still goes, so the DELs after it in a list run.
#[test]
fn del_with_malformed_optional_sections_removes_everything() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let ctr = Netns::new("pc");
        let mut br = w.bridge_conf("1.0.0");
        br["ipMasq"] = json!(true);
        br["ipMasqBackend"] = json!(backend);
        let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ctr))
            .run(&br)
            .ok();
        let mut pm = mappings(backend, json!({}));
        for (k, v) in [
            ("cniVersion", json!("1.0.0")),
            ("name", json!(w.net)),
            ("type", json!("portmap")),
            ("prevResult", prev),
        ] {
            pm[k] = v;
        }
        Call::rcni("portmap", "ADD", &w.host, Some(&ctr))
            .run(&pm)
            .ok();
        assert!(w.iptables_nat().contains("ctr1") || w.nft_ruleset().contains("ctr1"));

        pm["runtimeConfig"] = json!({"portMappings": [{"hostPort": "x", "protocol": 5}]});
        pm["prevResult"] = json!("garbage");
        pm["args"] = json!(5);
        let reply = Call::rcni("portmap", "DEL", &w.host, Some(&ctr)).run(&pm);
        reply.ok();
        assert!(
            reply.stderr.contains("hostPort"),
            "{backend}: {}",
            reply.stderr
        );
        br["runtimeConfig"] = json!("garbage");
        br["prevResult"] = json!([1]);
        br["args"] = json!({"cni": {"mac": 7}});
        br["mtu"] = json!(-1);
        br["vlanTrunk"] = json!([{"minID": 20, "maxID": 10}]);
        Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
            .run(&br)
            .ok();
        assert_nothing_left(&w, &ctr, backend);
    }
}

/// Config strings that would start rules or tables of their own in the
/// iptables-restore or nft script (line breaks, `;`, a path in the mark
/// chain) are refused with code 7 naming the field, and leave nothing:
/// no extra rule in the filter table, no extra nft table, no file outside
/// /run/rcni. A token with spaces stays one argument.
#[test]
fn config_strings_cannot_inject_rules() {
    let w = PortmapHost::new();
    let ctr = Netns::new("pi");
    // The mark chain must exist for a restore naming it to go through.
    w.host.exec(&["iptables", "-t", "nat", "-N", "X"]);
    let escape_name = unique("rcni-escape");
    let escape = format!("/run/{escape_name}");
    let cases = [
        (
            "iptables",
            "conditionsV4",
            json!(["-s 10.250.0.0/16\nCOMMIT\n*filter\n-A INPUT -s 10.250.66.66/32 -j ACCEPT\nCOMMIT\n*nat"]),
            "conditionsV4[0]",
        ),
        (
            "iptables",
            "conditionsV4",
            json!(["-s", "10.250.0.0/16\nCOMMIT\n*filter\n-A INPUT -s 10.250.66.66/32 -j ACCEPT\nCOMMIT\n*nat"]),
            "conditionsV4[1]",
        ),
        (
            "iptables",
            "externalSetMarkChain",
            json!(format!(
                "X\n-A INPUT -s 10.250.66.66/32 -j ACCEPT\n#/../../../{escape_name}/x"
            )),
            "externalSetMarkChain",
        ),
        (
            "nftables",
            "conditionsV4",
            json!(["ip saddr 10.250.0.0/16 ; add table inet relinjected ; #"]),
            "conditionsV4[0]",
        ),
        (
            "nftables",
            "conditionsV6",
            json!(["ip6 saddr fd00::/8\nadd table inet relinjected\n"]),
            "conditionsV6[0]",
        ),
    ];
    let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ctr))
        .run(&w.bridge_conf("1.0.0"))
        .ok();
    for (backend, key, value, field) in cases {
        let mut pm = mappings(backend, json!({}));
        pm[key] = value;
        pm["cniVersion"] = json!("1.0.0");
        pm["name"] = json!(w.net);
        pm["type"] = json!("portmap");
        pm["prevResult"] = prev.clone();
        let (code, msg) = Call::rcni("portmap", "ADD", &w.host, Some(&ctr))
            .run(&pm)
            .err();
        assert_eq!(code, 7, "{backend} {key}: {msg}");
        assert!(msg.contains(field), "{backend} {key}: {msg}");
        // The runtime's DEL of the failed ADD succeeds.
        Call::rcni("portmap", "DEL", &w.host, Some(&ctr))
            .run(&pm)
            .ok();
        let all = w.host.exec(&["iptables-save"]);
        assert!(!all.contains("10.250.66.66"), "{all}");
        let nft = w.nft_ruleset();
        assert!(!nft.contains("relinjected"), "{nft}");
        assert!(!std::path::Path::new(&escape).exists());
        assert!(!w.iptables_nat().contains("CNI-DN-"));
        assert!(!nft.contains("comment \"ctr1\""), "{nft}");
    }
    Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
        .run(&w.bridge_conf("1.0.0"))
        .ok();
    // A token with spaces is one argument, as it is for the reference.
    let ctr = Netns::new("pj");
    let pm = mappings(
        "iptables",
        json!({"conditionsV4": ["-m", "comment", "--comment", "two \"quoted\" words"]}),
    );
    let (br, pm) = w.attach(&ctr, "1.0.0", pm, false);
    let nat = w.iptables_nat();
    assert!(
        nat.contains(r#"--comment "two \"quoted\" words" -j CNI-DN-"#),
        "{nat}"
    );
    w.detach(&ctr, &br, &pm, false);
    assert!(!w.iptables_nat().contains("CNI-DN-"));
}

/// Many ADDs at once and then many DELs at once on nftables (the way a
/// node starts and stops pods): every call succeeds and afterwards the
/// table holds no rule of those containers and no attachment chain.
#[test]
fn concurrent_adds_and_dels_leave_nothing_on_nftables() {
    const PODS: usize = 40;
    let w = PortmapHost::new();
    let ctr = Netns::new("pk");
    let conf = |i: usize| {
        json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap", "backend": "nftables",
            "prevResult": {"cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "sandbox": ctr.path()}],
                "ips": [{"interface": 0, "address": format!("10.97.{}.{}/16", i / 200, i % 200 + 2)}]},
            "runtimeConfig": {"portMappings": [{"hostPort": 20000 + i, "containerPort": 80, "protocol": "tcp"}]}})
    };
    for round in 0..3 {
        for command in ["ADD", "DEL"] {
            std::thread::scope(|s| {
                for i in 0..PODS {
                    let call =
                        Call::rcni("portmap", command, &w.host, Some(&ctr)).id(&format!("k{i}"));
                    let conf = conf(i);
                    s.spawn(move || call.run(&conf).ok());
                }
            });
            if command == "ADD" {
                let nft = w.nft_ruleset();
                assert_eq!(
                    nft.matches("dnat to 10.97.").count(),
                    PODS,
                    "round {round}: {nft}"
                );
            }
        }
        let nft = w.nft_ruleset();
        assert!(!nft.contains("rcni_attachments"), "round {round}: {nft}");
        assert!(!nft.contains("comment \"k"), "round {round}: {nft}");
    }
}

/// Container IDs longer than a firewall comment (valid by the spec):
/// bridge with ipMasq and portmap work on both backends, GC keeps them
/// while they are valid, and DEL leaves nothing.
#[test]
fn container_ids_longer_than_a_comment_work() {
    for backend in ["iptables", "nftables"] {
        let w = PortmapHost::new();
        let ctr = Netns::new("pl");
        let id = format!("L{}", "x".repeat(1099));
        let mut br = w.bridge_conf("1.1.0");
        br["ipMasq"] = json!(true);
        br["ipMasqBackend"] = json!(backend);
        let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ctr))
            .id(&id)
            .run(&br)
            .ok();
        let mut pm = mappings(backend, json!({}));
        pm["cniVersion"] = json!("1.1.0");
        pm["name"] = json!(w.net);
        pm["type"] = json!("portmap");
        pm["prevResult"] = prev.clone();
        Call::rcni("portmap", "ADD", &w.host, Some(&ctr))
            .id(&id)
            .run(&pm)
            .ok();
        serve(&ctr, 80, "long", 10);
        let valid = json!([{"containerID": id, "ifname": "eth0"}]);
        for (plugin, conf) in [("portmap", &pm), ("bridge", &br)] {
            let mut gc = conf.clone();
            gc.as_object_mut().unwrap().remove("prevResult");
            gc["cni.dev/valid-attachments"] = valid.clone();
            let mut call = Call::rcni(plugin, "GC", &w.host, None);
            call.container_id.clear();
            call.ifname.clear();
            call.run(&gc).ok();
        }
        assert_eq!(
            tcp_get(&w.outside, "203.0.113.1:8080").as_deref(),
            Some("long"),
            "{backend}: GC dropped a valid long-ID mapping"
        );
        let (nat, nft) = (w.iptables_nat(), w.nft_ruleset());
        match backend {
            "iptables" => assert!(
                nat.contains("-A POSTROUTING -s 10.96.0.2/32") && nat.contains("CNI-DN-"),
                "{nat}"
            ),
            _ => assert!(nft.contains("id: Lxxx") && nft.contains("dnat to"), "{nft}"),
        }
        Call::rcni("portmap", "DEL", &w.host, Some(&ctr))
            .id(&id)
            .run(&pm)
            .ok();
        Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
            .id(&id)
            .run(&with(br, "prevResult", prev))
            .ok();
        let (nat, nft) = (w.iptables_nat(), w.nft_ruleset());
        assert!(
            !nat.contains("CNI-DN-") && !nat.contains("name: "),
            "{backend}: {nat}"
        );
        assert!(
            !nft.contains("xxxx") && !nft.contains("rcni_attachments"),
            "{backend}: {nft}"
        );
        assert!(allocated_ips(w.data.path(), &w.net).is_empty());
    }
}

/// A firewall flush of the nat built-in chains drops the jumps into the
/// shared chains; the next ADD (iptables) puts them back, as the
/// reference does, so host ports work again.
#[test]
fn add_after_a_nat_flush_restores_the_entry_jumps() {
    let w = PortmapHost::new();
    let (first, second) = (Netns::new("pf"), Netns::new("ps"));
    let br = w.bridge_conf("1.0.0");
    let mut attached = Vec::new();
    for (id, ns, port) in [("first", &first, 8080), ("second", &second, 8081)] {
        let prev = Call::rcni("bridge", "ADD", &w.host, Some(ns))
            .id(id)
            .run(&br)
            .ok();
        let pm = json!({"cniVersion": "1.0.0", "name": w.net, "type": "portmap", "backend": "iptables", "prevResult": prev,
            "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}});
        Call::rcni("portmap", "ADD", &w.host, Some(ns))
            .id(id)
            .run(&pm)
            .ok();
        attached.push((id, ns, pm));
        if id == "first" {
            for chain in ["PREROUTING", "OUTPUT", "POSTROUTING"] {
                w.host.exec(&["iptables", "-t", "nat", "-F", chain]);
            }
        }
    }
    serve(&second, 80, "second", 10);
    assert_eq!(
        tcp_get(&w.outside, "203.0.113.1:8081").as_deref(),
        Some("second")
    );
    assert_eq!(
        tcp_get(&w.host, "127.0.0.1:8081").as_deref(),
        Some("second"),
        "hairpin from the host needs the masquerade jump"
    );
    let nat = w.iptables_nat();
    for needle in [
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-j CNI-HOSTPORT-MASQ",
    ] {
        assert_eq!(nat.matches(needle).count(), 1, "{needle}: {nat}");
    }
    for (id, ns, pm) in &attached {
        Call::rcni("portmap", "DEL", &w.host, Some(ns))
            .id(id)
            .run(pm)
            .ok();
        Call::rcni("bridge", "DEL", &w.host, Some(ns))
            .id(id)
            .run(&br)
            .ok();
    }
    assert!(!w.iptables_nat().contains("CNI-DN-"));
}

/// On nftables the entry rules are shared by all networks: an ADD on
/// another network must not drop this network's conditionsV4.
#[test]
fn nft_conditions_survive_another_networks_add() {
    let w = PortmapHost::new();
    let (a, b) = (Netns::new("pa"), Netns::new("pb"));
    let br = w.bridge_conf("1.0.0");
    let mut attached = Vec::new();
    // Network A only maps traffic from 192.0.2.0/24, not from the outside
    // namespace (203.0.113.2); network B has no conditions.
    for (id, ns, net, port, conditions) in [
        (
            "a",
            &a,
            w.net.clone(),
            8080,
            json!(["ip saddr 192.0.2.0/24"]),
        ),
        ("b", &b, unique("pmb"), 8081, json!(null)),
    ] {
        let prev = Call::rcni("bridge", "ADD", &w.host, Some(ns))
            .id(id)
            .run(&br)
            .ok();
        let mut pm = json!({"cniVersion": "1.0.0", "name": net, "type": "portmap", "backend": "nftables", "prevResult": prev,
            "runtimeConfig": {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}});
        if !conditions.is_null() {
            pm["conditionsV4"] = conditions;
        }
        Call::rcni("portmap", "ADD", &w.host, Some(ns))
            .id(id)
            .run(&pm)
            .ok();
        serve(ns, 80, id, 10);
        attached.push((id, ns, pm));
    }
    assert_eq!(
        tcp_get(&w.outside, "203.0.113.1:8081").as_deref(),
        Some("b")
    );
    assert_eq!(
        tcp_get(&w.outside, "203.0.113.1:8080"),
        None,
        "network a's condition was dropped: {}",
        w.nft_ruleset()
    );
    for (id, ns, pm) in &attached {
        Call::rcni("portmap", "DEL", &w.host, Some(ns))
            .id(id)
            .run(pm)
            .ok();
        Call::rcni("bridge", "DEL", &w.host, Some(ns))
            .id(id)
            .run(&br)
            .ok();
    }
    let nft = w.nft_ruleset();
    assert!(
        !nft.contains("dnat to") && !nft.contains("rcni_attachments"),
        "{nft}"
    );
}
