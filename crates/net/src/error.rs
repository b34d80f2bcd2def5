//! The kernel layer's error type.

use std::io;

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused a netlink request (`errno` is positive).
    #[error("{op}: {}", io::Error::from_raw_os_error(*errno))]
    Netlink { op: String, errno: i32 },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("{0} not found")]
    NotFound(String),
    /// The kernel answered with something we could not decode.
    #[error("netlink protocol error: {0}")]
    Protocol(String),
}

/// Results of the kernel layer.
pub type Result<T> = std::result::Result<T, NetError>;

const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;

impl NetError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
        let context = context.into();
        move |source| NetError::Io { context, source }
    }

    /// The errno behind the error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { errno, .. } => Some(*errno),
            NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The object (link, address, route, namespace) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetError::NotFound(_))
            || matches!(self.errno(), Some(ENOENT | ESRCH | ENODEV))
    }

    /// The object already exists.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(EEXIST)
    }
}
