//! Errors of the firewall layer.

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A config value that cannot work.
    #[error("{0}")]
    Config(String),
    /// The backend's tools are missing or do not work.
    #[error("{0}")]
    Unavailable(String),
    /// A tool ran and failed.
    #[error("{program} failed: {message}")]
    Tool { program: String, message: String },
}
