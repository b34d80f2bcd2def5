//! A plugin killed (SIGKILL) at any point of ADD leaves only state that a
//! DEL of that attachment, or a GC, cleans up completely.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Starts ADD and kills it after `delay` unless it has finished.
fn add_then_kill(call: &Call, stdin: &[u8], delay: Duration) {
    run_or_kill(call, stdin, Some(delay), Duration::from_secs(30));
}

/// Delays spread over the whole run of an ADD, measured first.
fn delays(call: &Call, stdin: &[u8], cleanup: impl Fn()) -> Vec<Duration> {
    let start = Instant::now();
    call.run_raw(stdin).ok();
    let full = start.elapsed();
    cleanup();
    let steps = 12;
    (0..steps).map(|i| full * i / steps).collect()
}

#[test]
fn ptp_killed_during_add_is_cleaned_by_del() {
    let host = Netns::new("kh");
    let ctr = Netns::new("kc");
    let data = data_dir();
    let net = unique("knet");
    let host_before = host.snapshot();
    let ctr_before = ctr.snapshot();
    let conf = json!({"cniVersion": "1.0.0", "name": net, "type": "ptp",
        "ipam": {"type": "host-local", "subnet": "10.55.0.0/24", "dataDir": data.path().to_str().unwrap()}});
    let stdin = conf.to_string().into_bytes();
    let add = Call::rcni("ptp", "ADD", &host, Some(&ctr));
    let del = add.clone().command("DEL");
    for delay in delays(&add, &stdin, || {
        del.run_raw(&stdin).ok();
    }) {
        add_then_kill(&add, &stdin, delay);
        del.run_raw(&stdin).ok();
        assert_eq!(
            host.snapshot(),
            host_before,
            "host not clean after kill at {delay:?}"
        );
        assert_eq!(
            ctr.snapshot(),
            ctr_before,
            "container not clean after kill at {delay:?}"
        );
        assert!(
            allocated_ips(data.path(), &net).is_empty(),
            "IP leaked after kill at {delay:?}"
        );
    }
}

#[test]
fn host_local_killed_during_add_is_cleaned_by_del_or_gc() {
    let host = Netns::new("kh");
    let data = data_dir();
    let net = unique("knet");
    let conf = json!({"cniVersion": "1.1.0", "name": net, "type": "x",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.55.0.0/24"}], [{"subnet": "fd00:55::/64"}]],
                 "dataDir": data.path().to_str().unwrap()}});
    let stdin = conf.to_string().into_bytes();
    let mut add = Call::rcni("host-local", "ADD", &host, None);
    add.netns = "/run/netns/unused".into();
    let del = add.clone().command("DEL");
    let mut gc = add.clone().command("GC");
    gc.container_id.clear();
    gc.ifname.clear();
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([]);
    for (i, delay) in delays(&add, &stdin, || {
        del.run_raw(&stdin).ok();
    })
    .into_iter()
    .enumerate()
    {
        add_then_kill(&add, &stdin, delay);
        if i % 2 == 0 {
            del.run_raw(&stdin).ok();
        } else {
            gc.run(&gc_conf).ok();
        }
        assert!(
            allocated_ips(data.path(), &net).is_empty(),
            "IP leaked after kill at {delay:?}"
        );
        // The store is still usable: a later ADD works.
        add.run_raw(&stdin).ok();
        del.run_raw(&stdin).ok();
    }
}
