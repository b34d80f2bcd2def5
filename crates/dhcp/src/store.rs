//! The daemon's lease records: one JSON file per attachment under the
//! state directory, written atomically, read back when the daemon starts.

use crate::client::Identity;
use crate::lease::Lease4;
use crate::protocol::IpFamily;
use rcni_dhcp6::Lease6;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The default state directory (the daemon's `-statedir`).
pub const DEFAULT_DIR: &str = "/var/lib/cni/dhcp";
/// Records are small; a bigger file is not one of ours.
const MAX_RECORD: u64 = 64 * 1024;

/// A lease of one address family. An attachment leasing both has one
/// record per family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FamilyLease {
    V4(Lease4),
    V6(Lease6),
}

impl FamilyLease {
    pub fn family(&self) -> IpFamily {
        match self {
            FamilyLease::V4(_) => IpFamily::Ipv4,
            FamilyLease::V6(_) => IpFamily::Ipv6,
        }
    }
}

/// Everything needed to go on maintaining a lease after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub container_id: String,
    pub network: String,
    pub ifname: String,
    /// The namespace path the daemon opened (host prefix applied).
    pub netns: PathBuf,
    pub identity: Identity,
    /// The route metric the plugin's `priority` asked for.
    #[serde(default)]
    pub priority: u32,
    pub lease: FamilyLease,
}

/// The lease file of the client id `containerID/network/ifname` for
/// `family`: the first 32 bytes of the id's SHA-512 in hex, since the id
/// may hold any character (SHA-512 because the binary has it already),
/// then `.json` for IPv4 and `.v6.json` for IPv6.
pub fn path_for(dir: &Path, client_id: &str, family: IpFamily) -> PathBuf {
    let digest = Sha512::digest(client_id.as_bytes());
    let hex = format!("{digest:.64x}");
    let suffix = match family {
        IpFamily::Ipv4 => "",
        IpFamily::Ipv6 => ".v6",
    };
    dir.join(format!("{hex}{suffix}.json"))
}

/// Writes `record` to `path`: a temporary file in the same directory,
/// flushed to disk, then renamed over the old one, so a crash leaves
/// either the old record or the new one.
pub fn save(path: &Path, record: &Record) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(record)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("dhcp: remove {}: {e}", path.display());
        }
    }
}

/// Every record in `dir` with its path. Files that are not records
/// (leftover temporary files, foreign or corrupt ones) are reported and
/// skipped; left-over temporary files are removed.
pub fn load_all(dir: &Path) -> Vec<(PathBuf, Record)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {}
            Some(ext) if ext.starts_with("tmp") => {
                remove(&path);
                continue;
            }
            _ => continue,
        }
        match read(&path) {
            Ok(record) => records.push((path, record)),
            Err(e) => eprintln!("dhcp: skipping {}: {e}", path.display()),
        }
    }
    records
}

fn read(path: &Path) -> Result<Record, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_RECORD)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn records_round_trip_and_junk_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            container_id: "c1".into(),
            network: "lan".into(),
            ifname: "eth0".into(),
            netns: "/run/netns/x".into(),
            identity: Identity {
                client_id: "c1/lan/eth0".into(),
                request: vec![1, 3],
                provide: vec![(12, "pod".into())],
                broadcast: false,
            },
            priority: 0,
            lease: FamilyLease::V4(Lease4 {
                address: Ipv4Addr::new(10, 0, 0, 5),
                prefix_len: 24,
                server_id: Ipv4Addr::new(10, 0, 0, 1),
                lease_time: 120,
                renewal_time: 60,
                rebinding_time: 102,
                obtained_unix: 1,
                routers: vec![],
                static_routes: vec![],
                classless_routes: vec![],
                dns_servers: vec![],
                domain_name: String::new(),
                domain_search: vec![],
            }),
        };
        let path = path_for(dir.path(), "c1/lan/eth0", IpFamily::Ipv4);
        // The first 32 bytes of sha512("c1/lan/eth0"), from sha512sum.
        assert_eq!(
            path.file_name().unwrap(),
            "33986bda80ac1832b5a95bba267688fdcaed07e8e2c4bbe80c90e62f357bf2bb.json"
        );
        save(&path, &record).unwrap();
        let v6 = Record {
            lease: FamilyLease::V6(Lease6 {
                address: "fd00::10".parse().unwrap(),
                preferred_lifetime: 120,
                valid_lifetime: 120,
                t1: 60,
                t2: 96,
                server_duid: vec![0, 1, 2],
                server_address: "fe80::1".parse().unwrap(),
                dns_servers: vec![],
                domain_search: vec![],
                obtained_unix: 1,
            }),
            ..record.clone()
        };
        let path6 = path_for(dir.path(), "c1/lan/eth0", IpFamily::Ipv6);
        assert_ne!(path, path6);
        save(&path6, &v6).unwrap();
        std::fs::write(dir.path().join("junk.json"), b"{not json").unwrap();
        std::fs::write(dir.path().join("x.tmp77"), b"half").unwrap();
        let mut all = load_all(dir.path());
        all.sort_by_key(|(_, r)| r.lease.family());
        assert_eq!(all, vec![(path, record), (path6, v6)]);
        assert!(!dir.path().join("x.tmp77").exists());
    }
}
