//! The on-disk store, shared byte for byte with the reference's `disk`
//! backend so that either implementation can release what the other
//! allocated:
//!
//! - `<dataDir>/<network>/` (0755), one file per allocated address, named by
//!   the address, mode 0600, holding `<containerID>\r\n<ifname>` (older
//!   reference versions wrote only `<containerID>`; such files match any
//!   interface name);
//! - `last_reserved_ip.<rangeSetIndex>`: the last address handed out;
//! - `lock`: held with flock across every allocation and release.
//!
//! A reservation is written under a temporary name and hard-linked into
//! place, so a crash can never leave an address file without its owner.

use crate::error::IpamError;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
const LINE_BREAK: &str = "\r\n";
/// Prefix of rcni's in-flight files; any found while holding the lock were
/// left by a process that died.
const TEMP_PREFIX: &str = ".rcni-";

/// One allocated address and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub container_id: String,
    /// Empty for the legacy format that recorded only the container ID.
    pub ifname: String,
}

/// The store of one network.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
}

/// The store's lock, released on drop.
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
        return Err(IpamError::Config(format!(
            "invalid network name {network:?}: it must be usable as a directory name"
        )));
    }
    Ok(())
}

impl DiskStore {
    /// Opens (creating if needed) the store of `network` under `data_dir`.
    pub fn open(data_dir: &Path, network: &str) -> Result<DiskStore, IpamError> {
        validate_network(network)?;
        let dir = data_dir.join(network);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(IpamError::io("cannot create the store directory", &dir))?;
        Ok(DiskStore { dir })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock, then removes in-flight files left by a
    /// process that died while holding it.
    pub fn lock(&self) -> Result<StoreLock, IpamError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(IpamError::io("cannot open the lock file", &path))?;
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

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    /// Writes `contents` (mode 0600) to a temporary file in the store and
    /// returns its path; nothing is left behind on failure.
    fn stage(&self, suffix: &str, contents: &str) -> Result<PathBuf, IpamError> {
        let tmp = self
            .dir
            .join(format!("{TEMP_PREFIX}{}-{suffix}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(contents.as_bytes())
        };
        match write() {
            Ok(()) => Ok(tmp),
            Err(source) => {
                let _ = fs::remove_file(&tmp);
                Err(IpamError::Io {
                    context: "cannot write",
                    path: tmp,
                    source,
                })
            }
        }
    }

    /// Writes `contents` to `path` through a temporary file and a rename.
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

    /// Reserves `ip` for `id`/`ifname`; `false` when it is already taken.
    /// Call with the lock held.
    pub fn reserve(
        &self,
        id: &str,
        ifname: &str,
        ip: IpAddr,
        set_index: usize,
    ) -> Result<bool, IpamError> {
        let path = self.ip_path(ip);
        let tmp = self.stage(
            &ip.to_string(),
            &format!("{}{LINE_BREAK}{ifname}", id.trim()),
        )?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => {
                return Err(IpamError::Io {
                    context: "cannot reserve",
                    path,
                    source: e,
                })
            }
        }
        let last = self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}"));
        self.write_atomically(&last, &ip.to_string())?;
        Ok(true)
    }

    /// The last address handed out from range set `set_index`, if readable.
    pub fn last_reserved(&self, set_index: usize) -> Option<IpAddr> {
        let text =
            fs::read_to_string(self.dir.join(format!("{LAST_RESERVED_PREFIX}{set_index}"))).ok()?;
        text.trim().parse().ok()
    }

    /// Every allocation in the store.
    pub fn allocations(&self) -> Result<Vec<Allocation>, IpamError> {
        let entries = fs::read_dir(&self.dir).map_err(IpamError::io("cannot read", &self.dir))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(ip) = name.to_string_lossy().parse::<IpAddr>() else {
                continue;
            };
            let Ok(data) = fs::read_to_string(entry.path()) else {
                continue;
            };
            let data = data.trim();
            let (container_id, ifname) = match data.split_once(LINE_BREAK) {
                Some((id, ifname)) => (id.trim().to_string(), ifname.trim().to_string()),
                None => (data.to_string(), String::new()),
            };
            out.push(Allocation {
                ip,
                container_id,
                ifname,
            });
        }
        out.sort_by_key(|a| crate::range::to_u128(a.ip));
        Ok(out)
    }

    /// The reference's matching: `<id>\r\n<ifname>` first; if nothing
    /// matches, the legacy `<id>` alone.
    fn matching(&self, id: &str, ifname: &str) -> Result<Vec<Allocation>, IpamError> {
        let all = self.allocations()?;
        let id = id.trim();
        let exact: Vec<Allocation> = all
            .iter()
            .filter(|a| a.container_id == id && a.ifname == ifname && !a.ifname.is_empty())
            .cloned()
            .collect();
        if !exact.is_empty() {
            return Ok(exact);
        }
        Ok(all
            .into_iter()
            .filter(|a| a.container_id == id && a.ifname.is_empty())
            .collect())
    }

    /// The addresses held by `id`/`ifname`.
    pub fn get_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        Ok(self
            .matching(id, ifname)?
            .into_iter()
            .map(|a| a.ip)
            .collect())
    }

    /// Releases every address held by `id`/`ifname`; returns them. Call
    /// with the lock held.
    pub fn release_by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        let ips = self.get_by_id(id, ifname)?;
        for ip in &ips {
            self.release(*ip)?;
        }
        Ok(ips)
    }

    /// Releases one address (a missing file is fine). Call with the lock.
    pub fn release(&self, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.ip_path(ip);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IpamError::Io {
                context: "cannot release",
                path,
                source: e,
            }),
        }
    }

    /// Fails unless a file can be created in the store (for STATUS).
    pub fn check_writable(&self) -> Result<(), IpamError> {
        let probe = self
            .dir
            .join(format!("{TEMP_PREFIX}{}-probe", std::process::id()));
        let result = File::create(&probe).map(|_| ());
        let _ = fs::remove_file(&probe);
        result.map_err(IpamError::io("cannot write into", &self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_format_matches_the_reference() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "net1").unwrap();
        let _l = s.lock().unwrap();
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(s.reserve(" c1 ", "eth0", ip, 0).unwrap());
        assert!(!s.reserve("c2", "eth0", ip, 0).unwrap());
        let f = d.path().join("net1/10.0.0.2");
        assert_eq!(fs::read(&f).unwrap(), b"c1\r\neth0");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_to_string(d.path().join("net1/last_reserved_ip.0")).unwrap(),
            "10.0.0.2"
        );
        assert_eq!(s.last_reserved(0), Some(ip));
        let v6: IpAddr = "fd00::2".parse().unwrap();
        assert!(s.reserve("c1", "eth0", v6, 1).unwrap());
        assert!(d.path().join("net1/fd00::2").exists());
        assert_eq!(s.get_by_id("c1", "eth0").unwrap(), vec![ip, v6]);
        assert_eq!(s.release_by_id("c1", "eth0").unwrap().len(), 2);
        assert!(s.allocations().unwrap().is_empty());
        let names: Vec<_> = fs::read_dir(d.path().join("net1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with(TEMP_PREFIX)),
            "{names:?}"
        );
    }

    #[test]
    fn legacy_files_match_any_ifname() {
        let d = tempfile::tempdir().unwrap();
        let s = DiskStore::open(d.path(), "n").unwrap();
        fs::write(d.path().join("n/10.0.0.9"), "old-id").unwrap();
        assert_eq!(
            s.get_by_id("old-id", "eth1").unwrap(),
            vec!["10.0.0.9".parse::<IpAddr>().unwrap()]
        );
        s.release_by_id("old-id", "eth1").unwrap();
        assert!(!d.path().join("n/10.0.0.9").exists());
    }

    #[test]
    fn rejects_escaping_names_and_cleans_stale_temp_files() {
        let d = tempfile::tempdir().unwrap();
        for bad in ["..", ".", "a/b", ""] {
            assert!(DiskStore::open(d.path(), bad).unwrap_err().is_config());
        }
        let s = DiskStore::open(d.path(), "n").unwrap();
        fs::write(d.path().join("n/.rcni-999-10.0.0.3"), "dead\r\neth0").unwrap();
        drop(s.lock().unwrap());
        assert!(!d.path().join("n/.rcni-999-10.0.0.3").exists());
        assert!(s.check_writable().is_ok());
    }
}
