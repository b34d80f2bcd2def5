//! Network namespaces, referred to by an open file.

use crate::error::{NetError, Result};
use rustix::fs::{fstatfs, FsWord, Mode, OFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

/// `NSFS_MAGIC`: the file system of `/proc/<pid>/ns/*` and their bind
/// mounts (`/run/netns/*`) on kernels since 3.19.
const NSFS_MAGIC: FsWord = 0x6e73_6673;

/// An open network namespace: a `/run/netns/<name>` bind mount, a
/// `/proc/<pid>/ns/net` link, ... The namespace stays alive while this
/// value exists, even if its path is unmounted.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens the namespace at `path`.
    ///
    /// A missing path gives an error for which [`NetError::is_not_found`]
    /// holds (so a DEL can treat it as already done). A path that exists
    /// but is not a namespace (a directory, a regular file, a FIFO, a
    /// device) gives [`NetError::InvalidArgument`] without blocking: the
    /// path is first opened with `O_PATH`, which neither waits for a FIFO's
    /// writer nor wakes a device, and only a file on nsfs is opened for
    /// real.
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let opened = |e: rustix::io::Errno| {
            NetError::io(format!("failed to open netns {}", path.display()))(e.into())
        };
        let handle = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(opened)?;
        let fs = fstatfs(&handle).map_err(|e| {
            NetError::io(format!("failed to statfs netns {}", path.display()))(e.into())
        })?;
        if fs.f_type != NSFS_MAGIC {
            return Err(NetError::InvalidArgument(format!(
                "{} is not a network namespace (fs magic {:#x})",
                path.display(),
                fs.f_type
            )));
        }
        // setns needs a descriptor opened for reading; reopen the very
        // file that was checked.
        let reopen = format!("/proc/self/fd/{}", handle.as_raw_fd());
        let file = rustix::fs::open(
            reopen.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(opened)?;
        let is_net = crate::sys::is_network_namespace(file.as_fd()).map_err(NetError::io(
            format!("failed to read the kind of namespace {}", path.display()),
        ))?;
        if !is_net {
            return Err(NetError::InvalidArgument(format!(
                "{} is not a network namespace",
                path.display()
            )));
        }
        Ok(NetNs {
            file: File::from(file),
            path: path.to_path_buf(),
        })
    }

    /// The namespace of the calling thread (`/proc/thread-self/ns/net`).
    pub fn current() -> Result<NetNs> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    /// The cookie of the calling thread's namespace: unlike its inode, never
    /// the same for two namespaces while the machine runs (Linux 5.14).
    pub fn current_cookie() -> std::io::Result<u64> {
        let socket = std::os::unix::net::UnixDatagram::unbound()?;
        crate::sys::netns_cookie(socket.as_fd())
    }

    /// A new, empty namespace that lives as long as the returned value (no
    /// name, nothing mounted): a scratch space, e.g. to rename a device
    /// away from the eyes of udev and NetworkManager.
    pub fn new_anonymous() -> Result<NetNs> {
        std::thread::spawn(|| -> Result<NetNs> {
            crate::sys::unshare_network_namespace()
                .map_err(NetError::io("create a network namespace"))?;
            let mut ns = NetNs::current()?;
            ns.path = PathBuf::from("<temporary netns>");
            Ok(ns)
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetError::InvalidArgument(
                "the thread creating a network namespace panicked".into(),
            ))
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes an exclusive flock on the namespace file, held until this
    /// value is dropped; waits at most `wait` for another holder (any
    /// process that flocks the same namespace, whatever path it opened),
    /// so a call never hangs on one that does.
    pub fn lock_exclusive(&self, wait: std::time::Duration) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            match self.file.try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(NetError::io(format!("lock netns {}", self.path.display()))(
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(NetError::io(format!("lock netns {}", self.path.display()))(
                        e,
                    ))
                }
            }
        }
    }

    /// The open namespace file, for `setns` or `IFLA_NET_NS_FD`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Runs `f` inside this namespace and returns its value: the calling
    /// thread enters it for the call and is back in its own namespace when
    /// `run` returns or unwinds (a guard sees to it). Use it for work that
    /// depends on the thread's namespace, such as `/proc/sys/net` access or
    /// opening a socket. Only this thread moves: the process's other
    /// threads, and sockets opened before, stay where they are. (It used to
    /// start a thread for each call: a thread's creation, with its stack
    /// and its malloc arena, cost more than the work.)
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let home = rustix::fs::open(
            "/proc/thread-self/ns/net",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| NetError::io("open this thread's netns")(e.into()))?;
        move_into_link_name_space(self.fd(), Some(LinkNameSpaceType::Network))
            .map_err(|e| NetError::io(format!("setns into {}", self.path.display()))(e.into()))?;
        let _back = ReturnHome(home);
        Ok(f())
    }
}

/// Takes the thread back into its own namespace when dropped.
struct ReturnHome(std::os::fd::OwnedFd);

impl Drop for ReturnHome {
    fn drop(&mut self) {
        if let Err(e) = move_into_link_name_space(self.0.as_fd(), Some(LinkNameSpaceType::Network))
        {
            // Going on in the wrong namespace would act on another
            // network's devices and rules: stop here instead.
            eprintln!("rcni: cannot return to the thread's own netns: {e}");
            std::process::abort();
        }
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
