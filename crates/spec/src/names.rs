//! Validation of the names that become kernel objects or file names.

use crate::error::{CniError, ErrorCode};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// True when `s` matches `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the pattern the
/// reference uses for container IDs and network names.
fn is_valid_cni_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Validates `CNI_CONTAINERID`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UNKNOWN_CONTAINER,
            "missing containerID",
        ));
    }
    if !is_valid_cni_name(id) {
        return Err(CniError::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// Validates a network name (it becomes a directory name in host-local).
pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_valid_cni_name(name) || name == "." || name == ".." {
        return Err(
            CniError::invalid_config("invalid characters found in network name").with_details(name),
        );
    }
    Ok(())
}

/// Validates `CNI_IFNAME` as the kernel and the reference require.
pub fn validate_interface_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_env("interface name is empty"));
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(
            CniError::invalid_env("interface name is too long").with_details(format!(
                "interface name should be less than {} characters",
                MAX_IFNAME_LEN + 1
            )),
        );
    }
    if name == "." || name == ".." {
        return Err(CniError::invalid_env("interface name is . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(CniError::invalid_env(
            "interface name contains / or : or whitespace characters",
        ));
    }
    // The reference accepts `%`, then fails to find the link the kernel
    // named from the template (`eth%d` → `eth0`) and leaves it behind.
    if name.contains('%') {
        return Err(CniError::invalid_env(
            "interface name contains %, which the kernel takes as a name template",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        assert!(validate_container_id("abc-1.2_3").is_ok());
        assert_eq!(validate_container_id("").unwrap_err().code, 3);
        assert_eq!(validate_container_id("a/b").unwrap_err().code, 4);
        assert_eq!(validate_container_id("-ab").unwrap_err().code, 4);
    }

    #[test]
    fn network_names() {
        assert!(validate_network_name("my-net.1").is_ok());
        for bad in ["", "a/b", "..", ".", "../x", "a b"] {
            assert_eq!(validate_network_name(bad).unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(validate_interface_name("eth0").is_ok());
        assert!(validate_interface_name("a234567890abcde").is_ok());
        for bad in [
            "",
            "a234567890abcdef",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "eth%d",
        ] {
            assert_eq!(validate_interface_name(bad).unwrap_err().code, 4, "{bad}");
        }
    }
}
