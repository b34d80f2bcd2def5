//! The CNI specification as Rust types, with no I/O and nothing Linux-specific.
//!
//! - [`error`]: the error JSON and the spec's error codes.
//! - [`version`]: spec versions, parsing, comparison and reconciliation.
//! - [`types`]: the result model (the 1.1.0 shape) and its parts.
//! - [`result`]: reading and writing results of every spec version, with the
//!   reference's up and down conversions.
//! - [`config`]: network configs and config lists, keeping unknown keys.
//! - [`args`]: `CNI_ARGS` parsing.
//! - [`names`]: validation of container IDs, interface and network names.
//! - [`gojson`]: the one JSON decoding rule (Go's).
//! - [`schema`]: what a plugin's config may hold, for help and checks.

pub mod args;
pub mod config;
pub mod error;
pub mod gojson;
pub mod names;
pub mod result;
pub mod schema;
pub mod types;
pub mod version;

pub use error::{CniError, ErrorCode};
pub use types::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::Version;
