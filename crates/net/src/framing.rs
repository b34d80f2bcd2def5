//! Netlink framing, the one copy shared by the NETLINK_ROUTE socket
//! ([`crate::socket`]) and the hand-encoded NETLINK_NETFILTER messages
//! ([`crate::nfnetlink`]): the `NLMSG_*` types, 4-byte alignment, writing
//! message headers and attributes, reading attributes, splitting a
//! datagram into messages, and reading an error or ack with the kernel's
//! extended-ack message.

use crate::error::{NetError, Result};
pub(crate) use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_APPEND, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};

/// Length of a netlink message header.
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
/// `NLMSGERR_ATTR_MSG`: the extended ack's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Marks an attribute whose payload is more attributes.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
/// The attribute type bits (without `NLA_F_NESTED` and
/// `NLA_F_NET_BYTEORDER`).
pub(crate) const NLA_TYPE_MASK: u16 = 0x3fff;

/// `n` rounded up to netlink's 4-byte alignment.
pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Appends a message header (`nlmsghdr`, port id 0) to `buf`; `len` is the
/// whole message's length, header included.
pub(crate) fn write_header(buf: &mut Vec<u8>, len: usize, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
}

/// One attribute: length, type, `value`, padded to the alignment.
pub(crate) fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(align4(4 + value.len()));
    put_attribute(&mut a, kind, value);
    a
}

/// An attribute holding a NUL-terminated string.
pub(crate) fn string_attribute(kind: u16, value: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(align4(5 + value.len()));
    put_string_attribute(&mut a, kind, value);
    a
}

/// An attribute whose payload is other attributes.
pub(crate) fn nested(kind: u16, payload: &[u8]) -> Vec<u8> {
    attribute(kind | NLA_F_NESTED, payload)
}

/// Appends [`attribute`]`(kind, value)` to `buf`: what a message built in
/// one buffer uses (a vector per attribute, copied into its parent, was
/// most of an nf_tables rule's encoding).
pub(crate) fn put_attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let start = buf.len();
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(start + align4(len), 0);
}

/// Appends [`string_attribute`]`(kind, value)` to `buf`.
pub(crate) fn put_string_attribute(buf: &mut Vec<u8>, kind: u16, value: &str) {
    let start = buf.len();
    let len = 4 + value.len() + 1;
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value.as_bytes());
    buf.resize(start + align4(len), 0);
}

/// Appends a nested attribute `kind` whose payload `fill` appends, and
/// then writes its length.
pub(crate) fn put_nested(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    fill(buf);
    // A payload past 64 KiB cannot be said in 16 bits: the kernel then
    // refuses the message, as it would one built by `attribute`; nothing
    // already written is cut.
    let len = buf.len() - start;
    buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    buf.resize(start + align4(len), 0);
}

/// The attributes of a buffer: (type without flags, payload). Stops at the
/// first malformed one.
pub(crate) fn attributes(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> + Clone {
    attributes_with_flags(buf).map(|(kind, value)| (kind & !NLA_F_NESTED, value))
}

/// [`attributes`] with the type's flag bits (`NLA_F_NESTED`) kept. An
/// iterator over the buffer, not a list: rule listings walk every rule's
/// attributes, and a vector per level was most of a listing's allocations.
pub(crate) fn attributes_with_flags(buf: &[u8]) -> Attributes<'_> {
    Attributes { rest: buf }
}

/// The attributes left in a buffer (see [`attributes_with_flags`]).
#[derive(Clone)]
pub(crate) struct Attributes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.rest;
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < 4 || len > buf.len() {
            self.rest = &[];
            return None;
        }
        self.rest = &buf[align4(len).min(buf.len())..];
        Some((kind, &buf[4..len]))
    }
}

/// The fixed part of a netlink message header, read from raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader {
    pub(crate) len: usize,
    pub(crate) kind: u16,
    pub(crate) flags: u16,
    pub(crate) seq: u32,
}

/// Splits a datagram into (header, message bytes including the header).
pub(crate) fn split_messages(data: &[u8]) -> Result<Vec<(RawHeader, &[u8])>> {
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
        let kind = u16_at(payload, at + 2)? & NLA_TYPE_MASK;
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
pub(crate) fn status(header: &RawHeader, message: &[u8]) -> Result<(i32, Option<String>)> {
    let payload = &message[NLMSG_HDRLEN.min(message.len())..];
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        write_header(&mut v, len as usize, kind, flags, seq);
        v
    }

    #[test]
    fn attributes_are_padded_and_read_back() {
        let a = string_attribute(3, "nat");
        assert_eq!(a.len(), 8);
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]), 8);
        assert_eq!(&a[4..8], b"nat\0");
        assert_eq!(string_attribute(1, "abcd").len(), 12);
        // Built in place, a nested attribute is the same bytes as built
        // from its parts.
        let mut in_place = Vec::new();
        put_nested(&mut in_place, 2, |b| {
            put_attribute(b, 1, &[7]);
            put_string_attribute(b, 3, "nat");
        });
        let mut parts = attribute(1, &[7]);
        parts.extend(string_attribute(3, "nat"));
        assert_eq!(in_place, nested(2, &parts));
        // Too long to be said in 16 bits: nothing written is cut.
        let mut long = Vec::new();
        put_nested(&mut long, 2, |b| b.extend(std::iter::repeat_n(7u8, 70_000)));
        assert_eq!(long.len(), 70_004);
        let mut buf = nested(2, &attribute(1, &[7]));
        buf.extend(attribute(5, &42u64.to_be_bytes()));
        let attrs: Vec<_> = attributes(&buf).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].0, 2);
        let inner: Vec<_> = attributes(attrs[0].1).collect();
        assert_eq!(inner, vec![(1, &[7u8][..])]);
        assert_eq!(attrs[1], (5, &42u64.to_be_bytes()[..]));
        // The nested flag is kept only where asked for.
        assert_eq!(
            attributes_with_flags(&buf).next().unwrap().0,
            2 | NLA_F_NESTED
        );
        // A length past the end stops the walk instead of panicking, and
        // so does a length below the header's, after the good ones.
        assert_eq!(attributes(&[200, 0, 1, 0, 9]).count(), 0);
        let mut bad = attribute(1, &[7]);
        bad.extend([2, 0, 1, 0]);
        bad.extend(attribute(1, &[8]));
        assert_eq!(attributes(&bad).count(), 1);
    }

    #[test]
    fn extack_capped_error() {
        // Original request header (capped), then the TLVs.
        let mut payload = header(40, 16, 5, 9);
        payload.extend(attribute(2, &8u32.to_ne_bytes())); // NLMSGERR_ATTR_OFFS
        payload.extend(attribute(1, b"Invalid prefix\0"));
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
        payload.extend(attribute(1, b"no such thing\0"));
        assert_eq!(
            extack_message(NLM_F_ACK_TLVS, &payload, true).as_deref(),
            Some("no such thing")
        );
        let done = attribute(1, b"table gone\0");
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
        // An error message too short for its code is refused, not read.
        let short = header(16, NLMSG_ERROR, 0, 1);
        let (h, bytes) = split_messages(&short).unwrap()[0];
        assert!(status(&h, bytes).is_err());
    }
}
