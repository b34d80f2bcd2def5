//! The runtime side of CNI, compatible with the reference's libcni:
//!
//! - [`conf`]: loading network configs from a directory (`*.conflist`
//!   first, then `*.conf`/`*.json` wrapped into a one-plugin list, plus
//!   per-network fragments).
//! - [`cache`]: the result cache in the `cniCacheV1` format, shared with
//!   runtimes built on the reference.
//! - [`Cni`]: running a list: ADD in order with `prevResult` chaining, DEL
//!   in reverse with the cached result, CHECK, GC, STATUS, VERSION and
//!   validation.

pub mod cache;
pub mod cni;
pub mod conf;
pub mod error;

pub use cache::{Attachment, CachedInfo};
pub use cni::{Cni, GcAttachment, RuntimeConf};
pub use conf::{NetworkList, PluginConfig};
pub use error::RuntimeError;
