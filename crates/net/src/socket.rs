//! The netlink socket: requests with acks, single gets, and dumps.

use crate::error::{NetError, Result, EINTR};
use crate::netns::NetNs;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;

/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 5;
/// Initial receive buffer; the kernel caps dump datagrams at 32 KiB, and a
/// bigger single message makes the buffer grow.
const RECV_BUFFER: usize = 32 * 1024;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
/// `NLMSGERR_ATTR_MSG`: the extended ack's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;

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

/// The fixed part of a netlink message header, read from raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawHeader {
    len: usize,
    kind: u16,
    flags: u16,
    seq: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a datagram into (header, message bytes including the header).
fn split_messages(data: &[u8]) -> Result<Vec<(RawHeader, &[u8])>> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset + NLMSG_HDRLEN <= data.len() {
        let b = &data[offset..];
        let len = u32_at(b, 0).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return Err(NetError::Protocol(format!(
                "bad netlink message length {len} (datagram has {} bytes left)",
                b.len()
            )));
        }
        let header = RawHeader {
            len,
            kind: u16_at(b, 4).unwrap_or(0),
            flags: u16_at(b, 6).unwrap_or(0),
            seq: u32_at(b, 8).unwrap_or(0),
        };
        out.push((header, &b[..len]));
        offset += align4(len);
    }
    Ok(out)
}

/// The message of an extended ack. `payload` is what follows the error
/// code of an `NLMSG_ERROR` (`is_error`) or `NLMSG_DONE` message.
fn extack_message(flags: u16, payload: &[u8], is_error: bool) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let mut at = if !is_error {
        0
    } else if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        // The whole request is echoed; its header gives its length.
        align4(u32_at(payload, 0)? as usize)
    };
    while at + 4 <= payload.len() {
        let len = u16_at(payload, at)? as usize;
        let kind = u16_at(payload, at + 2)? & 0x3fff;
        if len < 4 || at + len > payload.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let value = &payload[at + 4..at + len];
            let value = value.split(|b| *b == 0).next().unwrap_or(value);
            return Some(String::from_utf8_lossy(value).into_owned());
        }
        at += align4(len);
    }
    None
}

/// The error code and kernel message of an `NLMSG_ERROR`/`NLMSG_DONE`.
fn status(header: &RawHeader, message: &[u8]) -> Result<(i32, Option<String>)> {
    let payload = &message[NLMSG_HDRLEN..];
    let code = u32_at(payload, 0)
        .map(|c| c as i32)
        .ok_or_else(|| NetError::Protocol("short netlink error message".into()))?;
    let msg = if code != 0 {
        extack_message(header.flags, &payload[4..], header.kind == NLMSG_ERROR)
    } else {
        None
    };
    Ok((code, msg))
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
        loop {
            match self.socket.send(&bytes, 0) {
                Ok(_) => return Ok(self.seq),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn header(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v
    }

    #[test]
    fn extack_capped_error() {
        // Original request header (capped), then the TLVs.
        let mut payload = header(40, 16, 5, 9);
        payload.extend(nla(2, &8u32.to_ne_bytes())); // NLMSGERR_ATTR_OFFS
        payload.extend(nla(1, b"Invalid prefix\0"));
        assert_eq!(
            extack_message(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload, true).as_deref(),
            Some("Invalid prefix")
        );
        assert_eq!(extack_message(NLM_F_CAPPED, &payload, true), None);
    }

    #[test]
    fn extack_uncapped_error_and_done() {
        // The whole 22-byte request is echoed (padded to 24).
        let mut payload = header(22, 16, 5, 9);
        payload.extend_from_slice(&[1, 2, 3, 4, 5, 6, 0, 0]);
        payload.extend(nla(1, b"no such thing\0"));
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &payload, true).as_deref(),
            Some("no such thing")
        );
        let done = nla(1, b"table gone\0");
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &done, false).as_deref(),
            Some("table gone")
        );
        // Garbage never panics.
        assert_eq!(extack_message(NLM_F_ACK_TLVS, &[9, 0, 1], false), None);
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &[255, 255, 0, 0], true),
            None
        );
    }

    #[test]
    fn splitting() {
        let mut dgram = header(20, 3, 2, 7);
        dgram.extend_from_slice(&0i32.to_ne_bytes());
        dgram.extend(header(18, 2, 0, 8));
        dgram.extend_from_slice(&[0, 0, 0, 0]); // 2 bytes padding after 18
        let msgs = split_messages(&dgram).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0].0,
            RawHeader {
                len: 20,
                kind: 3,
                flags: 2,
                seq: 7
            }
        );
        assert_eq!(msgs[1].0.seq, 8);
        assert_eq!(msgs[1].1.len(), 18);
        let bad = header(200, 3, 0, 1);
        assert!(split_messages(&bad).is_err());
    }

    #[test]
    fn error_status() {
        let mut msg = header(36, NLMSG_ERROR, NLM_F_CAPPED, 1);
        msg.extend_from_slice(&(-17i32).to_ne_bytes());
        msg.extend(header(40, 16, 5, 1));
        let (h, bytes) = split_messages(&msg).unwrap()[0];
        assert_eq!(status(&h, bytes).unwrap(), (-17, None));
    }
}
