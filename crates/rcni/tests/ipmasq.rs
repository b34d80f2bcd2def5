//! `ipMasq` on ptp, on both firewall backends: traffic from the container
//! to an "outside" namespace leaves with the host's address, the rules
//! have the reference's names, DEL removes them (also with the netns
//! gone), and rules made by the reference are removed by rcni and the
//! reverse.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

/// A host namespace with an "outside" namespace behind a veth: the host
/// is 203.0.113.1, the outside 203.0.113.2, and the outside has no route
/// to the container subnet, so only masqueraded traffic gets answers.
struct MasqHost {
    host: Netns,
    outside: Netns,
    /// iptables' legacy flavour first on the plugins' PATH, if set.
    legacy: Option<LegacyIptables>,
}

impl MasqHost {
    fn new() -> MasqHost {
        let host = Netns::new("mh");
        let outside = outside_of(&host);
        MasqHost {
            host,
            outside,
            legacy: None,
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

    fn iptables_nat(&self) -> String {
        match self.legacy {
            Some(_) => self.host.exec(&["iptables-legacy-save", "-t", "nat"]),
            None => self.host.exec(&["iptables-save", "-t", "nat"]),
        }
    }

    fn nft_masq_rules(&self) -> String {
        let ok = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.host.name,
                "nft",
                "list",
                "chain",
                "inet",
                "cni_plugins_masquerade",
                "masq_checks",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ok.stdout).into_owned()
    }
}

fn conf(net: &str, data: &std::path::Path, backend: Option<&str>) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": net, "type": "ptp", "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "routes": [{"dst": "0.0.0.0/0"}],
                 "dataDir": data.to_str().unwrap()}});
    if let Some(b) = backend {
        c["ipMasqBackend"] = json!(b);
    }
    c
}

fn masq_present(w: &MasqHost, backend: &str, net: &str) -> bool {
    let chain = chain_for(net, "ctr1");
    match backend {
        "iptables" => w.iptables_nat().contains(&chain),
        _ => w
            .nft_masq_rules()
            .contains(&format!("net: {net}, if: eth0, id: ctr1")),
    }
}

/// The reference's chain name: CNI- + sha512(net + id) hex, 28 chars.
fn chain_for(net: &str, id: &str) -> String {
    use sha2::{Digest, Sha512};
    let hex: String = Sha512::digest(format!("{net}{id}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("CNI-{}", &hex[..24])
}

#[test]
fn masquerades_on_both_backends_and_del_cleans_up() {
    for backend in ["iptables", "nftables"] {
        let w = MasqHost::new();
        let ctr = Netns::new("mc");
        let data = data_dir();
        let net = unique("mq");
        let c = conf(&net, data.path(), Some(backend));
        let call = Call::rcni("ptp", "ADD", &w.host, Some(&ctr));
        call.run(&c).ok();
        assert!(masq_present(&w, backend, &net), "{backend}: no rules");
        if backend == "iptables" {
            let nat = w.iptables_nat();
            let chain = chain_for(&net, "ctr1");
            assert!(nat.contains(&format!("-A POSTROUTING -s 10.66.0.2/32 -m comment --comment \"name: \\\"{net}\\\" id: \\\"ctr1\\\"\" -j {chain}")), "{nat}");
            assert!(
                nat.contains(&format!("-A {chain} -d 10.66.0.0/24")),
                "{nat}"
            );
            assert!(nat.contains("! -d 224.0.0.0/4"), "{nat}");
        }
        assert!(
            ctr.try_exec(&["ping", "-c1", "-w5", "203.0.113.2"]),
            "{backend}: no masqueraded connectivity"
        );
        call.clone().command("DEL").run(&c).ok();
        assert!(
            !masq_present(&w, backend, &net),
            "{backend}: rules left after DEL"
        );
        assert!(
            !w.iptables_nat().contains("CNI-"),
            "{backend}: a chain is left"
        );
    }
}

#[test]
fn del_without_netns_still_removes_the_rules() {
    for backend in ["iptables", "nftables"] {
        let w = MasqHost::new();
        let ctr = Netns::new("mc");
        let data = data_dir();
        let net = unique("mq");
        let c = conf(&net, data.path(), Some(backend));
        let call = Call::rcni("ptp", "ADD", &w.host, Some(&ctr));
        call.run(&c).ok();
        drop(ctr);
        call.clone().command("DEL").run(&c).ok();
        assert!(
            !masq_present(&w, backend, &net),
            "{backend}: rules leaked with the netns gone"
        );
        assert!(allocated_ips(data.path(), &net).is_empty());
    }
}

#[test]
fn gc_drops_stale_masquerading_only() {
    let w = MasqHost::new();
    let (a, b) = (Netns::new("ma"), Netns::new("mb"));
    let data = data_dir();
    let net = unique("mq");
    let mut c = conf(&net, data.path(), Some("nftables"));
    c["cniVersion"] = json!("1.1.0");
    Call::rcni("ptp", "ADD", &w.host, Some(&a))
        .id("keep")
        .run(&c)
        .ok();
    Call::rcni("ptp", "ADD", &w.host, Some(&b))
        .id("gone")
        .run(&c)
        .ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let mut call = Call::rcni("ptp", "GC", &w.host, None);
    call.container_id.clear();
    call.ifname.clear();
    call.run(&gc).ok();
    let rules = w.nft_masq_rules();
    assert!(
        rules.contains("id: keep") && !rules.contains("id: gone"),
        "{rules}"
    );
    assert_eq!(allocated_ips(data.path(), &net), ["10.66.0.2"]);
    assert!(a.try_exec(&["ping", "-c1", "-w5", "203.0.113.2"]));
}

#[test]
fn bad_backend_is_refused_and_leaves_nothing() {
    let w = MasqHost::new();
    let ctr = Netns::new("mc");
    let data = data_dir();
    let net = unique("mq");
    let (code, msg) = Call::rcni("ptp", "ADD", &w.host, Some(&ctr))
        .run(&conf(&net, data.path(), Some("pf")))
        .err();
    assert_eq!(code, 7);
    assert!(msg.contains("ipMasqBackend"), "{msg}");
    assert_eq!(ctr.links(), ["lo"]);
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn interop_with_reference_rules() {
    require_reference();
    for rcni_adds in [true, false] {
        let w = MasqHost::new();
        let ctr = Netns::new("mc");
        let data = data_dir();
        let net = unique("mq");
        // The reference's default backend is iptables.
        let c = conf(&net, data.path(), None);
        let ours = Call::rcni("ptp", "ADD", &w.host, Some(&ctr));
        let theirs = ours.clone().reference();
        let (adder, deleter) = if rcni_adds {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        adder.run(&c).ok();
        assert!(w.iptables_nat().contains(&chain_for(&net, "ctr1")));
        assert!(ctr.try_exec(&["ping", "-c1", "-w5", "203.0.113.2"]));
        deleter.command("DEL").run(&c).ok();
        assert!(
            !w.iptables_nat().contains("CNI-"),
            "rules left: {}",
            w.iptables_nat()
        );
        assert!(allocated_ips(data.path(), &net).is_empty());
    }
}

#[test]
fn without_ip_masq_the_outside_cannot_answer() {
    let w = MasqHost::new();
    let ctr = Netns::new("mc");
    let data = data_dir();
    let net = unique("mq");
    let mut c = conf(&net, data.path(), None);
    c["ipMasq"] = json!(false);
    let call = Call::rcni("ptp", "ADD", &w.host, Some(&ctr));
    call.run(&c).ok();
    assert!(
        !w.outside.exec(&["ip", "route"]).contains("10.66."),
        "the outside must not route to pods"
    );
    assert!(
        !ctr.try_exec(&["ping", "-c1", "-W1", "203.0.113.2"]),
        "reached the outside without masquerading"
    );
    assert!(!w.iptables_nat().contains("CNI-"));
    call.command("DEL").run(&c).ok();
}

/// DEL reads only the firewall its rules are in, and runs no program
/// where nf_tables can be asked: nftables rules and, with iptables'
/// nf_tables flavour (Debian's default), iptables rules go over netlink;
/// the other backend and the other IP family are probed over netlink and
/// skipped. A prevResult whose addresses are not the rules' falls back to
/// iptables' tools: `iptables-restore` of the known rules, refused, then
/// the table read. With the legacy flavour, which cannot be asked without
/// a process, the addresses in prevResult spare the `iptables-save` of
/// the family that holds them, and even an nftables DEL reads its tables.
#[test]
fn del_runs_only_the_programs_of_the_backend_in_use() {
    let cases: [(bool, &str, Option<&str>, &[&str]); 7] = [
        (false, "iptables", None, &[]),
        (false, "iptables", Some("result"), &[]),
        (
            false,
            "iptables",
            Some("10.66.0.99/24"),
            &["iptables-restore", "iptables-save", "iptables-restore"],
        ),
        (false, "nftables", None, &[]),
        (
            true,
            "iptables",
            None,
            &["iptables-save", "iptables-restore", "ip6tables-save"],
        ),
        (
            true,
            "iptables",
            Some("result"),
            &["iptables-restore", "ip6tables-save"],
        ),
        // DEL removes both backends' rules, and legacy iptables can only
        // be read.
        (true, "nftables", None, &["iptables-save", "ip6tables-save"]),
    ];
    for (legacy, backend, prev, programs) in cases {
        let w = MasqHost {
            legacy: legacy.then(LegacyIptables::new),
            ..MasqHost::new()
        };
        let ctr = Netns::new("mc");
        let data = data_dir();
        let net = unique("mq");
        let mut c = conf(&net, data.path(), Some(backend));
        let result = w.call("ptp", "ADD", &ctr).run(&c).ok();
        assert!(masq_present(&w, backend, &net), "{backend}: no rules");
        match prev {
            Some("result") => c["prevResult"] = result,
            Some(other) => {
                let mut r = result;
                r["ips"][0]["address"] = json!(other);
                c["prevResult"] = r;
            }
            None => {}
        }
        let (reply, execs) = w.call("ptp", "DEL", &ctr).run_traced(&c);
        reply.ok();
        // The first two are the test's `ip netns exec` and the plugin;
        // host-local, rcni itself on CNI_PATH, runs in-process.
        let what = format!("legacy {legacy}, {backend} {prev:?}");
        assert_eq!(execs[2..], programs[..], "{what}: {execs:?}");
        assert!(!masq_present(&w, backend, &net), "{what}: rules left");
        assert!(!w.iptables_nat().contains("CNI-"), "{what}");
        assert_only_lo(&ctr);
        assert!(allocated_ips(data.path(), &net).is_empty());
    }
}

/// The reference names the iptables chain after network name and container
/// ID concatenated, so `relnet` + `x1` and `relne` + `tx1` share a chain:
/// DEL of one keeps the other's masquerading (found by its comment).
#[test]
fn del_keeps_the_masquerading_of_a_colliding_attachment() {
    for backend in ["iptables", "nftables"] {
        let w = MasqHost::new();
        let (a, b) = (Netns::new("ma"), Netns::new("mb"));
        let data = data_dir();
        let ca = conf("relnet", data.path(), Some(backend));
        let mut cb = conf("relne", data.path(), Some(backend));
        cb["ipam"]["subnet"] = json!("10.67.0.0/24");
        assert_eq!(chain_for("relnet", "x1"), chain_for("relne", "tx1"));
        let add_a = Call::rcni("ptp", "ADD", &w.host, Some(&a)).id("x1");
        let add_b = Call::rcni("ptp", "ADD", &w.host, Some(&b)).id("tx1");
        let prev_a = add_a.run(&ca).ok();
        let prev_b = add_b.run(&cb).ok();
        add_a
            .clone()
            .command("DEL")
            .run(&with(ca, "prevResult", prev_a))
            .ok();
        assert!(
            b.try_exec(&["ping", "-c1", "-w5", "203.0.113.2"]),
            "{backend}: relne/tx1 lost its masquerading"
        );
        if backend == "iptables" {
            let nat = w.iptables_nat();
            assert!(nat.contains("-A POSTROUTING -s 10.67.0.2/32"), "{nat}");
            assert!(!nat.contains("-s 10.66.0.2/32"), "{nat}");
            let chain = chain_for("relne", "tx1");
            assert!(
                nat.contains(&format!("-A {chain} -d 10.67.0.0/24")),
                "{nat}"
            );
        } else {
            let rules = w.nft_masq_rules();
            assert!(rules.contains("net: relne, if: eth0, id: tx1"), "{rules}");
            assert!(!rules.contains("net: relnet,"), "{rules}");
        }
        add_b
            .command("DEL")
            .run(&with(cb, "prevResult", prev_b))
            .ok();
        assert!(!w.iptables_nat().contains("CNI-"), "{backend}");
        assert!(!w.nft_masq_rules().contains("id: "), "{backend}");
    }
}

/// DEL of a container's second interface on the same network removes only
/// that interface's masquerading: eth0 still reaches the outside.
#[test]
fn del_of_a_second_interface_keeps_eth0s_masquerading() {
    for backend in ["iptables", "nftables"] {
        let w = MasqHost::new();
        let ctr = Netns::new("mc");
        let data = data_dir();
        let net = unique("mq");
        let c0 = conf(&net, data.path(), Some(backend));
        // Another subnet: ptp's gateway route of eth0 would clash.
        let data1 = data_dir();
        let mut c1 = conf(&net, data1.path(), Some(backend));
        c1["ipam"].as_object_mut().unwrap().remove("routes");
        c1["ipam"]["subnet"] = json!("10.68.0.0/24");
        let eth0 = Call::rcni("ptp", "ADD", &w.host, Some(&ctr));
        let eth1 = eth0.clone().ifname("eth1");
        let prev0 = eth0.run(&c0).ok();
        let prev1 = eth1.run(&c1).ok();
        eth1.clone()
            .command("DEL")
            .run(&with(c1, "prevResult", prev1))
            .ok();
        assert!(
            ctr.try_exec(&["ping", "-c1", "-w5", "203.0.113.2"]),
            "{backend}: eth0 lost its masquerading"
        );
        if backend == "iptables" {
            let nat = w.iptables_nat();
            assert!(nat.contains("-A POSTROUTING -s 10.66.0.2/32"), "{nat}");
            assert!(!nat.contains("-s 10.68.0.2/32"), "{nat}");
            // eth1's ADD did not flush the shared chain, and its DEL took
            // only its own subnet's exception.
            let chain = chain_for(&net, "ctr1");
            assert!(
                nat.contains(&format!("-A {chain} -d 10.66.0.0/24")),
                "{nat}"
            );
            assert!(!nat.contains("-d 10.68.0.0/24"), "{nat}");
        } else {
            let rules = w.nft_masq_rules();
            assert!(rules.contains("if: eth0, id: ctr1"), "{rules}");
            assert!(!rules.contains("if: eth1"), "{rules}");
        }
        eth0.command("DEL").run(&with(c0, "prevResult", prev0)).ok();
        assert!(!w.iptables_nat().contains("CNI-"), "{backend}");
        assert!(!w.nft_masq_rules().contains("id: "), "{backend}");
    }
}

/// GC and host-local agree on what an attachment is (container ID and
/// interface): a valid container with another interface name is not this
/// attachment, so its address is released and its masquerading goes too.
#[test]
fn gc_treats_another_ifname_as_another_attachment() {
    for backend in ["iptables", "nftables"] {
        let w = MasqHost::new();
        let ctr = Netns::new("mc");
        let data = data_dir();
        let net = unique("mq");
        let mut c = conf(&net, data.path(), Some(backend));
        c["cniVersion"] = json!("1.1.0");
        Call::rcni("ptp", "ADD", &w.host, Some(&ctr)).run(&c).ok();
        let mut call = Call::rcni("ptp", "GC", &w.host, None);
        call.container_id.clear();
        call.ifname.clear();
        for (ifname, kept) in [("eth0", true), ("eth9", false)] {
            let gc = with(
                c.clone(),
                "cni.dev/valid-attachments",
                json!([{"containerID": "ctr1", "ifname": ifname}]),
            );
            call.run(&gc).ok();
            assert_eq!(
                allocated_ips(data.path(), &net).is_empty(),
                !kept,
                "{backend} {ifname}"
            );
            assert_eq!(masq_present(&w, backend, &net), kept, "{backend} {ifname}");
            let nat = w.iptables_nat();
            assert_eq!(
                nat.contains("-s 10.66.0.2/32"),
                kept && backend == "iptables",
                "{nat}"
            );
        }
        Call::rcni("ptp", "DEL", &w.host, Some(&ctr)).run(&c).ok();
        assert!(!w.iptables_nat().contains("CNI-"), "{backend}");
    }
}
