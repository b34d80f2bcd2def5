//! nf_tables over netlink: whether a table or chain exists, the rules of a
//! table with their handles and comments, adding tables, chains and rules
//! (expressions in [`crate::nf_expr`]) and deleting rules and chains, each
//! change one transaction. No process, and no loading of the whole ruleset
//! as the `nft` tool does.

use crate::error::Result;
use crate::error::EINTR;
use crate::framing::{
    attributes, put_attribute, put_nested, put_string_attribute, string_attribute, NLM_F_ACK,
    NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST,
};
use crate::nf_expr::{
    comment_udata, listed_as, NftExpr, PayloadBase, NFTA_CMP_DATA, NFTA_CMP_OP, NFTA_DATA_VALUE,
    NFTA_DATA_VERDICT, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_IMMEDIATE_DATA, NFTA_LIST_ELEM,
    NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_LEN, NFTA_PAYLOAD_OFFSET, NFTA_VERDICT_CHAIN, NFT_CMP_EQ,
    UDATA_COMMENT,
};
use crate::nfnetlink::Conn;
use std::cell::RefCell;
use std::net::IpAddr;

/// How often a dump interrupted by a concurrent change is tried.
const DUMP_ATTEMPTS: usize = 5;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETGEN: u16 = 16;
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
const NFTA_RULE_USERDATA: u16 = 7;
/// The x_tables compat expression `match` (nf_tables_compat.h).
const NFTA_MATCH_NAME: u16 = 1;
const NFTA_MATCH_INFO: u16 = 3;

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
    /// One socket per thread and namespace, kept open until the thread
    /// ends: the release of a NETLINK_NETFILTER socket waits for the kernel
    /// to free what the namespace's transactions deleted (an RCU grace
    /// period), which a close between a call's transactions would add to
    /// the call; at the end, a kernel worker does the last release
    /// ([`Conn::open`]).
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

/// Whether nf_tables answers in this namespace (its ruleset generation
/// can be read): false on a kernel without it.
pub fn available() -> bool {
    with_conn(|conn| {
        conn.exchange(
            NFT_MSG_GETGEN,
            NLM_F_REQUEST | NLM_F_ACK,
            0,
            &[],
            "read the nf_tables generation",
        )
    })
    .is_ok()
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
    exists(
        NFT_MSG_GETCHAIN,
        family,
        &chain_key(table, chain),
        &format!("look up nf_tables chain {table} {chain}"),
    )
}

/// The attributes that name a chain (a look-up's, a deletion's).
fn chain_key(table: &str, chain: &str) -> Vec<u8> {
    let mut attrs = string_attribute(NFTA_CHAIN_TABLE, table);
    attrs.extend(string_attribute(NFTA_CHAIN_NAME, chain));
    attrs
}

/// [`chain_exists`] for several chains, asked in one `send`.
fn chains_exist(chains: &[(NfFamily, &str, &str)]) -> Result<Vec<bool>> {
    let requests: Vec<(u16, u8, Vec<u8>)> = chains
        .iter()
        .map(|(family, table, chain)| (NFT_MSG_GETCHAIN, *family as u8, chain_key(table, chain)))
        .collect();
    with_conn(|conn| conn.lookups(&requests, "look up nf_tables chains"))
}

/// A rule as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Its chain.
    pub chain: String,
    /// Its handle, unique in the table.
    pub handle: u64,
    /// Its comment, empty if none: nft's `comment "..."` (user data), or
    /// iptables-nft's `-m comment` (an x_tables `comment` match).
    pub comment: String,
    /// The chain it jumps or goes to (`jump CHAIN`, iptables' `-j CHAIN`),
    /// if it does.
    pub jumps_to: Option<String>,
    /// The one source address it matches (`ip saddr ADDR`, iptables' `-s
    /// ADDR/32`), if it matches one.
    pub source: Option<IpAddr>,
}

/// Every rule of table `family table` (or only of `chain`); none when the
/// table or chain does not exist.
pub fn list_rules(family: NfFamily, table: &str, chain: Option<&str>) -> Result<Vec<NftRule>> {
    Ok(dump_rules(family, table, chain)?
        .into_iter()
        .map(|r| r.rule)
        .collect())
}

/// [`list_rules`] with each rule's expressions as the kernel lists them.
fn dump_rules(family: NfFamily, table: &str, chain: Option<&str>) -> Result<Vec<ParsedRule>> {
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
        .collect())
}

struct ParsedRule {
    table: String,
    rule: NftRule,
    /// `NFTA_RULE_EXPRESSIONS` as listed.
    expressions: Vec<u8>,
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
        if kind == UDATA_COMMENT {
            return nul_string(value);
        }
        udata = &udata[2 + len..];
    }
    String::new()
}

/// The value of the first attribute `kind` of `buf`. Borrowed, as the
/// readers below run for every rule of a listing (a thousand pods' rules
/// in a DEL's).
fn attribute_value(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attributes(buf).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// `v` up to its first NUL.
fn nul_trimmed(v: &[u8]) -> &[u8] {
    v.split(|b| *b == 0).next().unwrap_or(v)
}

/// A rule's expressions as the kernel lists them: each one's name and data.
fn expression_list(expressions: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
    attributes(expressions)
        .filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
        .filter_map(|(_, expr)| {
            let name = attribute_value(expr, NFTA_EXPR_NAME)?;
            Some((nul_trimmed(name), attribute_value(expr, NFTA_EXPR_DATA)?))
        })
}

/// The data of each expression of a rule named `name`.
fn expressions_named<'a>(expressions: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    expression_list(expressions)
        .filter(move |(n, _)| *n == name.as_bytes())
        .map(|(_, data)| data)
}

/// The chain named by the verdict of a rule's `immediate` expression.
fn jump_target(expressions: &[u8]) -> Option<String> {
    expressions_named(expressions, "immediate").find_map(|data| {
        let value = attribute_value(data, NFTA_IMMEDIATE_DATA)?;
        let verdict = attribute_value(value, NFTA_DATA_VERDICT)?;
        Some(nul_string(attribute_value(verdict, NFTA_VERDICT_CHAIN)?))
    })
}

/// The text of an x_tables `comment` match, as iptables-nft (1.8) writes
/// `-m comment --comment`: its info is `struct xt_comment_info`, the
/// text NUL-terminated in 256 bytes.
fn xt_comment(expressions: &[u8]) -> Option<String> {
    expressions_named(expressions, "match").find_map(|data| {
        let name = attribute_value(data, NFTA_MATCH_NAME)?;
        (nul_trimmed(name) == b"comment")
            .then(|| attribute_value(data, NFTA_MATCH_INFO).map(nul_string))
            .flatten()
    })
}

/// The address a rule's source must equal (`ip saddr ADDR`, iptables'
/// `-s ADDR/32`): a load of the IPv4 or IPv6 source field followed by an
/// equality with it.
fn exact_source(expressions: &[u8]) -> Option<IpAddr> {
    let u32_of = |data: &[u8], kind: u16| {
        Some(u32::from_be_bytes(
            attribute_value(data, kind)?.try_into().ok()?,
        ))
    };
    let list = expression_list(expressions);
    let mut pairs = list.clone().zip(list.skip(1));
    pairs.find_map(|((load, load_data), (cmp, cmp_data))| {
        if load != b"payload" || cmp != b"cmp" || u32_of(cmp_data, NFTA_CMP_OP)? != NFT_CMP_EQ {
            return None;
        }
        if u32_of(load_data, NFTA_PAYLOAD_BASE)? != PayloadBase::Network as u32 {
            return None;
        }
        let value = attribute_value(attribute_value(cmp_data, NFTA_CMP_DATA)?, NFTA_DATA_VALUE)?;
        match (
            u32_of(load_data, NFTA_PAYLOAD_OFFSET)?,
            u32_of(load_data, NFTA_PAYLOAD_LEN)?,
        ) {
            (12, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
            (8, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
            _ => None,
        }
    })
}

fn parse_rule(msg: &[u8]) -> Option<ParsedRule> {
    let mut table = None;
    let mut chain = None;
    let mut handle = None;
    let mut comment = String::new();
    let mut jumps_to = None;
    let mut expressions = Vec::new();
    for (kind, value) in attributes(msg) {
        match kind {
            NFTA_RULE_TABLE => table = Some(nul_string(value)),
            NFTA_RULE_CHAIN => chain = Some(nul_string(value)),
            NFTA_RULE_HANDLE => handle = Some(u64::from_be_bytes(value.get(..8)?.try_into().ok()?)),
            NFTA_RULE_USERDATA => comment = comment_of(value),
            NFTA_RULE_EXPRESSIONS => {
                jumps_to = jump_target(value);
                expressions = value.to_vec();
            }
            _ => {}
        }
    }
    if comment.is_empty() {
        comment = xt_comment(&expressions).unwrap_or_default();
    }
    let source = exact_source(&expressions);
    Some(ParsedRule {
        table: table?,
        rule: NftRule {
            chain: chain?,
            handle: handle?,
            comment,
            jumps_to,
            source,
        },
        expressions,
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
    let requests: Vec<(u16, u16, u8, Vec<u8>)> = what
        .iter()
        .map(|d| match d {
            NftDeletion::Rule { chain, handle } => {
                let (kind, flags, a) = change_request(
                    table,
                    &NftChange::DeleteRule {
                        chain: chain.clone(),
                        handle: *handle,
                    },
                );
                (kind, flags, family as u8, a)
            }
            NftDeletion::Chain(chain) => {
                (NFT_MSG_DELCHAIN, 0, family as u8, chain_key(table, chain))
            }
        })
        .collect();
    let op = format!("delete from nf_tables table {table}");
    with_conn(|conn| conn.transaction(&requests, &op))
}

/// The netfilter hooks of base chains (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `prerouting`.
    Prerouting = 0,
    /// `forward`.
    Forward = 2,
    /// `output`.
    Output = 3,
    /// `postrouting`.
    Postrouting = 4,
}

/// What makes a chain a base chain: its type, hook and priority, and its
/// policy if one is written (else the kernel's default, accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// `nat` or `filter`.
    pub kind: &'static str,
    /// Its hook.
    pub hook: Hook,
    /// Its priority (dstnat -100, filter 0, srcnat 100).
    pub priority: i32,
    /// `policy accept;` written out, as nft sends it when the script says so.
    pub policy_accept: bool,
}

/// One change of a table, as an `nft` command does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftChange {
    /// `add table` (created if missing, kept as it is if not).
    AddTable {
        /// `comment "..."`.
        comment: Option<String>,
    },
    /// `delete table`: the table with all its chains and rules.
    DeleteTable,
    /// `add chain` (created if missing, kept if not).
    AddChain {
        /// Its name.
        name: String,
        /// Hook, type and priority of a base chain.
        base: Option<BaseChain>,
        /// `comment "..."`.
        comment: Option<String>,
    },
    /// `flush chain`: deletes all its rules.
    FlushChain(String),
    /// `delete rule ... handle N`.
    DeleteRule {
        /// Its chain.
        chain: String,
        /// Its handle.
        handle: u64,
    },
    /// `add rule` (appended) or `insert rule` (put first).
    AddRule {
        /// Its chain.
        chain: String,
        /// `insert` rather than `add`.
        first: bool,
        /// What it matches and does.
        exprs: Vec<NftExpr>,
        /// `comment "..."`.
        comment: Option<String>,
    },
}

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_USERDATA: u16 = 6;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_USERDATA: u16 = 12;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;

/// The request (kind, flags, attributes) of one change of `table`.
fn change_request(table: &str, change: &NftChange) -> (u16, u16, Vec<u8>) {
    let mut a = Vec::with_capacity(256);
    let (kind, flags) = match change {
        NftChange::AddTable { comment } => {
            put_string_attribute(&mut a, NFTA_TABLE_NAME, table);
            put_attribute(&mut a, NFTA_TABLE_FLAGS, &0u32.to_be_bytes());
            if let Some(c) = comment {
                put_attribute(&mut a, NFTA_TABLE_USERDATA, &comment_udata(c));
            }
            (NFT_MSG_NEWTABLE, NLM_F_CREATE)
        }
        NftChange::DeleteTable => {
            put_string_attribute(&mut a, NFTA_TABLE_NAME, table);
            (NFT_MSG_DELTABLE, 0)
        }
        NftChange::AddChain {
            name,
            base,
            comment,
        } => {
            put_string_attribute(&mut a, NFTA_CHAIN_TABLE, table);
            put_string_attribute(&mut a, NFTA_CHAIN_NAME, name);
            if let Some(b) = base {
                put_nested(&mut a, NFTA_CHAIN_HOOK, |hook| {
                    put_attribute(hook, NFTA_HOOK_HOOKNUM, &(b.hook as u32).to_be_bytes());
                    put_attribute(hook, NFTA_HOOK_PRIORITY, &b.priority.to_be_bytes());
                });
                if b.policy_accept {
                    put_attribute(&mut a, NFTA_CHAIN_POLICY, &1u32.to_be_bytes());
                }
                put_string_attribute(&mut a, NFTA_CHAIN_TYPE, b.kind);
            }
            if let Some(c) = comment {
                put_attribute(&mut a, NFTA_CHAIN_USERDATA, &comment_udata(c));
            }
            (NFT_MSG_NEWCHAIN, NLM_F_CREATE)
        }
        NftChange::FlushChain(chain) => {
            put_string_attribute(&mut a, NFTA_RULE_TABLE, table);
            put_string_attribute(&mut a, NFTA_RULE_CHAIN, chain);
            (NFT_MSG_DELRULE, 0)
        }
        NftChange::DeleteRule { chain, handle } => {
            put_string_attribute(&mut a, NFTA_RULE_TABLE, table);
            put_string_attribute(&mut a, NFTA_RULE_CHAIN, chain);
            put_attribute(&mut a, NFTA_RULE_HANDLE, &handle.to_be_bytes());
            (NFT_MSG_DELRULE, 0)
        }
        NftChange::AddRule {
            chain,
            first,
            exprs,
            comment,
        } => {
            put_string_attribute(&mut a, NFTA_RULE_TABLE, table);
            put_string_attribute(&mut a, NFTA_RULE_CHAIN, chain);
            put_nested(&mut a, NFTA_RULE_EXPRESSIONS, |list| {
                crate::nf_expr::put_list(list, exprs)
            });
            if let Some(c) = comment {
                put_attribute(&mut a, NFTA_RULE_USERDATA, &comment_udata(c));
            }
            let flags = if *first {
                NLM_F_CREATE
            } else {
                NLM_F_CREATE | NLM_F_APPEND
            };
            (NFT_MSG_NEWRULE, flags)
        }
    };
    (kind, flags, a)
}

/// Applies changes to tables (family, table, change) in one transaction,
/// one `send`, every request acknowledged: all or nothing, as one `nft -f`
/// of the same commands.
///
/// What would leave a table as it is goes unsent (see [`needed`]): a
/// transaction that only adds objects is freed at once, while one that
/// updates a chain or deletes a rule leaves work that the next release of
/// a netfilter socket in the namespace, i.e. this process's exit, waits
/// for (an RCU grace period, 5 to 15 ms here). Should the smaller
/// transaction fail (the table changed in between), the whole one is sent.
pub fn apply(changes: &[(NfFamily, &str, NftChange)]) -> Result<()> {
    let all: Vec<&(NfFamily, &str, NftChange)> = changes.iter().collect();
    let needed = needed(changes).unwrap_or_else(|_| all.clone());
    match commit(&needed) {
        Err(_) if needed.len() < all.len() => commit(&all),
        result => result,
    }
}

fn commit(changes: &[&(NfFamily, &str, NftChange)]) -> Result<()> {
    let requests: Vec<(u16, u16, u8, Vec<u8>)> = changes
        .iter()
        .map(|(family, table, change)| {
            let (kind, flags, attrs) = change_request(table, change);
            (kind, flags, *family as u8, attrs)
        })
        .collect();
    with_conn(|conn| conn.transaction(&requests, "add nf_tables rules"))
}

/// The changes without those that would change nothing: adding a chain
/// that exists, and flushing a chain whose rules the changes then write
/// again exactly as they are (with those rules). Looks up each chain
/// added and lists each chain flushed, so the cost does not grow with the
/// rules of other chains.
fn needed<'a>(
    changes: &'a [(NfFamily, &'a str, NftChange)],
) -> Result<Vec<&'a (NfFamily, &'a str, NftChange)>> {
    let mut keep = vec![true; changes.len()];
    // The chains added are looked up together, in one round trip.
    let added: Vec<(usize, (NfFamily, &str, &str))> = changes
        .iter()
        .enumerate()
        .filter_map(|(i, (family, table, change))| match change {
            NftChange::AddChain { name, .. } => Some((i, (*family, *table, name.as_str()))),
            _ => None,
        })
        .collect();
    let keys: Vec<_> = added.iter().map(|(_, key)| *key).collect();
    for ((i, _), exists) in added.iter().zip(chains_exist(&keys)?) {
        keep[*i] = !exists;
    }
    for (i, (family, table, change)) in changes.iter().enumerate() {
        let NftChange::FlushChain(chain) = change else {
            continue;
        };
        let same_chain = |(f, t, c): &(NfFamily, &str, NftChange)| {
            *f == *family
                && t == table
                && matches!(c, NftChange::AddRule { chain: c, .. } if c == chain)
        };
        let rewritten: Vec<usize> = (i + 1..changes.len())
            .filter(|j| same_chain(&changes[*j]))
            .collect();
        let listed = dump_rules(*family, table, Some(chain))?;
        let unchanged = listed.len() == rewritten.len()
            && listed.iter().zip(&rewritten).all(|(have, j)| {
                matches!(&changes[*j].2, NftChange::AddRule { first: false, exprs, comment, .. }
                        if have.rule.comment == comment.clone().unwrap_or_default()
                            && listed_as(&have.expressions, exprs))
            });
        if unchanged {
            keep[i] = false;
            rewritten.iter().for_each(|j| keep[*j] = false);
        }
    }
    Ok(changes
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(c, _)| c)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{attribute, nested};

    fn u64_attr(kind: u16, value: u64) -> Vec<u8> {
        attribute(kind, &value.to_be_bytes())
    }

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

    /// `-s ADDR/32` as iptables-nft adds it (a load of the source field and
    /// an equality) gives the source; a destination, a prefix or an
    /// inequality does not.
    #[test]
    fn the_exact_source_is_a_load_of_the_source_then_an_equality() {
        let rule = |exprs: &[NftExpr]| crate::nf_expr::encode_list(exprs);
        let load = |offset, len| NftExpr::Payload {
            base: PayloadBase::Network,
            offset,
            len,
        };
        let eq = |data: &[u8]| NftExpr::Cmp {
            equal: true,
            data: data.to_vec(),
        };
        let v4 = [10, 66, 0, 2];
        let v6: [u8; 16] = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(
            exact_source(&rule(&[
                NftExpr::Meta(crate::nf_expr::MetaKey::L4proto),
                eq(&[6]),
                load(12, 4),
                eq(&v4)
            ])),
            Some(IpAddr::from(v4))
        );
        assert_eq!(
            exact_source(&rule(&[load(8, 16), eq(&v6)])),
            Some(IpAddr::from(v6))
        );
        assert_eq!(exact_source(&rule(&[load(16, 4), eq(&v4)])), None);
        assert_eq!(
            exact_source(&rule(&[
                load(12, 4),
                NftExpr::Mask(vec![255, 255, 255, 0]),
                eq(&v4)
            ])),
            None
        );
        let ne = NftExpr::Cmp {
            equal: false,
            data: v4.to_vec(),
        };
        assert_eq!(exact_source(&rule(&[load(12, 4), ne])), None);
    }

    /// iptables-nft 1.8 keeps `-m comment --comment` as an x_tables match
    /// (`[ match name comment rev 0 ]` in `nft --debug=netlink`), not as
    /// user data.
    #[test]
    fn iptables_comments_come_from_the_comment_match() {
        let mut info = b"dnat name: \"n\" id: \"c\"".to_vec();
        info.resize(256, 0);
        let mut data = string_attribute(NFTA_MATCH_NAME, "comment");
        data.extend(attribute(2, &0u32.to_be_bytes()));
        data.extend(attribute(NFTA_MATCH_INFO, &info));
        let mut comment = string_attribute(NFTA_EXPR_NAME, "match");
        comment.extend(nested(NFTA_EXPR_DATA, &data));
        let mut other = string_attribute(NFTA_MATCH_NAME, "multiport");
        other.extend(attribute(NFTA_MATCH_INFO, &[0; 8]));
        let mut multiport = string_attribute(NFTA_EXPR_NAME, "match");
        multiport.extend(nested(NFTA_EXPR_DATA, &other));
        let mut list = nested(NFTA_LIST_ELEM, &multiport);
        list.extend(nested(NFTA_LIST_ELEM, &comment));
        let mut msg = string_attribute(NFTA_RULE_TABLE, "nat");
        msg.extend(string_attribute(NFTA_RULE_CHAIN, "CNI-HOSTPORT-DNAT"));
        msg.extend(u64_attr(NFTA_RULE_HANDLE, 7));
        msg.extend(nested(NFTA_RULE_EXPRESSIONS, &list));
        let r = parse_rule(&msg).unwrap();
        assert_eq!(r.rule.comment, r#"dnat name: "n" id: "c""#);
        // User data wins: nft's own comments.
        msg.extend(attribute(NFTA_RULE_USERDATA, &[0, 3, b'u', b'd', 0]));
        assert_eq!(parse_rule(&msg).unwrap().rule.comment, "ud");
        assert_eq!(xt_comment(&nested(NFTA_LIST_ELEM, &multiport)), None);
    }
}
