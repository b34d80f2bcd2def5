//! `ptp`: a veth pair between the host and the container, with the
//! container's addresses from IPAM, the gateway address on the host end,
//! and /32 (/128) routes in both directions instead of a shared L2 segment.

use crate::common::{
    configure_iface, create_veth_pair, delete_container_link, enable_forwarding, format_mac,
    ipam_forward, kernel_err, masq_backend, open_netns, prev_addresses, valid_attachments,
    IpamLease,
};
use ipnet::IpNet;
use rcni_net::{Handle, NetNs, Route as KernelRoute};
use rcni_netfilter::masq;
use rcni_skel::{CmdArgs, Command, Plugin};
use rcni_spec::config::PluginConf;
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

const RT_SCOPE_LINK: u8 = 253;

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
    result: &CniResult,
) -> Result<(), CniError> {
    configure_iface(nl, ns, ifname, result)?;
    let link = nl
        .link_by_name(ifname)
        .map_err(kernel_err("look up the container veth"))?
        .ok_or_else(|| CniError::internal(format!("failed to look up {ifname:?}")))?;
    for ip in &result.ips {
        let Some(gw) = ip.gateway else { continue };
        let subnet = ip.address.trunc();
        let mut auto = KernelRoute::new(subnet);
        auto.oif = Some(link.index);
        match nl.delete_route(&auto) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(CniError::internal(format!(
                    "failed to delete route {subnet}: {e}"
                )))
            }
        }
        let mut to_gw = KernelRoute::new(host_prefix(gw));
        to_gw.oif = Some(link.index);
        to_gw.scope = RT_SCOPE_LINK;
        to_gw.prefsrc = Some(ip.address.addr());
        let mut via_gw = KernelRoute::new(subnet);
        via_gw.oif = Some(link.index);
        via_gw.gateway = Some(gw);
        via_gw.prefsrc = Some(ip.address.addr());
        for route in [to_gw, via_gw] {
            nl.add_route(&route).map_err(|e| {
                CniError::internal(format!("failed to add route {}: {e}", route.dst))
            })?;
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
            .map_err(|e| CniError::internal(format!("failed to add IP addr {gw} to veth: {e}")))?;
        let mut route = KernelRoute::new(host_prefix(ip.address.addr()));
        route.oif = Some(host_index);
        route.scope = RT_SCOPE_LINK;
        match host.add_route(&route) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => {
                return Err(CniError::internal(format!(
                    "failed to add route on host: {e}"
                )))
            }
        }
    }
    Ok(())
}

impl Plugin for Ptp {
    fn name(&self) -> &str {
        "ptp"
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, own) = load(args)?;
        let backend = own
            .ip_masq
            .then(|| masq_backend(own.ip_masq_backend.as_deref()))
            .transpose()?;
        let owner = masq::Owner {
            network: &conf.name,
            ifname: &args.ifname,
            container_id: &args.container_id,
        };
        let ns = open_netns(&args.netns)?
            .ok_or_else(|| CniError::internal(format!("failed to open netns {:?}", args.netns)))?;
        let mut host = Handle::new().map_err(kernel_err("open netlink"))?;
        let mut ctr = Handle::new_in(&ns).map_err(kernel_err("open netlink in the container"))?;

        let (lease, mut result) = IpamLease::acquire(&conf, args)?;
        if result.ips.is_empty() {
            return Err(CniError::internal("IPAM plugin returned missing IP config"));
        }
        if let Some(ip) = result.ips.iter().find(|ip| ip.gateway.is_none()) {
            return Err(CniError::invalid_config(format!(
                "ptp needs a gateway from IPAM for {}",
                ip.address
            )));
        }
        enable_forwarding(&result)?;

        let host_name = create_veth_pair(&mut host, &ns, &args.ifname, own.mtu, None)?;
        // From here on, deleting the host end removes the pair.
        let undo_veth = |host: &mut Handle| {
            if let Ok(Some(l)) = host.link_by_name(&host_name) {
                let _ = host.delete_link(l.index);
            }
        };
        let attached = (|| {
            let host_link = host
                .link_by_name(&host_name)
                .map_err(kernel_err("look up the host veth"))?
                .ok_or_else(|| CniError::internal(format!("failed to lookup {host_name:?}")))?;
            host.set_up(host_link.index)
                .map_err(kernel_err("set the host veth up"))?;
            let _ = rcni_net::sysctl::set(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
            let ctr_link = ctr
                .link_by_name(&args.ifname)
                .map_err(kernel_err("look up the container veth"))?
                .ok_or_else(|| {
                    CniError::internal(format!("failed to look up {:?}", args.ifname))
                })?;
            result.interfaces = vec![
                Interface {
                    name: host_name.clone(),
                    mac: host_link.mac.as_deref().map(format_mac).unwrap_or_default(),
                    ..Interface::default()
                },
                Interface {
                    name: args.ifname.clone(),
                    mac: ctr_link.mac.as_deref().map(format_mac).unwrap_or_default(),
                    sandbox: args.netns.clone(),
                    ..Interface::default()
                },
            ];
            for ip in &mut result.ips {
                ip.interface = Some(1);
            }
            setup_container(&mut ctr, &ns, &args.ifname, &result)?;
            setup_host(&mut host, host_link.index, &result)?;
            if let Some(backend) = backend {
                let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
                masq::setup(backend, &ips, &owner).map_err(|e| {
                    let _ = masq::teardown(&owner);
                    CniError::internal(format!("failed to set up IP masquerading: {e}"))
                })?;
            }
            Ok(())
        })();
        if let Err(e) = attached {
            undo_veth(&mut host);
            return Err(e);
        }
        if let Some(dns) = conf.dns.clone().filter(|d| !d.is_empty()) {
            result.dns = dns;
        }
        lease.keep();
        result.cni_version = conf.cni_version.clone();
        Ok(result)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, own) = load(args)?;
        ipam_forward(Command::Del, &conf, args)?;
        // The rules are found by name, so they go even when the netns is
        // already gone (the reference leaks them then).
        if own.ip_masq {
            let owner = masq::Owner {
                network: &conf.name,
                ifname: &args.ifname,
                container_id: &args.container_id,
            };
            masq::teardown_known(&owner, &prev_addresses(&conf, &args.ifname)).map_err(|e| {
                CniError::internal(format!("failed to tear down IP masquerading: {e}"))
            })?;
        }
        delete_container_link(&args.netns, &args.ifname)
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
            masq::gc(&conf.name, &valid, held.as_deref())
                .map_err(|e| CniError::internal(format!("IP masquerading GC: {e}")))?;
        }
        Ok(())
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        ipam_forward(Command::Status, &conf, args)
    }
}
