//! rcni's plugins, one module per plugin. Each module reads like the
//! reference's description of that plugin: parse the config, then a short
//! sequence of named steps, each with its undo.

pub mod bridge;
pub mod common;
pub mod container_link;
pub mod dummy;
pub mod host_device;
pub mod host_local;
pub mod ipvlan;
pub mod link_modes;
pub mod loopback;
pub mod macvlan;
pub mod portmap;
pub mod ptp;
pub mod static_ipam;
pub mod tap;
pub mod vlan;
pub mod vrf;

use rcni_skel::Plugin;

/// Every plugin rcni ships, by the name it is installed under.
pub fn all() -> &'static [&'static dyn Plugin] {
    &[
        &loopback::Loopback,
        &host_local::HostLocal,
        &static_ipam::Static,
        &ptp::Ptp,
        &bridge::Bridge,
        &portmap::Portmap,
        &macvlan::MacVlan,
        &ipvlan::IpVlan,
        &vlan::Vlan,
        &dummy::Dummy,
        &host_device::HostDevice,
        &tap::Tap,
        &vrf::Vrf,
    ]
}

/// The plugin installed as `name`, if rcni has it.
pub fn lookup(name: &str) -> Option<&'static dyn Plugin> {
    all().iter().copied().find(|p| p.name() == name)
}
