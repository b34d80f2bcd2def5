//! What the plugins that put one link in the container (macvlan, ipvlan,
//! vlan, dummy, tap, host-device) share: finding the master, creating the
//! link under a temporary name and renaming it to `CNI_IFNAME` inside the
//! container, addressing it from IPAM or a previous result, its DEL, and
//! the CHECK of such a link (ptp's CHECK too). Every step of ADD is undone
//! when a later one fails.

use crate::container::{delete_link, handle_in, require_netns, undo_link};
use crate::error::{Context, Teardown};
use crate::iface::{self, expect_addresses};
use crate::ipam::{forward_if_any, has_ipam, IpamLease};
use rcni_net::{Handle, Link, LinkKind, LinkOptions, NetNs, RT_TABLE_MAIN};
use rcni_skel::{CmdArgs, Command};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::Key;
use rcni_spec::{CniError, CniResult, Interface};

/// The `mtu` key of macvlan, ipvlan and vlan, read by [`check_mtu`].
pub const MTU_KEY: Key = Key {
    name: "mtu",
    ty: "int",
    default: "0 (the master's)",
    meaning: "MTU of the link, at most the master's",
};

/// The `linkInContainer` key of macvlan, ipvlan and vlan.
pub const LINK_IN_CONTAINER_KEY: Key = Key {
    name: "linkInContainer",
    ty: "bool",
    default: "false",
    meaning: "the master is in the container's netns, not the host's",
};

/// The parent link of a macvlan, ipvlan or vlan.
pub struct Master {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
}

/// A netlink handle in the container (`in_container`) or in the host.
pub fn handle_for(ns: &NetNs, in_container: bool) -> Result<Handle, CniError> {
    if in_container {
        handle_in(ns)
    } else {
        Handle::new().context("open netlink")
    }
}

/// The interface of the default route, the reference's default master.
fn default_route_interface(nl: &mut Handle) -> Result<String, CniError> {
    let routes = nl
        .routes(None, Some(RT_TABLE_MAIN))
        .context("list routes")?;
    for route in routes.iter().filter(|r| r.dst.prefix_len() == 0) {
        if let Some(oif) = route.oif {
            if let Some(link) = nl
                .link_by_index(oif)
                .context("look up the default route's link")?
            {
                return Ok(link.name);
            }
        }
    }
    Err(CniError::invalid_config(
        "master: not set, and no default route interface found",
    ))
}

/// Looks up `master` (or, when empty and `default_route` allows it, the
/// interface of the default route) in the host or, with
/// `linkInContainer`, in the container.
pub fn find_master(
    master: &str,
    ns: &NetNs,
    in_container: bool,
    default_route: bool,
) -> Result<Master, CniError> {
    let mut nl = handle_for(ns, in_container)?;
    let name = if master.is_empty() && default_route {
        default_route_interface(&mut nl)?
    } else {
        master.to_string()
    };
    if name.is_empty() {
        return Err(CniError::invalid_config("master: field is required"));
    }
    let link = nl
        .link_by_name(&name)
        .context("look up the master")?
        .ok_or_else(|| {
            let place = if in_container { "container" } else { "host" };
            invalid!("master: failed to lookup master {name:?}: no such link in the {place} netns")
        })?;
    Ok(Master {
        name,
        index: link.index,
        mtu: link.mtu,
    })
}

/// `mtu` must not exceed the master's (0 keeps the kernel's default).
pub fn check_mtu(mtu: i64, master: &Master) -> Result<Option<u32>, CniError> {
    if mtu < 0 || mtu > i64::from(master.mtu) {
        return Err(invalid!(
            "mtu: invalid MTU {mtu}, must be [0, master MTU({})]",
            master.mtu
        ));
    }
    Ok((mtu != 0).then_some(mtu as u32))
}

/// Creates `kind` in the container as `ifname`. The link is made under a
/// temporary name (a new link appears in the host first when made from
/// there, where `ifname` may be taken) and renamed inside the container.
/// With `in_container` it is created from the container's side, its
/// master being a container link.
pub fn create(
    kind: &LinkKind,
    what: &str,
    ifname: &str,
    ns: &NetNs,
    in_container: bool,
    opts: LinkOptions<'_>,
) -> Result<Interface, CniError> {
    let tmp_name = rcni_net::random_veth_name();
    let mut opts = opts;
    opts.netns = (!in_container).then_some(ns);
    let mut creator = handle_for(ns, in_container)?;
    creator
        .create_link(&tmp_name, kind, &opts)
        .context(format!("failed to create {what}"))?;
    // Made from the container's side, the creating handle is the one.
    let mut ctr = if in_container {
        creator
    } else {
        handle_in(ns)?
    };
    let link = ctr
        .find_link(&tmp_name)
        .context(format!("failed to find the new {what}"))?;
    if let Err(e) = ctr.set_name(link.index, ifname) {
        let _ = ctr.delete_link(link.index);
        return Err(e).context(format!("failed to rename {what} to {ifname:?}"));
    }
    Ok(Interface {
        name: ifname.to_string(),
        mac: link.mac_string(),
        sandbox: ns.path().to_string_lossy().into_owned(),
        ..Interface::default()
    })
}

/// Where the addresses of the container link come from.
pub enum Addressing {
    /// Layer 2 only: no addresses, the link is just set up.
    None,
    /// From the IPAM plugin of the config.
    Ipam,
    /// From the previous result of a chain (ipvlan without `ipam`).
    Previous(CniResult),
}

impl Addressing {
    /// IPAM when the config names one, else `otherwise`.
    pub fn from_conf(conf: &PluginConf, otherwise: Addressing) -> Addressing {
        if has_ipam(conf) {
            Addressing::Ipam
        } else {
            otherwise
        }
    }
}

/// Finishes an ADD after [`create`]: addresses and routes on the link
/// (with `arp_notify`/`ndisc_notify` when `notify`), or just link up for
/// layer 2. On failure the container link is deleted and the address
/// released.
pub fn address(
    conf: &PluginConf,
    args: &CmdArgs,
    ns: &NetNs,
    iface: Interface,
    addressing: Addressing,
    notify: bool,
) -> Result<CniResult, CniError> {
    let link = undo_link(args);
    let result = configure(conf, args, Some(ns), iface, addressing, notify)?;
    link.keep();
    Ok(result)
}

/// As [`address`], leaving the undo of the link to the caller (the address
/// is still released on failure). Without a namespace (`ns` is `None`:
/// a device handed to userspace, nothing in the kernel to set up) the
/// result is only recorded.
pub fn configure(
    conf: &PluginConf,
    args: &CmdArgs,
    ns: Option<&NetNs>,
    iface: Interface,
    addressing: Addressing,
    notify: bool,
) -> Result<CniResult, CniError> {
    let mut ctr = ns.map(handle_in).transpose()?;
    let (lease, mut result) = match addressing {
        Addressing::None => {
            if let Some(ctr) = ctr.as_mut() {
                let link = ctr
                    .find_link(&args.ifname)
                    .context("look up the container link")?;
                ctr.set_up(link.index)
                    .context(format!("failed to set {:?} UP", args.ifname))?;
            }
            (None, CniResult::default())
        }
        Addressing::Ipam => {
            let (lease, result) = IpamLease::acquire(conf, args)?;
            (Some(lease), result)
        }
        Addressing::Previous(prev) => (None, prev),
    };
    if lease.is_some() && result.ips.is_empty() {
        return Err(fail!("IPAM plugin returned missing IP config"));
    }
    result.interfaces = vec![iface];
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    if let (Some(ns), Some(ctr)) = (ns, ctr.as_mut()) {
        if !result.ips.is_empty() {
            if notify {
                let name = args.ifname.clone();
                ns.run(move || {
                    let _ = rcni_net::sysctl::set(&format!("net/ipv4/conf/{name}/arp_notify"), "1");
                    let _ =
                        rcni_net::sysctl::set(&format!("net/ipv6/conf/{name}/ndisc_notify"), "1");
                })
                .context("enter the container netns")?;
            }
            iface::configure(ctr, ns, &args.ifname, &result)?;
        }
    }
    if let Some(dns) = conf.dns.clone().filter(|d| !d.is_empty()) {
        result.dns = dns;
    }
    result.cni_version = conf.cni_version.clone();
    if let Some(lease) = lease {
        lease.keep();
    }
    Ok(result)
}

/// DEL: deletes the container link, then releases the address (when the
/// config has IPAM), both whatever the other did; a netns or link already
/// gone is success.
pub fn del(plugin: &'static str, conf: &PluginConf, args: &CmdArgs) -> Result<(), CniError> {
    let mut teardown = Teardown::new(plugin);
    // IPAM first, as the reference: dhcp's RELEASE leaves through the link.
    teardown.step(forward_if_any(Command::Del, conf, args));
    teardown.step(delete_link(&args.netns, &args.ifname));
    teardown.finish()
}

/// STATUS: the IPAM plugin's, when there is one.
pub fn status(conf: &PluginConf, args: &CmdArgs) -> Result<(), CniError> {
    forward_if_any(Command::Status, conf, args)
}

/// CHECK of the container link against the previous result: IPAM CHECK,
/// the interface in the right sandbox, of kind `kind` (if given), as
/// `verify` wants it, with the result's MAC, addresses and routes.
pub fn check(
    plugin: &str,
    conf: &PluginConf,
    args: &CmdArgs,
    kind: Option<&str>,
    verify: impl FnOnce(&Link) -> Result<(), CniError>,
) -> Result<(), CniError> {
    let ns = require_netns(args)?;
    forward_if_any(Command::Check, conf, args)?;
    let prev = conf
        .prev_result()?
        .ok_or_else(|| invalid!("{plugin}: Required prevResult missing"))?;
    let iface = prev
        .interfaces
        .iter()
        .find(|i| i.name == args.ifname)
        .ok_or_else(|| {
            fail!(
                "{plugin}: Container interface name missing in prevResult: {}",
                args.ifname
            )
        })?;
    if iface.sandbox != args.netns {
        return Err(fail!(
            "Sandbox in prevResult {} doesn't match configured netns: {}",
            iface.sandbox,
            args.netns
        ));
    }
    let mut ctr = handle_in(&ns)?;
    let link = ctr
        .link_by_name(&iface.name)
        .context("look up the container link")?
        .ok_or_else(|| {
            fail!(
                "{plugin}: Container Interface name in prevResult: {} not found",
                iface.name
            )
        })?;
    if let Some(kind) = kind.filter(|k| link.kind.as_ref().map(LinkKind::name) != Some(*k)) {
        return Err(fail!(
            "Error: Container interface {} not of type {kind}",
            iface.name
        ));
    }
    verify(&link)?;
    let mac = link.mac_string();
    if !iface.mac.is_empty() && !iface.mac.eq_ignore_ascii_case(&mac) {
        return Err(fail!(
            "{plugin}: Interface {} Mac {} doesn't match container Mac: {mac}",
            iface.name,
            iface.mac
        ));
    }
    let mine = prev.ips.iter().filter(|ip| {
        ip.interface
            .and_then(|i| prev.interfaces.get(i))
            .is_some_and(|i| i.name == args.ifname)
    });
    expect_addresses(&mut ctr, link.index, &args.ifname, mine)?;
    let routes = ctr.routes(None, None).context("list routes")?;
    for want in &prev.routes {
        if !routes
            .iter()
            .any(|r| r.dst == want.dst.trunc() && (want.gw.is_none() || r.gateway == want.gw))
        {
            return Err(fail!("Failed to match route {} in the container", want.dst));
        }
    }
    Ok(())
}
