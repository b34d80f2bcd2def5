//! Veth pairs between the host and the container, and their undo.

use crate::error::Context;
use crate::undo::Undo;
use rcni_net::{Handle, NetNs};
use rcni_spec::CniError;

/// How many random host-side names to try before giving up.
const HOST_VETH_ATTEMPTS: usize = 10;

/// Creates a veth pair: `ifname` inside `ns` (with `mac` if given), a
/// random `veth…` name on the host. Returns the host end's name.
pub fn create_pair(
    host: &mut Handle,
    ns: &NetNs,
    ifname: &str,
    mtu: u32,
    mac: Option<[u8; 6]>,
) -> Result<String, CniError> {
    for _ in 0..HOST_VETH_ATTEMPTS {
        let host_name = rcni_net::random_veth_name();
        let spec = rcni_net::VethSpec {
            name: host_name.clone(),
            peer_name: ifname.to_string(),
            mtu: (mtu != 0).then_some(mtu),
            mac: None,
            peer_mac: mac,
            peer_netns: Some(ns),
        };
        match host.create_veth(&spec) {
            Ok(()) => return Ok(host_name),
            Err(e) if e.is_exists() => {
                if host
                    .link_by_name(&host_name)
                    .context("look up veth")?
                    .is_some()
                {
                    continue;
                }
                // reference text
                return Err(fail!(
                    "container veth name provided ({ifname}) already exists"
                ));
            }
            // reference text
            Err(e) => return Err(e).context("failed to make veth pair"),
        }
    }
    Err(fail!("failed to find a unique veth name"))
}

/// The undo of a pair (or any host link) made on the host: deletes the
/// host end `name`, which takes the peer with it.
pub fn undo_host_end(name: String) -> Undo<impl FnOnce()> {
    Undo::new(move || {
        if let Ok(mut host) = Handle::new() {
            if let Ok(Some(l)) = host.link_by_name(&name) {
                let _ = host.delete_link(l.index);
            }
        }
    })
}
