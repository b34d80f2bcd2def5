//! Network namespaces, referred to by an open file.

use crate::error::{NetError, Result};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// An open network namespace (a `/run/netns/...` bind mount, a
/// `/proc/<pid>/ns/net` link, ...).
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens the namespace at `path`. A missing path gives an error for
    /// which [`NetError::is_not_found`] holds, so DEL can treat it as done.
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let file = File::open(path).map_err(NetError::io(format!(
            "failed to open netns {}",
            path.display()
        )))?;
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<NetNs> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` on a new thread that has entered this namespace, and
    /// returns its value. The calling thread never changes namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let fd = self.fd();
        std::thread::scope(|s| {
            s.spawn(move || {
                move_into_link_name_space(fd, Some(LinkNameSpaceType::Network))
                    .map_err(|e| NetError::io("setns")(e.into()))?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetError::Protocol("thread inside the netns panicked".into()))?
        })
    }
}
