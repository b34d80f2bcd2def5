//! The tc layer against the real kernel, in a throwaway namespace: what
//! is written reads back the same, over netlink and through `tc`.

#![allow(clippy::unwrap_used)]

mod common;

use common::TestNs;
use rcni_net::{
    Handle, LinkKind, LinkOptions, QdiscKind, Tbf, VethSpec, INGRESS_HANDLE, TC_H_INGRESS,
    TC_H_ROOT,
};
use std::process::Command;

fn tc(ns: &TestNs, args: &[&str]) -> String {
    let out = Command::new("tc")
        .arg("-n")
        .arg(&ns.name)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "tc {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link(h: &mut Handle, name: &str) -> u32 {
    h.find_link(name).unwrap().index
}

#[test]
fn tbf_ingress_and_redirect_read_back() {
    let ns = TestNs::new();
    let mut h = ns.handle();
    h.create_veth(&VethSpec {
        name: "shaped".into(),
        peer_name: "other".into(),
        ..VethSpec::default()
    })
    .unwrap();
    h.create_link(
        "ifbtest",
        &LinkKind::Ifb,
        &LinkOptions {
            up: true,
            ..LinkOptions::default()
        },
    )
    .unwrap();
    let (veth, ifb) = (link(&mut h, "shaped"), link(&mut h, "ifbtest"));

    // 1 MB/s with a one-second bucket of 15625000 ticks at 15.625 ticks/µs.
    let tbf = Tbf {
        rate: 1_000_000,
        limit: 50_000,
        buffer: 15_625_000,
    };
    h.add_root_tbf(veth, 0x0001_0000, &tbf).unwrap();
    let root = h
        .qdiscs(veth)
        .unwrap()
        .into_iter()
        .find(|q| q.parent == TC_H_ROOT)
        .unwrap();
    assert_eq!(root.handle, 0x0001_0000);
    assert_eq!(root.kind, QdiscKind::Tbf(tbf));
    let shown = tc(&ns, &["qdisc", "show", "dev", "shaped"]);
    assert!(
        shown.contains("tbf 1: root") && shown.contains("rate 8Mbit"),
        "{shown}"
    );

    // Beyond 32 bits of bytes per second: the 64-bit rate attribute.
    let fast = Tbf {
        rate: 6_000_000_000,
        limit: 100_000,
        buffer: 1_000,
    };
    h.add_root_tbf(ifb, 0x0001_0000, &fast).unwrap();
    let kinds: Vec<QdiscKind> = h.qdiscs(ifb).unwrap().into_iter().map(|q| q.kind).collect();
    assert_eq!(kinds, [QdiscKind::Tbf(fast)]);

    h.add_ingress_qdisc(veth).unwrap();
    h.add_redirect_filter(veth, INGRESS_HANDLE, 1, 0x0001_0001, ifb)
        .unwrap();
    assert!(h
        .qdiscs(veth)
        .unwrap()
        .iter()
        .any(|q| q.kind == QdiscKind::Ingress && q.handle == INGRESS_HANDLE));
    let filters = h.filters(veth, INGRESS_HANDLE).unwrap();
    assert!(
        filters
            .iter()
            .any(|f| f.kind == "u32" && f.redirect_to == Some(ifb)),
        "{filters:?}"
    );
    let shown = tc(&ns, &["filter", "show", "dev", "shaped", "parent", "ffff:"]);
    assert!(
        shown.contains("match 00000000/00000000 at 0")
            && shown.contains("Egress Redirect to device ifbtest"),
        "{shown}"
    );

    h.delete_qdisc(veth, TC_H_INGRESS, INGRESS_HANDLE).unwrap();
    h.delete_qdisc(veth, TC_H_ROOT, 0x0001_0000).unwrap();
    assert!(h
        .qdiscs(veth)
        .unwrap()
        .iter()
        .all(|q| matches!(&q.kind, QdiscKind::Other(k) if k == "noqueue")));
    assert!(h.delete_qdisc(veth, TC_H_ROOT, 0x0001_0000).is_err());
}
