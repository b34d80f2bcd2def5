//! `flannel` (meta): turns the node's flanneld lease (`subnet.env`) into a
//! config for a delegate plugin (bridge + host-local by default) and runs
//! the delegate. ADD saves the delegate's config under `dataDir` before
//! delegating, DEL tears down with the saved config (or, when it is gone,
//! with the one ADD would build), CHECK, GC and STATUS are forwarded.
//!
//! The saved config of a container's first flannel network is
//! `<dataDir>/<containerID>`, the reference's name, so either
//! implementation's DEL finds the other's; a second flannel network of
//! the same container gets `<dataDir>/<containerID>@<network>` (`@` is in
//! no container ID) instead of overwriting the first one's.

use crate::attachments::valid_attachments;
use crate::error::{Context, Teardown};
use crate::undo::Undo;
use ipnet::IpNet;
use rcni_skel::{invoke, CmdArgs, Command, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::gojson;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, ErrorCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub struct Flannel;

const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";
/// flanneld writes a few short lines; anything larger is not its file.
const MAX_SUBNET_FILE: u64 = 64 * 1024;
/// Separates the network from the container ID in a second network's
/// file name; container IDs never contain it.
const NETWORK_SEPARATOR: char = '@';

#[derive(Deserialize, Default)]
struct FlannelConf {
    #[serde(rename = "subnetFile", default)]
    subnet_file: Option<String>,
    #[serde(rename = "dataDir", default)]
    data_dir: Option<String>,
    #[serde(default)]
    delegate: Option<Map<String, Value>>,
}

/// The node's lease as flanneld wrote it.
#[derive(Debug, PartialEq)]
pub struct SubnetEnv {
    /// `FLANNEL_NETWORK`: the cluster's IPv4 networks, without repeats.
    pub networks_v4: Vec<IpNet>,
    /// `FLANNEL_SUBNET`: this node's IPv4 pod subnet (network address).
    pub subnet_v4: Option<IpNet>,
    pub networks_v6: Vec<IpNet>,
    pub subnet_v6: Option<IpNet>,
    pub mtu: u32,
    /// `FLANNEL_IPMASQ`: flanneld masquerades itself, so the delegate
    /// must not.
    pub ipmasq: bool,
}

impl SubnetEnv {
    /// Parses subnet.env's `KEY=VALUE` lines (other keys are ignored);
    /// errors name `file` and the key.
    pub fn parse(text: &str, file: &str) -> Result<SubnetEnv, CniError> {
        let bad = |key: &str, why: String| invalid!("subnetFile {file}: {key}: {why}");
        let mut seen: Vec<&str> = Vec::new();
        let (mut networks_v4, mut networks_v6) = (None, None);
        let (mut subnet_v4, mut subnet_v6, mut mtu, mut ipmasq) = (None, None, None, None);
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if !key.starts_with("FLANNEL_") {
                continue;
            }
            if seen.contains(&key) {
                return Err(bad(key, "given twice".into()));
            }
            seen.push(key);
            let value = value.trim();
            let cidr = |v: &str, want_v4: bool| -> Result<IpNet, CniError> {
                let net: IpNet = v.parse().ok().ok_or_else(|| {
                    bad(key, format!("{v:?} is not an address with a prefix length"))
                })?;
                if matches!(net, IpNet::V4(_)) != want_v4 {
                    let family = if want_v4 { "IPv4" } else { "IPv6" };
                    return Err(bad(key, format!("{v:?} is not {family}")));
                }
                Ok(net.trunc())
            };
            let list = |v: &str, want_v4: bool| -> Result<Vec<IpNet>, CniError> {
                let mut out: Vec<IpNet> = Vec::new();
                for item in v.split(',') {
                    let net = cidr(item.trim(), want_v4)?;
                    if !out.contains(&net) {
                        out.push(net);
                    }
                }
                Ok(out)
            };
            match key {
                "FLANNEL_NETWORK" => networks_v4 = Some(list(value, true)?),
                "FLANNEL_IPV6_NETWORK" => networks_v6 = Some(list(value, false)?),
                "FLANNEL_SUBNET" => subnet_v4 = Some(cidr(value, true)?),
                "FLANNEL_IPV6_SUBNET" => subnet_v6 = Some(cidr(value, false)?),
                "FLANNEL_MTU" => {
                    mtu = Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|m| (68..=65535).contains(m))
                            .ok_or_else(|| {
                                bad(key, format!("{value:?} is not an MTU (68-65535)"))
                            })?,
                    )
                }
                "FLANNEL_IPMASQ" => {
                    ipmasq = Some(match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad(key, format!("{value:?} is not true or false"))),
                    })
                }
                _ => {}
            }
        }
        let missing = |key: &str| invalid!("subnetFile {file}: {key} is missing");
        if networks_v4.is_none() && networks_v6.is_none() {
            return Err(missing("FLANNEL_NETWORK (or FLANNEL_IPV6_NETWORK)"));
        }
        // A family is on when its network is given, and then needs this
        // node's subnet of it (and the other way round).
        for (network, subnet, network_key, subnet_key) in [
            (
                networks_v4.is_some(),
                subnet_v4.is_some(),
                "FLANNEL_NETWORK",
                "FLANNEL_SUBNET",
            ),
            (
                networks_v6.is_some(),
                subnet_v6.is_some(),
                "FLANNEL_IPV6_NETWORK",
                "FLANNEL_IPV6_SUBNET",
            ),
        ] {
            if network && !subnet {
                return Err(missing(subnet_key));
            }
            if subnet && !network {
                return Err(missing(network_key));
            }
        }
        Ok(SubnetEnv {
            networks_v4: networks_v4.unwrap_or_default(),
            subnet_v4,
            networks_v6: networks_v6.unwrap_or_default(),
            subnet_v6,
            mtu: mtu.ok_or_else(|| missing("FLANNEL_MTU"))?,
            ipmasq: ipmasq.ok_or_else(|| missing("FLANNEL_IPMASQ"))?,
        })
    }

    /// Reads and parses `path`, which must be a regular file (a FIFO
    /// there must not hang the plugin).
    pub fn load(path: &Path) -> Result<SubnetEnv, CniError> {
        let file = path.display().to_string();
        let unreadable = |why: String| {
            invalid!(
                "subnetFile {file}: {why} (flanneld writes it once it runs: check its log on this node)"
            )
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => return Err(unreadable(e.to_string())),
        };
        if !meta.is_file() {
            return Err(unreadable("not a regular file".into()));
        }
        let mut text = String::new();
        if let Err(e) = std::fs::File::open(path)
            .and_then(|f| f.take(MAX_SUBNET_FILE + 1).read_to_string(&mut text))
        {
            return Err(unreadable(e.to_string()));
        }
        if text.len() as u64 > MAX_SUBNET_FILE {
            return Err(unreadable(format!("larger than {MAX_SUBNET_FILE} bytes")));
        }
        SubnetEnv::parse(&text, &file)
    }
}

struct Config {
    conf: PluginConf,
    subnet_file: PathBuf,
    data_dir: PathBuf,
    delegate: Map<String, Value>,
}

/// An absolute path from the config (the plugin's working directory is
/// not the admin's).
fn config_path(value: Option<String>, key: &str, default: &str) -> Result<PathBuf, CniError> {
    let path = value.filter(|v| !v.is_empty()).unwrap_or(default.into());
    if !path.starts_with('/') || path.contains('\0') {
        return Err(invalid!("{key}: {path:?} is not an absolute path"));
    }
    Ok(PathBuf::from(path))
}

/// The config's own keys, with the reference's rules for `delegate` and
/// `ipam.routes`.
fn decode(conf: &PluginConf) -> Result<Config, CniError> {
    let own: FlannelConf = conf.plugin_fields()?;
    let cfg = Config {
        conf: conf.clone(),
        subnet_file: config_path(own.subnet_file, "subnetFile", DEFAULT_SUBNET_FILE)?,
        data_dir: config_path(own.data_dir, "dataDir", DEFAULT_DATA_DIR)?,
        delegate: own.delegate.unwrap_or_default(),
    };
    check_delegate(&cfg.delegate)?;
    user_routes(conf)?;
    Ok(cfg)
}

/// What `delegate` must not hold: flannel sets `name` and `ipam`.
fn check_delegate(delegate: &Map<String, Value>) -> Result<(), CniError> {
    if delegate.get("type").is_some_and(|t| !t.is_string()) {
        // reference text
        return Err(invalid!(
            "delegate: 'delegate' dictionary, if present, must have (string) 'type' field"
        ));
    }
    for key in ["name", "ipam"] {
        if delegate.contains_key(key) {
            // reference text
            return Err(invalid!(
                "delegate: 'delegate' dictionary must not have '{key}' field, it'll be set by flannel"
            ));
        }
    }
    Ok(())
}

fn load(args: &CmdArgs) -> Result<Config, CniError> {
    let conf = args.conf()?;
    conf.validate_name()?;
    let id = &args.container_id;
    if id.is_empty() && !matches!(args.command, Some(Command::Gc | Command::Status)) {
        return Err(CniError::invalid_env("CNI_CONTAINERID is missing"));
    }
    if id.contains(['/', NETWORK_SEPARATOR]) || id == "." || id == ".." {
        return Err(CniError::invalid_env(format!(
            "CNI_CONTAINERID: {id:?} cannot name a file"
        )));
    }
    decode(&conf)
}

/// `ipam.routes` as given: routes the pods get besides the flannel
/// networks.
fn user_routes(conf: &PluginConf) -> Result<Vec<Value>, CniError> {
    let routes = match conf
        .ipam
        .as_ref()
        .and_then(|i| gojson::get(&i.raw, "routes"))
    {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(routes)) => routes.clone(),
        Some(_) => return Err(invalid!("ipam.routes: not a list of routes")),
    };
    for (i, route) in routes.iter().enumerate() {
        let dst = route
            .as_object()
            .and_then(|r| gojson::get(r, "dst"))
            .and_then(Value::as_str);
        if dst.and_then(|d| d.parse::<IpNet>().ok()).is_none() {
            return Err(invalid!(
                "ipam.routes[{i}].dst: not an address with a prefix length"
            ));
        }
    }
    Ok(routes)
}

/// The delegate's config, as the reference builds it: the `delegate`
/// keys, then the network's name and version, `runtimeConfig`, and
/// defaults from subnet.env for what the delegate does not set.
fn build_delegate(cfg: &Config, env: &SubnetEnv) -> Result<Map<String, Value>, CniError> {
    let mut d = cfg.delegate.clone();
    d.insert("name".into(), json!(cfg.conf.name));
    d.entry("type").or_insert(json!("bridge"));
    // flanneld masquerades pod traffic itself unless told not to.
    d.entry("ipMasq").or_insert(json!(!env.ipmasq));
    d.entry("mtu").or_insert(json!(env.mtu));
    if d["type"] == "bridge" {
        d.entry("isGateway").or_insert(json!(true));
    }
    if let Some(v) = gojson::get(&cfg.conf.raw, "cniVersion").filter(|v| v != &"") {
        d.insert("cniVersion".into(), v.clone());
    }
    if let Some(rc) = gojson::get(&cfg.conf.raw, "runtimeConfig").filter(|v| v.is_object()) {
        d.insert("runtimeConfig".into(), rc.clone());
    }
    let mut ipam = cfg
        .conf
        .ipam
        .as_ref()
        .map(|i| i.raw.clone())
        .unwrap_or_default();
    ipam.entry("type").or_insert(json!("host-local"));
    let ranges: Vec<Value> = [env.subnet_v4, env.subnet_v6]
        .into_iter()
        .flatten()
        .map(|subnet| json!([{ "subnet": subnet.to_string() }]))
        .collect();
    ipam.insert("ranges".into(), Value::Array(ranges));
    let mut routes = user_routes(&cfg.conf)?;
    routes.extend(
        env.networks_v4
            .iter()
            .chain(&env.networks_v6)
            .map(|net| json!({ "dst": net.to_string() })),
    );
    ipam.insert("routes".into(), Value::Array(routes));
    d.insert("ipam".into(), Value::Object(ipam));
    Ok(d)
}

/// The delegate config ADD would build now.
fn current_delegate(cfg: &Config) -> Result<Map<String, Value>, CniError> {
    build_delegate(cfg, &SubnetEnv::load(&cfg.subnet_file)?)
}

/// A JSON object's bytes (serializing a `Value` cannot fail).
fn encode(d: &Map<String, Value>) -> Vec<u8> {
    Value::Object(d.clone()).to_string().into_bytes()
}

fn delegate_type(d: &Map<String, Value>) -> Result<String, CniError> {
    d.get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid!("delegate: the saved config has no type"))
}

/// The saved delegate configs in `dataDir`.
struct SavedConfigs<'a> {
    dir: &'a Path,
}

impl SavedConfigs<'_> {
    /// The reference's file: the first flannel network of the container.
    fn first(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn other(&self, id: &str, network: &str) -> PathBuf {
        self.dir.join(format!("{id}{NETWORK_SEPARATOR}{network}"))
    }

    /// The saved config at `path`, if there is one that parses (only a
    /// regular file is opened: nothing else there can hang a read).
    fn read(path: &Path) -> Option<Map<String, Value>> {
        if !std::fs::symlink_metadata(path).ok()?.is_file() {
            return None;
        }
        let bytes = std::fs::read(path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    fn holds(path: &Path, network: &str) -> bool {
        Self::read(path).is_some_and(|d| d.get("name").and_then(Value::as_str) == Some(network))
    }

    /// Where ADD saves: the first file unless another network has it.
    fn for_add(&self, id: &str, network: &str) -> PathBuf {
        let first = self.first(id);
        if first.exists() && !Self::holds(&first, network) {
            self.other(id, network)
        } else {
            first
        }
    }

    /// The file that holds this attachment's config, if any.
    fn find(&self, id: &str, network: &str) -> Option<(PathBuf, Map<String, Value>)> {
        [self.first(id), self.other(id, network)]
            .into_iter()
            .filter_map(|p| Self::read(&p).map(|d| (p, d)))
            .find(|(_, d)| d.get("name").and_then(Value::as_str) == Some(network))
    }

    /// Writes `bytes` to `path` so that a crash leaves the old file or the
    /// new one, never a part: a synced temp file renamed into place, and
    /// the directory synced.
    fn save(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        std::fs::File::open(self.dir)?.sync_all()
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => std::fs::File::open(self.dir)?.sync_all(),
        }
    }

    /// Every saved config of `network`, by container ID.
    fn of_network(&self, network: &str) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                if name.starts_with('.') {
                    return None;
                }
                let path = e.path();
                let id = match name.split_once(NETWORK_SEPARATOR) {
                    Some((id, net)) if net == network => id.to_string(),
                    Some(_) => return None,
                    None if Self::holds(&path, network) => name,
                    None => return None,
                };
                Some((id, path))
            })
            .collect()
    }
}

/// Runs `command` on the delegate whose config is `d`, with the flannel
/// call's `prevResult` when there is one (CHECK needs it; for DEL it is
/// the delegate's hint of what to remove).
fn forward(
    command: Command,
    mut d: Map<String, Value>,
    cfg: &Config,
    args: &CmdArgs,
) -> Result<(), CniError> {
    if let Some(prev) = &cfg.conf.prev_result {
        d.insert("prevResult".into(), prev.clone());
    }
    let bytes = encode(&d);
    invoke::delegate(command, &delegate_type(&d)?, &bytes, args, None)
}

/// flannel's keys, as `rcni help flannel` prints them.
pub const SCHEMA: Schema = Schema {
    about: "runs a delegate (bridge + host-local by default) on this node's flannel subnet, read from flanneld's subnet.env",
    keys: &[
        Key { name: "subnetFile", ty: "string", default: DEFAULT_SUBNET_FILE, meaning: "flanneld's lease: FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_IPV6_NETWORK, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ" },
        Key { name: "dataDir", ty: "string", default: DEFAULT_DATA_DIR, meaning: "where each attachment's delegate config is kept for DEL" },
        Key { name: "delegate", ty: "object", default: "{\"type\": \"bridge\"}", meaning: "the delegate's config (no name or ipam); type, ipMasq, mtu and isGateway default from subnet.env" },
    ],
    capabilities: &["ipRanges", "ips", "mac"],
    example: r#"{"cniVersion": "1.0.0", "name": "cbr0", "plugins": [
  {"type": "flannel", "delegate": {"hairpinMode": true, "forceAddress": true, "isDefaultGateway": true}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "bandwidth", "capabilities": {"bandwidth": true}}]}"#,
    check: |conf| decode(conf).map(drop),
};

impl Plugin for Flannel {
    fn name(&self) -> &str {
        "flannel"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let cfg = load(args)?;
        let delegate = current_delegate(&cfg)?;
        let plugin = delegate_type(&delegate)?;
        let bytes = encode(&delegate);
        let saved = SavedConfigs { dir: &cfg.data_dir };
        let path = saved.for_add(&args.container_id, &cfg.conf.name);
        saved.save(&path, &bytes).context(format!(
            "dataDir: save the delegate config to {}",
            path.display()
        ))?;
        let file = Undo::new(|| {
            let _ = saved.remove(&path);
        });
        let result =
            invoke::delegate_add(&plugin, &bytes, args, None).context("failed to delegate add")?;
        file.keep();
        Ok(result)
    }

    /// DEL with the saved config; without one, with the config ADD would
    /// build, if subnet.env still allows. The file goes once the delegate
    /// has torn down, so a failed DEL can be retried.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = match load(args) {
            Ok(cfg) => cfg,
            // ADD refuses such a config before doing anything, so a
            // runtime's DEL of that failed ADD has nothing to undo.
            Err(e) if e.code == ErrorCode::INVALID_CONFIG => {
                eprintln!("flannel: DEL: {}: nothing to tear down", e.msg);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let saved = SavedConfigs { dir: &cfg.data_dir };
        let Some((path, delegate)) = saved.find(&args.container_id, &cfg.conf.name) else {
            return match current_delegate(&cfg) {
                Ok(delegate) => forward(Command::Del, delegate, &cfg, args),
                Err(e) => {
                    eprintln!(
                        "flannel: DEL: no saved delegate config and {}: nothing to tear down",
                        e.msg
                    );
                    Ok(())
                }
            };
        };
        forward(Command::Del, delegate, &cfg, args)?;
        saved
            .remove(&path)
            .context(format!("remove {}", path.display()))
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        let saved = SavedConfigs { dir: &cfg.data_dir };
        let delegate = match saved.find(&args.container_id, &cfg.conf.name) {
            Some((_, d)) => d,
            None => current_delegate(&cfg)?,
        };
        forward(Command::Check, delegate, &cfg, args)
    }

    /// Forwards GC (the delegate drops its stale addresses and rules) and
    /// removes the saved configs of containers no longer attached.
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        let valid = valid_attachments(&cfg.conf)?;
        let mut steps = Teardown::new("flannel");
        match current_delegate(&cfg) {
            Ok(mut delegate) => {
                for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
                    if let Some(v) = gojson::get(&cfg.conf.raw, key) {
                        delegate.insert(key.into(), v.clone());
                    }
                }
                steps.step(forward(Command::Gc, delegate, &cfg, args));
            }
            Err(e) => eprintln!("flannel: GC: not forwarded: {}", e.msg),
        }
        let saved = SavedConfigs { dir: &cfg.data_dir };
        for (id, path) in saved.of_network(&cfg.conf.name) {
            if !valid.iter().any(|(v, _)| *v == id) {
                steps.step(
                    saved
                        .remove(&path)
                        .context(format!("remove {}", path.display())),
                );
            }
        }
        steps.finish()
    }

    /// Unavailable (50) until flanneld has written a usable subnet.env;
    /// then the delegate's answer.
    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        let env = match SubnetEnv::load(&cfg.subnet_file) {
            Ok(env) => env,
            Err(e) => {
                return Err(CniError {
                    code: ErrorCode::PLUGIN_NOT_AVAILABLE,
                    ..e
                })
            }
        };
        forward(Command::Status, build_delegate(&cfg, &env)?, &cfg, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/run/flannel/subnet.env";

    fn env(text: &str) -> Result<SubnetEnv, CniError> {
        SubnetEnv::parse(text, FILE)
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<FlannelConf>(), Vec::<String>::new());
    }

    #[test]
    fn parses_what_flanneld_writes() {
        let e = env("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n").unwrap();
        assert_eq!(
            e,
            SubnetEnv {
                networks_v4: vec![net("10.244.0.0/16")],
                subnet_v4: Some(net("10.244.1.0/24")),
                networks_v6: vec![],
                subnet_v6: None,
                mtu: 1450,
                ipmasq: true,
            }
        );
        let dual = env("FLANNEL_NETWORK=10.244.0.0/16,10.245.0.0/16,10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\nOTHER=x\n").unwrap();
        assert_eq!(
            dual.networks_v4,
            [net("10.244.0.0/16"), net("10.245.0.0/16")]
        );
        assert_eq!(dual.subnet_v6, Some(net("fd00:10:244:1::/64")));
        assert!(!dual.ipmasq);
        let v6_only = env("FLANNEL_IPV6_NETWORK=fd00::/48\nFLANNEL_IPV6_SUBNET=fd00:0:0:1::/64\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false").unwrap();
        assert_eq!(v6_only.subnet_v4, None);
    }

    #[test]
    fn bad_subnet_env_names_the_file_and_key() {
        let good = [
            "FLANNEL_NETWORK=10.244.0.0/16",
            "FLANNEL_SUBNET=10.244.1.1/24",
            "FLANNEL_MTU=1450",
            "FLANNEL_IPMASQ=true",
        ];
        // Each key left out.
        for (i, line) in good.iter().enumerate() {
            let text: Vec<&str> = good
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect();
            let e = env(&text.join("\n")).unwrap_err();
            let key = line.split('=').next().unwrap();
            assert_eq!(e.code, 7);
            assert!(
                e.msg.contains(FILE) && e.msg.contains(key),
                "{key}: {}",
                e.msg
            );
        }
        let cases = [
            ("FLANNEL_NETWORK=10.244.0.0", "FLANNEL_NETWORK"),
            ("FLANNEL_NETWORK=10.244.0.0/16,", "FLANNEL_NETWORK"),
            ("FLANNEL_NETWORK=fd00::/48", "FLANNEL_NETWORK"),
            ("FLANNEL_SUBNET=10.244.1.1/33", "FLANNEL_SUBNET"),
            ("FLANNEL_SUBNET=;rm -rf /", "FLANNEL_SUBNET"),
            ("FLANNEL_IPV6_SUBNET=10.0.0.0/8", "FLANNEL_IPV6_SUBNET"),
            ("FLANNEL_IPV6_NETWORK=fd00::/48", "FLANNEL_IPV6_SUBNET"),
            ("FLANNEL_MTU=abc", "FLANNEL_MTU"),
            ("FLANNEL_MTU=-1", "FLANNEL_MTU"),
            ("FLANNEL_MTU=70000", "FLANNEL_MTU"),
            ("FLANNEL_IPMASQ=yes", "FLANNEL_IPMASQ"),
            ("FLANNEL_MTU=1400", "FLANNEL_MTU"),
        ];
        for (extra, key) in cases {
            let e = env(&format!("{}\n{extra}", good.join("\n"))).unwrap_err();
            assert_eq!(e.code, 7, "{extra}");
            assert!(
                e.msg.contains(FILE) && e.msg.contains(key),
                "{extra}: {}",
                e.msg
            );
        }
    }

    #[test]
    fn missing_or_odd_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = SubnetEnv::load(&dir.path().join("subnet.env")).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(
            e.msg.contains("subnet.env") && e.msg.contains("subnetFile"),
            "{}",
            e.msg
        );
        let e = SubnetEnv::load(dir.path()).unwrap_err();
        assert!(e.msg.contains("not a regular file"), "{}", e.msg);
    }

    fn config(conf: Value) -> Result<Config, CniError> {
        decode(&PluginConf::parse(conf.to_string().as_bytes())?)
    }

    fn lease() -> SubnetEnv {
        env("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true").unwrap()
    }

    #[test]
    fn builds_the_reference_delegate() {
        let cfg = config(
            json!({"cniVersion": "1.0.0", "name": "cbr0", "type": "flannel",
            "runtimeConfig": {"portMappings": []}}),
        )
        .unwrap();
        let d = build_delegate(&cfg, &lease()).unwrap();
        assert_eq!(
            Value::Object(d),
            json!({"name": "cbr0", "type": "bridge", "ipMasq": false, "mtu": 1450, "isGateway": true,
                "cniVersion": "1.0.0", "runtimeConfig": {"portMappings": []},
                "ipam": {"type": "host-local",
                    "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]],
                    "routes": [{"dst": "10.244.0.0/16"}, {"dst": "fd00:10:244::/56"}]}})
        );
    }

    #[test]
    fn delegate_keys_win_and_ipam_is_a_base() {
        let cfg = config(
            json!({"cniVersion": "0.4.0", "name": "n", "type": "flannel",
            "delegate": {"type": "ptp", "ipMasq": true, "mtu": 1300},
            "ipam": {"type": "host-local", "dataDir": "/x", "routes": [{"dst": "192.0.2.0/24"}]}}),
        )
        .unwrap();
        let d = build_delegate(&cfg, &lease()).unwrap();
        assert_eq!(
            (d["type"].clone(), d["ipMasq"].clone(), d["mtu"].clone()),
            (json!("ptp"), json!(true), json!(1300))
        );
        assert!(!d.contains_key("isGateway"));
        assert_eq!(d["ipam"]["dataDir"], "/x");
        assert_eq!(
            d["ipam"]["routes"],
            json!([{"dst": "192.0.2.0/24"}, {"dst": "10.244.0.0/16"}, {"dst": "fd00:10:244::/56"}])
        );
        let bridge = config(json!({"name": "n", "delegate": {"isGateway": false}})).unwrap();
        assert_eq!(
            build_delegate(&bridge, &lease()).unwrap()["isGateway"],
            false
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let cases = [
            (json!({"name": "n", "delegate": {"name": "x"}}), "delegate"),
            (json!({"name": "n", "delegate": {"ipam": {}}}), "delegate"),
            (json!({"name": "n", "delegate": {"type": 3}}), "delegate"),
            (json!({"name": "n", "delegate": "bridge"}), "delegate"),
            (
                json!({"name": "n", "subnetFile": "subnet.env"}),
                "subnetFile",
            ),
            (json!({"name": "n", "dataDir": "data"}), "dataDir"),
            (json!({"name": "n", "dataDir": 3}), "dataDir"),
            (json!({"name": "n", "ipam": {"routes": {}}}), "ipam.routes"),
            (
                json!({"name": "n", "ipam": {"routes": [{"dst": "x"}]}}),
                "ipam.routes[0].dst",
            ),
        ];
        for (conf, key) in cases {
            let e = config(conf.clone()).err().unwrap();
            assert_eq!(e.code, 7, "{conf}");
            assert!(e.msg.contains(key), "{conf}: {}", e.msg);
        }
    }

    #[test]
    fn second_network_of_a_container_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let saved = SavedConfigs { dir: dir.path() };
        let first = saved.for_add("c1", "a");
        assert_eq!(first, dir.path().join("c1"));
        saved
            .save(&first, br#"{"name":"a","type":"bridge"}"#)
            .unwrap();
        assert_eq!(saved.for_add("c1", "a"), first);
        let second = saved.for_add("c1", "b");
        assert_eq!(second, dir.path().join("c1@b"));
        saved
            .save(&second, br#"{"name":"b","type":"bridge"}"#)
            .unwrap();
        assert_eq!(saved.find("c1", "a").unwrap().0, first);
        assert_eq!(saved.find("c1", "b").unwrap().0, second);
        assert!(saved.find("c1", "c").is_none());
        let fifo = dir.path().join("c2");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(saved.find("c2", "a").is_none());
        std::fs::remove_file(&fifo).unwrap();
        assert_eq!(saved.of_network("b"), [("c1".to_string(), second.clone())]);
        saved.remove(&second).unwrap();
        saved.remove(&second).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["c1"]);
    }
}
