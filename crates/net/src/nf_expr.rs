//! nf_tables rule expressions, encoded by hand the way the `nft` tool
//! (libnftnl) encodes them: the same expressions, registers, data lengths
//! and user data, so that a rule added here reads back from the kernel
//! byte for byte as the rule `nft -f` adds for the same text, and `nft
//! list ruleset`, the reference and older rcni versions see no difference.
//! Like `nft`, data goes through register 1 (a NAT port through 2), and
//! verdicts through the verdict register.

use crate::framing::{
    attributes, attributes_with_flags, put_attribute, put_nested, put_string_attribute,
    NLA_F_NESTED, NLA_TYPE_MASK,
};
use std::net::IpAddr;

pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_EXPR_NAME: u16 = 1;
pub(crate) const NFTA_EXPR_DATA: u16 = 2;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
pub(crate) const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
pub(crate) const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFTA_*_DREG`/`SREG`: the first attribute of payload, meta, cmp,
/// bitwise, immediate and fib.
const NFTA_REG: u16 = 1;
pub(crate) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(crate) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(crate) const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_META_KEY: u16 = 2;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATE: u32 = 0;
pub(crate) const NFTA_CMP_OP: u16 = 2;
pub(crate) const NFTA_CMP_DATA: u16 = 3;
/// `NFT_CMP_EQ`.
pub(crate) const NFT_CMP_EQ: u32 = 0;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
pub(crate) const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_FLAGS: u16 = 7;
const NFT_NAT_DNAT: u32 = 1;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`: the DNAT names a port.
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
/// The comment's record type in a rule's, chain's or table's user data
/// (libnftnl's `NFTNL_UDATA_*_COMMENT`).
pub(crate) const UDATA_COMMENT: u8 = 0;

/// Which header a payload load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    /// The Ethernet header (bridge family).
    Link = 0,
    /// The IP header.
    Network = 1,
    /// The TCP/UDP/SCTP header.
    Transport = 2,
}

/// The meta keys rcni matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// `iifname` (16 bytes, NUL-padded): the input interface.
    Iifname = 6,
    /// `oifname` (16 bytes, NUL-padded): the output interface.
    Oifname = 7,
    /// `meta nfproto` (1 byte): IPv4 or IPv6 in an `inet` table.
    Nfproto = 15,
    /// `meta l4proto` (1 byte): the transport protocol.
    L4proto = 16,
}

/// A rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
}

impl Verdict {
    fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
            Verdict::Return => -5,
        }
    }

    /// Appends the verdict as nf_tables data (`NFTA_DATA_VERDICT`).
    pub(crate) fn put_data(&self, buf: &mut Vec<u8>) {
        put_nested(buf, NFTA_DATA_VERDICT, |v| {
            put_attribute(v, NFTA_VERDICT_CODE, &self.code().to_be_bytes());
            if let Verdict::Jump(chain) | Verdict::Goto(chain) = self {
                put_string_attribute(v, NFTA_VERDICT_CHAIN, chain);
            }
        });
    }
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftExpr {
    /// Loads `len` bytes at `offset` of a header into register 1.
    Payload {
        /// The header.
        base: PayloadBase,
        /// Bytes from its start.
        offset: u32,
        /// Bytes loaded.
        len: u32,
    },
    /// Loads a meta key into register 1.
    Meta(MetaKey),
    /// Loads the conntrack state bits (`ct state`, a native-endian u32)
    /// into register 1.
    CtState,
    /// Compares register 1 with `data` (as long as the value loaded).
    Cmp {
        /// `==` rather than `!=`.
        equal: bool,
        /// The value.
        data: Vec<u8>,
    },
    /// Register 1 = (register 1 & mask) ^ 0, over the mask's length: a
    /// prefix match that does not end on a byte boundary.
    Mask(Vec<u8>),
    /// The route type of the destination address (`fib daddr type`) into
    /// register 1, a native-endian `RTN_*` value.
    FibDaddrType,
    /// A verdict (`jump`, `return`, ...).
    Verdict(Verdict),
    /// `dnat to addr:port`: both loaded as immediates, then the NAT.
    Dnat {
        /// The new destination address.
        addr: IpAddr,
        /// The new destination port.
        port: u16,
    },
    /// `masquerade`.
    Masquerade,
}

fn put_u32(buf: &mut Vec<u8>, kind: u16, value: u32) {
    put_attribute(buf, kind, &value.to_be_bytes());
}

/// Appends one element of the expression list: its name, and its data as
/// `fill` appends it.
fn put_element(buf: &mut Vec<u8>, name: &str, fill: impl FnOnce(&mut Vec<u8>)) {
    put_nested(buf, NFTA_LIST_ELEM, |e| {
        put_string_attribute(e, NFTA_EXPR_NAME, name);
        put_nested(e, NFTA_EXPR_DATA, fill);
    });
}

/// Appends `data` as a value (`NFTA_DATA_VALUE`) nested in `kind`.
fn put_value(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_nested(buf, kind, |v| put_attribute(v, NFTA_DATA_VALUE, data));
}

/// Appends an `immediate` loading `reg` with the data `fill` appends.
fn put_immediate(buf: &mut Vec<u8>, reg: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    put_element(buf, "immediate", |a| {
        put_u32(a, NFTA_REG, reg);
        put_nested(a, NFTA_IMMEDIATE_DATA, fill);
    });
}

/// A rule's `NFTA_RULE_EXPRESSIONS` payload: its expressions' elements, one
/// after the other.
pub(crate) fn encode_list(exprs: &[NftExpr]) -> Vec<u8> {
    let mut list = Vec::with_capacity(64 * exprs.len());
    put_list(&mut list, exprs);
    list
}

/// Appends [`encode_list`]`(exprs)` to `buf`.
pub(crate) fn put_list(buf: &mut Vec<u8>, exprs: &[NftExpr]) {
    for e in exprs {
        e.encode_into(buf);
    }
}

impl NftExpr {
    /// The expression's elements of `NFTA_RULE_EXPRESSIONS`.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode_list(std::slice::from_ref(self))
    }

    /// Appends the expression's elements of `NFTA_RULE_EXPRESSIONS`.
    fn encode_into(&self, buf: &mut Vec<u8>) {
        match self {
            NftExpr::Payload { base, offset, len } => put_element(buf, "payload", |a| {
                put_u32(a, NFTA_REG, NFT_REG_1);
                put_u32(a, NFTA_PAYLOAD_BASE, *base as u32);
                put_u32(a, NFTA_PAYLOAD_OFFSET, *offset);
                put_u32(a, NFTA_PAYLOAD_LEN, *len);
            }),
            NftExpr::Meta(key) => put_element(buf, "meta", |a| {
                put_u32(a, NFTA_REG, NFT_REG_1);
                put_u32(a, NFTA_META_KEY, *key as u32);
            }),
            NftExpr::CtState => put_element(buf, "ct", |a| {
                put_u32(a, NFTA_REG, NFT_REG_1);
                put_u32(a, NFTA_CT_KEY, NFT_CT_STATE);
            }),
            NftExpr::Cmp { equal, data } => put_element(buf, "cmp", |a| {
                put_u32(a, NFTA_REG, NFT_REG_1);
                put_u32(a, NFTA_CMP_OP, u32::from(!equal));
                put_value(a, NFTA_CMP_DATA, data);
            }),
            NftExpr::Mask(mask) => put_element(buf, "bitwise", |a| {
                put_u32(a, NFTA_REG, NFT_REG_1);
                put_u32(a, NFTA_BITWISE_DREG, NFT_REG_1);
                put_u32(a, NFTA_BITWISE_LEN, mask.len() as u32);
                put_value(a, NFTA_BITWISE_MASK, mask);
                put_value(a, NFTA_BITWISE_XOR, &vec![0; mask.len()]);
            }),
            NftExpr::FibDaddrType => put_element(buf, "fib", |a| {
                put_u32(a, NFTA_REG, NFT_REG_1);
                put_u32(a, NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                put_u32(a, NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
            }),
            NftExpr::Verdict(v) => put_immediate(buf, NFT_REG_VERDICT, |d| v.put_data(d)),
            NftExpr::Dnat { addr, port } => {
                let (family, octets) = match addr {
                    IpAddr::V4(a) => (2u32, a.octets().to_vec()),
                    IpAddr::V6(a) => (10, a.octets().to_vec()),
                };
                put_immediate(buf, NFT_REG_1, |d| {
                    put_attribute(d, NFTA_DATA_VALUE, &octets)
                });
                put_immediate(buf, NFT_REG_2, |d| {
                    put_attribute(d, NFTA_DATA_VALUE, &port.to_be_bytes())
                });
                put_element(buf, "nat", |a| {
                    put_u32(a, NFTA_NAT_TYPE, NFT_NAT_DNAT);
                    put_u32(a, NFTA_NAT_FAMILY, family);
                    put_u32(a, NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                    put_u32(a, NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
                    put_u32(a, NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
                });
            }
            NftExpr::Masquerade => put_element(buf, "masq", |_| {}),
        }
    }
}

/// Whether the expressions of a rule as the kernel lists them
/// (`NFTA_RULE_EXPRESSIONS`) are `wanted`: as many, each of the same name
/// with every attribute rcni sends, of equal value. (The kernel lists some
/// attributes nft does not send, such as bitwise's operation, and nests
/// without the flag.)
pub(crate) fn listed_as(listed: &[u8], wanted: &[NftExpr]) -> bool {
    let ours = encode_list(wanted);
    let (theirs, ours) = (attributes(listed), attributes(&ours));
    theirs.clone().count() == ours.clone().count()
        && theirs
            .zip(ours)
            .all(|((_, listed), (_, sent))| covers(listed, sent))
}

/// Whether every attribute of `sent` is in `listed` with the same value
/// (nested ones compared the same way, attribute by attribute).
fn covers(listed: &[u8], sent: &[u8]) -> bool {
    let listed = attributes_with_flags(listed);
    attributes_with_flags(sent).all(|(kind, value)| {
        listed.clone().any(|(k, v)| {
            k & NLA_TYPE_MASK == kind & NLA_TYPE_MASK
                && if kind & NLA_F_NESTED != 0 {
                    covers(v, value)
                } else {
                    v == value
                }
        })
    })
}

/// User data holding one comment record, as `nft` writes a rule's, chain's
/// or table's comment: type, length (with the NUL), the NUL-terminated text.
/// A comment longer than a record can hold is cut (nft refuses more than
/// 128 bytes; rcni's comments are shorter).
pub(crate) fn comment_udata(comment: &str) -> Vec<u8> {
    let text = &comment.as_bytes()[..comment.len().min(254)];
    let mut u = vec![UDATA_COMMENT, (text.len() + 1) as u8];
    u.extend_from_slice(text);
    u.push(0);
    u
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{attribute, string_attribute};

    fn u32_attr(kind: u16, value: u32) -> Vec<u8> {
        attribute(kind, &value.to_be_bytes())
    }

    fn value(data: &[u8]) -> Vec<u8> {
        attribute(NFTA_DATA_VALUE, data)
    }

    /// The kernel lists a bitwise with its operation, which nft does not
    /// send, and nests without the flag: still the same expression; a
    /// different mask or one more expression is not.
    #[test]
    fn listed_expressions_are_compared_attribute_by_attribute() {
        let listed_bitwise = |mask: [u8; 4]| {
            let mut data = u32_attr(NFTA_REG, NFT_REG_1);
            data.extend(u32_attr(NFTA_BITWISE_DREG, NFT_REG_1));
            data.extend(u32_attr(NFTA_BITWISE_LEN, 4));
            data.extend(u32_attr(6, 0)); // NFTA_BITWISE_OP: boolean
            data.extend(attribute(NFTA_BITWISE_MASK, &value(&mask)));
            data.extend(attribute(NFTA_BITWISE_XOR, &value(&[0; 4])));
            let mut e = string_attribute(NFTA_EXPR_NAME, "bitwise");
            e.extend(attribute(NFTA_EXPR_DATA, &data));
            attribute(NFTA_LIST_ELEM, &e)
        };
        let wanted = [NftExpr::Mask(vec![0xf0, 0, 0, 0])];
        assert!(listed_as(&listed_bitwise([0xf0, 0, 0, 0]), &wanted));
        assert!(!listed_as(&listed_bitwise([0xff, 0, 0, 0]), &wanted));
        let two = [wanted[0].clone(), NftExpr::Masquerade];
        assert!(!listed_as(&listed_bitwise([0xf0, 0, 0, 0]), &two));
        let verdict = [NftExpr::Verdict(Verdict::Jump("a".into()))];
        let other = NftExpr::Verdict(Verdict::Jump("b".into())).encode();
        assert!(listed_as(&verdict[0].encode(), &verdict));
        assert!(!listed_as(&other, &verdict));
    }

    #[test]
    fn comment_records_end_with_nul() {
        assert_eq!(comment_udata("c1"), vec![0, 3, b'c', b'1', 0]);
    }
}
