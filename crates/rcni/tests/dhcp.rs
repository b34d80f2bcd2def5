//! dhcp IPAM and its daemon against real servers: a "LAN" namespace runs
//! dnsmasq (DHCPv4, DHCPv6 and router advertisements; or ISC dhcpd for
//! short DHCPv4 leases) behind a veth `m0` of the test's
//! "host" namespace; containers join it by macvlan on `m0` or by a bridge
//! that has `m0` as a port. The daemon runs in the host namespace with its
//! own socket and state dir. What is checked is what a user sees: the
//! address and routes in the container, the server's lease file and log,
//! and that DEL leaves nothing behind.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = "10.77.0.1";
/// The server's IPv6 address, in the /64 that dnsmasq advertises on-link.
const SERVER6: &str = "fd77::1";
const DNS6: &str = "fd77::53";

/// A process killed (SIGKILL) and reaped on drop, also when a test panics.
struct Running(Child);

impl Running {
    /// `cmd` started with no input and its output discarded.
    fn quiet(mut cmd: Command) -> Running {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The LAN: its namespace (holding `m0p`, the far end of the host's
/// `m0`, with the server's address) and a DHCP server in it.
struct Lan {
    ns: Netns,
    dir: tempfile::TempDir,
    server: Option<Running>,
}

impl Lan {
    fn new() -> Lan {
        let ns = Netns::new("dl");
        Lan {
            ns,
            dir: tempfile::tempdir().unwrap(),
            server: None,
        }
    }

    fn up(&self) {
        self.ns
            .exec(&["ip", "addr", "add", &format!("{SERVER}/24"), "dev", "m0p"]);
        self.ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{SERVER6}/64"),
            "dev",
            "m0p",
            "nodad",
        ]);
    }

    fn leases(&self) -> PathBuf {
        self.dir.path().join("leases")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn lease_file(&self) -> String {
        std::fs::read_to_string(self.leases()).unwrap_or_default()
    }

    /// dnsmasq with a 2-minute lease and T1 after a minute (its minimums),
    /// a router, and option-121 routes (one without a router); and DHCPv6
    /// from `fd77::10`–`fd77::ff` (2-minute leases, a DNS server) with
    /// router advertisements of `fd77::/64`.
    fn dnsmasq(&mut self) {
        self.dnsmasq_with(true);
    }

    fn dnsmasq_with(&mut self, v6: bool) {
        self.up();
        let d = self.dir.path();
        let args = [
            "dnsmasq".to_string(),
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            "--user=root".into(),
            "--interface=m0p".into(),
            "--bind-interfaces".into(),
            "--dhcp-authoritative".into(),
            // No ping of an address before offering it: 3 s per ADD.
            "--no-ping".into(),
            "--dhcp-range=10.77.0.50,10.77.0.150,255.255.255.0,2m".into(),
            format!("--dhcp-option=option:router,{SERVER}"),
            format!("--dhcp-option=option:classless-static-route,10.99.0.0/16,{SERVER},10.98.0.0/24,0.0.0.0,0.0.0.0/0,{SERVER}"),
            "--dhcp-option=option:T1,60".into(),
            "--dhcp-option=option:T2,90".into(),
            format!("--dhcp-leasefile={}", self.leases().display()),
            "--log-dhcp".into(),
            format!("--log-facility={}", d.join("log").display()),
            format!("--pid-file={}", d.join("pid").display()),
        ];
        let v6_args = [
            "--dhcp-range=fd77::10,fd77::ff,64,2m".to_string(),
            "--enable-ra".into(),
            format!("--dhcp-option=option6:dns-server,[{DNS6}]"),
        ];
        let mut args = args.to_vec();
        if v6 {
            args.extend(v6_args);
        }
        self.start(&args);
    }

    /// ISC dhcpd with 10-second leases.
    fn dhcpd(&mut self) {
        self.dhcpd_with(
            "-4",
            format!(
                "subnet 10.77.0.0 netmask 255.255.255.0 {{\n  range 10.77.0.50 10.77.0.150;\n  \
                 option routers {SERVER};\n}}\n"
            ),
        );
    }

    /// ISC dhcpd in DHCPv6 mode with 10-second lifetimes, from the same
    /// range as dnsmasq's.
    fn dhcpd6(&mut self) {
        self.dhcpd_with(
            "-6",
            "preferred-lifetime 10;\nsubnet6 fd77::/64 {\n  range6 fd77::10 fd77::ff;\n}\n".into(),
        );
    }

    /// dhcpd (`family`: `-4` or `-6`) with 10-second leases and `subnet`.
    fn dhcpd_with(&mut self, family: &str, subnet: String) {
        self.up();
        let d = self.dir.path();
        let conf = d.join("dhcpd.conf");
        std::fs::write(
            &conf,
            format!(
                "default-lease-time 10;\nmax-lease-time 10;\nmin-lease-time 10;\nauthoritative;\n\
                 {subnet}"
            ),
        )
        .unwrap();
        std::fs::write(self.leases(), "").unwrap();
        let args = [
            "dhcpd".to_string(),
            "-f".into(),
            family.into(),
            "-cf".into(),
            conf.display().to_string(),
            "-lf".into(),
            self.leases().display().to_string(),
            "-pf".into(),
            d.join("pid").display().to_string(),
            "m0p".into(),
        ];
        self.start(&args);
    }

    fn start(&mut self, args: &[String]) {
        let log = std::fs::File::create(self.dir.path().join("stderr")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some(Running(child));
        std::thread::sleep(Duration::from_millis(500));
    }

    fn stop(&mut self) {
        self.server = None;
    }
}

/// rcni's daemon in the host namespace, with a socket and state dir of
/// its own; killed with SIGKILL on drop.
struct Daemon {
    host: String,
    dir: tempfile::TempDir,
    child: Option<Running>,
}

impl Daemon {
    fn start(host: &Netns) -> Daemon {
        let mut d = Daemon {
            host: host.name.clone(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        d.run();
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("dhcp.sock")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.host])
            .arg(rcni_binary())
            .args(["dhcp", "daemon", "-socketpath"])
            .arg(self.socket())
            .arg("-statedir")
            .arg(self.state())
            .args([
                "-timeout",
                "2s",
                "-resendmax",
                "4s",
                "-resendtimeout",
                "30s",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(Running(child));
        wait_for("the daemon's socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
        });
    }

    fn kill(&mut self) {
        self.child = None;
    }

    fn records(&self) -> Vec<String> {
        read_dir_names(&self.state())
    }
}

/// Whether `ok` holds within `limit`.
fn eventually(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

fn wait_for(what: &str, limit: Duration, ok: impl FnMut() -> bool) {
    assert!(eventually(limit, ok), "timed out waiting for {what}");
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Macvlan,
    Bridge,
}

/// A host with `m0` joined to `lan`, and what a network of `kind` needs.
fn host_for(kind: Kind, lan: &Lan) -> World {
    let w = World::with_master("dh", Some(&lan.ns));
    if let Kind::Bridge = kind {
        w.host
            .exec(&["ip", "link", "add", "dbr0", "type", "bridge"]);
        w.host.exec(&["ip", "link", "set", "m0", "master", "dbr0"]);
        w.host.exec(&["ip", "link", "set", "dbr0", "up"]);
    }
    w
}

fn conf(kind: Kind, w: &World, d: &Daemon, ipam_extra: Value) -> Value {
    let mut ipam = json!({"type": "dhcp", "daemonSocketPath": d.socket(),
        "request": [{"option": "121"}]});
    for (k, v) in ipam_extra.as_object().unwrap() {
        ipam[k] = v.clone();
    }
    let mut c = json!({"cniVersion": "1.1.0", "name": w.net, "ipam": ipam});
    match kind {
        Kind::Macvlan => {
            c["type"] = json!("macvlan");
            c["master"] = json!("m0");
            c["mode"] = json!("bridge");
        }
        Kind::Bridge => {
            c["type"] = json!("bridge");
            c["bridge"] = json!("dbr0");
            c["isGateway"] = json!(false);
        }
    }
    c
}

fn plugin(kind: Kind) -> &'static str {
    match kind {
        Kind::Macvlan => "macvlan",
        Kind::Bridge => "bridge",
    }
}

fn add(kind: Kind, w: &World, ctr: &Netns, id: &str, conf: &Value) -> Value {
    Call::rcni(plugin(kind), "ADD", &w.host, Some(ctr))
        .id(id)
        .run(conf)
        .ok()
}

fn del(kind: Kind, w: &World, ctr: Option<&Netns>, id: &str, conf: &Value) {
    Call::rcni(plugin(kind), "DEL", &w.host, ctr)
        .id(id)
        .run(conf)
        .ok();
}

fn address_of(result: &Value) -> String {
    result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

fn v4_addrs(ctr: &Netns) -> Vec<String> {
    let mut v4 = ctr.addrs("eth0");
    v4.retain(|a| !a.contains(':'));
    v4
}

fn in_pool(addr: &str) -> bool {
    let last: u32 = addr.strip_prefix("10.77.0.").unwrap().parse().unwrap();
    (50..=150).contains(&last)
}

// ---- an address, the gateway and option-121 routes; DEL releases ----

fn lease_routes_and_release(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, json!({}));
    let r = add(kind, &w, &ctr, "c1", &c);
    let addr = address_of(&r);
    assert!(in_pool(&addr), "{r}");
    assert_eq!(r["ips"][0]["address"], format!("{addr}/24"));
    assert_eq!(r["ips"][0]["gateway"], SERVER);
    let routes = r["routes"].to_string();
    assert!(
        routes.contains(r#"{"dst":"10.99.0.0/16","gw":"10.77.0.1"}"#),
        "{routes}"
    );
    assert!(
        routes.contains(r#"{"dst":"10.98.0.0/24","scope":253}"#),
        "{routes}"
    );
    assert!(
        routes.contains(r#"{"dst":"0.0.0.0/0","gw":"10.77.0.1"}"#),
        "{routes}"
    );
    assert_eq!(v4_addrs(&ctr), [format!("{addr}/24")]);
    let in_ctr = ctr.routes();
    for want in [
        "default via 10.77.0.1 dev eth0",
        "10.99.0.0/16 via 10.77.0.1 dev eth0",
        "10.98.0.0/24 dev eth0 scope link",
    ] {
        assert!(
            in_ctr.iter().any(|r| r.starts_with(want)),
            "{want}: {in_ctr:?}"
        );
    }
    // The container reaches the server through its lease.
    assert!(ctr.try_exec(&["ping", "-c1", "-W2", SERVER]));
    assert!(lan.lease_file().contains(&addr), "{}", lan.lease_file());
    assert_eq!(d.records().len(), 1);

    del(kind, &w, Some(&ctr), "c1", &c);
    wait_for("DHCPRELEASE in the log", Duration::from_secs(5), || {
        lan.log().contains(&format!("DHCPRELEASE(m0p) {addr}"))
    });
    wait_for(
        "the lease to leave the lease file",
        Duration::from_secs(5),
        || !lan.lease_file().contains(&addr),
    );
    assert_only_lo(&ctr);
    assert!(d.records().is_empty(), "{:?}", d.records());
    // DEL again: no lease is success.
    del(kind, &w, Some(&ctr), "c1", &c);
}

#[test]
fn macvlan_lease_gateway_routes_and_release() {
    lease_routes_and_release(Kind::Macvlan);
}

#[test]
fn bridge_lease_gateway_routes_and_release() {
    lease_routes_and_release(Kind::Bridge);
}

/// dnsmasq's DHCPv4 leases as (MAC, address, client id) lines: what a
/// renewal must not change (the expiry column does).
fn lease_entries(lan: &Lan) -> Vec<String> {
    dnsmasq_leases(lan, false)
}

/// dnsmasq's DHCPv6 leases as (IAID, address, client DUID) lines.
fn lease_entries6(lan: &Lan) -> Vec<String> {
    dnsmasq_leases(lan, true)
}

/// The lease lines of one family (its `duid` line left out): columns 2,
/// 3 and 5, the expiry and host name left out.
fn dnsmasq_leases(lan: &Lan, v6: bool) -> Vec<String> {
    let mut entries: Vec<String> = lan
        .lease_file()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(|f| f.len() >= 4 && f[0] != "duid" && f[2].contains(':') == v6)
        .map(|f| format!("{} {} {}", f[1], f[2], f.get(4).unwrap_or(&"")))
        .collect();
    entries.sort();
    entries
}

/// How many times dnsmasq logged `what` (DHCPREQUEST, DHCPACK, ...) for
/// `addr`.
fn logged(lan: &Lan, what: &str, addr: &str) -> usize {
    let needle = format!("{what}(m0p) {addr}");
    lan.log().lines().filter(|l| l.contains(&needle)).count()
}

// ---- renewal at T1 keeps the address ----

fn renewal_keeps_the_address(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, json!({}));
    let addr = address_of(&add(kind, &w, &ctr, "c1", &c));
    let before = lease_entries(&lan);
    let discovers = logged(&lan, "DHCPDISCOVER", "");
    // The acquisition's own ACK, then the renewal at T1 (60 s).
    let renewed = eventually(Duration::from_secs(90), || {
        logged(&lan, "DHCPACK", &addr) >= 2
    });
    assert!(renewed, "no renewal: {}\n{}", lan.log(), d.log());
    assert_eq!(logged(&lan, "DHCPDISCOVER", ""), discovers, "{}", lan.log());
    // What was waited for can come before the daemon's log line.
    let said = eventually(Duration::from_secs(10), || {
        d.log().contains("lease renewed")
    });
    assert!(said, "{}", d.log());
    assert_eq!(v4_addrs(&ctr), [format!("{addr}/24")]);
    assert_eq!(lease_entries(&lan), before);
    del(kind, &w, Some(&ctr), "c1", &c);
    assert_only_lo(&ctr);
}

#[test]
fn macvlan_renewal_keeps_the_address() {
    renewal_keeps_the_address(Kind::Macvlan);
}

#[test]
fn bridge_renewal_keeps_the_address() {
    renewal_keeps_the_address(Kind::Bridge);
}

// ---- SIGKILL and restart: leases resumed, renewals go on ----

fn restart_keeps_leases(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let mut d = Daemon::start(&w.host);
    let ctrs = [Netns::new("dc"), Netns::new("dc")];
    let c = conf(kind, &w, &d, json!({}));
    let addrs: Vec<String> = ctrs
        .iter()
        .enumerate()
        .map(|(i, ctr)| address_of(&add(kind, &w, ctr, &format!("c{i}"), &c)))
        .collect();
    // A third container goes away while the daemon is down: its record is
    // dropped at the restart (the server keeps its lease until it expires).
    let gone = Netns::new("dc");
    add(kind, &w, &gone, "gone", &c);
    assert_eq!(d.records().len(), 3);
    let before = lease_entries(&lan);
    assert_eq!(before.len(), 3, "{before:?}");
    let discovers = logged(&lan, "DHCPDISCOVER", "");
    let acks: Vec<usize> = addrs.iter().map(|a| logged(&lan, "DHCPACK", a)).collect();
    d.kill();
    let name = gone.name.clone();
    std::mem::forget(gone);
    sh("ip", &["netns", "del", &name]);
    d.run();
    wait_for(
        "the gone container's record dropped",
        Duration::from_secs(10),
        || d.records().len() == 2,
    );
    // What was waited for can come before the daemon's log line.
    let said = eventually(Duration::from_secs(10), || {
        d.log().contains("dropping the lease")
    });
    assert!(said, "{}", d.log());
    wait_for("both leases resumed", Duration::from_secs(10), || {
        d.log().matches("lease resumed").count() == 2
    });
    // A resumed lease is renewed at once (and then at T1).
    wait_for(
        "renewals after the restart",
        Duration::from_secs(20),
        || {
            addrs
                .iter()
                .zip(&acks)
                .all(|(a, n)| logged(&lan, "DHCPACK", a) > *n)
        },
    );
    // No new DISCOVER: the same leases, renewed.
    assert_eq!(logged(&lan, "DHCPDISCOVER", ""), discovers, "{}", lan.log());
    assert_eq!(lease_entries(&lan), before);
    for (ctr, addr) in ctrs.iter().zip(&addrs) {
        assert_eq!(v4_addrs(ctr), [format!("{addr}/24")]);
    }
    // The restarted daemon still releases them.
    for (i, ctr) in ctrs.iter().enumerate() {
        del(kind, &w, Some(ctr), &format!("c{i}"), &c);
        assert_only_lo(ctr);
    }
    wait_for("both released", Duration::from_secs(5), || {
        addrs.iter().all(|a| logged(&lan, "DHCPRELEASE", a) == 1)
    });
    assert!(d.records().is_empty());
    // The dropped one has no lease left: DEL succeeds.
    del(kind, &w, None, "gone", &c);
}

#[test]
fn macvlan_daemon_sigkill_and_restart_keeps_leases() {
    restart_keeps_leases(Kind::Macvlan);
}

#[test]
fn bridge_daemon_sigkill_and_restart_keeps_leases() {
    restart_keeps_leases(Kind::Bridge);
}

// ---- DEL after the runtime removed the netns still releases ----

fn del_without_netns_releases(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, json!({}));
    let addr = address_of(&add(kind, &w, &ctr, "c1", &c));
    // Removed as a runtime removes it; nothing is left for the guard to do.
    let name = ctr.name.clone();
    std::mem::forget(ctr);
    sh("ip", &["netns", "del", &name]);
    del(kind, &w, None, "c1", &c);
    wait_for("DHCPRELEASE", Duration::from_secs(5), || {
        logged(&lan, "DHCPRELEASE", &addr) == 1
    });
    assert!(!lan.lease_file().contains(&addr));
    assert!(d.records().is_empty());
    // Once released, the daemon lets the namespace go, and its links.
    if let Kind::Bridge = kind {
        wait_for("the host veth to go", Duration::from_secs(5), || {
            w.host.links().iter().all(|l| !l.starts_with("veth"))
        });
    }
}

#[test]
fn macvlan_del_after_netns_deleted_releases() {
    del_without_netns_releases(Kind::Macvlan);
}

#[test]
fn bridge_del_after_netns_deleted_releases() {
    del_without_netns_releases(Kind::Bridge);
}

// ---- 20 containers at once ----

fn twenty_at_once(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let c = conf(kind, &w, &d, json!({}));
    let ctrs: Vec<Netns> = (0..20).map(|_| Netns::new("dc")).collect();
    let addrs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let (w, c) = (&w, &c);
                s.spawn(move || address_of(&add(kind, w, ctr, &format!("c{i}"), c)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut distinct = addrs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 20, "{addrs:?}");
    for (ctr, addr) in ctrs.iter().zip(&addrs) {
        assert!(in_pool(addr));
        assert_eq!(v4_addrs(ctr), [format!("{addr}/24")]);
    }
    assert_eq!(lease_entries(&lan).len(), 20);
    assert_eq!(d.records().len(), 20);
    std::thread::scope(|s| {
        for (i, ctr) in ctrs.iter().enumerate() {
            let (w, c) = (&w, &c);
            s.spawn(move || del(kind, w, Some(ctr), &format!("c{i}"), c));
        }
    });
    wait_for("every lease released", Duration::from_secs(10), || {
        lease_entries(&lan).is_empty()
    });
    assert!(d.records().is_empty());
    for ctr in &ctrs {
        assert_only_lo(ctr);
    }
}

#[test]
fn macvlan_twenty_containers_at_once_get_distinct_leases() {
    twenty_at_once(Kind::Macvlan);
}

#[test]
fn bridge_twenty_containers_at_once_get_distinct_leases() {
    twenty_at_once(Kind::Bridge);
}

// ---- expiry: the server is gone, the interface goes down ----

fn expiry_stops_using_the_lease(kind: Kind, v6: bool) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    if v6 {
        lan.dhcpd6();
    } else {
        lan.dhcpd();
    }
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let families = if v6 {
        json!({"ipFamilies": ["ipv6"]})
    } else {
        json!({})
    };
    let c = conf(kind, &w, &d, families);
    let r = add(kind, &w, &ctr, "c1", &c);
    let (addr, pooled) = if v6 {
        let a = address6_of(&r);
        (a.clone(), in_pool6(&a))
    } else {
        let a = address_of(&r);
        (a.clone(), in_pool(&a))
    };
    assert!(pooled, "{r}");
    wait_for(
        "the lease in the lease file",
        Duration::from_secs(5),
        || lan.lease_file().contains(&addr),
    );
    assert_eq!(link_details(&ctr, "eth0")["operstate"], "UP");
    lan.stop();
    if v6 {
        // An expired v6 address goes; the link (and any IPv4 on it) stays.
        wait_for("the address to go", Duration::from_secs(30), || {
            !ctr.addrs("eth0")
                .iter()
                .any(|a| a.starts_with(&format!("{addr}/")))
        });
        assert_eq!(link_details(&ctr, "eth0")["operstate"], "UP");
    } else {
        wait_for("the interface to go down", Duration::from_secs(30), || {
            let flags = link_details(&ctr, "eth0")["flags"].to_string();
            !flags.contains("\"UP\"")
        });
    }
    let family = if v6 { "ipv6" } else { "ipv4" };
    let expired = format!("({family}): lease expired");
    assert!(d.log().contains(&expired), "{}", d.log());
    assert!(d.records().is_empty());
    // The lease is gone: DEL still succeeds and cleans up.
    del(kind, &w, Some(&ctr), "c1", &c);
    assert_only_lo(&ctr);
}

#[test]
fn macvlan_expiry_without_server_sets_the_interface_down() {
    expiry_stops_using_the_lease(Kind::Macvlan, false);
}

#[test]
fn bridge_expiry_without_server_sets_the_interface_down() {
    expiry_stops_using_the_lease(Kind::Bridge, false);
}

#[test]
fn macvlan_v6_expiry_without_server_removes_the_address() {
    expiry_stops_using_the_lease(Kind::Macvlan, true);
}

#[test]
fn bridge_v6_expiry_without_server_removes_the_address() {
    expiry_stops_using_the_lease(Kind::Bridge, true);
}

// ---- upkeep stops when the interface goes ----

#[test]
fn upkeep_stops_when_the_interface_is_deleted() {
    let kind = Kind::Macvlan;
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, json!({}));
    add(kind, &w, &ctr, "c1", &c);
    assert_eq!(d.records().len(), 1);
    ctr.exec(&["ip", "link", "del", "eth0"]);
    wait_for("upkeep to stop", Duration::from_secs(15), || {
        d.records().is_empty()
    });
    assert!(d.log().contains("the interface is gone"), "{}", d.log());
    // Nothing left to release: DEL succeeds.
    del(kind, &w, Some(&ctr), "c1", &c);
}

// ---- CHECK, STATUS and GC (dual-stack) ----

#[test]
fn check_status_and_gc() {
    let kind = Kind::Macvlan;
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let mut d = Daemon::start(&w.host);
    let c = conf(kind, &w, &d, dual_stack());
    let (a, b) = (Netns::new("dc"), Netns::new("dc"));
    let ra = add(kind, &w, &a, "ca", &c);
    let addr_b = address_of(&add(kind, &w, &b, "cb", &c));

    let mut with_prev = c.clone();
    with_prev["prevResult"] = ra.clone();
    Call::rcni("macvlan", "CHECK", &w.host, Some(&a))
        .id("ca")
        .run(&with_prev)
        .ok();
    // No lease for this attachment.
    let (code, msg) = Call::rcni("dhcp", "CHECK", &w.host, Some(&a))
        .id("nobody")
        .run(&with_prev)
        .err();
    assert_eq!(code, 999, "{msg}");
    assert!(msg.contains("no DHCP lease"), "{msg}");

    Call::rcni("dhcp", "STATUS", &w.host, None).run(&c).ok();

    // GC keeps "ca" only: "cb" is released.
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ca", "ifname": "eth0"}]);
    Call::rcni("dhcp", "GC", &w.host, None).run(&gc).ok();
    wait_for("cb released by GC", Duration::from_secs(10), || {
        logged(&lan, "DHCPRELEASE", &addr_b) == 1 && logged6(&lan, "DHCPRELEASE") == 1
    });
    assert_eq!(d.records().len(), 2, "{:?}", d.records());
    assert_eq!(logged(&lan, "DHCPRELEASE", &address_of(&ra)), 0);
    assert!(lan.lease_file().contains(&address6_of(&ra)));
    Call::rcni("dhcp", "CHECK", &w.host, Some(&a))
        .id("ca")
        .run(&with_prev)
        .ok();

    // Without a daemon, STATUS says the plugin is not available.
    d.kill();
    let (code, msg) = Call::rcni("dhcp", "STATUS", &w.host, None).run(&c).err();
    assert_eq!(code, 50, "{msg}");
    d.run();
    del(kind, &w, Some(&a), "ca", &c);
    del(kind, &w, Some(&b), "cb", &c);
    assert_only_lo(&a);
    assert_only_lo(&b);
}

// ---- DHCPv6 ----

fn dual_stack() -> Value {
    json!({"ipFamilies": ["ipv4", "ipv6"]})
}

/// The result's IPv6 address, without its /128.
fn address6_of(result: &Value) -> String {
    let ips = result["ips"].as_array().unwrap();
    let v6: Vec<&str> = ips
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .filter(|a| a.contains(':'))
        .collect();
    assert_eq!(v6.len(), 1, "{result}");
    let (addr, len) = v6[0].split_once('/').unwrap();
    assert_eq!(len, "128", "{result}");
    addr.to_string()
}

/// The container's IPv6 addresses but the link-local one.
fn v6_addrs(ctr: &Netns) -> Vec<String> {
    let mut v6 = ctr.addrs("eth0");
    v6.retain(|a| a.contains(':') && !a.starts_with("fe80:"));
    v6
}

fn in_pool6(addr: &str) -> bool {
    let ip: std::net::Ipv6Addr = addr.parse().unwrap();
    let s = ip.segments();
    s[..7] == [0xfd77, 0, 0, 0, 0, 0, 0] && (0x10..=0xff).contains(&s[7])
}

/// How many DHCPv6 messages of `kind` (DHCPSOLICIT, DHCPRENEW, ...)
/// dnsmasq logged; its DHCPv4 lines name an address of 10.77.0.0/24.
fn logged6(lan: &Lan, kind: &str) -> usize {
    let tag = format!("{kind}(m0p)");
    lan.log()
        .lines()
        .filter(|l| l.contains(&tag) && !l.contains(" 10.77."))
        .count()
}

/// Both addresses in the result and on the container's link, the IPv6 one
/// a /128 without gateway; the server reached over IPv6 through the on-link
/// route of its router advertisements; CHECK; DEL releases both.
fn dual_stack_lease_and_release(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, dual_stack());
    let r = add(kind, &w, &ctr, "c1", &c);
    let (addr, addr6) = (address_of(&r), address6_of(&r));
    assert!(in_pool(&addr), "{r}");
    assert!(in_pool6(&addr6), "{r}");
    assert_eq!(r["ips"][0]["address"], format!("{addr}/24"));
    assert_eq!(r["ips"][1]["address"], format!("{addr6}/128"));
    assert!(r["ips"][1].get("gateway").is_none(), "{r}");
    assert_eq!(r["dns"]["nameservers"], json!([DNS6]), "{r}");
    assert_eq!(v4_addrs(&ctr), [format!("{addr}/24")]);
    assert_eq!(v6_addrs(&ctr), [format!("{addr6}/128")]);
    wait_for(
        "the advertised on-link route",
        Duration::from_secs(20),
        || {
            ctr.routes()
                .iter()
                .any(|r| r.starts_with("fd77::/64 dev eth0"))
        },
    );
    assert!(ctr.try_exec(&["ping", "-6", "-c1", "-W2", SERVER6]));
    wait_for(
        "both leases in the lease file",
        Duration::from_secs(5),
        || lease_entries(&lan).len() == 1 && lease_entries6(&lan).len() == 1,
    );
    assert!(lan.lease_file().contains(&addr6), "{}", lan.lease_file());
    assert_eq!(d.records().len(), 2, "{:?}", d.records());
    let mut with_prev = c.clone();
    with_prev["prevResult"] = r.clone();
    Call::rcni(plugin(kind), "CHECK", &w.host, Some(&ctr))
        .id("c1")
        .run(&with_prev)
        .ok();
    // The same ADD again answers with the same leases.
    let again = Call::rcni("dhcp", "ADD", &w.host, Some(&ctr))
        .id("c1")
        .run(&c)
        .ok();
    assert_eq!(address_of(&again), addr);
    assert_eq!(address6_of(&again), addr6);

    del(kind, &w, Some(&ctr), "c1", &c);
    wait_for("both RELEASEs", Duration::from_secs(10), || {
        logged(&lan, "DHCPRELEASE", &addr) == 1 && logged6(&lan, "DHCPRELEASE") == 1
    });
    wait_for(
        "both leases to leave the lease file",
        Duration::from_secs(5),
        || !lan.lease_file().contains(&addr) && !lan.lease_file().contains(&addr6),
    );
    assert_only_lo(&ctr);
    assert!(d.records().is_empty(), "{:?}", d.records());
    // A CHECK of the gone leases fails.
    let (code, msg) = Call::rcni("dhcp", "CHECK", &w.host, Some(&ctr))
        .id("c1")
        .run(&with_prev)
        .err();
    assert_eq!(code, 999, "{msg}");
}

#[test]
fn macvlan_dual_stack_lease_and_release() {
    dual_stack_lease_and_release(Kind::Macvlan);
}

#[test]
fn bridge_dual_stack_lease_and_release() {
    dual_stack_lease_and_release(Kind::Bridge);
}

/// The DHCPv6 lease renewed at T1 with its address kept; after a SIGKILL
/// the restarted daemon renews it at once, without a Solicit, with the
/// same DUID and IAID (the server's lease unchanged); DEL after the netns
/// went releases both families.
fn v6_renewal_restart_and_release_without_netns(kind: Kind) {
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let mut d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, dual_stack());
    let r = add(kind, &w, &ctr, "c1", &c);
    let (addr, addr6) = (address_of(&r), address6_of(&r));
    wait_for(
        "the lease in the lease file",
        Duration::from_secs(5),
        || lease_entries6(&lan).len() == 1,
    );
    let before = lease_entries6(&lan);
    assert!(before[0].contains(&addr6), "{before:?}");
    let record6 = d
        .records()
        .into_iter()
        .find(|n| n.ends_with(".v6.json"))
        .unwrap();
    assert_eq!(logged6(&lan, "DHCPSOLICIT"), 1, "{}", lan.log());

    // T1 is half the 2-minute lease.
    let renewed = eventually(Duration::from_secs(90), || {
        logged6(&lan, "DHCPRENEW") >= 1 && logged(&lan, "DHCPREPLY", &addr6) >= 2
    });
    assert!(renewed, "no renewal: {}\n{}", lan.log(), d.log());
    // What was waited for can come before the daemon's log line.
    let said = eventually(Duration::from_secs(10), || {
        d.log().contains("(ipv6): lease renewed")
    });
    assert!(said, "{}", d.log());
    assert_eq!(v6_addrs(&ctr), [format!("{addr6}/128")]);
    assert_eq!(lease_entries6(&lan), before);

    let renews = logged6(&lan, "DHCPRENEW");
    d.kill();
    d.run();
    wait_for(
        "the lease resumed and renewed",
        Duration::from_secs(20),
        || logged6(&lan, "DHCPRENEW") > renews,
    );
    // What was waited for can come before the daemon's log line.
    let said = eventually(Duration::from_secs(10), || {
        d.log().contains("(ipv6): lease resumed")
    });
    assert!(said, "{}", d.log());
    assert_eq!(logged6(&lan, "DHCPSOLICIT"), 1, "{}", lan.log());
    assert_eq!(lease_entries6(&lan), before);
    assert_eq!(v6_addrs(&ctr), [format!("{addr6}/128")]);
    let saved = std::fs::read_to_string(d.state().join(&record6)).unwrap();
    assert!(saved.contains(&addr6), "{saved}");

    // Removed as a runtime removes it.
    let name = ctr.name.clone();
    std::mem::forget(ctr);
    sh("ip", &["netns", "del", &name]);
    del(kind, &w, None, "c1", &c);
    wait_for("both RELEASEs", Duration::from_secs(10), || {
        logged(&lan, "DHCPRELEASE", &addr) == 1 && logged6(&lan, "DHCPRELEASE") == 1
    });
    wait_for("the leases gone", Duration::from_secs(5), || {
        lease_entries(&lan).is_empty() && lease_entries6(&lan).is_empty()
    });
    assert!(d.records().is_empty(), "{:?}", d.records());
}

#[test]
fn macvlan_v6_renewal_restart_and_release_without_netns() {
    v6_renewal_restart_and_release_without_netns(Kind::Macvlan);
}

#[test]
fn bridge_v6_renewal_restart_and_release_without_netns() {
    v6_renewal_restart_and_release_without_netns(Kind::Bridge);
}

#[test]
fn v6_only_lease() {
    let kind = Kind::Macvlan;
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, json!({"ipFamilies": ["ipv6"]}));
    let r = add(kind, &w, &ctr, "c1", &c);
    assert_eq!(r["ips"].as_array().unwrap().len(), 1, "{r}");
    let addr6 = address6_of(&r);
    assert!(in_pool6(&addr6), "{r}");
    assert!(r["routes"].as_array().is_none_or(Vec::is_empty), "{r}");
    assert_eq!(v6_addrs(&ctr), [format!("{addr6}/128")]);
    assert!(v4_addrs(&ctr).is_empty());
    assert_eq!(logged(&lan, "DHCPDISCOVER", ""), 0, "{}", lan.log());
    assert_eq!(d.records().len(), 1);
    del(kind, &w, Some(&ctr), "c1", &c);
    wait_for("the RELEASE", Duration::from_secs(5), || {
        logged6(&lan, "DHCPRELEASE") == 1
    });
    assert_only_lo(&ctr);
    assert!(d.records().is_empty());
}

/// A server without DHCPv6: a dual-stack ADD fails, and the DHCPv4 lease
/// it got is released.
#[test]
fn a_family_that_fails_releases_the_other() {
    let kind = Kind::Macvlan;
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq_with(false);
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    let c = conf(kind, &w, &d, dual_stack());
    let (code, msg) = Call::rcni(plugin(kind), "ADD", &w.host, Some(&ctr))
        .id("c1")
        .run(&c)
        .err();
    assert_eq!(code, 999, "{msg}");
    assert!(msg.contains("ipv6"), "{msg}");
    assert_eq!(logged(&lan, "DHCPACK", ""), 1, "{}", lan.log());
    wait_for("the DHCPv4 lease released", Duration::from_secs(5), || {
        logged(&lan, "DHCPRELEASE", "") == 1 && lease_entries(&lan).is_empty()
    });
    assert!(d.records().is_empty(), "{:?}", d.records());
    assert_only_lo(&ctr);
}

// ---- bad input ----

#[test]
fn bad_config_is_code_7_naming_the_field_and_leaves_nothing() {
    let kind = Kind::Macvlan;
    let mut lan = Lan::new();
    let w = host_for(kind, &lan);
    lan.dnsmasq();
    let d = Daemon::start(&w.host);
    let ctr = Netns::new("dc");
    for (ipam, field) in [
        (
            json!({"request": [{"option": "no-such-option"}]}),
            "ipam.request[0].option",
        ),
        (
            json!({"provide": [{"option": "host-name", "value": "x".repeat(300)}]}),
            "ipam.provide[0]",
        ),
        (json!({"priority": "high"}), "priority"),
        (
            json!({"ipFamilies": ["ipv6", "ipv5"]}),
            "ipam.ipFamilies[1]",
        ),
    ] {
        let c = conf(kind, &w, &d, ipam);
        let (code, msg) = Call::rcni("macvlan", "ADD", &w.host, Some(&ctr))
            .run(&c)
            .err();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.contains(field), "{field}: {msg}");
        assert_only_lo(&ctr);
    }
    assert!(d.records().is_empty());
    assert_eq!(logged(&lan, "DHCPDISCOVER", ""), 0);
    // DEL reads only the socket: a config it would refuse still releases.
    let addr = address_of(&add(kind, &w, &ctr, "c1", &conf(kind, &w, &d, json!({}))));
    let refused = conf(
        kind,
        &w,
        &d,
        json!({"request": [{"option": "no-such-option"}]}),
    );
    del(kind, &w, Some(&ctr), "c1", &refused);
    wait_for("DHCPRELEASE", Duration::from_secs(5), || {
        logged(&lan, "DHCPRELEASE", &addr) == 1
    });
    assert_only_lo(&ctr);
}

// ---- the reference's daemon, and the reference's plugin ----

#[test]
fn reference_daemon_on_the_socket_is_named() {
    require_reference();
    let host = Netns::new("dh");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ref.sock");
    let _reference = {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.name])
            .arg(Path::new(REFERENCE_DIR).join("dhcp"))
            .args(["daemon", "-socketpath"])
            .arg(&socket);
        Running::quiet(cmd)
    };
    wait_for("the reference daemon", Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    let ctr = Netns::new("dc");
    let c = json!({"cniVersion": "1.0.0", "name": "refnet", "type": "dhcp",
        "ipam": {"type": "dhcp", "daemonSocketPath": socket}});
    let (code, msg) = Call::rcni("dhcp", "ADD", &host, Some(&ctr)).run(&c).err();
    assert_eq!(code, 999, "{msg}");
    assert!(msg.contains("reference's dhcp daemon"), "{msg}");
}

#[test]
fn reference_plugin_on_rcni_daemon_is_told() {
    require_reference();
    let host = Netns::new("dh");
    let d = Daemon::start(&host);
    let ctr = Netns::new("dc");
    let c = json!({"cniVersion": "1.0.0", "name": "refnet", "type": "dhcp",
        "ipam": {"type": "dhcp", "daemonSocketPath": d.socket()}});
    let reply = Call::rcni("dhcp", "ADD", &host, Some(&ctr))
        .reference()
        .run(&c);
    let (_, msg) = reply.err();
    assert!(msg.contains("rcni's dhcp daemon"), "{msg}");
}

// ---- systemd socket activation ----

#[test]
fn socket_activation_serves_on_the_passed_socket() {
    let host = Netns::new("dh");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("activated.sock");
    // systemd's own tool: it listens, and passes the socket (fd 3,
    // LISTEN_FDS, LISTEN_PID) to the daemon on the first connection.
    let _activator = {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.name, "systemd-socket-activate", "-l"])
            .arg(&socket)
            .arg(rcni_binary())
            .args(["dhcp", "daemon", "-socketpath"])
            .arg(dir.path().join("unused.sock"))
            .arg("-statedir")
            .arg(dir.path().join("state"));
        Running::quiet(cmd)
    };
    wait_for("the activation socket", Duration::from_secs(10), || {
        socket.exists()
    });
    let c = json!({"cniVersion": "1.1.0", "name": "act", "type": "dhcp",
        "ipam": {"type": "dhcp", "daemonSocketPath": socket}});
    Call::rcni("dhcp", "STATUS", &host, None).run(&c).ok();
    // It served on the socket it was given, not on its -socketpath.
    assert!(!dir.path().join("unused.sock").exists());
}

// ---- -hostprefix ----

/// A daemon "in a container" sees the host's root under a prefix: the
/// prefix goes in front of its socket path and of every netns path. Here
/// the prefix holds the netns under a name only it has, so an unprefixed
/// path would not exist.
#[test]
fn hostprefix_applies_to_socket_and_netns() {
    let mut lan = Lan::new();
    let w = host_for(Kind::Macvlan, &lan);
    lan.dnsmasq();
    let ctr = Netns::new("dc");
    w.host.exec(&[
        "ip", "link", "add", "link", "m0", "name", "mvx", "type", "macvlan", "mode", "bridge",
    ]);
    w.host
        .exec(&["ip", "link", "set", "mvx", "netns", &ctr.name]);
    ctr.exec(&["ip", "link", "set", "mvx", "name", "eth0"]);
    let prefix = tempfile::tempdir().unwrap();
    let only_here = format!("/prefixed-{}", ctr.name);
    std::fs::create_dir_all(prefix.path().join(&only_here[1..])).unwrap();
    let netns = format!("{only_here}/ns");
    std::os::unix::fs::symlink(ctr.path(), prefix.path().join(&netns[1..])).unwrap();
    let _daemon = {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &w.host.name])
            .arg(rcni_binary())
            .args(["dhcp", "daemon", "-hostprefix"])
            .arg(prefix.path())
            .args(["-socketpath", "/dhcp.sock", "-statedir"])
            .arg(prefix.path().join("state"));
        Running::quiet(cmd)
    };
    let socket = prefix.path().join("dhcp.sock");
    wait_for("the prefixed socket", Duration::from_secs(10), || {
        socket.exists()
    });
    let c = json!({"cniVersion": "1.1.0", "name": w.net, "type": "dhcp",
        "ipam": {"type": "dhcp", "daemonSocketPath": socket}});
    let mut call = Call::rcni("dhcp", "ADD", &w.host, None).id("px");
    call.netns = netns;
    let r = call.run(&c).ok();
    let addr = address_of(&r);
    assert!(in_pool(&addr), "{r}");
    call.command("DEL").run(&c).ok();
    wait_for("DHCPRELEASE", Duration::from_secs(5), || {
        logged(&lan, "DHCPRELEASE", &addr) == 1
    });
}
