//! `/proc/sys` access. Network sysctls resolve against the network
//! namespace of the calling *thread*: wrap calls in [`crate::NetNs::run`]
//! to act inside another namespace.
//!
//! Keys are dotted (`net.ipv4.ip_forward`) or slashed
//! (`net/ipv4/conf/eth0.100/rp_filter`). As in the reference (and
//! `sysctl(8)`), the first separator decides: a key whose first separator is
//! a dot has its dots and slashes swapped (so `net.ipv4.conf.eth0/100.x`
//! names interface `eth0.100`); a key whose first separator is a slash is
//! taken verbatim, so interface names with dots are safe in slash form.

use crate::error::{NetError, Result};
use rustix::fs::{Mode, OFlags};
use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The relative path under `/proc/sys` of `key`.
fn normalize(key: &str) -> String {
    let dotted = key.chars().find(|c| *c == '.' || *c == '/') == Some('.');
    if dotted {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    } else {
        key.to_string()
    }
}

/// The full path of `key`, refusing keys that would leave `/proc/sys`.
pub fn path_of(key: &str) -> Result<PathBuf> {
    let rel = normalize(key);
    let rel = rel.trim_start_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(NetError::InvalidArgument(format!(
            "invalid sysctl key {key:?}"
        )));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// The directories of `/proc/sys/net` that a key is opened from, kept
/// open per thread and network namespace. A path under `/proc/sys/net`
/// is slow to look up from the root on a node with many namespaces: every
/// namespace has its own `net`, `ipv4` and `ipv6` entries under the same
/// names, and the kernel's name cache compares the caller's against each
/// of them (a first lookup in a new namespace took milliseconds with a
/// thousand pods). Opened once, a directory's children are found at once.
const CACHED_DIRS: [&str; 2] = ["net/ipv4/", "net/ipv6/"];

thread_local! {
    /// (the namespace's inode, one open directory per [`CACHED_DIRS`]).
    static DIRS: RefCell<(u64, [Option<OwnedFd>; 2])> = const { RefCell::new((0, [None, None])) };
}

/// Opens `key` for reading or writing: through this thread's open
/// directory of its namespace when the key is under one of
/// [`CACHED_DIRS`], else by its full path.
fn open(key: &str, write: bool) -> Result<File> {
    let path = path_of(key)?;
    let rel = path
        .strip_prefix("/proc/sys")
        .ok()
        .and_then(Path::to_str)
        .unwrap_or_default();
    let flags = if write {
        OFlags::WRONLY | OFlags::TRUNC | OFlags::CLOEXEC
    } else {
        OFlags::RDONLY | OFlags::CLOEXEC
    };
    let by_path = || {
        rustix::fs::open(&path, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| NetError::io(format!("open sysctl {}", path.display()))(e.into()))
    };
    let Some((slot, rest)) = CACHED_DIRS
        .iter()
        .enumerate()
        .find_map(|(i, dir)| rel.strip_prefix(dir).map(|rest| (i, rest)))
    else {
        return by_path();
    };
    let Ok(netns) = rustix::fs::stat("/proc/thread-self/ns/net").map(|st| st.st_ino) else {
        return by_path();
    };
    let opened = DIRS.with(|cell| {
        let mut dirs = cell.borrow_mut();
        if dirs.0 != netns {
            *dirs = (netns, [None, None]);
        }
        if dirs.1[slot].is_none() {
            let dir = Path::new("/proc/sys").join(CACHED_DIRS[slot]);
            dirs.1[slot] = rustix::fs::open(
                &dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok();
        }
        let dir = dirs.1[slot].as_ref()?;
        rustix::fs::openat(dir, rest, flags, Mode::empty()).ok()
    });
    match opened {
        Some(fd) => Ok(File::from(fd)),
        // A missing key, or a directory of a namespace gone whose inode
        // number was given to this one: the full path tells which.
        None => {
            DIRS.with(|cell| *cell.borrow_mut() = (0, [None, None]));
            by_path()
        }
    }
}

/// Reads a sysctl, without its trailing newline. A missing key gives an
/// error for which [`NetError::is_not_found`] holds.
pub fn get(key: &str) -> Result<String> {
    let mut v = String::new();
    open(key, false)?
        .read_to_string(&mut v)
        .map_err(NetError::io(format!("read sysctl {key}")))?;
    Ok(v.strip_suffix('\n').unwrap_or(&v).to_string())
}

/// Writes a sysctl.
pub fn set(key: &str, value: &str) -> Result<()> {
    open(key, true)?
        .write_all(value.as_bytes())
        .map_err(NetError::io(format!("write sysctl {key} = {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(key: &str) -> String {
        path_of(key).unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn paths() {
        assert_eq!(p("net.ipv4.ip_forward"), "/proc/sys/net/ipv4/ip_forward");
        assert_eq!(
            p("net/ipv4/conf/eth0.5/rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.5/rp_filter"
        );
        assert_eq!(
            p("net.ipv4.conf.eth0/5.rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.5/rp_filter"
        );
        assert_eq!(
            p("/net/ipv6/conf/all/forwarding"),
            "/proc/sys/net/ipv6/conf/all/forwarding"
        );
        assert_eq!(p("kernel"), "/proc/sys/kernel");
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "",
            "net/../../etc/passwd",
            "net..ipv4",
            "net/./x",
            "net.ipv4.",
            "/",
        ] {
            assert!(path_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_namespace_keeps_its_own_values() {
        // One thread going back and forth between two namespaces, as a
        // plugin's does: the kept-open directories must follow it.
        let a = crate::NetNs::new_anonymous().unwrap();
        let b = crate::NetNs::new_anonymous().unwrap();
        let key = "net/ipv4/conf/lo/arp_notify";
        let v6 = "net.ipv6.conf.lo.accept_ra";
        a.run(|| set(key, "1").and(set(v6, "0"))).unwrap().unwrap();
        b.run(|| set(v6, "2")).unwrap().unwrap();
        assert_eq!(b.run(|| get(key)).unwrap().unwrap(), "0");
        assert_eq!(a.run(|| get(key)).unwrap().unwrap(), "1");
        assert_eq!(a.run(|| get(v6)).unwrap().unwrap(), "0");
        assert_eq!(b.run(|| get(v6)).unwrap().unwrap(), "2");
        assert!(a
            .run(|| get("net/ipv4/conf/no-such-if0/arp_notify"))
            .unwrap()
            .unwrap_err()
            .is_not_found());
        assert_eq!(a.run(|| get(key)).unwrap().unwrap(), "1");
    }

    #[test]
    fn reads_here() {
        // Present in every network namespace.
        let v = get("net.ipv4.conf.lo.forwarding").unwrap();
        assert!(v == "0" || v == "1", "{v:?}");
        assert!(get("net.ipv4.conf.no-such-if0.forwarding")
            .unwrap_err()
            .is_not_found());
    }
}
