//! The DHCPv4 client of one attachment. Every function runs on a thread
//! that is already inside the container's network namespace.
//!
//! DISCOVER, REQUEST, rebinding and RELEASE go through a packet socket on
//! the interface: before the address is on the link the server may answer
//! by unicast to the offered address at layer 2, which the IP stack would
//! drop. Renewals are plain UDP to the server once the address is there.

use crate::codec::{opt, Message, MessageType, BOOTREPLY, FLAG_BROADCAST};
use crate::lease::Lease4;
use rcni_net::{Handle, PacketSocket, BROADCAST_MAC};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;
/// RFC 2131 4.1: the first retransmission after 4 s, doubling, ±1 s.
const FIRST_RESEND: Duration = Duration::from_secs(4);

/// How long the client waits (the daemon's `-timeout`, `-resendmax`,
/// `-resendtimeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The longest wait for an answer to one message.
    pub timeout: Duration,
    /// The longest delay between two retransmissions.
    pub resend_max: Duration,
    /// The bound of a whole acquisition, retransmissions included.
    pub resend_timeout: Duration,
}

/// What the client says about itself: kept with the lease, so a restarted
/// daemon renews with the same identity and options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// Option 61, `containerID/network/ifname` as the reference sends it.
    pub client_id: String,
    /// Option 55, the parameter request list.
    pub request: Vec<u8>,
    /// Options sent as given (`provide`): code and value.
    pub provide: Vec<(u8, String)>,
    /// Ask the server to broadcast its answers (the daemon's `-broadcast`).
    pub broadcast: bool,
}

#[derive(Debug)]
pub enum Error {
    /// No (acceptable) answer in time.
    NoAnswer(&'static str),
    /// The server refused (DHCPNAK).
    Refused,
    Io(String),
    /// The server's answer lacks something a lease needs.
    Malformed(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoAnswer(what) => write!(f, "no DHCP server answered the {what} in time"),
            Error::Refused => f.write_str("the DHCP server refused (DHCPNAK)"),
            Error::Io(e) => f.write_str(e),
            Error::Malformed(what) => write!(f, "DHCP answer: {what}"),
        }
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io(format!("{what}: {e}"))
}

pub struct Client4 {
    ifindex: u32,
    mac: [u8; 6],
    identity: Identity,
    timing: Timing,
}

/// The link `ifname`, set up first when it is down (as the reference
/// does: the plugin asks for the lease before it sets its link up).
pub fn link_set_up(ifname: &str) -> Result<rcni_net::Link, Error> {
    let mut handle = Handle::new().map_err(|e| Error::Io(e.to_string()))?;
    let link = handle
        .find_link(ifname)
        .map_err(|e| Error::Io(e.to_string()))?;
    if !link.admin_up {
        handle
            .set_up(link.index)
            .map_err(|e| Error::Io(e.to_string()))?;
    }
    Ok(link)
}

impl Client4 {
    /// The client on `ifname`, which it sets up first when it is down.
    pub fn new(ifname: &str, identity: Identity, timing: Timing) -> Result<Client4, Error> {
        let link = link_set_up(ifname)?;
        let mac = link
            .mac6()
            .ok_or(Error::Io(format!("{ifname} has no Ethernet address")))?;
        Ok(Client4 {
            ifindex: link.index,
            mac,
            identity,
            timing,
        })
    }

    /// The interface's index in its namespace.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn message(&self, kind: MessageType, xid: u32) -> Message {
        let mut m = Message::request(kind, xid, self.mac);
        if self.identity.broadcast {
            m.flags = FLAG_BROADCAST;
        }
        // The first byte of a client id is its type; 0: not a hardware address.
        let mut id = vec![0];
        id.extend_from_slice(self.identity.client_id.as_bytes());
        m.set(opt::CLIENT_ID, id);
        // A RELEASE carries the identity only (a provided client id too).
        let release = kind == MessageType::Release;
        for (code, value) in &self.identity.provide {
            if !release || *code == opt::CLIENT_ID {
                m.set(*code, value.as_bytes().to_vec());
            }
        }
        if !release {
            m.set(opt::PARAMETER_LIST, self.identity.request.clone());
        }
        m
    }

    /// DISCOVER → OFFER → REQUEST → ACK, retransmitting until
    /// `resend_timeout`.
    pub fn acquire(&self) -> Result<Lease4, Error> {
        let deadline = Instant::now() + self.timing.resend_timeout;
        let sock = PacketSocket::open(self.ifindex).map_err(io("open a packet socket"))?;
        loop {
            let xid = random_u32();
            let offer = self.exchange_link(
                &sock,
                &self.message(MessageType::Discover, xid),
                |m| m.message_type() == Some(MessageType::Offer),
                deadline,
                "DHCPDISCOVER",
            )?;
            let server = offer
                .addr(opt::SERVER_ID)
                .ok_or(Error::Malformed("offer without a server identifier"))?;
            let mut request = self.message(MessageType::Request, xid);
            request.set(opt::REQUESTED_IP, offer.yiaddr.octets().to_vec());
            request.set(opt::SERVER_ID, server.octets().to_vec());
            let answer = self.exchange_link(
                &sock,
                &request,
                |m| is_ack(m) && m.addr(opt::SERVER_ID).is_none_or(|s| s == server),
                deadline,
                "DHCPREQUEST",
            )?;
            match answer.message_type() {
                Some(MessageType::Ack) => return Lease4::from_ack(&answer),
                // A NAK (offered to someone else meanwhile): start over.
                _ if Instant::now() < deadline => continue,
                _ => return Err(Error::Refused),
            }
        }
    }

    /// RENEWING: REQUEST with our address, by UDP to the server, until
    /// `until`.
    pub fn renew(&self, lease: &Lease4, until: Instant) -> Result<Lease4, Error> {
        let sock = UdpSocket::bind(SocketAddrV4::new(lease.address, CLIENT_PORT))
            .map_err(io("bind the client port"))?;
        let server = SocketAddrV4::new(lease.server_id, SERVER_PORT);
        let xid = random_u32();
        let mut request = self.message(MessageType::Request, xid);
        request.ciaddr = lease.address;
        request.flags = 0;
        let bytes = request.encode();
        let mut buf = vec![0u8; 1500];
        let answer = self.retransmit(until, "DHCPREQUEST (renewal)", |wait_until| {
            sock.send_to(&bytes, server).map_err(io("send"))?;
            while let Some(left) = wait_until.checked_duration_since(Instant::now()) {
                sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .map_err(io("set a timeout"))?;
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        let answer = self.reply_to(xid, &buf[..n]);
                        if let Some(m) = answer.filter(|m| is_ack(m) || is_nak(m)) {
                            return Ok(Some(m));
                        }
                    }
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(io("receive")(e)),
                }
            }
            Ok(None)
        })?;
        ack_or_refused(answer)
    }

    /// REBINDING: REQUEST with our address, broadcast, to any server,
    /// until `until`.
    pub fn rebind(&self, lease: &Lease4, until: Instant) -> Result<Lease4, Error> {
        let sock = PacketSocket::open(self.ifindex).map_err(io("open a packet socket"))?;
        let xid = random_u32();
        let mut request = self.message(MessageType::Request, xid);
        request.ciaddr = lease.address;
        let answer =
            self.exchange_link(&sock, &request, is_ack, until, "DHCPREQUEST (rebinding)")?;
        ack_or_refused(answer)
    }

    /// DHCPRELEASE, once, no answer expected. Sent from the link layer so
    /// that it leaves whether or not the address is still on the link.
    pub fn release(&self, lease: &Lease4) -> Result<(), Error> {
        let sock = PacketSocket::open(self.ifindex).map_err(io("open a packet socket"))?;
        let mut m = self.message(MessageType::Release, random_u32());
        m.flags = 0;
        m.ciaddr = lease.address;
        m.set(opt::SERVER_ID, lease.server_id.octets().to_vec());
        let packet = udp_packet(lease.address, lease.server_id, &m.encode());
        sock.send(BROADCAST_MAC, &packet)
            .map_err(io("send DHCPRELEASE"))
    }

    /// Sends `message` (broadcast, from 0.0.0.0 or the message's
    /// ciaddr) and returns the first answer to it that `accept` takes.
    fn exchange_link(
        &self,
        sock: &PacketSocket,
        message: &Message,
        accept: impl Fn(&Message) -> bool,
        deadline: Instant,
        what: &'static str,
    ) -> Result<Message, Error> {
        let packet = udp_packet(message.ciaddr, Ipv4Addr::BROADCAST, &message.encode());
        let mut buf = vec![0u8; 1600];
        self.retransmit(deadline, what, |wait_until| {
            sock.send(BROADCAST_MAC, &packet)
                .map_err(io("send on the packet socket"))?;
            while let Some(left) = wait_until.checked_duration_since(Instant::now()) {
                let Some(n) = sock.recv(&mut buf, left).map_err(io("receive"))? else {
                    break;
                };
                let reply = udp_payload(&buf[..n]).and_then(|p| self.reply_to(message.xid, p));
                if let Some(m) = reply.filter(|m| is_nak(m) || accept(m)) {
                    return Ok(Some(m));
                }
            }
            Ok(None)
        })
    }

    /// Runs `attempt` (send, then wait until the instant it is given) with
    /// RFC 2131's backoff bounded by `resend_max` and `timeout`, until it
    /// gets an answer or `deadline` passes.
    fn retransmit(
        &self,
        deadline: Instant,
        what: &'static str,
        mut attempt: impl FnMut(Instant) -> Result<Option<Message>, Error>,
    ) -> Result<Message, Error> {
        let mut delay = FIRST_RESEND;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::NoAnswer(what));
            }
            let wait = jittered(delay).min(self.timing.timeout.max(Duration::from_secs(1)));
            if let Some(answer) = attempt((now + wait).min(deadline))? {
                return Ok(answer);
            }
            delay = (delay * 2).min(self.timing.resend_max.max(FIRST_RESEND));
        }
    }

    /// The DHCP reply in `payload` if it answers transaction `xid` of ours.
    fn reply_to(&self, xid: u32, payload: &[u8]) -> Option<Message> {
        let m = Message::decode(payload).ok()?;
        (m.op == BOOTREPLY && m.xid == xid && m.chaddr == self.mac).then_some(m)
    }
}

fn ack_or_refused(answer: Message) -> Result<Lease4, Error> {
    match answer.message_type() {
        Some(MessageType::Ack) => Lease4::from_ack(&answer),
        _ => Err(Error::Refused),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
        // No entropy source: the clock still makes transaction ids differ.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        return nanos ^ std::process::id();
    }
    u32::from_ne_bytes(b)
}

/// `delay` moved by a random offset in [-1 s, 1 s], as RFC 2131 asks of
/// retransmissions.
fn jittered(delay: Duration) -> Duration {
    let offset = i64::from(random_u32() % 2001) - 1000;
    let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    Duration::from_millis(millis.saturating_add(offset).max(0) as u64)
}

fn is_ack(m: &Message) -> bool {
    m.message_type() == Some(MessageType::Ack)
}

fn is_nak(m: &Message) -> bool {
    m.message_type() == Some(MessageType::Nak)
}

/// `payload` in UDP from port 68 to 67, in IPv4 from `src` to `dst`.
pub(crate) fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]); // id, flags, TTL 64, UDP
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let header_sum = checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&header_sum.to_be_bytes());
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    udp.extend_from_slice(&SERVER_PORT.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let sum = match checksum(&[&pseudo, &udp]) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&udp);
    p
}

/// The payload of an IPv4 UDP packet to the client port.
fn udp_payload(packet: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    if packet.first()? >> 4 != 4 || ihl < 20 || *packet.get(9)? != 17 {
        return None;
    }
    let udp = packet.get(ihl..)?;
    let dst_port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    (dst_port == CLIENT_PORT && len >= 8).then_some(())?;
    udp.get(8..len)
}

/// The Internet checksum over the concatenated parts (each of even
/// length but the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(broadcast: bool) -> Client4 {
        Client4 {
            ifindex: 2,
            mac: [2, 0, 0, 0, 0, 9],
            identity: Identity {
                client_id: "c1/lan/eth0".into(),
                request: vec![1, 3, 121],
                provide: vec![(opt::HOST_NAME, "web-1".into())],
                broadcast,
            },
            timing: Timing {
                timeout: Duration::from_secs(1),
                resend_max: Duration::from_secs(4),
                resend_timeout: Duration::from_secs(10),
            },
        }
    }

    #[test]
    fn messages_carry_identity_options_and_the_broadcast_flag() {
        let m = client(true).message(MessageType::Discover, 7);
        assert_eq!(m.flags, FLAG_BROADCAST);
        assert_eq!(m.get(opt::CLIENT_ID).unwrap(), b"\0c1/lan/eth0");
        assert_eq!(m.get(opt::HOST_NAME).unwrap(), b"web-1");
        assert_eq!(m.get(opt::PARAMETER_LIST).unwrap(), [1, 3, 121]);
        assert_eq!(client(false).message(MessageType::Discover, 7).flags, 0);
        // A RELEASE carries who it is, nothing else.
        let r = client(true).message(MessageType::Release, 7);
        assert_eq!(r.get(opt::HOST_NAME), None);
        assert_eq!(r.get(opt::PARAMETER_LIST), None);
        assert!(r.get(opt::CLIENT_ID).is_some());
    }

    #[test]
    fn retransmission_delays_vary_by_a_second_at_most() {
        for _ in 0..200 {
            let d = jittered(FIRST_RESEND);
            assert!((3000..=5000).contains(&d.as_millis()), "{d:?}");
        }
        assert!(jittered(Duration::ZERO) <= Duration::from_secs(1));
    }

    #[test]
    fn udp_framing_round_trips_with_valid_checksums() {
        let p = udp_packet(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, b"hello dhcp");
        assert_eq!(checksum(&[&p[..20]]), 0, "IP header checksum");
        // A reply would come to port 68; swap the ports to read our own.
        let mut reply = p.clone();
        reply[20..22].copy_from_slice(&SERVER_PORT.to_be_bytes());
        reply[22..24].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        assert_eq!(udp_payload(&reply), Some(&b"hello dhcp"[..]));
        assert_eq!(udp_payload(&p), None, "not to the client port");
        let mut pseudo = vec![0, 0, 0, 0, 255, 255, 255, 255, 0, 17];
        pseudo.extend_from_slice(&18u16.to_be_bytes());
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0, "UDP checksum");
        for cut in 0..p.len() {
            let _ = udp_payload(&reply[..cut]);
        }
    }
}
