//! The kernel floor: only the kernel work of one ADD, done in this process
//! (no exec, no JSON, no IPAM store), as the yardstick rcni's ADD is held
//! to. Each pod gets a fresh network namespace, as in the scenarios, and
//! the same addresses, rules and link settings a real ADD would make.

use crate::measure::{ms, sh, PodRun};
use ipnet::IpNet;
use rcni_net::nf_tables::NftChange;
use rcni_net::{sysctl, Handle, Ipv4Conf, NetNs, Route, VethSpec, RT_SCOPE_LINK};
use rcni_netfilter::nft::{
    self, Action, AddrField, BaseChain, Change, Hook, Match, NfFamily, TableChange, Verdict, L4,
};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

/// The container's interface in every floor pod.
const IFNAME: &str = "eth0";
/// The bridge of the bridge + portmap floor.
const BRIDGE: &str = "rbfloor0";
/// nf_tables tables of the floor's own, so that the scenarios that run
/// after it find the tables rcni and the reference use as they left them.
const MASQ_TABLE: &str = "rcni_floor_masquerade";
const HOSTPORT_TABLE: &str = "rcni_floor_hostport";
/// nft's `dstnat` and `srcnat` priorities.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

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
    // The host end takes no router advertisements (ptp's and bridge's
    // sysctl; IPv6 settings have no netlink form).
    sysctl::set(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0").map_err(err("accept_ra"))?;
    Ok((host_index, ctr_index))
}

/// A ptp ADD's kernel work: the veth pair into the container, the address
/// and ptp's two routes there (the kernel's subnet route replaced), the
/// gateway address and the host route on the host end, and ipMasq's rule
/// (nftables).
fn ptp_add(ns_path: &str, address: IpNet, gateway: IpAddr, pod: usize) -> Result<(), String> {
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
    host.add_route(&to_pod).map_err(err("host route"))?;
    nft_apply(&[masquerade_rule(address.addr(), subnet, pod)])
}

/// The nf_tables rules of one bridge (ipMasq) + portmap ADD on nftables,
/// in the chains of rcni's layouts: the masquerading rule of the address,
/// two port mappings (DNAT) and portmap's two masquerading rules.
fn pod_rules(
    address: IpAddr,
    subnet: IpNet,
    pod: usize,
    host_ports: [u16; 2],
) -> Vec<TableChange<'static>> {
    let comment = Some(format!("floor-{pod}"));
    let own = IpNet::from(address);
    let addr = |field, net, equal| Match::Addr { field, net, equal };
    let mut out = vec![masquerade_rule(address, subnet, pod)];
    for (host_port, port) in host_ports.iter().zip([80, 443]) {
        out.push((
            NfFamily::Ipv4,
            HOSTPORT_TABLE,
            Change::append(
                "hostports",
                vec![Match::Dport(L4::Tcp, *host_port)],
                Action::Dnat(address, port),
                comment.clone(),
            ),
        ));
    }
    for source in [own, IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST))] {
        out.push((
            NfFamily::Ipv4,
            HOSTPORT_TABLE,
            Change::append(
                "masquerading",
                vec![
                    addr(AddrField::Saddr, source, true),
                    addr(AddrField::Daddr, own, true),
                ],
                Action::Masquerade,
                comment.clone(),
            ),
        ));
    }
    out
}

/// ipMasq's rule for one pod: its traffic leaving the subnet masquerades.
fn masquerade_rule(address: IpAddr, subnet: IpNet, pod: usize) -> TableChange<'static> {
    let addr = |field, net, equal| Match::Addr { field, net, equal };
    (
        NfFamily::Inet,
        MASQ_TABLE,
        Change::append(
            "masq_checks",
            vec![
                addr(AddrField::Saddr, IpNet::from(address), true),
                addr(AddrField::Daddr, subnet, false),
            ],
            Action::Masquerade,
            Some(format!("floor-{pod}")),
        ),
    )
}

fn nat_chain(name: &str, hook: Hook, priority: i32) -> Change<'static> {
    let base = BaseChain {
        kind: "nat",
        hook,
        priority,
        policy_accept: false,
    };
    Change::Chain(name.into(), Some(base), None)
}

/// ipMasq's table and chains, made once (an ADD finds them made by the
/// pods before it), with the entry rule of rcni's layout.
fn masquerade_setup() -> Vec<TableChange<'static>> {
    let masq = [
        Change::Table(None),
        Change::Chain("masq_checks".into(), None, None),
        nat_chain("postrouting", Hook::Postrouting, SRCNAT),
        Change::append(
            "postrouting",
            vec![],
            Action::Verdict(Verdict::Goto("masq_checks".into())),
            None,
        ),
    ];
    masq.into_iter()
        .map(|c| (NfFamily::Inet, MASQ_TABLE, c))
        .collect()
}

/// portmap's tables and chains, made once as [`masquerade_setup`]'s.
fn hostport_setup() -> Vec<TableChange<'static>> {
    let jump = |chain: &str| Action::Verdict(Verdict::Jump(chain.into()));
    let hostport = [
        Change::Table(None),
        Change::Chain("hostports".into(), None, None),
        nat_chain("prerouting", Hook::Prerouting, DSTNAT),
        Change::append(
            "prerouting",
            vec![Match::LocalDestination],
            jump("hostports"),
            None,
        ),
        nat_chain("masquerading", Hook::Postrouting, SRCNAT),
    ];
    hostport
        .into_iter()
        .map(|c| (NfFamily::Ipv4, HOSTPORT_TABLE, c))
        .collect()
}

/// Drops the floor's own tables.
fn drop_tables() {
    let drop = [
        (NfFamily::Inet, MASQ_TABLE, NftChange::DeleteTable),
        (NfFamily::Ipv4, HOSTPORT_TABLE, NftChange::DeleteTable),
    ];
    for table in drop {
        let _ = rcni_net::nf_tables::apply(&[table]);
    }
}

/// Applies the changes as one nf_tables transaction over netlink, from
/// this thread's kept-open socket, as rcni's own ADD does (no process).
fn nft_apply(changes: &[TableChange<'_>]) -> Result<(), String> {
    let requests = nft::encode(changes).ok_or("floor: a rule without a netlink form")?;
    rcni_net::nf_tables::apply(&requests).map_err(err("nf_tables"))
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
    // bridge's settings of the container end: no DAD (a sysctl, the first
    // lookup under /proc/sys in the new namespace), ARP announcements.
    ns.run(|| sysctl::set(&format!("net/ipv6/conf/{IFNAME}/accept_dad"), "0"))
        .and_then(|set| set)
        .map_err(err("accept_dad"))?;
    ctr.set_ipv4_conf(ctr_index, &[(Ipv4Conf::ArpNotify, 1)])
        .map_err(err("arp_notify"))?;
    ctr.add_address(ctr_index, address)
        .map_err(err("container address"))?;
    ctr.set_up(ctr_index).map_err(err("container end up"))?;
    // portmap's: hairpin from 127.0.0.1 routed to the pod.
    host.set_ipv4_conf(bridge_index, &[(Ipv4Conf::RouteLocalnet, 1)])
        .map_err(err("route_localnet"))?;
    let base = 30000 + 2 * pod as u16;
    nft_apply(&pod_rules(
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
    crate::measure::settle();
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
    let run = nft_apply(&masquerade_setup()).and_then(|()| {
        series("ptp, kernel floor", pods, |ns, i| {
            ptp_add(ns, pod_address(base, i), gateway, i)
        })
    });
    drop_tables();
    run
}

/// The bridge + portmap floor over `pods` pods.
pub fn bridge_portmap(pods: usize) -> Result<PodRun, String> {
    let base = Ipv4Addr::new(10, 221, 0, 0);
    sh("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    sh("ip", &["addr", "add", "10.221.0.1/16", "dev", BRIDGE])?;
    sh("ip", &["link", "set", BRIDGE, "up"])?;
    let setup: Vec<_> = masquerade_setup()
        .into_iter()
        .chain(hostport_setup())
        .collect();
    let run = nft_apply(&setup).and_then(|()| {
        let bridge_index = Handle::new()
            .and_then(|mut h| h.find_link(BRIDGE))
            .map_err(err("bridge"))?
            .index;
        series("bridge + portmap, kernel floor", pods, |ns, i| {
            bridge_portmap_add(ns, bridge_index, pod_address(base, i), i)
        })
    });
    let _ = sh("ip", &["link", "del", BRIDGE]);
    drop_tables();
    run
}
