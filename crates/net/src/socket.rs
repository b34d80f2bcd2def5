//! The netlink socket: requests with acks, and dumps.

use crate::error::{NetError, Result};
use crate::netns::NetNs;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 5;
const RECV_BUFFER: usize = 64 * 1024;

/// One NETLINK_ROUTE socket. It acts in the network namespace it was
/// opened in, whatever thread later uses it.
pub struct Handle {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn open_socket() -> Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetError::io("open netlink socket"))?;
    socket
        .bind_auto()
        .map_err(NetError::io("bind netlink socket"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(NetError::io("connect netlink socket"))?;
    // Ask the kernel to filter dumps by the header fields we set.
    let _ = socket.set_netlink_get_strict_chk(true);
    Ok(socket)
}

impl Handle {
    /// A socket in the calling thread's namespace.
    pub fn new() -> Result<Handle> {
        Ok(Handle::from_socket(open_socket()?))
    }

    /// A socket inside `ns`, opened on a short-lived thread there; this
    /// thread never leaves its own namespace.
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
        self.socket
            .send(&bytes, 0)
            .map_err(NetError::io(format!("{op}: send")))?;
        Ok(self.seq)
    }

    /// Receives the next datagram and splits it into messages of `seq`.
    fn receive(&mut self, seq: u32, op: &str) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        loop {
            self.buf.clear();
            let n = self
                .socket
                .recv(&mut self.buf, 0)
                .map_err(NetError::io(format!("{op}: receive")))?;
            let mut out = Vec::new();
            let mut offset = 0;
            while offset < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                    .map_err(|e| NetError::Protocol(format!("{op}: {e}")))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number == seq {
                    out.push(msg);
                }
            }
            if !out.is_empty() {
                return Ok(out);
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
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags, op)?;
        loop {
            for reply in self.receive(seq, op)? {
                if let NetlinkPayload::Error(e) = reply.payload {
                    return match e.code {
                        None => Ok(()),
                        Some(code) => Err(NetError::Netlink {
                            op: op.to_string(),
                            errno: -code.get(),
                        }),
                    };
                }
            }
        }
    }

    /// Sends a get request without the dump flag (one object) and returns
    /// the answer; `None` when the kernel says it does not exist.
    pub(crate) fn get_one(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST, op)?;
        loop {
            for reply in self.receive(seq, op)? {
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => return Ok(Some(m)),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(None),
                            Some(code) => {
                                let err = NetError::Netlink {
                                    op: op.to_string(),
                                    errno: -code.get(),
                                };
                                if err.is_not_found() {
                                    Ok(None)
                                } else {
                                    Err(err)
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Dumps every object of a kind; retried when a concurrent change
    /// interrupts the dump.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            let seq = self.send(msg.clone(), NLM_F_REQUEST | NLM_F_DUMP, op)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'receive: loop {
                for reply in self.receive(seq, op)? {
                    if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    let multipart = reply.header.flags & NLM_F_MULTIPART != 0;
                    match reply.payload {
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        NetlinkPayload::Done(_) => break 'receive,
                        NetlinkPayload::Error(e) => match e.code {
                            None => break 'receive,
                            Some(code) => {
                                let errno = -code.get();
                                if errno == libc_eintr() {
                                    interrupted = true;
                                    break 'receive;
                                }
                                return Err(NetError::Netlink {
                                    op: op.to_string(),
                                    errno,
                                });
                            }
                        },
                        _ => {}
                    }
                    if !multipart {
                        break 'receive;
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NetError::Netlink {
            op: op.to_string(),
            errno: libc_eintr(),
        })
    }
}

const fn libc_eintr() -> i32 {
    4
}
