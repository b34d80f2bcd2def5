//! Errors of the firewall layer, typed by what went wrong so that the
//! plugins map each [`ErrorKind`] to its CNI code in one place.

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A config value that cannot work.
    #[error("{0}")]
    Config(String),
    /// The chosen backend's tools are not installed on this host.
    #[error("{0}")]
    Unavailable(String),
    /// A tool could not be started, or the nftables lock could not be
    /// taken: the request never reached the firewall.
    #[error("{0}")]
    Io(String),
    /// A tool ran and failed, or a netlink request was refused.
    #[error("{program} failed: {message}")]
    Tool { program: String, message: String },
    /// CHECK found the attachment's rules missing.
    #[error("{0}")]
    NotInPlace(String),
    /// A step that runs on every backend failed on some (teardown tries
    /// them all, then reports all).
    #[error("{what} failed: {}", join(.errors))]
    Several {
        what: &'static str,
        errors: Vec<FirewallError>,
    },
}

fn join(errors: &[FirewallError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What kind of failure a [`FirewallError`] is, for the CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The config asks for something that cannot work: a bad value.
    InvalidConfig,
    /// A firewall tool could not be started or the lock not taken.
    Io,
    /// The firewall refused a change, rules are not as they should be, or
    /// the backend's tools are not installed: the reference reports these
    /// as plain (internal) errors.
    Internal,
}

impl FirewallError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FirewallError::Config(_) => ErrorKind::InvalidConfig,
            FirewallError::Io(_) => ErrorKind::Io,
            FirewallError::Unavailable(_)
            | FirewallError::Tool { .. }
            | FirewallError::NotInPlace(_) => ErrorKind::Internal,
            FirewallError::Several { errors, .. } => errors
                .first()
                .map_or(ErrorKind::Internal, FirewallError::kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_errors_read_as_one_and_keep_the_first_kind() {
        let e = FirewallError::Several {
            what: "ipmasq teardown",
            errors: vec![
                FirewallError::Io("cannot run nft: gone".into()),
                FirewallError::Tool {
                    program: "iptables-restore".into(),
                    message: "line 2 failed".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "ipmasq teardown failed: cannot run nft: gone; iptables-restore failed: line 2 failed"
        );
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(
            FirewallError::Config("x".into()).kind(),
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            FirewallError::NotInPlace("x".into()).kind(),
            ErrorKind::Internal
        );
    }
}
