//! nf_tables over netlink, for what DEL needs: whether a table or chain
//! exists, the rules of a table with their handles and comments, and
//! deleting rules and chains in one transaction. No process, and no
//! loading of the whole ruleset as the `nft` tool does. (Rules are still
//! added with `nft -f`: their expressions are the tool's business.)

use crate::error::Result;
use crate::error::EINTR;
use crate::framing::{
    attribute, attributes, string_attribute, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use crate::nfnetlink::Conn;
use std::cell::RefCell;

/// How often a dump interrupted by a concurrent change is tried.
const DUMP_ATTEMPTS: usize = 5;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_RULE_USERDATA: u16 = 7;
/// The comment's record type in a rule's user data (libnftnl's
/// `NFTNL_UDATA_RULE_COMMENT`).
const UDATA_RULE_COMMENT: u8 = 0;

/// The nf_tables address families (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfFamily {
    /// `inet`: IPv4 and IPv6.
    Inet = 1,
    /// `ip`.
    Ipv4 = 2,
    /// `bridge`.
    Bridge = 7,
    /// `ip6`.
    Ipv6 = 10,
}

thread_local! {
    /// One socket per thread and namespace, kept open until the process
    /// ends: closing a NETLINK_NETFILTER socket right after a transaction
    /// waits for the kernel to free what it deleted (an RCU grace period,
    /// 5 to 10 ms here); by the time the process exits that has passed.
    static CONN: RefCell<Option<(u64, Conn)>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's socket for the namespace it is in. A socket
/// that failed below netlink (I/O, a garbled answer) is not reused.
fn with_conn<T>(f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    CONN.with(|cell| {
        let mut slot = cell.borrow_mut();
        let reusable = netns != 0 && slot.as_ref().is_some_and(|(ns, _)| *ns == netns);
        if !reusable {
            *slot = Some((netns, Conn::open(NFNL_SUBSYS_NFTABLES)?));
        }
        let Some((_, conn)) = slot.as_mut() else {
            return Err(crate::NetError::Protocol("no netfilter socket".into()));
        };
        let result = f(conn);
        if matches!(
            result,
            Err(crate::NetError::Io { .. } | crate::NetError::Protocol(_))
        ) {
            *slot = None;
        }
        result
    })
}

fn exists(kind: u16, family: NfFamily, attrs: &[u8], op: &str) -> Result<bool> {
    match with_conn(|conn| conn.exchange(kind, NLM_F_REQUEST | NLM_F_ACK, family as u8, attrs, op))
    {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the nf_tables table `family name` exists in this namespace.
pub fn table_exists(family: NfFamily, name: &str) -> Result<bool> {
    exists(
        NFT_MSG_GETTABLE,
        family,
        &string_attribute(NFTA_TABLE_NAME, name),
        &format!("look up nf_tables table {name}"),
    )
}

/// Whether the chain `chain` of table `family table` exists.
pub fn chain_exists(family: NfFamily, table: &str, chain: &str) -> Result<bool> {
    let mut attrs = string_attribute(NFTA_CHAIN_TABLE, table);
    attrs.extend(string_attribute(NFTA_CHAIN_NAME, chain));
    exists(
        NFT_MSG_GETCHAIN,
        family,
        &attrs,
        &format!("look up nf_tables chain {table} {chain}"),
    )
}

/// A rule as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Its chain.
    pub chain: String,
    /// Its handle, unique in the table.
    pub handle: u64,
    /// Its comment (`comment "..."`), empty if none.
    pub comment: String,
    /// The chain it jumps or goes to (`jump CHAIN`, iptables' `-j CHAIN`),
    /// if it does.
    pub jumps_to: Option<String>,
}

/// Every rule of table `family table` (or only of `chain`); none when the
/// table or chain does not exist.
pub fn list_rules(family: NfFamily, table: &str, chain: Option<&str>) -> Result<Vec<NftRule>> {
    let mut attrs = string_attribute(NFTA_RULE_TABLE, table);
    if let Some(c) = chain {
        attrs.extend(string_attribute(NFTA_RULE_CHAIN, c));
    }
    let op = format!("list the rules of nf_tables table {table}");
    let dump_once = || {
        with_conn(|conn| {
            conn.exchange(
                NFT_MSG_GETRULE,
                NLM_F_REQUEST | NLM_F_DUMP,
                family as u8,
                &attrs,
                &op,
            )
        })
    };
    // A dump that a concurrent change interrupted may miss rules: retry
    // (as the reference's netlinksafe does, 5 times).
    let mut attempt = dump_once();
    for _ in 1..DUMP_ATTEMPTS {
        match &attempt {
            Err(e) if e.errno() == Some(EINTR) => attempt = dump_once(),
            _ => break,
        }
    }
    let dump = match attempt {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(dump
        .iter()
        .filter_map(|msg| parse_rule(msg))
        .filter(|r| r.table == table && chain.is_none_or(|c| r.rule.chain == c))
        .map(|r| r.rule)
        .collect())
}

struct ParsedRule {
    table: String,
    rule: NftRule,
}

fn nul_string(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// The comment record of a rule's user data (type, length, value).
fn comment_of(mut udata: &[u8]) -> String {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], usize::from(udata[1]));
        let Some(value) = udata.get(2..2 + len) else {
            break;
        };
        if kind == UDATA_RULE_COMMENT {
            return nul_string(value);
        }
        udata = &udata[2 + len..];
    }
    String::new()
}

/// The chain named by the verdict of a rule's `immediate` expression.
fn jump_target(expressions: &[u8]) -> Option<String> {
    let nested = |buf: &[u8], kind: u16| -> Option<Vec<u8>> {
        attributes(buf)
            .into_iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.to_vec())
    };
    attributes(expressions)
        .into_iter()
        .filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
        .find_map(|(_, expr)| {
            let name = nested(expr, NFTA_EXPR_NAME)?;
            if nul_string(&name) != "immediate" {
                return None;
            }
            let data = nested(expr, NFTA_EXPR_DATA)?;
            let value = nested(&data, NFTA_IMMEDIATE_DATA)?;
            let verdict = nested(&value, NFTA_DATA_VERDICT)?;
            Some(nul_string(&nested(&verdict, NFTA_VERDICT_CHAIN)?))
        })
}

fn parse_rule(msg: &[u8]) -> Option<ParsedRule> {
    let mut table = None;
    let mut chain = None;
    let mut handle = None;
    let mut comment = String::new();
    let mut jumps_to = None;
    for (kind, value) in attributes(msg) {
        match kind {
            NFTA_RULE_TABLE => table = Some(nul_string(value)),
            NFTA_RULE_CHAIN => chain = Some(nul_string(value)),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = comment_of(value),
            NFTA_RULE_EXPRESSIONS => jumps_to = jump_target(value),
            _ => {}
        }
    }
    Some(ParsedRule {
        table: table?,
        rule: NftRule {
            chain: chain?,
            handle: handle?,
            comment,
            jumps_to,
        },
    })
}

/// Something to delete from a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftDeletion {
    /// The rule with this handle in this chain.
    Rule {
        /// Its chain.
        chain: String,
        /// Its handle.
        handle: u64,
    },
    /// A chain (which must be empty by then and not referenced).
    Chain(String),
}

/// Deletes rules and chains of table `family table` in one transaction:
/// all or nothing.
pub fn delete(family: NfFamily, table: &str, what: &[NftDeletion]) -> Result<()> {
    let requests: Vec<(u16, u8, Vec<u8>)> = what
        .iter()
        .map(|d| match d {
            NftDeletion::Rule { chain, handle } => {
                let mut a = string_attribute(NFTA_RULE_TABLE, table);
                a.extend(string_attribute(NFTA_RULE_CHAIN, chain));
                a.extend(u64_attr(NFTA_RULE_HANDLE, *handle));
                (NFT_MSG_DELRULE, family as u8, a)
            }
            NftDeletion::Chain(chain) => {
                let mut a = string_attribute(NFTA_CHAIN_TABLE, table);
                a.extend(string_attribute(NFTA_CHAIN_NAME, chain));
                (NFT_MSG_DELCHAIN, family as u8, a)
            }
        })
        .collect();
    let op = format!("delete from nf_tables table {table}");
    with_conn(|conn| conn.transaction(&requests, &op))
}

fn u64_attr(kind: u16, value: u64) -> Vec<u8> {
    attribute(kind, &value.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_come_from_the_user_data() {
        assert_eq!(comment_of(&[0, 4, b'a', b'b', b'c', 0]), "abc");
        assert_eq!(comment_of(&[1, 1, 9, 0, 3, b'x', b'y', 0]), "xy");
        assert_eq!(comment_of(&[0, 9, b'a']), "");
        let mut msg = string_attribute(NFTA_RULE_TABLE, "t");
        msg.extend(string_attribute(NFTA_RULE_CHAIN, "c"));
        msg.extend(u64_attr(NFTA_RULE_HANDLE, 42));
        let r = parse_rule(&msg).unwrap();
        assert_eq!(
            (r.table.as_str(), r.rule.chain.as_str(), r.rule.handle),
            ("t", "c", 42)
        );
        assert_eq!(r.rule.jumps_to, None);
    }

    #[test]
    fn jumps_come_from_the_immediate_verdict() {
        use crate::framing::nested;
        let verdict = nested(
            NFTA_DATA_VERDICT,
            &string_attribute(NFTA_VERDICT_CHAIN, "CNI-X"),
        );
        let data = nested(NFTA_IMMEDIATE_DATA, &verdict);
        let mut immediate = string_attribute(NFTA_EXPR_NAME, "immediate");
        immediate.extend(nested(NFTA_EXPR_DATA, &data));
        let mut counter = string_attribute(NFTA_EXPR_NAME, "counter");
        counter.extend(nested(NFTA_EXPR_DATA, &[]));
        let mut list = nested(NFTA_LIST_ELEM, &counter);
        list.extend(nested(NFTA_LIST_ELEM, &immediate));
        assert_eq!(jump_target(&list).as_deref(), Some("CNI-X"));
        assert_eq!(jump_target(&nested(NFTA_LIST_ELEM, &counter)), None);
    }
}
