//! Interface configuration from an IPAM result, as the reference's
//! `ipam.ConfigureIface`, plus forwarding and the CHECK of addresses.

use crate::error::Context;
use rcni_net::{
    Handle, IpFamily, NetError, NetNs, Route as KernelRoute, IFA_F_DADFAILED, IFA_F_TENTATIVE,
};
use rcni_spec::CniError;
use rcni_spec::CniResult;
use std::time::{Duration, Instant};

/// How long IPv6 duplicate address detection may take before routes via
/// an IPv6 gateway are added (the reference's settle timeout).
const DAD_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// `RT_SCOPE_LINK`.
const RT_SCOPE_LINK: u8 = 253;

/// Waits until no address on `index` is still tentative.
fn settle_addresses(nl: &mut Handle, index: u32, ifname: &str) -> Result<(), CniError> {
    let deadline = Instant::now() + DAD_SETTLE_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        let addrs = nl.addresses(Some(index)).context("list addresses")?;
        if let Some(failed) = addrs.iter().find(|a| a.flags & IFA_F_DADFAILED != 0) {
            return Err(fail!(
                "failed to settle addresses for {ifname:?}: duplicate address {}",
                failed.net
            ));
        }
        if !addrs.iter().any(|a| a.flags & IFA_F_TENTATIVE != 0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail!(
                "failed to settle addresses for {ifname:?}: still tentative after {DAD_SETTLE_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Configures `ifname` inside `ns` from an IPAM result, as the reference's
/// `ipam.ConfigureIface`: enables IPv6 where needed, adds the addresses of
/// the result that belong to `ifname`, sets the link up, waits for DAD,
/// then adds the routes (a route without gateway goes via the first
/// gateway of its family).
pub fn configure(
    nl: &mut Handle,
    ns: &NetNs,
    ifname: &str,
    result: &CniResult,
) -> Result<(), CniError> {
    // reference text
    let link = nl
        .find_link(ifname)
        .context(format!("failed to lookup {ifname:?}"))?;
    configure_link(nl, ns, ifname, link.index, result)
}

/// As [`configure`], for a link whose index the caller already holds (it
/// just made the link), which saves looking it up again.
pub fn configure_link(
    nl: &mut Handle,
    ns: &NetNs,
    ifname: &str,
    index: u32,
    result: &CniResult,
) -> Result<(), CniError> {
    if result.interfaces.is_empty() {
        return Err(fail!("no interfaces to configure"));
    }
    let mut v4_gw = None;
    let mut v6_gw = None;
    let mut ipv6_enabled = false;
    for ip in &result.ips {
        let Some(idx) = ip.interface else { continue };
        if result.interfaces.get(idx).map(|i| i.name.as_str()) != Some(ifname) {
            return Err(fail!(
                "failed to add IP addr {} to {ifname:?}: invalid interface index",
                ip.address
            ));
        }
        if ip.address.addr().is_ipv6() && !ipv6_enabled {
            let name = ifname.to_string();
            ns.run(move || -> Result<(), NetError> {
                for dev in ["lo", name.as_str()] {
                    let key = format!("net/ipv6/conf/{dev}/disable_ipv6");
                    if rcni_net::sysctl::get(&key)
                        .map(|v| v.trim() != "0")
                        .unwrap_or(false)
                    {
                        rcni_net::sysctl::set(&key, "0")?;
                    }
                }
                rcni_net::sysctl::set(&format!("net/ipv6/conf/{name}/keep_addr_on_down"), "1")
            })
            .context("enter the container netns")?
            .context("enable IPv6 in the container")?;
            ipv6_enabled = true;
        }
        // reference text
        nl.add_address(index, ip.address).context(format!(
            "failed to add IP addr {} to {ifname:?}",
            ip.address
        ))?;
        match ip.gateway {
            Some(gw) if gw.is_ipv4() && v4_gw.is_none() => v4_gw = Some(gw),
            Some(gw) if gw.is_ipv6() && v6_gw.is_none() => v6_gw = Some(gw),
            _ => {}
        }
    }
    nl.set_up(index).context("set the container interface up")?;
    if v6_gw.is_some() {
        settle_addresses(nl, index, ifname)?;
    }
    for r in &result.routes {
        // A scope-link route (dhcp's gateway-less option-121 entries) is on
        // the link itself: it gets no default next hop.
        let on_link = r.scope == Some(RT_SCOPE_LINK);
        let default_gw = if r.dst.addr().is_ipv4() { v4_gw } else { v6_gw };
        let gw = r.gw.or(default_gw.filter(|_| !on_link));
        let mut route = KernelRoute::new(r.dst);
        route.gateway = gw;
        route.oif = Some(index);
        route.priority = (r.priority != 0).then_some(r.priority);
        if let Some(table) = r.table {
            route.table = table;
        }
        if let Some(scope) = r.scope {
            route.scope = scope;
        }
        route.mtu = (r.mtu != 0).then_some(r.mtu);
        route.advmss = (r.advmss != 0).then_some(r.advmss);
        // Appended, as the reference does: another attachment (a second
        // network of the same pod) may already hold the same destination,
        // typically the default route.
        // reference text
        nl.append_route(&route).context(format!(
            "failed to add route '{} via {} dev {ifname}'",
            r.dst,
            gw.map(|g| g.to_string()).unwrap_or_else(|| "<nil>".into())
        ))?;
    }
    Ok(())
}

/// Turns on IPv4 / IPv6 forwarding in `host`'s netns (the current one)
/// for the families present in `result`.
pub fn enable_forwarding(host: &mut Handle, result: &CniResult) -> Result<(), CniError> {
    let mut done = (false, false);
    for ip in &result.ips {
        let (key, family, flag) = if ip.address.addr().is_ipv4() {
            ("net/ipv4/ip_forward", IpFamily::V4, &mut done.0)
        } else {
            ("net/ipv6/conf/all/forwarding", IpFamily::V6, &mut done.1)
        };
        if !*flag {
            // Read over netlink (cheaper than /proc/sys); written there.
            if !host.forwarding(family).unwrap_or(false) {
                // reference text
                rcni_net::sysctl::set(key, "1").context("Could not enable IP forwarding")?;
            }
            *flag = true;
        }
    }
    Ok(())
}

/// CHECK: every address in `ips` must be on the link `index` (`ifname`).
pub fn expect_addresses<'a>(
    nl: &mut Handle,
    index: u32,
    ifname: &str,
    ips: impl IntoIterator<Item = &'a rcni_spec::IpConfig>,
) -> Result<(), CniError> {
    let have = nl.addresses(Some(index)).context("list addresses")?;
    for ip in ips {
        if !have.iter().any(|a| a.net == ip.address) {
            // reference text
            return Err(fail!(
                "Failed to match addr {} on interface {ifname}",
                ip.address
            ));
        }
    }
    Ok(())
}
