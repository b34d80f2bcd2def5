//! `bridge`: containers on a Linux bridge, each through a veth pair whose
//! host end is a bridge port; the bridge may hold the gateway address,
//! with optional masquerading, VLANs, hairpin/promiscuous modes, port
//! isolation and MAC spoof checking. Without IPAM (`ipam: {}`) it is
//! layer 2 only.

use crate::attachments::{prev_addresses, valid_attachments};
use crate::container::{self, handle_in, require_netns};
use crate::error::{Context, Teardown};
use crate::iface::{self, enable_forwarding, expect_addresses};
use crate::ipam::{forward_if_any, has_ipam, ipam_forward, IpamLease};
use crate::mac::requested_mac;
use crate::undo::Undo;
use crate::{masquerade, veth};
use ipnet::IpNet;
use rcni_net::{Handle, Ipv4Conf, Link, LinkKind, LinkOptions, NetNs, PortVlan};
use rcni_netfilter::{masq, spoofcheck, Backend};
use rcni_skel::{CmdArgs, Command, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
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

fn check_vlan_id(v: i64, what: &str) -> Result<u16, CniError> {
    if v <= 0 || v > MAX_VLAN {
        return Err(invalid!(
            "incorrect trunk {what} parameter: {v} (must be between 1 and 4094)"
        ));
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
                    return Err(CniError::invalid_config(
                        "vlanTrunk: minID is greater than maxID in trunk parameter",
                    ));
                }
                out.extend(min..=max);
            }
            (None, Some(_)) => return Err(CniError::invalid_config(
                "vlanTrunk: minID and maxID should be configured simultaneously, minID is missing",
            )),
            (Some(_), None) => return Err(CniError::invalid_config(
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
    let layer3 = has_ipam(&conf);
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
        return Err(invalid!(
            "invalid VLAN ID {} (must be between 0 and 4094)",
            own.vlan
        ));
    }
    let trunk = collect_trunk(own.vlan_trunk.as_deref().unwrap_or_default())?;
    let mac = requested_mac(&conf, &args.args)?;
    if layer3 && own.disable_container_interface {
        return Err(CniError::invalid_config(
            "cannot use IPAM when DisableContainerInterface flag is set",
        ));
    }
    if own.is_default_gateway {
        own.is_gateway = true;
    }
    if own.hairpin_mode && own.promisc_mode {
        return Err(CniError::invalid_config(
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
) -> Result<Link, CniError> {
    let existing = host
        .link_by_name(&own.bridge)
        .context("look up the bridge")?;
    if existing.is_none() {
        let kind = LinkKind::Bridge { vlan_filtering };
        let options = LinkOptions {
            mtu: (own.mtu != 0).then_some(own.mtu),
            ..LinkOptions::default()
        };
        match host.create_link(&own.bridge, &kind, &options) {
            Err(e) if !e.is_exists() => {
                // reference text
                return Err(e).context(format!("could not add {:?}", own.bridge));
            }
            _ => {}
        }
    }
    // reference text
    let br = host
        .find_link(&own.bridge)
        .context(format!("could not lookup {:?}", own.bridge))?;
    if !matches!(br.kind, Some(LinkKind::Bridge { .. })) {
        return Err(invalid!(
            "{:?} already exists but is not a bridge",
            own.bridge
        ));
    }
    if own.promisc_mode {
        host.set_promisc(br.index, true)
            .context("set the bridge promiscuous")?;
    }
    let _ = rcni_net::sysctl::set(&format!("net/ipv6/conf/{}/accept_ra", own.bridge), "0");
    host.set_up(br.index).context("set the bridge up")?;
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
        .context("connect the veth to the bridge")?;
    host.set_hairpin(port, own.hairpin_mode)
        .context("set hairpin mode")?;
    host.set_isolated(port, own.port_isolation)
        .context("set port isolation")?;
    let vlan = own.vlan as u16;
    if (vlan != 0 || !trunk.is_empty()) && !own.preserve_default_vlan {
        for v in host.bridge_vlans(port).context("list the port's VLANs")? {
            host.bridge_vlan_del(port, v.vid)
                .context("remove the default VLAN")?;
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
        .context("set up the VLAN tag")?;
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
        .context("set up the trunk VLANs")?;
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
        .context("set up the default native VLAN")?;
    }
    Ok(())
}

/// What adding a gateway address to the bridge takes, as the reference's
/// `ensureAddr` decides it.
#[derive(Debug, PartialEq, Eq)]
struct AddressPlan {
    /// Existing addresses to remove first (only with `forceAddress`).
    remove: Vec<IpNet>,
    /// False when the bridge already has the address.
    add: bool,
}

/// Plans adding `gw` to a bridge that has `existing` (address, scope):
/// an existing different IPv4 address, or an overlapping global IPv6 one,
/// conflicts; `force` replaces it, otherwise it is returned as the error.
fn plan_gateway_address(
    existing: &[(IpNet, u8)],
    gw: IpNet,
    force: bool,
) -> Result<AddressPlan, IpNet> {
    let mut remove = Vec::new();
    for (net, scope) in existing
        .iter()
        .filter(|(net, _)| net.addr().is_ipv4() == gw.addr().is_ipv4())
    {
        if *net == gw {
            return Ok(AddressPlan { remove, add: false });
        }
        let conflicts = gw.addr().is_ipv4() || net.contains(&gw.addr()) || gw.contains(&net.addr());
        if !conflicts || net.addr().is_ipv6() && *scope != 0 {
            continue;
        }
        if !force {
            return Err(*net);
        }
        remove.push(*net);
    }
    Ok(AddressPlan { remove, add: true })
}

/// Adds `gw` to `link` by [`plan_gateway_address`].
fn ensure_address(host: &mut Handle, link: &Link, gw: IpNet, force: bool) -> Result<(), CniError> {
    let existing: Vec<(IpNet, u8)> = host
        .addresses_like(link.index, gw.addr())
        .context("list the bridge addresses")?
        .into_iter()
        .map(|a| (a.net, a.scope))
        .collect();
    let Ok(plan) = plan_gateway_address(&existing, gw, force) else {
        // reference text
        return Err(fail!(
            "{:?} already has an IP address different from {gw}",
            link.name
        ));
    };
    for old in plan.remove {
        host.delete_address(link.index, old)
            .context("remove the bridge's old address")?;
    }
    if plan.add {
        match host.add_address(link.index, gw) {
            // reference text
            Err(e) if !e.is_exists() => {
                return Err(e).context(format!("could not add IP address {gw} to {:?}", link.name))
            }
            _ => {}
        }
    }
    Ok(())
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
fn ensure_vlan_gateway(host: &mut Handle, br: &Link, cfg: &Config) -> Result<Link, CniError> {
    let name = format!("{}.{}", br.name, cfg.own.vlan);
    if let Some(l) = host
        .link_by_name(&name)
        .context("look up the VLAN gateway")?
    {
        return Ok(l);
    }
    let here = NetNs::current().context("open the host netns")?;
    let peer = veth::create_pair(host, &here, &name, br.mtu, None)?;
    // reference text
    let port = host
        .find_link(&peer)
        .context(format!("failed to lookup {peer:?}"))?;
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
        .context("set the VLAN gateway's peer up")?;
    // reference text
    let link = host
        .find_link(&name)
        .context(format!("failed to lookup {name:?}"))?;
    host.set_up(link.index).context("set the VLAN gateway up")?;
    Ok(link)
}

/// Waits (as the reference: 0, 50, 500, 1000, 1000 ms) for the host veth
/// to come up.
fn wait_port_up(host: &mut Handle, name: &str) -> Result<Link, CniError> {
    let mut last = None;
    for pause in [0u64, 50, 500, 1000, 1000] {
        std::thread::sleep(Duration::from_millis(pause));
        // reference text
        let link = host
            .find_link(name)
            .context(format!("failed to lookup {name:?}"))?;
        if link.oper_up {
            return Ok(link);
        }
        last = Some(link);
    }
    Err(fail!(
        "bridge port in error state: {}",
        last.map(|l| l.name).unwrap_or_default()
    ))
}

/// The ID the reference gives an attachment's spoof check chains.
fn unique_id(args: &CmdArgs) -> String {
    format!("{}-{}", args.container_id, args.ifname)
}

/// ADD. Each step's undo is a guard dropped when a later step fails:
/// the host veth (which takes the bridge port and the container end with
/// it), the spoof check, the masquerading, the IPAM lease. The bridge is
/// never undone, even when this call created it: by then a concurrent ADD
/// may have attached its container and its gateway address to it (the
/// reference never deletes it either).
fn add(args: &CmdArgs, cfg: &Config, backend: Option<Backend>) -> Result<CniResult, CniError> {
    let own = &cfg.own;
    let ns = require_netns(args)?;
    let mut host = Handle::new().context("open netlink")?;
    let mut ctr = handle_in(&ns)?;
    let vlan_filtering = own.vlan != 0 || own.vlan_trunk.is_some();
    let br = ensure_bridge(&mut host, own, vlan_filtering)?;

    let host_name = veth::create_pair(&mut host, &ns, &args.ifname, own.mtu, cfg.mac)?;
    let port = veth::undo_host_end(host_name.clone());
    // reference text
    let host_veth = host
        .find_link(&host_name)
        .context(format!("failed to lookup {host_name:?}"))?;
    attach_port(&mut host, host_veth.index, br.index, own, &cfg.trunk)?;
    host.set_up(host_veth.index)
        .context("set the host veth up")?;
    let _ = rcni_net::sysctl::set(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
    let ctr_link = ctr
        .find_link(&args.ifname)
        .context("look up the container veth")?;

    let mut result = CniResult {
        cni_version: cfg.conf.cni_version.clone(),
        interfaces: vec![
            Interface {
                name: br.name.clone(),
                mac: br.mac_string(),
                ..Interface::default()
            },
            Interface {
                name: host_name.clone(),
                mac: host_veth.mac_string(),
                ..Interface::default()
            },
            Interface {
                name: args.ifname.clone(),
                mac: ctr_link.mac_string(),
                sandbox: args.netns.clone(),
                ..Interface::default()
            },
        ],
        ..CniResult::default()
    };

    let spoof_check = if own.mac_spoof_check {
        let id = unique_id(args);
        spoofcheck::setup(&host_name, &ctr_link.mac_string(), &id)
            .context("failed to setup spoof-check")?;
        Some(Undo::new(move || {
            let _ = spoofcheck::teardown(&id);
        }))
    } else {
        None
    };

    let owner = masquerade::owner(&cfg.conf.name, args);
    let mut lease = None;
    let mut masq_rules = None;
    if cfg.layer3 {
        let (ipam_lease, ipam) = IpamLease::acquire(&cfg.conf, args)?;
        lease = Some(ipam_lease);
        if ipam.ips.is_empty() {
            return Err(fail!("IPAM plugin returned missing IP config"));
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
        })
        .context("enter the container netns")?;
        let _ = ctr.set_ipv4_conf(ctr_link.index, &[(Ipv4Conf::ArpNotify, 1)]);
        iface::configure(&mut ctr, &ns, &args.ifname, &result)?;

        if own.is_gateway {
            let mut vlan_iface_added = false;
            for gw in &gws {
                let target = if own.vlan != 0 {
                    let l = ensure_vlan_gateway(&mut host, &br, cfg)?;
                    if !vlan_iface_added {
                        result.interfaces.push(Interface {
                            name: l.name.clone(),
                            mac: l.mac_string(),
                            ..Interface::default()
                        });
                        vlan_iface_added = true;
                    }
                    l
                } else {
                    br.clone()
                };
                ensure_address(&mut host, &target, *gw, own.force_address)?;
            }
            let forwarding = CniResult {
                ips: result.ips.clone(),
                ..CniResult::default()
            };
            enable_forwarding(&mut host, &forwarding)?;
        }
        if let Some(backend) = backend {
            let ips: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
            let rules = masquerade::undo_rules(&owner);
            masq::setup(backend, &ips, &owner).context("failed to set up IP masquerading")?;
            masq_rules = Some(rules);
        }
    } else if !own.disable_container_interface {
        ctr.set_up(ctr_link.index)
            .context("set the container interface up")?;
    }

    if !own.disable_container_interface {
        let up = wait_port_up(&mut host, &host_name)?;
        result.interfaces[1].mac = up.mac_string();
    }
    if let Some(br) = host
        .link_by_name(&own.bridge)
        .context("look up the bridge")?
    {
        result.interfaces[0].mac = br.mac_string();
    }
    if let Some(dns) = cfg.conf.dns.clone().filter(|d| !d.is_empty()) {
        result.dns = dns;
    }
    if let Some(rules) = masq_rules {
        rules.keep();
    }
    if let Some(lease) = lease {
        lease.keep();
    }
    if let Some(spoof_check) = spoof_check {
        spoof_check.keep();
    }
    port.keep();
    Ok(result)
}

/// bridge's keys, as `rcni help bridge` prints them.
pub const SCHEMA: Schema = Schema {
    about:
        "puts the container on a host bridge through a veth pair, the bridge optionally its gateway",
    keys: &[
        Key {
            name: "bridge",
            ty: "string",
            default: "cni0",
            meaning: "the host bridge, created when missing",
        },
        Key {
            name: "isGateway",
            ty: "bool",
            default: "false",
            meaning: "put each range's gateway address on the bridge",
        },
        Key {
            name: "isDefaultGateway",
            ty: "bool",
            default: "false",
            meaning: "also route the container's default through the bridge (implies isGateway)",
        },
        Key {
            name: "forceAddress",
            ty: "bool",
            default: "false",
            meaning: "replace a different address of the same family already on the bridge",
        },
        masquerade::IP_MASQ_KEY,
        masquerade::IP_MASQ_BACKEND_KEY,
        Key {
            name: "mtu",
            ty: "uint32",
            default: "0 (the kernel's)",
            meaning: "MTU of a new bridge and of the veth pair",
        },
        Key {
            name: "hairpinMode",
            ty: "bool",
            default: "false",
            meaning: "let frames go back out of the port they came in on (excludes promiscMode)",
        },
        Key {
            name: "promiscMode",
            ty: "bool",
            default: "false",
            meaning: "set the bridge promiscuous (excludes hairpinMode)",
        },
        Key {
            name: "vlan",
            ty: "int (0-4094)",
            default: "0 (none)",
            meaning: "the untagged VLAN of the container's port",
        },
        Key {
            name: "vlanTrunk",
            ty: "[{id} or {minID, maxID}]",
            default: "",
            meaning: "tagged VLANs (1-4094) the container's port carries",
        },
        Key {
            name: "preserveDefaultVlan",
            ty: "bool",
            default: "false",
            meaning: "keep the default VLAN on the port when vlan or vlanTrunk is set",
        },
        Key {
            name: "macspoofchk",
            ty: "bool",
            default: "false",
            meaning: "drop frames from the container with another source MAC",
        },
        Key {
            name: "enabledad",
            ty: "bool",
            default: "false",
            meaning: "run IPv6 duplicate address detection on the container interface",
        },
        Key {
            name: "disableContainerInterface",
            ty: "bool",
            default: "false",
            meaning: "leave the container's end down (no IPAM then)",
        },
        Key {
            name: "portIsolation",
            ty: "bool",
            default: "false",
            meaning: "isolate the port from the bridge's other isolated ports",
        },
    ],
    capabilities: &["mac"],
    example: r#"{"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
  "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}}"#,
    check: |conf| {
        let cfg = load(&crate::offline::add_call(conf))?;
        crate::offline::masq_backend(cfg.own.ip_masq_backend.as_deref())
    },
};

impl Plugin for Bridge {
    fn name(&self) -> &str {
        "bridge"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let cfg = load(args)?;
        let backend = (cfg.own.ip_masq && cfg.layer3)
            .then(|| masquerade::backend(cfg.own.ip_masq_backend.as_deref()))
            .transpose()?;
        add(args, &cfg, backend)
    }

    /// Address (IPAM), then link, and alongside them the firewall, each whatever
    /// the others did.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        let mut teardown = Teardown::new("bridge");
        let firewall = || {
            if cfg.own.mac_spoof_check {
                if let Err(e) = spoofcheck::teardown(&unique_id(args)) {
                    eprintln!("bridge: spoof-check teardown: {e}");
                }
            }
            // Found by name: removed even when the netns is gone (the
            // reference leaks the rules then).
            if !(cfg.layer3 && cfg.own.ip_masq) {
                return Ok(());
            }
            let owner = masquerade::owner(&cfg.conf.name, args);
            masq::teardown_known(&owner, &prev_addresses(&cfg.conf, &args.ifname))
                .context("failed to tear down IP masquerading")
        };
        teardown.alongside(firewall, |teardown| {
            // IPAM first, as the reference: dhcp's RELEASE leaves through the link.
            if cfg.layer3 {
                teardown.step(ipam_forward(Command::Del, &cfg.conf, args));
            }
            teardown.step(container::delete_link(&args.netns, &args.ifname));
        });
        teardown.finish()
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        forward_if_any(Command::Check, &cfg.conf, args)?;
        let prev = cfg
            .conf
            .prev_result()?
            .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))?;
        let ns = require_netns(args)?;
        let mut host = Handle::new().context("open netlink")?;
        let mut ctr = handle_in(&ns)?;
        let br = host
            .link_by_name(&cfg.own.bridge)
            .context("look up the bridge")?
            .filter(|l| matches!(l.kind, Some(LinkKind::Bridge { .. })))
            .ok_or_else(|| fail!("Error: Bridge interface {} not found", cfg.own.bridge))?;
        let ctr_if = prev
            .interfaces
            .iter()
            .find(|i| i.name == args.ifname && i.sandbox == args.netns)
            .ok_or_else(|| {
                fail!(
                    "Sandbox in prevResult doesn't match configured netns: {}",
                    args.netns
                )
            })?;
        let link = ctr
            .link_by_name(&ctr_if.name)
            .context("look up the container veth")?
            .filter(|l| l.kind == Some(LinkKind::Veth))
            .ok_or_else(|| {
                fail!(
                    "Error: Container interface {} not found or not a veth",
                    ctr_if.name
                )
            })?;
        if !ctr_if.mac.is_empty() && !ctr_if.mac.eq_ignore_ascii_case(&link.mac_string()) {
            return Err(fail!(
                "Interface {} Mac doesn't match: {}",
                ctr_if.name,
                ctr_if.mac
            ));
        }
        let peer = link
            .link
            .ok_or_else(|| fail!("the container veth has no peer"))?;
        let host_veth = host
            .link_by_index(peer)
            .context("look up the container veth's peer")?
            .ok_or_else(|| fail!("the container veth's peer is gone"))?;
        if host_veth.master != Some(br.index) {
            return Err(fail!(
                "{} is not connected to bridge {}",
                host_veth.name,
                br.name
            ));
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
                masq::gc(&cfg.conf.name, &valid, held.as_deref()).context("IP masquerading GC")?;
            }
        }
        Ok(())
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        forward_if_any(Command::Status, &load(args)?.conf, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<BridgeConf>(), Vec::<String>::new());
    }

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

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_address_conflicts() {
        let gw = net("10.1.0.1/24");
        let v4 = [(net("10.9.0.1/16"), 0)];
        // A different IPv4 address conflicts; forceAddress replaces it.
        assert_eq!(
            plan_gateway_address(&v4, gw, false),
            Err(net("10.9.0.1/16"))
        );
        assert_eq!(
            plan_gateway_address(&v4, gw, true),
            Ok(AddressPlan {
                remove: vec![net("10.9.0.1/16")],
                add: true
            })
        );
        // Already there: nothing to do.
        let present = [(gw, 0)];
        assert_eq!(
            plan_gateway_address(&present, gw, false),
            Ok(AddressPlan {
                remove: vec![],
                add: false
            })
        );
        // IPv6: only an overlapping global address conflicts; link-local
        // and other subnets stay.
        let gw6 = net("fd00:1::1/64");
        let v6 = [
            (net("fe80::1/64"), 253),
            (net("fd00:2::1/64"), 0),
            (net("fd00:1::9/64"), 0),
        ];
        assert_eq!(
            plan_gateway_address(&v6, gw6, false),
            Err(net("fd00:1::9/64"))
        );
        // The other family never conflicts.
        assert_eq!(
            plan_gateway_address(&v4, gw6, false),
            Ok(AddressPlan {
                remove: vec![],
                add: true
            })
        );
    }

    fn conf(json: &str) -> BridgeConf {
        serde_json::from_str(json).unwrap()
    }

    fn ipam_result(ips: &[(&str, Option<&str>)]) -> CniResult {
        CniResult {
            ips: ips
                .iter()
                .map(|(a, gw)| rcni_spec::IpConfig {
                    interface: None,
                    address: net(a),
                    gateway: gw.map(|g| g.parse().unwrap()),
                })
                .collect(),
            ..CniResult::default()
        }
    }

    #[test]
    fn gateways_and_default_routes() {
        let own = conf(r#"{"isGateway":true,"isDefaultGateway":true}"#);
        let mut result = ipam_result(&[("10.1.0.5/24", None), ("fd00::5/64", Some("fd00::fe"))]);
        let gws = gateways(&mut result, &own);
        assert_eq!(gws, [net("10.1.0.1/24"), net("fd00::fe/64")]);
        assert!(result.ips.iter().all(|ip| ip.interface == Some(2)));
        let defaults: Vec<String> = result
            .routes
            .iter()
            .map(|r| format!("{} via {:?}", r.dst, r.gw))
            .collect();
        assert_eq!(
            defaults,
            ["0.0.0.0/0 via Some(10.1.0.1)", "::/0 via Some(fd00::fe)"]
        );

        // Without isGateway: no gateway invented, nothing on the bridge.
        let mut plain = ipam_result(&[("10.1.0.5/24", None)]);
        assert!(gateways(&mut plain, &conf("{}")).is_empty());
        assert_eq!(plain.ips[0].gateway, None);
        assert!(plain.routes.is_empty());
    }
}
