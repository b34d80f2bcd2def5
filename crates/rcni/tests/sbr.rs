//! sbr (chained): source-based routing in the container, observed with
//! `ip rule`, `ip route show table T` and traffic that the host only
//! answers when it arrives through the interface of its source address.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// A container with two interfaces to one host, each with its subnet:
/// eth0 10.1.0.2/24 (and fd00:1::2/64) to the host's h0, net1 10.2.0.2/24
/// to h1; the container's main table has a default route via eth0. The
/// host has 192.0.2.1 on lo, routes back to both subnets, and strict
/// reverse-path filtering: a packet from 10.2.0.2 is only accepted on h1.
struct TwoLegs {
    host: Netns,
    ctr: Netns,
}

impl TwoLegs {
    fn new() -> TwoLegs {
        let host = Netns::new("sbrh");
        let ctr = Netns::new("sbrc");
        for (h, c, hv4, cv4) in [
            ("h0", "eth0", "10.1.0.1/24", "10.1.0.2/24"),
            ("h1", "net1", "10.2.0.1/24", "10.2.0.2/24"),
        ] {
            host.exec(&[
                "ip", "link", "add", h, "type", "veth", "peer", "name", c, "netns", &ctr.name,
            ]);
            host.exec(&["ip", "addr", "add", hv4, "dev", h]);
            host.exec(&["ip", "link", "set", h, "up"]);
            ctr.exec(&["ip", "addr", "add", cv4, "dev", c]);
            ctr.exec(&["ip", "link", "set", c, "up"]);
        }
        host.exec(&["ip", "addr", "add", "fd00:1::1/64", "dev", "h0", "nodad"]);
        ctr.exec(&["ip", "addr", "add", "fd00:1::2/64", "dev", "eth0", "nodad"]);
        ctr.exec(&[
            "ip", "route", "add", "default", "via", "10.1.0.1", "dev", "eth0",
        ]);
        host.exec(&["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
        host.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
        for dev in ["h0", "h1"] {
            host.exec(&["sysctl", "-qw", &format!("net.ipv4.conf.{dev}.rp_filter=1")]);
        }
        TwoLegs { host, ctr }
    }

    /// prevResult as ptp or bridge would hand it on for `ifname`.
    fn prev(&self, version: &str, ifname: &str) -> Value {
        let mut ips = match ifname {
            "eth0" => json!([
                {"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0},
                {"address": "fd00:1::2/64", "gateway": "fd00:1::1", "interface": 0}
            ]),
            _ => json!([{"address": "10.2.0.2/24", "gateway": "10.2.0.1", "interface": 0}]),
        };
        if version.starts_with("0.") {
            for ip in ips.as_array_mut().unwrap() {
                let v = if ip["address"].as_str().unwrap().contains(':') {
                    "6"
                } else {
                    "4"
                };
                ip["version"] = json!(v);
            }
        }
        json!({
            "cniVersion": version,
            "interfaces": [{"name": ifname, "sandbox": self.ctr.path()}],
            "ips": ips,
        })
    }

    fn conf(&self, version: &str, ifname: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "sbrnet",
            "type": "sbr",
            "prevResult": self.prev(version, ifname),
        })
    }

    fn call(&self, command: &str, ifname: &str) -> Call {
        Call::rcni("sbr", command, &self.host, Some(&self.ctr)).ifname(ifname)
    }

    fn rules(&self) -> String {
        self.ctr.exec(&["ip", "rule"]) + &self.ctr.exec(&["ip", "-6", "rule"])
    }

    /// The routes of a table, both families (`ip route show table all`
    /// lines, which name the table after the device).
    fn table(&self, table: &str) -> String {
        let tag = format!(" table {table} ");
        let lines: Vec<String> = self
            .ctr
            .routes()
            .into_iter()
            .filter(|r| format!("{r} ").contains(&tag))
            .collect();
        lines.join("\n")
    }

    /// Whether a ping from `src` to the host's 192.0.2.1 is answered.
    fn reaches_from(&self, src: &str) -> bool {
        self.ctr
            .try_exec(&["ping", "-c1", "-W1", "-I", src, "192.0.2.1"])
    }

    /// Rules and routes of the container, to compare before and after.
    fn routing(&self) -> (String, Vec<String>) {
        (self.rules(), self.ctr.snapshot())
    }
}

const DEFAULT_RULES_V4: &str =
    "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n";

#[test]
fn each_source_leaves_through_its_interface_and_del_restores() {
    for version in VERSIONS {
        let t = TwoLegs::new();
        let before = t.routing();
        assert!(t.reaches_from("10.1.0.2"), "the main table's default");
        assert!(
            !t.reaches_from("10.2.0.2"),
            "leaves eth0, dropped by the host"
        );

        for ifname in ["eth0", "net1"] {
            let conf = t.conf(version, ifname);
            let out = t.call("ADD", ifname).run(&conf).ok();
            assert_eq!(out["cniVersion"], json!(version));
            assert_eq!(out["ips"], conf["prevResult"]["ips"], "passed on");
        }
        let rules = t.rules();
        // Priorities as the kernel picks them without one, as the reference.
        for rule in [
            "32765:\tfrom 10.1.0.2 lookup 100",
            "32765:\tfrom fd00:1::2 lookup 101",
            "32764:\tfrom 10.2.0.2 lookup 102",
        ] {
            assert!(rules.contains(rule), "{version}: {rule} in {rules}");
        }
        let t100 = t.table("100");
        assert!(
            t100.contains("default via 10.1.0.1 dev eth0 table 100"),
            "{t100}"
        );
        assert!(
            t100.contains("10.1.0.0/24 dev eth0 table 100 proto kernel scope link src 10.1.0.2"),
            "{t100}"
        );
        assert!(!t100.contains("net1"), "{t100}");
        let t101 = t.table("101");
        assert!(t101.contains("default via fd00:1::1 dev eth0"), "{t101}");
        assert!(t101.contains("fd00:1::/64 dev eth0"), "{t101}");
        let t102 = t.table("102");
        assert!(t102.contains("default via 10.2.0.1 dev net1"), "{t102}");
        assert!(t102.contains("10.2.0.0/24 dev net1"), "{t102}");
        let main = t.ctr.exec(&["ip", "route", "show", "table", "main"]);
        assert!(main.trim().is_empty(), "moved out of main: {main}");

        assert!(t.reaches_from("10.1.0.2"));
        assert!(t.reaches_from("10.2.0.2"), "{version}: now leaves net1");
        let leg = t
            .ctr
            .exec(&["ip", "route", "get", "192.0.2.1", "from", "10.2.0.2"]);
        assert!(leg.contains("dev net1 table 102"), "{leg}");

        // CHECK, as the reference's, passes.
        if version != &"0.3.1" {
            t.call("CHECK", "net1").run(&t.conf(version, "net1")).ok();
        }
        for ifname in ["net1", "eth0"] {
            let conf = t.conf(version, ifname);
            t.call("DEL", ifname).run(&conf).ok();
            t.call("DEL", ifname).run(&conf).ok();
        }
        assert_eq!(t.routing(), before, "{version}: DEL restores the routing");
        assert!(t.table("100").trim().is_empty() && t.table("102").trim().is_empty());
        assert!(!t.reaches_from("10.2.0.2"));
    }
}

#[test]
fn legacy_versions_chain_with_the_ip4_shape() {
    for version in ["0.1.0", "0.2.0"] {
        let t = TwoLegs::new();
        let mut conf = t.conf(version, "net1");
        conf["prevResult"] = json!({
            "cniVersion": version,
            "ip4": {"ip": "10.2.0.2/24", "gateway": "10.2.0.1"},
        });
        let out = t.call("ADD", "net1").run(&conf).ok();
        assert_eq!(out["ip4"]["ip"], json!("10.2.0.2/24"), "{out}");
        assert!(t.rules().contains("from 10.2.0.2 lookup 100"));
        assert!(t.reaches_from("10.2.0.2"));
        t.call("DEL", "net1").run(&conf).ok();
        assert_eq!(t.ctr.exec(&["ip", "rule"]), DEFAULT_RULES_V4);
    }
    // Without a prevResult there is nothing to chain on.
    let t = TwoLegs::new();
    let mut conf = t.conf("0.2.0", "net1");
    conf.as_object_mut().unwrap().remove("prevResult");
    let (code, msg) = t.call("ADD", "net1").run(&conf).err();
    assert_eq!(code, 7);
    assert!(
        msg.contains("prevResult") && msg.contains("chained"),
        "{msg}"
    );
}

#[test]
fn a_given_table_gets_only_the_rules() {
    let t = TwoLegs::new();
    let before = t.routing();
    let conf = with(t.conf("1.0.0", "eth0"), "table", json!(5000));
    t.call("ADD", "eth0").run(&conf).ok();
    let rules = t.rules();
    assert!(rules.contains("from 10.1.0.2 lookup 5000"), "{rules}");
    assert!(rules.contains("from fd00:1::2 lookup 5000"), "{rules}");
    assert!(t.table("5000").trim().is_empty(), "the table is the user's");
    assert_eq!(t.ctr.snapshot(), before.1, "routes untouched");
    // A rule of the same address to another table is not sbr's.
    t.ctr
        .exec(&["ip", "rule", "add", "from", "10.1.0.2", "lookup", "77"]);
    t.call("DEL", "eth0").run(&conf).ok();
    t.call("DEL", "eth0").run(&conf).ok();
    let rules = t.rules();
    assert!(!rules.contains("5000"), "{rules}");
    assert!(rules.contains("from 10.1.0.2 lookup 77"), "{rules}");
}

#[test]
fn static_gateways_replace_prev_results() {
    let t = TwoLegs::new();
    let before = t.routing();
    // A gateway the interface cannot reach fails the ADD, which undoes
    // what it did (the rule, the routes already moved).
    let conf = with(t.conf("1.1.0", "eth0"), "gateways", json!(["10.9.9.9"]));
    let (code, msg) = t.call("ADD", "eth0").run(&conf).err();
    assert!(code == 999 && msg.contains("10.9.9.9"), "{msg}");
    assert_eq!(t.routing(), before);

    let conf = with(t.conf("1.1.0", "net1"), "gateways", json!(["10.2.0.254"]));
    t.call("ADD", "net1").run(&conf).ok();
    let t100 = t.table("100");
    assert!(t100.contains("default via 10.2.0.254 dev net1"), "{t100}");
    t.call("DEL", "net1").run(&conf).ok();
    assert!(t.table("100").is_empty());
    // As the reference: a default route of the main table, moved after,
    // wins over the static gateway (eth0's IPv4 here, not its IPv6).
    let gateways = json!(["10.1.0.254", "fd00:1::fe"]);
    let conf = with(t.conf("1.1.0", "eth0"), "gateways", gateways);
    t.call("ADD", "eth0").run(&conf).ok();
    let t100 = t.table("100");
    assert!(t100.contains("default via 10.1.0.1 dev eth0"), "{t100}");
    let t101 = t.table("101");
    assert!(t101.contains("default via fd00:1::fe dev eth0"), "{t101}");
    t.call("DEL", "eth0").run(&conf).ok();
    assert!(t.table("100").is_empty() && t.table("101").is_empty());
}

#[test]
fn source_hints_keep_the_subnets_in_main() {
    let t = TwoLegs::new();
    let conf = with(t.conf("1.0.0", "net1"), "addSourceHints", json!(true));
    t.call("ADD", "net1").run(&conf).ok();
    let main = t.ctr.exec(&["ip", "route", "show", "table", "main"]);
    assert!(
        main.contains("10.2.0.0/24 dev net1 scope link src 10.2.0.2"),
        "{main}"
    );
    assert!(t.table("100").contains("default via 10.2.0.1 dev net1"));
    // Destination-based routing still reaches the subnet without a source.
    assert!(t.ctr.try_exec(&["ping", "-c1", "-W1", "10.2.0.1"]));
    t.call("DEL", "net1").run(&conf).ok();
    assert_eq!(t.ctr.exec(&["ip", "rule"]), DEFAULT_RULES_V4);
}

#[test]
fn concurrent_calls_get_tables_of_their_own() {
    let t = TwoLegs::new();
    let before = t.routing();
    // Both interfaces at once, a few rounds: without the netns lock two
    // ADDs pick the same free table now and then.
    let both = |command: &str| {
        let calls: Vec<_> = ["eth0", "net1"]
            .into_iter()
            .map(|ifname| {
                let (call, conf) = (t.call(command, ifname), t.conf("1.0.0", ifname));
                std::thread::spawn(move || call.run(&conf).ok())
            })
            .collect();
        for c in calls {
            c.join().unwrap();
        }
    };
    for round in 0..12 {
        both("ADD");
        let rules = t.rules();
        let mut tables: Vec<&str> = rules
            .lines()
            .filter(|l| l.contains("from 10.") || l.contains("from fd00"))
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        assert_eq!(tables, ["100", "101", "102"], "round {round}: {rules}");
        assert!(t.reaches_from("10.1.0.2") && t.reaches_from("10.2.0.2"));
        both("DEL");
        assert_eq!(t.routing(), before, "round {round}");
    }
}

#[test]
fn del_without_the_link_or_the_netns() {
    let t = TwoLegs::new();
    let conf = t.conf("1.0.0", "net1");
    t.call("ADD", "net1").run(&conf).ok();
    // The link gone first (as a plugin's DEL earlier in the chain would):
    // prevResult still names the address whose rule must go.
    t.ctr.exec(&["ip", "link", "del", "net1"]);
    t.call("DEL", "net1").run(&conf).ok();
    assert_eq!(t.ctr.exec(&["ip", "rule"]), DEFAULT_RULES_V4);
    // The netns gone: nothing to do, nothing created at its path.
    let path = t.ctr.path();
    drop(t.ctr);
    let mut gone = Call::rcni("sbr", "DEL", &t.host, None).ifname("net1");
    gone.netns = path.clone();
    gone.run(&conf).ok();
    assert!(!std::path::Path::new(&path).exists());
}

#[test]
fn bad_keys_are_refused_and_change_nothing() {
    let t = TwoLegs::new();
    let before = t.routing();
    for (key, value) in [
        ("table", json!(-1)),
        ("table", json!(0)),
        ("table", json!(4294967296u64)),
        ("table", json!("100")),
        ("gateways", json!(["10.1.0.x"])),
        ("gateways", json!(["10.1.0.1", "10.1.0.2"])),
        ("gateways", json!(["10.1.0.1", "fd00:1::1", "10.1.0.3"])),
        ("gateways", json!("10.1.0.1")),
        ("addSourceHints", json!("yes")),
    ] {
        let conf = with(t.conf("1.0.0", "eth0"), key, value.clone());
        let (code, msg) = t.call("ADD", "eth0").run(&conf).err();
        assert_eq!(code, 7, "{key}={value}: {msg}");
        assert!(msg.contains(key), "{key}={value}: {msg}");
        assert_eq!(t.routing(), before, "{key}={value}");
    }
    let mut conf = t.conf("1.0.0", "eth0");
    conf["prevResult"]["ips"] = json!([]);
    let (code, msg) = t.call("ADD", "eth0").run(&conf).err();
    assert!(code == 7 && msg.contains("No IP addresses"), "{msg}");
    // A missing interface fails, and leaves no rule behind.
    let conf = t.conf("1.0.0", "eth9");
    let mut conf = conf;
    conf["prevResult"]["interfaces"][0]["name"] = json!("eth9");
    t.call("ADD", "eth9").run(&conf).err();
    assert_eq!(t.routing(), before);
}

#[test]
fn interop_with_the_reference() {
    require_reference();
    for reference_adds in [false, true] {
        let t = TwoLegs::new();
        for ifname in ["eth0", "net1"] {
            let (add, del) = interop_pair("sbr", &t.host, &t.ctr, reference_adds);
            let conf = t.conf("1.0.0", ifname);
            add.ifname(ifname).run(&conf).ok();
            let _ = del;
        }
        let rules = t.rules();
        assert!(rules.contains("from 10.1.0.2 lookup 100"), "{rules}");
        assert!(rules.contains("from 10.2.0.2 lookup 102"), "{rules}");
        assert!(
            t.reaches_from("10.2.0.2"),
            "reference_adds={reference_adds}"
        );
        for ifname in ["net1", "eth0"] {
            let (_, del) = interop_pair("sbr", &t.host, &t.ctr, reference_adds);
            del.ifname(ifname).run(&t.conf("1.0.0", ifname)).ok();
        }
        assert_eq!(
            t.ctr.exec(&["ip", "rule"]),
            DEFAULT_RULES_V4,
            "reference_adds={reference_adds}"
        );
        if reference_adds {
            assert!(t.table("100").trim().is_empty() && t.table("102").trim().is_empty());
            // rcni's DEL also gives the routes back to the main table (it
            // cannot tell the reference's added default routes from moved
            // ones: whichever comes back first is the default).
            let main = t.ctr.exec(&["ip", "route", "show", "table", "main"]);
            for subnet in ["10.1.0.0/24 dev eth0", "10.2.0.0/24 dev net1"] {
                assert!(main.contains(subnet), "{main}");
            }
        } else {
            // The reference's DEL removes only the rules; the tables go
            // with the links.
            assert!(t.table("102").contains("default via 10.2.0.1 dev net1"));
        }
    }
}

#[test]
fn a_netns_path_that_is_no_netns_is_refused_without_hanging() {
    let t = TwoLegs::new();
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    sh("mkfifo", &[fifo.to_str().unwrap()]);
    let file = scratch.path().join("file");
    std::fs::write(&file, "not a namespace").unwrap();
    for path in [&fifo, &file] {
        for verb in ["ADD", "DEL"] {
            let mut call = t.call(verb, "eth0");
            call.netns = path.to_string_lossy().into_owned();
            let conf = t.conf("1.0.0", "eth0");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let reply = call.run(&conf);
                let _ = tx.send((reply.code, reply.stdout));
            });
            let (code, out) = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the call returns");
            assert_ne!(code, 0, "{verb} {path:?}: {out}");
            assert!(out.contains("not a network namespace"), "{out}");
        }
    }
    assert!(t.rules().lines().all(|l| !l.contains("from 10.")));
}
