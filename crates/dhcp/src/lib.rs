//! rcni's dhcp IPAM daemon (`dhcp daemon`): a DHCPv4 client on the
//! container's interface, one maintenance thread per lease, leases
//! persisted under a state directory and resumed after a restart, and the
//! plugin ↔ daemon protocol (docs/dhcp.md).
//!
//! - [`codec`]: the DHCPv4 message and options, by hand (why: see there).
//! - [`client`]: [`client::Client4`], DISCOVER/REQUEST/renew/rebind/
//!   release with RFC 2131's backoff, over a packet socket or UDP.
//! - [`lease`]: [`lease::Lease4`], its timers and its CNI result.
//! - [`maintain`]: the renew/rebind/expire loop, over the
//!   [`maintain::Family`] trait so that DHCPv6 can plug in.
//! - [`store`]: the lease records on disk.
//! - [`protocol`]: requests and responses, and the plugin's side of a call.
//! - [`daemon`]: flags, the socket (or systemd's), the requests.

pub mod client;
pub mod codec;
pub mod daemon;
pub mod lease;
pub mod maintain;
pub mod protocol;
pub mod store;
