//! Where rcni keeps state per network namespace on disk, and how those
//! files are named: one directory, `/run/rcni`, shared by every namespace
//! of the node, so each name carries the namespace's inode. Names are made
//! here only, and checked to be one plain file name in that directory.
//!
//! - portmap's iptables marker: the shared chains are set up in this
//!   namespace for one family, mark and SNAT choice (ADD's fast path).
//! - the nftables lock: an flock serialising rcni's nftables changes in
//!   this namespace ([`crate::nft::locked`]).

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
    let ns = std::fs::metadata("/proc/self/ns/net")?.ino();
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

/// The directory of the firewall plugin's attachment records of this
/// namespace (`/run/rcni/firewall-ns<inode>`).
pub(crate) fn firewall_records_dir() -> io::Result<PathBuf> {
    path("firewall-", "")
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
}
