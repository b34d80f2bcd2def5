//! The system calls rcni makes that have no safe wrapper: entering a new
//! network namespace, reading its cookie, the tun driver's ioctls, and
//! handing a netfilter socket to an io_uring. This is the only module
//! with `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Moves the calling thread into a new, empty network namespace.
pub(crate) fn unshare_network_namespace() -> io::Result<()> {
    // SAFETY: unshare(CLONE_NEWNET) takes no pointers and only changes which
    // network namespace the calling thread is in. The hazard documented for
    // unshare (CLONE_FILES splitting the fd table under other threads) does
    // not apply to this flag.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (a short)
/// at the start of the 24-byte union.
#[repr(C)]
pub(crate) struct IfReqFlags {
    pub name: [u8; libc::IFNAMSIZ],
    pub flags: libc::c_short,
    padding: [u8; 22],
}

impl IfReqFlags {
    /// A request for `name` (at most 15 bytes, checked by the caller).
    pub fn new(name: &str, flags: libc::c_short) -> IfReqFlags {
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags,
            padding: [0; 22],
        };
        let len = name.len().min(libc::IFNAMSIZ - 1);
        req.name[..len].copy_from_slice(&name.as_bytes()[..len]);
        req
    }
}

/// TUNSETIFF on an open `/dev/net/tun`: attaches it to (creating) the
/// device named in `req`.
pub(crate) fn tun_set_iff(tun: BorrowedFd<'_>, req: &mut IfReqFlags) -> io::Result<()> {
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is a
    // live, exclusively borrowed value with the same size (40 bytes) and
    // layout for the fields the kernel uses (name, then flags), so the
    // kernel never accesses memory outside it. `tun` is an open fd.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, req as *mut IfReqFlags) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The tun ioctls that take a plain integer argument (TUNSETPERSIST,
/// TUNSETOWNER, TUNSETGROUP).
pub(crate) fn tun_set_value(
    tun: BorrowedFd<'_>,
    request: libc::Ioctl,
    value: libc::c_ulong,
) -> io::Result<()> {
    // SAFETY: these requests take their argument by value, not as a
    // pointer, so no memory of ours is read or written; `tun` is an open fd.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), request, value) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `NS_GET_NSTYPE` (`_IO(0xb7, 0x3)`, linux/nsfs.h): the `CLONE_NEW*` flag
/// of the namespace an nsfs file refers to.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Whether the open nsfs file `ns` is a network namespace.
pub(crate) fn is_network_namespace(ns: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type as the
    // call's value; no memory is passed to the kernel. `ns` is an open fd.
    let rc = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_NSTYPE as _) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc == libc::CLONE_NEWNET)
    }
}

/// `SO_NETNS_COOKIE` (asm-generic/socket.h; Linux 5.14). mips and sparc
/// number it differently; rcni builds for x86_64 and aarch64 only.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the network namespace `socket` lives in: a number the
/// kernel never gives to another namespace while it runs, unlike the
/// namespace's inode, which is reused.
pub(crate) fn netns_cookie(socket: BorrowedFd<'_>) -> io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes to the pointer; it
    // points at `cookie`, a live u64 on this stack frame, and `len` is its
    // size. `socket` is an open fd for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 && len as usize == size_of::<u64>() {
        Ok(cookie)
    } else if rc == 0 {
        Err(io::Error::other("SO_NETNS_COOKIE returned a short value"))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `struct io_uring_params` (linux/io_uring.h): 120 bytes, all zero for a
/// plain ring; the kernel fills in the offsets.
#[repr(C)]
struct IoUringParams([u64; 15]);

/// `IORING_REGISTER_FILES`.
const IORING_REGISTER_FILES: libc::c_long = 2;

/// Gives `fd`'s file a second holder that the kernel itself releases: a
/// new io_uring with `fd` as its one registered file. The ring is returned
/// and is closed with the caller's descriptor; the ring is then torn down
/// by a kernel worker, after an RCU grace period, so the file's last
/// reference goes there rather than in the closing (or exiting) process.
pub(crate) fn hold_in_io_uring(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut params = IoUringParams([0; 15]);
    // SAFETY: io_uring_setup reads and writes one `struct io_uring_params`;
    // `params` is a live, exclusively borrowed value of its size (120
    // bytes) and alignment, zeroed as the kernel requires.
    let ring = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            1 as libc::c_uint,
            &mut params as *mut IoUringParams,
        )
    };
    if ring < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    let ring = unsafe { OwnedFd::from_raw_fd(ring as libc::c_int) };
    let files: [libc::c_int; 1] = [fd.as_raw_fd()];
    // SAFETY: IORING_REGISTER_FILES reads `nr_args` (1) descriptors, each a
    // 32-bit int, from the pointer; `files` holds exactly one and lives
    // across the call. `ring` and `fd` are open.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_REGISTER_FILES,
            files.as_ptr(),
            1 as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernels_size() {
        assert_eq!(size_of::<IfReqFlags>(), 40);
        assert_eq!(size_of::<IfReqFlags>(), size_of::<libc::ifreq>());
        let r = IfReqFlags::new("tap0", 2);
        assert_eq!(&r.name[..5], b"tap0\0");
    }

    #[test]
    fn io_uring_params_have_the_kernels_size() {
        assert_eq!(size_of::<IoUringParams>(), 120);
    }
}
