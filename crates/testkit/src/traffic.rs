//! Traffic between namespaces: servers and clients that answer with a fixed
//! word, each on a thread moved into its namespace.

use crate::{in_netns, Netns};

/// A TCP and a UDP server in `ns` on `port` that answer every client with
/// `reply`, for `secs` seconds.
pub fn serve(ns: &Netns, port: u16, reply: &'static str, secs: u64) {
    use std::io::Write;
    let tcp = std::sync::Arc::new(std::sync::Barrier::new(2));
    let ready = tcp.clone();
    in_netns(&ns.name, move || {
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind tcp");
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind udp");
        udp.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .ok();
        listener.set_nonblocking(true).ok();
        ready.wait();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut buf = [0u8; 64];
        while std::time::Instant::now() < end {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(reply.as_bytes());
            }
            if let Ok((_, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(reply.as_bytes(), from);
            }
        }
    });
    tcp.wait();
}

/// Connects over TCP from inside `ns` and returns what the server said.
pub fn tcp_get(ns: &Netns, addr: &str) -> Option<String> {
    use std::io::Read;
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    in_netns(&ns.name, move || {
        let mut s =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .ok();
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .join()
    .ok()
    .flatten()
}

/// Sends a UDP datagram from inside `ns` and returns the answer.
pub fn udp_get(ns: &Netns, addr: &str) -> Option<String> {
    udp_get_from(ns, 0, addr)
}

/// As [`udp_get`], from a fixed source port (0: any).
pub fn udp_get_from(ns: &Netns, src_port: u16, addr: &str) -> Option<String> {
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    in_netns(&ns.name, move || {
        let local: std::net::IpAddr = if addr.is_ipv4() {
            [0u8; 4].into()
        } else {
            [0u16; 8].into()
        };
        let s = std::net::UdpSocket::bind((local, src_port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_millis(400)))
            .ok();
        let mut buf = [0u8; 64];
        for _ in 0..6 {
            s.send_to(b"ping", addr).ok()?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    })
    .join()
    .ok()
    .flatten()
}
