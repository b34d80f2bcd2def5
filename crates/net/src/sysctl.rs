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
use std::path::PathBuf;

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

/// Reads a sysctl, without its trailing newline. A missing key gives an
/// error for which [`NetError::is_not_found`] holds.
pub fn get(key: &str) -> Result<String> {
    let path = path_of(key)?;
    let v = std::fs::read_to_string(&path)
        .map_err(NetError::io(format!("read sysctl {}", path.display())))?;
    Ok(v.strip_suffix('\n').unwrap_or(&v).to_string())
}

/// Writes a sysctl.
pub fn set(key: &str, value: &str) -> Result<()> {
    let path = path_of(key)?;
    std::fs::write(&path, value).map_err(NetError::io(format!(
        "write sysctl {} = {value:?}",
        path.display()
    )))
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
    fn reads_here() {
        // Present in every network namespace.
        let v = get("net.ipv4.conf.lo.forwarding").unwrap();
        assert!(v == "0" || v == "1", "{v:?}");
        assert!(get("net.ipv4.conf.no-such-if0.forwarding")
            .unwrap_err()
            .is_not_found());
    }
}
