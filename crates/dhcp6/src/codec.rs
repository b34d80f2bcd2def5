//! DHCPv6 messages (RFC 8415) as the client needs them: the client/server
//! messages of an IA_NA lease and the options they carry.
//!
//! Hand-encoded on purpose: the `dhcproto` crate would pull hickory-proto
//! (with its ICU tables) into the static binary, over its size budget. It is
//! a dev-dependency only, cross-checking these bytes in the unit tests.
//!
//! Decoding never panics: every length is checked against what is left, and
//! anything that does not fit is a [`CodecError`]. Options the client does
//! not use are skipped.

use std::net::Ipv6Addr;

/// The port clients listen on.
pub const CLIENT_PORT: u16 = 546;
/// The port servers and relay agents listen on.
pub const SERVER_PORT: u16 = 547;
/// `All_DHCP_Relay_Agents_and_Servers`, where a client sends everything
/// (rcni never uses the Server Unicast option).
pub const ALL_DHCP_RELAY_AGENTS_AND_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

const OPT_CLIENTID: u16 = 1;
const OPT_SERVERID: u16 = 2;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_ORO: u16 = 6;
const OPT_PREFERENCE: u16 = 7;
const OPT_ELAPSED_TIME: u16 = 8;
const OPT_STATUS_CODE: u16 = 13;
const OPT_RAPID_COMMIT: u16 = 14;
/// `OPTION_DNS_SERVERS` (RFC 3646), asked for in the ORO.
pub const OPT_DNS_SERVERS: u16 = 23;
/// `OPTION_DOMAIN_LIST` (RFC 3646), asked for in the ORO.
pub const OPT_DOMAIN_LIST: u16 = 24;

/// Status code `Success`.
pub const STATUS_SUCCESS: u16 = 0;
/// Status code `NoAddrsAvail`.
pub const STATUS_NO_ADDRS_AVAIL: u16 = 2;
/// Status code `NoBinding`.
pub const STATUS_NO_BINDING: u16 = 3;

/// A DUID is at most 128 octets after its 2-octet type (RFC 8415 §11.1).
pub const MAX_DUID_LEN: usize = 130;

/// A message that cannot be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DHCPv6 message: {0}")]
pub struct CodecError(pub String);

fn malformed<T>(what: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(what.into()))
}

/// The message types of a client/server exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// 1
    Solicit,
    /// 2
    Advertise,
    /// 3
    Request,
    /// 5
    Renew,
    /// 6
    Rebind,
    /// 7
    Reply,
    /// 8
    Release,
    /// Any other type (Confirm, Decline, Reconfigure, relay messages...).
    Other(u8),
}

impl MessageType {
    fn code(self) -> u8 {
        match self {
            MessageType::Solicit => 1,
            MessageType::Advertise => 2,
            MessageType::Request => 3,
            MessageType::Renew => 5,
            MessageType::Rebind => 6,
            MessageType::Reply => 7,
            MessageType::Release => 8,
            MessageType::Other(code) => code,
        }
    }

    fn from_code(code: u8) -> MessageType {
        match code {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            other => MessageType::Other(other),
        }
    }
}

/// `OPTION_STATUS_CODE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// 0 Success, 2 NoAddrsAvail, 3 NoBinding, ...
    pub code: u16,
    /// The server's text, for people.
    pub message: String,
}

/// `OPTION_IAADDR`, inside an IA_NA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaAddr {
    /// The leased address.
    pub address: Ipv6Addr,
    /// Seconds; `u32::MAX` is infinity.
    pub preferred_lifetime: u32,
    /// Seconds; `u32::MAX` is infinity.
    pub valid_lifetime: u32,
    /// A status about this address only.
    pub status: Option<Status>,
}

/// `OPTION_IA_NA`: an identity association for non-temporary addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaNa {
    /// The IAID, chosen by the client.
    pub iaid: u32,
    /// Seconds until the client renews; 0 leaves it to the client.
    pub t1: u32,
    /// Seconds until the client rebinds; 0 leaves it to the client.
    pub t2: u32,
    /// The addresses of the IA.
    pub addresses: Vec<IaAddr>,
    /// A status about the whole IA.
    pub status: Option<Status>,
}

/// One client/server message. Options absent from the wire are `None` or
/// empty; empty lists are not encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub kind: MessageType,
    /// 24 bits.
    pub transaction_id: u32,
    /// `OPTION_CLIENTID`: the client's DUID.
    pub client_id: Option<Vec<u8>>,
    /// `OPTION_SERVERID`: the server's DUID.
    pub server_id: Option<Vec<u8>>,
    /// `OPTION_IA_NA`s.
    pub ia_na: Vec<IaNa>,
    /// `OPTION_ORO`: the option codes asked for.
    pub option_request: Vec<u16>,
    /// `OPTION_ELAPSED_TIME`, in hundredths of a second.
    pub elapsed_centis: Option<u16>,
    /// `OPTION_STATUS_CODE` at message level.
    pub status: Option<Status>,
    /// `OPTION_PREFERENCE` (Advertise).
    pub preference: Option<u8>,
    /// `OPTION_RAPID_COMMIT` present.
    pub rapid_commit: bool,
    /// `OPTION_DNS_SERVERS`.
    pub dns_servers: Vec<Ipv6Addr>,
    /// `OPTION_DOMAIN_LIST`, names without the trailing dot.
    pub domain_search: Vec<String>,
}

impl Message {
    /// An empty message of `kind` with `transaction_id` (low 24 bits kept).
    pub fn new(kind: MessageType, transaction_id: u32) -> Message {
        Message {
            kind,
            transaction_id: transaction_id & 0x00ff_ffff,
            client_id: None,
            server_id: None,
            ia_na: Vec::new(),
            option_request: Vec::new(),
            elapsed_centis: None,
            status: None,
            preference: None,
            rapid_commit: false,
            dns_servers: Vec::new(),
            domain_search: Vec::new(),
        }
    }

    /// The wire form. Fails only on values the format cannot hold (an
    /// option over 65535 bytes, a DUID over 130, a bad domain name).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(128);
        out.push(self.kind.code());
        out.extend_from_slice(&self.transaction_id.to_be_bytes()[1..]);
        if let Some(duid) = &self.client_id {
            put_option(&mut out, OPT_CLIENTID, checked_duid(duid)?)?;
        }
        if let Some(duid) = &self.server_id {
            put_option(&mut out, OPT_SERVERID, checked_duid(duid)?)?;
        }
        for ia in &self.ia_na {
            put_option(&mut out, OPT_IA_NA, &encode_ia_na(ia)?)?;
        }
        if !self.option_request.is_empty() {
            let body: Vec<u8> = self
                .option_request
                .iter()
                .flat_map(|code| code.to_be_bytes())
                .collect();
            put_option(&mut out, OPT_ORO, &body)?;
        }
        if let Some(centis) = self.elapsed_centis {
            put_option(&mut out, OPT_ELAPSED_TIME, &centis.to_be_bytes())?;
        }
        if let Some(status) = &self.status {
            put_option(&mut out, OPT_STATUS_CODE, &encode_status(status))?;
        }
        if let Some(preference) = self.preference {
            put_option(&mut out, OPT_PREFERENCE, &[preference])?;
        }
        if self.rapid_commit {
            put_option(&mut out, OPT_RAPID_COMMIT, &[])?;
        }
        if !self.dns_servers.is_empty() {
            let body: Vec<u8> = self.dns_servers.iter().flat_map(|a| a.octets()).collect();
            put_option(&mut out, OPT_DNS_SERVERS, &body)?;
        }
        if !self.domain_search.is_empty() {
            let mut body = Vec::new();
            for name in &self.domain_search {
                encode_name(&mut body, name)?;
            }
            put_option(&mut out, OPT_DOMAIN_LIST, &body)?;
        }
        Ok(out)
    }

    /// Decodes a message received from the network.
    pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
        let Some((&kind, rest)) = bytes.split_first() else {
            return malformed("empty message");
        };
        let Some((xid, options)) = rest.split_first_chunk::<3>() else {
            return malformed("message shorter than its 4-byte header");
        };
        let mut msg = Message::new(
            MessageType::from_code(kind),
            u32::from_be_bytes([0, xid[0], xid[1], xid[2]]),
        );
        for option in Options(options) {
            let (code, body) = option?;
            match code {
                OPT_CLIENTID if msg.client_id.is_none() => {
                    msg.client_id = Some(checked_duid(body)?.to_vec())
                }
                OPT_SERVERID if msg.server_id.is_none() => {
                    msg.server_id = Some(checked_duid(body)?.to_vec())
                }
                OPT_IA_NA => msg.ia_na.push(decode_ia_na(body)?),
                OPT_ORO => {
                    if body.len() % 2 != 0 {
                        return malformed("ORO of odd length");
                    }
                    msg.option_request = body
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                }
                OPT_ELAPSED_TIME => msg.elapsed_centis = Some(u16::from_be_bytes(fixed(body)?)),
                OPT_STATUS_CODE => msg.status = Some(decode_status(body)?),
                OPT_PREFERENCE => msg.preference = Some(u8::from_be_bytes(fixed(body)?)),
                OPT_RAPID_COMMIT => {
                    if !body.is_empty() {
                        return malformed("RAPID_COMMIT with a body");
                    }
                    msg.rapid_commit = true;
                }
                OPT_DNS_SERVERS => {
                    if body.len() % 16 != 0 {
                        return malformed("DNS_SERVERS not a list of addresses");
                    }
                    msg.dns_servers = body
                        .chunks_exact(16)
                        .filter_map(|c| <[u8; 16]>::try_from(c).ok())
                        .map(Ipv6Addr::from)
                        .collect();
                }
                OPT_DOMAIN_LIST => msg.domain_search = decode_names(body)?,
                _ => {}
            }
        }
        Ok(msg)
    }
}

/// Iterates over `code, body` of a run of options.
struct Options<'a>(&'a [u8]);

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let Some((header, rest)) = self.0.split_first_chunk::<4>() else {
            self.0 = &[];
            return Some(malformed("option header cut short"));
        };
        let code = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if rest.len() < len {
            self.0 = &[];
            return Some(malformed(format!(
                "option {code} says {len} bytes, {} left",
                rest.len()
            )));
        }
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some(Ok((code, body)))
    }
}

fn fixed<const N: usize>(body: &[u8]) -> Result<[u8; N], CodecError> {
    <[u8; N]>::try_from(body)
        .or_else(|_| malformed(format!("option of {} bytes, not {N}", body.len())))
}

fn checked_duid(duid: &[u8]) -> Result<&[u8], CodecError> {
    if duid.len() < 3 || duid.len() > MAX_DUID_LEN {
        return malformed(format!("DUID of {} bytes", duid.len()));
    }
    Ok(duid)
}

fn put_option(out: &mut Vec<u8>, code: u16, body: &[u8]) -> Result<(), CodecError> {
    let Ok(len) = u16::try_from(body.len()) else {
        return malformed(format!("option {code} of {} bytes", body.len()));
    };
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

fn encode_status(status: &Status) -> Vec<u8> {
    let mut body = status.code.to_be_bytes().to_vec();
    body.extend_from_slice(status.message.as_bytes());
    body
}

fn decode_status(body: &[u8]) -> Result<Status, CodecError> {
    let Some((code, message)) = body.split_first_chunk::<2>() else {
        return malformed("STATUS_CODE shorter than 2 bytes");
    };
    Ok(Status {
        code: u16::from_be_bytes(*code),
        message: String::from_utf8_lossy(message).into_owned(),
    })
}

fn encode_ia_na(ia: &IaNa) -> Result<Vec<u8>, CodecError> {
    let mut body = Vec::with_capacity(12 + 28 * ia.addresses.len());
    body.extend_from_slice(&ia.iaid.to_be_bytes());
    body.extend_from_slice(&ia.t1.to_be_bytes());
    body.extend_from_slice(&ia.t2.to_be_bytes());
    for addr in &ia.addresses {
        let mut inner = addr.address.octets().to_vec();
        inner.extend_from_slice(&addr.preferred_lifetime.to_be_bytes());
        inner.extend_from_slice(&addr.valid_lifetime.to_be_bytes());
        if let Some(status) = &addr.status {
            put_option(&mut inner, OPT_STATUS_CODE, &encode_status(status))?;
        }
        put_option(&mut body, OPT_IAADDR, &inner)?;
    }
    if let Some(status) = &ia.status {
        put_option(&mut body, OPT_STATUS_CODE, &encode_status(status))?;
    }
    Ok(body)
}

/// The big-endian word at `at` of a fixed-size header.
fn word_at<const N: usize>(head: &[u8; N], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(bytes) = head.get(at..at + 4) {
        word.copy_from_slice(bytes);
    }
    u32::from_be_bytes(word)
}

fn decode_ia_na(body: &[u8]) -> Result<IaNa, CodecError> {
    let Some((head, options)) = body.split_first_chunk::<12>() else {
        return malformed("IA_NA shorter than 12 bytes");
    };
    let mut ia = IaNa {
        iaid: word_at(head, 0),
        t1: word_at(head, 4),
        t2: word_at(head, 8),
        addresses: Vec::new(),
        status: None,
    };
    for option in Options(options) {
        let (code, inner) = option?;
        match code {
            OPT_IAADDR => ia.addresses.push(decode_ia_addr(inner)?),
            OPT_STATUS_CODE => ia.status = Some(decode_status(inner)?),
            _ => {}
        }
    }
    Ok(ia)
}

fn decode_ia_addr(body: &[u8]) -> Result<IaAddr, CodecError> {
    let Some((head, options)) = body.split_first_chunk::<24>() else {
        return malformed("IAADDR shorter than 24 bytes");
    };
    let mut address = [0u8; 16];
    address.copy_from_slice(&head[..16]);
    let mut addr = IaAddr {
        address: Ipv6Addr::from(address),
        preferred_lifetime: word_at(head, 16),
        valid_lifetime: word_at(head, 20),
        status: None,
    };
    for option in Options(options) {
        let (code, inner) = option?;
        if code == OPT_STATUS_CODE {
            addr.status = Some(decode_status(inner)?);
        }
    }
    Ok(addr)
}

/// A label as a resolver configuration may hold it: letters, digits, `-`
/// and `_` (no dots, spaces or control bytes).
fn is_plain_label(label: &[u8]) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// DNS wire format without compression (RFC 8415 §10), fully qualified.
fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), CodecError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return malformed(format!("domain name {name:?}"));
    }
    for label in name.split('.') {
        if !is_plain_label(label.as_bytes()) {
            return malformed(format!("domain name {name:?}"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// The names of a domain list. A name whose labels are not plain (see
/// [`is_plain_label`]) is left out rather than failing the whole lease;
/// a name cut short is an error.
fn decode_names(mut body: &[u8]) -> Result<Vec<String>, CodecError> {
    let mut names = Vec::new();
    while !body.is_empty() {
        let mut labels: Vec<&[u8]> = Vec::new();
        let mut plain = true;
        let mut wire_len = 0usize;
        loop {
            let Some((&len, rest)) = body.split_first() else {
                return malformed("domain name without its final empty label");
            };
            let len = usize::from(len);
            if len > 63 {
                return malformed("domain label over 63 bytes (compression is not allowed)");
            }
            if rest.len() < len {
                return malformed("domain label cut short");
            }
            let (label, rest) = rest.split_at(len);
            body = rest;
            wire_len += 1 + len;
            if wire_len > 255 {
                return malformed("domain name over 255 bytes");
            }
            if len == 0 {
                break;
            }
            plain &= is_plain_label(label);
            labels.push(label);
        }
        if plain && !labels.is_empty() {
            let text: Vec<String> = labels
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            names.push(text.join("."));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use dhcproto::v6;
    use dhcproto::{Decodable, Encodable};
    use proptest::prelude::*;

    fn sample() -> Message {
        let mut msg = Message::new(MessageType::Reply, 0xabcdef);
        msg.client_id = Some(vec![
            0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        ]);
        msg.server_id = Some(vec![0, 1, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 2, 0, 0, 0, 0, 1]);
        msg.ia_na.push(IaNa {
            iaid: 0x0102_0304,
            t1: 60,
            t2: 96,
            addresses: vec![IaAddr {
                address: "fd00:db8::42".parse().unwrap(),
                preferred_lifetime: 120,
                valid_lifetime: 180,
                status: Some(Status {
                    code: 0,
                    message: "ok".into(),
                }),
            }],
            status: None,
        });
        msg.status = Some(Status {
            code: STATUS_SUCCESS,
            message: "all fine".into(),
        });
        msg.preference = Some(7);
        msg.dns_servers = vec![
            "fd00:db8::53".parse().unwrap(),
            "fd00:db8::54".parse().unwrap(),
        ];
        msg.domain_search = vec!["lan.test".into(), "example.org".into()];
        msg
    }

    #[test]
    fn roundtrip() {
        let mut msg = sample();
        msg.option_request = vec![OPT_DNS_SERVERS, OPT_DOMAIN_LIST];
        msg.elapsed_centis = Some(150);
        msg.rapid_commit = true;
        assert_eq!(Message::decode(&msg.encode().unwrap()).unwrap(), msg);
    }

    /// Our bytes, read by dhcproto, say the same.
    #[test]
    fn dhcproto_reads_our_bytes() {
        let mut msg = sample();
        msg.kind = MessageType::Solicit;
        msg.option_request = vec![OPT_DNS_SERVERS, OPT_DOMAIN_LIST];
        msg.elapsed_centis = Some(150);
        let theirs = v6::Message::from_bytes(&msg.encode().unwrap()).unwrap();
        assert_eq!(theirs.msg_type(), v6::MessageType::Solicit);
        assert_eq!(theirs.xid_num(), 0xabcdef);
        let opts = theirs.opts();
        let Some(v6::DhcpOption::ClientId(duid)) = opts.get(v6::OptionCode::ClientId) else {
            panic!("no client id");
        };
        assert_eq!(Some(duid), msg.client_id.as_ref());
        let Some(v6::DhcpOption::IANA(ia)) = opts.get(v6::OptionCode::IANA) else {
            panic!("no IA_NA");
        };
        assert_eq!((ia.id, ia.t1, ia.t2), (0x0102_0304, 60, 96));
        let Some(v6::DhcpOption::IAAddr(addr)) = ia.opts.get(v6::OptionCode::IAAddr) else {
            panic!("no IAADDR");
        };
        assert_eq!(
            (addr.addr, addr.preferred_life, addr.valid_life),
            ("fd00:db8::42".parse().unwrap(), 120, 180)
        );
        let Some(v6::DhcpOption::ORO(oro)) = opts.get(v6::OptionCode::ORO) else {
            panic!("no ORO");
        };
        assert_eq!(
            oro.opts,
            vec![
                v6::OptionCode::DomainNameServers,
                v6::OptionCode::DomainSearchList
            ]
        );
        assert_eq!(
            opts.get(v6::OptionCode::ElapsedTime),
            Some(&v6::DhcpOption::ElapsedTime(150))
        );
        assert_eq!(
            opts.get(v6::OptionCode::Preference),
            Some(&v6::DhcpOption::Preference(7))
        );
        assert_eq!(
            opts.get(v6::OptionCode::DomainNameServers),
            Some(&v6::DhcpOption::DomainNameServers(msg.dns_servers.clone()))
        );
        let Some(v6::DhcpOption::DomainSearchList(names)) =
            opts.get(v6::OptionCode::DomainSearchList)
        else {
            panic!("no domain list");
        };
        let names: Vec<String> = names
            .iter()
            .map(|n| n.to_ascii().trim_end_matches('.').to_string())
            .collect();
        assert_eq!(names, msg.domain_search);
        let Some(v6::DhcpOption::StatusCode(status)) = opts.get(v6::OptionCode::StatusCode) else {
            panic!("no status");
        };
        assert_eq!(
            (status.status, status.msg.as_str()),
            (v6::Status::Success, "all fine")
        );
    }

    /// dhcproto's bytes, read by us, say the same.
    #[test]
    fn we_read_dhcproto_bytes() {
        let mut theirs = v6::Message::new_with_id(v6::MessageType::Advertise, [1, 2, 3]);
        let server = vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 9];
        let opts = theirs.opts_mut();
        opts.insert(v6::DhcpOption::ServerId(server.clone()));
        opts.insert(v6::DhcpOption::ClientId(vec![0, 4, 9, 9, 9]));
        opts.insert(v6::DhcpOption::Preference(255));
        let mut ia_opts = v6::DhcpOptions::new();
        ia_opts.insert(v6::DhcpOption::IAAddr(v6::IAAddr {
            addr: "fd00::10".parse().unwrap(),
            preferred_life: 3000,
            valid_life: 4000,
            opts: v6::DhcpOptions::new(),
        }));
        ia_opts.insert(v6::DhcpOption::StatusCode(v6::StatusCode {
            status: v6::Status::NoBinding,
            msg: "gone".into(),
        }));
        opts.insert(v6::DhcpOption::IANA(v6::IANA {
            id: 77,
            t1: 1000,
            t2: 2000,
            opts: ia_opts,
        }));
        opts.insert(v6::DhcpOption::DomainNameServers(vec!["fd00::53"
            .parse()
            .unwrap()]));
        opts.insert(v6::DhcpOption::DomainSearchList(vec![
            dhcproto::Name::from_ascii("corp.example.").unwrap(),
        ]));
        opts.insert(v6::DhcpOption::RapidCommit);
        let ours = Message::decode(&theirs.to_vec().unwrap()).unwrap();
        assert_eq!(ours.kind, MessageType::Advertise);
        assert_eq!(ours.transaction_id, 0x010203);
        assert_eq!(ours.server_id, Some(server));
        assert_eq!(ours.client_id, Some(vec![0, 4, 9, 9, 9]));
        assert_eq!(ours.preference, Some(255));
        assert!(ours.rapid_commit);
        assert_eq!(
            ours.ia_na,
            vec![IaNa {
                iaid: 77,
                t1: 1000,
                t2: 2000,
                addresses: vec![IaAddr {
                    address: "fd00::10".parse().unwrap(),
                    preferred_lifetime: 3000,
                    valid_lifetime: 4000,
                    status: None,
                }],
                status: Some(Status {
                    code: STATUS_NO_BINDING,
                    message: "gone".into(),
                }),
            }]
        );
        assert_eq!(
            ours.dns_servers,
            vec!["fd00::53".parse::<Ipv6Addr>().unwrap()]
        );
        assert_eq!(ours.domain_search, vec!["corp.example".to_string()]);
    }

    #[test]
    fn cut_and_bad_options_are_errors() {
        let good = sample().encode().unwrap();
        assert!(Message::decode(&good[..good.len() - 1]).is_err());
        assert!(Message::decode(&[7, 0, 0]).is_err());
        // An option claiming more than is there.
        assert!(Message::decode(&[7, 0, 0, 1, 0, 1, 0, 9, 0]).is_err());
        // A preference of two bytes.
        assert!(Message::decode(&[2, 0, 0, 1, 0, 7, 0, 2, 1, 1]).is_err());
        // DNS servers not a multiple of 16.
        assert!(Message::decode(&[7, 0, 0, 1, 0, 23, 0, 3, 1, 2, 3]).is_err());
        // A compression pointer in a domain list.
        assert!(Message::decode(&[7, 0, 0, 1, 0, 24, 0, 2, 0xc0, 0]).is_err());
        // A DUID of one byte.
        assert!(Message::decode(&[7, 0, 0, 1, 0, 1, 0, 1, 5]).is_err());
    }

    #[test]
    fn odd_domain_names_are_left_out() {
        let mut body = Vec::new();
        body.extend_from_slice(&[3, b'a', b' ', b'b', 0]);
        encode_name(&mut body, "ok.test").unwrap();
        let mut bytes = vec![7, 0, 0, 1, 0, 24];
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&body);
        let msg = Message::decode(&bytes).unwrap();
        assert_eq!(msg.domain_search, vec!["ok.test".to_string()]);
        assert!(Message::new(MessageType::Reply, 1)
            .encode()
            .is_ok_and(|b| b == [7, 0, 0, 1]));
        let mut bad = Message::new(MessageType::Reply, 1);
        bad.domain_search = vec!["a b.test".into()];
        assert!(bad.encode().is_err());
    }

    fn any_status() -> impl Strategy<Value = Option<Status>> {
        proptest::option::of(
            (any::<u16>(), "[ -~]{0,12}").prop_map(|(code, message)| Status { code, message }),
        )
    }

    fn any_message() -> impl Strategy<Value = Message> {
        let addr = (any::<[u8; 16]>(), any::<u32>(), any::<u32>(), any_status()).prop_map(
            |(a, preferred_lifetime, valid_lifetime, status)| IaAddr {
                address: Ipv6Addr::from(a),
                preferred_lifetime,
                valid_lifetime,
                status,
            },
        );
        let ia = (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(addr, 0..3),
            any_status(),
        )
            .prop_map(|(iaid, t1, t2, addresses, status)| IaNa {
                iaid,
                t1,
                t2,
                addresses,
                status,
            });
        let duid = proptest::option::of(proptest::collection::vec(any::<u8>(), 3..=MAX_DUID_LEN));
        (
            (1u8..=8, any::<u32>(), duid.clone(), duid),
            proptest::collection::vec(ia, 0..3),
            (
                proptest::collection::vec(any::<u16>(), 0..4),
                proptest::option::of(any::<u16>()),
                any_status(),
                proptest::option::of(any::<u8>()),
                any::<bool>(),
            ),
            proptest::collection::vec(any::<[u8; 16]>(), 0..3),
            proptest::collection::vec("[a-z0-9]{1,10}(\\.[a-z0-9_-]{1,10}){0,3}", 0..3),
        )
            .prop_map(
                |((kind, xid, client_id, server_id), ia_na, misc, dns, domains)| {
                    let mut msg = Message::new(MessageType::from_code(kind), xid);
                    msg.client_id = client_id;
                    msg.server_id = server_id;
                    msg.ia_na = ia_na;
                    (
                        msg.option_request,
                        msg.elapsed_centis,
                        msg.status,
                        msg.preference,
                        msg.rapid_commit,
                    ) = misc;
                    msg.dns_servers = dns.into_iter().map(Ipv6Addr::from).collect();
                    msg.domain_search = domains;
                    msg
                },
            )
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::decode(&bytes);
        }

        /// Random bytes after a valid header and inside plausible options
        /// reach the nested decoders too.
        #[test]
        fn random_option_bodies_never_panic(
            code in prop_oneof![Just(1u16), Just(2), Just(3), Just(5), Just(6), Just(7),
                                Just(8), Just(13), Just(14), Just(23), Just(24)],
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = vec![7, 1, 2, 3];
            let _ = put_option(&mut bytes, code, &body);
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn encode_then_decode_is_identity(msg in any_message()) {
            prop_assert_eq!(Message::decode(&msg.encode().unwrap()).unwrap(), msg);
        }
    }
}
