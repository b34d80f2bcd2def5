//! NETLINK_NETFILTER, hand-encoded (netlink-packet-route covers only
//! rtnetlink): the message framing and a request/answer exchange shared
//! by ctnetlink ([`crate::conntrack`]) and the nf_tables probes
//! ([`crate::nf_tables`]).

use crate::error::{NetError, Result};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 1;
pub(crate) const NLM_F_ACK: u16 = 4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// Set on a dump's messages when the ruleset changed while it ran: the
/// dump may have missed entries.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// The errno a dump reports when it was interrupted, so callers retry.
pub(crate) const EINTR: i32 = 4;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;

pub(crate) fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink attributes of a buffer: (type without flags, payload).
pub(crate) fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & !NLA_F_NESTED;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// A netfilter message of subsystem `subsys`: header, nfgenmsg, attributes.
pub(crate) fn message(
    subsys: u16,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    attrs: &[u8],
) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((subsys << 8) | kind).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

pub(crate) fn nested(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + align(payload.len()));
    a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(align(a.len()), 0);
    a
}

/// A NETLINK_NETFILTER socket of the calling thread's namespace.
pub(crate) struct Conn {
    subsys: u16,
    socket: Socket,
    seq: u32,
}

impl Conn {
    /// Opens a socket for messages of subsystem `subsys`.
    pub(crate) fn open(subsys: u16) -> Result<Conn> {
        let mut socket =
            Socket::new(NETLINK_NETFILTER).map_err(NetError::io("open netfilter socket"))?;
        socket
            .bind_auto()
            .map_err(NetError::io("bind netfilter socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetError::io("connect netfilter socket"))?;
        Ok(Conn {
            subsys,
            socket,
            seq: 0,
        })
    }

    /// Sends a request and collects the payloads of its answers (after the
    /// nfgenmsg header) until DONE or the ack.
    pub(crate) fn exchange(
        &mut self,
        kind: u16,
        flags: u16,
        family: u8,
        attrs: &[u8],
        op: &str,
    ) -> Result<Vec<Vec<u8>>> {
        self.seq += 1;
        let first = self.seq;
        let req = message(self.subsys, kind, flags, self.seq, family, attrs);
        self.socket
            .send(&req, 0)
            .map_err(NetError::io(format!("{op}: send")))?;
        self.replies(op, 1, first)
    }

    /// Sends `requests` (kind, family, attributes) as one nf_tables
    /// transaction (between batch begin and end messages, each request
    /// acknowledged): all of them happen or none.
    pub(crate) fn transaction(&mut self, requests: &[(u16, u8, Vec<u8>)], op: &str) -> Result<()> {
        if requests.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        self.seq += 1;
        let first = self.seq;
        buf.extend(batch_marker(NFNL_MSG_BATCH_BEGIN, self.seq, self.subsys));
        for (kind, family, attrs) in requests {
            self.seq += 1;
            buf.extend(message(
                self.subsys,
                *kind,
                NLM_F_REQUEST | NLM_F_ACK,
                self.seq,
                *family,
                attrs,
            ));
        }
        self.seq += 1;
        buf.extend(batch_marker(NFNL_MSG_BATCH_END, self.seq, self.subsys));
        self.socket
            .send(&buf, 0)
            .map_err(NetError::io(format!("{op}: send")))?;
        self.replies(op, requests.len(), first).map(|_| ())
    }

    /// Collects the payloads of answers (after the nfgenmsg header) until
    /// DONE or `acks` acknowledgements; the first error ends it. Answers to
    /// earlier requests (sequence below `first`), left over when one ended
    /// early, are skipped: the socket may be reused.
    fn replies(&mut self, op: &str, acks: usize, first: u32) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut acked = 0;
        let mut interrupted = false;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self
                .socket
                .recv(&mut &mut buf[..], 0)
                .map_err(NetError::io(format!("{op}: receive")))?;
            let mut at = 0;
            while at + 16 <= n {
                let len =
                    u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
                let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
                if len < 16 || at + len > n {
                    return Err(NetError::Protocol(format!("{op}: truncated message")));
                }
                let body = &buf[at + 16..at + len];
                let seq =
                    u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
                if seq < first {
                    at += align(len);
                    continue;
                }
                let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]);
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match ty {
                    NLMSG_DONE if interrupted => {
                        return Err(NetError::Netlink {
                            op: format!("{op} (dump interrupted by a concurrent change)"),
                            errno: EINTR,
                            msg: None,
                        })
                    }
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        if code != 0 {
                            return Err(NetError::Netlink {
                                op: op.to_string(),
                                errno: -code,
                                msg: None,
                            });
                        }
                        acked += 1;
                        if acked >= acks {
                            return Ok(out);
                        }
                    }
                    _ if body.len() >= 4 => out.push(body[4..].to_vec()),
                    _ => {}
                }
                at += align(len);
            }
        }
    }
}

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

/// A batch begin or end message: no subsystem in the type, the subsystem
/// the batch is for in `res_id` (big-endian).
fn batch_marker(kind: u16, seq: u32, subsys: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&20u32.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&subsys.to_be_bytes());
    m
}
