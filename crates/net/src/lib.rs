//! rcni's kernel layer: a small blocking netlink client, network
//! namespaces, sysctl and tap devices. No CNI here: config strings are
//! read by the plugins.
//!
//! - [`Handle`] (`socket`): one NETLINK_ROUTE socket, bound to the network
//!   namespace it was opened in ([`Handle::new`] here, [`Handle::new_in`]
//!   inside another namespace without this thread ever leaving its own).
//!   What it does is in one module per object: `link` (the model:
//!   [`Link`], the typed [`LinkKind`] and its modes, new-link options),
//!   `link_ops` (lookup, creation, changes, moves, deletion), `addr`,
//!   `route`, `rule`, `bridge_vlan` (bridge port VLANs), `tc` (the qdiscs
//!   and the redirect filter of traffic shaping).
//! - `mac`: [`parse_mac`] and [`format_mac`], the workspace's one MAC text
//!   format.
//! - NETLINK_NETFILTER, hand-encoded since netlink-packet-route covers
//!   only rtnetlink: `nfnetlink` (netfilter messages, batches, the
//!   exchange) under [`conntrack`] (deleting UDP flows) and [`nf_tables`]
//!   (probing tables and chains, listing and deleting rules).
//! - `framing`: the netlink framing both sockets share (message types,
//!   alignment, headers, attributes, splitting, errors and extended acks).
//! - [`NetNs`]: a network namespace by open file; [`NetNs::run`] for the
//!   rare work that must happen on a thread inside it (`/proc/sys`).
//! - [`sysctl`]: reads and writes under `/proc/sys` for the calling
//!   thread's namespace. `tuntap`: [`create_tap`] over `/dev/net/tun`.
//! - `sys`: the workspace's only `unsafe` (unshare, the namespace-type
//!   ioctl, the tun ioctls).
//!
//! No async runtime: a plugin makes a handful of requests and exits. Every
//! request is sent and answered before the call returns; errors carry the
//! operation, the errno and the kernel's extended-ack message.

#![warn(missing_docs)]

mod addr;
mod bridge_vlan;
pub mod conntrack;
mod error;
mod framing;
mod link;
mod link_ops;
mod mac;
mod netns;
pub mod nf_expr;
pub mod nf_tables;
mod nfnetlink;
mod packet;
mod route;
mod rule;
mod socket;
mod sys;
pub mod sysctl;
mod tc;
mod tuntap;

pub use addr::{
    Address, IFA_F_DADFAILED, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_PERMANENT, IFA_F_SECONDARY,
    IFA_F_TENTATIVE,
};
pub use bridge_vlan::PortVlan;
pub use error::{NetError, Result, EADDRNOTAVAIL, EEXIST, EINTR, ENODEV, ENOENT, ESRCH};
pub use link::{
    IpVlanFlag, IpVlanMode, Link, LinkKind, LinkOptions, MacVlanMode, VethSpec, IFNAMSIZ_MAX,
};
pub use link_ops::{random_veth_name, Ipv4Conf};
pub use mac::{format_mac, parse_mac};
pub use netns::NetNs;
pub use packet::{PacketSocket, BROADCAST_MAC};
pub use route::{
    IpFamily, Route, RTN_LOCAL, RTN_UNICAST, RTPROT_BOOT, RTPROT_KERNEL, RTPROT_STATIC,
    RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_LOCAL, RT_TABLE_MAIN,
};
pub use rule::Rule;
pub use socket::Handle;
pub use sys::{prepare_process, take_activation_socket};
pub use tc::{
    tick_in_usec, Filter, Qdisc, QdiscKind, Tbf, INGRESS_HANDLE, TC_H_INGRESS, TC_H_ROOT,
};
pub use tuntap::{create_tap, TapSpec};
