//! Errors of the allocation engine, sorted so the plugin can pick a CNI
//! code: configuration (7), I/O (5), or allocation failures.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The configuration cannot work (bad range, bad network name...).
    #[error("{0}")]
    Config(String),
    /// No address could be handed out (exhausted, taken, duplicate).
    #[error("{0}")]
    Allocation(String),
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl IpamError {
    pub fn is_config(&self) -> bool {
        matches!(self, IpamError::Config(_))
    }

    pub fn is_io(&self) -> bool {
        matches!(self, IpamError::Io { .. })
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
