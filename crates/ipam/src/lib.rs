//! host-local's allocation engine.
//!
//! - [`range`]: ranges and range sets, validated and completed with the
//!   reference's defaults.
//! - [`store`]: the on-disk store, byte-compatible with the reference's
//!   (`<dataDir>/<network>/<ip>` holding `<id>\r\n<ifname>`,
//!   `last_reserved_ip.<n>`, a `lock` file held with flock).
//! - [`allocator`]: round-robin allocation over one range set.
//! - [`resolv`]: resolv.conf parsing for the `resolvConf` key.
//!
//! Every allocation and release holds the store's flock, so processes (and
//! threads) sharing one data dir — rcni's or the reference's — never hand
//! out one address twice.

pub mod allocator;
pub mod error;
pub mod index;
pub mod range;
pub mod resolv;
pub mod store;

pub use allocator::{Allocated, Allocator, RangeIter};
pub use error::{ErrorKind, IpamError};
pub use range::{
    canonicalize_set, set_to_string, sets_overlap, validate_sets, Range, RangeSet, RangeSetExt,
};
pub use resolv::{parse_resolv_conf, parse_resolv_conf_text, ResolvConf};
pub use store::{Allocation, DiskStore, StoreLock};
