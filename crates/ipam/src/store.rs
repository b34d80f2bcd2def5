//! The on-disk store, shared byte for byte with the reference's `disk`
//! backend (`backend/disk/backend.go`), so either implementation can
//! release what the other allocated:
//!
//! - `<dataDir>/<network>/` (created 0755 with its parents);
//! - one file per allocated address, named by the address's text
//!   (`10.1.2.3`, `2001:db8::5`), mode 0600, holding
//!   `<containerID>\r\n<ifname>` with no trailing newline (the ID
//!   whitespace-trimmed). Older reference versions wrote `<containerID>`
//!   alone; such a file matches the ID with any interface name;
//! - `last_reserved_ip.<rangeSetIndex>`: the text of the last address
//!   handed out from that set, no newline, mode 0600;
//! - `lock`: an empty file (opened `O_CREAT|O_RDONLY`, mode 0750, as
//!   go-filemutex does) held with an exclusive `flock` across every
//!   allocation and release.
//!
//! Crash safety beyond the reference: an address file is written under a
//! temporary name (`.rcni-<pid>-…`) and hard-linked into place, so it
//! never exists without its owner (the reference can leave an empty file,
//! which leaks the address forever); `last_reserved_ip.N` is replaced by a
//! rename, and an unreadable one is ignored. Leftover temporary files are
//! removed by the next process to take the lock.

use crate::error::IpamError;
use crate::range::{ip_text, to_u128};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Prefix of the file recording a set's last handed-out address.
pub const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// Separates the container ID from the interface name in an address file.
pub const LINE_BREAK: &str = "\r\n";
/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
/// Prefix of rcni's in-flight files; any found while holding the lock were
/// left by a process that died.
const TEMP_PREFIX: &str = ".rcni-";

/// One allocated address and its owner, as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub container_id: String,
    /// Empty for the legacy format that recorded only the container ID.
    pub ifname: String,
}

impl Allocation {
    /// Whether this allocation belongs to `id`/`ifname` by the reference's
    /// rules (a legacy record belongs to `id` on any interface).
    pub fn belongs_to(&self, id: &str, ifname: &str) -> bool {
        self.container_id == id.trim() && (self.ifname.is_empty() || self.ifname == ifname)
    }
}

/// The store of one network.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
}

/// The store's exclusive lock, released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Rejects network names that would not stay one directory below dataDir.
fn validate_network(network: &str) -> Result<(), IpamError> {
    if network.is_empty()
        || network == "."
        || network == ".."
        || network.contains('/')
        || network.contains('\0')
    {
        return Err(IpamError::InvalidNetworkName {
            name: network.to_string(),
        });
    }
    Ok(())
}

/// Opens (creating if needed) the lock file as go-filemutex does.
fn open_lock_file(path: &Path) -> Result<File, IpamError> {
    rustix::fs::open(
        path,
        // Non-blocking: a FIFO planted under the name must not hang us.
        OFlags::CREATE | OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o750),
    )
    .map(File::from)
    .map_err(|e| IpamError::Io {
        context: "cannot open the lock file",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// A file's contents as the reference compares them: whitespace-trimmed.
fn read_trimmed(path: &Path) -> Option<String> {
    let mut buf = Vec::new();
    read_small_at(&rustix::fs::CWD, path, &mut buf)?;
    Some(String::from_utf8_lossy(&buf).trim().to_string())
}

/// The most a store file is read: more than the longest container ID an
/// environment variable can carry (128 KiB) plus an interface name, and a
/// bound on what a planted file can make us read.
const MAX_STORE_FILE: usize = 256 * 1024;

/// Reads the file `name` (relative to the open directory `dir`) into
/// `buf`; `None` when it cannot be opened or read (as a file gone in
/// between) or is larger than [`MAX_STORE_FILE`]. Opened non-blocking, so
/// a FIFO or a device planted in the store reads as empty or fails
/// instead of hanging the call.
fn read_small_at(
    dir: &impl std::os::fd::AsFd,
    name: impl rustix::path::Arg,
    buf: &mut Vec<u8>,
) -> Option<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    buf.clear();
    let mut chunk = [0u8; 256];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                // A regular file reads short only at its end: no second
                // read to see the zero.
                if n < chunk.len() {
                    return Some(());
                }
                if buf.len() > MAX_STORE_FILE {
                    return None;
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

/// Whether linking failed because the filesystem cannot hard-link.
fn link_unsupported(e: &std::io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS | Errno::XDEV | Errno::MLINK)
    )
}

impl DiskStore {
    /// Opens (creating if needed, with the lock file) the store of
    /// `network` under `data_dir`. The name must be usable as one
    /// directory name (not empty, `.`, `..`, nor containing `/`).
    pub fn open(data_dir: &Path, network: &str) -> Result<DiskStore, IpamError> {
        validate_network(network)?;
        let dir = data_dir.join(network);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(IpamError::io("cannot create the store directory", &dir))?;
        open_lock_file(&dir.join(LOCK_FILE))?;
        Ok(DiskStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock (blocking), then removes in-flight files
    /// left by a process that died while holding it. Each call opens the
    /// lock file anew, so two threads sharing one store exclude each other
    /// too.
    pub fn lock(&self) -> Result<StoreLock, IpamError> {
        let path = self.dir.join(LOCK_FILE);
        let file = open_lock_file(&path)?;
        file.lock().map_err(IpamError::io("cannot lock", &path))?;
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(StoreLock { _file: file })
    }

    /// The path of `ip`'s file.
    pub fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip_text(ip))
    }

    fn last_reserved_path(&self, set_index: usize) -> PathBuf {
        self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}"))
    }

    fn temp_path(&self, suffix: &str) -> PathBuf {
        self.dir
            .join(format!("{TEMP_PREFIX}{}-{suffix}", std::process::id()))
    }

    /// Writes `contents` (mode 0600) to a new file at `path`, which must
    /// not exist (`O_EXCL`); removes it again if the write fails.
    fn create_new(path: &Path, contents: &str) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        if let Err(e) = f.write_all(contents.as_bytes()) {
            drop(f);
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(())
    }

    /// Writes `contents` (mode 0600) to a temporary file in the store and
    /// returns its path; nothing is left behind on failure.
    fn stage(&self, suffix: &str, contents: &str) -> Result<PathBuf, IpamError> {
        let tmp = self.temp_path(suffix);
        let _ = fs::remove_file(&tmp);
        Self::create_new(&tmp, contents).map_err(IpamError::io("cannot write", &tmp))?;
        Ok(tmp)
    }

    /// Replaces `path` with `contents` through a temporary file and a
    /// rename, so readers see the old or the new contents, never a part.
    fn write_atomically(&self, path: &Path, contents: &str) -> Result<(), IpamError> {
        let tmp = self.stage("w", contents)?;
        fs::rename(&tmp, path).map_err(|source| {
            let _ = fs::remove_file(&tmp);
            IpamError::Io {
                context: "cannot write",
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Reserves `ip` for `id`/`ifname` and records it as range set
    /// `set_index`'s last reserved address; `false` when it is already
    /// taken. Call with the lock held.
    pub fn reserve(
        &self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        set_index: usize,
    ) -> Result<bool, IpamError> {
        let path = self.ip_path(ip);
        // Under the lock, an existing file is taken for good; checking
        // first spares a full range's walk the staging of every candidate.
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(false);
        }
        let contents = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let tmp = self.stage(&ip_text(ip), &contents)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            // A filesystem without hard links: create in place, as the
            // reference does.
            Err(e) if link_unsupported(&e) => match Self::create_new(&path, &contents) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
                Err(source) => {
                    return Err(IpamError::Io {
                        context: "cannot reserve",
                        path,
                        source,
                    })
                }
            },
            Err(source) => {
                return Err(IpamError::Io {
                    context: "cannot reserve",
                    path,
                    source,
                })
            }
        }
        if let Err(e) = self.write_atomically(&self.last_reserved_path(set_index), &ip_text(ip)) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(true)
    }

    /// The last address handed out from range set `set_index`; `None` when
    /// the file is missing or does not hold an address.
    pub fn last_reserved(&self, set_index: usize) -> Option<IpAddr> {
        let text = read_trimmed(&self.last_reserved_path(set_index))?;
        text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    }

    /// The address files of the store with their trimmed contents, in the
    /// order of their names (the reference's walk order). Every file is
    /// read relative to the open directory with one `openat`, one `read`
    /// into a reused buffer and a `close`: this walk is what an allocation
    /// costs per address taken, so it avoids per-file path building and
    /// the size probe of `fs::read`.
    fn entries(&self) -> Result<Vec<(IpAddr, PathBuf, String)>, IpamError> {
        let dir_fd = rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IpamError::io("cannot read", &self.dir)(e.into()))?;
        let dir = fs::read_dir(&self.dir).map_err(IpamError::io("cannot read", &self.dir))?;
        let mut named: Vec<(String, IpAddr)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let ip = name.parse::<IpAddr>().ok()?;
                Some((name, ip.to_canonical()))
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut buf = Vec::with_capacity(256);
        Ok(named
            .into_iter()
            .filter_map(|(name, ip)| {
                read_small_at(&dir_fd, &name, &mut buf)?;
                let data = String::from_utf8_lossy(&buf).trim().to_string();
                Some((ip, self.dir.join(name), data))
            })
            .collect())
    }

    /// Every allocation in the store, in address order.
    pub fn allocations(&self) -> Result<Vec<Allocation>, IpamError> {
        let mut out: Vec<Allocation> = self
            .entries()?
            .into_iter()
            .map(|(ip, _, data)| {
                let (container_id, ifname) = match data.split_once(LINE_BREAK) {
                    Some((id, ifname)) => (id.to_string(), ifname.to_string()),
                    None => (data, String::new()),
                };
                Allocation {
                    ip,
                    container_id,
                    ifname,
                }
            })
            .collect();
        out.sort_by_key(|a| (!a.ip.is_ipv4(), to_u128(a.ip)));
        Ok(out)
    }

    /// The addresses held by `id`/`ifname`: files holding exactly
    /// `<id>\r\n<ifname>` or the legacy `<id>`, as the reference's
    /// `GetByID`.
    pub fn get_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let exact = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let legacy = id.trim();
        Ok(self
            .entries()?
            .into_iter()
            .filter(|(_, _, data)| *data == exact || data == legacy)
            .map(|(ip, _, _)| ip)
            .collect())
    }

    /// Whether `id`/`ifname` holds any address (the reference's CHECK).
    pub fn find_by_id(&self, id: &str, ifname: &str) -> Result<bool, IpamError> {
        Ok(!self.get_by_id(id, ifname)?.is_empty())
    }

    /// Releases every address held by `id`/`ifname` and returns them. As
    /// the reference's `ReleaseByID`: files holding `<id>\r\n<ifname>`;
    /// only if there are none, legacy files holding `<id>`. Every file is
    /// tried; the first failure is returned after. Call with the lock held.
    pub fn release_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let entries = self.entries()?;
        let exact = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let legacy = id.trim();
        let mut matching: Vec<&(IpAddr, PathBuf, String)> =
            entries.iter().filter(|(_, _, d)| *d == exact).collect();
        if matching.is_empty() {
            matching = entries.iter().filter(|(_, _, d)| d == legacy).collect();
        }
        let mut released = Vec::new();
        let mut first_err = None;
        for (ip, path, _) in matching {
            match fs::remove_file(path) {
                Ok(()) => released.push(*ip),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    first_err.get_or_insert(IpamError::Io {
                        context: "cannot release",
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }

    /// Releases `ips` when every one of them is held by `id`/`ifname`
    /// (`<id>\r\n<ifname>`): the addresses a DEL's prevResult names, freed
    /// without reading the rest of the store. `None`, and nothing released,
    /// when any of them is not (then [`DiskStore::release_by_id`] does the
    /// full walk). Call with the lock.
    pub fn release_known(
        &self,
        id: &str,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<Option<Vec<IpAddr>>, IpamError> {
        let exact = format!("{}{LINE_BREAK}{ifname}", id.trim());
        if ips.is_empty()
            || !ips
                .iter()
                .all(|ip| read_trimmed(&self.ip_path(*ip)).is_some_and(|d| d == exact))
        {
            return Ok(None);
        }
        for ip in ips {
            self.release(*ip)?;
        }
        Ok(Some(ips.to_vec()))
    }

    /// Releases one address (a missing file is fine). Call with the lock.
    pub fn release(&self, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.ip_path(ip);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(IpamError::Io {
                context: "cannot release",
                path,
                source,
            }),
        }
    }

    /// Whether `ip` is allocated.
    pub fn is_taken(&self, ip: IpAddr) -> bool {
        fs::symlink_metadata(self.ip_path(ip)).is_ok()
    }

    /// Fails unless a file can be created in the store (for STATUS).
    pub fn check_writable(&self) -> Result<(), IpamError> {
        let probe = self.temp_path("probe");
        let result = File::create(&probe).map(|_| ());
        let _ = fs::remove_file(&probe);
        result.map_err(IpamError::io("cannot write into", &self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Runs `f` with umask 022, the usual one, so modes are predictable.
    fn with_umask<T>(f: impl FnOnce() -> T) -> T {
        let old = rustix::process::umask(Mode::from_raw_mode(0o022));
        let out = f();
        rustix::process::umask(old);
        out
    }

    #[test]
    fn file_format_matches_the_reference() {
        with_umask(|| {
            let d = tempfile::tempdir().unwrap();
            let root = d.path().join("a/b");
            let s = DiskStore::open(&root, "net1").unwrap();
            let dir = root.join("net1");
            assert_eq!(mode(&dir), 0o755);
            assert_eq!(mode(&root), 0o755);
            assert_eq!(mode(&dir.join("lock")), 0o750);
            assert_eq!(fs::read(dir.join("lock")).unwrap(), b"");
            let _l = s.lock().unwrap();
            assert!(s.reserve(" c1 ", "eth0", ip("10.0.0.2"), 0).unwrap());
            assert!(!s.reserve("c2", "eth0", ip("10.0.0.2"), 0).unwrap());
            let f = dir.join("10.0.0.2");
            assert_eq!(fs::read(&f).unwrap(), b"c1\r\neth0");
            assert_eq!(mode(&f), 0o600);
            assert_eq!(fs::metadata(&f).unwrap().len(), 8);
            let last = dir.join("last_reserved_ip.0");
            assert_eq!(fs::read(&last).unwrap(), b"10.0.0.2");
            assert_eq!(mode(&last), 0o600);
            assert_eq!(s.last_reserved(0), Some(ip("10.0.0.2")));
            assert!(s.reserve("c1", "eth0", ip("2001:db8::5"), 1).unwrap());
            assert_eq!(
                fs::read(dir.join("2001:db8::5")).unwrap(),
                b"c1\r\neth0".to_vec()
            );
            assert_eq!(
                fs::read(dir.join("last_reserved_ip.1")).unwrap(),
                b"2001:db8::5"
            );
            // A mapped address is stored under its IPv4 name.
            assert!(s.reserve("c3", "eth0", ip("::ffff:10.0.0.9"), 0).unwrap());
            assert!(dir.join("10.0.0.9").exists());
            assert_eq!(
                names(&dir),
                [
                    "10.0.0.2",
                    "10.0.0.9",
                    "2001:db8::5",
                    "last_reserved_ip.0",
                    "last_reserved_ip.1",
                    "lock"
                ]
            );
            assert_eq!(
                s.get_by_id("c1", "eth0").unwrap(),
                vec![ip("10.0.0.2"), ip("2001:db8::5")]
            );
            assert!(s.get_by_id("c1", "eth1").unwrap().is_empty());
            assert!(s.find_by_id("c3", "eth0").unwrap());
            assert_eq!(s.release_by_id("c1", "eth0").unwrap().len(), 2);
            assert_eq!(
                s.allocations().unwrap(),
                vec![Allocation {
                    ip: ip("10.0.0.9"),
                    container_id: "c3".into(),
                    ifname: "eth0".into()
                }]
            );
            // last_reserved_ip files outlive releases, as in the reference.
            assert_eq!(
                names(&dir),
                [
                    "10.0.0.9",
                    "last_reserved_ip.0",
                    "last_reserved_ip.1",
                    "lock"
                ]
            );
        })
    }

    #[test]
    fn reads_what_the_reference_writes() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        let dir = d.path().join("n");
        // Files as the Go backend leaves them, plus noise it ignores.
        fs::write(dir.join("10.0.0.5"), "abc\r\neth0").unwrap();
        fs::write(dir.join("10.0.0.6"), "abc\r\neth1").unwrap();
        fs::write(dir.join("fd00::7"), " abc\r\neth0\n").unwrap();
        fs::write(dir.join("10.0.0.8"), "").unwrap();
        fs::write(dir.join("last_reserved_ip.0"), "10.0.0.6").unwrap();
        fs::write(dir.join("notes"), "abc\r\neth0").unwrap();
        assert_eq!(
            s.get_by_id("abc", "eth0").unwrap(),
            [ip("10.0.0.5"), ip("fd00::7")]
        );
        assert_eq!(s.last_reserved(0), Some(ip("10.0.0.6")));
        let all = s.allocations().unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[2].ip, ip("10.0.0.8"));
        assert_eq!(all[2].container_id, "");
        assert!(s.is_taken(ip("10.0.0.8")));
        let _l = s.lock().unwrap();
        assert_eq!(
            s.release_by_id("abc", "eth0").unwrap(),
            [ip("10.0.0.5"), ip("fd00::7")]
        );
        assert!(dir.join("10.0.0.6").exists() && dir.join("notes").exists());
    }

    #[test]
    fn legacy_files() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        let dir = d.path().join("n");
        fs::write(dir.join("10.0.0.9"), "old-id").unwrap();
        fs::write(dir.join("10.0.0.10"), "old-id\n").unwrap();
        // GetByID takes both forms at once.
        fs::write(dir.join("10.0.0.11"), "old-id\r\neth1").unwrap();
        assert_eq!(
            s.get_by_id("old-id", "eth1").unwrap(),
            [ip("10.0.0.10"), ip("10.0.0.11"), ip("10.0.0.9")]
        );
        assert_eq!(
            s.get_by_id("old-id", "eth7").unwrap(),
            [ip("10.0.0.10"), ip("10.0.0.9")]
        );
        let all = s.allocations().unwrap();
        assert!(all[0].belongs_to("old-id", "eth7") && all[0].ifname.is_empty());
        assert!(!all[2].belongs_to("old-id", "eth7"));
        let _l = s.lock().unwrap();
        // ReleaseByID: exact matches first, legacy only when none.
        assert_eq!(
            s.release_by_id("old-id", "eth1").unwrap(),
            [ip("10.0.0.11")]
        );
        assert_eq!(
            s.release_by_id("old-id", "eth1").unwrap(),
            [ip("10.0.0.10"), ip("10.0.0.9")]
        );
        assert!(s.allocations().unwrap().is_empty());
        assert!(s.release_by_id("old-id", "eth1").unwrap().is_empty());
    }

    #[test]
    fn broken_last_reserved_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        assert_eq!(s.last_reserved(0), None);
        for junk in ["", "10.0.", "garbage", "10.0.0.300"] {
            fs::write(d.path().join("n/last_reserved_ip.0"), junk).unwrap();
            assert_eq!(s.last_reserved(0), None, "{junk:?}");
        }
        fs::write(d.path().join("n/last_reserved_ip.0"), "10.0.0.3\n").unwrap();
        assert_eq!(s.last_reserved(0), Some(ip("10.0.0.3")));
    }

    #[test]
    fn rejects_escaping_names_and_cleans_stale_temp_files() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["..", ".", "a/b", "", "/x", "a\0b"] {
            assert!(DiskStore::open(d.path(), bad).unwrap_err().is_config());
        }
        let s = DiskStore::open(d.path(), "n").unwrap();
        assert_eq!(s.dir(), d.path().join("n"));
        fs::write(d.path().join("n/.rcni-999-10.0.0.3"), "dead\r\neth0").unwrap();
        drop(s.lock().unwrap());
        assert!(!d.path().join("n/.rcni-999-10.0.0.3").exists());
        assert!(s.check_writable().is_ok());
        assert_eq!(names(&d.path().join("n")), ["lock"]);
    }

    #[test]
    fn lock_excludes_other_holders() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        let held = s.lock().unwrap();
        let other = File::open(d.path().join("n/lock")).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    #[test]
    fn release_errors_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        assert!(s.reserve("c", "eth0", ip("10.0.0.2"), 0).unwrap());
        s.release(ip("10.0.0.2")).unwrap();
        s.release(ip("10.0.0.2")).unwrap();
        // A directory where the file should be cannot be unlinked.
        fs::create_dir(d.path().join("n/10.0.0.3")).unwrap();
        assert!(s.release(ip("10.0.0.3")).unwrap_err().is_io());
        // A store that vanished is an I/O error.
        fs::remove_dir_all(d.path().join("n")).unwrap();
        assert!(s.get_by_id("c", "eth0").unwrap_err().is_io());
        assert!(s.lock().unwrap_err().is_io());
    }
}
