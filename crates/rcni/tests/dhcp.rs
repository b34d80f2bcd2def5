//! dhcp IPAM and its daemon against real servers: a "LAN" namespace runs
//! dnsmasq (or ISC dhcpd for short leases) behind a veth `m0` of the test's
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

/// The LAN: its namespace (holding `m0p`, the far end of the host's
/// `m0`, with the server's address) and a DHCP server in it.
struct Lan {
    ns: Netns,
    dir: tempfile::TempDir,
    server: Option<Child>,
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

    /// dnsmasq with a 2-minute lease (its minimum), T1 after `t1` seconds,
    /// a router, and option-121 routes (one without a router).
    fn dnsmasq(&mut self, t1: u32) {
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
            "--dhcp-range=10.77.0.50,10.77.0.150,255.255.255.0,2m".into(),
            format!("--dhcp-option=option:router,{SERVER}"),
            format!("--dhcp-option=option:classless-static-route,10.99.0.0/16,{SERVER},10.98.0.0/24,0.0.0.0,0.0.0.0/0,{SERVER}"),
            format!("--dhcp-option=option:T1,{t1}"),
            format!("--dhcp-option=option:T2,{}", t1 + 60),
            format!("--dhcp-leasefile={}", self.leases().display()),
            "--log-dhcp".into(),
            format!("--log-facility={}", d.join("log").display()),
            format!("--pid-file={}", d.join("pid").display()),
        ];
        self.start(&args);
    }

    /// ISC dhcpd with 10-second leases.
    fn dhcpd(&mut self) {
        self.up();
        let d = self.dir.path();
        let conf = d.join("dhcpd.conf");
        std::fs::write(
            &conf,
            format!(
                "default-lease-time 10;\nmax-lease-time 10;\nmin-lease-time 10;\nauthoritative;\n\
                 subnet 10.77.0.0 netmask 255.255.255.0 {{\n  range 10.77.0.50 10.77.0.150;\n  \
                 option routers {SERVER};\n}}\n"
            ),
        )
        .unwrap();
        std::fs::write(self.leases(), "").unwrap();
        let args = [
            "dhcpd".to_string(),
            "-f".into(),
            "-4".into(),
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
        self.server = Some(child);
        std::thread::sleep(Duration::from_millis(500));
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.stop();
    }
}

/// rcni's daemon in the host namespace, with a socket and state dir of
/// its own; killed with SIGKILL on drop.
struct Daemon {
    host: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    flags: Vec<String>,
}

impl Daemon {
    fn start(host: &Netns, flags: &[&str]) -> Daemon {
        let mut d = Daemon {
            host: host.name.clone(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            flags: flags.iter().map(|f| f.to_string()).collect(),
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
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("the daemon's socket", Duration::from_secs(10), || {
            std::os::unix::net::UnixStream::connect(self.socket()).is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn records(&self) -> Vec<String> {
        read_dir_names(&self.state())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
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
    lan.dnsmasq(60);
    let d = Daemon::start(&w.host, &[]);
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
