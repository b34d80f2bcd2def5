//! host-local's allocation engine.
//!
//! - [`range`]: ranges and range sets, validated and completed with the
//!   reference's defaults.
//! - [`store`]: the on-disk store, byte-compatible with the reference's
//!   (`<dataDir>/<network>/<ip>` holding `<id>\r\n<ifname>`,
//!   `last_reserved_ip.<n>`, a `lock` file held with flock).
//! - [`allocator`]: round-robin allocation over one range set.
//! - [`resolv`]: resolv.conf parsing for the `resolvConf` key.

pub mod allocator;
pub mod error;
pub mod range;
pub mod resolv;
pub mod store;

pub use allocator::{Allocated, Allocator};
pub use error::IpamError;
pub use range::{canonicalize_set, set_to_string, sets_overlap, Range};
pub use resolv::parse_resolv_conf;
pub use store::{Allocation, DiskStore, StoreLock};
