//! The CNI error object and the spec's well-known codes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Well-known error codes (SPEC.md "Error"), plus the codes the reference
/// library adds (0, 8 and 999).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode;

impl ErrorCode {
    pub const UNKNOWN: u32 = 0;
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const INVALID_NETNS: u32 = 8;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: what a plugin prints on stdout when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            cni_version: String::new(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Code 7: the network configuration is invalid.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_CONFIG, msg)
    }

    /// Code 4: an environment variable is missing or invalid.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_ENVIRONMENT, msg)
    }

    /// Code 5: an I/O failure.
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::IO_FAILURE, msg)
    }

    /// Code 6: something could not be decoded.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::DECODING_FAILURE, msg)
    }

    /// Code 999: an internal failure that fits no other code.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::INTERNAL, msg)
    }

    /// Code 11: a transient condition; the runtime should retry.
    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(ErrorCode::TRY_AGAIN_LATER, msg)
    }

    /// Prefix the message with context, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// Serialize as the plugin's stdout, in the requested spec version.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut e = self.clone();
        if e.cni_version.is_empty() {
            e.cni_version = cni_version.to_string();
        }
        crate::result::to_pretty_json(&e)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}
