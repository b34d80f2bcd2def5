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
//! rcni adds `rcni-index` (see [`crate::index`]), which the reference
//! reads past, so that a walk of the store lists the directory once and
//! reads only the files the reference wrote.
//!
//! Crash safety beyond the reference: an address file is written under a
//! temporary name (`.rcni-<pid>-…`) and hard-linked into place, so it
//! never exists without its owner (the reference can leave an empty file,
//! which leaks the address forever); `last_reserved_ip.N` is written in
//! place as the reference writes it (a torn one is only a hint lost: an
//! unreadable one is ignored). Leftover temporary files are removed by the
//! next walk of the store made with the lock.

use crate::error::IpamError;
use crate::index::{self, Owner, INDEX_FILE};
use crate::range::{ip_text, to_u128};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
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
    read_small_at(&rustix::fs::CWD, path, &mut buf, MAX_STORE_FILE)?;
    Some(String::from_utf8_lossy(&buf).trim().to_string())
}

/// The most a store file is read: more than the longest container ID an
/// environment variable can carry (128 KiB) plus an interface name, and a
/// bound on what a planted file can make us read.
const MAX_STORE_FILE: usize = 256 * 1024;

/// The most the index is read: 64 MiB would index over half a million
/// addresses; anything larger is damage, and the index is rebuilt.
const MAX_INDEX_FILE: usize = 64 << 20;

/// Filesystems that take every change time of a directory from this
/// kernel's clock (see [`DiskStore::seal_index`]): ext2/3/4, XFS, Btrfs,
/// tmpfs.
const LOCAL_CLOCK_FILESYSTEMS: [u32; 4] = [0xef53, 0x5846_5342, 0x9123_683e, 0x0102_1994];

/// A file's change time in nanoseconds since the epoch; `None` before it.
fn change_time(stat: &rustix::fs::Stat) -> Option<u64> {
    let secs = u64::try_from(stat.st_ctime).ok()?;
    secs.checked_mul(1_000_000_000)?
        .checked_add(stat.st_ctime_nsec)
}

/// What a change tells of the directory's listing, for the index's header.
#[derive(Debug, Clone, Copy)]
enum Listing {
    /// rcni listed the directory with the lock: the listing's digest (0 if
    /// a file stayed out of the index) and how many names it counted.
    Seen { digest: u64, names: u64 },
    /// rcni added or removed the name whose digest is `entry`; `before` is
    /// the directory's change time before that.
    Changed {
        entry: u64,
        added: bool,
        before: Option<u64>,
    },
    /// rcni added a file the index cannot describe.
    Unknown,
}

/// Opens the file `name` of the open store directory `dir` for reading,
/// non-blocking, so that a FIFO or a device planted there cannot hang a
/// call; `None` when it cannot be opened (as a file gone in between).
fn open_store_file(dir: &impl std::os::fd::AsFd, name: impl rustix::path::Arg) -> Option<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// Reads the file `name` (relative to the open directory `dir`) into
/// `buf`; `None` when it cannot be opened or read (as a file gone in
/// between) or is larger than `max`. Opened non-blocking, so
/// a FIFO or a device planted in the store reads as empty or fails
/// instead of hanging the call.
fn read_small_at(
    dir: &impl std::os::fd::AsFd,
    name: impl rustix::path::Arg,
    buf: &mut Vec<u8>,
    max: usize,
) -> Option<()> {
    let fd = open_store_file(dir, name)?;
    read_small(&fd, buf, max)
}

/// Reads the open file `fd` into `buf`, as [`read_small_at`].
fn read_small(fd: &OwnedFd, buf: &mut Vec<u8>, max: usize) -> Option<()> {
    buf.clear();
    if max > MAX_STORE_FILE {
        // The index: read whole into a buffer of its length (and one more
        // byte, to see its end), in one read when it does not grow meanwhile.
        let size = rustix::fs::fstat(fd).map_or(0, |s| s.st_size.max(0) as usize);
        buf.resize(size.min(max) + 1, 0);
        let mut len = 0;
        loop {
            if len == buf.len() {
                if len > max {
                    return None;
                }
                buf.resize((2 * len).min(max + 1), 0);
            }
            match rustix::io::read(fd, &mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::INTR) => {}
                Err(_) => return None,
            }
        }
        buf.truncate(len);
        return Some(());
    }
    // Address files are small: no size probe for them.
    let mut chunk = [0u8; 256];
    loop {
        match rustix::io::read(fd, &mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                // A regular file reads short only at its end: no second
                // read to see the zero.
                if n < chunk.len() {
                    return Some(());
                }
                if buf.len() > max {
                    return None;
                }
            }
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

/// Reads the address file `name` (relative to the open directory `dir`)
/// into `buf`, as [`read_small_at`], and returns which file it was.
fn read_address_at(
    dir: &impl std::os::fd::AsFd,
    name: impl rustix::path::Arg,
    buf: &mut Vec<u8>,
) -> Option<index::FileId> {
    let fd = open_store_file(dir, name)?;
    let file = index::FileId::of(&rustix::fs::fstat(&fd).ok()?);
    read_small(&fd, buf, MAX_STORE_FILE)?;
    Some(file)
}

/// The address an address file's name stands for.
fn name_ip(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
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

    /// Takes the exclusive lock (blocking). Each call opens the lock file
    /// anew, so two threads sharing one store exclude each other too.
    /// In-flight files left by a process that died while holding it are
    /// removed by the next walk made with the lock.
    pub fn lock(&self) -> Result<StoreLock, IpamError> {
        let path = self.dir.join(LOCK_FILE);
        let file = open_lock_file(&path)?;
        file.lock().map_err(IpamError::io("cannot lock", &path))?;
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

    /// Records `ip_text` as set `set_index`'s last reserved address in
    /// place, as the reference does: a replacement by rename would make
    /// and free an inode per allocation, and ext4 makes every new inode
    /// step over the ones freed in the last seconds, so a busy store
    /// pays for it on each file it creates. Torn by a crash, the file only
    /// reads as no hint or another address to start the walk from. A
    /// symlink or a non-file under the name is replaced instead.
    fn write_last_reserved(&self, set_index: usize, ip_text: &str) -> Result<(), IpamError> {
        let path = self.last_reserved_path(set_index);
        // Written over, then cut to length: ext4 flushes a file truncated
        // to zero when it is closed, a disk write per allocation.
        #[allow(clippy::suspicious_open_options)]
        let in_place = OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
            .open(&path)
            .and_then(|mut f| {
                if !f.metadata()?.is_file() {
                    return Err(ErrorKind::InvalidInput.into());
                }
                f.write_all(ip_text.as_bytes())?;
                f.set_len(ip_text.len() as u64)
            });
        match in_place {
            Ok(()) => Ok(()),
            Err(_) => self.write_atomically(&path, ip_text),
        }
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
        let before = self.dir_change_time();
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
        if let Err(e) = self.write_last_reserved(set_index, &ip_text(ip)) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        // Without its line (or with a digest left behind) the file is only
        // read on the next walk.
        let name = ip_text(ip);
        let Ok(stat) = rustix::fs::statat(rustix::fs::CWD, &path, AtFlags::SYMLINK_NOFOLLOW) else {
            return Ok(true);
        };
        let file = index::FileId::of(&stat);
        let line = index::line(&name, file, Owner::parse(contents.trim()));
        let listing = match line {
            Some(_) => Listing::Changed {
                entry: index::digest_of(&name, file.ino),
                added: true,
                before,
            },
            // A file the index cannot describe: read by every walk.
            None => Listing::Unknown,
        };
        let _ = self.update_index(line.as_deref().unwrap_or_default(), 1, listing);
        Ok(true)
    }

    /// The store directory's change time (see [`change_time`]).
    fn dir_change_time(&self) -> Option<u64> {
        change_time(&rustix::fs::stat(&self.dir).ok()?)
    }

    /// Appends `lines` (`count` of them) to the index, starting it when
    /// there is none, and records in its header what `listing` tells of
    /// the directory's listing; the digest becomes 0 (unknown) when the
    /// index's lines were changed by someone else. Call with the lock,
    /// after the change `listing` describes.
    fn update_index(&self, lines: &str, count: usize, listing: Listing) -> std::io::Result<()> {
        let mut lines = lines.to_string();
        index::pad(&mut lines);
        let f = self.open_index()?;
        let size = f.metadata()?.len();
        let recorded = if size == 0 {
            // A new index: only a listing tells what the directory holds.
            Some(index::Header::default())
        } else {
            let mut head = [0u8; index::HEADER_LEN];
            f.read_exact_at(&mut head, 0)?;
            std::str::from_utf8(&head)
                .ok()
                .and_then(index::split_header)
                .map(|(header, _)| header)
                .filter(|_| (size - index::HEADER_LEN as u64).is_multiple_of(8))
        };
        let (header, known) = match (recorded.and_then(|h| h.extended(&lines, count)), listing) {
            // Lines that no header describes: rebuilt by the next walk.
            (None, _) => {
                let header = index::Header {
                    hash: 0,
                    ..index::Header::default()
                };
                (header, false)
            }
            (Some(h), Listing::Seen { digest, names }) => {
                let header = index::Header {
                    digest,
                    listed: names,
                    stamp: 0,
                    ..h
                };
                (header, true)
            }
            (
                Some(h),
                Listing::Changed {
                    entry,
                    added,
                    before,
                },
            ) if size > 0 && h.digest != 0 => {
                let header = index::Header {
                    digest: if added {
                        h.digest.wrapping_add(entry)
                    } else {
                        h.digest.wrapping_sub(entry)
                    },
                    listed: if added {
                        h.listed.saturating_add(1)
                    } else {
                        h.listed.saturating_sub(1)
                    },
                    stamp: 0,
                    ..h
                };
                // The digest was the listing's up to this change only if
                // nothing changed the directory since the stamp.
                (header, h.stamp != 0 && Some(h.stamp) == before)
            }
            (Some(h), _) => {
                let header = index::Header {
                    digest: 0,
                    stamp: 0,
                    ..h
                };
                (header, false)
            }
        };
        if size == 0 {
            f.write_all_at(format!("{}{lines}", header.line()).as_bytes(), 0)?;
        } else {
            f.write_all_at(lines.as_bytes(), size)?;
            f.write_all_at(header.fields().as_bytes(), index::FIELDS_AT)?;
        }
        if known && header.digest != 0 {
            self.seal_index(&f, header)?;
        }
        Ok(())
    }

    /// Opens (creating it if needed) the index for reading and writing.
    fn open_index(&self) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
            .open(self.dir.join(INDEX_FILE))
    }

    /// Records the directory's change time as the stamp of the listing
    /// `header` (already written to the open index `index`, with no stamp)
    /// describes, once it is proven that any later change to the directory
    /// gets another change time; else the stamp stays unknown. Call with
    /// the lock, after rcni's last change to the directory.
    ///
    /// Why that proves a listing unchanged: every change to a directory's
    /// entries (a name created, linked, renamed or removed, by anyone) sets
    /// its change time from the kernel's clock, and no system call sets a
    /// change time to a chosen value. The times the kernel hands out never
    /// go below one it handed out before: the coarse clock (one tick, 4 ms
    /// here) only advances, and with multigrain timestamps (Linux 6.13) a
    /// coarse time is raised to the latest fine-grained one handed out.
    /// Truncation to the filesystem's granularity keeps that order. So once
    /// a file of the same filesystem has a change time later than the
    /// directory's, every later change to the directory gets a later one.
    /// rcni reads the index's change time, and writes the index again
    /// until it is later (with multigrain timestamps the first read makes
    /// the next write take a fine-grained time). Without that, a change by
    /// another process in the same tick could get the directory's time
    /// again. The stamp is written only after the proof, so a crash leaves
    /// none. Only filesystems that take every change time from this
    /// kernel's clock are trusted (not a network filesystem), and a time in
    /// whole seconds (a filesystem without nanoseconds) is not used. What
    /// remains assumed is that the realtime clock is not stepped back
    /// meanwhile; even then a change is missed only if it lands on the
    /// stamp's very nanosecond.
    fn seal_index(&self, index: &File, mut header: index::Header) -> std::io::Result<()> {
        let dir = rustix::fs::stat(&self.dir)?;
        let local = rustix::fs::statfs(&self.dir)
            .is_ok_and(|fs| LOCAL_CLOCK_FILESYSTEMS.contains(&(fs.f_type as u32)));
        let Some(stamp) = change_time(&dir).filter(|t| local && t % 1_000_000_000 != 0) else {
            return Ok(());
        };
        for _ in 0..3 {
            let own = rustix::fs::fstat(index)?;
            if own.st_dev == dir.st_dev && change_time(&own).is_some_and(|t| t > stamp) {
                header.stamp = stamp;
                return index.write_all_at(header.fields().as_bytes(), index::FIELDS_AT);
            }
            index.write_all_at(header.fields().as_bytes(), index::FIELDS_AT)?;
        }
        Ok(())
    }

    /// The last address handed out from range set `set_index`; `None` when
    /// the file is missing or does not hold an address.
    pub fn last_reserved(&self, set_index: usize) -> Option<IpAddr> {
        let text = read_trimmed(&self.last_reserved_path(set_index))?;
        text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
    }

    /// Visits the address files of the store (by name: an indexed name is
    /// known to be an address, parsed only by the visitor that needs it)
    /// with the file each was and its owner, in no particular order. With
    /// `only` (a trimmed container ID), the visitor need see only the files
    /// of that owner, and may see one more than once, or a released one
    /// under an old owner: it must confirm each by reading it.
    ///
    /// With `only`, when the directory still has the change time sealed in
    /// the index's header (see [`DiskStore::seal_index`]), or else when a
    /// listing has the header's digest, the files of `only` are found by
    /// searching the index. Otherwise the directory is listed (a second
    /// time after a listing without the digest: keeping the first would
    /// cost every walk) and matched with the index line by line, and a file the index does not know by name,
    /// inode and change time (the reference wrote it, or the index was
    /// lost) is read. When the caller holds the lock (`locked`), the walk
    /// also brings the index up to date, seals it, and removes in-flight
    /// files left by a process that died; else it only reads.
    fn walk(
        &self,
        locked: bool,
        only: Option<&str>,
        mut visit: impl FnMut(&str, index::FileId, Owner<'_>),
    ) -> Result<(), IpamError> {
        let dir_fd: OwnedFd = rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IpamError::io("cannot read", &self.dir)(e.into()))?;
        let dir_time = rustix::fs::fstat(&dir_fd)
            .ok()
            .and_then(|stat| change_time(&stat));
        let mut index_bytes = Vec::new();
        if read_small_at(&dir_fd, INDEX_FILE, &mut index_bytes, MAX_INDEX_FILE).is_none() {
            index_bytes.clear();
        }
        // The header is text; the lines are searched as bytes, so that the
        // whole index need not be checked as UTF-8 on this path.
        let header = index_bytes
            .get(..index::HEADER_LEN)
            .and_then(|head| std::str::from_utf8(head).ok())
            .and_then(index::split_header)
            .map(|(header, _)| header)
            .filter(|header| {
                let body = &index_bytes[index::HEADER_LEN..];
                header.digest != 0
                    && index::extend_hash(index::EMPTY_HASH, body) == Some(header.hash)
            });
        // The directory still has the change time sealed with the digest:
        // its listing is the one the index describes, no need to list it.
        let sealed = match (only, header) {
            (Some(_), Some(h)) => {
                h.stamp != 0
                    && Some(h.stamp) == dir_time
                    && h.lines <= h.listed.saturating_mul(2).saturating_add(64)
            }
            _ => false,
        };
        // Else a listing to compare with the digest, when there is one to
        // search.
        let compare = only.is_some() && header.is_some() && !sealed;
        let io_error = |e: Errno| IpamError::io("cannot read", &self.dir)(e.into());
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        let (mut digest, mut listed) = (0u64, 0u64);
        let mut entries = rustix::fs::RawDir::new(&dir_fd, &mut buf);
        while let Some(entry) = if compare { entries.next() } else { None } {
            let entry = entry.map_err(io_error)?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if !index::outside_digest(name) {
                digest = digest.wrapping_add(index::digest_of(name, entry.ino()));
                listed += 1;
            }
        }
        if let (Some(id), Some(header)) = (only, header) {
            let listed_as_indexed =
                !sealed && header.digest == digest && header.lines <= 2 * listed + 64;
            if sealed || listed_as_indexed {
                for entry in index::lines_of(&index_bytes[index::HEADER_LEN..], id) {
                    visit(entry.name, entry.file, entry.owner);
                }
                if listed_as_indexed && locked {
                    // Sealed again, so that the next walk need not list.
                    let listing = Listing::Seen {
                        digest,
                        names: listed,
                    };
                    let _ = self.update_index("", 0, listing);
                }
                return Ok(());
            }
        }
        // Checked as a whole first: the lossy conversion goes by chunks.
        let index_text = match std::str::from_utf8(&index_bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&index_bytes),
        };
        let known = index::parse(&index_text);
        let mut live_lines: Vec<&str> = Vec::new();
        let mut new_lines = String::new();
        let mut new_count = 0;
        let mut contents = Vec::with_capacity(256);
        // Whether every address file has its owner in the index.
        let mut complete = true;
        // Someone else changed the store (or the index): a second listing,
        // matched line by line.
        if compare {
            rustix::fs::seek(&dir_fd, rustix::fs::SeekFrom::Start(0)).map_err(io_error)?;
        }
        (digest, listed) = (0, 0);
        let mut entries = rustix::fs::RawDir::new(&dir_fd, &mut buf);
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(io_error)?;
            let (Ok(name), ino) = (entry.file_name().to_str(), entry.ino()) else {
                continue;
            };
            if index::outside_digest(name) {
                continue;
            }
            digest = digest.wrapping_add(index::digest_of(name, ino));
            listed += 1;
            let believed = known.entries.get(&ino).filter(|k| {
                k.name == name
                    && rustix::fs::statat(&dir_fd, name, AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|stat| index::FileId::of(&stat) == k.file)
            });
            if let Some(k) = believed {
                live_lines.push(k.line);
                visit(name, k.file, k.owner);
                continue;
            }
            if locked && name.starts_with(TEMP_PREFIX) {
                if rustix::fs::unlinkat(&dir_fd, name, AtFlags::empty()).is_ok() {
                    digest = digest.wrapping_sub(index::digest_of(name, ino));
                    listed -= 1;
                }
                continue;
            }
            if name.parse::<IpAddr>().is_err() {
                continue;
            }
            let Some(file) = read_address_at(&dir_fd, name, &mut contents) else {
                continue;
            };
            let text = String::from_utf8_lossy(&contents);
            let owner = Owner::parse(text.trim());
            match index::line(name, file, owner) {
                Some(line) => {
                    new_lines.push_str(&line);
                    new_count += 1;
                }
                None => complete = false,
            }
            visit(name, file, owner);
        }
        if !locked {
            return Ok(());
        }
        // The index is rewritten when it is damaged or mostly lines of
        // files gone; else what the walk learnt is appended and the digest
        // set. Failing to write it costs only reads on the next walk.
        let digest = if complete { digest } else { 0 };
        let dead = known.lines - live_lines.len();
        let nothing = index_bytes.is_empty() && new_lines.is_empty();
        let damaged = !known.valid && !nothing;
        if damaged || dead > live_lines.len() + 64 {
            let mut lines = String::with_capacity(index_bytes.len() + new_lines.len());
            live_lines.iter().for_each(|l| lines.push_str(l));
            lines.push_str(&new_lines);
            index::pad(&mut lines);
            let header = index::Header::default().extended(&lines, live_lines.len() + new_count);
            let header = index::Header {
                digest,
                listed,
                ..header.unwrap_or_default()
            };
            let text = format!("{}{lines}", header.line());
            let written = self.write_atomically(&self.dir.join(INDEX_FILE), &text);
            if written.is_ok() && digest != 0 {
                let _ = self.open_index().and_then(|f| self.seal_index(&f, header));
            }
        } else if !new_lines.is_empty() || known.header.digest != digest {
            let listing = Listing::Seen {
                digest,
                names: listed,
            };
            let _ = self.update_index(&new_lines, new_count, listing);
        }
        Ok(())
    }

    /// Every allocation in the store, in address order.
    pub fn allocations(&self) -> Result<Vec<Allocation>, IpamError> {
        let mut out = Vec::new();
        self.walk(false, None, |name, _, owner| {
            let Some(ip) = name_ip(name) else { return };
            out.push(Allocation {
                ip,
                container_id: owner.id.to_string(),
                ifname: owner.ifname.unwrap_or_default().to_string(),
            })
        })?;
        out.sort_by_key(|a| (!a.ip.is_ipv4(), to_u128(a.ip)));
        Ok(out)
    }

    /// The addresses held by `id`/`ifname`: files holding exactly
    /// `<id>\r\n<ifname>` or the legacy `<id>`, as the reference's
    /// `GetByID`, in the order of their names. Only reads the store.
    pub fn get_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        self.held_by(false, id, ifname)
    }

    /// [`DiskStore::get_by_id`] with the lock held, which keeps the index
    /// up to date on the way.
    pub fn get_by_id_locked(
        &self,
        _held: &StoreLock,
        id: &str,
        ifname: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        self.held_by(true, id, ifname)
    }

    /// The files `id`/`ifname` holds, in the order of their names, with
    /// whether each holds the exact `<id>\r\n<ifname>` (else the legacy
    /// `<id>`). Each is read once more: what the walk took from the index
    /// is confirmed by the file itself. A line of the index that names the
    /// file (inode and change time) but not its owner (a file rewritten in
    /// place, which neither rcni nor the reference does) means the index
    /// cannot be trusted: with the lock, it is dropped, and the next walk
    /// rebuilds it.
    fn owned_files(
        &self,
        locked: bool,
        id: &str,
        ifname: &str,
    ) -> Result<Vec<(String, IpAddr, bool)>, IpamError> {
        let id = id.trim();
        let mut claimed = Vec::new();
        self.walk(locked, Some(id), |name, file, owner| {
            if owner.is_exact(id, ifname) || owner.is_legacy(id) {
                claimed.push((name.to_string(), file, owner.ifname.map(str::to_string)));
            }
        })?;
        claimed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut found: Vec<(String, IpAddr, bool)> = Vec::new();
        let mut lied = false;
        let mut contents = Vec::new();
        for (name, file, claimed_ifname) in claimed {
            let Some(ip) = name_ip(&name) else { continue };
            let Some(now) = read_address_at(&rustix::fs::CWD, self.dir.join(&name), &mut contents)
            else {
                continue;
            };
            let data = String::from_utf8_lossy(&contents);
            let owner = Owner::parse(data.trim());
            lied |= now == file && (owner.id != id || owner.ifname != claimed_ifname.as_deref());
            let exact = owner.is_exact(id, ifname);
            if (exact || owner.is_legacy(id)) && found.last().is_none_or(|f| f.0 != name) {
                found.push((name, ip, exact));
            }
        }
        if lied && locked {
            let _ = fs::remove_file(self.dir.join(INDEX_FILE));
        }
        Ok(found)
    }

    fn held_by(&self, locked: bool, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        Ok(self
            .owned_files(locked, id, ifname)?
            .into_iter()
            .map(|(_, ip, _)| ip)
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
        let files = self.owned_files(true, id, ifname)?;
        let any_exact = files.iter().any(|(_, _, exact)| *exact);
        let mut released = Vec::new();
        let mut first_err = None;
        for (name, ip, _) in files.into_iter().filter(|f| f.2 == any_exact) {
            match self.remove_address(&name) {
                Ok(()) => released.push(ip),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(released),
        }
    }

    /// Removes the address file `name` (a missing one is fine) and takes
    /// it out of the index's digest. Call with the lock.
    fn remove_address(&self, name: &str) -> Result<(), IpamError> {
        let path = self.dir.join(name);
        let before = self.dir_change_time();
        let ino = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.ino(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(IpamError::Io {
                    context: "cannot release",
                    path,
                    source,
                })
            }
        };
        match fs::remove_file(&path) {
            Ok(()) => {
                let listing = Listing::Changed {
                    entry: index::digest_of(name, ino),
                    added: false,
                    before,
                };
                let _ = self.update_index("", 0, listing);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(IpamError::Io {
                context: "cannot release",
                path,
                source,
            }),
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
        self.remove_address(&ip_text(ip))
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

    /// A store of network `n` in a temp dir (kept while the first value
    /// lives), and its directory.
    fn store_n() -> (tempfile::TempDir, DiskStore, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        let dir = d.path().join("n");
        (d, s, dir)
    }
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
                    "lock",
                    "rcni-index"
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
                    "lock",
                    "rcni-index"
                ]
            );
        })
    }

    #[test]
    fn reads_what_the_reference_writes() {
        let (_d, s, dir) = store_n();
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
        let (_d, s, dir) = store_n();
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
        let (d, s, _) = store_n();
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
        // Only a walk made with the lock removes it.
        assert!(s.get_by_id("dead", "eth0").unwrap().is_empty());
        assert!(d.path().join("n/.rcni-999-10.0.0.3").exists());
        let lock = s.lock().unwrap();
        assert!(s
            .get_by_id_locked(&lock, "dead", "eth0")
            .unwrap()
            .is_empty());
        drop(lock);
        assert!(!d.path().join("n/.rcni-999-10.0.0.3").exists());
        assert!(s.check_writable().is_ok());
        assert_eq!(names(&d.path().join("n")), ["lock"]);
    }

    #[test]
    fn lock_excludes_other_holders() {
        let (d, s, _) = store_n();
        let held = s.lock().unwrap();
        let other = File::open(d.path().join("n/lock")).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }

    /// Lines of the index: what it believes of each name.
    fn index_lines(dir: &Path) -> Vec<String> {
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        let body = text.get(index::HEADER_LEN..).unwrap();
        body.lines().map(|l| l.trim_end().to_string()).collect()
    }

    /// The index spares reads of rcni's own files, learns the files the
    /// reference writes between two walks (even under a name it knows,
    /// taken again by someone else), and forgets released ones.
    #[test]
    fn the_index_follows_files_written_by_others() {
        let (d, s, dir) = store_n();
        let lock = s.lock().unwrap();
        assert!(s.reserve("a", "eth0", ip("10.0.0.2"), 0).unwrap());
        assert!(s.reserve("b", "eth0", ip("10.0.0.3"), 0).unwrap());
        assert_eq!(index_lines(&dir).len(), 2);
        // The reference: a new file, and .3 released and given to "c"
        // (a new inode: the old file is still linked elsewhere).
        fs::write(dir.join("10.0.0.4"), "c\r\neth0").unwrap();
        fs::hard_link(dir.join("10.0.0.3"), d.path().join("keep")).unwrap();
        fs::remove_file(dir.join("10.0.0.3")).unwrap();
        fs::write(dir.join("10.0.0.3"), "c\r\neth1").unwrap();
        assert_eq!(
            s.get_by_id_locked(&lock, "c", "eth0").unwrap(),
            [ip("10.0.0.4")]
        );
        assert_eq!(
            s.get_by_id_locked(&lock, "c", "eth1").unwrap(),
            [ip("10.0.0.3")]
        );
        assert!(s.get_by_id_locked(&lock, "b", "eth0").unwrap().is_empty());
        assert_eq!(index_lines(&dir).len(), 4, "learnt once");
        assert!(s.get_by_id_locked(&lock, "c", "eth0").unwrap().len() == 1);
        assert_eq!(index_lines(&dir).len(), 4, "nothing new to learn");
        // Released by the reference: gone from the answers.
        fs::remove_file(dir.join("10.0.0.4")).unwrap();
        assert!(s.get_by_id_locked(&lock, "c", "eth0").unwrap().is_empty());
        assert_eq!(s.release_by_id("a", "eth0").unwrap(), [ip("10.0.0.2")]);
        assert_eq!(s.allocations().unwrap().len(), 1);
    }

    /// Writes an index of `lines` whose header records `digest`.
    fn write_index(dir: &Path, lines: &str, digest: u64) {
        let mut lines = lines.to_string();
        index::pad(&mut lines);
        let header = index::Header::default()
            .extended(&lines, lines.matches('\n').count())
            .unwrap();
        let header = index::Header { digest, ..header };
        fs::write(dir.join(INDEX_FILE), format!("{}{lines}", header.line())).unwrap();
    }

    fn header_of(dir: &Path) -> index::Header {
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        index::split_header(&text).unwrap().0
    }

    /// A damaged, foreign or stale index never changes an answer: a file
    /// without the header or whose lines do not hash to the header's hash
    /// is rebuilt from the files; what a line claims is checked against the
    /// file before it is reported or released; a digest that is not the
    /// listing's sends the walk through every line.
    #[test]
    fn a_stale_or_corrupt_index_is_rebuilt() {
        let (_d, s, dir) = store_n();
        let lock = s.lock().unwrap();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            assert!(s
                .reserve(id, "eth0", ip(&format!("10.0.0.{}", i + 2)), 0)
                .unwrap());
        }
        // The first walk with the lock learns the digest; rcni's own
        // changes keep it.
        assert_eq!(
            s.get_by_id_locked(&lock, "a", "eth0").unwrap(),
            [ip("10.0.0.2")]
        );
        let digest = header_of(&dir).digest;
        assert_ne!(digest, 0);
        assert!(s.reserve("d", "eth0", ip("10.0.0.5"), 0).unwrap());
        s.release(ip("10.0.0.5")).unwrap();
        assert_eq!(header_of(&dir).digest, digest);
        // Garbage: rebuilt from the files.
        fs::write(dir.join(INDEX_FILE), "\0\0garbage\n10.0.0.2\t1\tb\teth0\n").unwrap();
        assert_eq!(
            s.get_by_id_locked(&lock, "b", "eth0").unwrap(),
            [ip("10.0.0.3")]
        );
        assert_eq!(index_lines(&dir).len(), 3);
        assert_eq!(header_of(&dir).digest, digest);
        // Damaged in place: the same.
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        fs::write(dir.join(INDEX_FILE), text.replacen("\tc\t", "\tb\t", 1)).unwrap();
        assert!(s.get_by_id_locked(&lock, "b", "eth0").unwrap().len() == 1);
        assert_eq!(
            s.get_by_id_locked(&lock, "c", "eth0").unwrap(),
            [ip("10.0.0.4")]
        );
        // Stale, with the right digest: a line that gives .2 to "b" (as if
        // .2 had been b's and rewritten in place), and none for .3. The
        // file has the last word on .2; .3 is missed until the digest no
        // longer matches, which any change in the directory brings.
        let file = |name: &str| {
            let stat = rustix::fs::stat(dir.join(name)).unwrap();
            index::FileId::of(&stat)
        };
        let lie = index::line("10.0.0.2", file("10.0.0.2"), Owner::parse("b\r\neth0")).unwrap();
        let c = index::line("10.0.0.4", file("10.0.0.4"), Owner::parse("c\r\neth0")).unwrap();
        write_index(&dir, &format!("{lie}{c}"), digest);
        assert!(s.get_by_id_locked(&lock, "b", "eth0").unwrap().is_empty());
        write_index(&dir, &format!("{lie}{c}"), digest ^ 1);
        assert_eq!(
            s.get_by_id_locked(&lock, "b", "eth0").unwrap(),
            [ip("10.0.0.3")]
        );
        // Looking for "b" met the lie and dropped the index.
        assert!(!dir.join(INDEX_FILE).exists());
        // A tampered index that still has the listing's digest (nothing
        // but an edit makes one) can hide a file until the lie is met.
        write_index(&dir, &format!("{lie}{c}"), digest);
        assert!(s.release_by_id("b", "eth0").unwrap().is_empty());
        assert!(dir.join("10.0.0.2").exists());
        assert_eq!(s.release_by_id("b", "eth0").unwrap(), [ip("10.0.0.3")]);
        assert_eq!(
            s.get_by_id_locked(&lock, "a", "eth0").unwrap(),
            [ip("10.0.0.2")]
        );
        // Mostly lines of files gone: compacted to the live ones.
        let mut dead = String::new();
        for i in 0..200 {
            let gone = index::FileId { ino: 5, ctime: 5 };
            dead.push_str(&index::line(&format!("10.0.1.{i}"), gone, Owner::parse("x")).unwrap());
        }
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        write_index(&dir, &format!("{dead}{}", &text[index::HEADER_LEN..]), 0);
        assert_eq!(s.allocations().unwrap().len(), 2);
        s.get_by_id_locked(&lock, "a", "eth0").unwrap();
        assert_eq!(index_lines(&dir).len(), 2, "{:?}", index_lines(&dir));
        // Lost altogether: every file is read, and the index comes back.
        fs::remove_file(dir.join(INDEX_FILE)).unwrap();
        assert_eq!(
            s.get_by_id_locked(&lock, "a", "eth0").unwrap(),
            [ip("10.0.0.2")]
        );
        assert_eq!(index_lines(&dir).len(), 2);
        assert_ne!(header_of(&dir).digest, 0);
    }

    /// Whether the kernel has multigrain timestamps (Linux 6.13), which
    /// let rcni seal the index in the clock tick of its change.
    fn multigrain_kernel() -> bool {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let mut number = || parts.next().and_then(|p| p.parse::<u32>().ok());
        (number(), number()) >= (Some(6), Some(13))
    }

    fn dir_time(dir: &Path) -> u64 {
        change_time(&rustix::fs::stat(dir).unwrap()).unwrap()
    }

    /// Once sealed, a walk does not list the directory while it keeps its
    /// change time: an index whose digest no longer matches the listing
    /// is still believed (a listing would have corrected the digest). Any
    /// change to the directory ends that.
    #[test]
    fn a_sealed_index_spares_the_listing() {
        if !multigrain_kernel() {
            eprintln!("no multigrain timestamps: the index is sealed only across clock ticks");
            return;
        }
        let (_d, s, dir) = store_n();
        let lock = s.lock().unwrap();
        assert!(s.reserve("a", "eth0", ip("10.0.0.2"), 0).unwrap());
        s.get_by_id_locked(&lock, "a", "eth0").unwrap();
        assert!(s.reserve("b", "eth0", ip("10.0.0.3"), 0).unwrap());
        let sealed = header_of(&dir);
        assert_eq!(sealed.stamp, dir_time(&dir));
        assert_eq!(sealed.listed, 2);
        // Rewritten in place, which leaves the directory as it was.
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        let wrong = index::Header {
            digest: sealed.digest ^ 1,
            ..sealed
        };
        fs::write(
            dir.join(INDEX_FILE),
            format!("{}{}", wrong.line(), &text[index::HEADER_LEN..]),
        )
        .unwrap();
        assert_eq!(dir_time(&dir), sealed.stamp);
        assert_eq!(
            s.get_by_id_locked(&lock, "a", "eth0").unwrap(),
            [ip("10.0.0.2")]
        );
        assert_eq!(header_of(&dir), wrong, "not listed");
        // The reference takes an address: listed, learnt, sealed again.
        fs::write(dir.join("10.0.0.4"), "c\r\neth0").unwrap();
        assert_eq!(
            s.get_by_id_locked(&lock, "c", "eth0").unwrap(),
            [ip("10.0.0.4")]
        );
        let resealed = header_of(&dir);
        assert_eq!(
            resealed.digest,
            sealed.digest.wrapping_add(index::digest_of(
                "10.0.0.4",
                fs::metadata(dir.join("10.0.0.4")).unwrap().ino()
            ))
        );
        assert_eq!((resealed.listed, resealed.stamp), (3, dir_time(&dir)));
        // Counts out of range (a damaged header) change nothing.
        let text = fs::read_to_string(dir.join(INDEX_FILE)).unwrap();
        let huge = index::Header {
            lines: u64::MAX,
            listed: u64::MAX,
            ..header_of(&dir)
        };
        fs::write(
            dir.join(INDEX_FILE),
            format!("{}{}", huge.line(), &text[index::HEADER_LEN..]),
        )
        .unwrap();
        assert!(s.reserve("d", "eth0", ip("10.0.0.5"), 0).unwrap());
        assert_eq!(
            s.get_by_id_locked(&lock, "d", "eth0").unwrap(),
            [ip("10.0.0.5")]
        );
    }

    /// Whatever the reference changes right after rcni sealed the index
    /// (in the same clock tick), and whatever rcni changes after that, the
    /// next walk sees it.
    #[test]
    fn changes_by_others_after_a_seal_are_seen() {
        let (_d, s, dir) = store_n();
        let lock = s.lock().unwrap();
        // An empty listing has no digest: one address stays taken.
        assert!(s.reserve("resident", "eth0", ip("10.2.0.2"), 0).unwrap());
        for i in 0..200u32 {
            let (mine, theirs) = (ip(&format!("10.0.{i}.2")), ip(&format!("10.1.{i}.2")));
            let other = format!("ref{i}");
            assert!(s.reserve(&format!("rcni{i}"), "eth0", mine, 0).unwrap());
            fs::write(dir.join(theirs.to_string()), format!("{other}\r\neth0")).unwrap();
            if i % 2 == 1 {
                // rcni's own change in between must not seal what it
                // has not seen.
                s.release(mine).unwrap();
            }
            assert_eq!(
                s.get_by_id_locked(&lock, &other, "eth0").unwrap(),
                [theirs],
                "{i}"
            );
            fs::remove_file(dir.join(theirs.to_string())).unwrap();
            assert!(s
                .get_by_id_locked(&lock, &other, "eth0")
                .unwrap()
                .is_empty());
            if i % 2 == 0 {
                assert_eq!(
                    s.release_by_id(&format!("rcni{i}"), "eth0").unwrap(),
                    [mine]
                );
            }
        }
        assert_eq!(s.allocations().unwrap().len(), 1);
    }

    #[test]
    fn release_errors_are_reported() {
        let (d, s, _) = store_n();
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
