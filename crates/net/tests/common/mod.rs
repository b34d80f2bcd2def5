//! Throwaway network namespaces for the kernel tests (`ip netns add`,
//! deleted on drop). Tests never touch the machine's own interfaces.

#![allow(dead_code, clippy::unwrap_used)]

use ipnet::IpNet;
use rcni_net::{Handle, NetNs};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named namespace (`/run/netns/rcni-nettest-<pid>-<n>`), open.
pub struct TestNs {
    pub name: String,
    pub ns: NetNs,
}

impl TestNs {
    pub fn new() -> TestNs {
        let name = format!(
            "rcni-nettest-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add")
            .success();
        assert!(ok, "ip netns add {name}");
        let ns = NetNs::open(format!("/run/netns/{name}")).unwrap();
        TestNs { name, ns }
    }

    /// A fresh netlink handle inside.
    pub fn handle(&self) -> Handle {
        Handle::new_in(&self.ns).unwrap()
    }

    /// `ip -n <ns> <args>`'s stdout, for cross-checking with iproute2.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
