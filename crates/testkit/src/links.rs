//! What the tests of the link plugins (ipvlan, vlan, dummy, vrf) share on a
//! [`World`] made with [`World::with_master`]: their config, and the checks
//! every such plugin passes (ADD, DEL leaving nothing, bad input).

use crate::{assert_only_lo, link_details, Call, Netns, World};
use serde_json::{json, Value};

impl World {
    /// A `plugin` config on this network: host-local on `subnet` (from
    /// `.10`, a route to 10.99.0.0/16), plus `extra` keys.
    pub fn link_conf(&self, plugin: &str, version: &str, subnet: &str, extra: Value) -> Value {
        let mut c = json!({"cniVersion": version, "name": self.net, "type": plugin,
            "ipam": {"type": "host-local", "subnet": subnet, "rangeStart": subnet.replace(".0/24", ".10"),
                     "routes": [{"dst": "10.99.0.0/16"}],
                     "dataDir": self.data.path().to_str().unwrap()}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    /// Whether host-local still holds an address for container `id`.
    pub fn holds_address_of(&self, id: &str) -> bool {
        self.allocated().iter().any(|ip| {
            let file = self.data.path().join(&self.net).join(ip);
            std::fs::read_to_string(file).is_ok_and(|c| c.lines().next() == Some(id))
        })
    }
}

/// ADD, the checks every such plugin shares (kind, address, route, result,
/// CHECK), returning the result.
pub fn add_and_check(
    w: &World,
    plugin: &str,
    ctr: &Netns,
    id: &str,
    conf: &Value,
    kind: &str,
) -> Value {
    let r = Call::rcni(plugin, "ADD", &w.host, Some(ctr))
        .id(id)
        .run(conf)
        .ok();
    let link = link_details(ctr, "eth0");
    assert_eq!(link["linkinfo"]["info_kind"], kind, "{link}");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["interfaces"][0]["sandbox"], ctr.path());
    assert_eq!(r["interfaces"][0]["mac"], link["address"]);
    let prefix = r["ips"][0]["address"].as_str().unwrap();
    assert!(ctr.addrs("eth0").contains(&prefix.to_string()), "{r}");
    assert!(
        ctr.routes()
            .iter()
            .any(|l| l.starts_with("10.99.0.0/16 via")),
        "{:?}",
        ctr.routes()
    );
    if conf["cniVersion"] != "0.3.1" {
        let mut check = conf.clone();
        check["prevResult"] = r.clone();
        Call::rcni(plugin, "CHECK", &w.host, Some(ctr))
            .id(id)
            .run(&check)
            .ok();
    }
    r
}

/// DEL twice (idempotent), then nothing is left in the container nor in
/// the IPAM store, and the master is still there.
pub fn del_and_assert_gone(w: &World, plugin: &str, ctr: &Netns, id: &str, conf: &Value) {
    for _ in 0..2 {
        Call::rcni(plugin, "DEL", &w.host, Some(ctr))
            .id(id)
            .run(conf)
            .ok();
    }
    assert_only_lo(ctr);
    assert!(!w.holds_address_of(id), "{:?}", w.allocated());
    assert!(w.host.links().contains(&"m0".to_string()));
}

/// A bad config: code 7, a message starting with the field, nothing left.
pub fn assert_refused(w: &World, plugin: &str, ctr: &Netns, conf: &Value, field: &str) {
    let (code, msg) = Call::rcni(plugin, "ADD", &w.host, Some(ctr))
        .run(conf)
        .err();
    assert_eq!(code, 7, "{field}: {msg}");
    assert!(msg.contains(field), "{field}: {msg}");
    assert_only_lo(ctr);
    assert!(w.allocated().is_empty());
}
