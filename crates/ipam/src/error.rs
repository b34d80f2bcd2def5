//! Errors of the allocation engine, sorted by [`ErrorKind`] so the plugin
//! can pick a CNI code: invalid configuration (7), I/O (5), or an
//! allocation that could not be made.
//!
//! The texts are the reference's (`plugins/ipam/host-local/backend/…`),
//! with the offending value added where the reference left it out.

use ipnet::IpNet;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

/// What went wrong, coarsely, for mapping to a CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration (or a requested address) cannot work: CNI code 7.
    InvalidConfig,
    /// No address could be handed out: taken, exhausted, duplicate.
    Allocation,
    /// The store could not be read or written: CNI code 5.
    Io,
}

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("Network {subnet} too small to allocate from")]
    TooSmall { subnet: IpNet },
    /// An IPv4-mapped IPv6 subnet: the reference reads its address as IPv4
    /// and its mask as IPv6.
    #[error("IPNet IP and Mask version mismatch in {subnet}")]
    MaskMismatch { subnet: IpNet },
    #[error(
        "Network {subnet} has host bits set. For a subnet mask of length {} the network address is {}",
        subnet.prefix_len(),
        subnet.network()
    )]
    HostBits { subnet: IpNet },
    /// `field` is `RangeStart` or `RangeEnd`, spelled as the reference does.
    #[error("{field} {ip} not in network {subnet}")]
    NotInNetwork {
        field: &'static str,
        ip: IpAddr,
        subnet: IpNet,
    },
    /// The reference reports this as "RangeStart … not in network …".
    #[error("RangeStart {start} not in network {subnet}: it is after RangeEnd {end}")]
    StartAfterEnd {
        start: IpAddr,
        end: IpAddr,
        subnet: IpNet,
    },
    #[error("gateway {gateway} is not of the address family of network {subnet}")]
    GatewayFamily { gateway: IpAddr, subnet: IpNet },
    #[error("empty range set")]
    EmptySet,
    #[error("mixed address families")]
    MixedFamilies,
    /// Two ranges of one set overlap (`a`, `b` printed as `start-end`).
    #[error("subnets {a} and {b} overlap")]
    RangesOverlap { a: String, b: String },
    /// A range set of a config failed to canonicalize.
    #[error("invalid range set {index}: {source}")]
    InvalidSet {
        index: usize,
        source: Box<IpamError>,
    },
    /// Two range sets of a config overlap.
    #[error("range set {a} overlaps with {b}")]
    SetsOverlap { a: usize, b: usize },
    #[error("invalid network name {name:?}: it must be usable as a directory name")]
    InvalidNetworkName { name: String },
    #[error("{ip} not in range set {set}")]
    NotInRangeSet { ip: IpAddr, set: String },
    #[error("requested ip {ip} is subnet's gateway")]
    RequestedGateway { ip: IpAddr },
    #[error("requested IP address {ip} is not available in range set {set}")]
    RequestedTaken { ip: IpAddr, set: String },
    #[error("{ip} has been allocated to {id}, duplicate allocation is not allowed")]
    Duplicate { ip: IpAddr, id: String },
    #[error("no IP addresses available in range set: {set}")]
    Exhausted { set: String },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl IpamError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IpamError::RequestedTaken { .. }
            | IpamError::Duplicate { .. }
            | IpamError::Exhausted { .. } => ErrorKind::Allocation,
            IpamError::Io { .. } => ErrorKind::Io,
            IpamError::InvalidSet { source, .. } => source.kind(),
            _ => ErrorKind::InvalidConfig,
        }
    }

    /// CNI code 7.
    pub fn is_config(&self) -> bool {
        self.kind() == ErrorKind::InvalidConfig
    }

    /// No address could be handed out (taken, exhausted, duplicate).
    pub fn is_allocation(&self) -> bool {
        self.kind() == ErrorKind::Allocation
    }

    /// CNI code 5.
    pub fn is_io(&self) -> bool {
        self.kind() == ErrorKind::Io
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> IpamError {
        let path = path.into();
        move |source| IpamError::Io {
            context,
            path,
            source,
        }
    }
}
