//! Helpers shared by several plugins.

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `ip/prefix` keeping the host bits (`10.1.2.3/24` stays as is).
/// A bare IP is not accepted.
pub fn parse_cidr_keep_host(s: &str) -> Option<IpNet> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    IpNet::new(ip, prefix).ok()
}

/// Parses `ip` or `ip/prefix` (the prefix is ignored), as the reference's
/// `ip.IP` type accepts both.
pub fn parse_ip_maybe_cidr(s: &str) -> Option<IpAddr> {
    s.split_once('/').map_or(s, |(ip, _)| ip).parse().ok()
}

use rcni_net::{NetError, NetNs};
use rcni_spec::CniError;

/// Maps a kernel-layer error to a CNI error, naming the step that failed.
/// The reference reports these as internal errors (999).
pub fn kernel_err(step: &'static str) -> impl Fn(NetError) -> CniError {
    move |e| CniError::internal(format!("{step}: {e}"))
}

/// Opens the container netns; `Ok(None)` when the path is empty or no
/// longer exists (DEL must then succeed), an error for anything else.
pub fn open_netns(path: &str) -> Result<Option<NetNs>, CniError> {
    if path.is_empty() {
        return Ok(None);
    }
    match NetNs::open(path) {
        Ok(ns) => Ok(Some(ns)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(CniError::internal(format!(
            "failed to open netns {path:?}: {e}"
        ))),
    }
}

use rcni_net::{Handle, Route as KernelRoute};
use rcni_skel::invoke;
use rcni_skel::{CmdArgs, Command};
use rcni_spec::config::PluginConf;
use rcni_spec::CniResult;
use std::time::{Duration, Instant};

/// An address lease from the IPAM plugin named in the config. Dropping it
/// without [`IpamLease::keep`] calls IPAM DEL, so an ADD that fails after
/// IPAM leaves no address behind.
pub struct IpamLease<'a> {
    ipam_type: String,
    args: &'a CmdArgs,
    kept: bool,
}

/// The `ipam.type` of a config, which must be set.
pub fn ipam_type(conf: &PluginConf) -> Result<String, CniError> {
    match conf.ipam.as_ref().map(|i| i.ipam_type.as_str()) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(CniError::invalid_config(
            "ipam.type is missing: an IPAM plugin is required",
        )),
    }
}

impl<'a> IpamLease<'a> {
    /// Runs IPAM ADD with the plugin's own stdin, as the reference does.
    pub fn acquire(
        conf: &PluginConf,
        args: &'a CmdArgs,
    ) -> Result<(IpamLease<'a>, CniResult), CniError> {
        let ipam_type = ipam_type(conf)?;
        let result = invoke::delegate_add(&ipam_type, &args.stdin, args)?;
        Ok((
            IpamLease {
                ipam_type,
                args,
                kept: false,
            },
            result,
        ))
    }

    /// The attachment succeeded: keep the address.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for IpamLease<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = invoke::delegate(Command::Del, &self.ipam_type, &self.args.stdin, self.args);
        }
    }
}

/// Forwards a verb without result (DEL, CHECK, GC, STATUS) to the IPAM
/// plugin of the config.
pub fn ipam_forward(command: Command, conf: &PluginConf, args: &CmdArgs) -> Result<(), CniError> {
    invoke::delegate(command, &ipam_type(conf)?, &args.stdin, args)
}

/// How long IPv6 duplicate address detection may take before routes via
/// an IPv6 gateway are added (the reference's settle timeout).
const DAD_SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
const IFA_F_TENTATIVE: u32 = 0x40;
const IFA_F_DADFAILED: u32 = 0x08;

/// Waits until no address on `index` is still tentative.
fn settle_addresses(nl: &mut Handle, index: u32, ifname: &str) -> Result<(), CniError> {
    let deadline = Instant::now() + DAD_SETTLE_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        let addrs = nl
            .addresses(Some(index))
            .map_err(kernel_err("list addresses"))?;
        if let Some(failed) = addrs.iter().find(|a| a.flags & IFA_F_DADFAILED != 0) {
            return Err(CniError::internal(format!(
                "failed to settle addresses for {ifname:?}: duplicate address {}",
                failed.net
            )));
        }
        if !addrs.iter().any(|a| a.flags & IFA_F_TENTATIVE != 0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CniError::internal(format!(
                "failed to settle addresses for {ifname:?}: still tentative after {DAD_SETTLE_TIMEOUT:?}"
            )));
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
pub fn configure_iface(
    nl: &mut Handle,
    ns: &NetNs,
    ifname: &str,
    result: &CniResult,
) -> Result<(), CniError> {
    if result.interfaces.is_empty() {
        return Err(CniError::internal("no interfaces to configure"));
    }
    let link = nl
        .link_by_name(ifname)
        .map_err(kernel_err("look up the container interface"))?
        .ok_or_else(|| CniError::internal(format!("failed to lookup {ifname:?}")))?;
    let mut v4_gw = None;
    let mut v6_gw = None;
    let mut ipv6_enabled = false;
    for ip in &result.ips {
        let Some(idx) = ip.interface else { continue };
        if result.interfaces.get(idx).map(|i| i.name.as_str()) != Some(ifname) {
            return Err(CniError::internal(format!(
                "failed to add IP addr {} to {ifname:?}: invalid interface index",
                ip.address
            )));
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
            .map_err(kernel_err("enter the container netns"))?
            .map_err(kernel_err("enable IPv6 in the container"))?;
            ipv6_enabled = true;
        }
        nl.add_address(link.index, ip.address).map_err(|e| {
            CniError::internal(format!(
                "failed to add IP addr {} to {ifname:?}: {e}",
                ip.address
            ))
        })?;
        match ip.gateway {
            Some(gw) if gw.is_ipv4() && v4_gw.is_none() => v4_gw = Some(gw),
            Some(gw) if gw.is_ipv6() && v6_gw.is_none() => v6_gw = Some(gw),
            _ => {}
        }
    }
    nl.set_up(link.index)
        .map_err(kernel_err("set the container interface up"))?;
    if v6_gw.is_some() {
        settle_addresses(nl, link.index, ifname)?;
    }
    for r in &result.routes {
        let gw = r.gw.or(if r.dst.addr().is_ipv4() { v4_gw } else { v6_gw });
        let mut route = KernelRoute::new(r.dst);
        route.gateway = gw;
        route.oif = Some(link.index);
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
        nl.append_route(&route).map_err(|e| {
            CniError::internal(format!(
                "failed to add route '{} via {} dev {ifname}': {e}",
                r.dst,
                gw.map(|g| g.to_string()).unwrap_or_else(|| "<nil>".into())
            ))
        })?;
    }
    Ok(())
}

/// Turns on IPv4 / IPv6 forwarding in the current netns for the families
/// present in `result`.
pub fn enable_forwarding(result: &CniResult) -> Result<(), CniError> {
    let mut done = (false, false);
    for ip in &result.ips {
        let (key, flag) = if ip.address.addr().is_ipv4() {
            ("net/ipv4/ip_forward", &mut done.0)
        } else {
            ("net/ipv6/conf/all/forwarding", &mut done.1)
        };
        if !*flag {
            if rcni_net::sysctl::get(key)
                .map(|v| v.trim() != "1")
                .unwrap_or(true)
            {
                rcni_net::sysctl::set(key, "1").map_err(|e| {
                    CniError::internal(format!("Could not enable IP forwarding: {e}"))
                })?;
            }
            *flag = true;
        }
    }
    Ok(())
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The firewall backend for `ipMasq`: the configured one (which must be
/// installed) or the reference's default.
pub fn masq_backend(configured: Option<&str>) -> Result<rcni_netfilter::Backend, CniError> {
    let backend = rcni_netfilter::Backend::choose(configured, "ipMasqBackend")
        .map_err(|e| CniError::invalid_config(e.to_string()))?;
    backend
        .ensure_available()
        .map_err(|e| CniError::invalid_config(format!("ipMasqBackend: {e}")))?;
    Ok(backend)
}

/// `cni.dev/valid-attachments` of a GC call, as (container ID, ifname).
pub fn valid_attachments(conf: &PluginConf) -> Result<Vec<(String, String)>, CniError> {
    #[derive(serde::Deserialize)]
    struct Attachment {
        #[serde(rename = "containerID")]
        container_id: String,
        #[serde(default)]
        ifname: String,
    }
    let list: Vec<Attachment> = match rcni_spec::gojson::get(&conf.raw, "cni.dev/valid-attachments")
    {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => rcni_spec::gojson::from_value(v).map_err(|e| {
            CniError::invalid_config(e.within("cni.dev/valid-attachments").to_string())
        })?,
    };
    Ok(list
        .into_iter()
        .map(|a| (a.container_id, a.ifname))
        .collect())
}

/// How many random host-side names to try before giving up.
const HOST_VETH_ATTEMPTS: usize = 10;

/// Creates a veth pair: `ifname` inside `ns` (with `mac` if given), a
/// random `veth…` name on the host. Returns the host end's name.
pub fn create_veth_pair(
    host: &mut Handle,
    ns: &NetNs,
    ifname: &str,
    mtu: u32,
    mac: Option<[u8; 6]>,
) -> Result<String, CniError> {
    for _ in 0..HOST_VETH_ATTEMPTS {
        let host_name = rcni_net::random_veth_name();
        let spec = rcni_net::VethSpec {
            name: host_name.clone(),
            peer_name: ifname.to_string(),
            mtu: (mtu != 0).then_some(mtu),
            mac: None,
            peer_mac: mac,
            peer_netns: Some(ns),
        };
        match host.create_veth(&spec) {
            Ok(()) => return Ok(host_name),
            Err(e) if e.is_exists() => {
                if host
                    .link_by_name(&host_name)
                    .map_err(kernel_err("look up veth"))?
                    .is_some()
                {
                    continue;
                }
                return Err(CniError::internal(format!(
                    "container veth name provided ({ifname}) already exists"
                )));
            }
            Err(e) => return Err(CniError::internal(format!("failed to make veth pair: {e}"))),
        }
    }
    Err(CniError::internal("failed to find a unique veth name"))
}

/// Parses `aa:bb:cc:dd:ee:ff`; `field` names the source in the error.
pub fn parse_mac(s: &str, field: &str) -> Result<[u8; 6], CniError> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(CniError::invalid_config(format!(
            "{field}: invalid MAC address {s:?}"
        )));
    }
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| CniError::invalid_config(format!("{field}: invalid MAC address {s:?}")))?;
    }
    Ok(mac)
}

/// The container MAC a runtime asks for: CNI_ARGS `MAC`, then
/// `args.cni.mac`, then `runtimeConfig.mac` (the last one set wins).
pub fn requested_mac(conf: &PluginConf, cni_args: &str) -> Result<Option<[u8; 6]>, CniError> {
    let env = rcni_spec::args::CniArgs::parse_known(cni_args, &["MAC"])?;
    let mut chosen: Option<(String, &str)> = env
        .get("MAC")
        .filter(|m| !m.is_empty())
        .map(|m| (m.to_string(), "CNI_ARGS MAC"));
    for (value, field) in [
        (conf.cni_arg("mac"), "args.cni.mac"),
        (conf.runtime("mac"), "runtimeConfig.mac"),
    ] {
        if let Some(m) = value
            .and_then(serde_json::Value::as_str)
            .filter(|m| !m.is_empty())
        {
            chosen = Some((m.to_string(), field));
        }
    }
    chosen.map(|(m, field)| parse_mac(&m, field)).transpose()
}

/// The MAC of a plugin with its own `mac` key (macvlan, tap): the key,
/// overridden by what the runtime asks for ([`requested_mac`]).
pub fn configured_mac(
    conf: &PluginConf,
    own_mac: &str,
    cni_args: &str,
) -> Result<Option<[u8; 6]>, CniError> {
    if let Some(requested) = requested_mac(conf, cni_args)? {
        return Ok(Some(requested));
    }
    (!own_mac.is_empty())
        .then(|| parse_mac(own_mac, "mac"))
        .transpose()
}

/// Deletes `ifname` inside the netns at `netns` (the container end of a
/// pair takes the host end with it). A netns or link that is already gone
/// is success: DEL must be idempotent.
pub fn delete_container_link(netns: &str, ifname: &str) -> Result<(), CniError> {
    let Some(ns) = open_netns(netns)? else {
        return Ok(());
    };
    let mut ctr = Handle::new_in(&ns).map_err(kernel_err("open netlink in the container"))?;
    let Some(link) = ctr
        .link_by_name(ifname)
        .map_err(kernel_err("look up the container link"))?
    else {
        return Ok(());
    };
    match ctr.delete_link(link.index) {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(CniError::internal(format!(
            "failed to delete {ifname:?}: {e}"
        ))),
    }
}

/// CHECK: every address in `ips` must be on the link `index` (`ifname`).
pub fn expect_addresses<'a>(
    nl: &mut Handle,
    index: u32,
    ifname: &str,
    ips: impl IntoIterator<Item = &'a rcni_spec::IpConfig>,
) -> Result<(), CniError> {
    let have = nl
        .addresses(Some(index))
        .map_err(kernel_err("list addresses"))?;
    for ip in ips {
        if !have.iter().any(|a| a.net == ip.address) {
            return Err(CniError::internal(format!(
                "Failed to match addr {} on interface {ifname}",
                ip.address
            )));
        }
    }
    Ok(())
}

/// The addresses of a DEL's prevResult that belong to `ifname` (those
/// without an interface index included); none when there is no
/// prevResult or it does not parse. A hint that saves reading the
/// firewall or the whole IPAM store.
pub fn prev_addresses(conf: &PluginConf, ifname: &str) -> Vec<IpNet> {
    let Ok(Some(prev)) = conf.prev_result() else {
        return Vec::new();
    };
    prev.ips
        .iter()
        .filter(|ip| {
            ip.interface
                .is_none_or(|i| prev.interfaces.get(i).is_some_and(|f| f.name == ifname))
        })
        .map(|ip| ip.address)
        .collect()
}
