//! The netlink layer against the real kernel, in throwaway namespaces made
//! with `ip netns add` (never the machine's own).

#![allow(clippy::unwrap_used)]

use ipnet::IpNet;
use rcni_net::{sysctl, Handle, LinkKind, NetNs, Route, VethSpec, RT_SCOPE_LINK};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static N: AtomicUsize = AtomicUsize::new(0);

struct Ns {
    name: String,
}

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "rnt{}x{}",
            std::process::id() % 100000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        Ns { name }
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    fn open(&self) -> (NetNs, Handle) {
        let ns = NetNs::open(self.path()).unwrap();
        let h = Handle::new_in(&ns).unwrap();
        (ns, h)
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn veth_across_namespaces_with_addresses_and_routes() {
    let (a, b) = (Ns::new(), Ns::new());
    let (_ans, mut ha) = a.open();
    let (bns, mut hb) = b.open();
    ha.create_veth(&VethSpec {
        name: "left".into(),
        peer_name: "right".into(),
        mtu: Some(1400),
        mac: Some([0x02, 0, 0, 0, 0, 1]),
        peer_mac: None,
        peer_netns: Some(&bns),
    })
    .unwrap();
    let left = ha.link_by_name("left").unwrap().unwrap();
    let right = hb.link_by_name("right").unwrap().unwrap();
    assert_eq!(left.kind.as_deref(), Some("veth"));
    assert_eq!(left.mtu, 1400);
    assert_eq!(right.mtu, 1400);
    assert_eq!(left.mac.as_deref(), Some(&[2u8, 0, 0, 0, 0, 1][..]));
    assert_eq!(left.link, Some(right.index), "peer index");
    assert!(ha.link_by_name("right").unwrap().is_none());
    assert_eq!(ha.link_by_index(left.index).unwrap().unwrap().name, "left");

    ha.set_up(left.index).unwrap();
    hb.set_up(right.index).unwrap();
    assert!(ha.link_by_name("left").unwrap().unwrap().admin_up);
    ha.add_address(left.index, net("10.9.0.1/24")).unwrap();
    hb.add_address(right.index, net("10.9.0.2/24")).unwrap();
    hb.add_address(right.index, net("fd00:9::2/64")).unwrap();
    let addrs = hb.addresses(Some(right.index)).unwrap();
    assert!(addrs.iter().any(|x| x.net == net("10.9.0.2/24")));
    assert!(addrs.iter().any(|x| x.net == net("fd00:9::2/64")));
    assert!(ha
        .add_address(left.index, net("10.9.0.1/24"))
        .unwrap_err()
        .is_exists());

    let mut via = Route::new(net("192.0.2.0/24"));
    via.gateway = Some("10.9.0.1".parse().unwrap());
    via.oif = Some(right.index);
    hb.add_route(&via).unwrap();
    let mut link_scoped = Route::new(net("198.51.100.7/32"));
    link_scoped.oif = Some(right.index);
    link_scoped.scope = RT_SCOPE_LINK;
    link_scoped.prefsrc = Some("10.9.0.2".parse().unwrap());
    hb.add_route(&link_scoped).unwrap();
    let mut default = Route::new(net("0.0.0.0/0"));
    default.gateway = Some("10.9.0.1".parse().unwrap());
    hb.add_route(&default).unwrap();
    let text = b.ip(&["route"]);
    assert!(text.contains("default via 10.9.0.1 dev right"), "{text}");
    assert!(
        text.contains("192.0.2.0/24 via 10.9.0.1 dev right"),
        "{text}"
    );
    assert!(
        text.contains("198.51.100.7 dev right scope link src 10.9.0.2"),
        "{text}"
    );
    let routes = hb.routes(None, None).unwrap();
    assert!(routes
        .iter()
        .any(|r| r.dst == net("192.0.2.0/24") && r.gateway == via.gateway));
    hb.delete_route(&via).unwrap();
    assert!(!b.ip(&["route"]).contains("192.0.2.0/24"));
    assert!(hb.delete_route(&via).unwrap_err().is_not_found());

    hb.delete_address(right.index, net("10.9.0.2/24")).unwrap();
    assert!(hb
        .delete_address(right.index, net("10.9.0.2/24"))
        .unwrap_err()
        .is_not_found());

    ha.delete_link(left.index).unwrap();
    assert!(ha.link_by_name("left").unwrap().is_none());
    assert!(
        hb.link_by_name("right").unwrap().is_none(),
        "deleting one end removes the pair"
    );
    assert!(ha.delete_link(left.index).unwrap_err().is_not_found());
}

#[test]
fn rename_alias_move_and_bridge() {
    let (a, b) = (Ns::new(), Ns::new());
    let (_ans, mut ha) = a.open();
    let (bns, mut hb) = b.open();
    ha.create_veth(&VethSpec {
        name: "v0".into(),
        peer_name: "v1".into(),
        mtu: None,
        mac: None,
        peer_mac: None,
        peer_netns: None,
    })
    .unwrap();
    let v0 = ha.link_by_name("v0").unwrap().unwrap();
    ha.set_name(v0.index, "renamed0").unwrap();
    ha.set_alias(v0.index, "was-v0").unwrap();
    let l = ha.link_by_index(v0.index).unwrap().unwrap();
    assert_eq!(
        (l.name.as_str(), l.alias.as_deref()),
        ("renamed0", Some("was-v0"))
    );
    ha.set_mtu(v0.index, 1300).unwrap();
    ha.set_mac(v0.index, [0x02, 1, 2, 3, 4, 5]).unwrap();
    let l = ha.link_by_index(v0.index).unwrap().unwrap();
    assert_eq!(l.mtu, 1300);
    assert_eq!(l.mac.as_deref(), Some(&[2u8, 1, 2, 3, 4, 5][..]));

    ha.create_link(
        "br0",
        &LinkKind::Bridge {
            vlan_filtering: false,
        },
        None,
        None,
        None,
    )
    .unwrap();
    let br = ha.link_by_name("br0").unwrap().unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    let v1 = ha.link_by_name("v1").unwrap().unwrap();
    ha.set_master(v1.index, Some(br.index)).unwrap();
    assert_eq!(
        ha.link_by_index(v1.index).unwrap().unwrap().master,
        Some(br.index)
    );
    ha.set_master(v1.index, None).unwrap();
    assert_eq!(ha.link_by_index(v1.index).unwrap().unwrap().master, None);

    ha.set_netns(v0.index, &bns).unwrap();
    assert!(ha.link_by_name("renamed0").unwrap().is_none());
    assert!(hb.link_by_name("renamed0").unwrap().is_some());
    ha.delete_link(br.index).unwrap();
    assert!(ha.links().unwrap().iter().all(|l| l.name != "br0"));
}

#[test]
fn sysctl_inside_a_namespace_and_missing_namespace() {
    let a = Ns::new();
    let (ns, _) = a.open();
    ns.run(|| sysctl::set("net.ipv4.ip_forward", "1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        ns.run(|| sysctl::get("net/ipv4/ip_forward"))
            .unwrap()
            .unwrap(),
        "1"
    );
    let here = sysctl::get("net.ipv4.conf.all.forwarding");
    assert!(here.is_ok());
    let err = NetNs::open("/run/netns/rcni-definitely-missing").unwrap_err();
    assert!(err.is_not_found());
}
