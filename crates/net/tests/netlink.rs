//! The netlink layer against the real kernel, in throwaway namespaces
//! (never the machine's own). Needs root, veth, bridge and macvlan.

#![allow(clippy::unwrap_used)]

mod common;

use common::{net, TestNs};
use rcni_net::{
    sysctl, Handle, IpFamily, Ipv4Conf, LinkKind, LinkOptions, MacVlanMode, NetError, NetNs, Route,
    Rule, VethSpec, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN,
};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A veth pair `name` in `a` <-> `peer` in `b`, both up; returns indexes.
fn veth_pair(ha: &mut Handle, name: &str, b: &TestNs, hb: &mut Handle, peer: &str) -> (u32, u32) {
    ha.create_veth(&VethSpec {
        name: name.into(),
        peer_name: peer.into(),
        peer_netns: Some(&b.ns),
        ..VethSpec::default()
    })
    .unwrap();
    let l = ha.find_link(name).unwrap().index;
    let r = hb.find_link(peer).unwrap().index;
    ha.set_up(l).unwrap();
    hb.set_up(r).unwrap();
    (l, r)
}

#[test]
fn veth_across_namespaces() {
    let (a, b) = (TestNs::new(), TestNs::new());
    let (mut ha, mut hb) = (a.handle(), b.handle());
    ha.create_veth(&VethSpec {
        name: "left".into(),
        peer_name: "right".into(),
        mtu: Some(1400),
        mac: Some([0x02, 0, 0, 0, 0, 1]),
        peer_mac: Some([0x02, 0, 0, 0, 0, 2]),
        peer_netns: Some(&b.ns),
    })
    .unwrap();
    let left = ha.link_by_name("left").unwrap().unwrap();
    let right = hb.link_by_name("right").unwrap().unwrap();
    assert_eq!(left.kind, Some(LinkKind::Veth));
    assert_eq!(right.kind, Some(LinkKind::Veth));
    assert_eq!((left.mtu, right.mtu), (1400, 1400));
    assert_eq!(left.mac6(), Some([2, 0, 0, 0, 0, 1]));
    assert_eq!(right.mac_string(), "02:00:00:00:00:02");
    assert_eq!(left.link, Some(right.index), "peer index");
    assert_eq!(right.link, Some(left.index), "peer index");
    assert!(left.link_netnsid.is_some() && right.link_netnsid.is_some());
    assert!(!left.admin_up && !left.oper_up);
    assert!(
        ha.link_by_name("right").unwrap().is_none(),
        "peer is not here"
    );
    assert_eq!(ha.link_by_index(left.index).unwrap().unwrap().name, "left");
    // iproute2 agrees.
    let text = b.ip(&["-d", "link", "show", "right"]);
    assert!(text.contains("veth") && text.contains("mtu 1400"), "{text}");

    ha.set_up(left.index).unwrap();
    assert!(!ha
        .wait_oper_up(left.index, Duration::from_millis(50))
        .unwrap());
    hb.set_up(right.index).unwrap();
    assert!(ha.link_by_index(left.index).unwrap().unwrap().admin_up);
    assert!(ha.wait_oper_up(left.index, Duration::from_secs(5)).unwrap());
    assert!(hb
        .wait_oper_up(right.index, Duration::from_secs(5))
        .unwrap());

    // Every link of the namespace, in one dump.
    let names: Vec<String> = hb.links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"lo".to_string()) && names.contains(&"right".to_string()));

    // Deleting one end removes the pair.
    ha.delete_link(left.index).unwrap();
    assert!(ha.link_by_name("left").unwrap().is_none());
    assert!(hb.link_by_name("right").unwrap().is_none());
}

#[test]
fn veth_made_in_the_container_with_the_host_end_outside() {
    // The reference's layout: the pair is made from the container side.
    let (host, cont) = (TestNs::new(), TestNs::new());
    let mut hc = cont.handle();
    let host_name = rcni_net::random_veth_name();
    hc.create_veth(&VethSpec {
        name: "eth0".into(),
        peer_name: host_name.clone(),
        mtu: Some(1450),
        peer_netns: Some(&host.ns),
        ..VethSpec::default()
    })
    .unwrap();
    let eth0 = hc.find_link("eth0").unwrap();
    let mut hh = host.handle();
    let h = hh.find_link(&host_name).unwrap();
    assert_eq!(h.link, Some(eth0.index));
    assert_eq!(h.mtu, 1450);
    // A name clash in the peer's namespace is EEXIST.
    let err = hc
        .create_veth(&VethSpec {
            name: "eth1".into(),
            peer_name: host_name.clone(),
            peer_netns: Some(&host.ns),
            ..VethSpec::default()
        })
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    assert!(
        hc.link_by_name("eth1").unwrap().is_none(),
        "nothing left behind"
    );
}

#[test]
fn addresses_and_dad() {
    let (a, b) = (TestNs::new(), TestNs::new());
    let (mut ha, mut hb) = (a.handle(), b.handle());
    let (l, r) = veth_pair(&mut ha, "left", &b, &mut hb, "right");
    ha.add_address(l, net("10.9.0.1/24")).unwrap();
    hb.add_address(r, net("10.9.0.2/24")).unwrap();
    hb.add_address(r, net("fd00:9::2/64")).unwrap();
    let addrs = hb.addresses(Some(r)).unwrap();
    let v4 = addrs.iter().find(|x| x.net == net("10.9.0.2/24")).unwrap();
    assert_eq!((v4.index, v4.scope), (r, RT_SCOPE_UNIVERSE));
    assert_eq!(v4.label.as_deref(), Some("right"));
    assert!(addrs.iter().any(|x| x.net == net("fd00:9::2/64")));
    assert!(hb.addresses(None).unwrap().len() >= addrs.len());
    assert!(hb.addresses(Some(r)).unwrap().iter().all(|x| x.index == r));
    // One family's addresses: the same entries, none of the other family.
    for probe in [net("10.9.0.9/24").addr(), net("fd00:9::9/64").addr()] {
        let like = hb.addresses_like(r, probe).unwrap();
        let same: Vec<_> = addrs
            .iter()
            .filter(|x| x.net.addr().is_ipv4() == probe.is_ipv4())
            .cloned()
            .collect();
        assert!(!same.is_empty());
        assert_eq!(like, same, "{probe}");
    }
    let text = b.ip(&["addr", "show", "right"]);
    assert!(text.contains("inet 10.9.0.2/24 brd 10.9.0.255"), "{text}");

    // DAD: settle until no IPv6 address is tentative.
    hb.settle_addresses(r, Duration::from_secs(10)).unwrap();
    let v6 = hb
        .addresses(Some(r))
        .unwrap()
        .into_iter()
        .find(|x| x.net == net("fd00:9::2/64"))
        .unwrap();
    assert!(!v6.is_tentative() && !v6.is_dad_failed(), "{v6:?}");
    assert!(v6.flags & rcni_net::IFA_F_PERMANENT != 0);

    // Errors: duplicate, and deleting twice.
    let dup = ha.add_address(l, net("10.9.0.1/24")).unwrap_err();
    assert!(dup.is_exists(), "{dup}");
    hb.delete_address(r, net("10.9.0.2/24")).unwrap();
    hb.delete_address(r, net("fd00:9::2/64")).unwrap();
    assert!(!hb
        .addresses(Some(r))
        .unwrap()
        .iter()
        .any(|x| x.net == net("10.9.0.2/24") || x.net == net("fd00:9::2/64")));
    let gone = hb.delete_address(r, net("10.9.0.2/24")).unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
}

#[test]
fn routes() {
    let (a, b) = (TestNs::new(), TestNs::new());
    let (mut ha, mut hb) = (a.handle(), b.handle());
    let (l, r) = veth_pair(&mut ha, "left", &b, &mut hb, "right");
    ha.add_address(l, net("10.9.0.1/24")).unwrap();
    hb.add_address(r, net("10.9.0.2/24")).unwrap();
    hb.add_address(r, net("fd00:9::2/64")).unwrap();

    let via = Route::new(net("192.0.2.0/24"))
        .with_gateway(ip("10.9.0.1"))
        .with_oif(r);
    hb.add_route(&via).unwrap();
    let scoped = Route::new(net("198.51.100.7/32"))
        .with_oif(r)
        .with_scope(RT_SCOPE_LINK)
        .with_prefsrc(ip("10.9.0.2"));
    hb.add_route(&scoped).unwrap();
    let default = Route::new(net("0.0.0.0/0")).with_gateway(ip("10.9.0.1"));
    hb.add_route(&default).unwrap();
    let v6 = Route::new(net("fd00:77::/48"))
        .with_gateway(ip("fd00:9::1"))
        .with_oif(r)
        .with_priority(50);
    hb.add_route(&v6).unwrap();
    let mut metrics = Route::new(net("203.0.113.0/24")).with_gateway(ip("10.9.0.1"));
    metrics.mtu = Some(1300);
    metrics.advmss = Some(1200);
    hb.add_route(&metrics).unwrap();
    let other_table = Route::new(net("203.0.113.0/24"))
        .with_oif(r)
        .with_scope(RT_SCOPE_LINK)
        .with_table(1000);
    hb.add_route(&other_table).unwrap();

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
    assert!(text.contains("mtu 1300 advmss 1200"), "{text}");
    let text = b.ip(&["route", "show", "table", "1000"]);
    assert!(
        text.contains("203.0.113.0/24 dev right scope link"),
        "{text}"
    );
    let text = b.ip(&["-6", "route"]);
    assert!(
        text.contains("fd00:77::/48 via fd00:9::1 dev right metric 50"),
        "{text}"
    );

    let v4 = hb.routes(Some(IpFamily::V4), Some(RT_TABLE_MAIN)).unwrap();
    let find = |routes: &[Route], dst: &str| routes.iter().find(|x| x.dst == net(dst)).cloned();
    let got = find(&v4, "192.0.2.0/24").unwrap();
    assert_eq!(
        (got.gateway, got.oif, got.table),
        (via.gateway, Some(r), RT_TABLE_MAIN)
    );
    let got = find(&v4, "198.51.100.7/32").unwrap();
    assert_eq!(
        (got.scope, got.prefsrc, got.gateway),
        (RT_SCOPE_LINK, Some(ip("10.9.0.2")), None)
    );
    let got = find(&v4, "0.0.0.0/0").unwrap();
    assert_eq!(got.gateway, Some(ip("10.9.0.1")));
    let got = find(&v4, "203.0.113.0/24").unwrap();
    assert_eq!((got.mtu, got.advmss), (Some(1300), Some(1200)));
    assert!(v4
        .iter()
        .all(|x| x.table == RT_TABLE_MAIN && x.dst.addr().is_ipv4()));
    let t1000 = hb.routes(None, Some(1000)).unwrap();
    assert_eq!(t1000.len(), 1, "{t1000:?}");
    assert_eq!((t1000[0].table, t1000[0].oif), (1000, Some(r)));
    let v6s = hb.routes(Some(IpFamily::V6), None).unwrap();
    let got = find(&v6s, "fd00:77::/48").unwrap();
    assert_eq!((got.gateway, got.priority), (v6.gateway, Some(50)));

    // What the kernel would use.
    let chosen = hb.route_get(ip("192.0.2.99")).unwrap();
    assert_eq!(
        (chosen.oif, chosen.gateway),
        (Some(r), Some(ip("10.9.0.1")))
    );
    assert_eq!(chosen.dst, net("192.0.2.99/32"));

    // Duplicates, replace, append.
    assert!(hb.add_route(&via).unwrap_err().is_exists());
    hb.replace_route(&Route::new(net("192.0.2.0/24")).with_gateway(ip("10.9.0.3")))
        .unwrap();
    let now: Vec<Route> = hb
        .routes(Some(IpFamily::V4), None)
        .unwrap()
        .into_iter()
        .filter(|x| x.dst == net("192.0.2.0/24"))
        .collect();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].gateway, Some(ip("10.9.0.3")));
    hb.append_route(&Route::new(net("192.0.2.0/24")).with_gateway(ip("10.9.0.4")))
        .unwrap();
    let n = hb
        .routes(Some(IpFamily::V4), None)
        .unwrap()
        .iter()
        .filter(|x| x.dst == net("192.0.2.0/24"))
        .count();
    assert_eq!(n, 2);

    // Deletes.
    hb.delete_route(&Route::new(net("192.0.2.0/24")).with_gateway(ip("10.9.0.3")))
        .unwrap();
    hb.delete_route(&Route::new(net("192.0.2.0/24")).with_gateway(ip("10.9.0.4")))
        .unwrap();
    assert!(!b.ip(&["route"]).contains("192.0.2.0/24"));
    let gone = hb.delete_route(&via).unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    hb.delete_route(&scoped).unwrap();
    hb.delete_route(&default).unwrap();
    hb.delete_route(&v6).unwrap();
    assert!(hb.delete_route(&v6).unwrap_err().is_not_found());
    hb.delete_route(&other_table).unwrap();
    assert!(hb.routes(None, Some(1000)).unwrap().is_empty());
}

#[test]
fn rules() {
    let b = TestNs::new();
    let mut hb = b.handle();
    let defaults = hb.rules(None).unwrap();
    // local, main and default; IPv6 has no default.
    assert_eq!(defaults.len(), 5, "{defaults:?}");
    assert_eq!((defaults[0].table, defaults[0].priority), (255, Some(0)));
    let v4 = Rule::from_source(net("10.9.0.2/32"), 100);
    hb.add_rule(&v4).unwrap();
    let mut v6 = Rule::from_source(net("fd00:9::2/128"), 5000);
    v6.priority = Some(1000);
    hb.add_rule(&v6).unwrap();
    assert!(hb.add_rule(&v6).unwrap_err().is_exists());

    let text = b.ip(&["rule"]);
    // Without a priority the kernel picks one below main's.
    assert!(text.contains("32765:\tfrom 10.9.0.2 lookup 100"), "{text}");
    let text = b.ip(&["-6", "rule"]);
    assert!(text.contains("1000:\tfrom fd00:9::2 lookup 5000"), "{text}");

    let got = hb.rules(Some(IpFamily::V4)).unwrap();
    let ours = got.iter().find(|r| r.src.is_some()).unwrap();
    assert_eq!(
        (ours.src, ours.table, ours.priority),
        (Some(net("10.9.0.2/32")), 100, Some(32765))
    );
    let main = got.iter().find(|r| r.table == RT_TABLE_MAIN).unwrap();
    assert_eq!((main.src, main.priority), (None, Some(32766)));
    let got = hb.rules(Some(IpFamily::V6)).unwrap();
    assert!(got.contains(&v6), "{got:?}");

    hb.delete_rule(&v4).unwrap();
    hb.delete_rule(&v6).unwrap();
    assert!(hb.delete_rule(&v4).unwrap_err().is_not_found());
    assert_eq!(hb.rules(None).unwrap(), defaults);
}

#[test]
fn netns_lock_excludes_other_openers() {
    let b = TestNs::new();
    let first = NetNs::open(format!("/run/netns/{}", b.name)).unwrap();
    let second = NetNs::open(format!("/run/netns/{}", b.name)).unwrap();
    first.lock_exclusive(Duration::from_secs(1)).unwrap();
    let busy = second
        .lock_exclusive(Duration::from_millis(50))
        .unwrap_err();
    assert!(busy.to_string().contains("lock netns"), "{busy}");
    drop(first);
    second.lock_exclusive(Duration::from_millis(50)).unwrap();
}

#[test]
fn rename_alias_mtu_mac_and_move() {
    let (a, b) = (TestNs::new(), TestNs::new());
    let (mut ha, mut hb) = (a.handle(), b.handle());
    ha.create_veth(&VethSpec {
        name: "v0".into(),
        peer_name: "v1".into(),
        ..VethSpec::default()
    })
    .unwrap();
    let v0 = ha.find_link("v0").unwrap();
    let v1 = ha.find_link("v1").unwrap();
    assert_eq!(v0.link, Some(v1.index));
    assert_eq!(v0.link_netnsid, None, "same namespace");

    ha.set_name(v0.index, "renamed.0").unwrap();
    ha.set_alias(v0.index, "was v0").unwrap();
    let l = ha.link_by_index(v0.index).unwrap().unwrap();
    assert_eq!(
        (l.name.as_str(), l.alias.as_deref()),
        ("renamed.0", Some("was v0"))
    );
    assert!(ha.link_by_name("v0").unwrap().is_none());
    ha.set_mtu(v0.index, 1300).unwrap();
    ha.set_mac(v0.index, [0x02, 1, 2, 3, 4, 5]).unwrap();
    ha.set_txqlen(v0.index, 500).unwrap();
    ha.set_promisc(v0.index, true).unwrap();
    ha.set_allmulticast(v0.index, true).unwrap();
    let l = ha.link_by_index(v0.index).unwrap().unwrap();
    assert_eq!(l.mtu, 1300);
    assert_eq!(l.mac6(), Some([2, 1, 2, 3, 4, 5]));
    assert!(l.promisc);
    let text = a.ip(&["link", "show", "renamed.0"]);
    assert!(
        text.contains("qlen 500") && text.contains("ALLMULTI"),
        "{text}"
    );
    ha.set_promisc(v0.index, false).unwrap();
    assert!(!ha.link_by_index(v0.index).unwrap().unwrap().promisc);
    ha.set_alias(v0.index, "").unwrap();
    assert_eq!(ha.link_by_index(v0.index).unwrap().unwrap().alias, None);

    // Move to b and back; the alias and MAC travel with it.
    ha.set_alias(v0.index, "travels").unwrap();
    ha.set_netns(v0.index, &b.ns).unwrap();
    assert!(ha.link_by_name("renamed.0").unwrap().is_none());
    let moved = hb.find_link("renamed.0").unwrap();
    assert_eq!(moved.alias.as_deref(), Some("travels"));
    assert_eq!(moved.mac6(), Some([2, 1, 2, 3, 4, 5]));
    assert_eq!(moved.link, Some(v1.index), "peer index is in a");
    assert!(moved.link_netnsid.is_some());
    hb.set_netns(moved.index, &a.ns).unwrap();
    assert!(hb.link_by_name("renamed.0").unwrap().is_none());
    ha.find_link("renamed.0").unwrap();
}

#[test]
fn bridge_with_a_port() {
    // (vlan_filtering needs CONFIG_BRIDGE_VLAN_FILTERING: see tests/vm_kinds.rs.)
    let a = TestNs::new();
    let mut ha = a.handle();
    let bridge = LinkKind::Bridge {
        vlan_filtering: false,
    };
    ha.create_link(
        "br0",
        &bridge,
        &LinkOptions {
            mtu: Some(1450),
            up: true,
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let br = ha.find_link("br0").unwrap();
    assert_eq!(br.kind.as_ref().map(LinkKind::name), Some("bridge"));
    assert_eq!(br.kind, Some(bridge.clone()));
    assert!(br.admin_up);
    assert_eq!(br.mtu, 1450);
    let dup = ha
        .create_link("br0", &bridge, &LinkOptions::default())
        .unwrap_err();
    assert!(dup.is_exists(), "{dup}");
    ha.create_link("br1", &bridge, &LinkOptions::default())
        .unwrap();
    let br1 = ha.find_link("br1").unwrap();
    assert!(!br1.admin_up);
    ha.set_promisc(br1.index, true).unwrap();
    assert!(ha.find_link("br1").unwrap().promisc);

    ha.create_veth(&VethSpec {
        name: "p0".into(),
        peer_name: "p1".into(),
        ..VethSpec::default()
    })
    .unwrap();
    let p0 = ha.find_link("p0").unwrap();
    assert_eq!(p0.master, None);
    ha.set_master(p0.index, Some(br.index)).unwrap();
    assert_eq!(
        ha.link_by_index(p0.index).unwrap().unwrap().master,
        Some(br.index)
    );
    ha.set_hairpin(p0.index, true).unwrap();
    ha.set_isolated(p0.index, true).unwrap();
    let text = a.ip(&["-d", "link", "show", "p0"]);
    assert!(text.contains("hairpin on"), "{text}");
    assert!(text.contains("isolated on"), "{text}");
    ha.set_hairpin(p0.index, false).unwrap();
    assert!(a.ip(&["-d", "link", "show", "p0"]).contains("hairpin off"));
    ha.set_master(p0.index, None).unwrap();
    assert_eq!(ha.link_by_index(p0.index).unwrap().unwrap().master, None);

    ha.set_master(p0.index, Some(br.index)).unwrap();
    ha.delete_link(br.index).unwrap();
    ha.delete_link(br1.index).unwrap();
    assert!(ha
        .links()
        .unwrap()
        .iter()
        .all(|l| !l.name.starts_with("br")));
    assert_eq!(ha.find_link("p0").unwrap().master, None, "released");
}

#[test]
fn macvlan_created_directly_in_another_namespace() {
    let (host, cont) = (TestNs::new(), TestNs::new());
    let (mut hh, mut hc) = (host.handle(), cont.handle());
    ha_veth_parent(&mut hh);
    let parent = hh.find_link("uplink").unwrap();
    hh.create_link(
        "mv0tmp",
        &LinkKind::MacVlan {
            master: parent.index,
            mode: MacVlanMode::Bridge,
            bc_queue_len: None,
        },
        &LinkOptions {
            mtu: Some(1400),
            mac: Some([0x02, 9, 9, 9, 9, 9]),
            netns: Some(&cont.ns),
            ..LinkOptions::default()
        },
    )
    .unwrap();
    assert!(
        hh.link_by_name("mv0tmp").unwrap().is_none(),
        "not on the host"
    );
    let mv = hc.find_link("mv0tmp").unwrap();
    assert_eq!(mv.kind.as_ref().map(LinkKind::name), Some("macvlan"));
    assert_eq!(mv.mtu, 1400);
    assert_eq!(mv.mac6(), Some([0x02, 9, 9, 9, 9, 9]));
    assert!(mv.link_netnsid.is_some(), "parent is in another namespace");
    match mv.kind {
        Some(LinkKind::MacVlan { master, mode, .. }) => {
            assert_eq!((master, mode), (parent.index, MacVlanMode::Bridge));
        }
        ref other => panic!("{other:?}"),
    }
    // As the reference does: created under a temporary name, then renamed.
    hc.set_name(mv.index, "eth0").unwrap();
    hc.set_up(mv.index).unwrap();
    assert_eq!(hc.find_link("eth0").unwrap().index, mv.index);

    hh.create_link(
        "mvpriv",
        &LinkKind::MacVlan {
            master: parent.index,
            mode: MacVlanMode::Private,
            bc_queue_len: None,
        },
        &LinkOptions::default(),
    )
    .unwrap();
    let p = hh.find_link("mvpriv").unwrap();
    assert!(
        matches!(
            p.kind,
            Some(LinkKind::MacVlan { master, mode: MacVlanMode::Private, .. }) if master == parent.index
        ),
        "{p:?}"
    );
    assert_eq!(p.link, Some(parent.index));
    assert_eq!(p.link_netnsid, None);
    // Deleting the parent takes the macvlans with it, in both namespaces.
    hh.delete_link(parent.index).unwrap();
    assert!(hc.link_by_name("eth0").unwrap().is_none());
    assert!(hh.link_by_name("mvpriv").unwrap().is_none());
}

/// A veth whose end `uplink` serves as a parent device.
fn ha_veth_parent(h: &mut Handle) {
    h.create_veth(&VethSpec {
        name: "uplink".into(),
        peer_name: "uplink-peer".into(),
        ..VethSpec::default()
    })
    .unwrap();
}

#[test]
fn errors_are_mapped() {
    let a = TestNs::new();
    let mut ha = a.handle();
    let e = ha.delete_link(987_654).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.errno(), Some(rcni_net::ENODEV));
    assert!(e.to_string().contains("delete link 987654"), "{e}");
    assert!(ha.set_up(987_654).unwrap_err().is_not_found());
    assert!(ha.link_by_index(987_654).unwrap().is_none());
    assert!(ha.link_by_name("nope0").unwrap().is_none());
    assert!(ha.link_by_name("much-too-long-a-name").unwrap().is_none());
    assert!(ha.find_link("nope0").unwrap_err().is_not_found());

    // Loopback addresses get scope host, as `ip addr add` gives them.
    let lo = ha.find_link("lo").unwrap();
    ha.set_up(lo.index).unwrap();
    ha.add_address(lo.index, net("127.0.0.9/8")).unwrap();
    let e = ha.add_address(lo.index, net("127.0.0.9/8")).unwrap_err();
    assert!(e.is_exists(), "{e}");
    let got = ha.addresses(Some(lo.index)).unwrap();
    let a9 = got.iter().find(|x| x.net == net("127.0.0.9/8")).unwrap();
    assert_eq!(a9.scope, rcni_net::RT_SCOPE_HOST);
    ha.add_address(lo.index, net("10.77.0.1/32")).unwrap();
    assert!(ha
        .add_address(lo.index, net("10.77.0.1/32"))
        .unwrap_err()
        .is_exists());

    // The kernel's extended ack comes through.
    let e = ha
        .add_route(&Route::new(net("10.0.0.0/8")).with_gateway(ip("192.0.2.1")))
        .unwrap_err();
    match &e {
        NetError::Netlink { msg, errno, .. } => {
            assert!(*errno > 0);
            assert!(msg.as_deref().is_some_and(|m| !m.is_empty()), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    // Bad names are refused before the kernel sees them.
    let e = ha
        .create_veth(&VethSpec {
            name: "a/b".into(),
            peer_name: "c".into(),
            ..VethSpec::default()
        })
        .unwrap_err();
    assert!(matches!(e, NetError::InvalidArgument(_)), "{e}");
}

#[test]
fn namespaces() {
    let missing = NetNs::open("/run/netns/rcni-nettest-definitely-missing").unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let not_ns = NetNs::open(std::env::current_exe().unwrap()).unwrap_err();
    assert!(matches!(not_ns, NetError::InvalidArgument(_)), "{not_ns}");
    assert!(!not_ns.is_not_found());

    let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let a = TestNs::new();
    let inside =
        a.ns.run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
            .unwrap();
    assert_ne!(inside, here);
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        here
    );
    assert_eq!(
        a.ns.path().to_str().unwrap(),
        format!("/run/netns/{}", a.name)
    );

    // NetNs::current inside, and a Handle::new made there sees only lo.
    let (cur, links) =
        a.ns.run(|| {
            let cur = NetNs::current().unwrap();
            let fd = format!("/proc/self/fd/{}", cur.fd().as_raw_fd());
            let links = Handle::new().unwrap().links().unwrap();
            (std::fs::read_link(fd).unwrap(), links)
        })
        .unwrap();
    assert_eq!(cur, inside);
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].name, "lo");
}

#[test]
fn sysctl_inside_a_namespace() {
    let a = TestNs::new();
    let mut ha = a.handle();
    ha.create_veth(&VethSpec {
        name: "rcnisc.0".into(),
        peer_name: "rcnisc1".into(),
        ..VethSpec::default()
    })
    .unwrap();
    // Interface names with dots work in the slash form.
    let key = "net/ipv6/conf/rcnisc.0/accept_ra";
    a.ns.run(|| sysctl::set(key, "0")).unwrap().unwrap();
    assert_eq!(a.ns.run(|| sysctl::get(key)).unwrap().unwrap(), "0");
    a.ns.run(|| sysctl::set(key, "2")).unwrap().unwrap();
    assert_eq!(a.ns.run(|| sysctl::get(key)).unwrap().unwrap(), "2");
    // The dotted form swaps '.' and '/'.
    assert_eq!(
        a.ns.run(|| sysctl::get("net.ipv6.conf.rcnisc/0.accept_ra"))
            .unwrap()
            .unwrap(),
        "2"
    );
    // This thread is not in that namespace.
    assert!(sysctl::get(key).unwrap_err().is_not_found());

    // A global one: flip it inside, the host keeps its value.
    let host = sysctl::get("net.ipv4.ip_forward").unwrap();
    let flipped = if host == "1" { "0" } else { "1" };
    a.ns.run(|| sysctl::set("net.ipv4.ip_forward", flipped))
        .unwrap()
        .unwrap();
    assert_eq!(
        a.ns.run(|| sysctl::get("net.ipv4.ip_forward"))
            .unwrap()
            .unwrap(),
        flipped
    );
    assert_eq!(sysctl::get("net.ipv4.ip_forward").unwrap(), host);
}

#[test]
fn ipv4_settings_over_netlink_are_the_sysctls() {
    let a = TestNs::new();
    let mut ha = a.handle();
    ha.create_veth(&VethSpec {
        name: "rcnic4.0".into(),
        peer_name: "rcnic4b".into(),
        ..VethSpec::default()
    })
    .unwrap();
    let index = ha.find_link("rcnic4.0").unwrap().index;
    let read = |name: &str| {
        a.ns.run(|| sysctl::get(&format!("net/ipv4/conf/rcnic4.0/{name}")))
            .unwrap()
            .unwrap()
    };
    let untouched = read("rp_filter");
    ha.set_ipv4_conf(
        index,
        &[(Ipv4Conf::ArpNotify, 1), (Ipv4Conf::RouteLocalnet, 1)],
    )
    .unwrap();
    assert_eq!(
        (read("arp_notify"), read("route_localnet")),
        ("1".into(), "1".into())
    );
    ha.set_ipv4_conf(index, &[(Ipv4Conf::RouteLocalnet, 0)])
        .unwrap();
    assert_eq!(
        (read("arp_notify"), read("route_localnet")),
        ("1".into(), "0".into())
    );
    // Only the settings given change; the peer is left alone.
    assert_eq!(read("rp_filter"), untouched);
    let peer = a.ns.run(|| sysctl::get("net/ipv4/conf/rcnic4b/arp_notify"));
    assert_eq!(peer.unwrap().unwrap(), "0");
    assert!(ha.set_ipv4_conf(9999, &[(Ipv4Conf::ArpNotify, 1)]).is_err());
}

#[test]
fn forwarding_read_over_netlink_follows_the_sysctls() {
    let a = TestNs::new();
    let mut ha = a.handle();
    for (family, key) in [
        (IpFamily::V4, "net/ipv4/ip_forward"),
        (IpFamily::V6, "net/ipv6/conf/all/forwarding"),
    ] {
        for value in ["0", "1", "0"] {
            a.ns.run(|| sysctl::set(key, value)).unwrap().unwrap();
            assert_eq!(ha.forwarding(family).unwrap(), value == "1", "{key}");
        }
    }
}

#[test]
fn big_dumps_span_many_datagrams() {
    let a = TestNs::new();
    let mut ha = a.handle();
    for i in 0..60 {
        ha.create_veth(&VethSpec {
            name: format!("m{i}a"),
            peer_name: format!("m{i}b"),
            ..VethSpec::default()
        })
        .unwrap();
        let idx = ha.find_link(&format!("m{i}a")).unwrap().index;
        ha.set_up(idx).unwrap();
        ha.add_address(idx, net(&format!("10.{i}.0.1/24"))).unwrap();
        ha.add_address(idx, net(&format!("fd00:{i}::1/64")))
            .unwrap();
    }
    let links = ha.links().unwrap();
    assert_eq!(links.len(), 121, "lo + 120 veth ends");
    let addrs = ha.addresses(None).unwrap();
    assert!(addrs.len() >= 120, "{}", addrs.len());
    for i in 0..60 {
        assert!(addrs
            .iter()
            .any(|x| x.net == net(&format!("10.{i}.0.1/24"))));
    }
    // Each veth address brings a prefix route.
    let routes = ha.routes(Some(IpFamily::V4), Some(RT_TABLE_MAIN)).unwrap();
    assert_eq!(routes.len(), 60, "{routes:?}");
}

#[test]
fn ifb_created_up() {
    let a = TestNs::new();
    let mut ha = a.handle();
    ha.create_link(
        "ifb0",
        &LinkKind::Ifb,
        &LinkOptions {
            mtu: Some(1400),
            up: true,
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let ifb = ha.find_link("ifb0").unwrap();
    assert_eq!(ifb.kind.as_ref().map(LinkKind::name), Some("ifb"));
    assert_eq!(ifb.kind, Some(LinkKind::Ifb));
    assert!(ifb.admin_up);
    assert_eq!(ifb.mtu, 1400);
    ha.delete_link(ifb.index).unwrap();
    assert!(ha.link_by_name("ifb0").unwrap().is_none());
}

#[test]
fn nf_tables_probes_see_tables_and_chains() {
    use rcni_net::nf_tables::{chain_exists, table_exists, NfFamily};
    let a = TestNs::new();
    let probe = |family: NfFamily, table: &'static str, chain: Option<&'static str>| {
        a.ns.run(move || match chain {
            Some(c) => chain_exists(family, table, c),
            None => table_exists(family, table),
        })
        .unwrap()
        .unwrap()
    };
    assert!(!probe(NfFamily::Inet, "cni_plugins_masquerade", None));
    assert!(!probe(NfFamily::Ipv4, "nat", Some("CNI-0123")));
    let run = |cmd: &str| {
        let status = std::process::Command::new("ip")
            .args(["netns", "exec", &a.name, "sh", "-c", cmd])
            .status()
            .unwrap();
        assert!(status.success(), "{cmd}");
    };
    run("nft add table inet cni_plugins_masquerade && iptables -t nat -N CNI-0123");
    assert!(probe(NfFamily::Inet, "cni_plugins_masquerade", None));
    assert!(!probe(NfFamily::Ipv4, "cni_plugins_masquerade", None));
    assert!(probe(NfFamily::Ipv4, "nat", Some("CNI-0123")));
    assert!(!probe(NfFamily::Ipv6, "nat", Some("CNI-0123")));
    assert!(!probe(NfFamily::Ipv4, "nat", Some("CNI-4567")));
}

#[test]
fn nf_tables_rules_are_listed_and_deleted_over_netlink() {
    use rcni_net::nf_tables::{delete, list_rules, NfFamily, NftDeletion};
    let a = TestNs::new();
    let nft = |script: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &a.name, "nft", "-a", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(script.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "{script}");
    };
    nft("add table ip t\nadd chain ip t one\nadd chain ip t two\n\
         add rule ip t one ip saddr 10.0.0.1 accept comment \"ctr-a\"\n\
         add rule ip t one ip saddr 10.0.0.2 accept comment \"ctr-b\"\n\
         add rule ip t two return\n");
    let list = |chain: Option<&'static str>| {
        a.ns.run(move || list_rules(NfFamily::Ipv4, "t", chain))
            .unwrap()
            .unwrap()
    };
    let all = list(None);
    let comments: Vec<(&str, &str)> = all
        .iter()
        .map(|r| (r.chain.as_str(), r.comment.as_str()))
        .collect();
    assert_eq!(comments, [("one", "ctr-a"), ("one", "ctr-b"), ("two", "")]);
    assert_eq!(list(Some("two")).len(), 1);
    assert!(a
        .ns
        .run(|| list_rules(NfFamily::Ipv4, "absent", None))
        .unwrap()
        .unwrap()
        .is_empty());
    assert!(a
        .ns
        .run(|| list_rules(NfFamily::Ipv6, "t", None))
        .unwrap()
        .unwrap()
        .is_empty());

    // One transaction: a rule and a whole chain.
    let gone = vec![
        NftDeletion::Rule {
            chain: "one".into(),
            handle: all[0].handle,
        },
        NftDeletion::Rule {
            chain: "two".into(),
            handle: all[2].handle,
        },
        NftDeletion::Chain("two".into()),
    ];
    a.ns.run(move || delete(NfFamily::Ipv4, "t", &gone))
        .unwrap()
        .unwrap();
    let left = list(None);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].comment, "ctr-b");
    assert!(!a
        .ns
        .run(|| rcni_net::nf_tables::chain_exists(NfFamily::Ipv4, "t", "two"))
        .unwrap()
        .unwrap());

    // All or nothing: a missing handle fails the whole transaction.
    let bad = vec![
        NftDeletion::Rule {
            chain: "one".into(),
            handle: left[0].handle,
        },
        NftDeletion::Rule {
            chain: "one".into(),
            handle: 999_999,
        },
    ];
    let err =
        a.ns.run(move || delete(NfFamily::Ipv4, "t", &bad))
            .unwrap()
            .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(list(None).len(), 1);
}

#[test]
fn nf_tables_tables_are_deleted_with_their_rules_over_netlink() {
    use rcni_net::nf_tables::{apply, table_exists, NfFamily, NftChange};
    let a = TestNs::new();
    let change = |c: NftChange| vec![(NfFamily::Ipv4, "t", c)];
    let add = vec![
        (NfFamily::Ipv4, "t", NftChange::AddTable { comment: None }),
        (
            NfFamily::Ipv4,
            "t",
            NftChange::AddChain {
                name: "c".into(),
                base: None,
                comment: None,
            },
        ),
        (
            NfFamily::Ipv4,
            "t",
            NftChange::AddRule {
                chain: "c".into(),
                first: false,
                exprs: vec![],
                comment: Some("x".into()),
            },
        ),
    ];
    let exists = || {
        a.ns.run(|| table_exists(NfFamily::Ipv4, "t"))
            .unwrap()
            .unwrap()
    };
    a.ns.run(move || apply(&add)).unwrap().unwrap();
    assert!(exists());
    a.ns.run(move || apply(&change(NftChange::DeleteTable)))
        .unwrap()
        .unwrap();
    assert!(!exists());
    let err =
        a.ns.run(move || apply(&change(NftChange::DeleteTable)))
            .unwrap()
            .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

/// A transaction that adds chains, some already there and some not: the
/// chains are looked up together (one send, answers of both kinds), those
/// that exist are left out, the new ones made, and the existing chain
/// keeps its rule.
#[test]
fn nf_tables_adds_only_the_chains_that_are_missing() {
    use rcni_net::nf_tables::{apply, chain_exists, list_rules, NfFamily, NftChange};
    let a = TestNs::new();
    let chain = |name: &str| {
        (
            NfFamily::Ipv4,
            "t",
            NftChange::AddChain {
                name: name.into(),
                base: None,
                comment: None,
            },
        )
    };
    let rule = (
        NfFamily::Ipv4,
        "t",
        NftChange::AddRule {
            chain: "old".into(),
            first: false,
            exprs: vec![],
            comment: Some("kept".into()),
        },
    );
    let first = vec![
        (NfFamily::Ipv4, "t", NftChange::AddTable { comment: None }),
        chain("old"),
        rule,
    ];
    a.ns.run(move || apply(&first)).unwrap().unwrap();
    let second = vec![
        (NfFamily::Ipv4, "t", NftChange::AddTable { comment: None }),
        chain("new1"),
        chain("old"),
        chain("new2"),
    ];
    a.ns.run(move || apply(&second)).unwrap().unwrap();
    for name in ["old", "new1", "new2"] {
        let name = name.to_string();
        assert!(a
            .ns
            .run(move || chain_exists(NfFamily::Ipv4, "t", &name))
            .unwrap()
            .unwrap());
    }
    let rules =
        a.ns.run(|| list_rules(NfFamily::Ipv4, "t", Some("old")))
            .unwrap()
            .unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].comment, "kept");
}
