//! The netlink socket: requests with acks, single gets, and dumps.

use crate::error::{NetError, Result, EINTR};
use crate::framing::{
    attribute, attributes, split_messages, status, u32_at, write_header, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_HDRLEN, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use crate::netns::NetNs;
use crate::route::IpFamily;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 5;
/// Initial receive buffer; the kernel caps dump datagrams at 32 KiB, and a
/// bigger single message makes the buffer grow.
const RECV_BUFFER: usize = 32 * 1024;

/// One NETLINK_ROUTE socket. It acts in the network namespace it was
/// opened in, whatever thread later uses it (see [`Handle::new_in`]).
///
/// Requests are strictly sequential: each call sends one request and reads
/// its whole answer before returning.
pub struct Handle {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("seq", &self.seq).finish()
    }
}

fn open_socket() -> Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetError::io("open netlink socket"))?;
    socket
        .bind_auto()
        .map_err(NetError::io("bind netlink socket"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(NetError::io("connect netlink socket"))?;
    // All three are optional refinements; old kernels lack them.
    // Strict checking makes the kernel filter dumps by the header we send.
    let _ = socket.set_netlink_get_strict_chk(true);
    // Extended acks carry a message explaining an error.
    let _ = socket.set_ext_ack(true);
    // Do not echo our whole request back in error messages.
    let _ = socket.set_cap_ack(true);
    Ok(socket)
}

/// How an exchange ended.
enum Ending {
    /// Ack, last reply of a get, or end of a dump.
    Complete,
    /// The dump was marked inconsistent (`NLM_F_DUMP_INTR`) or failed with
    /// `EINTR`: retry.
    Interrupted,
}

impl Handle {
    /// A socket in the calling thread's network namespace.
    pub fn new() -> Result<Handle> {
        Ok(Handle::from_socket(open_socket()?))
    }

    /// A socket inside `ns`. It is created on a short-lived thread that
    /// entered `ns`, and then used from here: a netlink socket stays bound
    /// to the namespace it was created in, so the calling thread never
    /// changes namespace.
    pub fn new_in(ns: &NetNs) -> Result<Handle> {
        Ok(Handle::from_socket(ns.run(open_socket)??))
    }

    fn from_socket(socket: Socket) -> Handle {
        Handle {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        }
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16, op: &str) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.send_bytes(&bytes, op)?;
        Ok(self.seq)
    }

    /// Sends one encoded message, retrying when interrupted.
    fn send_bytes(&mut self, bytes: &[u8], op: &str) -> Result<()> {
        loop {
            match self.socket.send(bytes, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::io(format!("{op}: send"))(e)),
            }
        }
    }

    /// Receives one whole datagram into `self.buf`, growing it if needed.
    fn recv_datagram(&mut self, op: &str) -> Result<()> {
        loop {
            // Peek at the size first so that no datagram is ever truncated.
            let mut probe = [0u8; NLMSG_HDRLEN];
            let mut probe_buf: &mut [u8] = &mut probe;
            let size = match self
                .socket
                .recv(&mut probe_buf, libc::MSG_PEEK | libc::MSG_TRUNC)
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::io(format!("{op}: receive"))(e)),
            };
            self.buf.clear();
            if self.buf.capacity() < size {
                self.buf.reserve(size);
            }
            match self.socket.recv(&mut self.buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::io(format!("{op}: receive"))(e)),
            }
        }
    }

    /// Sends `msg` and collects the answer into `out`. With `NLM_F_DUMP`
    /// it reads until `NLMSG_DONE`; with `NLM_F_ACK` until the ack; else
    /// until the first reply.
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        out: &mut Vec<RouteNetlinkMessage>,
    ) -> Result<Ending> {
        let seq = self.send(msg, flags, op)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let acked = flags & NLM_F_ACK != 0;
        let mut interrupted = false;
        loop {
            self.recv_datagram(op)?;
            for (header, bytes) in split_messages(&self.buf)? {
                if header.seq != seq {
                    // A leftover of an earlier, abandoned exchange.
                    continue;
                }
                if header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match header.kind {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => {
                        return Err(NetError::Protocol(format!("{op}: netlink overrun")))
                    }
                    NLMSG_ERROR | NLMSG_DONE => {
                        let (code, kernel_msg) = status(&header, bytes)?;
                        if code == 0 {
                            return Ok(if interrupted {
                                Ending::Interrupted
                            } else {
                                Ending::Complete
                            });
                        }
                        let errno = code.saturating_neg();
                        if dump && errno == EINTR {
                            return Ok(Ending::Interrupted);
                        }
                        return Err(NetError::Netlink {
                            op: op.to_string(),
                            errno,
                            msg: kernel_msg,
                        });
                    }
                    _ => {
                        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                            .map_err(|e| {
                                NetError::Protocol(format!(
                                    "{op}: cannot decode message type {}: {e}",
                                    header.kind
                                ))
                            })?;
                        if let NetlinkPayload::InnerMessage(m) = parsed.payload {
                            out.push(m);
                        }
                        if !dump && !acked {
                            return Ok(Ending::Complete);
                        }
                    }
                }
            }
        }
    }

    /// Whether forwarding is on for all of the namespace's interfaces of
    /// `family`: `net.ipv4.ip_forward` or `net.ipv6.conf.all.forwarding`,
    /// read with `RTM_GETNETCONF` rather than under `/proc/sys` (see
    /// [`crate::sysctl`] for why that path is slow with many namespaces).
    pub fn forwarding(&mut self, family: IpFamily) -> Result<bool> {
        const RTM_NEWNETCONF: u16 = 80;
        const RTM_GETNETCONF: u16 = 82;
        const NETCONFA_IFINDEX: u16 = 1;
        const NETCONFA_FORWARDING: u16 = 2;
        const NETCONFA_IFINDEX_ALL: i32 = -1;
        let op = "read the forwarding setting";
        let af = match family {
            IpFamily::V4 => libc::AF_INET,
            IpFamily::V6 => libc::AF_INET6,
        };
        // netconfmsg: the family, padded to the attribute alignment.
        let mut body = vec![af as u8, 0, 0, 0];
        body.extend(attribute(
            NETCONFA_IFINDEX,
            &NETCONFA_IFINDEX_ALL.to_ne_bytes(),
        ));
        self.seq = self.seq.wrapping_add(1);
        let mut request = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        write_header(
            &mut request,
            NLMSG_HDRLEN + body.len(),
            RTM_GETNETCONF,
            NLM_F_REQUEST,
            self.seq,
        );
        request.extend(body);
        self.send_bytes(&request, op)?;
        loop {
            self.recv_datagram(op)?;
            for (header, bytes) in split_messages(&self.buf)? {
                if header.seq != self.seq {
                    continue;
                }
                if header.kind == NLMSG_ERROR {
                    let (code, msg) = status(&header, bytes)?;
                    return Err(NetError::Netlink {
                        op: op.to_string(),
                        errno: code.saturating_neg(),
                        msg,
                    });
                }
                if header.kind != RTM_NEWNETCONF {
                    continue;
                }
                let attrs = bytes.get(NLMSG_HDRLEN + 4..).unwrap_or_default();
                return attributes(attrs)
                    .find(|(kind, _)| *kind == NETCONFA_FORWARDING)
                    .and_then(|(_, v)| u32_at(v, 0))
                    .map(|on| on != 0)
                    .ok_or_else(|| {
                        NetError::Protocol(format!("{op}: no forwarding in the answer"))
                    });
            }
        }
    }

    /// Sends a request that changes something and waits for its ack.
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        extra_flags: u16,
        op: &str,
    ) -> Result<()> {
        let mut out = Vec::new();
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags, op, &mut out)?;
        Ok(())
    }

    /// Sends a get request without the dump flag (one object) and returns
    /// the answer; `None` when the kernel says it does not exist.
    pub(crate) fn get_one(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Option<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        match self.exchange(msg, NLM_F_REQUEST, op, &mut out) {
            Ok(_) => Ok(out.pop()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Dumps every object of a kind. A dump that a concurrent change made
    /// inconsistent is retried, up to 5 times, then reported as `EINTR`.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            let mut out = Vec::new();
            match self.exchange(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, op, &mut out)? {
                Ending::Complete => return Ok(out),
                Ending::Interrupted => continue,
            }
        }
        Err(NetError::Netlink {
            op: op.to_string(),
            errno: EINTR,
            msg: Some(format!("dump interrupted {DUMP_RETRIES} times")),
        })
    }
}
