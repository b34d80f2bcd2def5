//! rcni's DHCPv6 client: leases of one IA_NA address (RFC 8415) for the
//! `dhcp` daemon, which runs one [`Client6`] per attachment on a thread
//! inside the container's network namespace.
//!
//! - `codec`: the messages and options, encoded by hand (see there why).
//! - [`Client6`]: Solicit/Advertise/Request/Reply, Renew, Rebind and
//!   Release over a blocking UDP socket bound to the interface, each call
//!   bounded by [`Timing6`]. No async runtime, no threads of its own.
//! - [`Lease6`]: what a Reply grants, serialized as the lease file's JSON,
//!   with its renew, rebind and expiry times.
//! - [`duid_from_client_id`], [`iaid_from_client_id`]: the stable identity
//!   of an attachment `containerID/network/ifname`.

#![warn(missing_docs)]

mod client;
pub mod codec;
mod identity;
mod lease;

pub use client::{Client6, Error6, Timing6};
pub use identity::{duid_from_client_id, iaid_from_client_id};
pub use lease::{Lease6, INFINITY};
