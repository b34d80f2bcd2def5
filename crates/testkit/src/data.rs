//! Data on disk: temp data dirs for IPAM and what is in them, and config
//! edits.

use serde_json::Value;
use std::path::Path;

/// A temp data dir for host-local, removed on drop.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rcni-data-")
        .tempdir()
        .expect("tempdir")
}

/// Files in `<dir>/<net>` (sorted) named by an address, i.e. the allocated
/// IPs (not the lock, last_reserved or index files).
pub fn allocated_ips(dir: &Path, net: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(net))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Sets a value at a JSON pointer-ish path of object keys.
pub fn with(mut conf: Value, key: &str, value: Value) -> Value {
    conf[key] = value;
    conf
}

/// The names of the entries of `dir` (none when it cannot be read).
pub fn read_dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
