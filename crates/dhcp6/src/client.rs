//! The blocking DHCPv6 client of one interface: the exchanges of RFC 8415
//! §18 for one IA_NA, each bounded by [`Timing6::timeout`].
//!
//! Every call runs on the calling thread, which must already be inside the
//! network namespace of the interface.

use crate::codec::{
    CodecError, IaAddr, IaNa, Message, MessageType, Status, ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
    CLIENT_PORT, MAX_DUID_LEN, OPT_DNS_SERVERS, OPT_DOMAIN_LIST, SERVER_PORT, STATUS_NO_BINDING,
    STATUS_SUCCESS,
};
use crate::lease::Lease6;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the client tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing6 {
    /// The bound on one whole call (waiting for the link-local address
    /// included).
    pub timeout: Duration,
    /// The longest wait between two transmissions (caps RFC 8415's MRT).
    pub resend_max: Duration,
}

impl Default for Timing6 {
    /// The reference daemon's defaults: `-timeout 10s`, `-resendmax 62s`.
    fn default() -> Timing6 {
        Timing6 {
            timeout: Duration::from_secs(10),
            resend_max: Duration::from_secs(62),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error6 {
    /// No usable answer before the timeout.
    #[error("no DHCPv6 server answered on {ifname} within {timeout:?}")]
    NoServer {
        /// The interface.
        ifname: String,
        /// The bound that ran out.
        timeout: Duration,
    },
    /// The interface is not in this network namespace.
    #[error("no interface {0:?} in this network namespace")]
    NoInterface(String),
    /// No link-local address to send from: none, or still tentative at the
    /// timeout, or its duplicate address detection failed.
    #[error("no usable IPv6 link-local address on {ifname}: {reason}")]
    NoLinkLocal {
        /// The interface.
        ifname: String,
        /// What was wrong.
        reason: String,
    },
    /// A value the caller gave that cannot work (e.g. a DUID's length).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A socket call failed.
    #[error("{context}: {source}")]
    Io {
        /// What the client was doing.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// A netlink call failed.
    #[error(transparent)]
    Net(#[from] rcni_net::NetError),
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Malformed(#[from] CodecError),
    /// The server answered with a failure status (RFC 8415 §21.13: 2
    /// NoAddrsAvail, 3 NoBinding, 4 NotOnLink, ...).
    #[error("DHCPv6 server refused: status {code} {message:?}")]
    Status {
        /// The status code.
        code: u16,
        /// The server's text.
        message: String,
    },
    /// The server's Reply holds no usable address for our IA_NA.
    #[error("DHCPv6 reply without a usable address: {0}")]
    NoAddress(String),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error6 {
    move |source| Error6::Io {
        context: context.into(),
        source,
    }
}

/// RFC 8415 §7.6 transmission parameters of one message type.
#[derive(Clone, Copy)]
struct Retransmission {
    /// Initial retransmission time.
    initial: Duration,
    /// Maximum retransmission time (before [`Timing6::resend_max`]).
    max: Duration,
    /// Maximum transmissions; 0: until the deadline.
    max_count: u32,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const SOLICIT: Retransmission = Retransmission {
    initial: secs(1),
    max: secs(3600),
    max_count: 0,
};
const REQUEST: Retransmission = Retransmission {
    initial: secs(1),
    max: secs(30),
    max_count: 10,
};
const RENEW: Retransmission = Retransmission {
    initial: secs(10),
    max: secs(600),
    max_count: 0,
};
const REBIND: Retransmission = RENEW;
const RELEASE: Retransmission = Retransmission {
    initial: secs(1),
    max: secs(1),
    max_count: 4,
};

/// How often to look at the link-local address while its duplicate
/// address detection runs.
const DAD_POLL: Duration = Duration::from_millis(50);

/// What a client/server exchange does with an answer.
enum Answer<T> {
    /// Not for us or not usable: keep waiting.
    Ignore,
    /// The exchange is over.
    Done(T),
}

/// The DHCPv6 client of one interface and one IA_NA.
#[derive(Debug)]
pub struct Client6 {
    ifname: String,
    ifindex: u32,
    duid: Vec<u8>,
    iaid: u32,
    timing: Timing6,
}

impl Client6 {
    /// A client for `ifname` (in the calling thread's network namespace)
    /// with the client DUID `duid` and the IAID `iaid` (see
    /// [`crate::duid_from_client_id`], [`crate::iaid_from_client_id`]).
    pub fn new(ifname: &str, duid: Vec<u8>, iaid: u32, timing: Timing6) -> Result<Client6, Error6> {
        if duid.len() < 3 || duid.len() > MAX_DUID_LEN {
            return Err(Error6::InvalidArgument(format!(
                "a DUID is 3 to {MAX_DUID_LEN} bytes, not {}",
                duid.len()
            )));
        }
        if timing.timeout.is_zero() || timing.resend_max.is_zero() {
            return Err(Error6::InvalidArgument(
                "timeout and resend_max must be above zero".into(),
            ));
        }
        let link = rcni_net::Handle::new()?
            .link_by_name(ifname)?
            .ok_or_else(|| Error6::NoInterface(ifname.to_string()))?;
        Ok(Client6 {
            ifname: ifname.to_string(),
            ifindex: link.index,
            duid,
            iaid,
            timing,
        })
    }

    /// A new lease: Solicit, the best Advertise (highest preference, the
    /// first of equals), Request, Reply.
    pub fn acquire(&self) -> Result<Lease6, Error6> {
        let deadline = self.deadline();
        let socket = self.open_socket(deadline)?;
        let mut solicit = self.message(MessageType::Solicit);
        solicit.ia_na.push(self.ia(Vec::new()));
        // Shared by the two callbacks below.
        let best: RefCell<Option<(u8, Message)>> = RefCell::new(None);
        let first_wait_over = Cell::new(false);
        let advertise = self.transact(
            &socket,
            deadline,
            SOLICIT,
            solicit,
            |msg, _| {
                if msg.kind != MessageType::Advertise || !self.offers_address(&msg) {
                    return Answer::Ignore;
                }
                let preference = msg.preference.unwrap_or(0);
                // RFC 8415 §18.2.1: 255 ends the wait at once, and so does
                // any Advertise once the first wait is over.
                if preference == u8::MAX || first_wait_over.get() {
                    return Answer::Done(msg);
                }
                let mut best = best.borrow_mut();
                if best.as_ref().is_none_or(|(p, _)| preference > *p) {
                    *best = Some((preference, msg));
                }
                Answer::Ignore
            },
            || {
                first_wait_over.set(true);
                best.take().map(|(_, msg)| msg)
            },
        )?;
        let advertise = advertise.ok_or_else(|| self.no_server())?;
        let offered = advertise
            .ia_na
            .into_iter()
            .find(|ia| ia.iaid == self.iaid)
            .map(|ia| ia.addresses)
            .unwrap_or_default();
        self.request(
            &socket,
            deadline,
            advertise.server_id,
            hints(offered.iter().map(|a| a.address)),
        )
    }

    /// Extends `lease` with the server that granted it (Renew).
    pub fn renew(&self, lease: &Lease6) -> Result<Lease6, Error6> {
        self.renew_until(lease, self.deadline())
    }

    /// [`Client6::renew`], giving up at `deadline` instead of after the
    /// timeout (lease upkeep bounds each attempt by its own clock).
    pub fn renew_until(&self, lease: &Lease6, deadline: Instant) -> Result<Lease6, Error6> {
        self.extend(MessageType::Renew, lease, deadline)
    }

    /// Extends `lease` with any server (Rebind), for when its own server
    /// does not answer.
    pub fn rebind(&self, lease: &Lease6) -> Result<Lease6, Error6> {
        self.rebind_until(lease, self.deadline())
    }

    /// [`Client6::rebind`], giving up at `deadline`.
    pub fn rebind_until(&self, lease: &Lease6, deadline: Instant) -> Result<Lease6, Error6> {
        self.extend(MessageType::Rebind, lease, deadline)
    }

    /// The index of the client's interface.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Gives `lease` back (Release). `Ok` once the server confirmed;
    /// [`Error6::NoServer`] when it did not answer within the timeout, after
    /// which the caller forgets the lease anyway.
    pub fn release(&self, lease: &Lease6) -> Result<(), Error6> {
        let deadline = self.deadline();
        let socket = self.open_socket(deadline)?;
        let mut release = self.message(MessageType::Release);
        release.server_id = Some(lease.server_duid.clone());
        release.ia_na.push(self.ia(hints([lease.address])));
        let server_id = Some(lease.server_duid.as_slice());
        // RFC 8415 §18.2.7: any Reply from the server ends it, whatever its
        // status says.
        let confirmed = self.transact(
            &socket,
            deadline,
            RELEASE,
            release,
            |msg, _| {
                if msg.kind == MessageType::Reply && msg.server_id.as_deref() == server_id {
                    Answer::Done(())
                } else {
                    Answer::Ignore
                }
            },
            || None,
        )?;
        confirmed.ok_or_else(|| self.no_server())
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timing.timeout
    }

    fn no_server(&self) -> Error6 {
        Error6::NoServer {
            ifname: self.ifname.clone(),
            timeout: self.timing.timeout,
        }
    }

    /// A message of `kind` with a new transaction id, our DUID and the
    /// options we want in the answer.
    fn message(&self, kind: MessageType) -> Message {
        let mut msg = Message::new(kind, random_u32());
        msg.client_id = Some(self.duid.clone());
        if kind != MessageType::Release {
            msg.option_request = vec![OPT_DNS_SERVERS, OPT_DOMAIN_LIST];
        }
        msg
    }

    /// Our IA_NA; T1/T2 0 leave them to the server.
    fn ia(&self, addresses: Vec<IaAddr>) -> IaNa {
        IaNa {
            iaid: self.iaid,
            t1: 0,
            t2: 0,
            addresses,
            status: None,
        }
    }

    /// An Advertise worth a Request: a server id, no failure status, and an
    /// address in our IA_NA.
    fn offers_address(&self, msg: &Message) -> bool {
        msg.server_id.is_some()
            && succeeded(&msg.status)
            && msg.ia_na.iter().any(|ia| {
                ia.iaid == self.iaid && succeeded(&ia.status) && usable_address(ia).is_some()
            })
    }

    /// A Renew (to the lease's server) or a Rebind (to any). A server that
    /// answers NoBinding (it lost the lease) is sent a Request for the same
    /// address, as RFC 8415 §18.2.10.1 says.
    fn extend(
        &self,
        kind: MessageType,
        lease: &Lease6,
        deadline: Instant,
    ) -> Result<Lease6, Error6> {
        let socket = self.open_socket(deadline)?;
        let (retransmission, server_id) = match kind {
            MessageType::Renew => (RENEW, Some(lease.server_duid.clone())),
            _ => (REBIND, None),
        };
        let mut msg = self.message(kind);
        msg.server_id = server_id.clone();
        msg.ia_na.push(self.ia(hints([lease.address])));
        let (reply, from) = self.await_reply(&socket, deadline, retransmission, msg, server_id)?;
        let server_id = reply.server_id.clone();
        match self.lease_from(reply, from) {
            Err(Error6::Status {
                code: STATUS_NO_BINDING,
                ..
            }) => self.request(&socket, deadline, server_id, hints([lease.address])),
            other => other,
        }
    }

    /// Request → Reply with `server_id`, for `addresses`.
    fn request(
        &self,
        socket: &UdpSocket,
        deadline: Instant,
        server_id: Option<Vec<u8>>,
        addresses: Vec<IaAddr>,
    ) -> Result<Lease6, Error6> {
        let mut request = self.message(MessageType::Request);
        request.server_id = server_id.clone();
        request.ia_na.push(self.ia(addresses));
        let (reply, from) = self.await_reply(socket, deadline, REQUEST, request, server_id)?;
        self.lease_from(reply, from)
    }

    /// Sends `msg` until a Reply from `server_id` (any server when `None`)
    /// comes.
    fn await_reply(
        &self,
        socket: &UdpSocket,
        deadline: Instant,
        retransmission: Retransmission,
        msg: Message,
        server_id: Option<Vec<u8>>,
    ) -> Result<(Message, Ipv6Addr), Error6> {
        let reply = self.transact(
            socket,
            deadline,
            retransmission,
            msg,
            |msg, from| {
                let from_server = msg.server_id.is_some()
                    && server_id
                        .as_ref()
                        .is_none_or(|id| msg.server_id.as_ref() == Some(id));
                if msg.kind == MessageType::Reply && from_server {
                    Answer::Done((msg, from))
                } else {
                    Answer::Ignore
                }
            },
            || None,
        )?;
        reply.ok_or_else(|| self.no_server())
    }

    /// The lease a Reply grants, or the failure it says.
    fn lease_from(&self, reply: Message, from: Ipv6Addr) -> Result<Lease6, Error6> {
        let refused = |s: &Status| Error6::Status {
            code: s.code,
            message: s.message.clone(),
        };
        if let Some(status) = reply.status.as_ref().filter(|s| s.code != STATUS_SUCCESS) {
            return Err(refused(status));
        }
        let ia = reply
            .ia_na
            .iter()
            .find(|ia| ia.iaid == self.iaid)
            .ok_or_else(|| Error6::NoAddress(format!("no IA_NA with IAID {}", self.iaid)))?;
        if let Some(status) = ia.status.as_ref().filter(|s| s.code != STATUS_SUCCESS) {
            return Err(refused(status));
        }
        // RFC 8415 §18.2.10.1: an IA whose T1 is above a non-zero T2 is
        // discarded.
        if ia.t2 != 0 && ia.t1 > ia.t2 {
            return Err(Error6::NoAddress(format!(
                "T1 {} above T2 {}",
                ia.t1, ia.t2
            )));
        }
        let addr = usable_address(ia)
            .ok_or_else(|| Error6::NoAddress("no address with a valid lifetime".into()))?;
        Ok(Lease6 {
            address: addr.address,
            preferred_lifetime: addr.preferred_lifetime,
            valid_lifetime: addr.valid_lifetime,
            t1: ia.t1,
            t2: ia.t2,
            server_duid: reply.server_id.clone().unwrap_or_default(),
            server_address: from,
            dns_servers: reply.dns_servers,
            domain_search: reply.domain_search,
            obtained_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        })
    }

    /// The UDP socket of an exchange: `[::]:546` bound to the interface,
    /// opened once the interface has a link-local address to send from.
    fn open_socket(&self, deadline: Instant) -> Result<UdpSocket, Error6> {
        self.wait_for_link_local(deadline)?;
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
            .map_err(io_error("open a UDP socket"))?;
        socket
            .set_only_v6(true)
            .map_err(io_error("set IPV6_V6ONLY"))?;
        socket
            .bind_device(Some(self.ifname.as_bytes()))
            .map_err(io_error(format!("bind to device {}", self.ifname)))?;
        socket
            .set_multicast_if_v6(self.ifindex)
            .map_err(io_error("set IPV6_MULTICAST_IF"))?;
        let local = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0);
        socket
            .bind(&SocketAddr::V6(local).into())
            .map_err(io_error(format!(
                "bind [::]:{CLIENT_PORT} on {}",
                self.ifname
            )))?;
        Ok(socket.into())
    }

    /// Waits until the interface has a link-local address whose duplicate
    /// address detection is over: the kernel sends nothing from a
    /// tentative address.
    fn wait_for_link_local(&self, deadline: Instant) -> Result<(), Error6> {
        let mut handle = rcni_net::Handle::new()?;
        loop {
            let link_locals: Vec<rcni_net::Address> = handle
                .addresses(Some(self.ifindex))?
                .into_iter()
                .filter(|a| match a.net.addr() {
                    std::net::IpAddr::V6(ip) => ip.is_unicast_link_local(),
                    std::net::IpAddr::V4(_) => false,
                })
                .collect();
            if link_locals
                .iter()
                .any(|a| !a.is_tentative() && !a.is_dad_failed())
            {
                return Ok(());
            }
            let reason = if link_locals.is_empty() {
                "none (is the link up?)"
            } else if link_locals.iter().all(|a| a.is_dad_failed()) {
                return Err(self.no_link_local("duplicate address detection failed"));
            } else {
                "still tentative"
            };
            if Instant::now() + DAD_POLL >= deadline {
                return Err(self.no_link_local(reason));
            }
            std::thread::sleep(DAD_POLL);
        }
    }

    fn no_link_local(&self, reason: &str) -> Error6 {
        Error6::NoLinkLocal {
            ifname: self.ifname.clone(),
            reason: reason.to_string(),
        }
    }

    /// One exchange (RFC 8415 §15): sends `msg` to all servers, again after
    /// each retransmission time (doubling, with ±10 % jitter, up to its
    /// maximum), until `on_answer` is done with an answer, `on_wait_over`
    /// (asked at the end of each wait) has one, the transmissions run out
    /// or the deadline passes (`Ok(None)`). Answers with another
    /// transaction id or client DUID never reach `on_answer`.
    fn transact<T>(
        &self,
        socket: &UdpSocket,
        deadline: Instant,
        retransmission: Retransmission,
        mut msg: Message,
        mut on_answer: impl FnMut(Message, Ipv6Addr) -> Answer<T>,
        mut on_wait_over: impl FnMut() -> Option<T>,
    ) -> Result<Option<T>, Error6> {
        let server = SocketAddrV6::new(
            ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
            SERVER_PORT,
            0,
            self.ifindex,
        );
        let max_wait = retransmission.max.min(self.timing.resend_max);
        let started = Instant::now();
        let mut wait = Duration::ZERO;
        let mut sent = 0u32;
        let mut buf = vec![0u8; 65536];
        loop {
            if retransmission.max_count != 0 && sent == retransmission.max_count {
                return Ok(None);
            }
            // Hundredths of a second since the first transmission.
            let centis = started.elapsed().as_millis() / 10;
            msg.elapsed_centis = Some(u16::try_from(centis).unwrap_or(u16::MAX));
            socket
                .send_to(&msg.encode()?, server)
                .map_err(io_error(format!("send {:?} on {}", msg.kind, self.ifname)))?;
            sent += 1;
            wait = next_wait(wait, retransmission.initial, max_wait, msg.kind);
            let wait_end = (Instant::now() + wait).min(deadline);
            while let Some(left) = wait_end.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                socket
                    .set_read_timeout(Some(left))
                    .map_err(io_error("set the receive timeout"))?;
                let (len, from) = match socket.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(io_error(format!("receive on {}", self.ifname))(e)),
                };
                let SocketAddr::V6(from) = from else { continue };
                if from.port() != SERVER_PORT {
                    continue;
                }
                // Junk on the port is ignored, as any server's bad message.
                let Ok(answer) = Message::decode(buf.get(..len).unwrap_or_default()) else {
                    continue;
                };
                if answer.transaction_id != msg.transaction_id
                    || answer.client_id.as_deref() != Some(self.duid.as_slice())
                {
                    continue;
                }
                if let Answer::Done(done) = on_answer(answer, *from.ip()) {
                    return Ok(Some(done));
                }
            }
            if let Some(done) = on_wait_over() {
                return Ok(Some(done));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The first address of an IA a client may use: a valid lifetime, a
/// preferred lifetime not above it, no failure status.
fn usable_address(ia: &IaNa) -> Option<&IaAddr> {
    ia.addresses.iter().find(|a| {
        a.valid_lifetime > 0 && a.preferred_lifetime <= a.valid_lifetime && succeeded(&a.status)
    })
}

/// No status option means success (RFC 8415 §21.13).
fn succeeded(status: &Option<Status>) -> bool {
    status.as_ref().is_none_or(|s| s.code == STATUS_SUCCESS)
}

/// Addresses as hints in our IA_NA: lifetimes 0, as RFC 8415 §18.2 asks.
fn hints(addresses: impl IntoIterator<Item = Ipv6Addr>) -> Vec<IaAddr> {
    addresses
        .into_iter()
        .map(|address| IaAddr {
            address,
            preferred_lifetime: 0,
            valid_lifetime: 0,
            status: None,
        })
        .collect()
}

/// RFC 8415 §15: the first RT is IRT + RAND×IRT, each next one
/// 2×RTprev + RAND×RTprev, and above MRT it is MRT + RAND×MRT, with RAND
/// in [-0.1, 0.1] (strictly above 0 for the first Solicit).
fn next_wait(previous: Duration, initial: Duration, max: Duration, kind: MessageType) -> Duration {
    let rand = random_jitter();
    if previous.is_zero() {
        let rand = if kind == MessageType::Solicit {
            rand.abs().max(0.001)
        } else {
            rand
        };
        return initial.mul_f64(1.0 + rand).min(max.mul_f64(1.0 + rand));
    }
    let next = previous.mul_f64(2.0 + rand);
    if next > max {
        max.mul_f64(1.0 + rand)
    } else {
        next
    }
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // getrandom(2) does not fail for 4 bytes once the pool is ready; if it
    // ever did, the clock's nanoseconds still vary per call.
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        return SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    }
    u32::from_ne_bytes(bytes)
}

/// A uniform value in [-0.1, 0.1].
fn random_jitter() -> f64 {
    (f64::from(random_u32()) / f64::from(u32::MAX) - 0.5) * 0.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmission_doubles_with_jitter_up_to_the_maximum() {
        let irt = secs(1);
        let max = secs(8);
        let mut wait = Duration::ZERO;
        let mut waits = Vec::new();
        for _ in 0..8 {
            wait = next_wait(wait, irt, max, MessageType::Solicit);
            waits.push(wait);
        }
        assert!(waits[0] > irt && waits[0] <= irt.mul_f64(1.1), "{waits:?}");
        for pair in waits.windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            assert!(next <= max.mul_f64(1.1), "{waits:?}");
            assert!(next >= prev.mul_f64(1.9).min(max.mul_f64(0.9)), "{waits:?}");
        }
        assert!(waits[7] >= max.mul_f64(0.9), "{waits:?}");
        let first_request = next_wait(Duration::ZERO, irt, max, MessageType::Request);
        assert!(first_request >= irt.mul_f64(0.9) && first_request <= irt.mul_f64(1.1));
        // A resend_max below IRT caps the first wait too.
        let capped = next_wait(Duration::ZERO, secs(10), secs(2), MessageType::Renew);
        assert!(capped <= secs(2).mul_f64(1.1), "{capped:?}");
    }

    #[test]
    fn jitter_and_ids_vary() {
        let ids: std::collections::HashSet<u32> = (0..16).map(|_| random_u32()).collect();
        assert!(ids.len() > 1);
        assert!((0..100)
            .map(|_| random_jitter())
            .all(|j| (-0.1..=0.1).contains(&j)));
    }

    #[test]
    fn unusable_addresses_are_skipped() {
        let addr = |preferred, valid, code: Option<u16>| IaAddr {
            address: Ipv6Addr::LOCALHOST,
            preferred_lifetime: preferred,
            valid_lifetime: valid,
            status: code.map(|code| Status {
                code,
                message: String::new(),
            }),
        };
        let mut ia = IaNa {
            iaid: 1,
            t1: 0,
            t2: 0,
            addresses: vec![addr(10, 0, None), addr(20, 10, None), addr(5, 10, Some(2))],
            status: None,
        };
        assert!(usable_address(&ia).is_none());
        ia.addresses.push(addr(5, 10, Some(0)));
        assert_eq!(usable_address(&ia).map(|a| a.valid_lifetime), Some(10));
    }
}
