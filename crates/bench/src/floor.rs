//! The kernel floor: only the kernel work of one ADD, done in this process
//! (no exec, no JSON, no IPAM store), as the yardstick rcni's ADD is held
//! to. Each pod gets a fresh network namespace, as in the scenarios, and
//! the same addresses and rules a real ADD would make.

use crate::measure::{ms, sh, PodRun};
use ipnet::IpNet;
use rcni_net::{Handle, NetNs, Route, VethSpec, RT_SCOPE_LINK};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The container's interface in every floor pod.
const IFNAME: &str = "eth0";
/// The bridge of the bridge + portmap floor.
const BRIDGE: &str = "rbfloor0";
/// nf_tables tables of the floor's own, so that the scenarios that run
/// after it find the tables rcni and the reference use as they left them.
const MASQ_TABLE: &str = "inet rcni_floor_masquerade";
const HOSTPORT_TABLE: &str = "ip rcni_floor_hostport";

fn err(what: &str) -> impl Fn(rcni_net::NetError) -> String + '_ {
    move |e| format!("floor: {what}: {e}")
}

/// Pod `i`'s address in `base`'s /16 (the first pods of a host-local
/// range: gateway .1, pods from .2).
fn pod_address(base: Ipv4Addr, i: usize) -> IpNet {
    let ip = Ipv4Addr::from(u32::from(base) + 2 + i as u32);
    IpNet::new(IpAddr::V4(ip), 16).unwrap_or_else(|_| IpNet::from(IpAddr::V4(ip)))
}

fn host_prefix(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Creates the pair (container end `eth0` made in `ns`) and returns the
/// host end's index and the container end's index.
fn veth_pair(host: &mut Handle, ctr: &mut Handle, ns: &NetNs) -> Result<(u32, u32), String> {
    let host_name = rcni_net::random_veth_name();
    host.create_veth(&VethSpec {
        name: host_name.clone(),
        peer_name: IFNAME.into(),
        peer_netns: Some(ns),
        ..VethSpec::default()
    })
    .map_err(err("create the veth pair"))?;
    let host_index = host.find_link(&host_name).map_err(err("host end"))?.index;
    let ctr_index = ctr.find_link(IFNAME).map_err(err("container end"))?.index;
    Ok((host_index, ctr_index))
}

/// A ptp ADD's kernel work: the veth pair into the container, the address
/// and ptp's two routes there (the kernel's subnet route replaced), the
/// gateway address and the host route on the host end.
fn ptp_add(ns_path: &str, address: IpNet, gateway: IpAddr) -> Result<(), String> {
    let ns = NetNs::open(ns_path).map_err(err("open the netns"))?;
    let mut host = Handle::new().map_err(err("netlink"))?;
    let mut ctr = Handle::new_in(&ns).map_err(err("netlink in the netns"))?;
    let (host_index, ctr_index) = veth_pair(&mut host, &mut ctr, &ns)?;
    host.set_up(host_index).map_err(err("host end up"))?;
    ctr.add_address(ctr_index, address)
        .map_err(err("container address"))?;
    ctr.set_up(ctr_index).map_err(err("container end up"))?;
    let subnet = address.trunc();
    let mut auto = Route::new(subnet);
    auto.oif = Some(ctr_index);
    ctr.delete_route(&auto).map_err(err("subnet route"))?;
    let mut to_gw = Route::new(host_prefix(gateway));
    to_gw.oif = Some(ctr_index);
    to_gw.scope = RT_SCOPE_LINK;
    to_gw.prefsrc = Some(address.addr());
    let mut via_gw = Route::new(subnet);
    via_gw.oif = Some(ctr_index);
    via_gw.gateway = Some(gateway);
    via_gw.prefsrc = Some(address.addr());
    for route in [to_gw, via_gw] {
        ctr.add_route(&route).map_err(err("container route"))?;
    }
    host.add_address(host_index, host_prefix(gateway))
        .map_err(err("gateway address"))?;
    let mut to_pod = Route::new(host_prefix(address.addr()));
    to_pod.oif = Some(host_index);
    to_pod.scope = RT_SCOPE_LINK;
    host.add_route(&to_pod).map_err(err("host route"))
}

/// The nf_tables rules of one bridge (ipMasq) + portmap ADD on nftables:
/// the masquerading rule of the address, two port mappings (DNAT) and
/// portmap's two masquerading rules, in one transaction.
fn rules_script(address: IpAddr, subnet: IpNet, pod: usize, host_ports: [u16; 2]) -> String {
    let comment = format!("\"floor-{pod}\"");
    let mut s = format!(
        "add rule {MASQ_TABLE} masq_checks ip saddr == {address} ip daddr != {subnet} masquerade comment {comment}\n"
    );
    for (host_port, port) in host_ports.iter().zip([80, 443]) {
        s.push_str(&format!(
            "add rule {HOSTPORT_TABLE} hostports tcp dport {host_port} dnat to {address}:{port} comment {comment}\n"
        ));
    }
    for src in [address.to_string(), "127.0.0.1".into()] {
        s.push_str(&format!(
            "add rule {HOSTPORT_TABLE} masquerading ip saddr {src} ip daddr {address} masquerade comment {comment}\n"
        ));
    }
    s
}

/// The tables and chains the rules go into, made once (an ADD finds them
/// made by the pods before it).
const RULES_SETUP: &str = "\
add table inet rcni_floor_masquerade
add chain inet rcni_floor_masquerade masq_checks
add chain inet rcni_floor_masquerade postrouting { type nat hook postrouting priority srcnat; }
add rule inet rcni_floor_masquerade postrouting goto masq_checks
add table ip rcni_floor_hostport
add chain ip rcni_floor_hostport hostports
add chain ip rcni_floor_hostport prerouting { type nat hook prerouting priority -100; }
add rule ip rcni_floor_hostport prerouting fib daddr type local jump hostports
add chain ip rcni_floor_hostport masquerading { type nat hook postrouting priority srcnat; }
";

/// Applies an nft script in one transaction.
///
/// NOTE(floor-nft): one `nft -f -` process until rcni-net encodes
/// nf_tables rules; then this becomes one netlink batch on a kept-open
/// socket, as rcni's own ADD will do, and the floor drops by the cost of
/// the process.
fn nft_apply(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("floor: nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| format!("floor: nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("floor: nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "floor: nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A bridge + portmap ADD's kernel work: the veth pair into the container,
/// the host end on the bridge and up, the address in the container, and
/// the rules.
fn bridge_portmap_add(
    ns_path: &str,
    bridge_index: u32,
    address: IpNet,
    pod: usize,
) -> Result<(), String> {
    let ns = NetNs::open(ns_path).map_err(err("open the netns"))?;
    let mut host = Handle::new().map_err(err("netlink"))?;
    let mut ctr = Handle::new_in(&ns).map_err(err("netlink in the netns"))?;
    let (host_index, ctr_index) = veth_pair(&mut host, &mut ctr, &ns)?;
    host.set_master(host_index, Some(bridge_index))
        .map_err(err("bridge port"))?;
    host.set_up(host_index).map_err(err("host end up"))?;
    ctr.add_address(ctr_index, address)
        .map_err(err("container address"))?;
    ctr.set_up(ctr_index).map_err(err("container end up"))?;
    let base = 30000 + 2 * pod as u16;
    nft_apply(&rules_script(
        address.addr(),
        address.trunc(),
        pod,
        [base, base + 1],
    ))
}

/// Runs `add` for `pods` fresh namespaces, timing each; removes them after.
fn series(
    label: &str,
    pods: usize,
    mut add: impl FnMut(&str, usize) -> Result<(), String>,
) -> Result<PodRun, String> {
    let prefix = format!("rbfl{}", std::process::id() % 10000);
    let mut run = PodRun {
        label: label.into(),
        add_ms: Vec::with_capacity(pods),
        del_ms: Vec::new(),
        del_cpu_ms: 0.0,
    };
    let mut result = Ok(());
    for i in 0..pods {
        let name = format!("{prefix}-{i}");
        sh("ip", &["netns", "add", &name])?;
        let start = Instant::now();
        result = add(&format!("/run/netns/{name}"), i);
        run.add_ms.push(ms(start.elapsed()));
        if result.is_err() {
            break;
        }
    }
    for i in 0..pods {
        let _ = sh("ip", &["netns", "del", &format!("{prefix}-{i}")]);
    }
    result.map(|()| run)
}

/// The ptp floor over `pods` pods.
pub fn ptp(pods: usize) -> Result<PodRun, String> {
    let base = Ipv4Addr::new(10, 220, 0, 0);
    let gateway = IpAddr::V4(Ipv4Addr::new(10, 220, 0, 1));
    // The host ends go with the namespaces, and their routes with them.
    series("ptp, kernel floor", pods, |ns, i| {
        ptp_add(ns, pod_address(base, i), gateway)
    })
}

/// The bridge + portmap floor over `pods` pods.
pub fn bridge_portmap(pods: usize) -> Result<PodRun, String> {
    let base = Ipv4Addr::new(10, 221, 0, 0);
    sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    sh("ip", &["addr", "add", "10.221.0.1/16", "dev", BRIDGE])?;
    sh("ip", &["link", "set", BRIDGE, "up"])?;
    let run = nft_apply(RULES_SETUP).and_then(|()| {
        let bridge_index = Handle::new()
            .and_then(|mut h| h.find_link(BRIDGE))
            .map_err(err("bridge"))?
            .index;
        series("bridge + portmap, kernel floor", pods, |ns, i| {
            bridge_portmap_add(ns, bridge_index, pod_address(base, i), i)
        })
    });
    let _ = sh("ip", &["link", "del", BRIDGE]);
    let _ = nft_apply(&format!(
        "delete table {MASQ_TABLE}\ndelete table {HOSTPORT_TABLE}\n"
    ));
    run
}
