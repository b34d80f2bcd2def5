//! The result cache, in the reference's `cniCacheV1` format, so a cache
//! written by a runtime on the reference's libcni is read here and the
//! reverse: `<cacheDir>/results/<network>-<containerID>-<ifname>`
//! (directory 0700, file 0600) holding
//! `{"kind":"cniCacheV1","containerId","config":<base64>,"ifName",
//! "networkName","netns","cniArgs":[[k,v]],"capabilityArgs","result"}`.

use crate::error::RuntimeError;
use base64::Engine;
use rcni_spec::gojson;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The `kind` of the current format.
pub const CACHE_V1: &str = "cniCacheV1";
/// The reference's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

fn to_base64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text {
        None => Ok(Vec::new()),
        Some(t) => base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(serde::de::Error::custom),
    }
}

fn is_empty_map(m: &Map<String, Value>) -> bool {
    m.is_empty()
}

/// One cache file. `config` is the network list as it was loaded (Go
/// `[]byte`, hence base64 in JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedInfo {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    #[serde(
        serialize_with = "to_base64",
        deserialize_with = "from_base64",
        default
    )]
    pub config: Vec<u8>,
    #[serde(rename = "ifName")]
    pub ifname: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "is_empty_map"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// A cached attachment, as `GetCachedAttachments` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub container_id: String,
    pub network: String,
    pub ifname: String,
    pub config: Vec<u8>,
    pub netns: String,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
}

/// The file for one attachment.
pub fn file_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}"))
}

fn cache_err(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Cache {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes a cache file atomically (temporary file + rename), so a reader
/// never sees a half-written one. It is not flushed to the disk (neither
/// is the reference's): a flush cost each ADD and DEL about as much as
/// the plugin's own work, and a cache file lost to a power failure only
/// takes prevResult from the DEL that follows, which plugins handle.
pub fn write(path: &Path, info: &CachedInfo) -> Result<(), RuntimeError> {
    let dir = path
        .parent()
        .ok_or_else(|| cache_err(path, "no parent directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| cache_err(dir, format!("cannot create: {e}")))?;
    let bytes =
        serde_json::to_vec(info).map_err(|e| cache_err(path, format!("cannot encode: {e}")))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cache_err(path, format!("cannot write: {e}"))
    })
}

/// What a cache file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    V1(Box<CachedInfo>),
    /// An old cache file: a bare result.
    Legacy(Value),
}

impl Cached {
    /// The cached result, in whatever version it was written.
    pub fn result(&self) -> Option<&Value> {
        match self {
            Cached::V1(info) => info.result.as_ref(),
            Cached::Legacy(v) => Some(v),
        }
    }
}

/// Reads a cache file; `Ok(None)` when there is none, an error when it is
/// empty, truncated or not JSON.
pub fn read(path: &Path) -> Result<Option<Cached>, RuntimeError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cache_err(path, format!("cannot read: {e}"))),
    };
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| cache_err(path, format!("corrupt cache file: {e}")))?;
    if gojson::get_in(&value, "kind").and_then(Value::as_str) == Some(CACHE_V1) {
        let info: CachedInfo = gojson::from_value(&value)
            .map_err(|e| cache_err(path, format!("corrupt cache file: {e}")))?;
        return Ok(Some(Cached::V1(Box::new(info))));
    }
    if !value.is_object() {
        return Err(cache_err(path, "corrupt cache file: not a JSON object"));
    }
    Ok(Some(Cached::Legacy(value)))
}

/// Removes a cache file (a missing one is fine).
pub fn delete(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Every cached attachment (of `container_id` if given), sorted by file
/// name; unreadable and legacy files are skipped, as the reference does.
pub fn attachments(cache_dir: &Path, container_id: Option<&str>) -> Vec<Attachment> {
    let dir = cache_dir.join("results");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|n| container_id.is_none_or(|id| n.contains(&format!("-{id}-"))))
        .filter_map(|n| match read(&dir.join(&n)) {
            Ok(Some(Cached::V1(info))) => Some(*info),
            _ => None,
        })
        .filter(|i| container_id.is_none_or(|id| i.container_id == id))
        .filter(|i| !i.ifname.is_empty() && !i.network_name.is_empty())
        .map(|i| Attachment {
            container_id: i.container_id,
            network: i.network_name,
            ifname: i.ifname,
            config: i.config,
            netns: i.netns,
            cni_args: i.cni_args,
            capability_args: i.capability_args,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A cache file exactly as the reference's libcni writes one.
    const REFERENCE_FILE: &str = r#"{"kind":"cniCacheV1","containerId":"abc","config":"eyJuYW1lIjoibiJ9","ifName":"eth0","networkName":"n","netns":"/run/netns/x","cniArgs":[["IgnoreUnknown","1"]],"capabilityArgs":{"portMappings":[]},"result":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}"#;

    #[test]
    fn reads_the_reference_format_and_writes_it_back_identically() {
        let d = tempfile::tempdir().unwrap();
        let path = file_path(d.path(), "n", "abc", "eth0");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, REFERENCE_FILE).unwrap();
        let Some(Cached::V1(info)) = read(&path).unwrap() else {
            panic!("not v1")
        };
        assert_eq!(info.config, br#"{"name":"n"}"#);
        assert_eq!(
            info.cni_args,
            [("IgnoreUnknown".to_string(), "1".to_string())]
        );
        write(&path, &info).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), REFERENCE_FILE);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        let atts = attachments(d.path(), Some("abc"));
        assert_eq!(atts.len(), 1);
        assert_eq!(atts[0].netns, "/run/netns/x");
        assert!(attachments(d.path(), Some("ab")).is_empty());
    }

    #[test]
    fn new_directory_is_private_and_corrupt_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let path = file_path(d.path(), "n", "c", "eth0");
        let info = CachedInfo {
            kind: CACHE_V1.into(),
            container_id: "c".into(),
            config: b"{}".to_vec(),
            ifname: "eth0".into(),
            network_name: "n".into(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: None,
        };
        write(&path, &info).unwrap();
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        for bad in ["", "{\"kind\":\"cniCacheV1\",\"contai", "[1]"] {
            std::fs::write(&path, bad).unwrap();
            assert!(read(&path).is_err(), "{bad:?}");
        }
        std::fs::write(&path, r#"{"cniVersion":"0.4.0","ips":[]}"#).unwrap();
        assert!(matches!(read(&path).unwrap(), Some(Cached::Legacy(_))));
        delete(&path);
        assert!(read(&path).unwrap().is_none());
    }
}
