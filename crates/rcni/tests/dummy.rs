//! dummy, end to end: the link carries the addresses, CHECK sees it go
//! down, and DEL leaves nothing. This machine's kernel lacks dummy links,
//! so these are ignored here and run by scripts/vm-tests.sh under a full
//! distribution kernel (--ignored): never silently skipped.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;

#[test]
#[ignore = "needs dummy: run by scripts/vm-tests.sh"]
fn dummy_carries_the_addresses_and_del_leaves_nothing() {
    for version in VERSIONS {
        let w = World::with_master("dm", None);
        let a = Netns::new("dma");
        let conf = w.link_conf("dummy", version, "10.64.0.0/24", json!({}));
        let r = add_and_check(&w, "dummy", &a, "a", &conf, "dummy");
        // The address answers locally.
        assert!(a.try_exec(&["ping", "-c1", "-W1", &ip_of(&r)]));
        // CHECK notices the link went down.
        if *version == "0.3.1" {
            del_and_assert_gone(&w, "dummy", &a, "a", &conf);
            continue;
        }
        a.exec(&["ip", "link", "set", "eth0", "down"]);
        let mut check = conf.clone();
        check["prevResult"] = r;
        let (_, msg) = Call::rcni("dummy", "CHECK", &w.host, Some(&a))
            .id("a")
            .run(&check)
            .err();
        assert!(msg.contains("Interface eth0 is down"), "{msg}");
        del_and_assert_gone(&w, "dummy", &a, "a", &conf);
    }
    let w = World::with_master("dm", None);
    let a = Netns::new("dma");
    let mut no_ipam = w.link_conf("dummy", "1.0.0", "10.64.0.0/24", json!({}));
    no_ipam["ipam"] = json!({});
    assert_refused(&w, "dummy", &a, &no_ipam, "ipam");
}
