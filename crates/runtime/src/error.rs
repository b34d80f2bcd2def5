//! Errors of the runtime library. A plugin's failure keeps its CNI error
//! (code, message) and says which plugin failed doing what.

use rcni_spec::CniError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A plugin failed, or could not be found or run.
    #[error("plugin type={plugin:?} failed ({verb}): {error}")]
    Plugin {
        plugin: String,
        verb: &'static str,
        error: CniError,
    },
    /// A config file or directory is unusable.
    #[error("{path}: {error}")]
    Config { path: PathBuf, error: CniError },
    /// No network of that name.
    #[error("no net configuration with name {name:?} in {dir}")]
    NotFound { name: String, dir: PathBuf },
    /// The directory holds no config at all.
    #[error("no net configurations found in {0}")]
    NoConfigs(PathBuf),
    /// The call itself is invalid (bad container ID, version too old...).
    #[error("{0}")]
    Invalid(CniError),
    #[error("result cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
    /// Several failures (GC collects them rather than stopping).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<RuntimeError>),
}

impl RuntimeError {
    /// The CNI error code behind the failure, for exit codes and callers
    /// that react to specific codes (11, 50, 51...).
    pub fn code(&self) -> u32 {
        match self {
            RuntimeError::Plugin { error, .. } | RuntimeError::Invalid(error) => error.code,
            RuntimeError::Config { error, .. } => error.code,
            RuntimeError::NotFound { .. } | RuntimeError::NoConfigs(_) => {
                rcni_spec::ErrorCode::INVALID_CONFIG
            }
            RuntimeError::Cache { .. } => rcni_spec::ErrorCode::IO_FAILURE,
            RuntimeError::Many(all) => all.first().map(RuntimeError::code).unwrap_or(0),
        }
    }
}
