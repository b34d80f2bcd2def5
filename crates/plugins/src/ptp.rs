//! `ptp`: a veth pair between the host and the container, with the
//! container's addresses from IPAM, the gateway address on the host end,
//! and /32 (/128) routes in both directions instead of a shared L2 segment.

use crate::attachments::{prev_addresses, valid_attachments};
use crate::container::{self, handle_in, require_netns};
use crate::error::{Context, Teardown};
use crate::iface::{self, enable_forwarding};
use crate::ipam::{ipam_forward, IpamLease};
use crate::{masquerade, veth};
use ipnet::IpNet;
use rcni_net::{Handle, NetNs, Route as KernelRoute, RT_SCOPE_LINK};
use rcni_netfilter::masq;
use rcni_skel::{CmdArgs, Command, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, Interface};
use serde::Deserialize;
use std::net::IpAddr;

pub struct Ptp;

#[derive(Deserialize, Default)]
struct PtpConf {
    #[serde(rename = "ipMasq", default)]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend", default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: u32,
}

fn load(args: &CmdArgs) -> Result<(PluginConf, PtpConf), CniError> {
    let conf = args.conf()?;
    let own: PtpConf = conf.plugin_fields()?;
    Ok((conf, own))
}

fn host_prefix(ip: IpAddr) -> IpNet {
    IpNet::new(ip, if ip.is_ipv4() { 32 } else { 128 }).unwrap_or_else(|_| IpNet::from(ip))
}

/// The container side: addresses and IPAM routes, then the reference's
/// routing: drop the kernel's subnet route, reach the gateway as a /32
/// link route, and the subnet via the gateway.
fn setup_container(
    nl: &mut Handle,
    ns: &NetNs,
    ifname: &str,
    index: u32,
    result: &CniResult,
) -> Result<(), CniError> {
    iface::configure_link(nl, ns, ifname, index, result)?;
    for ip in &result.ips {
        let Some(gw) = ip.gateway else { continue };
        let subnet = ip.address.trunc();
        let mut auto = KernelRoute::new(subnet);
        auto.oif = Some(index);
        match nl.delete_route(&auto) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).context(format!("failed to delete route {subnet}")),
        }
        let mut to_gw = KernelRoute::new(host_prefix(gw));
        to_gw.oif = Some(index);
        to_gw.scope = RT_SCOPE_LINK;
        to_gw.prefsrc = Some(ip.address.addr());
        let mut via_gw = KernelRoute::new(subnet);
        via_gw.oif = Some(index);
        via_gw.gateway = Some(gw);
        via_gw.prefsrc = Some(ip.address.addr());
        for route in [to_gw, via_gw] {
            nl.add_route(&route)
                .context(format!("failed to add route {}", route.dst))?;
        }
    }
    Ok(())
}

/// The host side: the gateway address on the host veth and a host route
/// to each container address.
fn setup_host(host: &mut Handle, host_index: u32, result: &CniResult) -> Result<(), CniError> {
    for ip in &result.ips {
        let Some(gw) = ip.gateway else { continue };
        host.add_address(host_index, host_prefix(gw))
            .context(format!("failed to add IP addr {gw} to veth"))?;
        let mut route = KernelRoute::new(host_prefix(ip.address.addr()));
        route.oif = Some(host_index);
        route.scope = RT_SCOPE_LINK;
        match host.add_route(&route) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(e).context("failed to add route on host"),
        }
    }
    Ok(())
}

/// ptp's keys, as `rcni help ptp` prints them.
pub const SCHEMA: Schema = Schema {
    about: "links the container to the host by a veth pair, routed (no shared L2 segment)",
    keys: &[
        masquerade::IP_MASQ_KEY,
        masquerade::IP_MASQ_BACKEND_KEY,
        Key {
            name: "mtu",
            ty: "uint32",
            default: "0 (the kernel's)",
            meaning: "MTU of the veth pair",
        },
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "ptpnet", "type": "ptp", "ipMasq": true,
  "ipam": {"type": "host-local", "subnet": "10.22.0.0/24"}}"#,
    check: |conf| {
        let (_, own) = load(&crate::offline::add_call(conf))?;
        crate::offline::masq_backend(own.ip_masq_backend.as_deref())
    },
};

impl Plugin for Ptp {
    fn name(&self) -> &str {
        "ptp"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, own) = load(args)?;
        let backend = own
            .ip_masq
            .then(|| masquerade::backend(own.ip_masq_backend.as_deref()))
            .transpose()?;
        let owner = masquerade::owner(&conf.name, args);
        let ns = require_netns(args)?;
        let mut host = Handle::new().context("open netlink")?;
        let mut ctr = handle_in(&ns)?;

        let (lease, mut result) = IpamLease::acquire(&conf, args)?;
        if result.ips.is_empty() {
            return Err(fail!("IPAM plugin returned missing IP config"));
        }
        if let Some(ip) = result.ips.iter().find(|ip| ip.gateway.is_none()) {
            return Err(invalid!("ptp needs a gateway from IPAM for {}", ip.address));
        }
        enable_forwarding(&mut host, &result)?;

        let host_name = veth::create_pair(&mut host, &ns, &args.ifname, own.mtu, None)?;
        // Deleting the host end removes the pair.
        let pair = veth::undo_host_end(host_name.clone());
        let host_link = host
            .find_link(&host_name)
            .context("look up the host veth")?;
        host.set_up(host_link.index)
            .context("set the host veth up")?;
        let _ = rcni_net::sysctl::set(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
        let ctr_link = ctr
            .find_link(&args.ifname)
            .context("look up the container veth")?;
        result.interfaces = vec![
            Interface {
                name: host_name.clone(),
                mac: host_link.mac_string(),
                ..Interface::default()
            },
            Interface {
                name: args.ifname.clone(),
                mac: ctr_link.mac_string(),
                sandbox: args.netns.clone(),
                ..Interface::default()
            },
        ];
        for ip in &mut result.ips {
            ip.interface = Some(1);
        }
        setup_container(&mut ctr, &ns, &args.ifname, ctr_link.index, &result)?;
        setup_host(&mut host, host_link.index, &result)?;
        let masq_rules = match backend {
            Some(backend) => {
                let rules = masquerade::undo_rules(&owner);
                let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
                masq::setup(backend, &ips, &owner).context("failed to set up IP masquerading")?;
                Some(rules)
            }
            None => None,
        };
        if let Some(dns) = conf.dns.clone().filter(|d| !d.is_empty()) {
            result.dns = dns;
        }
        if let Some(rules) = masq_rules {
            rules.keep();
        }
        pair.keep();
        lease.keep();
        result.cni_version = conf.cni_version.clone();
        Ok(result)
    }

    /// Link, then address, and alongside them the masquerading, each
    /// whatever the others did.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, own) = load(args)?;
        let mut teardown = Teardown::new("ptp");
        // The rules are found by name, so they go even when the netns is
        // already gone (the reference leaks them then).
        let firewall = || {
            if !own.ip_masq {
                return Ok(());
            }
            let owner = masquerade::owner(&conf.name, args);
            masq::teardown_known(&owner, &prev_addresses(&conf, &args.ifname))
                .context("failed to tear down IP masquerading")
        };
        teardown.alongside(firewall, |teardown| {
            teardown.step(container::delete_link(&args.netns, &args.ifname));
            teardown.step(ipam_forward(Command::Del, &conf, args));
        });
        teardown.finish()
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, _) = load(args)?;
        crate::container_link::check("ptp", &conf, args, Some("veth"), |_| Ok(()))
    }

    /// Forwards GC to IPAM and drops the masquerading of attachments the
    /// runtime no longer knows.
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, own) = load(args)?;
        ipam_forward(Command::Gc, &conf, args)?;
        if own.ip_masq {
            let valid = valid_attachments(&conf)?;
            let held = crate::host_local::held_addresses(&conf);
            masq::gc(&conf.name, &valid, held.as_deref()).context("IP masquerading GC")?;
        }
        Ok(())
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        ipam_forward(Command::Status, &conf, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<PtpConf>(), Vec::<String>::new());
    }
}
