//! The system calls rcni makes that have no safe wrapper: entering a new
//! network namespace and reading its cookie, the tun driver's ioctls,
//! packet sockets (the DHCP client's link-layer socket) and taking the
//! listening socket systemd passes, handing a netfilter socket to an
//! io_uring, and the process set-up that std's start-up would have done.
//! This is the only module with `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

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

/// `sockaddr_ll` for interface `ifindex`, IPv4 frames, to `mac`.
fn link_address(ifindex: u32, mac: [u8; 6]) -> io::Result<libc::sockaddr_ll> {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&mac);
    Ok(libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_IP as u16).to_be(),
        sll_ifindex: i32::try_from(ifindex)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    })
}

/// An `AF_PACKET` datagram socket (the kernel adds and strips the link
/// header) bound to interface `ifindex`, receiving IPv4 frames only.
pub(crate) fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let protocol = i32::from((libc::ETH_P_IP as u16).to_be());
    // SAFETY: socket() takes no pointers; a non-negative return is a new
    // descriptor that nothing else owns, so OwnedFd may take it.
    let fd = unsafe {
        let rc = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            protocol,
        );
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(rc)
    };
    let addr = link_address(ifindex, [0; 6])?;
    // SAFETY: `addr` is a valid sockaddr_ll that lives across the call and
    // its exact size is passed; the kernel only reads it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sends the IPv4 packet `ip_packet` on packet socket `fd` out of
/// `ifindex` to the link-layer address `mac`.
pub(crate) fn packet_send(
    fd: BorrowedFd<'_>,
    ifindex: u32,
    mac: [u8; 6],
    ip_packet: &[u8],
) -> io::Result<()> {
    let addr = link_address(ifindex, mac)?;
    // SAFETY: the buffer and the address are valid for the lengths passed
    // and outlive the call; the kernel only reads them.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            ip_packet.as_ptr().cast(),
            ip_packet.len(),
            0,
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits up to `timeout` for a datagram on `fd` and reads it into `buf`:
/// `Ok(None)` when none came in time.
pub(crate) fn recv_within(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    timeout: std::time::Duration,
) -> io::Result<Option<usize>> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, count 1; the kernel writes only `revents`.
    let rc = unsafe { libc::poll(&mut pfd, 1, millis) };
    match rc {
        0 => return Ok(None),
        rc if rc < 0 => {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        _ => {}
    }
    // SAFETY: `buf` is valid for writes of its length for the whole call;
    // MSG_DONTWAIT keeps a datagram taken by someone else from blocking.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(n as usize))
}

/// The first socket systemd passed by socket activation (fd 3), when
/// `LISTEN_PID` names this process and `LISTEN_FDS` is at least 1; taken
/// at most once per process.
pub fn take_activation_socket() -> Option<OwnedFd> {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let ours = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    let count: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if !ours || count < 1 || TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    const SD_LISTEN_FDS_START: i32 = 3;
    // SAFETY: fstat only writes into `st`; it tells whether fd 3 is open
    // and a socket before anything takes ownership of it.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(SD_LISTEN_FDS_START, &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if !is_socket {
        return None;
    }
    // SAFETY: systemd's protocol hands fd 3 to this process (LISTEN_PID
    // checked above); nothing in rcni opens or owns it otherwise, and TAKEN
    // makes this the only owner.
    Some(unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) })
}

/// What the binary's entry point needs of std's start-up, which it skips
/// (std's also reads `/proc/self/maps` to find the main thread's stack and
/// sets up a signal stack to report its overflow: about 50 µs of every
/// plugin's exec). Called first, before any thread or file exists:
/// - descriptors 0, 1 and 2 open (on `/dev/null` where the caller closed
///   one), so that no file rcni opens becomes its stdin, stdout or stderr
///   and a plugin's answer never lands in, say, a lock file;
/// - SIGPIPE ignored, so that a write to a closed pipe or socket fails with
///   EPIPE instead of killing the process (the dhcp daemon answers plugins
///   over a socket). Children get it back at its default, as std's
///   `Command` resets it.
pub fn prepare_process() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only reads the descriptor flags of `fd`, which
        // need not be open (EBADF then); no memory is passed.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        // The lowest free descriptor is `fd`, as those below it are open.
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            Ok(null) if null.as_raw_fd() == fd => {
                let _kept_open = null.into_raw_fd();
            }
            _ => std::process::abort(),
        }
    }
    // SAFETY: SIG_IGN installs no handler, so no code of ours runs in
    // signal context; `signal` reads nothing from memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
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
