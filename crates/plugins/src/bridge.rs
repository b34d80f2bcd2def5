//! `bridge`: containers on a Linux bridge, each through a veth pair whose
//! host end is a bridge port; the bridge may hold the gateway address,
//! with optional masquerading, VLANs, hairpin/promiscuous modes, port
//! isolation and MAC spoof checking. Without IPAM (`ipam: {}`) it is
//! layer 2 only.

use crate::common::{
    configure_iface, create_veth_pair, delete_container_link, expect_addresses, format_mac,
    ipam_forward, ipam_type, kernel_err, masq_backend, open_netns, prev_addresses, requested_mac,
    valid_attachments, IpamLease,
};
use ipnet::IpNet;
use rcni_net::{Handle, LinkKind, LinkOptions, NetNs, PortVlan};
use rcni_netfilter::{masq, spoofcheck, Backend};
use rcni_skel::{CmdArgs, Command, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::{CniError, CniResult, Interface, Route};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

pub struct Bridge;

const DEFAULT_BRIDGE: &str = "cni0";
const MAX_VLAN: i64 = 4094;

#[derive(Deserialize)]
struct TrunkEntry {
    #[serde(rename = "minID", default)]
    min_id: Option<i64>,
    #[serde(rename = "maxID", default)]
    max_id: Option<i64>,
    #[serde(default)]
    id: Option<i64>,
}

#[derive(Deserialize, Default)]
struct BridgeConf {
    #[serde(rename = "bridge", default)]
    bridge: String,
    #[serde(rename = "isGateway", default)]
    is_gateway: bool,
    #[serde(rename = "isDefaultGateway", default)]
    is_default_gateway: bool,
    #[serde(rename = "forceAddress", default)]
    force_address: bool,
    #[serde(rename = "ipMasq", default)]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend", default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(rename = "hairpinMode", default)]
    hairpin_mode: bool,
    #[serde(rename = "promiscMode", default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(rename = "vlanTrunk", default)]
    vlan_trunk: Option<Vec<TrunkEntry>>,
    #[serde(rename = "preserveDefaultVlan", default)]
    preserve_default_vlan: bool,
    #[serde(rename = "macspoofchk", default)]
    mac_spoof_check: bool,
    #[serde(rename = "enabledad", default)]
    enable_dad: bool,
    #[serde(rename = "disableContainerInterface", default)]
    disable_container_interface: bool,
    #[serde(rename = "portIsolation", default)]
    port_isolation: bool,
}

/// The validated config.
struct Config {
    conf: PluginConf,
    own: BridgeConf,
    layer3: bool,
    trunk: Vec<u16>,
    mac: Option<[u8; 6]>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::invalid_config(msg)
}

fn check_vlan_id(v: i64, what: &str) -> Result<u16, CniError> {
    if v <= 0 || v > MAX_VLAN {
        return Err(invalid(format!(
            "incorrect trunk {what} parameter: {v} (must be between 1 and 4094)"
        )));
    }
    Ok(v as u16)
}

/// The VLAN IDs of `vlanTrunk`, sorted and unique.
fn collect_trunk(entries: &[TrunkEntry]) -> Result<Vec<u16>, CniError> {
    let mut out = Vec::new();
    for e in entries {
        match (e.min_id, e.max_id) {
            (Some(min), Some(max)) => {
                let (min, max) = (check_vlan_id(min, "minID")?, check_vlan_id(max, "maxID")?);
                if max < min {
                    return Err(invalid(
                        "vlanTrunk: minID is greater than maxID in trunk parameter",
                    ));
                }
                out.extend(min..=max);
            }
            (None, Some(_)) => return Err(invalid(
                "vlanTrunk: minID and maxID should be configured simultaneously, minID is missing",
            )),
            (Some(_), None) => return Err(invalid(
                "vlanTrunk: minID and maxID should be configured simultaneously, maxID is missing",
            )),
            (None, None) => {}
        }
        if let Some(id) = e.id {
            out.push(check_vlan_id(id, "id")?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn load(args: &CmdArgs) -> Result<Config, CniError> {
    let conf = args.conf()?;
    let mut own: BridgeConf = conf.plugin_fields()?;
    if own.bridge.is_empty() {
        own.bridge = DEFAULT_BRIDGE.to_string();
    }
    let layer3 = conf.ipam.as_ref().is_some_and(|i| !i.ipam_type.is_empty());
    if args.is_del() {
        // DEL uses none of what is checked below: an attachment made
        // with values rcni refuses (by the reference, say) still goes.
        return Ok(Config {
            conf,
            own,
            layer3,
            trunk: Vec::new(),
            mac: None,
        });
    }
    if own.vlan < 0 || own.vlan > MAX_VLAN {
        return Err(invalid(format!(
            "invalid VLAN ID {} (must be between 0 and 4094)",
            own.vlan
        )));
    }
    let trunk = collect_trunk(own.vlan_trunk.as_deref().unwrap_or_default())?;
    let mac = requested_mac(&conf, &args.args)?;
    if layer3 && own.disable_container_interface {
        return Err(invalid(
            "cannot use IPAM when DisableContainerInterface flag is set",
        ));
    }
    if own.is_default_gateway {
        own.is_gateway = true;
    }
    if own.hairpin_mode && own.promisc_mode {
        return Err(invalid(
            "cannot set hairpin mode and promiscuous mode at the same time",
        ));
    }
    Ok(Config {
        conf,
        own,
        layer3,
        trunk,
        mac,
    })
}

/// Creates the bridge if needed and brings it up; a link of that name
/// that is not a bridge is an error.
fn ensure_bridge(
    host: &mut Handle,
    own: &BridgeConf,
    vlan_filtering: bool,
) -> Result<rcni_net::Link, CniError> {
    let existing = host
        .link_by_name(&own.bridge)
        .map_err(kernel_err("look up the bridge"))?;
    if existing.is_none() {
        let kind = LinkKind::Bridge { vlan_filtering };
        let options = LinkOptions {
            mtu: (own.mtu != 0).then_some(own.mtu),
            ..LinkOptions::default()
        };
        match host.create_link(&own.bridge, &kind, &options) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => {
                return Err(CniError::internal(format!(
                    "could not add {:?}: {e}",
                    own.bridge
                )))
            }
        }
    }
    let br = host
        .link_by_name(&own.bridge)
        .map_err(kernel_err("look up the bridge"))?
        .ok_or_else(|| CniError::internal(format!("could not lookup {:?}", own.bridge)))?;
    if !matches!(br.kind, Some(LinkKind::Bridge { .. })) {
        return Err(invalid(format!(
            "{:?} already exists but is not a bridge",
            own.bridge
        )));
    }
    if own.promisc_mode {
        host.set_promisc(br.index, true)
            .map_err(kernel_err("set the bridge promiscuous"))?;
    }
    let _ = rcni_net::sysctl::set(&format!("net/ipv6/conf/{}/accept_ra", own.bridge), "0");
    host.set_up(br.index)
        .map_err(kernel_err("set the bridge up"))?;
    Ok(br)
}

/// Puts a host veth on the bridge with the port settings of the config.
fn attach_port(
    host: &mut Handle,
    port: u32,
    bridge: u32,
    own: &BridgeConf,
    trunk: &[u16],
) -> Result<(), CniError> {
    host.set_master(port, Some(bridge))
        .map_err(kernel_err("connect the veth to the bridge"))?;
    host.set_hairpin(port, own.hairpin_mode)
        .map_err(kernel_err("set hairpin mode"))?;
    host.set_isolated(port, own.port_isolation)
        .map_err(kernel_err("set port isolation"))?;
    let vlan = own.vlan as u16;
    if (vlan != 0 || !trunk.is_empty()) && !own.preserve_default_vlan {
        for v in host
            .bridge_vlans(port)
            .map_err(kernel_err("list the port's VLANs"))?
        {
            host.bridge_vlan_del(port, v.vid)
                .map_err(kernel_err("remove the default VLAN"))?;
        }
    }
    if vlan != 0 {
        host.bridge_vlan_add(
            port,
            PortVlan {
                vid: vlan,
                pvid: true,
                untagged: true,
            },
        )
        .map_err(kernel_err("set up the VLAN tag"))?;
    }
    for v in trunk {
        host.bridge_vlan_add(
            port,
            PortVlan {
                vid: *v,
                pvid: false,
                untagged: false,
            },
        )
        .map_err(kernel_err("set up the trunk VLANs"))?;
    }
    if vlan == 0 && !trunk.is_empty() {
        host.bridge_vlan_add(
            port,
            PortVlan {
                vid: 1,
                pvid: true,
                untagged: true,
            },
        )
        .map_err(kernel_err("set up the default native VLAN"))?;
    }
    Ok(())
}

/// Adds `gw` to `link`, as the reference's `ensureAddr`: an existing
/// different IPv4 address (or an overlapping IPv6 one) is an error unless
/// `forceAddress`, which replaces it.
fn ensure_address(
    host: &mut Handle,
    link: &rcni_net::Link,
    gw: IpNet,
    force: bool,
) -> Result<(), CniError> {
    let existing = host
        .addresses(Some(link.index))
        .map_err(kernel_err("list the bridge addresses"))?;
    for a in existing
        .iter()
        .filter(|a| a.net.addr().is_ipv4() == gw.addr().is_ipv4())
    {
        if a.net == gw {
            return Ok(());
        }
        let conflicts =
            gw.addr().is_ipv4() || a.net.contains(&gw.addr()) || gw.contains(&a.net.addr());
        if !conflicts || a.net.addr().is_ipv6() && a.scope != 0 {
            continue;
        }
        if force {
            host.delete_address(link.index, a.net)
                .map_err(kernel_err("remove the bridge's old address"))?;
        } else {
            return Err(CniError::internal(format!(
                "{:?} already has an IP address different from {gw}",
                link.name
            )));
        }
    }
    match host.add_address(link.index, gw) {
        Ok(()) => Ok(()),
        Err(e) if e.is_exists() => Ok(()),
        Err(e) => Err(CniError::internal(format!(
            "could not add IP address {gw} to {:?}: {e}",
            link.name
        ))),
    }
}

/// Gives each IPAM address a gateway (isGateway) and adds the default
/// routes (isDefaultGateway), as the reference's `calcGateways`; returns
/// the gateway addresses to put on the bridge.
fn gateways(result: &mut CniResult, own: &BridgeConf) -> Vec<IpNet> {
    let mut gws = Vec::new();
    let mut default_found = [false, false];
    for i in 0..result.ips.len() {
        let ip = &mut result.ips[i];
        ip.interface = Some(2);
        if ip.gateway.is_none() && own.is_gateway {
            ip.gateway = first_host(&ip.address);
        }
        let v4 = ip.address.addr().is_ipv4();
        let (address, gateway) = (ip.address, ip.gateway);
        let fam = usize::from(!v4);
        if own.is_default_gateway && !default_found[fam] {
            let default: IpNet = if v4 { "0.0.0.0/0" } else { "::/0" }
                .parse()
                .unwrap_or(address);
            if !result
                .routes
                .iter()
                .any(|r| r.gw.is_some() && r.dst == default)
            {
                result.routes.push(Route::new(default, gateway));
            }
            default_found[fam] = true;
        }
        if own.is_gateway {
            if let Some(gw) = gateway {
                if let Ok(net) = IpNet::new(gw, address.prefix_len()) {
                    gws.push(net);
                }
            }
        }
    }
    gws
}

/// The first address of `net`'s subnet (the reference's default gateway).
fn first_host(net: &IpNet) -> Option<IpAddr> {
    net.hosts()
        .next()
        .or_else(|| Some(net.network()))
        .map(|first| match (first, net.network()) {
            (IpAddr::V6(_), IpAddr::V6(n)) => IpAddr::V6((u128::from(n) + 1).into()),
            _ => first,
        })
}

/// The `<bridge>.<vlan>` veth that holds the gateway on a VLAN, created
/// on first use as a tagged port of the bridge.
fn ensure_vlan_gateway(
    host: &mut Handle,
    br: &rcni_net::Link,
    cfg: &Config,
) -> Result<rcni_net::Link, CniError> {
    let name = format!("{}.{}", br.name, cfg.own.vlan);
    if let Some(l) = host
        .link_by_name(&name)
        .map_err(kernel_err("look up the VLAN gateway"))?
    {
        return Ok(l);
    }
    let here = NetNs::current().map_err(kernel_err("open the host netns"))?;
    let peer = create_veth_pair(host, &here, &name, br.mtu, None)?;
    let port = host
        .link_by_name(&peer)
        .map_err(kernel_err("look up the VLAN gateway's peer"))?
        .ok_or_else(|| CniError::internal(format!("failed to lookup {peer:?}")))?;
    attach_port(
        host,
        port.index,
        br.index,
        &BridgeConf {
            vlan: cfg.own.vlan,
            preserve_default_vlan: cfg.own.preserve_default_vlan,
            ..BridgeConf::default()
        },
        &[],
    )?;
    host.set_up(port.index)
        .map_err(kernel_err("set the VLAN gateway's peer up"))?;
    let link = host
        .link_by_name(&name)
        .map_err(kernel_err("look up the VLAN gateway"))?
        .ok_or_else(|| CniError::internal(format!("failed to lookup {name:?}")))?;
    host.set_up(link.index)
        .map_err(kernel_err("set the VLAN gateway up"))?;
    Ok(link)
}

/// Waits (as the reference: 0, 50, 500, 1000, 1000 ms) for the host veth
/// to come up.
fn wait_port_up(host: &mut Handle, name: &str) -> Result<rcni_net::Link, CniError> {
    let mut last = None;
    for pause in [0u64, 50, 500, 1000, 1000] {
        std::thread::sleep(Duration::from_millis(pause));
        let link = host
            .link_by_name(name)
            .map_err(kernel_err("look up the host veth"))?
            .ok_or_else(|| CniError::internal(format!("failed to lookup {name:?}")))?;
        if link.oper_up {
            return Ok(link);
        }
        last = Some(link);
    }
    Err(CniError::internal(format!(
        "bridge port in error state: {}",
        last.map(|l| l.name).unwrap_or_default()
    )))
}

/// The ID the reference gives an attachment's spoof check chains.
fn unique_id(args: &CmdArgs) -> String {
    format!("{}-{}", args.container_id, args.ifname)
}

fn mac_string(link: &rcni_net::Link) -> String {
    link.mac.as_deref().map(format_mac).unwrap_or_default()
}

/// What ADD has done so far, undone in reverse when a later step fails.
/// The bridge is never undone, even when this call created it: by then a
/// concurrent ADD may have attached its container and its gateway address
/// to it (the reference never deletes it either).
#[derive(Default)]
struct Undo {
    host_veth: Option<String>,
    spoof_check: Option<String>,
    masq: bool,
}

impl Undo {
    fn run(&self, host: &mut Handle, owner: &masq::Owner<'_>) {
        if self.masq {
            let _ = masq::teardown(owner);
        }
        if let Some(id) = &self.spoof_check {
            let _ = spoofcheck::teardown(id);
        }
        if let Some(name) = &self.host_veth {
            if let Ok(Some(l)) = host.link_by_name(name) {
                let _ = host.delete_link(l.index);
            }
        }
    }
}

fn add(
    args: &CmdArgs,
    cfg: &Config,
    backend: Option<Backend>,
    undo: &mut Undo,
    host: &mut Handle,
) -> Result<CniResult, CniError> {
    let own = &cfg.own;
    let ns = open_netns(&args.netns)?
        .ok_or_else(|| CniError::internal(format!("failed to open netns {:?}", args.netns)))?;
    let mut ctr = Handle::new_in(&ns).map_err(kernel_err("open netlink in the container"))?;
    let vlan_filtering = own.vlan != 0 || own.vlan_trunk.is_some();
    let br = ensure_bridge(host, own, vlan_filtering)?;

    let host_name = create_veth_pair(host, &ns, &args.ifname, own.mtu, cfg.mac)?;
    undo.host_veth = Some(host_name.clone());
    let host_veth = host
        .link_by_name(&host_name)
        .map_err(kernel_err("look up the host veth"))?
        .ok_or_else(|| CniError::internal(format!("failed to lookup {host_name:?}")))?;
    attach_port(host, host_veth.index, br.index, own, &cfg.trunk)?;
    host.set_up(host_veth.index)
        .map_err(kernel_err("set the host veth up"))?;
    let _ = rcni_net::sysctl::set(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
    let ctr_link = ctr
        .link_by_name(&args.ifname)
        .map_err(kernel_err("look up the container veth"))?
        .ok_or_else(|| CniError::internal(format!("failed to look up {:?}", args.ifname)))?;

    let mut result = CniResult {
        cni_version: cfg.conf.cni_version.clone(),
        interfaces: vec![
            Interface {
                name: br.name.clone(),
                mac: mac_string(&br),
                ..Interface::default()
            },
            Interface {
                name: host_name.clone(),
                mac: mac_string(&host_veth),
                ..Interface::default()
            },
            Interface {
                name: args.ifname.clone(),
                mac: mac_string(&ctr_link),
                sandbox: args.netns.clone(),
                ..Interface::default()
            },
        ],
        ..CniResult::default()
    };

    if own.mac_spoof_check {
        let id = unique_id(args);
        spoofcheck::setup(&host_name, &mac_string(&ctr_link), &id)
            .map_err(|e| CniError::internal(format!("failed to setup spoof-check: {e}")))?;
        undo.spoof_check = Some(id);
    }

    if cfg.layer3 {
        let (lease, ipam) = IpamLease::acquire(&cfg.conf, args)?;
        if ipam.ips.is_empty() {
            return Err(CniError::internal("IPAM plugin returned missing IP config"));
        }
        result.ips = ipam.ips;
        result.routes = ipam.routes;
        result.dns = ipam.dns;
        let gws = gateways(&mut result, own);
        let ifname = args.ifname.clone();
        let dad = own.enable_dad;
        ns.run(move || {
            let set = |k: String, v: &str| {
                let _ = rcni_net::sysctl::set(&k, v);
            };
            if dad {
                set(format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
                set(format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
            } else {
                set(format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
            }
            set(format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
        })
        .map_err(kernel_err("enter the container netns"))?;
        configure_iface(&mut ctr, &ns, &args.ifname, &result)?;

        if own.is_gateway {
            let mut vlan_iface_added = false;
            for gw in &gws {
                let target = if own.vlan != 0 {
                    let l = ensure_vlan_gateway(host, &br, cfg)?;
                    if !vlan_iface_added {
                        result.interfaces.push(Interface {
                            name: l.name.clone(),
                            mac: mac_string(&l),
                            ..Interface::default()
                        });
                        vlan_iface_added = true;
                    }
                    l
                } else {
                    br.clone()
                };
                ensure_address(host, &target, *gw, own.force_address)?;
            }
            let forwarding = CniResult {
                ips: result.ips.clone(),
                ..CniResult::default()
            };
            crate::common::enable_forwarding(&forwarding)?;
        }
        if let Some(backend) = backend {
            let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
            let owner = masq::Owner {
                network: &cfg.conf.name,
                ifname: &args.ifname,
                container_id: &args.container_id,
            };
            undo.masq = true;
            masq::setup(backend, &ips, &owner).map_err(|e| {
                CniError::internal(format!("failed to set up IP masquerading: {e}"))
            })?;
        }
        lease.keep();
    } else if !own.disable_container_interface {
        ctr.set_up(ctr_link.index)
            .map_err(kernel_err("set the container interface up"))?;
    }

    if !own.disable_container_interface {
        let up = wait_port_up(host, &host_name)?;
        result.interfaces[1].mac = mac_string(&up);
    }
    if let Some(br) = host
        .link_by_name(&own.bridge)
        .map_err(kernel_err("look up the bridge"))?
    {
        result.interfaces[0].mac = mac_string(&br);
    }
    if let Some(dns) = cfg.conf.dns.clone().filter(|d| !d.is_empty()) {
        result.dns = dns;
    }
    Ok(result)
}

impl Plugin for Bridge {
    fn name(&self) -> &str {
        "bridge"
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let cfg = load(args)?;
        let backend = (cfg.own.ip_masq && cfg.layer3)
            .then(|| masq_backend(cfg.own.ip_masq_backend.as_deref()))
            .transpose()?;
        let mut host = Handle::new().map_err(kernel_err("open netlink"))?;
        let mut undo = Undo::default();
        match add(args, &cfg, backend, &mut undo, &mut host) {
            Ok(r) => Ok(r),
            Err(e) => {
                let owner = masq::Owner {
                    network: &cfg.conf.name,
                    ifname: &args.ifname,
                    container_id: &args.container_id,
                };
                undo.run(&mut host, &owner);
                Err(e)
            }
        }
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        let ipam_del = || {
            if cfg.layer3 {
                ipam_forward(Command::Del, &cfg.conf, args)
            } else {
                Ok(())
            }
        };
        // Found by name: removed even when the netns is gone (the
        // reference leaks the rules then).
        if cfg.layer3 && cfg.own.ip_masq {
            let owner = masq::Owner {
                network: &cfg.conf.name,
                ifname: &args.ifname,
                container_id: &args.container_id,
            };
            masq::teardown_known(&owner, &prev_addresses(&cfg.conf, &args.ifname)).map_err(
                |e| CniError::internal(format!("failed to tear down IP masquerading: {e}")),
            )?;
        }
        if cfg.own.mac_spoof_check {
            if let Err(e) = spoofcheck::teardown(&unique_id(args)) {
                eprintln!("bridge: spoof-check teardown: {e}");
            }
        }
        delete_container_link(&args.netns, &args.ifname)?;
        ipam_del()
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        if cfg.layer3 {
            ipam_forward(Command::Check, &cfg.conf, args)?;
        }
        let prev = cfg
            .conf
            .prev_result()?
            .ok_or_else(|| invalid("Required prevResult missing"))?;
        let ns = open_netns(&args.netns)?
            .ok_or_else(|| CniError::internal(format!("failed to open netns {:?}", args.netns)))?;
        let mut host = Handle::new().map_err(kernel_err("open netlink"))?;
        let mut ctr = Handle::new_in(&ns).map_err(kernel_err("open netlink in the container"))?;
        let br = host
            .link_by_name(&cfg.own.bridge)
            .map_err(kernel_err("look up the bridge"))?
            .filter(|l| matches!(l.kind, Some(LinkKind::Bridge { .. })))
            .ok_or_else(|| {
                CniError::internal(format!(
                    "Error: Bridge interface {} not found",
                    cfg.own.bridge
                ))
            })?;
        let ctr_if = prev
            .interfaces
            .iter()
            .find(|i| i.name == args.ifname && i.sandbox == args.netns)
            .ok_or_else(|| {
                CniError::internal(format!(
                    "Sandbox in prevResult doesn't match configured netns: {}",
                    args.netns
                ))
            })?;
        let link = ctr
            .link_by_name(&ctr_if.name)
            .map_err(kernel_err("look up the container veth"))?
            .filter(|l| l.kind == Some(LinkKind::Veth))
            .ok_or_else(|| {
                CniError::internal(format!(
                    "Error: Container interface {} not found or not a veth",
                    ctr_if.name
                ))
            })?;
        if !ctr_if.mac.is_empty() && !ctr_if.mac.eq_ignore_ascii_case(&mac_string(&link)) {
            return Err(CniError::internal(format!(
                "Interface {} Mac doesn't match: {}",
                ctr_if.name, ctr_if.mac
            )));
        }
        let peer = link
            .link
            .ok_or_else(|| CniError::internal("the container veth has no peer"))?;
        let host_veth = host
            .link_by_index(peer)
            .map_err(kernel_err("look up the container veth's peer"))?
            .ok_or_else(|| CniError::internal("the container veth's peer is gone"))?;
        if host_veth.master != Some(br.index) {
            return Err(CniError::internal(format!(
                "{} is not connected to bridge {}",
                host_veth.name, br.name
            )));
        }
        expect_addresses(&mut ctr, link.index, &args.ifname, &prev.ips)?;
        Ok(())
    }

    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        if cfg.layer3 {
            ipam_forward(Command::Gc, &cfg.conf, args)?;
            if cfg.own.ip_masq {
                let valid = valid_attachments(&cfg.conf)?;
                let held = crate::host_local::held_addresses(&cfg.conf);
                masq::gc(&cfg.conf.name, &valid, held.as_deref())
                    .map_err(|e| CniError::internal(format!("IP masquerading GC: {e}")))?;
            }
        }
        Ok(())
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        if cfg.layer3 {
            ipam_type(&cfg.conf)?;
            ipam_forward(Command::Status, &cfg.conf, args)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trunk(json: &str) -> Result<Vec<u16>, CniError> {
        let entries: Vec<TrunkEntry> = serde_json::from_str(json).unwrap();
        collect_trunk(&entries)
    }

    #[test]
    fn trunks() {
        assert_eq!(
            trunk(r#"[{"id":5},{"minID":10,"maxID":12},{"id":11}]"#).unwrap(),
            [5, 10, 11, 12]
        );
        assert!(trunk(r#"[{"id":4095}]"#).is_err());
        assert!(trunk(r#"[{"minID":10}]"#)
            .unwrap_err()
            .msg
            .contains("maxID is missing"));
        assert!(trunk(r#"[{"minID":12,"maxID":10}]"#).is_err());
    }

    #[test]
    fn first_hosts() {
        assert_eq!(
            first_host(&"10.1.2.7/24".parse().unwrap()),
            Some("10.1.2.1".parse().unwrap())
        );
        assert_eq!(
            first_host(&"fd00::7/64".parse().unwrap()),
            Some("fd00::1".parse().unwrap())
        );
    }
}
