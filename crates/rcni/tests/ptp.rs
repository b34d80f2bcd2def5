//! ptp + host-local, end to end: a container netns gets its address over a
//! veth pair and loses everything again on DEL.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};

fn ptp_conf(version: &str, net: &str, data: &std::path::Path, ranges: Value) -> Value {
    json!({
        "cniVersion": version,
        "name": net,
        "type": "ptp",
        "mtu": 1400,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": data.to_str().unwrap(),
        },
        "dns": {"nameservers": ["10.1.0.53"], "search": ["example.test"]},
    })
}

fn v4_ranges() -> Value {
    json!([[{"subnet": "10.77.0.0/24"}]])
}

/// Checks the addresses, routes and links an ADD made, and ping.
fn assert_attached(host: &Netns, ctr: &Netns, result: &Value, version: &str) {
    assert_eq!(result["cniVersion"], version);
    let ifaces = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifaces.len(), 2);
    let host_veth = ifaces[0]["name"].as_str().unwrap().to_string();
    assert!(host_veth.starts_with("veth"), "{host_veth}");
    assert!(ifaces[0].get("sandbox").is_none());
    assert_eq!(ifaces[1]["name"], "eth0");
    assert_eq!(ifaces[1]["sandbox"], ctr.path());
    let ip = &result["ips"][0];
    assert_eq!(ip["interface"], 1);
    assert_eq!(ip["address"], "10.77.0.2/24");
    assert_eq!(ip["gateway"], "10.77.0.1");
    if version.starts_with("0.") {
        assert_eq!(ip["version"], "4");
    } else {
        assert!(ip.get("version").is_none());
    }
    assert_eq!(result["dns"]["nameservers"][0], "10.1.0.53");

    // Container side: the address, the gateway /32 with src, the subnet
    // via the gateway, and the default route from IPAM.
    assert!(
        ctr.addrs("eth0").contains(&"10.77.0.2/24".to_string()),
        "{:?}",
        ctr.addrs("eth0")
    );
    let link = &ctr.ip_json(&["link", "show", "eth0"])[0];
    assert_eq!(link["mtu"], 1400);
    // One queue each way on both ends, as many as the reference's veths
    // use (theirs are made with one per CPU, all but one then disabled).
    for (ns, dev) in [(ctr, "eth0"), (host, host_veth.as_str())] {
        let details = link_details(ns, dev);
        assert_eq!(details["num_tx_queues"], 1, "{dev}: {details}");
        assert_eq!(details["num_rx_queues"], 1, "{dev}: {details}");
    }
    let routes = ctr.routes();
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("default via 10.77.0.1 dev eth0")),
        "{routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("10.77.0.0/24 via 10.77.0.1 dev eth0")
                && r.contains("src 10.77.0.2")),
        "{routes:?}"
    );
    assert!(
        routes.iter().any(|r| r.starts_with("10.77.0.1 dev eth0")
            && r.contains("scope link")
            && r.contains("src 10.77.0.2")),
        "{routes:?}"
    );
    assert!(
        !routes
            .iter()
            .any(|r| r.starts_with("10.77.0.0/24 dev eth0")),
        "subnet route kept: {routes:?}"
    );

    // Host side: gateway /32 on the veth, /32 route to the container.
    assert!(host.addrs(&host_veth).contains(&"10.77.0.1/32".to_string()));
    let host_routes = host.routes();
    assert!(
        host_routes
            .iter()
            .any(|r| r.starts_with(&format!("10.77.0.2 dev {host_veth}"))),
        "{host_routes:?}"
    );
    assert_eq!(
        host.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );

    assert!(
        ctr.try_exec(&["ping", "-c1", "-w5", "10.77.0.1"]),
        "container cannot ping its gateway"
    );
}

#[test]
fn add_check_del_across_versions() {
    for version in VERSIONS {
        let host = Netns::new("ph");
        let ctr = Netns::new("pc");
        let data = data_dir();
        let net = unique("ptpnet");
        let host_before = host.snapshot();
        let ctr_before = ctr.snapshot();
        let conf = ptp_conf(version, &net, data.path(), v4_ranges());

        let add = Call::rcni("ptp", "ADD", &host, Some(&ctr));
        let result = add.run(&conf).ok();
        assert_attached(&host, &ctr, &result, version);
        assert_eq!(allocated_ips(data.path(), &net), ["10.77.0.2"]);

        if *version != "0.3.1" {
            let mut check_conf = conf.clone();
            check_conf["prevResult"] = result.clone();
            add.clone().command("CHECK").run(&check_conf).ok();
        }

        let mut del_conf = conf.clone();
        if *version != "0.3.1" {
            del_conf["prevResult"] = result.clone();
        }
        add.clone().command("DEL").run(&del_conf).ok();
        assert_eq!(
            host.snapshot(),
            host_before,
            "host not clean after DEL ({version})"
        );
        assert_eq!(
            ctr.snapshot(),
            ctr_before,
            "container not clean after DEL ({version})"
        );
        assert!(allocated_ips(data.path(), &net).is_empty());

        // DEL is idempotent, and succeeds once the netns is gone.
        add.clone().command("DEL").run(&del_conf).ok();
        drop(ctr);
        add.clone().command("DEL").run(&del_conf).ok();
    }
}

#[test]
fn legacy_versions_get_the_ip4_shape() {
    for version in ["0.1.0", "0.2.0"] {
        let host = Netns::new("ph");
        let ctr = Netns::new("pc");
        let data = data_dir();
        let net = unique("ptpnet");
        let conf = ptp_conf(version, &net, data.path(), v4_ranges());
        let add = Call::rcni("ptp", "ADD", &host, Some(&ctr));
        let result = add.run(&conf).ok();
        assert_eq!(result["cniVersion"], version);
        assert_eq!(result["ip4"]["ip"], "10.77.0.2/24");
        assert_eq!(result["ip4"]["gateway"], "10.77.0.1");
        assert!(result.get("interfaces").is_none());
        assert!(ctr.try_exec(&["ping", "-c1", "-w5", "10.77.0.1"]));
        add.clone().command("DEL").run(&conf).ok();
        assert!(allocated_ips(data.path(), &net).is_empty());
        assert_eq!(ctr.links(), ["lo"]);
    }
}

#[test]
fn dual_stack() {
    let host = Netns::new("ph");
    let ctr = Netns::new("pc");
    let data = data_dir();
    let net = unique("ptpnet");
    let host_before = host.snapshot();
    let mut conf = ptp_conf(
        "1.0.0",
        &net,
        data.path(),
        json!([[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd00:77::/64"}]]),
    );
    conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
    let add = Call::rcni("ptp", "ADD", &host, Some(&ctr));
    let result = add.run(&conf).ok();
    assert_eq!(result["ips"][1]["address"], "fd00:77::2/64");
    assert_eq!(result["ips"][1]["gateway"], "fd00:77::1");
    assert!(ctr.addrs("eth0").contains(&"fd00:77::2/64".to_string()));
    let routes = ctr.routes();
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("default via fd00:77::1 dev eth0")),
        "{routes:?}"
    );
    assert!(
        ctr.try_exec(&["ping", "-6", "-c1", "-w5", "fd00:77::1"]),
        "no IPv6 reachability"
    );
    add.clone().command("DEL").run(&conf).ok();
    assert_eq!(host.snapshot(), host_before);
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn two_containers_get_distinct_addresses() {
    let host = Netns::new("ph");
    let (a, b) = (Netns::new("pa"), Netns::new("pb"));
    let data = data_dir();
    let net = unique("ptpnet");
    let conf = ptp_conf("1.0.0", &net, data.path(), v4_ranges());
    let ra = Call::rcni("ptp", "ADD", &host, Some(&a))
        .id("a")
        .run(&conf)
        .ok();
    let rb = Call::rcni("ptp", "ADD", &host, Some(&b))
        .id("b")
        .run(&conf)
        .ok();
    assert_eq!(ra["ips"][0]["address"], "10.77.0.2/24");
    assert_eq!(rb["ips"][0]["address"], "10.77.0.3/24");
    // Each reaches the other through the host.
    assert!(a.try_exec(&["ping", "-c1", "-w5", "10.77.0.3"]));
    Call::rcni("ptp", "DEL", &host, Some(&a))
        .id("a")
        .run(&conf)
        .ok();
    assert_eq!(allocated_ips(data.path(), &net), ["10.77.0.3"]);
    assert!(
        b.try_exec(&["ping", "-c1", "-w5", "10.77.0.1"]),
        "b lost connectivity when a left"
    );
    Call::rcni("ptp", "DEL", &host, Some(&b))
        .id("b")
        .run(&conf)
        .ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn ipam_failure_leaves_no_veth() {
    let host = Netns::new("ph");
    let ctr = Netns::new("pc");
    let data = data_dir();
    let net = unique("ptpnet");
    let host_before = host.snapshot();
    // A /30 has one usable address besides the gateway.
    let conf = ptp_conf(
        "1.0.0",
        &net,
        data.path(),
        json!([[{"subnet": "10.77.0.0/30"}]]),
    );
    Call::rcni("ptp", "ADD", &host, Some(&ctr))
        .id("first")
        .run(&conf)
        .ok();
    let other = Netns::new("pc");
    let (code, msg) = Call::rcni("ptp", "ADD", &host, Some(&other))
        .id("second")
        .run(&conf)
        .err();
    assert!(msg.contains("no IP addresses available"), "{code} {msg}");
    assert_eq!(other.links(), ["lo"]);
    Call::rcni("ptp", "DEL", &host, Some(&ctr))
        .id("first")
        .run(&conf)
        .ok();
    assert_eq!(host.snapshot(), host_before);
}

#[test]
fn del_tears_down_every_step_when_one_fails() {
    let host = Netns::new("ph");
    let ctr = Netns::new("pc");
    let data = data_dir();
    let net = unique("ptpnet");
    let host_before = host.snapshot();
    let conf = with(
        ptp_conf("1.0.0", &net, data.path(), v4_ranges()),
        "ipMasq",
        json!(true),
    );
    Call::rcni("ptp", "ADD", &host, Some(&ctr)).run(&conf).ok();
    assert!(host.exec(&["iptables-save", "-t", "nat"]).contains("CNI-"));

    // The IPAM plugin cannot be found: DEL fails, but only after the link
    // and the masquerading are gone.
    let mut broken = conf.clone();
    broken["ipam"]["type"] = json!("no-such-ipam");
    let (code, msg) = Call::rcni("ptp", "DEL", &host, Some(&ctr))
        .run(&broken)
        .err();
    assert!(msg.contains("no-such-ipam"), "{code} {msg}");
    assert_only_lo(&ctr);
    assert_eq!(host.snapshot(), host_before);
    assert!(
        !host.exec(&["iptables-save", "-t", "nat"]).contains("CNI-"),
        "masquerading left after a DEL whose IPAM step failed"
    );
    assert_eq!(allocated_ips(data.path(), &net), ["10.77.0.2"]);

    // The runtime retries: the address goes too.
    Call::rcni("ptp", "DEL", &host, Some(&ctr)).run(&conf).ok();
    assert!(allocated_ips(data.path(), &net).is_empty());
}

#[test]
fn failure_after_ipam_releases_the_address() {
    let host = Netns::new("ph");
    let ctr = Netns::new("pc");
    let data = data_dir();
    let net = unique("ptpnet");
    let host_before = host.snapshot();
    // eth0 already exists in the container: the veth cannot be created.
    ctr.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let ctr_before = ctr.snapshot();
    let conf = ptp_conf("1.0.0", &net, data.path(), v4_ranges());
    let (_, msg) = Call::rcni("ptp", "ADD", &host, Some(&ctr)).run(&conf).err();
    assert!(msg.contains("eth0"), "{msg}");
    assert!(
        allocated_ips(data.path(), &net).is_empty(),
        "IP leaked after a failed ADD"
    );
    assert_eq!(host.snapshot(), host_before);
    assert_eq!(ctr.snapshot(), ctr_before);
}

#[test]
fn missing_netns_is_an_error_on_add() {
    let host = Netns::new("ph");
    let data = data_dir();
    let net = unique("ptpnet");
    let conf = ptp_conf("1.0.0", &net, data.path(), v4_ranges());
    let mut call = Call::rcni("ptp", "ADD", &host, None);
    call.netns = "/run/netns/does-not-exist-rcni".into();
    let (_, msg) = call.run(&conf).err();
    assert!(msg.contains("does-not-exist-rcni"), "{msg}");
    assert!(allocated_ips(data.path(), &net).is_empty());
}
