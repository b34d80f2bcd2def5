//! Spec versions: parsing, ordering and the version handshake.

use crate::error::{CniError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// Every spec version rcni speaks, oldest first.
pub const ALL: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The newest spec version.
pub const CURRENT: &str = "1.1.0";

/// A parsed `major.minor.patch` version (missing parts are zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const V0_1_0: Version = Version::new(0, 1, 0);
    pub const V0_2_0: Version = Version::new(0, 2, 0);
    pub const V0_3_0: Version = Version::new(0, 3, 0);
    pub const V0_4_0: Version = Version::new(0, 4, 0);
    pub const V1_0_0: Version = Version::new(1, 0, 0);
    pub const V1_1_0: Version = Version::new(1, 1, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Parses "x", "x.y" or "x.y.z" as the reference does.
    pub fn parse(s: &str) -> Result<Version, CniError> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() > 3 {
            return Err(CniError::decode(format!(
                "invalid version {s:?}: too many parts"
            )));
        }
        let num = |i: usize, what: &str| -> Result<u32, CniError> {
            match parts.get(i) {
                None => Ok(0),
                Some(p) => p.parse::<u32>().map_err(|_| {
                    CniError::decode(format!("failed to convert {what} version part {p:?}"))
                }),
            }
        };
        Ok(Version {
            major: num(0, "major")?,
            minor: num(1, "minor")?,
            patch: num(2, "micro")?,
        })
    }

    /// True for versions whose result is the 0.1.0/0.2.0 `ip4`/`ip6` shape.
    pub fn is_legacy_result(self) -> bool {
        self < Version::V0_3_0
    }

    /// True for versions whose result is the 0.3.x/0.4.0 shape.
    pub fn is_04x_result(self) -> bool {
        self >= Version::V0_3_0 && self < Version::V1_0_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Compares two version strings; an unparsable one is an error.
pub fn compare(a: &str, b: &str) -> Result<Ordering, CniError> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// `a >= b`.
pub fn at_least(a: &str, b: &str) -> Result<bool, CniError> {
    Ok(compare(a, b)? != Ordering::Less)
}

/// The version a config declares; an absent or empty one means 0.1.0.
pub fn config_version(stdin: &[u8]) -> Result<String, CniError> {
    let version: Option<String> = crate::gojson::field_from_slice(stdin, "cniVersion")
        .map_err(|e| CniError::decode(format!("decoding version from network config: {e}")))?;
    Ok(version
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "0.1.0".to_string()))
}

/// Fails with code 1 unless `config` is one of `supported`.
pub fn reconcile(config: &str, supported: &[&str]) -> Result<(), CniError> {
    if supported.contains(&config) {
        return Ok(());
    }
    Err(
        CniError::new(ErrorCode::INCOMPATIBLE_VERSION, "incompatible CNI versions").with_details(
            format!("config is {config:?}, plugin supports {:?}", supported),
        ),
    )
}

/// The reply to VERSION.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    pub fn new(supported: &[&str]) -> Self {
        VersionInfo {
            cni_version: CURRENT.to_string(),
            supported_versions: supported.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The versions from `min` on, in order (as `VersionsStartingFrom`).
pub fn starting_from(min: &str) -> &'static [&'static str] {
    let at = ALL.iter().position(|v| *v == min).unwrap_or(0);
    &ALL[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(Version::parse("1").unwrap(), Version::new(1, 0, 0));
        assert_eq!(Version::parse("0.3").unwrap(), Version::new(0, 3, 0));
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("a.b").is_err());
        assert!(at_least("1.1.0", "0.4.0").unwrap());
        assert!(!at_least("0.3.1", "0.4.0").unwrap());
        let mut sorted: Vec<_> = ALL.iter().map(|v| Version::parse(v).unwrap()).collect();
        sorted.sort();
        assert_eq!(
            sorted.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            ALL
        );
    }

    #[test]
    fn config_version_defaults_to_010() {
        assert_eq!(config_version(br#"{"name":"x"}"#).unwrap(), "0.1.0");
        assert_eq!(config_version(br#"{"cniVersion":""}"#).unwrap(), "0.1.0");
        assert_eq!(
            config_version(br#"{"cniVersion":"1.0.0"}"#).unwrap(),
            "1.0.0"
        );
        assert_eq!(config_version(b"nope").unwrap_err().code, 6);
    }

    #[test]
    fn reconcile_names_both_sides() {
        let e = reconcile("9.9.9", ALL).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.details.contains("9.9.9"));
        assert!(reconcile("0.4.0", ALL).is_ok());
        assert_eq!(starting_from("0.4.0"), &["0.4.0", "1.0.0", "1.1.0"]);
    }
}
