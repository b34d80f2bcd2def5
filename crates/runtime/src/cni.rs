//! Running network lists, as the spec and the reference's libcni do.

use crate::cache::{self, Attachment, CachedInfo, CACHE_V1};
use crate::conf::{NetworkList, PluginConfig};
use crate::error::RuntimeError;
use rcni_skel::invoke::{self, Exec};
use rcni_skel::Command;
use rcni_spec::version::{self, VersionInfo};
use rcni_spec::{gojson, names, result, CniError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One attachment of a container to a network, as the runtime describes
/// it to the plugins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` pairs.
    pub args: Vec<(String, String)>,
    /// Values for the capabilities plugins declare (`portMappings`, ...).
    pub capability_args: Map<String, Value>,
}

/// An attachment the runtime still uses (the GC argument).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The runtime library: where plugins are and where the cache lives.
#[derive(Debug, Clone)]
pub struct Cni {
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    /// A plugin running longer is killed and the call fails with code 11.
    pub timeout: Option<Duration>,
}

fn verb_name(verb: Command) -> &'static str {
    match verb {
        Command::Add => "add",
        Command::Del => "delete",
        Command::Check => "check",
        Command::Gc => "gc",
        Command::Status => "status",
        Command::Version => "version",
    }
}

impl Cni {
    /// Plugins from `plugin_dirs`, the cache in the reference's default
    /// place (`/var/lib/cni`), no timeout.
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Cni {
        Cni {
            plugin_dirs,
            cache_dir: PathBuf::from(cache::DEFAULT_CACHE_DIR),
            timeout: None,
        }
    }

    fn path_var(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs one plugin with one verb.
    fn exec(
        &self,
        plugin_type: &str,
        verb: Command,
        stdin: &[u8],
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, RuntimeError> {
        let plugin_err = |error: CniError| RuntimeError::Plugin {
            plugin: plugin_type.to_string(),
            verb: verb_name(verb),
            error,
        };
        let dirs: Vec<String> = self
            .plugin_dirs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let path = invoke::find_in_path(plugin_type, &dirs).map_err(plugin_err)?;
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let env = [
            ("CNI_COMMAND", verb.as_str()),
            ("CNI_CONTAINERID", rt.container_id.as_str()),
            ("CNI_NETNS", rt.netns.as_str()),
            ("CNI_ARGS", args.as_str()),
            ("CNI_IFNAME", rt.ifname.as_str()),
            ("CNI_PATH", self.path_var().as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let exec = Exec {
            env,
            stdin: stdin.to_vec(),
            timeout: self.timeout,
        };
        invoke::exec_plugin(&path, &exec).map_err(plugin_err)
    }

    fn cache_path(&self, list: &NetworkList, rt: &RuntimeConf) -> PathBuf {
        cache::file_path(&self.cache_dir, &list.name, &rt.container_id, &rt.ifname)
    }

    /// Runs ADD on every plugin in order, each getting the previous
    /// result; caches and returns the last result (in the list's version).
    pub fn add_network_list(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<Value, RuntimeError> {
        names::validate_container_id(&rt.container_id).map_err(RuntimeError::Invalid)?;
        names::validate_network_name(&list.name).map_err(RuntimeError::Invalid)?;
        names::validate_interface_name(&rt.ifname).map_err(RuntimeError::Invalid)?;
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let stdin = build_config(list, plugin, prev.as_ref(), Some(rt));
            let out = self.exec(&plugin.plugin_type, Command::Add, &stdin, rt)?;
            let plugin_err = |error: CniError| RuntimeError::Plugin {
                plugin: plugin.plugin_type.clone(),
                verb: "add",
                error,
            };
            let parsed = invoke::parse_result(&stdin, &out).map_err(plugin_err)?;
            prev = Some(result::render(&parsed, &list.cni_version).map_err(plugin_err)?);
        }
        let result = prev.unwrap_or_else(|| Value::Object(Map::new()));
        let info = CachedInfo {
            kind: CACHE_V1.into(),
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            ifname: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.clone()),
        };
        cache::write(&self.cache_path(list, rt), &info)?;
        Ok(result)
    }

    /// The cached result of an attachment, converted to the list's
    /// version; `None` when nothing is cached.
    pub fn cached_result(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>, RuntimeError> {
        let path = self.cache_path(list, rt);
        let Some(cached) = cache::read(&path)? else {
            return Ok(None);
        };
        let Some(value) = cached.result() else {
            return Ok(None);
        };
        result::convert(value, &list.cni_version)
            .map(Some)
            .map_err(|e| RuntimeError::Cache {
                path,
                message: format!(
                    "cannot convert the cached result to version {}: {e}",
                    list.cni_version
                ),
            })
    }

    /// The cached config and runtime arguments of an attachment.
    pub fn cached_config(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<Option<(Vec<u8>, RuntimeConf)>, RuntimeError> {
        match cache::read(&self.cache_path(list, rt))? {
            Some(cache::Cached::V1(info)) => {
                let mut cached_rt = rt.clone();
                if !info.cni_args.is_empty() {
                    cached_rt.args = info.cni_args.clone();
                }
                cached_rt.capability_args = info.capability_args.clone();
                Ok(Some((info.config.clone(), cached_rt)))
            }
            _ => Ok(None),
        }
    }

    /// Runs DEL on every plugin in reverse order with the cached result
    /// (from 0.4.0). A missing or corrupt cache does not stop DEL.
    pub fn del_network_list(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<(), RuntimeError> {
        let path = self.cache_path(list, rt);
        let prev =
            if version::at_least(&list.cni_version, "0.4.0").map_err(RuntimeError::Invalid)? {
                self.cached_result(list, rt).unwrap_or_else(|e| {
                    eprintln!("rcni: ignoring the cached result: {e}");
                    cache::delete(&path);
                    None
                })
            } else {
                None
            };
        for plugin in list.plugins.iter().rev() {
            let stdin = build_config(list, plugin, prev.as_ref(), Some(rt));
            self.exec(&plugin.plugin_type, Command::Del, &stdin, rt)?;
        }
        cache::delete(&path);
        Ok(())
    }

    /// Runs CHECK on every plugin in order with the cached result.
    pub fn check_network_list(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<(), RuntimeError> {
        if !version::at_least(&list.cni_version, "0.4.0").map_err(RuntimeError::Invalid)? {
            return Err(RuntimeError::Invalid(CniError::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!(
                    "configuration version {:?} does not support the CHECK command",
                    list.cni_version
                ),
            )));
        }
        if list.disable_check {
            return Ok(());
        }
        let prev = self.cached_result(list, rt)?;
        for plugin in &list.plugins {
            let stdin = build_config(list, plugin, prev.as_ref(), Some(rt));
            self.exec(&plugin.plugin_type, Command::Check, &stdin, rt)?;
        }
        Ok(())
    }

    /// Deletes every cached attachment of the network that is not in
    /// `valid` (all of them when `valid` is `None`), then, from 1.1.0 on,
    /// sends GC with `cni.dev/valid-attachments` to every plugin. Failures
    /// are collected, not fatal.
    pub fn gc_network_list(
        &self,
        list: &NetworkList,
        valid: Option<&[GcAttachment]>,
    ) -> Result<(), RuntimeError> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errors = Vec::new();
        for att in self.cached_attachments(None) {
            if att.network != list.name {
                continue;
            }
            let keep = valid
                .unwrap_or_default()
                .iter()
                .any(|v| v.container_id == att.container_id && v.ifname == att.ifname);
            if keep {
                continue;
            }
            let rt = RuntimeConf {
                container_id: att.container_id.clone(),
                netns: att.netns.clone(),
                ifname: att.ifname.clone(),
                args: att.cni_args.clone(),
                capability_args: att.capability_args.clone(),
            };
            if let Err(e) = self.del_network_list(list, &rt) {
                errors.push(e);
            }
        }
        if version::at_least(&list.cni_version, "1.1.0").unwrap_or(false) {
            let valid_json = valid.map(|v| serde_json::to_value(v).unwrap_or(Value::Null));
            for plugin in &list.plugins {
                let mut conf = list_member_config(list, plugin);
                if let Some(v) = &valid_json {
                    gojson::set(&mut conf, "cni.dev/valid-attachments", v.clone());
                    // The reference also sends the key under its first spelling.
                    gojson::set(&mut conf, "cni.dev/attachments", v.clone());
                }
                let stdin = Value::Object(conf).to_string().into_bytes();
                if let Err(e) = self.exec(
                    &plugin.plugin_type,
                    Command::Gc,
                    &stdin,
                    &RuntimeConf::default(),
                ) {
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(RuntimeError::Many(errors)),
        }
    }

    /// Asks every plugin for its STATUS (from 1.1.0 on); the first failure
    /// is the answer.
    pub fn status_network_list(&self, list: &NetworkList) -> Result<(), RuntimeError> {
        if !version::at_least(&list.cni_version, "1.1.0").unwrap_or(false) {
            return Ok(());
        }
        for plugin in &list.plugins {
            let stdin = build_config(list, plugin, None, None);
            self.exec(
                &plugin.plugin_type,
                Command::Status,
                &stdin,
                &RuntimeConf::default(),
            )?;
        }
        Ok(())
    }

    /// A plugin's VERSION answer; a plugin too old to know VERSION counts
    /// as supporting 0.1.0 only.
    pub fn version_info(&self, plugin_type: &str) -> Result<VersionInfo, RuntimeError> {
        let stdin = serde_json::json!({"cniVersion": version::CURRENT}).to_string();
        match self.exec(
            plugin_type,
            Command::Version,
            stdin.as_bytes(),
            &RuntimeConf::default(),
        ) {
            Ok(out) => serde_json::from_slice::<Value>(&out)
                .map_err(|e| e.to_string())
                .and_then(|v| gojson::from_value(&v).map_err(|e| e.to_string()))
                .map_err(|e| RuntimeError::Plugin {
                    plugin: plugin_type.to_string(),
                    verb: "version",
                    error: CniError::decode(format!("decoding version info: {e}")),
                }),
            Err(RuntimeError::Plugin { error, .. })
                if error.msg.contains("unknown CNI_COMMAND: VERSION") =>
            {
                Ok(VersionInfo::new(&["0.1.0"]))
            }
            Err(e) => Err(e),
        }
    }

    /// Checks that every plugin of the list exists and supports the list's
    /// version; returns the capabilities the list supports, sorted.
    pub fn validate_network_list(&self, list: &NetworkList) -> Result<Vec<String>, RuntimeError> {
        let wanted = if list.cni_version.is_empty() {
            "0.1.0"
        } else {
            list.cni_version.as_str()
        };
        let mut errors = Vec::new();
        let mut caps: Vec<String> = Vec::new();
        for plugin in &list.plugins {
            match self.version_info(&plugin.plugin_type) {
                Ok(info) if info.supported_versions.iter().any(|v| v == wanted) => {}
                Ok(_) => errors.push(RuntimeError::Plugin {
                    plugin: plugin.plugin_type.clone(),
                    verb: "version",
                    error: CniError::new(
                        ErrorCode::INCOMPATIBLE_VERSION,
                        format!(
                            "plugin {} does not support config version {wanted:?}",
                            plugin.plugin_type
                        ),
                    ),
                }),
                Err(e) => errors.push(e),
            }
            caps.extend(plugin.capabilities.iter().cloned());
        }
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                RuntimeError::Many(errors)
            });
        }
        caps.sort();
        caps.dedup();
        Ok(caps)
    }

    /// The cached attachments (of one container, or all).
    pub fn cached_attachments(&self, container_id: Option<&str>) -> Vec<Attachment> {
        cache::attachments(&self.cache_dir, container_id)
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }
}

/// A plugin's config as a member of `list`: the list's `name` and
/// `cniVersion` injected (replacing any spelling of them), as libcni does.
fn list_member_config(list: &NetworkList, plugin: &PluginConfig) -> Map<String, Value> {
    let mut conf = plugin.raw.clone();
    gojson::set(&mut conf, "name", Value::String(list.name.clone()));
    gojson::set(
        &mut conf,
        "cniVersion",
        Value::String(list.cni_version.clone()),
    );
    conf
}

/// One plugin's stdin: its config with `name`, `cniVersion`, `prevResult`
/// and a `runtimeConfig` holding the capability values it declares.
pub fn build_config(
    list: &NetworkList,
    plugin: &PluginConfig,
    prev: Option<&Value>,
    rt: Option<&RuntimeConf>,
) -> Vec<u8> {
    let mut conf = list_member_config(list, plugin);
    if let Some(prev) = prev {
        gojson::set(&mut conf, "prevResult", prev.clone());
    }
    if let Some(rt) = rt {
        let runtime: Map<String, Value> = plugin
            .capabilities
            .iter()
            .filter_map(|cap| {
                rt.capability_args
                    .get(cap)
                    .map(|v| (cap.clone(), v.clone()))
            })
            .collect();
        if !runtime.is_empty() {
            gojson::set(&mut conf, "runtimeConfig", Value::Object(runtime));
        }
    }
    Value::Object(conf).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injects_only_declared_capabilities() {
        let list = NetworkList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"p","capabilities":{"portMappings":true,"mac":false},"runtimeConfig":{"stale":1}}]}"#,
        )
        .unwrap();
        let rt = RuntimeConf {
            capability_args: serde_json::from_str(
                r#"{"portMappings":[{"hostPort":80}],"mac":"x","other":1}"#,
            )
            .unwrap(),
            ..RuntimeConf::default()
        };
        let prev = serde_json::json!({"cniVersion":"1.0.0"});
        let out: Value = serde_json::from_slice(&build_config(
            &list,
            &list.plugins[0],
            Some(&prev),
            Some(&rt),
        ))
        .unwrap();
        assert_eq!(out["name"], "n");
        assert_eq!(out["cniVersion"], "1.0.0");
        assert_eq!(out["prevResult"], prev);
        assert_eq!(
            out["runtimeConfig"],
            serde_json::json!({"portMappings":[{"hostPort":80}]})
        );
        assert_eq!(out["capabilities"]["portMappings"], true);
    }
}
