//! The setting most plugin tests build: a "host" namespace the plugins run
//! in, a host-local data dir and a network name unique to the test. A test
//! file adds its plugin's config with a trait of its own, or wraps a `World`
//! in a type named for what it adds (`PortmapHost`, `DeviceHost`, …).

use crate::{allocated_ips, data_dir, unique, veth_master, Netns};

/// A "host" netns, a data dir and a unique network name, all removed on
/// drop.
pub struct World {
    pub host: Netns,
    pub data: tempfile::TempDir,
    pub net: String,
}

impl World {
    /// Names start with `tag`: the host netns `<tag>h…`, the network
    /// `<tag>…`.
    pub fn new(tag: &str) -> World {
        World {
            host: Netns::new(&format!("{tag}h")),
            data: data_dir(),
            net: unique(tag),
        }
    }

    /// A [`World`] whose host has `m0`, one end of a veth: the other end,
    /// `m0p`, is in `peer` when given, else next to it in the host.
    pub fn with_master(tag: &str, peer: Option<&Netns>) -> World {
        let w = World::new(tag);
        match peer {
            None => veth_master(&w.host, "m0"),
            Some(p) => {
                w.host.exec(&[
                    "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m0p", "netns",
                    &p.name,
                ]);
                w.host.exec(&["ip", "link", "set", "m0", "up"]);
                p.exec(&["ip", "link", "set", "m0p", "up"]);
            }
        }
        w
    }

    /// The addresses host-local holds on this network.
    pub fn allocated(&self) -> Vec<String> {
        allocated_ips(self.data.path(), &self.net)
    }
}
