//! Loading network configurations the way the reference's libcni does.

use crate::error::RuntimeError;
use rcni_spec::config::NetConfList;
use rcni_spec::gojson;
use rcni_spec::CniError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// One plugin of a list, as written in the config.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    pub plugin_type: String,
    /// The capabilities the plugin declares as supported.
    pub capabilities: Vec<String>,
    pub raw: Map<String, Value>,
}

impl PluginConfig {
    /// Checks one plugin's object: it needs a `type` that is a plain name.
    pub fn from_object(raw: Map<String, Value>) -> Result<PluginConfig, CniError> {
        let plugin_type = match gojson::get(&raw, "type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => {
                return Err(CniError::invalid_config(
                    "error parsing configuration: missing 'type'",
                ))
            }
        };
        if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
            return Err(CniError::invalid_config(format!(
                "invalid plugin type {plugin_type:?}: it must be a file name, not a path"
            )));
        }
        let capabilities = match gojson::get(&raw, "capabilities") {
            Some(Value::Object(caps)) => caps
                .iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => Vec::new(),
        };
        Ok(PluginConfig {
            plugin_type,
            capabilities,
            raw,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<PluginConfig, CniError> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(m)) => PluginConfig::from_object(m),
            Ok(_) => Err(CniError::decode(
                "error parsing configuration: not a JSON object",
            )),
            Err(e) => Err(CniError::decode(format!(
                "error parsing configuration: {e}"
            ))),
        }
    }
}

/// A network: a name, a version and its plugins in order.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    pub plugins: Vec<PluginConfig>,
    /// The list as loaded (what the result cache records as `config`).
    pub bytes: Vec<u8>,
}

impl NetworkList {
    /// Parses a conflist (its inline plugins only).
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkList, CniError> {
        let parsed = NetConfList::parse(bytes)?;
        let plugins = parsed
            .plugins
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                PluginConfig::from_object(p).map_err(|e| e.context(format!("plugin {i}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetworkList {
            name: parsed.name,
            cni_version: parsed.cni_version,
            disable_check: parsed.disable_check,
            disable_gc: parsed.disable_gc,
            load_only_inlined_plugins: parsed.load_only_inlined_plugins,
            plugins,
            bytes: bytes.to_vec(),
        })
    }

    /// Wraps a single-plugin config (`.conf`) into a one-plugin list.
    pub fn from_single(bytes: &[u8]) -> Result<NetworkList, CniError> {
        let plugin = PluginConfig::from_bytes(bytes)?;
        let name = gojson::get(&plugin.raw, "name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let version = gojson::get(&plugin.raw, "cniVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let wrapped =
            serde_json::json!({"name": name, "cniVersion": version, "plugins": [plugin.raw]});
        NetworkList::from_bytes(wrapped.to_string().as_bytes())
    }

    /// Reads a conflist file, adding the fragments in `<dir>/<name>/*.conf`
    /// unless `loadOnlyInlinedPlugins` is set.
    pub fn from_file(path: &Path) -> Result<NetworkList, RuntimeError> {
        let config_err = |error: CniError| RuntimeError::Config {
            path: path.to_path_buf(),
            error,
        };
        let bytes = std::fs::read(path)
            .map_err(|e| config_err(CniError::io(format!("cannot read: {e}"))))?;
        let mut list = NetworkList::from_bytes(&bytes).map_err(config_err)?;
        if !list.load_only_inlined_plugins {
            let dir = path.parent().unwrap_or(Path::new(".")).join(&list.name);
            for fragment in conf_files(&dir, &["conf"])? {
                let bytes = std::fs::read(&fragment).map_err(|e| RuntimeError::Config {
                    path: fragment.clone(),
                    error: CniError::io(format!("cannot read: {e}")),
                })?;
                let plugin =
                    PluginConfig::from_bytes(&bytes).map_err(|error| RuntimeError::Config {
                        path: fragment.clone(),
                        error,
                    })?;
                list.plugins.push(plugin);
            }
        }
        if list.plugins.is_empty() {
            return Err(config_err(CniError::invalid_config(
                "no plugin configs found",
            )));
        }
        Ok(list)
    }
}

/// The regular files of `dir` with one of `extensions`, sorted; a missing
/// directory has none.
pub fn conf_files(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, RuntimeError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RuntimeError::Config {
                path: dir.to_path_buf(),
                error: CniError::io(format!("cannot read directory: {e}")),
            })
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| extensions.contains(&x))
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_single(path: &Path) -> Result<NetworkList, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| RuntimeError::Config {
        path: path.to_path_buf(),
        error: CniError::io(format!("cannot read: {e}")),
    })?;
    NetworkList::from_single(&bytes).map_err(|error| RuntimeError::Config {
        path: path.to_path_buf(),
        error,
    })
}

/// Loads the network `name` from `dir`: the first `*.conflist` (sorted)
/// with that name, else the first `*.conf`/`*.json` with it, wrapped.
pub fn load(dir: &Path, name: &str) -> Result<NetworkList, RuntimeError> {
    let lists = conf_files(dir, &["conflist"])?;
    for path in &lists {
        let list = NetworkList::from_file(path)?;
        if list.name == name {
            return Ok(list);
        }
    }
    let singles = conf_files(dir, &["conf", "json"])?;
    if singles.is_empty() && lists.is_empty() {
        return Err(RuntimeError::NoConfigs(dir.to_path_buf()));
    }
    for path in &singles {
        let list = read_single(path)?;
        if list.name == name {
            return Ok(list);
        }
    }
    Err(RuntimeError::NotFound {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    })
}

/// Every network `dir` defines, in the order [`load`] would find them
/// (a name defined twice is listed once, with the file that wins), with
/// the file it comes from. Unreadable files are reported, not skipped.
pub fn list(dir: &Path) -> Result<Vec<(NetworkList, PathBuf)>, RuntimeError> {
    let mut out: Vec<(NetworkList, PathBuf)> = Vec::new();
    for path in conf_files(dir, &["conflist"])? {
        let l = NetworkList::from_file(&path)?;
        if !out.iter().any(|(o, _)| o.name == l.name) {
            out.push((l, path));
        }
    }
    for path in conf_files(dir, &["conf", "json"])? {
        let l = read_single(&path)?;
        if !out.iter().any(|(o, _)| o.name == l.name) {
            out.push((l, path));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        if let Some(parent) = dir.join(name).parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(dir.join(name), body).unwrap();
    }

    #[test]
    fn conflists_win_then_singles_in_order() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "10-a.conf",
            r#"{"cniVersion":"1.0.0","name":"net","type":"from-conf"}"#,
        );
        write(
            d.path(),
            "20-b.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"from-list"}]}"#,
        );
        write(
            d.path(),
            "30-c.json",
            r#"{"cniVersion":"0.4.0","name":"other","type":"x"}"#,
        );
        let net = load(d.path(), "net").unwrap();
        assert_eq!(net.plugins[0].plugin_type, "from-list");
        let other = load(d.path(), "other").unwrap();
        assert_eq!(
            (other.cni_version.as_str(), other.plugins.len()),
            ("0.4.0", 1)
        );
        assert!(matches!(
            load(d.path(), "nope"),
            Err(RuntimeError::NotFound { .. })
        ));
        let names: Vec<String> = list(d.path())
            .unwrap()
            .into_iter()
            .map(|(l, _)| l.name)
            .collect();
        assert_eq!(names, ["net", "other"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(empty.path(), "x"),
            Err(RuntimeError::NoConfigs(_))
        ));
    }

    #[test]
    fn fragments_unless_inlined_only() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "a.conflist",
            r#"{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"first"}]}"#,
        );
        write(d.path(), "n/10-x.conf", r#"{"type":"second"}"#);
        write(d.path(), "n/20-y.conf", r#"{"type":"third"}"#);
        let types: Vec<String> = load(d.path(), "n")
            .unwrap()
            .plugins
            .into_iter()
            .map(|p| p.plugin_type)
            .collect();
        assert_eq!(types, ["first", "second", "third"]);
        write(
            d.path(),
            "a.conflist",
            r#"{"cniVersion":"1.1.0","name":"n","loadOnlyInlinedPlugins":true,"plugins":[{"type":"first"}]}"#,
        );
        assert_eq!(load(d.path(), "n").unwrap().plugins.len(), 1);
        write(
            d.path(),
            "a.conflist",
            r#"{"cniVersion":"1.1.0","name":"n"}"#,
        );
        assert_eq!(
            load(d.path(), "n").unwrap().plugins.len(),
            2,
            "fragments only"
        );
    }

    #[test]
    fn errors_name_the_file() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "bad.conflist", "{not json");
        let e = load(d.path(), "x").unwrap_err().to_string();
        assert!(e.contains("bad.conflist"), "{e}");
        write(
            d.path(),
            "bad.conflist",
            r#"{"name":"x","plugins":[{"type":"../evil"}]}"#,
        );
        assert!(load(d.path(), "x")
            .unwrap_err()
            .to_string()
            .contains("../evil"));
        write(d.path(), "bad.conflist", r#"{"name":"x","plugins":[]}"#);
        assert!(load(d.path(), "x")
            .unwrap_err()
            .to_string()
            .contains("no plugins"));
    }
}
