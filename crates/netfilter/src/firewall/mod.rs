//! The firewall plugin's rules: traffic to and from a container's
//! addresses accepted in the host's forward path after an admin chain the
//! user owns, and the `ingressPolicy` isolation between bridges. The
//! iptables layout is the reference's (`iptables.rs`), so either
//! implementation's DEL removes the other's rules; nftables (`nftables.rs`)
//! is rcni's own table with the same semantics; [`firewalld`] puts the
//! addresses in a zone over D-Bus (`dbus.rs`, a minimal blocking client).
//! This module holds the backend-neutral model and picks the backend.

mod dbus;
pub mod firewalld;
mod iptables;
mod nftables;
mod records;

pub use nftables::TABLE as NFT_TABLE;

use crate::error::FirewallError;
use crate::script::{ChainName, InterfaceName};
use crate::Backend;
use std::net::IpAddr;

/// The reference's default admin chain (`iptablesAdminChainName`).
pub const DEFAULT_ADMIN_CHAIN: &str = "CNI-ADMIN";

/// The attachment the rules belong to.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub ifname: &'a str,
}

/// `ingressPolicy` isolation (Docker's): traffic entering from `bridge`
/// may not leave through another bridge that has a policy, and with
/// `isolated` not back out of `bridge` either.
#[derive(Debug, Clone, Copy)]
pub struct Isolation<'a> {
    pub bridge: &'a InterfaceName,
    pub isolated: bool,
}

impl Isolation<'_> {
    fn policy_name(&self) -> &'static str {
        if self.isolated {
            "isolated"
        } else {
            "same-bridge"
        }
    }
}

/// What one ADD sets up.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub attachment: Attachment<'a>,
    /// The container's addresses.
    pub ips: &'a [IpAddr],
    /// The admin chain the accept rules jump to first; `None` when another
    /// firewall (firewalld) holds the accept rules and only the isolation
    /// goes here, as in the reference.
    pub admin_chain: Option<&'a ChainName>,
    pub isolation: Option<Isolation<'a>>,
}

/// Sets up the rules: one `iptables-restore` batch per IP family of the
/// addresses, or one nftables transaction.
pub fn add(backend: Backend, s: &Setup<'_>) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => {
            iptables::add(s)?;
            if s.admin_chain.is_some() {
                records::write(&s.attachment, s.ips, None);
            }
            Ok(())
        }
        Backend::Nftables => nftables::add(s),
    }
}

/// The attachment's addresses: those given (a DEL's prevResult), else
/// those rcni remembered when it set up iptables or firewalld rules.
pub fn addresses(a: &Attachment<'_>, given: &[IpAddr]) -> Vec<IpAddr> {
    if given.is_empty() {
        records::read(a).map(|r| r.ips).unwrap_or_default()
    } else {
        given.to_vec()
    }
}

/// Whether the accept rules ADD made are in place (the reference's CHECK:
/// chains, the jumps to them, one pair of rules per address).
pub fn check(backend: Backend, s: &Setup<'_>) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => iptables::check(s),
        Backend::Nftables => nftables::check(s),
    }
}

/// Removes an attachment's accept rules from both backends, each where its
/// tools work. nftables rules name the attachment, so they go without the
/// addresses; iptables rules (the reference's layout) are found by
/// address: `ips` (see [`addresses`]). The isolation rules are shared by
/// every container of a bridge and stay, as in the reference.
pub fn del(a: &Attachment<'_>, ips: &[IpAddr]) -> Result<(), FirewallError> {
    let mut errors = Vec::new();
    if !ips.is_empty() && crate::iptables::supported() {
        errors.extend(iptables::del(ips).err());
    }
    if crate::nft::kernel_supported() {
        errors.extend(nftables::del(a).err());
    }
    if errors.is_empty() {
        records::remove(a);
        Ok(())
    } else {
        Err(FirewallError::Several {
            what: "firewall teardown",
            errors,
        })
    }
}

/// Removes the rules of every attachment of `network` not in `valid`
/// (container ID, ifname): nftables' by their comments, iptables' and
/// firewalld's by rcni's records, sparing any address an attachment that
/// stays also holds.
pub fn gc(network: &str, valid: &[(String, String)]) -> Result<(), FirewallError> {
    let mut errors = Vec::new();
    if crate::nft::kernel_supported() {
        errors.extend(nftables::gc(network, valid).err());
    }
    let (stale, kept): (Vec<_>, Vec<_>) = records::all().into_iter().partition(|(net, r)| {
        net == network
            && !valid
                .iter()
                .any(|(id, ifname)| *id == r.container_id && *ifname == r.ifname)
    });
    let kept_ips: Vec<IpAddr> = kept.iter().flat_map(|(_, r)| r.ips.clone()).collect();
    for (_, r) in &stale {
        let ips: Vec<IpAddr> = r
            .ips
            .iter()
            .copied()
            .filter(|ip| !kept_ips.contains(ip))
            .collect();
        let mut failed = false;
        if let Some(zone) = &r.zone {
            let removed = firewalld::Zone::new("zone", zone).and_then(|z| firewalld::del(&z, &ips));
            failed |= removed.is_err();
            errors.extend(removed.err());
        }
        if crate::iptables::supported() && !ips.is_empty() {
            let removed = iptables::del(&ips);
            failed |= removed.is_err();
            errors.extend(removed.err());
        }
        if !failed {
            records::remove(&Attachment {
                network,
                container_id: &r.container_id,
                ifname: &r.ifname,
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(FirewallError::Several {
            what: "firewall GC",
            errors,
        })
    }
}

/// An address as the reference writes it in a rule: `/32` or `/128`.
fn host_cidr(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! What the backends' tests share.
    use super::*;

    pub(super) fn setup<'a>(
        ips: &'a [IpAddr],
        admin: &'a ChainName,
        isolation: Option<Isolation<'a>>,
    ) -> Setup<'a> {
        Setup {
            attachment: Attachment {
                network: "mynet",
                container_id: "c1",
                ifname: "eth0",
            },
            ips,
            admin_chain: Some(admin),
            isolation,
        }
    }

    #[test]
    fn addresses_are_host_routes() {
        assert_eq!(host_cidr(&"10.0.0.2".parse().unwrap()), "10.0.0.2/32");
        assert_eq!(host_cidr(&"fd00::2".parse().unwrap()), "fd00::2/128");
    }
}
