//! What rcni's test crates share: throwaway network namespaces, commands
//! with a time limit, plugin calls made as a runtime makes them (of the
//! built `rcni` or of the reference plugins), the reference location and its
//! guard, temp data dirs, traffic helpers and the probe's input generator.
//! Nothing here touches the machine's own interfaces, routes or firewall.
//!
//! A dev-dependency only: never a dependency of a shipped binary.

#![allow(clippy::unwrap_used)]

mod cmd;
mod data;
mod links;
pub mod mutate;
mod netns;
mod plugin;
mod reference;
mod traffic;
mod world;

pub use cmd::{sh, try_sh, unique, LegacyIptables, TIMEOUT};
pub use data::{allocated_ips, data_dir, read_dir_names, with};
pub use links::{add_and_check, assert_refused, del_and_assert_gone};
pub use netns::{assert_only_lo, in_netns, link_details, outside_of, veth_master, Netns};
pub use plugin::{
    interop_pair, ip_of, rcni_bin_dir, rcni_binary, run_or_kill, Call, Reply, VERSIONS,
};
pub use reference::{have_reference, require_reference, REFERENCE_DIR};
pub use traffic::{serve, tcp_get, udp_get, udp_get_from};
pub use world::World;
