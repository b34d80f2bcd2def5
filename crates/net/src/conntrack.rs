//! Deleting conntrack entries over NETLINK_NETFILTER (ctnetlink), so that
//! a new UDP port mapping is not shadowed by a stale flow. The messages are
//! small and hand-encoded: netlink-packet-route does not cover ctnetlink.

use crate::error::Result;
use crate::framing::{attributes, nested, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::nfnetlink::Conn;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const IPPROTO_UDP: u8 = 17;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Whether an original-direction tuple is UDP to `port`.
fn is_udp_to_port(tuple: &[u8], port: u16) -> bool {
    let Some((_, proto)) = attributes(tuple).find(|(k, _)| *k == CTA_TUPLE_PROTO) else {
        return false;
    };
    let mut attrs = attributes(proto);
    let num = attrs
        .clone()
        .find(|(k, _)| *k == CTA_PROTO_NUM)
        .and_then(|(_, v)| v.first().copied());
    let dport = attrs
        .find(|(k, _)| *k == CTA_PROTO_DST_PORT)
        .filter(|(_, v)| v.len() >= 2)
        .map(|(_, v)| u16::from_be_bytes([v[0], v[1]]));
    num == Some(IPPROTO_UDP) && dport == Some(port)
}

/// Deletes every UDP conntrack entry of `family` whose original
/// destination port is `port`; returns how many went. A kernel without
/// conntrack has none to delete.
pub fn delete_udp_flows_to_port(v6: bool, port: u16) -> Result<usize> {
    let family = if v6 { AF_INET6 } else { AF_INET };
    let mut conn = Conn::open(NFNL_SUBSYS_CTNETLINK)?;
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
        let Some((_, tuple)) = attributes(&entry).find(|(k, _)| *k == CTA_TUPLE_ORIG) else {
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
    use crate::framing::attribute;
    use crate::nfnetlink::{put_message, request_buffer};

    #[test]
    fn finds_udp_tuples_by_port() {
        let mut proto = attribute(CTA_PROTO_NUM, &[IPPROTO_UDP]);
        proto.extend(attribute(CTA_PROTO_DST_PORT, &8053u16.to_be_bytes()));
        let tuple = nested(CTA_TUPLE_PROTO, &proto);
        assert!(is_udp_to_port(&tuple, 8053));
        assert!(!is_udp_to_port(&tuple, 8054));
        let attrs = nested(CTA_TUPLE_ORIG, &tuple);
        let mut msg = request_buffer(1, attrs.len(), 0);
        put_message(
            &mut msg,
            NFNL_SUBSYS_CTNETLINK,
            IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST,
            1,
            AF_INET,
            &attrs,
        );
        assert_eq!(
            u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize,
            msg.len()
        );
        assert_eq!(u16::from_ne_bytes([msg[4], msg[5]]), 0x102);
    }
}
