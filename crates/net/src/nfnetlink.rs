//! NETLINK_NETFILTER, hand-encoded (netlink-packet-route covers only
//! rtnetlink): netfilter messages (`nfgenmsg` after the netlink header,
//! written with [`crate::framing`]), nf_tables batches, and a
//! request/answer exchange shared by ctnetlink ([`crate::conntrack`]) and
//! the nf_tables probes ([`crate::nf_tables`]).

use crate::error::{NetError, Result, EINTR};
use crate::framing::{
    split_messages, status, write_header, RawHeader, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN,
    NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// Length of `nfgenmsg`, the header after the netlink one.
const NFGENMSG_LEN: usize = 4;

/// Appends a netfilter message of subsystem `subsys` to `buf`: header,
/// nfgenmsg, attributes. The requests of one `send` are written into one
/// buffer ([`request_buffer`]).
pub(crate) fn put_message(
    buf: &mut Vec<u8>,
    subsys: u16,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    attrs: &[u8],
) {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    write_header(buf, len, (subsys << 8) | kind, flags, seq);
    buf.extend_from_slice(&[family, 0, 0, 0]);
    buf.extend_from_slice(attrs);
}

/// The buffer for `requests` (their attributes `attrs_len` bytes in all)
/// and `extra` more messages without attributes.
pub(crate) fn request_buffer(requests: usize, attrs_len: usize, extra: usize) -> Vec<u8> {
    Vec::with_capacity((requests + extra) * (NLMSG_HDRLEN + NFGENMSG_LEN) + attrs_len)
}

/// A NETLINK_NETFILTER socket of the calling thread's namespace.
pub(crate) struct Conn {
    subsys: u16,
    socket: Socket,
    seq: u32,
    /// The socket's second holder, released by the kernel (see
    /// [`Conn::open`]); none where io_uring is not to be had.
    _released_by_kernel: Option<std::os::fd::OwnedFd>,
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
        // The release of a netfilter socket waits for nf_tables to free
        // what the namespace's last transactions deleted (an RCU grace
        // period, 10 to 25 ms measured here), so a DEL's exit, which the
        // runtime waits for, would. With a ring holding the socket too, the
        // last release happens in a kernel worker instead. Best effort:
        // without io_uring (disabled, or refused by a seccomp filter) the
        // exit waits as before.
        use std::os::fd::AsFd;
        let released_by_kernel = crate::sys::hold_in_io_uring(socket.as_fd()).ok();
        Ok(Conn {
            subsys,
            socket,
            seq: 0,
            _released_by_kernel: released_by_kernel,
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
        let mut req = request_buffer(1, attrs.len(), 0);
        put_message(&mut req, self.subsys, kind, flags, self.seq, family, attrs);
        self.send(&req, op)?;
        self.replies(op, 1, first)
    }

    /// Sends the look-ups `requests` (kind, family, attributes; each a
    /// plain request, not a dump) in one `send` and tells for each whether
    /// its object exists: the kernel answers them in turn, an object or
    /// a not-found error each. Any other error fails the whole.
    pub(crate) fn lookups(
        &mut self,
        requests: &[(u16, u8, Vec<u8>)],
        op: &str,
    ) -> Result<Vec<bool>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let attrs_len = requests.iter().map(|(_, _, a)| a.len()).sum();
        let mut buf = request_buffer(requests.len(), attrs_len, 0);
        let first = self.seq + 1;
        for (kind, family, attrs) in requests {
            self.seq += 1;
            put_message(
                &mut buf,
                self.subsys,
                *kind,
                NLM_F_REQUEST | NLM_F_ACK,
                self.seq,
                *family,
                attrs,
            );
        }
        let mut found: Vec<Option<bool>> = vec![None; requests.len()];
        self.send(&buf, op)?;
        let mut answered = 0;
        self.receive(op, |header, message| {
            // Each request ends with its status: 0 after the object, an
            // error without it.
            let Some(slot) = header
                .seq
                .checked_sub(first)
                .and_then(|i| found.get_mut(i as usize))
            else {
                return Ok(None);
            };
            if header.kind != NLMSG_ERROR || slot.is_some() {
                return Ok(None);
            }
            let (code, kernel_msg) = status(&header, message)?;
            *slot = Some(code == 0);
            if code != 0 {
                let err = NetError::Netlink {
                    op: op.to_string(),
                    errno: code.saturating_neg(),
                    msg: kernel_msg,
                };
                // As a single look-up ([`crate::nf_tables`]'s `exists`).
                if !err.is_not_found() {
                    return Err(err);
                }
            }
            answered += 1;
            Ok((answered == requests.len()).then_some(()))
        })?;
        Ok(found.into_iter().map(|f| f.unwrap_or(false)).collect())
    }

    /// Sends `requests` (kind, extra flags such as `NLM_F_CREATE`, family,
    /// attributes) as one nf_tables transaction (between batch begin and
    /// end messages, one `send`, each request acknowledged): all of them
    /// happen or none.
    pub(crate) fn transaction(
        &mut self,
        requests: &[(u16, u16, u8, Vec<u8>)],
        op: &str,
    ) -> Result<()> {
        if requests.is_empty() {
            return Ok(());
        }
        let attrs_len = requests.iter().map(|(_, _, _, a)| a.len()).sum();
        let mut buf = request_buffer(requests.len(), attrs_len, 2);
        self.seq += 1;
        let first = self.seq;
        put_batch_marker(&mut buf, NFNL_MSG_BATCH_BEGIN, self.seq, self.subsys);
        for (kind, flags, family, attrs) in requests {
            self.seq += 1;
            put_message(
                &mut buf,
                self.subsys,
                *kind,
                NLM_F_REQUEST | NLM_F_ACK | flags,
                self.seq,
                *family,
                attrs,
            );
        }
        self.seq += 1;
        put_batch_marker(&mut buf, NFNL_MSG_BATCH_END, self.seq, self.subsys);
        self.send(&buf, op)?;
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
        self.receive(op, |header, message| {
            if header.seq < first {
                return Ok(None);
            }
            interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
            match header.kind {
                NLMSG_DONE if interrupted => Err(NetError::Netlink {
                    op: format!("{op} (dump interrupted by a concurrent change)"),
                    errno: EINTR,
                    msg: None,
                }),
                NLMSG_DONE => Ok(Some(())),
                NLMSG_ERROR => {
                    let (code, kernel_msg) = status(&header, message)?;
                    if code != 0 {
                        return Err(NetError::Netlink {
                            op: op.to_string(),
                            errno: code.saturating_neg(),
                            msg: kernel_msg,
                        });
                    }
                    acked += 1;
                    Ok((acked >= acks).then_some(()))
                }
                _ => {
                    if let Some(payload) = message.get(NLMSG_HDRLEN + NFGENMSG_LEN..) {
                        out.push(payload.to_vec());
                    }
                    Ok(None)
                }
            }
        })?;
        Ok(out)
    }

    /// Sends one buffer of requests.
    fn send(&self, buf: &[u8], op: &str) -> Result<()> {
        self.socket
            .send(buf, 0)
            .map(|_| ())
            .map_err(NetError::io(format!("{op}: send")))
    }

    /// Receives datagrams and hands each message (header, bytes with the
    /// header) to `each` until it says done (`Some`) or fails.
    fn receive<T>(
        &mut self,
        op: &str,
        mut each: impl FnMut(RawHeader, &[u8]) -> Result<Option<T>>,
    ) -> Result<T> {
        // Received into spare capacity, never zeroed: a zeroed 64 KiB
        // buffer costs every plugin process sixteen page faults for the
        // few hundred bytes an answer usually holds.
        let mut buf = Vec::with_capacity(1 << 16);
        loop {
            buf.clear();
            self.socket
                .recv(&mut buf, 0)
                .map_err(NetError::io(format!("{op}: receive")))?;
            for (header, message) in split_messages(&buf)? {
                if let Some(done) = each(header, message)? {
                    return Ok(done);
                }
            }
        }
    }
}

const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

/// A batch begin or end message: no subsystem in the type, the subsystem
/// the batch is for in `res_id` (big-endian).
fn put_batch_marker(buf: &mut Vec<u8>, kind: u16, seq: u32, subsys: u16) {
    write_header(buf, NLMSG_HDRLEN + NFGENMSG_LEN, kind, NLM_F_REQUEST, seq);
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&subsys.to_be_bytes());
}
