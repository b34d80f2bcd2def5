//! The DHCPv4 message (RFC 2131) and the options rcni reads (RFC 2132,
//! 3397, 3442), encoded and decoded by hand.
//!
//! Why not a crate: `dhcproto` pulls in hickory-proto and its ICU tables,
//! which alone would break the static binary's size budget
//! (scripts/test.sh). The format is a fixed header and a list of TLVs, so
//! the codec is small; the unit tests check it against `dhcproto` (a
//! dev-dependency only) both ways.

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const FIXED_LEN: usize = 236;
/// The BOOTP broadcast flag: asks the server to broadcast its reply.
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes rcni uses.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const STATIC_ROUTES: u8 = 33;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const USER_CLASS: u8 = 77;
    pub const DOMAIN_SEARCH: u8 = 119;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
}

impl MessageType {
    fn from_byte(b: u8) -> Option<MessageType> {
        use MessageType::*;
        [Discover, Offer, Request, Decline, Ack, Nak, Release]
            .into_iter()
            .find(|t| *t as u8 == b)
    }
}

/// A DHCPv4 message: the BOOTP header fields rcni uses and the options in
/// the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub options: Vec<(u8, Vec<u8>)>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl Message {
    /// A client request of type `kind` with no options but the type.
    pub fn request(kind: MessageType, xid: u32, chaddr: [u8; 6]) -> Message {
        Message {
            op: BOOTREQUEST,
            xid,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            options: vec![(opt::MESSAGE_TYPE, vec![kind as u8])],
        }
    }

    /// Sets option `code`, replacing an earlier value.
    pub fn set(&mut self, code: u8, value: Vec<u8>) {
        self.options.retain(|(c, _)| *c != code);
        self.options.push((code, value));
    }

    /// The value of option `code`. Split options (RFC 3396) are joined.
    pub fn get(&self, code: u8) -> Option<Vec<u8>> {
        let mut parts = self.options.iter().filter(|(c, _)| *c == code).peekable();
        parts.peek()?;
        Some(parts.flat_map(|(_, v)| v.iter().copied()).collect())
    }

    pub fn message_type(&self) -> Option<MessageType> {
        self.get(opt::MESSAGE_TYPE)
            .and_then(|v| v.first().copied())
            .and_then(MessageType::from_byte)
    }

    pub fn addr(&self, code: u8) -> Option<Ipv4Addr> {
        self.get(code).and_then(|v| addrs(&v).into_iter().next())
    }

    pub fn u32(&self, code: u8) -> Option<u32> {
        let v = self.get(code)?;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(300);
        out.extend_from_slice(&[self.op, 1, 6, 0]);
        out.extend_from_slice(&self.xid.to_be_bytes());
        out.extend_from_slice(&self.secs.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            out.extend_from_slice(&a.octets());
        }
        out.extend_from_slice(&self.chaddr);
        out.resize(FIXED_LEN, 0); // chaddr padding, sname, file
        out.extend_from_slice(&MAGIC_COOKIE);
        for (code, value) in &self.options {
            // A value over 255 bytes is split into several options (RFC 3396).
            for chunk in value.chunks(255).chain(value.is_empty().then_some(&[][..])) {
                out.extend_from_slice(&[*code, chunk.len() as u8]);
                out.extend_from_slice(chunk);
            }
        }
        out.push(opt::END);
        // Some servers and relays drop BOOTP messages under 300 bytes.
        if out.len() < 300 {
            out.resize(300, 0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Message, Malformed> {
        if bytes.len() < FIXED_LEN + 4 {
            return Err(Malformed("shorter than a BOOTP header"));
        }
        if bytes[FIXED_LEN..FIXED_LEN + 4] != MAGIC_COOKIE {
            return Err(Malformed("no DHCP magic cookie"));
        }
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        let addr_at = |i: usize| Ipv4Addr::new(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]);
        let mut chaddr = [0; 6];
        chaddr.copy_from_slice(&bytes[28..34]);
        let mut options = Vec::new();
        let mut rest = &bytes[FIXED_LEN + 4..];
        while let Some((&code, tail)) = rest.split_first() {
            match code {
                opt::PAD => rest = tail,
                opt::END => break,
                _ => {
                    let (&len, tail) = tail.split_first().ok_or(Malformed("option cut short"))?;
                    let len = usize::from(len);
                    if tail.len() < len {
                        return Err(Malformed("option cut short"));
                    }
                    options.push((code, tail[..len].to_vec()));
                    rest = &tail[len..];
                }
            }
        }
        Ok(Message {
            op: bytes[0],
            xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            secs: u16_at(8),
            flags: u16_at(10),
            ciaddr: addr_at(12),
            yiaddr: addr_at(16),
            siaddr: addr_at(20),
            giaddr: addr_at(24),
            chaddr,
            options,
        })
    }
}

/// A list of IPv4 addresses (options 3, 6, 54, ...); a trailing partial
/// address is ignored.
pub fn addrs(value: &[u8]) -> Vec<Ipv4Addr> {
    value
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

/// Option 33: (classful destination, router) pairs.
pub fn static_routes(value: &[u8]) -> Vec<(Ipv4Net, Ipv4Addr)> {
    value
        .chunks_exact(8)
        .filter_map(|c| {
            let dst = Ipv4Addr::new(c[0], c[1], c[2], c[3]);
            let prefix = match c[0] {
                0..=127 => 8,
                128..=191 => 16,
                _ => 24,
            };
            let net = Ipv4Net::new(dst, if dst.is_unspecified() { 0 } else { prefix }).ok()?;
            Some((net.trunc(), Ipv4Addr::new(c[4], c[5], c[6], c[7])))
        })
        .collect()
}

/// Option 121 (RFC 3442): (destination, router) pairs, the destination's
/// significant octets only; a router of 0.0.0.0 means on-link. A
/// malformed tail ends the list.
pub fn classless_routes(mut value: &[u8]) -> Vec<(Ipv4Net, Ipv4Addr)> {
    let mut routes = Vec::new();
    while let Some((&width, tail)) = value.split_first() {
        let octets = usize::from(width).div_ceil(8);
        if width > 32 || tail.len() < octets + 4 {
            break;
        }
        let mut dst = [0u8; 4];
        dst[..octets].copy_from_slice(&tail[..octets]);
        let gw = &tail[octets..octets + 4];
        if let Ok(net) = Ipv4Net::new(Ipv4Addr::from(dst), width) {
            routes.push((net.trunc(), Ipv4Addr::new(gw[0], gw[1], gw[2], gw[3])));
        }
        value = &tail[octets + 4..];
    }
    routes
}

/// Option 119 (RFC 3397): DNS names with compression pointers into the
/// option itself. Pointers must point backwards, so a loop cannot run.
pub fn domain_search(value: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < value.len() {
        let mut labels: Vec<String> = Vec::new();
        let (mut at, mut next) = (pos, None);
        loop {
            let Some(&len) = value.get(at) else {
                return names;
            };
            if len == 0 {
                next.get_or_insert(at + 1);
                break;
            }
            if len & 0xc0 == 0xc0 {
                let Some(&low) = value.get(at + 1) else {
                    return names;
                };
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if target >= at {
                    return names;
                }
                next.get_or_insert(at + 2);
                at = target;
                continue;
            }
            let end = at + 1 + usize::from(len);
            let Some(label) = value.get(at + 1..end) else {
                return names;
            };
            labels.push(String::from_utf8_lossy(label).into_owned());
            at = end;
        }
        if !labels.is_empty() {
            names.push(labels.join("."));
        }
        pos = next.unwrap_or(value.len());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4;
    use dhcproto::{Decodable, Decoder, Encodable, Encoder};

    fn sample() -> Message {
        let mut m = Message::request(MessageType::Request, 0x1234_5678, [2, 0, 0, 0, 0, 7]);
        m.flags = FLAG_BROADCAST;
        m.ciaddr = Ipv4Addr::new(10, 0, 0, 9);
        m.set(opt::CLIENT_ID, b"\0ctr/net/eth0".to_vec());
        m.set(opt::REQUESTED_IP, vec![10, 0, 0, 9]);
        m.set(opt::PARAMETER_LIST, vec![1, 3, 121]);
        m.set(opt::HOST_NAME, b"pod-a".to_vec());
        m
    }

    #[test]
    fn ours_decode_with_dhcproto() {
        let bytes = sample().encode();
        let theirs = v4::Message::decode(&mut Decoder::new(&bytes)).unwrap();
        assert_eq!(theirs.xid(), 0x1234_5678);
        assert_eq!(theirs.opcode(), v4::Opcode::BootRequest);
        assert!(theirs.flags().broadcast());
        assert_eq!(theirs.ciaddr(), Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(&theirs.chaddr()[..6], &[2, 0, 0, 0, 0, 7]);
        let o = theirs.opts();
        assert_eq!(o.msg_type(), Some(v4::MessageType::Request));
        assert_eq!(
            o.get(v4::OptionCode::ClientIdentifier),
            Some(&v4::DhcpOption::ClientIdentifier(
                b"\0ctr/net/eth0".to_vec()
            ))
        );
        assert_eq!(
            o.get(v4::OptionCode::Hostname),
            Some(&v4::DhcpOption::Hostname("pod-a".into()))
        );
        assert_eq!(
            o.get(v4::OptionCode::RequestedIpAddress),
            Some(&v4::DhcpOption::RequestedIpAddress(Ipv4Addr::new(
                10, 0, 0, 9
            )))
        );
    }

    #[test]
    fn theirs_decode_with_ours() {
        let mut m = v4::Message::default();
        m.set_opcode(v4::Opcode::BootReply)
            .set_xid(77)
            .set_yiaddr(Ipv4Addr::new(192, 168, 5, 20))
            .set_chaddr(&[2, 1, 2, 3, 4, 5]);
        let o = m.opts_mut();
        o.insert(v4::DhcpOption::MessageType(v4::MessageType::Ack));
        o.insert(v4::DhcpOption::ServerIdentifier(Ipv4Addr::new(
            192, 168, 5, 1,
        )));
        o.insert(v4::DhcpOption::AddressLeaseTime(120));
        o.insert(v4::DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(v4::DhcpOption::Router(vec![Ipv4Addr::new(192, 168, 5, 1)]));
        o.insert(v4::DhcpOption::DomainNameServer(vec![
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(8, 8, 8, 8),
        ]));
        o.insert(v4::DhcpOption::ClasslessStaticRoute(vec![
            (
                "10.99.0.0/16".parse().unwrap(),
                Ipv4Addr::new(192, 168, 5, 1),
            ),
            ("10.98.7.0/24".parse().unwrap(), Ipv4Addr::UNSPECIFIED),
            (
                "0.0.0.0/0".parse().unwrap(),
                Ipv4Addr::new(192, 168, 5, 254),
            ),
        ]));
        let mut bytes = Vec::new();
        m.encode(&mut Encoder::new(&mut bytes)).unwrap();
        let ours = Message::decode(&bytes).unwrap();
        assert_eq!((ours.op, ours.xid), (BOOTREPLY, 77));
        assert_eq!(ours.yiaddr, Ipv4Addr::new(192, 168, 5, 20));
        assert_eq!(ours.chaddr, [2, 1, 2, 3, 4, 5]);
        assert_eq!(ours.message_type(), Some(MessageType::Ack));
        assert_eq!(ours.u32(opt::LEASE_TIME), Some(120));
        assert_eq!(
            ours.addr(opt::SERVER_ID),
            Some(Ipv4Addr::new(192, 168, 5, 1))
        );
        assert_eq!(addrs(&ours.get(opt::DNS_SERVERS).unwrap()).len(), 2);
        let routes = classless_routes(&ours.get(opt::CLASSLESS_ROUTES).unwrap());
        let text: Vec<String> = routes.iter().map(|(n, g)| format!("{n} {g}")).collect();
        assert_eq!(
            text,
            [
                "10.99.0.0/16 192.168.5.1",
                "10.98.7.0/24 0.0.0.0",
                "0.0.0.0/0 192.168.5.254"
            ]
        );
    }

    #[test]
    fn long_options_are_split_and_joined() {
        let mut m = sample();
        m.set(opt::HOST_NAME, vec![b'a'; 600]);
        let back = Message::decode(&m.encode()).unwrap();
        assert_eq!(back.get(opt::HOST_NAME).unwrap().len(), 600);
        assert_eq!(back.options.len(), m.options.len() + 2);
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let good = sample().encode();
        for cut in 0..good.len() {
            let _ = Message::decode(&good[..cut]);
        }
        assert_eq!(
            Message::decode(&[0; 100]).unwrap_err(),
            Malformed("shorter than a BOOTP header")
        );
        assert!(classless_routes(&[33, 1, 2, 3, 4, 5]).is_empty());
        assert!(classless_routes(&[24, 10]).is_empty());
        // A pointer to itself and a pointer forward end the list.
        assert!(domain_search(&[0xc0, 0]).is_empty());
        assert!(domain_search(&[0xc0, 5, 0, 0, 0, 0]).is_empty());
    }

    #[test]
    fn search_list_with_compression() {
        // "eng.example.com", "example.com" as a pointer, "lab.example.com".
        let mut v = vec![3, b'e', b'n', b'g', 7];
        v.extend_from_slice(b"example");
        v.extend_from_slice(&[
            3, b'c', b'o', b'm', 0, 0xc0, 4, 3, b'l', b'a', b'b', 0xc0, 4,
        ]);
        assert_eq!(
            domain_search(&v),
            ["eng.example.com", "example.com", "lab.example.com"]
        );
    }

    #[test]
    fn classful_static_routes() {
        let r = static_routes(&[10, 1, 2, 3, 192, 168, 0, 1, 172, 16, 4, 0, 192, 168, 0, 2]);
        assert_eq!(r[0].0.to_string(), "10.0.0.0/8");
        assert_eq!(r[1].0.to_string(), "172.16.0.0/16");
    }
}
