//! Port mappings (the portmap plugin's rules), laid out as the reference
//! does so that either implementation removes the other's. This module
//! holds what both backends share (the validated [`Mapping`]s and
//! [`PortMap`]) and picks the backend; the layouts are in `iptables.rs` and
//! `nftables.rs`. DEL and GC clean up on both backends, where they work.
//!
//! Only traffic addressed to the node itself is translated (the reference's
//! CVE-2025-67499 was DNAT of transit traffic).

mod iptables;
mod nftables;

use crate::error::FirewallError;
use crate::rule_names::chain_name_with_prefix;
use crate::script::{ChainName, Conditions};
use crate::{Backend, Family};
use ipnet::IpNet;
use std::net::IpAddr;

/// One mapping, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_ip: Option<IpAddr>,
}

/// Everything the rules depend on.
#[derive(Debug, Clone)]
pub struct PortMap<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    pub mappings: &'a [Mapping],
    pub snat: bool,
    pub mark_bit: u8,
    pub external_set_mark_chain: Option<&'a ChainName>,
    pub masq_all: bool,
    pub conditions_v4: &'a Conditions,
    pub conditions_v6: &'a Conditions,
}

impl PortMap<'_> {
    fn dnat_chain(&self) -> String {
        chain_name_with_prefix(self.network, self.container_id, "DN-")
    }

    fn mark(&self) -> String {
        let v = 1u32 << self.mark_bit;
        format!("{v:#x}/{v:#x}")
    }

    fn conditions(&self, family: Family) -> &Conditions {
        match family {
            Family::V4 => self.conditions_v4,
            Family::V6 => self.conditions_v6,
        }
    }

    /// The source address the masquerade rules match: any with `masqAll`,
    /// else `own` (the container's, as the backend writes it).
    fn masq_source(&self, family: Family, own: IpNet) -> IpNet {
        match (self.masq_all, family) {
            (false, _) => own,
            (true, Family::V4) => IpNet::V4(Default::default()),
            (true, Family::V6) => IpNet::V6(Default::default()),
        }
    }

    /// The mappings that apply to a container address of this family.
    fn applicable<'b>(&'b self, family: Family) -> impl Iterator<Item = &'b Mapping> + 'b {
        self.mappings
            .iter()
            .filter(move |m| m.host_ip.is_none_or(|ip| Family::of(ip) == family))
    }
}

fn ip_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// Sets up the mappings for the container's addresses (at most one IPv4
/// and one IPv6).
pub fn add(backend: Backend, pm: &PortMap<'_>, containers: &[IpNet]) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => iptables::add(pm, containers),
        Backend::Nftables => nftables::add(pm, containers),
    }
}

/// Removes a container's mappings from both backends (where they work),
/// found by the names the network and the container ID give them.
pub fn del(network: &str, container_id: &str) -> Result<(), FirewallError> {
    if crate::iptables::supported() {
        iptables::del(network, container_id)?;
    }
    if crate::nft::kernel_supported() {
        nftables::del(network, container_id)?;
    }
    Ok(())
}

/// Whether the container's mappings are in place (CHECK).
pub fn check(
    backend: Backend,
    pm: &PortMap<'_>,
    containers: &[IpNet],
) -> Result<(), FirewallError> {
    match backend {
        Backend::Iptables => iptables::check(pm, containers),
        Backend::Nftables => nftables::check(pm, containers),
    }
}

/// Removes the mappings of attachments of `network` whose container is
/// not in `valid`, on both backends.
pub fn gc(network: &str, valid: &[String]) -> Result<(), FirewallError> {
    if crate::iptables::supported() {
        iptables::gc(network, valid)?;
    }
    if crate::nft::kernel_supported() {
        nftables::gc(network, valid)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    //! What the backends' tests share.
    use super::*;

    pub(super) fn maps() -> Vec<Mapping> {
        vec![
            Mapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: None,
            },
            Mapping {
                host_port: 8053,
                container_port: 53,
                protocol: "udp".into(),
                host_ip: Some("203.0.113.1".parse().unwrap()),
            },
        ]
    }

    static NO_CONDITIONS: Conditions = Conditions::none();

    pub(super) fn pm(m: &[Mapping]) -> PortMap<'_> {
        PortMap {
            network: "net",
            container_id: "c1",
            mappings: m,
            snat: true,
            mark_bit: 13,
            external_set_mark_chain: None,
            masq_all: false,
            conditions_v4: &NO_CONDITIONS,
            conditions_v6: &NO_CONDITIONS,
        }
    }
}
