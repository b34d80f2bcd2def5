//! rcni's plugins, one module per plugin. Each module reads like the
//! reference's description of that plugin: parse the config, then a short
//! sequence of named steps, each with its undo.
//!
//! What plugins share is in topic modules: [`error`] (the one way to a
//! CNI error, and DEL's [`error::Teardown`]), [`undo`] (the guard of an ADD
//! step), [`ipam`] (delegation and the lease), [`iface`] (addressing a
//! link from an IPAM result), [`container`] (the container's netns and
//! link), [`veth`], [`mac`], [`cidr`], [`masquerade`], [`attachments`], and
//! [`container_link`] (the plugins that put one new link in the container).
//! Each plugin declares its keys in a `SCHEMA` next to the struct it
//! decodes them with; [`offline`] runs its validation for `check-config`.

#[macro_use]
pub mod error;

pub mod attachments;
pub mod bandwidth;
pub mod bridge;
pub mod cidr;
pub mod container;
pub mod container_link;
pub mod dhcp;
pub mod dummy;
pub mod firewall;
pub mod flannel;
pub mod host_device;
pub mod host_local;
pub mod iface;
pub mod ipam;
pub mod ipvlan;
pub mod link_modes;
pub mod loopback;
pub mod mac;
pub mod macvlan;
pub mod masquerade;
pub mod offline;
pub mod portmap;
pub mod ptp;
pub mod sbr;
pub mod static_ipam;
pub mod tap;
pub mod tuning;
pub mod undo;
pub mod veth;
pub mod vlan;
pub mod vrf;

use rcni_skel::Plugin;

/// Every plugin rcni ships, by the name it is installed under.
pub fn all() -> &'static [&'static dyn Plugin] {
    &[
        &loopback::Loopback,
        &host_local::HostLocal,
        &static_ipam::Static,
        &dhcp::Dhcp,
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
        &sbr::Sbr,
        &tuning::Tuning,
        &bandwidth::Bandwidth,
        &flannel::Flannel,
        &firewall::Firewall,
    ]
}

/// The plugin installed as `name`, if rcni has it.
pub fn lookup(name: &str) -> Option<&'static dyn Plugin> {
    all().iter().copied().find(|p| p.name() == name)
}
