//! The kernel layer's error type.

use std::io;

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The kernel refused a netlink request.
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*errno), kernel_msg(msg))]
    Netlink {
        /// What we asked for, e.g. `add address 10.1.2.3/24 to link 7`.
        op: String,
        /// The errno, positive (`EEXIST` = 17, `ENODEV` = 19, ...).
        errno: i32,
        /// The kernel's extended-ack message, when it gave one.
        msg: Option<String>,
    },
    /// A system call or file access failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The object (link, address, route) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The caller passed something that cannot work (a path that is not a
    /// network namespace, a bad sysctl key, a bad interface name or MAC).
    #[error("{0}")]
    InvalidArgument(String),
    /// The kernel answered with something we could not decode.
    #[error("netlink protocol error: {0}")]
    Protocol(String),
}

fn kernel_msg(msg: &Option<String>) -> String {
    match msg {
        Some(m) if !m.is_empty() => format!(" ({m})"),
        _ => String::new(),
    }
}

/// Results of the kernel layer.
pub type Result<T> = std::result::Result<T, NetError>;

/// `ENOENT`.
pub const ENOENT: i32 = 2;
/// `ESRCH`.
pub const ESRCH: i32 = 3;
/// `EINTR`.
pub const EINTR: i32 = 4;
/// `EEXIST`.
pub const EEXIST: i32 = 17;
/// `ENODEV`.
pub const ENODEV: i32 = 19;
/// `EADDRNOTAVAIL`.
pub const EADDRNOTAVAIL: i32 = 99;

impl NetError {
    /// A closure turning an `io::Error` into [`NetError::Io`] with `context`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
        let context = context.into();
        move |source| NetError::Io { context, source }
    }

    /// A netlink error without a kernel message.
    #[cfg(test)]
    pub(crate) fn netlink(op: &str, errno: i32) -> NetError {
        NetError::Netlink {
            op: op.to_string(),
            errno,
            msg: None,
        }
    }

    /// The errno behind the error, if there is one (positive).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink { errno, .. } => Some(*errno),
            NetError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The object (link, address, route, namespace path) does not exist:
    /// [`NetError::NotFound`], or errno `ENOENT`, `ESRCH` or `ENODEV`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, NetError::NotFound(_))
            || matches!(self.errno(), Some(ENOENT | ESRCH | ENODEV))
    }

    /// The object already exists (errno `EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(EEXIST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = NetError::netlink("delete link 7", ENODEV);
        assert!(e.is_not_found() && !e.is_exists());
        assert_eq!(e.errno(), Some(19));
        assert!(NetError::netlink("x", ESRCH).is_not_found());
        assert!(NetError::netlink("x", ENOENT).is_not_found());
        assert!(NetError::netlink("x", EEXIST).is_exists());
        assert!(NetError::NotFound("link eth0".into()).is_not_found());
        let io = NetError::io("open netns")(io::Error::from_raw_os_error(ENOENT));
        assert!(io.is_not_found());
        assert!(!NetError::Protocol("x".into()).is_not_found());
    }

    #[test]
    fn display() {
        let e = NetError::Netlink {
            op: "add link x".into(),
            errno: EEXIST,
            msg: Some("boom".into()),
        };
        let s = e.to_string();
        assert!(s.starts_with("add link x: File exists"), "{s}");
        assert!(s.ends_with("(boom)"), "{s}");
        assert_eq!(
            NetError::netlink("y", ENODEV).to_string(),
            format!("y: {}", io::Error::from_raw_os_error(ENODEV))
        );
    }
}
