//! IP masquerading for a container's addresses (`ipMasq` of bridge and
//! ptp), laid out exactly as the reference does on both backends
//! (`iptables.rs`, `nftables.rs`); this module holds the attachment the rules
//! belong to ([`Owner`]) and picks the backend.
//!
//! Teardown does not need the container's addresses (so DEL still cleans
//! up when the netns is gone) and tries both backends.

mod iptables;
mod nftables;

use crate::error::FirewallError;
use crate::Backend;
use ipnet::IpNet;

/// The attachment the rules belong to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub network: &'a str,
    pub ifname: &'a str,
    pub container_id: &'a str,
}

/// Sets up masquerading for `ips` (one batch per IP family on iptables,
/// one transaction on nftables).
pub fn setup(backend: Backend, ips: &[IpNet], o: &Owner<'_>) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => iptables::setup(ips, o),
        Backend::Nftables => nftables::setup(ips, o),
    }
}

/// Removes an attachment's masquerading from both backends (each one
/// only where its tools work).
pub fn teardown(o: &Owner<'_>) -> Result<(), FirewallError> {
    teardown_known(o, &[])
}

/// As [`teardown`], with the attachment's addresses when the caller knows
/// them (a DEL's prevResult): iptables then needs no `iptables-save`.
pub fn teardown_known(o: &Owner<'_>, known: &[IpNet]) -> Result<(), FirewallError> {
    let mut errors = Vec::new();
    if crate::iptables::supported() {
        errors.extend(iptables::teardown(o, known).err());
    }
    if crate::nft::kernel_supported() {
        errors.extend(nftables::teardown(o).err());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(FirewallError::Several {
            what: "ipmasq teardown",
            errors,
        })
    }
}

/// Removes the masquerading of every attachment of `network` that is not
/// in `valid` (container ID, ifname), on both backends. nftables rules name
/// the interface; iptables rules (the reference's layout) name only the
/// container, so when the caller knows which addresses the network's IPAM
/// still holds (`held`, after IPAM's own GC), an iptables rule for an
/// address outside them goes too: IPAM released it because its
/// attachment (container ID and interface) is not valid.
pub fn gc(
    network: &str,
    valid: &[(String, String)],
    held: Option<&[std::net::IpAddr]>,
) -> Result<(), FirewallError> {
    if crate::nft::kernel_supported() {
        nftables::gc(network, valid)?;
    }
    if crate::iptables::supported() {
        iptables::gc(network, valid, held)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    //! What the backends' tests share.
    use super::*;

    pub(super) fn owner() -> Owner<'static> {
        Owner {
            network: "mynet",
            ifname: "eth0",
            container_id: "c1",
        }
    }
}
