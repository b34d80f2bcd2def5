//! The kernel tests' namespaces: the test kit's throwaway [`Netns`] (`ip
//! netns add`, deleted on drop), opened for this crate's own calls. Tests
//! never touch the machine's own interfaces.

#![allow(dead_code, clippy::unwrap_used)]

use ipnet::IpNet;
use rcni_net::{Handle, NetNs};
use rcni_testkit::Netns;

/// A throwaway namespace, open.
pub struct TestNs {
    /// Owns the namespace (deleted on drop).
    netns: Netns,
    pub name: String,
    pub ns: NetNs,
}

impl TestNs {
    pub fn new() -> TestNs {
        let netns = Netns::new("rcni-nettest-");
        let ns = NetNs::open(netns.path()).unwrap();
        TestNs {
            name: netns.name.clone(),
            netns,
            ns,
        }
    }

    /// A fresh netlink handle inside.
    pub fn handle(&self) -> Handle {
        Handle::new_in(&self.ns).unwrap()
    }

    /// `ip -n <ns> <args>`'s stdout, for cross-checking with iproute2.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        rcni_testkit::sh("ip", &full)
    }
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}
