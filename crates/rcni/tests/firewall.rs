//! bridge + host-local + firewall, on iptables and nftables: the accept
//! rules and the admin chain as a user would list them, CHECK, DEL (also
//! without prevResult or netns) and GC; `ingressPolicy` observed with
//! traffic between two bridges' containers; a user's admin rules survive
//! and apply; interop with the reference (iptables) both ways; bad input.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

const BACKENDS: [&str; 2] = ["iptables", "nftables"];
const ACCEPT_SRC: &str = "-A CNI-FORWARD -s 10.97.1.2/32 -j ACCEPT";
const ACCEPT_DST: &str =
    "-A CNI-FORWARD -d 10.97.1.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT";
const FORWARD_JUMP: &str =
    "-A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD";

/// A throwaway host with up to two bridge networks (`a`: 10.97.1.0/24 on
/// br-a, `b`: 10.97.2.0/24 on br-b).
/// The shared [`World`] with the environment of every plugin call.
struct FirewallHost {
    world: World,
    /// Environment of every plugin call (a private system bus).
    env: Vec<(String, String)>,
}

impl std::ops::Deref for FirewallHost {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

struct Attached {
    ctr: Netns,
    id: String,
    bridge: Value,
    firewall: Value,
}

impl FirewallHost {
    fn new() -> FirewallHost {
        FirewallHost {
            world: World::new("fw"),
            // No system bus unless a test brings its own: a firewalld of
            // the machine's is never touched.
            env: vec![(
                "DBUS_SYSTEM_BUS_ADDRESS".into(),
                "unix:path=/nonexistent/rcni-test-no-bus".into(),
            )],
        }
    }

    fn bridge_conf(&self, version: &str, net: char) -> Value {
        let subnet = if net == 'a' {
            "10.97.1.0/24"
        } else {
            "10.97.2.0/24"
        };
        json!({"cniVersion": version, "name": format!("{}{net}", self.net), "type": "bridge",
               "bridge": format!("br-{net}"), "isGateway": true,
               "ipam": {"type": "host-local", "subnet": subnet, "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.data.path().to_str().unwrap()}})
    }

    /// bridge ADD then firewall ADD (by rcni or the reference) of a new
    /// container on network `net`, as a runtime chains them.
    fn attach(&self, version: &str, net: char, firewall: Value, reference: bool) -> Attached {
        let ctr = Netns::new("fc");
        let id = unique("ctr");
        let bridge = self.bridge_conf(version, net);
        let mut prev = Call::rcni("bridge", "ADD", &self.host, Some(&ctr))
            .id(&id)
            .run(&bridge)
            .ok();
        // An empty "dns" (printed by some for 0.4.0) is no difference.
        if prev.get("dns") == Some(&json!({})) {
            prev.as_object_mut().unwrap().remove("dns");
        }
        let mut fw = firewall;
        fw["cniVersion"] = json!(version);
        fw["name"] = bridge["name"].clone();
        fw["type"] = json!("firewall");
        fw["prevResult"] = prev.clone();
        let mut call = self.with_env(Call::rcni("firewall", "ADD", &self.host, Some(&ctr)).id(&id));
        if reference {
            call = call.reference();
        }
        let mut out = call.run(&fw).ok();
        if out.get("dns") == Some(&json!({})) {
            out.as_object_mut().unwrap().remove("dns");
        }
        assert_eq!(out, prev, "firewall passes the previous result on");
        Attached {
            ctr,
            id,
            bridge,
            firewall: fw,
        }
    }

    fn with_env(&self, mut call: Call) -> Call {
        for (k, v) in &self.env {
            call = call.env(k, v);
        }
        call
    }

    fn call(&self, command: &str, a: &Attached) -> Call {
        self.with_env(Call::rcni("firewall", command, &self.host, Some(&a.ctr)).id(&a.id))
    }

    /// DEL as a runtime sends it after a crash: no prevResult, no netns.
    fn del_bare(&self, a: &Attached) {
        let mut bare = a.firewall.clone();
        bare.as_object_mut().unwrap().remove("prevResult");
        self.with_env(Call::rcni("firewall", "DEL", &self.host, None))
            .id(&a.id)
            .run(&bare)
            .ok();
    }

    fn detach(&self, a: &Attached) {
        self.call("DEL", a).run(&a.firewall).ok();
        Call::rcni("bridge", "DEL", &self.host, Some(&a.ctr))
            .id(&a.id)
            .run(&a.bridge)
            .ok();
    }

    fn filter(&self) -> Vec<String> {
        self.host
            .exec(&["iptables-save", "-t", "filter"])
            .lines()
            .map(String::from)
            .collect()
    }

    /// `nft list table inet cni_firewall`, empty when there is none.
    fn nft_table(&self) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.host.name])
            .args(["nft", "list", "table", "inet", "cni_firewall"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The container's accept rules as the backend shows them.
    fn accept_rules(&self, backend: &str, ip: &str) -> usize {
        if backend == "iptables" {
            let cidr = format!(" {ip}/32 ");
            self.filter()
                .iter()
                .filter(|l| l.starts_with("-A CNI-FORWARD") && l.contains(&cidr))
                .count()
        } else {
            let (d, s) = (format!("ip daddr {ip} "), format!("ip saddr {ip} "));
            self.nft_table()
                .lines()
                .filter(|l| l.contains(&d) || l.contains(&s))
                .count()
        }
    }
}

fn addr_of(a: &Attached) -> String {
    let prev = &a.firewall["prevResult"];
    let cidr = prev["ips"][0]["address"].as_str().unwrap();
    cidr.split('/').next().unwrap().to_string()
}

#[test]
fn iptables_rules_are_the_reference_layout_and_del_removes_them() {
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let w = FirewallHost::new();
        let a = w.attach(version, 'a', json!({"backend": "iptables"}), false);
        let filter = w.filter();
        for expected in [
            FORWARD_JUMP,
            "-A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN",
            ACCEPT_DST,
            ACCEPT_SRC,
        ] {
            assert!(filter.iter().any(|l| l == expected), "{version}: {expected} missing in {filter:#?}");
        }
        let forward: Vec<&String> = filter
            .iter()
            .filter(|l| l.starts_with("-A FORWARD"))
            .collect();
        assert_eq!(forward[0], FORWARD_JUMP, "{version}: the jump comes first");
        w.call("CHECK", &a).run(&a.firewall).ok();

        if version == "1.1.0" {
            // rcni remembers the addresses: no prevResult needed.
            w.del_bare(&a);
            assert_eq!(
                w.accept_rules("iptables", "10.97.1.2"),
                0,
                "without prevResult"
            );
        }
        w.detach(&a);
        assert_eq!(w.accept_rules("iptables", "10.97.1.2"), 0, "{version}");
        w.call("DEL", &a).run(&a.firewall).ok();
        let e = w.call("CHECK", &a).run(&a.firewall).err();
        assert_eq!(e.0, 999, "{version}: CHECK after DEL: {e:?}");
        assert!(
            w.filter().iter().any(|l| l == FORWARD_JUMP),
            "shared chains stay"
        );
    }
}

#[test]
fn nftables_rules_name_the_attachment_and_del_needs_no_prevresult() {
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let w = FirewallHost::new();
        let a = w.attach(version, 'a', json!({"backend": "nftables"}), false);
        let table = w.nft_table();
        assert!(
            table.contains("type filter hook forward priority filter; policy accept;"),
            "{table}"
        );
        assert!(table.contains("jump CNI-ADMIN"), "{table}");
        assert!(
            table.contains("ip daddr 10.97.1.2 ct state established,related accept comment"),
            "{table}"
        );
        assert!(
            table.contains(&format!(
                "ip saddr 10.97.1.2 accept comment \"{}",
                &w.filter_comment_prefix(&a)
            )),
            "{table}"
        );
        w.call("CHECK", &a).run(&a.firewall).ok();
        assert!(
            !w.filter().iter().any(|l| l.contains("CNI-FORWARD")),
            "{version}: nothing on iptables"
        );
        // A repeated ADD replaces the attachment's rules instead of
        // adding a second pair.
        w.call("ADD", &a).run(&a.firewall).ok();
        assert_eq!(
            w.accept_rules("nftables", "10.97.1.2"),
            2,
            "{version}: {}",
            w.nft_table()
        );

        w.del_bare(&a);
        assert_eq!(
            w.accept_rules("nftables", "10.97.1.2"),
            0,
            "{version}: {}",
            w.nft_table()
        );
        let e = w.call("CHECK", &a).run(&a.firewall).err();
        assert_eq!(e.0, 999, "{version}: CHECK after DEL: {e:?}");
        w.detach(&a);
    }
}

impl FirewallHost {
    /// The start of the nftables comment of `a`'s rules: the network's
    /// hash, as ipMasq's nftables rules start.
    fn filter_comment_prefix(&self, a: &Attached) -> String {
        use sha2::{Digest, Sha512};
        let net = a.firewall["name"].as_str().unwrap();
        let h: String = Sha512::digest(net.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        h[..16].to_string()
    }
}

#[test]
fn a_users_admin_rules_survive_and_apply_on_both_backends() {
    for backend in BACKENDS {
        let w = FirewallHost::new();
        let conf = json!({"backend": backend, "iptablesAdminChainName": "MY-ADMIN"});
        let a1 = w.attach("1.0.0", 'a', conf.clone(), false);
        let b1 = w.attach("1.0.0", 'b', conf.clone(), false);
        serve(&b1.ctr, 80, "b1", 30);
        let b1_addr = format!("{}:80", addr_of(&b1));
        assert_eq!(
            tcp_get(&a1.ctr, &b1_addr).as_deref(),
            Some("b1"),
            "{backend}"
        );
        // The user's rule: nothing from a1's network to b1.
        if backend == "iptables" {
            w.host.exec(&[
                "iptables",
                "-A",
                "MY-ADMIN",
                "-s",
                "10.97.1.0/24",
                "-j",
                "DROP",
            ]);
        } else {
            w.host.exec(&[
                "nft",
                "add",
                "rule",
                "inet",
                "cni_firewall",
                "MY-ADMIN",
                "ip",
                "saddr",
                "10.97.1.0/24",
                "drop",
            ]);
        }
        // Another ADD and DEL leave it in place.
        let a2 = w.attach("1.0.0", 'a', conf.clone(), false);
        w.detach(&a2);
        assert_eq!(
            tcp_get(&a1.ctr, &b1_addr),
            None,
            "{backend}: the admin drop applies"
        );
        let listed = if backend == "iptables" {
            w.filter().join("\n")
        } else {
            w.nft_table()
        };
        assert!(listed.contains("10.97.1.0/24"), "{backend}: {listed}");
        w.detach(&a1);
        w.detach(&b1);
    }
}

/// Whether TCP from `from` reaches `to`'s server.
fn reaches(from: &Attached, to: &Attached) -> bool {
    tcp_get(&from.ctr, &format!("{}:80", addr_of(to))).is_some()
}

#[test]
fn ingress_policy_isolates_bridges_on_both_backends() {
    for backend in BACKENDS {
        for policy in ["open", "same-bridge", "isolated"] {
            let w = FirewallHost::new();
            // Bridged traffic goes through the forward hook, as on a host
            // with br_netfilter (Docker's and Podman's hosts).
            w.host
                .exec(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
            let conf = json!({"backend": backend, "ingressPolicy": policy});
            let a1 = w.attach("1.0.0", 'a', conf.clone(), false);
            let a2 = w.attach("1.0.0", 'a', conf.clone(), false);
            let b1 = w.attach("1.0.0", 'b', conf.clone(), false);
            for c in [&a1, &a2, &b1] {
                serve(&c.ctr, 80, "hello", 30);
            }
            let what = format!("{backend} {policy}");
            assert_eq!(reaches(&a1, &b1), policy == "open", "{what}: a1 → b1");
            assert_eq!(reaches(&b1, &a1), policy == "open", "{what}: b1 → a1");
            assert_eq!(
                reaches(&a1, &a2),
                policy != "isolated",
                "{what}: a1 → a2 (same bridge)"
            );
            // The host itself is not another bridge.
            let host_to_a1 = tcp_get(&w.host, &format!("{}:80", addr_of(&a1)));
            assert!(host_to_a1.is_some(), "{what}: host → a1");
            for c in [&a1, &a2, &b1] {
                w.detach(c);
            }
            assert_eq!(w.accept_rules(backend, "10.97.1.2"), 0, "{what}");
            assert_eq!(w.accept_rules(backend, "10.97.2.2"), 0, "{what}");
        }
    }
}

#[test]
fn gc_drops_the_rules_of_attachments_the_runtime_no_longer_knows() {
    for backend in BACKENDS {
        let w = FirewallHost::new();
        let conf = json!({ "backend": backend });
        let keep = w.attach("1.1.0", 'a', conf.clone(), false);
        let stale = w.attach("1.1.0", 'a', conf.clone(), false);
        let other_net = w.attach("1.1.0", 'b', conf.clone(), false);
        let gc = json!({"cniVersion": "1.1.0", "name": keep.firewall["name"], "type": "firewall", "backend": backend,
                        "cni.dev/valid-attachments": [{"containerID": keep.id, "ifname": "eth0"}]});
        w.with_env(Call::rcni("firewall", "GC", &w.host, None))
            .run(&gc)
            .ok();
        assert_eq!(w.accept_rules(backend, &addr_of(&keep)), 2, "{backend}");
        assert_eq!(w.accept_rules(backend, &addr_of(&stale)), 0, "{backend}");
        assert_eq!(
            w.accept_rules(backend, &addr_of(&other_net)),
            2,
            "{backend}: another network's rules stay"
        );
        for a in [&keep, &stale, &other_net] {
            w.detach(a);
        }
    }
}

#[test]
fn concurrent_adds_to_a_fresh_host_keep_every_rule() {
    for backend in BACKENDS {
        let w = FirewallHost::new();
        let ctr = Netns::new("fc");
        let calls: Vec<_> = (10..18)
            .map(|i| {
                let conf = json!({"cniVersion": "1.0.0", "name": "fwpar", "type": "firewall", "backend": backend,
                    "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "br-a"}],
                                   "ips": [{"address": format!("10.97.1.{i}/24")}]}});
                let call = w
                    .with_env(Call::rcni("firewall", "ADD", &w.host, Some(&ctr)))
                    .id(&format!("par{i}"));
                std::thread::spawn(move || call.run(&conf).ok())
            })
            .collect();
        for c in calls {
            c.join().unwrap();
        }
        for i in 10..18 {
            assert_eq!(
                w.accept_rules(backend, &format!("10.97.1.{i}")),
                2,
                "{backend}: 10.97.1.{i}"
            );
        }
        if backend == "iptables" {
            let jumps = w.filter().iter().filter(|l| *l == FORWARD_JUMP).count();
            assert_eq!(jumps, 1, "{backend}");
        } else {
            assert_eq!(w.nft_table().matches("jump cni-forward").count(), 1);
        }
    }
}

#[test]
fn ipv6_addresses_get_their_rules_on_both_backends() {
    for backend in BACKENDS {
        let w = FirewallHost::new();
        let ctr = Netns::new("fc");
        let conf = json!({"cniVersion": "1.0.0", "name": "fwv6", "type": "firewall", "backend": backend,
            "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "br-a"}],
                           "ips": [{"address": "10.97.1.5/24"}, {"address": "fd00:97::5/64"}]}});
        let call = |c: &str| w.with_env(Call::rcni("firewall", c, &w.host, Some(&ctr)));
        call("ADD").run(&conf).ok();
        call("CHECK").run(&conf).ok();
        let v6 = |w: &FirewallHost| {
            if backend == "iptables" {
                w.host
                    .exec(&["ip6tables-save", "-t", "filter"])
                    .lines()
                    .filter(|l| l.starts_with("-A CNI-FORWARD") && l.contains(" fd00:97::5/128 "))
                    .count()
            } else {
                w.nft_table()
                    .lines()
                    .filter(|l| {
                        l.contains("ip6 saddr fd00:97::5 ") || l.contains("ip6 daddr fd00:97::5 ")
                    })
                    .count()
            }
        };
        assert_eq!(v6(&w), 2, "{backend}");
        assert_eq!(w.accept_rules(backend, "10.97.1.5"), 2, "{backend}");
        call("DEL").run(&conf).ok();
        assert_eq!(v6(&w), 0, "{backend}");
        assert_eq!(w.accept_rules(backend, "10.97.1.5"), 0, "{backend}");
    }
}

#[test]
fn podmans_config_with_an_empty_backend_uses_iptables_without_a_bus() {
    let w = FirewallHost::new();
    // As Podman 4 writes it (cniVersion 0.4.0, "backend": ""); the
    // world's system bus address leads nowhere, so no firewalld.
    let a = w.attach("0.4.0", 'a', json!({"backend": ""}), false);
    assert_eq!(w.accept_rules("iptables", "10.97.1.2"), 2);
    w.call("CHECK", &a).run(&a.firewall).ok();
    w.detach(&a);
    assert_eq!(w.accept_rules("iptables", "10.97.1.2"), 0);
}

#[test]
fn interop_with_the_reference_both_ways() {
    require_reference();
    for reference_adds in [true, false] {
        let w = FirewallHost::new();
        let conf = json!({"backend": "iptables", "ingressPolicy": "same-bridge"});
        let a = w.attach("1.0.0", 'a', conf, reference_adds);
        let filter = w.filter();
        assert!(filter.iter().any(|l| l == ACCEPT_SRC), "{filter:#?}");
        assert!(filter.iter().any(|l| l == ACCEPT_DST), "{filter:#?}");
        // Each CHECKs the other's rules.
        let check = w.call("CHECK", &a);
        let check = if reference_adds {
            check
        } else {
            check.reference()
        };
        check.run(&a.firewall).ok();
        // A second ADD by the other adds nothing twice.
        let again = w.call("ADD", &a);
        let again = if reference_adds {
            again
        } else {
            again.reference()
        };
        again.run(&a.firewall).ok();
        assert_eq!(
            w.accept_rules("iptables", "10.97.1.2"),
            2,
            "reference_adds {reference_adds}"
        );
        if reference_adds {
            // rcni takes the reference's isolation rules for its own, in
            // the comments of either reference version. (Debian's 1.1.1,
            // adding second, does not know today's shared comment and adds
            // its own copies.)
            let filter = w.filter();
            let count = |prefix: &str| filter.iter().filter(|l| l.starts_with(prefix)).count();
            assert_eq!(count("-A CNI-ISOLATION-STAGE-1 "), 2, "{filter:#?}");
            assert_eq!(count("-A CNI-ISOLATION-STAGE-2 "), 2, "{filter:#?}");
            let forward: Vec<&String> = filter
                .iter()
                .filter(|l| l.starts_with("-A FORWARD"))
                .collect();
            assert!(
                forward[0].ends_with("-j CNI-ISOLATION-STAGE-1"),
                "{forward:#?}"
            );
            assert_eq!(forward[1], FORWARD_JUMP);
            assert_eq!(forward.len(), 2, "{forward:#?}");
        }
        let del = w.call("DEL", &a);
        let del = if reference_adds { del } else { del.reference() };
        del.run(&a.firewall).ok();
        assert_eq!(
            w.accept_rules("iptables", "10.97.1.2"),
            0,
            "reference_adds {reference_adds}"
        );
        w.detach(&a);
    }
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let w = FirewallHost::new();
    let ctr = Netns::new("fc");
    let prev = Call::rcni("bridge", "ADD", &w.host, Some(&ctr))
        .run(&w.bridge_conf("1.0.0", 'a'))
        .ok();
    let base =
        json!({"cniVersion": "1.0.0", "name": "fwbad", "type": "firewall", "prevResult": prev});
    let mut odd_prev = prev.clone();
    odd_prev["interfaces"][0]["name"] = json!("br+x");
    let cases = [
        (json!({"backend": "ebtables"}), "backend"),
        (json!({"backend": 1}), "backend"),
        (
            json!({"iptablesAdminChainName": "A\n-A INPUT -j DROP"}),
            "iptablesAdminChainName",
        ),
        (
            json!({"iptablesAdminChainName": "x".repeat(29)}),
            "iptablesAdminChainName",
        ),
        (json!({"ingressPolicy": "closed"}), "ingressPolicy"),
        (
            json!({"backend": "firewalld", "firewalldZone": "a b"}),
            "firewalldZone",
        ),
        (
            json!({"ingressPolicy": "isolated", "prevResult": odd_prev}),
            "interfaces[0].name",
        ),
        (json!({"prevResult": null}), "prevResult"),
    ];
    for (keys, field) in cases {
        let mut conf = base.clone();
        for (k, v) in keys.as_object().unwrap() {
            conf[k] = v.clone();
        }
        let (code, msg) = w
            .with_env(Call::rcni("firewall", "ADD", &w.host, Some(&ctr)))
            .run(&conf)
            .err();
        assert_eq!(code, 7, "{keys}: {msg}");
        assert!(msg.contains(field), "{keys}: {msg}");
    }
    let mut old = base.clone();
    old["cniVersion"] = json!("0.3.1");
    let (code, _) = w
        .with_env(Call::rcni("firewall", "ADD", &w.host, Some(&ctr)))
        .run(&old)
        .err();
    assert_eq!(code, 1, "the reference supports 0.4.0 and later");
    assert!(
        !w.filter().iter().any(|l| l.contains("CNI-")),
        "{:#?}",
        w.filter()
    );
    assert_eq!(w.nft_table(), "");
    // DEL of what ADD refused succeeds.
    let mut bad = base.clone();
    bad["iptablesAdminChainName"] = json!("A\nB");
    w.with_env(Call::rcni("firewall", "DEL", &w.host, Some(&ctr)))
        .run(&bad)
        .ok();
    Call::rcni("bridge", "DEL", &w.host, Some(&ctr))
        .run(&w.bridge_conf("1.0.0", 'a'))
        .ok();
}

/// firewalld with a D-Bus system bus of its own, running inside the test's
/// host namespace (so its nftables rules land there) with its config
/// copied to a temp dir; killed on drop.
struct Firewalld {
    dir: tempfile::TempDir,
    bus: std::process::Child,
    daemon: std::process::Child,
}

impl Firewalld {
    fn address(&self) -> String {
        format!("unix:path={}/bus", self.dir.path().display())
    }

    fn start(host: &Netns) -> Firewalld {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        sh("cp", &["-r", "/etc/firewalld", &format!("{d}/etc")]);
        std::fs::write(
            dir.path().join("bus.conf"),
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={d}/bus</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/>
<allow receive_sender="*"/></policy></busconfig>"#
            ),
        )
        .unwrap();
        let bus = Command::new("dbus-daemon")
            .args([
                "--config-file",
                &format!("{d}/bus.conf"),
                "--nofork",
                "--nopidfile",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let address = format!("unix:path={d}/bus");
        let daemon = Command::new("ip")
            .args([
                "netns",
                "exec",
                &host.name,
                "firewalld",
                "--nofork",
                "--nopid",
            ])
            .args([
                "--system-config",
                &format!("{d}/etc"),
                "--log-target",
                "console",
            ])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let fw = Firewalld { dir, bus, daemon };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while fw.zone_of("10.255.255.255/32").is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "firewalld did not come up"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        fw
    }

    /// `getZoneOfSource` as firewall-cmd asks it: the zone, "" for none;
    /// `None` while firewalld does not answer.
    fn zone_of(&self, source: &str) -> Option<String> {
        let out = std::process::Command::new("dbus-send")
            .arg(format!("--bus={}", self.address()))
            .args(["--print-reply", "--dest=org.fedoraproject.FirewallD1"])
            .args([
                "/org/fedoraproject/FirewallD1",
                "org.fedoraproject.FirewallD1.zone.getZoneOfSource",
            ])
            .arg(format!("string:{source}"))
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("string "))
            .map(|s| s.trim_matches('"').to_string())
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        for child in [&mut self.daemon, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn firewalld_backend_puts_the_addresses_in_the_zone_over_dbus() {
    require_reference();
    let mut w = FirewallHost::new();
    let fw = Firewalld::start(&w.host);
    w.env = vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), fw.address())];
    // Configured, and chosen by default once firewalld is on the bus (as
    // Podman's "backend": "" asks).
    for (conf, zone) in [
        (json!({"backend": "firewalld"}), "trusted"),
        (
            json!({"backend": "", "firewalldZone": "internal"}),
            "internal",
        ),
        // Last: the isolation rules stay, as the reference's do.
        (
            json!({"backend": "firewalld", "ingressPolicy": "isolated"}),
            "trusted",
        ),
    ] {
        let a = w.attach("0.4.0", 'a', conf.clone(), false);
        let source = format!("{}/32", addr_of(&a));
        assert_eq!(fw.zone_of(&source).as_deref(), Some(zone), "{conf}");
        let rules = w.host.exec(&["nft", "list", "ruleset"]);
        assert!(
            rules.contains(&format!("ip saddr {} goto filter_FWD_{zone}", addr_of(&a))),
            "{conf}: {rules}"
        );
        assert_eq!(
            w.accept_rules("iptables", &addr_of(&a)),
            0,
            "{conf}: not on iptables"
        );
        // The ingress policy is on iptables, as in the reference.
        let isolated = w
            .filter()
            .iter()
            .any(|l| l.starts_with("-A CNI-ISOLATION-STAGE-1 -i br-a -o br-a "));
        assert_eq!(isolated, conf.get("ingressPolicy").is_some(), "{conf}");
        w.call("CHECK", &a).run(&a.firewall).ok();
        w.detach(&a);
        assert_eq!(fw.zone_of(&source).as_deref(), Some(""), "{conf}: DEL");
        let (code, msg) = w.call("CHECK", &a).run(&a.firewall).err();
        assert_eq!(code, 999, "{conf}: {msg}");
        w.call("DEL", &a).run(&a.firewall).ok();
    }
    // GC: a source of an attachment the runtime no longer knows goes.
    let stale = w.attach("1.1.0", 'a', json!({"backend": "firewalld"}), false);
    let source = format!("{}/32", addr_of(&stale));
    let gc = json!({"cniVersion": "1.1.0", "name": stale.firewall["name"], "type": "firewall",
                    "backend": "firewalld", "cni.dev/valid-attachments": []});
    w.with_env(Call::rcni("firewall", "GC", &w.host, None))
        .run(&gc)
        .ok();
    assert_eq!(fw.zone_of(&source).as_deref(), Some(""), "GC");
    w.detach(&stale);
    // Interop: the reference removes what rcni added, and the reverse.
    for reference_adds in [false, true] {
        let a = w.attach(
            "1.0.0",
            'a',
            json!({"backend": "firewalld"}),
            reference_adds,
        );
        let source = format!("{}/32", addr_of(&a));
        assert_eq!(fw.zone_of(&source).as_deref(), Some("trusted"));
        let del = w.call("DEL", &a);
        let del = if reference_adds { del } else { del.reference() };
        del.run(&a.firewall).ok();
        assert_eq!(
            fw.zone_of(&source).as_deref(),
            Some(""),
            "reference_adds {reference_adds}"
        );
        w.detach(&a);
    }
}

#[test]
fn a_bus_that_does_not_answer_costs_a_second_not_a_hang() {
    let mut w = FirewallHost::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    // Listens, never accepts, never answers.
    let _silent = std::os::unix::net::UnixListener::bind(&path).unwrap();
    w.env = vec![(
        "DBUS_SYSTEM_BUS_ADDRESS".into(),
        format!("unix:path={}", path.display()),
    )];
    let start = std::time::Instant::now();
    let a = w.attach("0.4.0", 'a', json!({"backend": ""}), false);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        w.accept_rules("iptables", &addr_of(&a)),
        2,
        "iptables without firewalld"
    );
    w.detach(&a);
    assert_eq!(w.accept_rules("iptables", &addr_of(&a)), 0);
    // A DEL for firewalld with no firewalld answering has nothing to do.
    let mut gone = a.firewall.clone();
    gone["backend"] = json!("firewalld");
    w.call("DEL", &a).run(&gone).ok();
}
