//! Link kinds this machine's kernel lacks (dummy, 8021q, ipvlan, vrf,
//! bridge VLAN filtering). Ignored by default so that they never pass
//! silently here; scripts/vm-tests.sh runs them under a full distribution
//! kernel.

#![allow(clippy::unwrap_used)]

mod common;

use common::{net, TestNs};
use rcni_net::{
    Handle, IpVlanFlag, IpVlanMode, LinkKind, LinkOptions, Route, VethSpec, RT_SCOPE_LINK,
};

fn parent(h: &mut Handle) -> u32 {
    h.create_veth(&VethSpec {
        name: "uplink".into(),
        peer_name: "uplink-peer".into(),
        ..VethSpec::default()
    })
    .unwrap();
    h.find_link("uplink").unwrap().index
}

#[test]
#[ignore = "needs the dummy module: run by scripts/vm-tests.sh"]
fn dummy_in_another_namespace() {
    let (a, b) = (TestNs::new(), TestNs::new());
    let (mut ha, mut hb) = (a.handle(), b.handle());
    ha.create_link(
        "dummy0",
        &LinkKind::Dummy,
        &LinkOptions {
            mtu: Some(9000),
            mac: Some([2, 0, 0, 0, 0, 0x42]),
            netns: Some(&b.ns),
            up: true,
            ..LinkOptions::default()
        },
    )
    .unwrap();
    assert!(ha.link_by_name("dummy0").unwrap().is_none());
    let d = hb.find_link("dummy0").unwrap();
    assert_eq!(d.kind.as_ref().map(LinkKind::name), Some("dummy"));
    assert_eq!(d.kind, Some(LinkKind::Dummy));
    assert_eq!((d.mtu, d.mac6()), (9000, Some([2, 0, 0, 0, 0, 0x42])));
    assert!(d.admin_up);
    hb.add_address(d.index, net("10.55.0.1/24")).unwrap();
    hb.delete_link(d.index).unwrap();
}

#[test]
#[ignore = "needs the 8021q module: run by scripts/vm-tests.sh"]
fn vlan_on_a_parent_into_another_namespace() {
    let (host, cont) = (TestNs::new(), TestNs::new());
    let (mut hh, mut hc) = (host.handle(), cont.handle());
    let p = parent(&mut hh);
    let kind = LinkKind::Vlan { master: p, id: 42 };
    hh.create_link(
        "vl42tmp",
        &kind,
        &LinkOptions {
            mtu: Some(1400),
            netns: Some(&cont.ns),
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let v = hc.find_link("vl42tmp").unwrap();
    assert_eq!(v.kind.as_ref().map(LinkKind::name), Some("vlan"));
    assert_eq!(v.kind, Some(kind));
    assert!(v.link_netnsid.is_some());
    hc.set_name(v.index, "eth0.42").unwrap();
    // Local one too, the id read back.
    hh.create_link(
        "uplink.7",
        &LinkKind::Vlan { master: p, id: 7 },
        &LinkOptions::default(),
    )
    .unwrap();
    assert_eq!(
        hh.find_link("uplink.7").unwrap().kind,
        Some(LinkKind::Vlan { master: p, id: 7 })
    );
}

#[test]
#[ignore = "needs the ipvlan module: run by scripts/vm-tests.sh"]
fn ipvlan_modes_and_flags() {
    let (host, cont) = (TestNs::new(), TestNs::new());
    let (mut hh, mut hc) = (host.handle(), cont.handle());
    let p = parent(&mut hh);
    let kind = LinkKind::IpVlan {
        master: p,
        mode: IpVlanMode::L3s,
        flag: IpVlanFlag::Private,
    };
    hh.create_link(
        "ipv0",
        &kind,
        &LinkOptions {
            netns: Some(&cont.ns),
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let l = hc.find_link("ipv0").unwrap();
    assert_eq!(l.kind.as_ref().map(LinkKind::name), Some("ipvlan"));
    assert_eq!(l.kind, Some(kind));
    let l2 = LinkKind::IpVlan {
        master: p,
        mode: IpVlanMode::L2,
        flag: IpVlanFlag::Bridge,
    };
    hh.create_link("ipv1", &l2, &LinkOptions::default())
        .unwrap();
    assert_eq!(hh.find_link("ipv1").unwrap().kind, Some(l2));
}

#[test]
#[ignore = "needs the vrf module: run by scripts/vm-tests.sh"]
fn vrf_with_a_port_and_a_route() {
    let a = TestNs::new();
    let mut ha = a.handle();
    ha.create_link(
        "vrf0",
        &LinkKind::Vrf { table: 1001 },
        &LinkOptions {
            up: true,
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let vrf = ha.find_link("vrf0").unwrap();
    assert_eq!(vrf.kind, Some(LinkKind::Vrf { table: 1001 }));
    let p = parent(&mut ha);
    ha.set_master(p, Some(vrf.index)).unwrap();
    ha.set_up(p).unwrap();
    ha.add_address(p, net("10.66.0.1/24")).unwrap();
    // The port's prefix route moves to the VRF's table.
    let routes = ha.routes(None, Some(1001)).unwrap();
    assert!(
        routes.iter().any(|r| r.dst == net("10.66.0.0/24")),
        "{routes:?}"
    );
    let extra = Route::new(net("10.67.0.0/24"))
        .with_oif(p)
        .with_scope(RT_SCOPE_LINK)
        .with_table(1001);
    ha.add_route(&extra).unwrap();
    ha.delete_route(&extra).unwrap();
    ha.set_master(p, None).unwrap();
    ha.delete_link(vrf.index).unwrap();
}

#[test]
#[ignore = "needs CONFIG_BRIDGE_VLAN_FILTERING: run by scripts/vm-tests.sh"]
fn bridge_with_vlan_filtering() {
    let a = TestNs::new();
    let mut ha = a.handle();
    let kind = LinkKind::Bridge {
        vlan_filtering: true,
    };
    ha.create_link("br0", &kind, &LinkOptions::default())
        .unwrap();
    assert_eq!(ha.find_link("br0").unwrap().kind, Some(kind));
}
