//! rcni's kernel layer.
//!
//! - [`Handle`]: one blocking NETLINK_ROUTE socket, bound to the network
//!   namespace it was opened in; links, addresses and routes.
//! - [`NetNs`]: a network namespace by file; [`NetNs::run`] for the rare
//!   work that must happen on a thread inside it (`/proc/sys`).
//! - [`sysctl`]: reads and writes under `/proc/sys` for the calling
//!   thread's namespace.
//!
//! No async runtime: a plugin makes a handful of requests and exits.

mod addr;
mod error;
mod link;
mod netns;
mod route;
mod socket;
pub mod sysctl;

pub use addr::Address;
pub use error::{NetError, Result};
pub use link::{random_veth_name, Link, LinkKind, VethSpec};
pub use netns::NetNs;
pub use route::{IpFamily, Route, RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
pub use socket::Handle;
