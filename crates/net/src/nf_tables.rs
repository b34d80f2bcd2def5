//! Existence probes for nf_tables tables and chains over netlink: one
//! request and answer, no process. The firewall layer uses them to skip
//! the `iptables-save` / `nft list` it would otherwise run on DEL just to
//! find out that there is nothing to remove.

use crate::error::Result;
use crate::nfnetlink::{Conn, NLM_F_ACK, NLM_F_REQUEST};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;

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

fn string_attr(kind: u16, value: &str) -> Vec<u8> {
    let len = 4 + value.len() + 1;
    let mut a = Vec::with_capacity(crate::nfnetlink::align(len));
    a.extend_from_slice(&(len as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value.as_bytes());
    a.push(0);
    a.resize(crate::nfnetlink::align(len), 0);
    a
}

fn exists(kind: u16, family: NfFamily, attrs: &[u8], op: &str) -> Result<bool> {
    let mut conn = Conn::open(NFNL_SUBSYS_NFTABLES)?;
    match conn.exchange(kind, NLM_F_REQUEST | NLM_F_ACK, family as u8, attrs, op) {
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
        &string_attr(NFTA_TABLE_NAME, name),
        &format!("look up nf_tables table {name}"),
    )
}

/// Whether the chain `chain` of table `family table` exists.
pub fn chain_exists(family: NfFamily, table: &str, chain: &str) -> Result<bool> {
    let mut attrs = string_attr(NFTA_CHAIN_TABLE, table);
    attrs.extend(string_attr(NFTA_CHAIN_NAME, chain));
    exists(
        NFT_MSG_GETCHAIN,
        family,
        &attrs,
        &format!("look up nf_tables chain {table} {chain}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_nul_terminated_and_padded() {
        let a = string_attr(NFTA_CHAIN_NAME, "nat");
        assert_eq!(a.len(), 8);
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]), 8);
        assert_eq!(&a[4..8], b"nat\0");
        assert_eq!(string_attr(1, "abcd").len(), 12);
    }
}
