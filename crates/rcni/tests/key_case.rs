//! Go's `encoding/json` matches keys up to case, and runtimes written in
//! Go send them so (containerd: `HostPort`). For each plugin that runs on
//! this kernel, configs whose every key is re-cased at random (at every
//! depth) must give the same result and the same link as the canonical
//! config, and the reference's binaries must accept the same input.
//! The chained plugins (tuning, bandwidth, sbr, firewall) are re-cased
//! after ptp and judged by what they did. portmap's capitalised mappings
//! are in `portmap.rs`.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::mutate::{recase, Rng};
use common::*;
use serde_json::{json, Value};

/// How many random re-casings each plugin's config is tried with.
const CASES: u64 = 3;

/// The result without what differs between two identical ADDs: random
/// MACs, host veth names and namespace paths, and Debian's reference's
/// empty `dns`.
fn normalized(mut result: Value) -> Value {
    for iface in result["interfaces"].as_array_mut().into_iter().flatten() {
        let o = iface.as_object_mut().unwrap();
        o.remove("mac");
        if o["name"].as_str().unwrap_or("").starts_with("veth") {
            o.insert("name".into(), json!("veth"));
        }
        if o.contains_key("sandbox") {
            o.insert("sandbox".into(), json!("the container"));
        }
    }
    if result.get("dns") == Some(&json!({})) {
        result.as_object_mut().unwrap().remove("dns");
    }
    result
}

/// One plugin's case: its config (with the data dir as `@DATA@`), what the
/// host needs first, and whether Debian's reference has the plugin.
struct Case {
    plugin: &'static str,
    conf: Value,
    host_setup: fn(&Netns),
    reference: bool,
    /// The config sets the container's MAC (else it is random).
    sets_mac: bool,
}

fn with_data_dir(conf: &Value, dir: &str) -> Value {
    let text = conf
        .to_string()
        .replace("\"@DATA@\"", &json!(dir).to_string());
    serde_json::from_str(&text).unwrap()
}

/// A call of rcni's plugin, or of the reference's.
fn call_of(plugin: &str, verb: &str, host: &Netns, ctr: &Netns, reference: bool) -> Call {
    let c = Call::rcni(plugin, verb, host, Some(ctr));
    if reference {
        c.reference()
    } else {
        c
    }
}

/// ADD, the container's eth0 as `ip` shows it, then DEL; the container
/// is empty after.
fn round(case: &Case, conf: &Value, reference: bool) -> (Value, Value) {
    let host = Netns::new("kch");
    (case.host_setup)(&host);
    let ctr = Netns::new("kcc");
    let data = data_dir();
    let conf = with_data_dir(conf, data.path().to_str().unwrap());
    let call = |verb: &str| call_of(case.plugin, verb, &host, &ctr, reference);
    let result = call("ADD").run(&conf).ok();
    let link = link_details(&ctr, "eth0");
    let mac = if case.sets_mac {
        link["address"].clone()
    } else {
        Value::Null
    };
    let seen = json!({"mtu": link["mtu"], "address": mac,
                      "addrs": ctr.addrs("eth0").into_iter().filter(|a| !a.starts_with("fe80")).collect::<Vec<_>>()});
    call("DEL").run(&conf).ok();
    assert_only_lo(&ctr);
    (normalized(result), seen)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            plugin: "bridge",
            conf: json!({"cniVersion": "1.0.0", "name": "kcbr", "type": "bridge", "bridge": "br-kc",
                "isGateway": true, "isDefaultGateway": true, "ipMasq": true, "mtu": 1400, "hairpinMode": true,
                "capabilities": {"mac": true}, "runtimeConfig": {"mac": "02:00:00:00:00:42"},
                "dns": {"nameservers": ["10.70.0.1"], "search": ["example.test"]},
                "ipam": {"type": "host-local", "dataDir": "@DATA@",
                         "ranges": [[{"subnet": "10.70.0.0/24", "rangeStart": "10.70.0.10", "gateway": "10.70.0.1"}]],
                         "routes": [{"dst": "10.71.0.0/16"}]}}),
            host_setup: |_| {},
            reference: true,
            sets_mac: true,
        },
        Case {
            plugin: "ptp",
            conf: json!({"cniVersion": "1.0.0", "name": "kcptp", "type": "ptp", "ipMasq": true, "mtu": 1300,
                "ipam": {"type": "static", "addresses": [{"address": "10.72.0.5/24", "gateway": "10.72.0.1"}],
                         "routes": [{"dst": "10.73.0.0/16"}], "dns": {"nameservers": ["10.72.0.1"]}}}),
            host_setup: |_| {},
            reference: true,
            sets_mac: false,
        },
        Case {
            plugin: "macvlan",
            conf: json!({"cniVersion": "1.0.0", "name": "kcmv", "type": "macvlan", "master": "m0",
                "mode": "private", "mtu": 1400, "mac": "02:00:00:00:00:44",
                "ipam": {"type": "host-local", "subnet": "10.74.0.0/24", "rangeStart": "10.74.0.20", "dataDir": "@DATA@"}}),
            host_setup: |host| veth_master(host, "m0"),
            reference: true,
            sets_mac: true,
        },
        Case {
            plugin: "host-device",
            conf: json!({"cniVersion": "1.0.0", "name": "kchd", "type": "host-device", "device": "hd0",
                "ipam": {"type": "static", "addresses": [{"address": "10.75.0.5/24"}]}}),
            host_setup: |host| {
                host.exec(&[
                    "ip", "link", "add", "hd0", "type", "veth", "peer", "name", "hd0p",
                ]);
            },
            reference: true,
            sets_mac: false,
        },
        Case {
            plugin: "tap",
            conf: json!({"cniVersion": "1.0.0", "name": "kctap", "type": "tap", "mtu": 1400,
                "mac": "02:00:00:00:00:45", "multiQueue": true, "ipam": {"type": "static", "addresses": [{"address": "10.76.0.5/24"}]}}),
            host_setup: |_| {},
            // Debian's reference (1.1.1) has no tap.
            reference: false,
            sets_mac: true,
        },
    ]
}

#[test]
fn every_plugin_reads_keys_in_any_case() {
    for case in cases() {
        assert_any_case(&case, 1..=CASES);
    }
}

/// For each seed, the config re-cased at random gives the canonical
/// config's result and link, with rcni and (where it has the plugin) with
/// the reference.
fn assert_any_case(case: &Case, seeds: impl IntoIterator<Item = u64>) {
    let same = |conf: &Value, reference: bool| round(case, conf, reference);
    assert_recased_alike(case.plugin, &case.conf, case.reference, seeds, same);
}

/// For each seed, `round` (ADD, what was done, DEL) of the config re-cased
/// at random gives what it gives for the canonical config, with rcni and
/// (when `reference`) with the reference.
fn assert_recased_alike(
    plugin: &str,
    conf: &Value,
    reference: bool,
    seeds: impl IntoIterator<Item = u64>,
    round: impl Fn(&Value, bool) -> (Value, Value),
) {
    let canonical = round(conf, false);
    assert_ne!(canonical.1, json!([]), "{plugin}: nothing to see");
    for seed in seeds {
        let recased = recase(conf, &mut Rng::new(seed));
        assert_eq!(round(&recased, false), canonical, "{plugin}: {recased}");
        if reference {
            require_reference();
            assert_eq!(
                round(&recased, true),
                canonical,
                "{plugin} (reference): {recased}"
            );
        }
    }
}

/// Go writes `null` for every empty slice and reads `null` into a plain
/// field as its zero value: such configs work, and the reference agrees.
#[test]
fn null_values_are_zero_values() {
    let conf = json!({"cniVersion": "1.0.0", "name": "kcnull", "type": "bridge", "bridge": "br-kn",
        "isGateway": true, "mtu": null, "hairpinMode": null, "vlanTrunk": null, "dns": null, "args": null,
        "runtimeConfig": {"mac": null, "ips": null},
        "ipam": {"type": "host-local", "dataDir": "@DATA@", "routes": null, "resolvConf": null,
                 "ranges": [[{"subnet": "10.77.0.0/24", "gateway": null}]]}});
    let case = Case {
        plugin: "bridge",
        conf: conf.clone(),
        host_setup: |_| {},
        reference: true,
        sets_mac: false,
    };
    let ours = round(&case, &conf, false);
    assert_eq!(ours.0["ips"][0]["address"], "10.77.0.2/24");
    assert_eq!(ours.1["mtu"], 1500);
    require_reference();
    assert_eq!(round(&case, &conf, true), ours);
}

/// The plugins whose link kinds this machine's kernel lacks, in the VM
/// (`scripts/vm-tests.sh`).
#[test]
#[ignore = "needs dummy, 8021q and ipvlan: run by scripts/vm-tests.sh"]
fn vm_plugins_read_keys_in_any_case() {
    let ipam = json!({"type": "host-local", "subnet": "10.78.0.0/24", "rangeStart": "10.78.0.30", "dataDir": "@DATA@"});
    let cases = [
        Case {
            plugin: "vlan",
            conf: json!({"cniVersion": "1.0.0", "name": "kcvl", "type": "vlan", "master": "m0",
                "vlanId": 42, "mtu": 1400, "ipam": ipam}),
            host_setup: |host| veth_master(host, "m0"),
            reference: true,
            sets_mac: false,
        },
        Case {
            plugin: "ipvlan",
            conf: json!({"cniVersion": "1.0.0", "name": "kciv", "type": "ipvlan", "master": "m0",
                "mode": "l3", "mtu": 1400, "ipam": ipam}),
            host_setup: |host| veth_master(host, "m0"),
            reference: true,
            sets_mac: false,
        },
        Case {
            plugin: "dummy",
            conf: json!({"cniVersion": "1.0.0", "name": "kcdm", "type": "dummy", "ipam": ipam}),
            host_setup: |_| {},
            // Debian's reference (1.1.1) has no dummy.
            reference: false,
            sets_mac: false,
        },
    ];
    for case in cases {
        assert_any_case(&case, [0x5851_f42d_4c95_7f2d]);
    }
}

/// A chained plugin's case: its config (run after ptp, whose result is its
/// `prevResult`) and what a user would look at to see its work.
struct ChainCase {
    plugin: &'static str,
    conf: Value,
    observe: fn(&Netns, &Netns) -> Value,
    reference: bool,
}

/// The address ptp gives the container in the chained cases.
const CHAIN_ADDRESS: &str = "10.79.0.5";

/// ADD ptp, then the chained plugin with `conf`; what it did; DEL of both,
/// after which neither side keeps anything of the attachment.
fn chain_round(case: &ChainCase, conf: &Value, reference: bool) -> (Value, Value) {
    let host = Netns::new("kch");
    let ctr = Netns::new("kcc");
    let data = data_dir();
    let ptp = json!({"cniVersion": "1.0.0", "name": "kcchain", "type": "ptp",
        "ipam": {"type": "static", "addresses": [{"address": format!("{CHAIN_ADDRESS}/24"), "gateway": "10.79.0.1"}],
                 "routes": [{"dst": "0.0.0.0/0"}]}});
    let first = Call::rcni("ptp", "ADD", &host, Some(&ctr)).run(&ptp).ok();
    let mut conf = with_data_dir(conf, data.path().to_str().unwrap());
    conf["prevResult"] = first.clone();
    let call = |verb: &str| call_of(case.plugin, verb, &host, &ctr, reference);
    let result = call("ADD").run(&conf).ok();
    let seen = (case.observe)(&host, &ctr);
    call("DEL").run(&conf).ok();
    Call::rcni("ptp", "DEL", &host, Some(&ctr))
        .run(&with(ptp, "prevResult", first))
        .ok();
    assert_only_lo(&ctr);
    // Shared chains (firewall's admin chain) stay, as the reference's do.
    let left: Vec<String> = host
        .firewall()
        .into_iter()
        .filter(|l| l.contains(CHAIN_ADDRESS))
        .collect();
    assert!(left.is_empty(), "{}: left {left:?}", case.plugin);
    (normalized(result), seen)
}

/// The qdiscs bandwidth sets, without device names and handles (the host
/// veth's name is random).
fn shaping(host: &Netns, _ctr: &Netns) -> Value {
    let mut qdiscs: Vec<Value> = host
        .exec(&["tc", "-j", "qdisc", "show"])
        .parse::<Value>()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| matches!(q["kind"].as_str(), Some("tbf" | "ingress")))
        .map(|q| json!({"kind": q["kind"], "options": q["options"]}))
        .collect();
    qdiscs.sort_by_key(|q| q.to_string());
    json!(qdiscs)
}

#[test]
fn chained_plugins_read_keys_in_any_case() {
    let cases = [
        ChainCase {
            plugin: "tuning",
            conf: json!({"cniVersion": "1.0.0", "name": "kcchain", "type": "tuning", "mtu": 1280,
                "promisc": true, "allmulti": true, "mac": "02:00:00:00:00:46", "dataDir": "@DATA@",
                "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}}),
            observe: |_, ctr| {
                let link = link_details(ctr, "eth0");
                json!({"mtu": link["mtu"], "promiscuity": link["promiscuity"],
                       "allmulti": link["allmulti"], "address": link["address"],
                       "arp_filter": ctr.exec(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_filter"]).trim()})
            },
            reference: true,
        },
        ChainCase {
            plugin: "bandwidth",
            conf: json!({"cniVersion": "1.0.0", "name": "kcchain", "type": "bandwidth",
                "ingressRate": 8_000_000, "ingressBurst": 16_000, "egressRate": 4_000_000, "egressBurst": 8_000}),
            observe: shaping,
            reference: true,
        },
        ChainCase {
            plugin: "sbr",
            conf: json!({"cniVersion": "1.0.0", "name": "kcchain", "type": "sbr", "table": 120}),
            observe: |_, ctr| {
                json!({"rules": ctr.exec(&["ip", "rule", "show"]),
                       "routes": ctr.exec(&["ip", "route", "show", "table", "all"])})
            },
            // Debian's reference (1.1.1) has no `table` key.
            reference: false,
        },
        ChainCase {
            plugin: "firewall",
            conf: json!({"cniVersion": "1.0.0", "name": "kcchain", "type": "firewall",
                "backend": "iptables", "iptablesAdminChainName": "KC-ADMIN"}),
            observe: |host, _| {
                json!(host
                    .firewall()
                    .into_iter()
                    .filter(|l| l.starts_with("v4 ")
                        && (l.contains(CHAIN_ADDRESS) || l.contains("KC-ADMIN")))
                    .collect::<Vec<_>>())
            },
            reference: true,
        },
    ];
    for case in cases {
        let same = |conf: &Value, reference: bool| chain_round(&case, conf, reference);
        assert_recased_alike(case.plugin, &case.conf, case.reference, 1..=CASES, same);
    }
}
