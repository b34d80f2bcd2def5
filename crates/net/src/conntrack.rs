//! Deleting conntrack entries over NETLINK_NETFILTER (ctnetlink), so that
//! a new UDP port mapping is not shadowed by a stale flow. The messages are
//! small and hand-encoded: netlink-packet-route does not cover ctnetlink.

use crate::error::{NetError, Result};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink attributes of a buffer: (type without flags, payload).
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
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

fn message(kind: u16, flags: u16, seq: u32, family: u8, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | kind).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

fn nested(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + align(payload.len()));
    a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(align(a.len()), 0);
    a
}

/// Whether an original-direction tuple is UDP to `port`.
fn is_udp_to_port(tuple: &[u8], port: u16) -> bool {
    let Some((_, proto)) = attributes(tuple)
        .into_iter()
        .find(|(k, _)| *k == CTA_TUPLE_PROTO)
    else {
        return false;
    };
    let attrs = attributes(proto);
    let num = attrs
        .iter()
        .find(|(k, _)| *k == CTA_PROTO_NUM)
        .and_then(|(_, v)| v.first().copied());
    let dport = attrs
        .iter()
        .find(|(k, _)| *k == CTA_PROTO_DST_PORT)
        .filter(|(_, v)| v.len() >= 2)
        .map(|(_, v)| u16::from_be_bytes([v[0], v[1]]));
    num == Some(IPPROTO_UDP) && dport == Some(port)
}

struct Conn {
    socket: Socket,
    seq: u32,
}

impl Conn {
    fn open() -> Result<Conn> {
        let mut socket =
            Socket::new(NETLINK_NETFILTER).map_err(NetError::io("open ctnetlink socket"))?;
        socket
            .bind_auto()
            .map_err(NetError::io("bind ctnetlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetError::io("connect ctnetlink socket"))?;
        Ok(Conn { socket, seq: 0 })
    }

    /// Sends a request and collects the payloads of its answers (after the
    /// nfgenmsg header) until DONE or the ack.
    fn exchange(
        &mut self,
        kind: u16,
        flags: u16,
        family: u8,
        attrs: &[u8],
        op: &str,
    ) -> Result<Vec<Vec<u8>>> {
        self.seq += 1;
        let req = message(kind, flags, self.seq, family, attrs);
        self.socket
            .send(&req, 0)
            .map_err(NetError::io(format!("{op}: send")))?;
        let mut out = Vec::new();
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
                match ty {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        if code == 0 {
                            return Ok(out);
                        }
                        return Err(NetError::Netlink {
                            op: op.to_string(),
                            errno: -code,
                            msg: None,
                        });
                    }
                    _ if body.len() >= 4 => out.push(body[4..].to_vec()),
                    _ => {}
                }
                at += align(len);
            }
        }
    }
}

/// Deletes every UDP conntrack entry of `family` whose original
/// destination port is `port`; returns how many went. A kernel without
/// conntrack has none to delete.
pub fn delete_udp_flows_to_port(v6: bool, port: u16) -> Result<usize> {
    let family = if v6 { AF_INET6 } else { AF_INET };
    let mut conn = Conn::open()?;
    let dump = match conn.exchange(
        IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        family,
        &[],
        "list conntrack",
    ) {
        Ok(d) => d,
        Err(e) if e.is_not_found() || e.errno() == Some(93) || e.errno() == Some(95) => {
            return Ok(0)
        }
        Err(e) => return Err(e),
    };
    let mut deleted = 0;
    for entry in dump {
        let Some((_, tuple)) = attributes(&entry)
            .into_iter()
            .find(|(k, _)| *k == CTA_TUPLE_ORIG)
        else {
            continue;
        };
        if !is_udp_to_port(tuple, port) {
            continue;
        }
        let attrs = nested(CTA_TUPLE_ORIG, tuple);
        match conn.exchange(
            IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST | NLM_F_ACK,
            family,
            &attrs,
            "delete conntrack entry",
        ) {
            Ok(_) => deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_udp_tuples_by_port() {
        let port_attr = |kind: u16, v: &[u8]| {
            let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
            a.extend_from_slice(&kind.to_ne_bytes());
            a.extend_from_slice(v);
            a.resize(align(a.len()), 0);
            a
        };
        let mut proto = port_attr(CTA_PROTO_NUM, &[IPPROTO_UDP]);
        proto.extend(port_attr(CTA_PROTO_DST_PORT, &8053u16.to_be_bytes()));
        let tuple = nested(CTA_TUPLE_PROTO, &proto);
        assert!(is_udp_to_port(&tuple, 8053));
        assert!(!is_udp_to_port(&tuple, 8054));
        let msg = message(
            IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST,
            1,
            AF_INET,
            &nested(CTA_TUPLE_ORIG, &tuple),
        );
        assert_eq!(
            u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize,
            msg.len()
        );
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 0x102);
    }
}
