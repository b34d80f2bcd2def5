//! `/proc/sys` access for the calling thread's network namespace (wrap in
//! [`crate::NetNs::run`] to act inside another one).

use crate::error::{NetError, Result};
use std::path::PathBuf;

/// `net.ipv4.ip_forward` or `net/ipv4/conf/eth0.5/rp_filter` → a path.
/// Interface names may contain dots, so the slash form is taken as is.
fn path_of(key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    PathBuf::from("/proc/sys").join(rel.trim_start_matches('/'))
}

/// Reads a sysctl (trailing newline removed).
pub fn get(key: &str) -> Result<String> {
    let path = path_of(key);
    let v =
        std::fs::read_to_string(&path).map_err(NetError::io(format!("read {}", path.display())))?;
    Ok(v.trim_end().to_string())
}

/// Writes a sysctl.
pub fn set(key: &str, value: &str) -> Result<()> {
    let path = path_of(key);
    std::fs::write(&path, value).map_err(NetError::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            path_of("net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path_of("net/ipv4/conf/eth0.5/rp_filter"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.5/rp_filter")
        );
    }
}
