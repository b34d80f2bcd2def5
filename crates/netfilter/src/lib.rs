//! rcni's firewall layer, shared by every plugin that writes rules.
//!
//! - [`names`]: the reference's chain names, hashes and comments, so rules
//!   made by either implementation are found by the other.
//! - [`iptables`]: read with one `iptables-save`, write with one
//!   `iptables-restore --noflush` per table per call.
//! - [`nftables`]: one `nft -f -` transaction per call, only in rcni's
//!   (the reference's) own tables.
//! - [`masq`]: IP masquerading for bridge and ptp (`ipMasq`), on either
//!   backend, with teardown trying both and GC.
//! - [`script`]: config values validated for the scripts they go into.

pub mod error;
pub mod iptables;
pub mod masq;
pub mod names;
pub mod nftables;
pub mod portmap;
mod run;
pub mod script;
pub mod spoofcheck;

pub use error::FirewallError;

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
            None if !iptables::supported() && nftables::supported() => Ok(Backend::Nftables),
            None => Ok(Backend::Iptables),
        }
    }

    /// Fails when the chosen backend's tools are not installed or do not work.
    pub fn ensure_available(self) -> Result<(), FirewallError> {
        let ok = match self {
            Backend::Iptables => iptables::supported(),
            Backend::Nftables => nftables::supported(),
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
