//! The DHCPv6 client against a real server: dnsmasq in DHCPv6 mode in a
//! throwaway "LAN" namespace, joined by a veth to a "client" namespace where
//! the client runs on a thread. Needs root; touches nothing outside the two
//! namespaces and a temp dir.

#![allow(clippy::unwrap_used)]

use rcni_dhcp6::codec::{IaAddr, IaNa, Message, MessageType};
use rcni_dhcp6::{duid_from_client_id, iaid_from_client_id, Client6, Error6, Lease6, Timing6};
use rcni_testkit::{in_netns, Netns};
use std::net::{Ipv6Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLIENT_IF: &str = "eth0";
const DNS: &str = "fd00:db8::53";

/// Generous for a loaded machine; a server on the veth answers at once.
const TIMING: Timing6 = Timing6 {
    timeout: Duration::from_secs(20),
    resend_max: Duration::from_secs(4),
};

/// The two namespaces, the veth between them and, when asked for, dnsmasq
/// serving `fd00:db8::10`–`fd00:db8::ff` with 2-minute leases.
struct Lan {
    client: Netns,
    lan: Netns,
    dir: tempfile::TempDir,
    dnsmasq: Option<Child>,
}

impl Lan {
    fn new(with_server: bool) -> Lan {
        let lan = Netns::new("d6lan");
        let client = Netns::new("d6cli");
        // The server side needs no duplicate address detection; the client
        // side keeps it, so that the client's wait for it is exercised.
        lan.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        lan.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        lan.exec(&[
            "ip",
            "link",
            "add",
            "lan0",
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "netns",
            &client.name,
        ]);
        lan.exec(&[
            "ip",
            "addr",
            "add",
            "fd00:db8::1/64",
            "dev",
            "lan0",
            "nodad",
        ]);
        lan.exec(&["ip", "link", "set", "lan0", "up"]);
        client.exec(&["ip", "link", "set", CLIENT_IF, "up"]);
        let mut lan = Lan {
            client,
            lan,
            dir: tempfile::tempdir().unwrap(),
            dnsmasq: None,
        };
        if with_server {
            lan.start_dnsmasq();
        }
        lan
    }

    fn start_dnsmasq(&mut self) {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.lan.name,
                "dnsmasq",
                "--keep-in-foreground",
            ])
            .args([
                "--conf-file=/dev/null",
                "--port=0",
                "--no-resolv",
                "--no-hosts",
            ])
            .args([
                "--interface=lan0",
                "--bind-interfaces",
                "--user=root",
                "--group=root",
            ])
            .arg("--dhcp-range=fd00:db8::10,fd00:db8::ff,64,2m")
            .arg(format!("--dhcp-option=option6:dns-server,[{DNS}]"))
            .arg("--dhcp-option=option6:domain-search,lan.test")
            .arg(format!("--dhcp-leasefile={}", path("leases")))
            .arg(format!("--pid-file={}", path("pid")))
            .args(["--log-dhcp", &format!("--log-facility={}", path("log"))])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (scripts/deps.sh installs it)");
        self.dnsmasq = Some(child);
        let started = self.starts();
        wait_for("dnsmasq to start", || self.starts() > started);
    }

    /// How many times dnsmasq said it serves the range.
    fn starts(&self) -> usize {
        self.log().matches("DHCPv6, IP range").count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Log lines of one message type, e.g. `DHCPSOLICIT`.
    fn logged(&self, kind: &str) -> usize {
        let tag = format!("{kind}(lan0)");
        self.log().lines().filter(|l| l.contains(&tag)).count()
    }

    /// Asserts that dnsmasq logged `kind` exactly `count` times (its log
    /// may trail its answers by a moment, so it waits for the count first).
    fn assert_logged(&self, kind: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.logged(kind) < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(self.logged(kind), count, "{kind}:\n{}", self.log());
    }

    fn lease_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("leases")).unwrap_or_default()
    }

    /// Runs `f` with a client of `client_id` on a thread inside the client
    /// namespace.
    fn with_client<T: Send + 'static>(
        &self,
        client_id: &str,
        timing: Timing6,
        f: impl FnOnce(&Client6) -> T + Send + 'static,
    ) -> T {
        let client_id = client_id.to_string();
        in_netns(&self.client.name, move || {
            let duid = duid_from_client_id(&client_id);
            let client = Client6::new(CLIENT_IF, duid, iaid_from_client_id(&client_id), timing)
                .expect("client");
            f(&client)
        })
        .join()
        .expect("client thread")
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_from_pool(lease: &Lease6) {
    let low: Ipv6Addr = "fd00:db8::10".parse().unwrap();
    let high: Ipv6Addr = "fd00:db8::ff".parse().unwrap();
    assert!(
        (low..=high).contains(&lease.address),
        "{} outside the pool",
        lease.address
    );
    assert!(
        lease.preferred_lifetime > 0 && lease.preferred_lifetime <= lease.valid_lifetime,
        "{lease:?}"
    );
    assert!(lease.valid_lifetime <= 120, "{lease:?}");
    assert_eq!(lease.dns_servers, vec![DNS.parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(lease.domain_search, vec!["lan.test".to_string()]);
    assert!(lease.server_address.is_unicast_link_local(), "{lease:?}");
    assert!(!lease.server_duid.is_empty());
}

#[test]
fn acquire_renew_rebind_release() {
    let lan = Lan::new(true);
    let (acquired, renewed, rebound, released) = lan.with_client("ctr-a/lan/eth0", TIMING, |c| {
        let acquired = c.acquire().expect("acquire");
        let renewed = c.renew(&acquired).expect("renew");
        let rebound = c.rebind(&renewed).expect("rebind");
        let released = c.release(&rebound);
        (acquired, renewed, rebound, released)
    });
    assert_from_pool(&acquired);
    assert_eq!(renewed.address, acquired.address);
    assert_eq!(renewed.server_duid, acquired.server_duid);
    assert!(renewed.valid_lifetime > 0);
    assert_eq!(rebound.address, acquired.address);
    assert!(rebound.valid_lifetime > 0);
    for kind in [
        "DHCPSOLICIT",
        "DHCPADVERTISE",
        "DHCPREQUEST",
        "DHCPRENEW",
        "DHCPREBIND",
        "DHCPRELEASE",
    ] {
        lan.assert_logged(kind, 1);
    }
    // A Reply with the address to each of the Request, the Renew and the
    // Rebind (dnsmasq logs the Release's Reply by its status only).
    lan.assert_logged("DHCPREPLY", 3);
    released.expect("release");
    assert!(lan.log().contains("release received"), "{}", lan.log());
    let address = acquired.address.to_string();
    wait_for("the lease to leave the lease file", || {
        !lan.lease_file().contains(&address)
    });
}

#[test]
fn the_lease_file_holds_the_acquired_address() {
    let lan = Lan::new(true);
    let lease = lan.with_client("ctr-b/lan/eth0", TIMING, |c| c.acquire().expect("acquire"));
    assert_from_pool(&lease);
    let address = lease.address.to_string();
    wait_for("the lease in the lease file", || {
        lan.lease_file().contains(&address)
    });
    // dnsmasq's v6 lease lines name the IAID in decimal.
    let iaid = iaid_from_client_id("ctr-b/lan/eth0").to_string();
    assert!(
        lan.lease_file()
            .lines()
            .any(|l| l.contains(&address) && l.split(' ').nth(1) == Some(iaid.as_str())),
        "{}",
        lan.lease_file()
    );
}

#[test]
fn a_restarted_client_renews_its_lease_without_solicit() {
    let lan = Lan::new(true);
    let id = "ctr-c/lan/eth0";
    let saved = lan.with_client(id, TIMING, |c| {
        serde_json::to_string(&c.acquire().expect("acquire")).unwrap()
    });
    let lease: Lease6 = serde_json::from_str(&saved).unwrap();
    assert_from_pool(&lease);
    assert_eq!(serde_json::to_string(&lease).unwrap(), saved);
    let (renewed, released) = lan.with_client(id, TIMING, move |c| {
        let renewed = c.renew(&lease).expect("renew after restart");
        (renewed.clone(), c.release(&renewed))
    });
    let first: Lease6 = serde_json::from_str(&saved).unwrap();
    assert_eq!(renewed.address, first.address);
    lan.assert_logged("DHCPRENEW", 1);
    lan.assert_logged("DHCPSOLICIT", 1);
    released.expect("release");
}

#[test]
fn another_client_id_gets_another_address() {
    let lan = Lan::new(true);
    let a = lan.with_client("ctr-d/lan/eth0", TIMING, |c| c.acquire().expect("acquire"));
    let b = lan.with_client("ctr-e/lan/eth0", TIMING, |c| c.acquire().expect("acquire"));
    assert_from_pool(&a);
    assert_from_pool(&b);
    assert_ne!(a.address, b.address);
    // The same id again is the same lease.
    let again = lan.with_client("ctr-d/lan/eth0", TIMING, |c| c.acquire().expect("acquire"));
    assert_eq!(again.address, a.address);
}

/// A stand-in server on `lan0`: for `secs` seconds it records every
/// message to port 547 and sends back what `answer` makes of it.
fn fake_server(
    lan: &Lan,
    secs: u64,
    mut answer: impl FnMut(&Message) -> Vec<Vec<u8>> + Send + 'static,
) -> std::thread::JoinHandle<Vec<Message>> {
    let links = lan.lan.ip_json(&["link", "show", "lan0"]);
    let ifindex = u32::try_from(links[0]["ifindex"].as_u64().unwrap()).unwrap();
    let socket = in_netns(&lan.lan.name, move || {
        let socket = UdpSocket::bind("[::]:547").unwrap();
        socket
            .join_multicast_v6(&"ff02::1:2".parse().unwrap(), ifindex)
            .unwrap();
        socket
    })
    .join()
    .unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let Ok((len, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let msg = Message::decode(&buf[..len]).expect("the client's message decodes");
            for reply in answer(&msg) {
                socket.send_to(&reply, from).unwrap();
            }
            seen.push(msg);
        }
        seen
    })
}

#[test]
fn no_server_is_reported_within_the_timeout() {
    let lan = Lan::new(false);
    let mute = fake_server(&lan, 16, |_| Vec::new());
    let timing = Timing6 {
        timeout: Duration::from_secs(4),
        resend_max: Duration::from_secs(1),
    };
    let (acquire, renew, release) = lan.with_client("ctr-f/lan/eth0", timing, |c| {
        let lease = Lease6 {
            address: "fd00:db8::77".parse().unwrap(),
            preferred_lifetime: 60,
            valid_lifetime: 120,
            t1: 0,
            t2: 0,
            server_duid: vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6],
            server_address: "fe80::1".parse().unwrap(),
            dns_servers: Vec::new(),
            domain_search: Vec::new(),
            obtained_unix: 0,
        };
        let timed = |f: &dyn Fn() -> Result<(), Error6>| {
            let start = Instant::now();
            (f(), start.elapsed())
        };
        (
            timed(&|| c.acquire().map(drop)),
            timed(&|| c.renew(&lease).map(drop)),
            timed(&|| c.release(&lease)),
        )
    });
    for (what, (result, took)) in [
        ("acquire", &acquire),
        ("renew", &renew),
        ("release", &release),
    ] {
        assert!(
            matches!(result, Err(Error6::NoServer { .. })),
            "{what}: {result:?}"
        );
        assert!(took <= &Duration::from_secs(5), "{what} took {took:?}");
    }
    assert!(
        acquire.1 >= Duration::from_secs(3),
        "gave up early: {:?}",
        acquire.1
    );
    // The Solicit went out again and again, one transaction, the elapsed
    // time growing; the Renew and the Release went out too.
    let seen = mute.join().unwrap();
    let solicits: Vec<&Message> = seen
        .iter()
        .filter(|m| m.kind == MessageType::Solicit)
        .collect();
    // The wait for the link-local address (DAD, about a second or two)
    // counts against the same timeout, so only two sends are certain.
    assert!(solicits.len() >= 2, "{seen:?}");
    assert!(solicits
        .iter()
        .all(|m| m.transaction_id == solicits[0].transaction_id));
    assert!(solicits
        .windows(2)
        .all(|w| w[0].elapsed_centis < w[1].elapsed_centis));
    assert_eq!(solicits[0].elapsed_centis, Some(0));
    assert!(seen.iter().any(|m| m.kind == MessageType::Renew));
    assert!(seen.iter().any(|m| m.kind == MessageType::Release));
}

/// An Advertise or Reply from `server_duid` to `to`, for `address`.
fn answer_to(to: &Message, kind: MessageType, server_duid: u8, preference: u8) -> Message {
    let mut msg = Message::new(kind, to.transaction_id);
    msg.client_id = to.client_id.clone();
    msg.server_id = Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, server_duid]);
    msg.preference = Some(preference);
    msg.ia_na = vec![IaNa {
        iaid: to.ia_na[0].iaid,
        t1: 30,
        t2: 48,
        addresses: vec![IaAddr {
            address: Ipv6Addr::new(0xfd00, 0xdb8, 0, 0, 0, 0, 0, u16::from(server_duid)),
            preferred_lifetime: 60,
            valid_lifetime: 90,
            status: None,
        }],
        status: None,
    }];
    msg
}

#[test]
fn the_most_preferred_advertise_wins_and_stray_answers_are_ignored() {
    let lan = Lan::new(false);
    let server = fake_server(&lan, 10, |msg| {
        let encode = |m: Message| m.encode().unwrap();
        match msg.kind {
            MessageType::Solicit => {
                let mut wrong_xid = answer_to(msg, MessageType::Advertise, 9, 255);
                wrong_xid.transaction_id ^= 1;
                let mut wrong_client = answer_to(msg, MessageType::Advertise, 9, 255);
                wrong_client.client_id = Some(vec![0, 4, 6, 6, 6]);
                vec![
                    b"\x02junk".to_vec(),
                    encode(wrong_xid),
                    encode(wrong_client),
                    encode(answer_to(msg, MessageType::Advertise, 1, 3)),
                    encode(answer_to(msg, MessageType::Advertise, 2, 200)),
                    encode(answer_to(msg, MessageType::Advertise, 3, 100)),
                ]
            }
            // Only the chosen server may answer the Request.
            MessageType::Request => vec![
                encode(answer_to(msg, MessageType::Reply, 1, 0)),
                encode(answer_to(msg, MessageType::Reply, 2, 0)),
            ],
            _ => Vec::new(),
        }
    });
    let lease = lan.with_client("ctr-g/lan/eth0", TIMING, |c| c.acquire().expect("acquire"));
    assert_eq!(lease.server_duid, vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 2]);
    assert_eq!(lease.address, "fd00:db8::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!((lease.t1, lease.t2), (30, 48));
    assert_eq!((lease.preferred_lifetime, lease.valid_lifetime), (60, 90));
    let seen = server.join().unwrap();
    let request = seen
        .iter()
        .find(|m| m.kind == MessageType::Request)
        .expect("a Request");
    assert_eq!(request.server_id, Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 2]));
    assert_eq!(request.ia_na[0].addresses[0].address, lease.address);
}

#[test]
fn bad_arguments_are_refused() {
    let lan = Lan::new(false);
    let results = in_netns(&lan.client.name, || {
        (
            Client6::new("nope0", vec![0, 4, 1, 2, 3], 1, TIMING).map(drop),
            Client6::new(CLIENT_IF, vec![0, 4], 1, TIMING).map(drop),
            Client6::new(CLIENT_IF, vec![7; 131], 1, TIMING).map(drop),
            Client6::new(
                CLIENT_IF,
                vec![0, 4, 1],
                1,
                Timing6 {
                    timeout: Duration::ZERO,
                    resend_max: Duration::from_secs(1),
                },
            )
            .map(drop),
        )
    })
    .join()
    .unwrap();
    assert!(
        matches!(results.0, Err(Error6::NoInterface(_))),
        "{results:?}"
    );
    assert!(
        matches!(results.1, Err(Error6::InvalidArgument(_))),
        "{results:?}"
    );
    assert!(
        matches!(results.2, Err(Error6::InvalidArgument(_))),
        "{results:?}"
    );
    assert!(
        matches!(results.3, Err(Error6::InvalidArgument(_))),
        "{results:?}"
    );
}

/// RFC 8415 §18.2.10.1: a server that lost the binding answers the Renew
/// with NoBinding; the client asks it again with a Request for the same
/// address, without a new Solicit.
#[test]
fn renew_after_the_server_lost_its_leases() {
    let mut lan = Lan::new(true);
    let id = "ctr-h/lan/eth0";
    let lease = lan.with_client(id, TIMING, |c| c.acquire().expect("acquire"));
    lan.assert_logged("DHCPREQUEST", 1);
    wait_for("the lease in the lease file", || {
        lan.lease_file().contains(&lease.address.to_string())
    });
    // The server restarts with its DUID (the lease file's `duid` line) but
    // without the leases.
    let mut old = lan.dnsmasq.take().unwrap();
    old.kill().unwrap();
    old.wait().unwrap();
    let duid_line: String = lan
        .lease_file()
        .lines()
        .filter(|l| l.starts_with("duid "))
        .collect();
    assert!(!duid_line.is_empty(), "{}", lan.lease_file());
    std::fs::write(lan.dir.path().join("leases"), format!("{duid_line}\n")).unwrap();
    lan.start_dnsmasq();
    let address = lease.address;
    let renewed = lan.with_client(id, TIMING, move |c| c.renew(&lease).expect("renew"));
    assert_eq!(renewed.address, address);
    lan.assert_logged("DHCPRENEW", 1);
    assert!(lan.log().contains("no binding found"), "{}", lan.log());
    lan.assert_logged("DHCPREQUEST", 2);
    lan.assert_logged("DHCPSOLICIT", 1);
    wait_for("the lease back in the lease file", || {
        lan.lease_file().contains(&address.to_string())
    });
}

#[test]
fn a_link_without_link_local_address_is_reported_within_the_timeout() {
    let lan = Lan::new(true);
    // A down link has no IPv6 address at all.
    lan.client.exec(&["ip", "link", "set", CLIENT_IF, "down"]);
    let timing = Timing6 {
        timeout: Duration::from_secs(1),
        resend_max: Duration::from_secs(1),
    };
    let (result, took) = lan.with_client("ctr-i/lan/eth0", timing, |c| {
        let start = Instant::now();
        (c.acquire(), start.elapsed())
    });
    assert!(
        matches!(result, Err(Error6::NoLinkLocal { .. })),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(lan.logged("DHCPSOLICIT"), 0);
}
