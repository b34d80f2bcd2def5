//! Where the reference plugins (Debian's containernetworking-plugins) are
//! installed, and the guard of the tests that compare with them.

use std::path::Path;

/// Where the reference plugins (Debian's containernetworking-plugins) live.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// True when the reference plugins are installed.
pub fn have_reference() -> bool {
    Path::new(REFERENCE_DIR).join("host-local").exists()
}

/// Interop tests need Debian's reference plugins; they never skip.
pub fn require_reference() {
    assert!(
        have_reference(),
        "the reference plugins are not installed at {REFERENCE_DIR} (scripts/deps.sh installs them)"
    );
}
