//! Network configurations: one plugin's config (what a plugin reads on
//! stdin) and a config list (what a runtime loads). Unknown keys are kept,
//! so a config survives every round trip unchanged.

use crate::error::CniError;
use crate::gojson::{self, DecodeError};
use crate::names::validate_network_name;
use crate::result;
use crate::types::{CniResult, Dns};
use crate::version;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A plugin's config with the well-known keys picked out. `raw` is the
/// whole object as received, for plugin-specific keys and pass-through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConf {
    pub cni_version: String,
    pub name: String,
    pub plugin_type: String,
    pub ipam: Option<IpamConf>,
    pub dns: Option<Dns>,
    pub runtime_config: Map<String, Value>,
    pub args: Option<Value>,
    pub prev_result: Option<Value>,
    pub raw: Map<String, Value>,
    /// Parsed for a DEL: what cannot be decoded is left out (with a
    /// warning on stderr, the log the runtime keeps) instead of failing,
    /// so that a DEL tears down what it can find whatever the values.
    pub lenient: bool,
}

/// The `ipam` section: its `type` and everything else as given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpamConf {
    pub ipam_type: String,
    pub raw: Map<String, Value>,
}

#[derive(Deserialize)]
struct WellKnown {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    plugin_type: String,
    #[serde(default)]
    dns: Option<Dns>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<Map<String, Value>>,
    #[serde(default)]
    args: Option<Value>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<Value>,
}

fn decode_err(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::decode(format!("failed to parse {what}: {e}"))
}

impl PluginConf {
    /// Parses a plugin's stdin. Checks only what every plugin needs: a JSON
    /// object with a valid `name`.
    pub fn parse(stdin: &[u8]) -> Result<PluginConf, CniError> {
        let value: Value =
            serde_json::from_slice(stdin).map_err(|e| decode_err("network configuration", e))?;
        Self::from_value(value)
    }

    /// As [`PluginConf::parse`], for a DEL: malformed optional sections
    /// (`runtimeConfig`, `args`, `prevResult`, `dns`, a non-object `ipam`)
    /// are left out, and so are plugin keys [`PluginConf::plugin_fields`]
    /// cannot decode.
    pub fn parse_lenient(stdin: &[u8]) -> Result<PluginConf, CniError> {
        let value: Value =
            serde_json::from_slice(stdin).map_err(|e| decode_err("network configuration", e))?;
        Self::build(value, true)
    }

    /// As [`PluginConf::parse`], from an already parsed value.
    pub fn from_value(value: Value) -> Result<PluginConf, CniError> {
        Self::build(value, false)
    }

    fn build(value: Value, lenient: bool) -> Result<PluginConf, CniError> {
        let Value::Object(raw) = value else {
            return Err(CniError::decode(
                "failed to parse network configuration: not a JSON object",
            ));
        };
        let known: WellKnown = if lenient {
            decode_leaving_out(&raw, "network configuration")?
        } else {
            gojson::from_map(&raw).map_err(|e| config_err("network configuration", e))?
        };
        let ipam = match gojson::get(&raw, "ipam") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(IpamConf {
                ipam_type: gojson::get(m, "type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                raw: m.clone(),
            }),
            Some(_) if lenient => {
                warn_left_out("ipam", "not an object");
                None
            }
            Some(_) => return Err(CniError::invalid_config("field \"ipam\" must be an object")),
        };
        Ok(PluginConf {
            cni_version: if known.cni_version.is_empty() {
                "0.1.0".into()
            } else {
                known.cni_version
            },
            name: known.name,
            plugin_type: known.plugin_type,
            ipam,
            dns: known.dns,
            runtime_config: known.runtime_config.unwrap_or_default(),
            args: known.args,
            prev_result: known.prev_result,
            raw,
            lenient,
        })
    }

    /// Fails unless `name` is present and safe as a directory name.
    pub fn validate_name(&self) -> Result<(), CniError> {
        validate_network_name(&self.name)
    }

    /// Decodes the plugin-specific keys into `T` by Go's rules (see
    /// [`gojson`]); for a DEL, keys that do not decode are left out.
    pub fn plugin_fields<T: DeserializeOwned>(&self) -> Result<T, CniError> {
        if self.lenient {
            decode_leaving_out(&self.raw, "configuration")
        } else {
            decode(&self.raw)
        }
    }

    /// The previous result, converted to the model; `None` when absent
    /// (and, for a DEL, when it cannot be read).
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let mut v = v.clone();
                // A prevResult without its own version is in the config's.
                if let Value::Object(m) = &mut v {
                    if gojson::get(m, "cniVersion").is_none() {
                        m.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
                    }
                }
                match result::parse(&v) {
                    Ok(r) => Ok(Some(r)),
                    Err(e) if self.lenient => {
                        warn_left_out("prevResult", &e.msg);
                        Ok(None)
                    }
                    Err(e) => Err(e.context("could not parse prevResult")),
                }
            }
        }
    }

    /// `args.cni.<key>` if present.
    pub fn cni_arg(&self, key: &str) -> Option<&Value> {
        gojson::get_in(gojson::get_in(self.args.as_ref()?, "cni")?, key)
    }

    /// `runtimeConfig.<key>` if present.
    pub fn runtime(&self, key: &str) -> Option<&Value> {
        gojson::get(&self.runtime_config, key)
    }

    /// The config as the JSON object it arrived as.
    pub fn to_value(&self) -> Value {
        Value::Object(self.raw.clone())
    }
}

/// A network config list (`.conflist`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetConfList {
    pub cni_version: String,
    pub cni_versions: Vec<String>,
    pub name: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub load_only_inlined_plugins: bool,
    pub plugins: Vec<Map<String, Value>>,
    pub raw: Map<String, Value>,
}

/// A boolean that may also arrive as the string "true"/"false".
fn loose_bool(raw: &Map<String, Value>, key: &str) -> Result<bool, CniError> {
    match gojson::get(raw, key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => match s.to_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(CniError::invalid_config(format!(
                "invalid value {s:?} for {key}: expected true or false"
            ))),
        },
        Some(other) => Err(CniError::invalid_config(format!(
            "invalid value {other} for {key}: expected a boolean"
        ))),
    }
}

impl NetConfList {
    /// Parses a conflist as the reference's libcni does: a name is
    /// required, the version is chosen with [`choose_version`], an empty
    /// `plugins` list and a plugin without `type` are errors.
    pub fn parse(bytes: &[u8]) -> Result<NetConfList, CniError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| decode_err("network config list", e))?;
        let Value::Object(raw) = value else {
            return Err(CniError::decode(
                "failed to parse network config list: not a JSON object",
            ));
        };
        let name = match gojson::get(&raw, "name") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(CniError::invalid_config("no name in network config list")),
        };
        let cni_version = match gojson::get(&raw, "cniVersion") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(CniError::invalid_config(format!(
                    "invalid cniVersion {other}"
                )))
            }
        };
        let cni_versions: Vec<String> = match gojson::get(&raw, "cniVersions") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => gojson::from_value(v)
                .map_err(|e| CniError::invalid_config(format!("invalid cniVersions: {e}")))?,
        };
        let cni_version = choose_version(&cni_version, &cni_versions)?;
        let load_only_inlined_plugins = loose_bool(&raw, "loadOnlyInlinedPlugins")?;
        let plugins = match gojson::get(&raw, "plugins") {
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(CniError::invalid_config("no plugins in list"))
            }
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(m) => match gojson::get(m, "type") {
                        Some(Value::String(t)) if !t.is_empty() => Ok(m.clone()),
                        _ => Err(CniError::invalid_config(format!(
                            "plugins[{i}]: missing 'type'"
                        ))),
                    },
                    _ => Err(CniError::invalid_config(format!(
                        "plugins[{i}] is not an object"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(CniError::invalid_config("\"plugins\" is not a list")),
            None if load_only_inlined_plugins => {
                return Err(CniError::invalid_config(
                    "loadOnlyInlinedPlugins is true, and there is no 'plugins' key",
                ))
            }
            None => Vec::new(),
        };
        Ok(NetConfList {
            cni_version,
            cni_versions,
            name,
            disable_check: loose_bool(&raw, "disableCheck")?,
            disable_gc: loose_bool(&raw, "disableGC")?,
            load_only_inlined_plugins,
            plugins,
            raw,
        })
    }
}

/// The list's version as the reference picks it: when `cniVersions` is
/// given, the highest of its entries and `cniVersion` that is not newer
/// than the newest version rcni knows; else `cniVersion`.
pub fn choose_version(cni_version: &str, cni_versions: &[String]) -> Result<String, CniError> {
    if cni_versions.is_empty() {
        return Ok(cni_version.to_string());
    }
    let current = version::Version::parse(version::CURRENT)?;
    let mut best: Option<(version::Version, String)> = None;
    let candidates = cni_versions
        .iter()
        .map(String::as_str)
        .chain((!cni_version.is_empty()).then_some(cni_version));
    for v in candidates {
        let parsed = version::Version::parse(v).map_err(|e| {
            CniError::invalid_config(format!("invalid cniVersions entry {v}: {}", e.msg))
        })?;
        if parsed <= current && best.as_ref().is_none_or(|(b, _)| parsed > *b) {
            best = Some((parsed, v.to_string()));
        }
    }
    Ok(best
        .map(|(_, v)| v)
        .unwrap_or_else(|| cni_version.to_string()))
}

/// Decodes `T` from a config object by Go's rules; a value of the wrong
/// shape is an invalid config (code 7) naming its path.
pub fn decode<T: DeserializeOwned>(raw: &Map<String, Value>) -> Result<T, CniError> {
    gojson::from_map(raw).map_err(|e| config_err("configuration", e))
}

fn config_err(what: &str, e: DecodeError) -> CniError {
    if e.path().is_empty() {
        CniError::decode(format!("failed to parse {what}: {e}"))
    } else {
        CniError::invalid_config(e.to_string())
    }
}

fn warn_left_out(path: &str, why: &str) {
    eprintln!("DEL: ignoring {path}: {why}");
}

/// As [`decode`], leaving out (with a warning) each top-level key whose
/// value does not decode, until the rest does. The document is not
/// copied: a DEL of a large config costs no more memory than an ADD.
fn decode_leaving_out<T: DeserializeOwned>(
    raw: &Map<String, Value>,
    what: &str,
) -> Result<T, CniError> {
    let mut left_out: Vec<String> = Vec::new();
    loop {
        match gojson::from_map_without(raw, &left_out) {
            Ok(v) => return Ok(v),
            Err(e) => match e.top_key().map(str::to_owned) {
                Some(key) if raw.contains_key(&key) && !left_out.contains(&key) => {
                    warn_left_out(&e.path(), e.message());
                    left_out.push(key);
                }
                _ => return Err(config_err(what, e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keeps_unknown_keys() {
        let input =
            json!({"cniVersion":"1.0.0","name":"n","type":"ptp","zzz":{"a":[1,2]},"mtu":1400});
        let conf = PluginConf::from_value(input.clone()).unwrap();
        assert_eq!(conf.to_value(), input);
        assert_eq!(conf.plugin_type, "ptp");
    }

    #[test]
    fn empty_version_is_010() {
        let conf = PluginConf::parse(br#"{"name":"n","type":"x"}"#).unwrap();
        assert_eq!(conf.cni_version, "0.1.0");
    }

    #[test]
    fn case_insensitive_fields() {
        #[derive(Deserialize)]
        struct Tap {
            #[serde(rename = "selinuxContext", default)]
            selinux: String,
            #[serde(rename = "mtu", default)]
            mtu: u32,
        }
        let conf = PluginConf::parse(br#"{"name":"n","selinuxcontext":"s0","MTU":9000}"#).unwrap();
        let tap: Tap = conf.plugin_fields().unwrap();
        assert_eq!(tap.selinux, "s0");
        assert_eq!(tap.mtu, 9000);
    }

    #[test]
    fn prev_result_is_converted() {
        let conf = PluginConf::parse(
            br#"{"cniVersion":"0.4.0","name":"n","prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}]}}"#,
        )
        .unwrap();
        let prev = conf.prev_result().unwrap().unwrap();
        assert_eq!(prev.ips[0].address.to_string(), "10.0.0.2/24");
    }

    #[test]
    fn conflist_versions_and_flags() {
        let list = NetConfList::parse(
            br#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","9.0.0"],"name":"l",
                "disableCheck":"true","disableGC":true,"plugins":[{"type":"ptp"}],"x":1}"#,
        )
        .unwrap();
        assert_eq!(list.cni_version, "1.1.0");
        let pick = |v: &str, vs: &[&str]| {
            choose_version(v, &vs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert_eq!(pick("1.1.0", &["1.0.0"]), "1.1.0");
        assert_eq!(pick("0.4.0", &["1.0.0", "2.0.0"]), "1.0.0");
        assert_eq!(pick("0.4.0", &[]), "0.4.0");
        assert!(choose_version("", &["x.y".to_string()]).is_err());
        assert!(list.disable_check && list.disable_gc && !list.load_only_inlined_plugins);
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.raw["x"], 1);
        assert!(NetConfList::parse(br#"{"plugins":[]}"#).is_err());
        assert!(NetConfList::parse(br#"{"name":"l","plugins":[]}"#).is_err());
        assert!(NetConfList::parse(br#"{"name":"l","plugins":[{"name":"x"}]}"#).is_err());
        assert!(NetConfList::parse(br#"{"name":"l","disableCheck":"yes"}"#).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PluginConf::parse(&bytes);
            let _ = NetConfList::parse(&bytes);
            let _ = result::parse_bytes(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics(s in r#"\{("[a-zA-Z]{1,10}": ?("[^"\\]{0,12}"|[0-9]{1,4}|null|true|\[\]|\{\}),? ?){0,6}\}"#) {
            let _ = PluginConf::parse(s.as_bytes()).and_then(|c| c.prev_result());
            let _ = NetConfList::parse(s.as_bytes());
            let _ = result::parse_bytes(s.as_bytes());
        }
    }
}
