//! rcni's firewall layer, shared by every plugin that writes rules.
//!
//! What the plugins call, one module per job, each laid out as the
//! reference does so either implementation finds and removes the other's
//! rules; each keeps its backend-neutral model and the choice of backend in
//! `mod.rs`, and one file per backend:
//! - [`hostport`]: portmap's DNAT and masquerade rules.
//! - [`masq`]: IP masquerading for bridge and ptp (`ipMasq`), teardown
//!   trying both backends, and GC.
//! - [`spoofcheck`]: bridge's `macspoofchk` (nftables only).
//! - [`firewall`]: the firewall plugin's accept rules and `ingressPolicy`
//!   isolation.
//!
//! What those are built on:
//! - [`iptables`]: read with one `iptables-save`, write with one
//!   `iptables-restore --noflush` per table per call.
//! - [`nft`]: rules added with one nf_tables transaction per call over
//!   netlink (one `nft -f -` for portmap's conditions, which are free nft
//!   text), reads and deletions over netlink, only in rcni's (the
//!   reference's) own tables, all under one lock per network namespace
//!   ([`nft::locked`]).
//! - [`script`]: the only way a config value reaches an iptables-restore or
//!   nft script: types built by validating it for that script.
//! - [`rule_names`]: the reference's chain names, hashes and comments.
//! - `netns_state`: where rcni keeps per-namespace files (under /run/rcni)
//!   and how they are named.
//! - [`error`]: [`FirewallError`] and its [`ErrorKind`].

pub mod error;
pub mod firewall;
pub mod hostport;
pub mod iptables;
pub mod masq;
mod netns_state;
pub mod nft;
pub mod rule_names;
mod run;
pub mod script;
pub mod spoofcheck;

pub use error::{ErrorKind, FirewallError};

use std::net::IpAddr;

/// An IP family. Both backends keep one table per family where the
/// reference's layout does: iptables (`iptables`/`ip6tables`) and
/// nftables (`ip`/`ip6` tables, e.g. portmap's `cni_hostport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// nftables' word for the family: its table family, and the keyword of
    /// its address matches (`ip saddr`, `ip6 daddr`).
    pub fn nft_keyword(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

impl From<Family> for nft::NfFamily {
    fn from(family: Family) -> nft::NfFamily {
        match family {
            Family::V4 => nft::NfFamily::Ipv4,
            Family::V6 => nft::NfFamily::Ipv6,
        }
    }
}

/// Which firewall a plugin writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

impl Backend {
    /// The backend a config names (`iptables` or `nftables`), or the
    /// reference's default: iptables unless only nftables works.
    pub fn choose(configured: Option<&str>, field: &str) -> Result<Backend, FirewallError> {
        match configured {
            Some("iptables") => Ok(Backend::Iptables),
            Some("nftables") => Ok(Backend::Nftables),
            Some(other) => Err(FirewallError::Config(format!(
                "{field}: unknown backend {other:?} (expected \"iptables\" or \"nftables\")"
            ))),
            None if !iptables::supported() && nft::supported() => Ok(Backend::Nftables),
            None => Ok(Backend::Iptables),
        }
    }

    /// Fails when the chosen backend's tools are not installed or do not work.
    pub fn ensure_available(self) -> Result<(), FirewallError> {
        let ok = match self {
            Backend::Iptables => iptables::supported(),
            Backend::Nftables => nft::supported(),
        };
        if ok {
            Ok(())
        } else {
            Err(FirewallError::Unavailable(format!(
                "the {} backend is not available on this host",
                self.name()
            )))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
        }
    }
}
