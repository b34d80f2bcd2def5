//! Where rcni keeps state per network namespace on disk, and how those
//! files are named: one directory, `/run/rcni`, shared by every namespace
//! of the node, so each name carries the namespace's inode. Names are made
//! here only, and checked to be one plain file name in that directory.
//!
//! - portmap's iptables marker: the shared chains are set up in this
//!   namespace for one family, mark and SNAT choice (ADD's fast path).
//! - the nftables lock: an flock serialising rcni's nftables changes in
//!   this namespace ([`crate::nft::locked`]).
//! - the firewall plugin's records, in a directory stamped with the
//!   namespace's cookie (inodes are reused; cookies are not).

use crate::script::ChainName;
use crate::Family;
use std::fs::File;
use std::io;
use std::path::PathBuf;

const DIR: &str = "/run/rcni";

/// `<prefix>ns<inode><suffix>` in [`DIR`], for the namespace this thread
/// is in.
fn path(prefix: &str, suffix: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    let name = format!("{prefix}ns{ns}{suffix}");
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !plain || name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(PathBuf::from(DIR).join(name))
}

/// A file whose existence records that something is set up in this
/// namespace. Losing it (a reboot empties /run) only costs a slower call.
#[derive(Debug)]
pub(crate) struct Marker(PathBuf);

impl Marker {
    /// portmap's shared iptables chains exist for `family`, with the mark
    /// of `set_mark_chain` or of `mark_bit`, and with SNAT or not.
    pub(crate) fn hostport_iptables_ready(
        family: Family,
        set_mark_chain: Option<&ChainName>,
        mark_bit: u8,
        snat: bool,
    ) -> Option<Marker> {
        let fam = if family == Family::V4 { "v4" } else { "v6" };
        let mark = match set_mark_chain {
            Some(chain) => format!("ext-{}", chain.as_str()),
            None => format!("bit{mark_bit}"),
        };
        let prefix = format!("portmap-iptables-{fam}-{mark}-snat{}-", u8::from(snat));
        path(&prefix, "").ok().map(Marker)
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.exists()
    }

    /// Records the fact; best effort, as the marker is only a shortcut.
    pub(crate) fn set(&self) {
        let _ = std::fs::create_dir_all(DIR);
        let _ = std::fs::write(&self.0, b"");
    }
}

/// Opens (creating it) this namespace's nftables lock file.
pub(crate) fn nftables_lock_file() -> io::Result<File> {
    let path = path("nftables-", ".lock")?;
    std::fs::create_dir_all(DIR)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// The file in a records directory that names the namespace it belongs
/// to (records are files without an extension).
const COOKIE_FILE: &str = "netns.cookie";

/// The directory of the firewall plugin's attachment records of this
/// namespace (`/run/rcni/firewall-ns<inode>`), made if missing. Inodes are
/// reused once a namespace is gone, so the directory carries the
/// namespace's cookie: one left by a namespace that had the same inode is
/// emptied, rather than its records taken for this namespace's.
pub(crate) fn firewall_records_dir() -> io::Result<PathBuf> {
    let dir = path("firewall-", "")?;
    let Ok(cookie) = rcni_net::NetNs::current_cookie() else {
        // A kernel before 5.14 cannot tell namespaces apart: keep the
        // directory as it is.
        return Ok(dir);
    };
    let cookie = cookie.to_string();
    let stamp = dir.join(COOKIE_FILE);
    match std::fs::read_to_string(&stamp) {
        Ok(found) if found == cookie => return Ok(dir),
        Ok(_) => std::fs::remove_dir_all(&dir)?,
        // No stamp: a directory written by an older rcni, whose records
        // cannot be told apart; they stay and get the stamp.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(&stamp, cookie)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_namespace_and_stay_in_the_directory() {
        use std::os::unix::fs::MetadataExt;
        let ns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let m = Marker::hostport_iptables_ready(Family::V6, None, 13, true).unwrap();
        assert_eq!(
            m.0,
            PathBuf::from(format!("/run/rcni/portmap-iptables-v6-bit13-snat1-ns{ns}"))
        );
        let chain = ChainName::new("f", "KUBE-MARK-MASQ").unwrap();
        let m = Marker::hostport_iptables_ready(Family::V4, Some(&chain), 13, false).unwrap();
        assert_eq!(
            m.0,
            PathBuf::from(format!(
                "/run/rcni/portmap-iptables-v4-ext-KUBE-MARK-MASQ-snat0-ns{ns}"
            ))
        );
        for bad in ["../x-", "a/b-", ".hidden-", "a\nb-"] {
            assert!(path(bad, "").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_left_by_a_namespace_with_the_same_inode_are_not_taken() {
        // A fresh namespace of its own, so the directory is this test's.
        let ns = rcni_net::NetNs::new_anonymous().unwrap();
        ns.run(|| {
            let dir = firewall_records_dir().unwrap();
            let record = dir.join("attachment");
            std::fs::write(&record, "{}").unwrap();
            // Its own stamp: the records stay.
            assert_eq!(firewall_records_dir().unwrap(), dir);
            assert!(record.exists());
            // Another namespace's stamp (the inode was reused): emptied.
            std::fs::write(dir.join(COOKIE_FILE), "1").unwrap();
            assert_eq!(firewall_records_dir().unwrap(), dir);
            assert!(!record.exists());
            let cookie = rcni_net::NetNs::current_cookie().unwrap().to_string();
            assert_eq!(
                std::fs::read_to_string(dir.join(COOKIE_FILE)).unwrap(),
                cookie
            );
            std::fs::remove_dir_all(&dir).unwrap();
        })
        .unwrap();
    }
}
