//! `tuning` (chained): sets network sysctls inside the container and the
//! container interface's MAC, MTU, promiscuous and all-multicast modes and
//! transmit queue length. ADD saves the link's values it is about to change
//! to `<dataDir>/<containerID>_<ifname>.json` (the reference's file and
//! format, so either implementation's DEL restores the other's ADD); DEL
//! puts them back and removes the file. Sysctls are not restored: they go
//! with the container's netns.
//!
//! Sysctl keys must name a file under `/proc/sys/net`; when
//! `/etc/cni/tuning/allowlist.conf` exists, each key must also match one
//! of its lines, each an unanchored regular expression.

use crate::container::{handle_in, open_netns, require_netns};
use crate::error::Context;
use crate::undo::Undo;
use rcni_net::{format_mac, sysctl, Handle, Link, NetNs};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{gojson, CniError, CniResult, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

pub struct Tuning;

const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";
/// The administrator's list of allowed sysctl keys; absent: all allowed.
const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";
/// The most of a backup file DEL reads: a few short values.
const MAX_BACKUP_FILE: u64 = 64 * 1024;

/// The plugin's own keys.
#[derive(Deserialize, Default)]
struct TuningFields {
    #[serde(rename = "dataDir", default)]
    data_dir: String,
    #[serde(default)]
    sysctl: Option<Map<String, Value>>,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    promisc: bool,
    /// 0: leave the MTU alone.
    #[serde(default)]
    mtu: u32,
    #[serde(rename = "txQLen", default)]
    txqlen: Option<u32>,
    #[serde(default)]
    allmulti: Option<bool>,
}

/// `args.cni`: per-attachment values that win over the config's.
#[derive(Deserialize, Default)]
struct ArgsOverrides {
    #[serde(default)]
    sysctl: Option<Map<String, Value>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default)]
    txqlen: Option<u32>,
}

/// One sysctl to set: the key as configured (what the allowlist matches)
/// and the key as a validated path under `/proc/sys`, `IFNAME` replaced.
struct Sysctl {
    key: String,
    path: String,
    value: String,
}

/// What an ADD or CHECK asks for, validated.
struct Settings {
    sysctls: Vec<Sysctl>,
    mac: Option<[u8; 6]>,
    promisc: bool,
    mtu: Option<u32>,
    allmulti: Option<bool>,
    txqlen: Option<u32>,
}

impl Settings {
    fn changes_link(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
}

/// The link values ADD is about to change, as the reference stores them
/// (field names, omitted when unset, one-space indent).
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Backup {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    mtu: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default, skip_serializing_if = "Option::is_none")]
    txqlen: Option<u32>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn load(args: &CmdArgs) -> Result<(PluginConf, TuningFields), CniError> {
    let conf = args.conf()?;
    let own: TuningFields = conf.plugin_fields()?;
    Ok((conf, own))
}

/// `<dataDir>/<containerID>_<ifname>.json`. Both names were validated by
/// the framework (no `/`, no `.`/`..`), so the file stays in `dataDir`.
fn backup_path(own: &TuningFields, args: &CmdArgs) -> PathBuf {
    let dir = match own.data_dir.as_str() {
        "" => DEFAULT_DATA_DIR,
        d => d,
    };
    Path::new(dir).join(format!("{}_{}.json", args.container_id, args.ifname))
}

/// The path under `/proc/sys` of a configured key (dotted or slashed, see
/// [`sysctl`]), with the first `IFNAME` replaced by the interface name,
/// refused unless it stays under `net/`.
fn sysctl_path(key: &str, ifname: &str) -> Result<String, CniError> {
    let bad = || invalid!("sysctl: invalid net sysctl key {key:?}");
    let normalized = sysctl::path_of(key).ok().ok_or_else(bad)?;
    let relative = normalized
        .strip_prefix("/proc/sys")
        .ok()
        .ok_or_else(bad)?
        .to_str()
        .ok_or_else(bad)?
        .replacen("IFNAME", ifname, 1);
    // Validated again with the interface name in it; the leading slash
    // keeps it verbatim (no dot/slash swap of a name like `eth0.100`).
    let full = sysctl::path_of(&format!("/{relative}"))
        .ok()
        .ok_or_else(bad)?;
    let mut parts = full.strip_prefix("/proc/sys").ok().ok_or_else(bad)?.iter();
    if parts.next() != Some("net".as_ref()) || parts.next().is_none() {
        return Err(bad());
    }
    Ok(format!("/{relative}"))
}

/// The config's sysctls, then `args.cni.sysctl`'s, which replace a
/// config entry naming the same file. Two keys of the config naming one
/// file are refused (which would win is unspecified).
fn sysctls(
    own: &TuningFields,
    overrides: &ArgsOverrides,
    ifname: &str,
) -> Result<Vec<Sysctl>, CniError> {
    let mut out: Vec<Sysctl> = Vec::new();
    let sources = [
        (&own.sysctl, "sysctl"),
        (&overrides.sysctl, "args.cni.sysctl"),
    ];
    for (map, field) in sources {
        for (key, value) in map.iter().flatten() {
            let value = match value {
                Value::String(v) if !v.chars().any(|c| c.is_control() && c != '\t') => v,
                Value::String(_) => {
                    return Err(invalid!(
                        "{field}: the value of {key:?} has a control character"
                    ))
                }
                _ => return Err(invalid!("{field}: the value of {key:?} must be a string")),
            };
            let path = sysctl_path(key, ifname).context(field)?;
            let entry = Sysctl {
                key: key.clone(),
                path,
                value: value.clone(),
            };
            match out.iter_mut().find(|s| s.path == entry.path) {
                Some(_) if field == "sysctl" => {
                    return Err(invalid!(
                        "sysctl: duplicated sysctl keys are not allowed: {key:?} names /proc/sys{} as another key does",
                        entry.path
                    ));
                }
                Some(same) => *same = entry,
                None => out.push(entry),
            }
        }
    }
    Ok(out)
}

/// Refuses a `sysctl` object with the same key twice in the config text
/// (a JSON object keeps only the last one, so this reads the raw bytes).
fn refuse_duplicate_keys(stdin: &[u8]) -> Result<(), CniError> {
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    use std::collections::HashSet;
    use std::fmt;

    struct Document;
    struct UniqueKeys;
    impl<'de> Visitor<'de> for Document {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if gojson::fold_eq(&key, "sysctl") {
                    map.next_value_seed(UniqueKeys)?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for UniqueKeys {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for UniqueKeys {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<IgnoredAny>()?;
                if !seen.insert(key.clone()) {
                    return Err(de::Error::custom(format!(
                        "duplicated sysctl keys are not allowed: {key:?}"
                    )));
                }
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(stdin);
    de::Deserializer::deserialize_map(&mut de, Document).invalid_context("sysctl")
}

/// Refuses keys that the allowlist file, when present, does not match.
fn check_allowlist(sysctls: &[Sysctl]) -> Result<(), CniError> {
    if sysctls.is_empty() {
        return Ok(());
    }
    let text = match std::fs::read_to_string(ALLOWLIST) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context(format!("read the sysctl allowlist {ALLOWLIST}")),
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let patterns = lines
        .iter()
        .map(|l| regex_lite::Regex::new(l))
        .collect::<Result<Vec<_>, _>>()
        .context(format!("sysctl allowlist {ALLOWLIST}"))?;
    for s in sysctls {
        if !patterns.iter().any(|p| p.is_match(&s.key)) {
            // reference text
            return Err(invalid!(
                "sysctl: Sysctl {} is not allowed. Only the following sysctls are allowed: {lines:?}",
                s.key
            ));
        }
    }
    Ok(())
}

/// The MAC in the reference's order, the last one set winning: `mac`,
/// CNI_ARGS `MAC`, `runtimeConfig.mac`, `args.cni.mac` (which, given
/// empty, clears the others).
fn chosen_mac(
    conf: &PluginConf,
    own: &TuningFields,
    overrides: &ArgsOverrides,
    cni_args: &str,
) -> Result<Option<[u8; 6]>, CniError> {
    let env = rcni_spec::args::CniArgs::parse_known(cni_args, &["MAC"])?;
    let mut chosen = (own.mac.clone(), "mac");
    if let Some(m) = env.get("MAC").filter(|m| !m.is_empty()) {
        chosen = (m.to_string(), "CNI_ARGS MAC");
    }
    if let Some(m) = conf
        .runtime("mac")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    {
        chosen = (m.to_string(), "runtimeConfig.mac");
    }
    if let Some(m) = &overrides.mac {
        chosen = (m.clone(), "args.cni.mac");
    }
    let (mac, field) = chosen;
    (!mac.is_empty())
        .then(|| crate::mac::parse_mac(&mac, field))
        .transpose()
}

/// The validated settings of an ADD or CHECK.
fn settings(conf: &PluginConf, own: &TuningFields, args: &CmdArgs) -> Result<Settings, CniError> {
    refuse_duplicate_keys(&args.stdin)?;
    let overrides: ArgsOverrides = match conf.args.as_ref().and_then(|a| gojson::get_in(a, "cni")) {
        Some(cni) => gojson::from_value(cni)
            .map_err(|e| e.within("args.cni"))
            .cni()?,
        None => ArgsOverrides::default(),
    };
    if !own.data_dir.is_empty() && !Path::new(&own.data_dir).is_absolute() {
        return Err(invalid!(
            "dataDir: {:?} is not an absolute path",
            own.data_dir
        ));
    }
    let mtu = overrides.mtu.unwrap_or(own.mtu);
    Ok(Settings {
        sysctls: sysctls(own, &overrides, &args.ifname)?,
        mac: chosen_mac(conf, own, &overrides, &args.args)?,
        promisc: overrides.promisc.unwrap_or(own.promisc),
        mtu: (mtu != 0).then_some(mtu),
        allmulti: overrides.allmulti.or(own.allmulti),
        txqlen: overrides.txqlen.or(own.txqlen),
    })
}

fn require_prev_result(conf: &PluginConf) -> Result<CniResult, CniError> {
    // reference text
    conf.prev_result()?
        .ok_or_else(|| invalid!("prevResult: Required prevResult missing"))
}

/// Sets the sysctls inside `ns` and returns the values they had; on a
/// failure, those already set are put back.
fn write_sysctls(ns: &NetNs, sysctls: &[Sysctl]) -> Result<Vec<(String, String)>, CniError> {
    ns.run(|| {
        let mut before = Vec::new();
        for s in sysctls {
            let old = match sysctl::get(&s.path) {
                Err(e) if e.is_not_found() => Err(invalid!(
                    "sysctl: {:?}: no such sysctl in the container",
                    s.key
                )),
                other => other.context(format!("sysctl: read {}", s.key)),
            };
            let step = old.and_then(|old| {
                sysctl::set(&s.path, &s.value)
                    .context(format!("sysctl: set {}", s.key))
                    .map(|()| old)
            });
            match step {
                Ok(old) => before.push((s.path.clone(), old)),
                Err(e) => {
                    restore_sysctls(&before);
                    return Err(e);
                }
            }
        }
        Ok(before)
    })
    .context("enter the container netns")?
}

/// Best effort, inside the netns: puts sysctl values back.
fn restore_sysctls(before: &[(String, String)]) {
    for (path, old) in before.iter().rev() {
        let _ = sysctl::set(path, old);
    }
}

/// The link's current values of what `s` changes.
fn backup_of(link: &Link, s: &Settings) -> Backup {
    Backup {
        mac: s.mac.map(|_| link.mac_string()).unwrap_or_default(),
        promisc: s.promisc.then_some(link.promisc),
        mtu: s.mtu.map(|_| link.mtu).unwrap_or_default(),
        allmulti: s.allmulti.map(|_| link.allmulti),
        txqlen: s.txqlen.map(|_| link.txqlen),
    }
}

fn write_backup(path: &Path, backup: &Backup) -> Result<(), CniError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .context(format!(
                "failed to create backup directory {}",
                dir.display()
            ))?;
    }
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    backup
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut text, formatter,
        ))
        .context_code(ErrorCode::INTERNAL, "failed to marshal the backup")?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        // Not through a link planted under the name, and no wait for a
        // reader of a FIFO.
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .and_then(|mut f| f.write_all(&text))
        .context(format!("failed to save file {}", path.display()))
}

/// The backup at `path`: `Ok(None)` when there is none. Opened
/// non-blocking and read only if a small regular file, so that whatever
/// is planted under the name cannot hang a DEL.
fn read_backup(path: &Path) -> Result<Option<Backup>, CniError> {
    let opened = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    let file = match opened {
        Ok(fd) => std::fs::File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => {
            return Err(std::io::Error::from(e))
                .context(format!("failed to open file {}", path.display()))
        }
    };
    let meta = file
        .metadata()
        .context(format!("failed to open file {}", path.display()))?;
    if !meta.is_file() || meta.len() > MAX_BACKUP_FILE {
        return Err(fail!("{} is not a tuning backup file", path.display()));
    }
    let mut text = Vec::new();
    file.take(MAX_BACKUP_FILE)
        .read_to_end(&mut text)
        .context(format!("failed to read file {}", path.display()))?;
    let parsed = serde_json::from_slice::<Value>(&text)
        .map_err(|e| e.to_string())
        .and_then(|v| gojson::from_value::<Backup>(&v).map_err(|e| e.to_string()));
    match parsed {
        Ok(b) => Ok(Some(b)),
        Err(e) => {
            // As the reference: nothing to restore from it.
            eprintln!("tuning: DEL: {}: {e}; not restored", path.display());
            Ok(Some(Backup::default()))
        }
    }
}

fn remove_backup(path: &Path) -> Result<(), CniError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).context(format!("failed to remove file {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Puts the saved values back on `link`: every value is tried, failures
/// are reported together.
fn restore_link(nl: &mut Handle, link: &Link, backup: &Backup) -> Result<(), CniError> {
    let mut failures: Vec<String> = Vec::new();
    let mut record = |outcome: Result<(), CniError>, what: &str| {
        if let Err(e) = outcome {
            failures.push(format!("failed to restore {what}: {}", e.msg));
        }
    };
    if backup.mtu != 0 {
        record(nl.set_mtu(link.index, backup.mtu).cni(), "MTU");
    }
    if !backup.mac.is_empty() {
        let set = rcni_net::parse_mac(&backup.mac)
            .cni()
            .and_then(|mac| nl.set_mac(link.index, mac).cni());
        record(set, "MAC address");
    }
    if let Some(on) = backup.promisc {
        record(nl.set_promisc(link.index, on).cni(), "promiscuous mode");
    }
    if let Some(on) = backup.allmulti {
        record(
            nl.set_allmulticast(link.index, on).cni(),
            "all-multicast mode",
        );
    }
    if let Some(qlen) = backup.txqlen {
        record(
            nl.set_txqlen(link.index, qlen).cni(),
            "transmit queue length",
        );
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(fail!("{}", failures.join("; ")))
    }
}

/// Applies the link settings, in the reference's order.
fn set_link(nl: &mut Handle, link: &Link, s: &Settings, ifname: &str) -> Result<(), CniError> {
    if let Some(mac) = s.mac {
        nl.set_mac(link.index, mac)
            .context(format!("mac: failed to set the MAC of {ifname:?}"))?;
    }
    if s.promisc {
        nl.set_promisc(link.index, true)
            .context(format!("promisc: failed to set {ifname:?} promiscuous"))?;
    }
    if let Some(mtu) = s.mtu {
        nl.set_mtu(link.index, mtu)
            .context(format!("mtu: failed to set the MTU of {ifname:?}"))?;
    }
    if let Some(on) = s.allmulti {
        nl.set_allmulticast(link.index, on).context(format!(
            "allmulti: failed to set all-multicast mode of {ifname:?}"
        ))?;
    }
    if let Some(qlen) = s.txqlen {
        nl.set_txqlen(link.index, qlen).context(format!(
            "txQLen: failed to set the transmit queue length of {ifname:?}"
        ))?;
    }
    Ok(())
}

/// tuning's keys, as `rcni help tuning` prints them.
pub const SCHEMA: Schema = Schema {
    about: "sets sysctls and link attributes of the container interface, restored on DEL (chained)",
    keys: &[
        Key {
            name: "sysctl",
            ty: "{string: string}",
            default: "",
            meaning: "sysctls under net. set in the container (`IFNAME` stands for the interface; /etc/cni/tuning/allowlist.conf limits them)",
        },
        Key {
            name: "mac",
            ty: "string",
            default: "",
            meaning: "the interface's MAC address",
        },
        Key {
            name: "promisc",
            ty: "bool",
            default: "false",
            meaning: "promiscuous mode",
        },
        Key {
            name: "mtu",
            ty: "uint32",
            default: "0 (unchanged)",
            meaning: "the interface's MTU",
        },
        Key {
            name: "txQLen",
            ty: "uint32",
            default: "unchanged",
            meaning: "the transmit queue length",
        },
        Key {
            name: "allmulti",
            ty: "bool",
            default: "unchanged",
            meaning: "receive all multicast",
        },
        Key {
            name: "dataDir",
            ty: "string",
            default: DEFAULT_DATA_DIR,
            meaning: "where the values before ADD are kept for DEL to restore",
        },
    ],
    capabilities: &["mac"],
    example: r#"{"cniVersion": "1.0.0", "name": "tuned", "plugins": [
  {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.32.0.0/24"}},
  {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}, "mtu": 1400, "promisc": true}]}"#,
    check: |conf| {
        let call = crate::offline::add_call(conf);
        let (conf, own) = load(&call)?;
        settings(&conf, &own, &call).map(drop)
    },
};

impl Plugin for Tuning {
    fn name(&self) -> &str {
        "tuning"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, own) = load(args)?;
        let s = settings(&conf, &own, args)?;
        check_allowlist(&s.sysctls)?;
        let mut result = require_prev_result(&conf)?;
        let ns = require_netns(args)?;
        let before = write_sysctls(&ns, &s.sysctls)?;
        let sysctls_undo = Undo::new(|| {
            let _ = ns.run(|| restore_sysctls(&before));
        });
        if s.changes_link() {
            let mut nl = handle_in(&ns)?;
            let link = nl
                .find_link(&args.ifname)
                .context(format!("failed to get {:?}", args.ifname))?;
            let backup = backup_of(&link, &s);
            let path = backup_path(&own, args);
            write_backup(&path, &backup)?;
            let link_undo = Undo::new(|| {
                if let Ok(mut nl) = handle_in(&ns) {
                    let _ = restore_link(&mut nl, &link, &backup);
                }
                let _ = remove_backup(&path);
            });
            set_link(&mut nl, &link, &s, &args.ifname)?;
            link_undo.keep();
        }
        sysctls_undo.keep();
        if let Some(mac) = s.mac {
            for iface in result.interfaces.iter_mut() {
                if iface.name == args.ifname {
                    iface.mac = format_mac(&mac);
                }
            }
        }
        result.cni_version = conf.cni_version.clone();
        Ok(result)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (_, own) = load(args)?;
        let path = backup_path(&own, args);
        let Some(backup) = read_backup(&path)? else {
            return Ok(());
        };
        // With the netns or the link gone there is nothing to restore.
        if let Some(ns) = open_netns(&args.netns)? {
            let mut nl = handle_in(&ns)?;
            if let Some(link) = nl
                .link_by_name(&args.ifname)
                .context("look up the container link")?
            {
                // The file stays for a retry when restoring fails.
                restore_link(&mut nl, &link, &backup)?;
            }
        }
        remove_backup(&path)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, own) = load(args)?;
        let s = settings(&conf, &own, args)?;
        require_prev_result(&conf)?;
        let ns = require_netns(args)?;
        let current = ns
            .run(|| {
                s.sysctls
                    .iter()
                    .map(|s| sysctl::get(&s.path).context(format!("sysctl: read {}", s.key)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .context("enter the container netns")??;
        for (want, now) in s.sysctls.iter().zip(&current) {
            if want.value != *now {
                // reference text
                return Err(fail!(
                    "Error: Tuning configured value of /proc/sys{} is {}, current value is {now}",
                    want.path,
                    want.value
                ));
            }
        }
        let mut nl = handle_in(&ns)?;
        let link = nl
            .link_by_name(&args.ifname)
            .context("look up the container link")?
            // reference text
            .ok_or_else(|| fail!("Cannot find container link {}", args.ifname))?;
        let ifname = &args.ifname;
        if let Some(mac) = s.mac {
            if link.mac6() != Some(mac) {
                return Err(fail!(
                    "Error: Tuning configured Ethernet of {ifname} is {}, current value is {}",
                    format_mac(&mac),
                    link.mac_string()
                ));
            }
        }
        if s.promisc != link.promisc {
            return Err(fail!(
                "Error: Tuning link {ifname} configured promisc is {}, current value is {}",
                s.promisc,
                link.promisc
            ));
        }
        if let Some(mtu) = s.mtu.filter(|m| *m != link.mtu) {
            return Err(fail!(
                "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
                link.mtu
            ));
        }
        if let Some(on) = s.allmulti.filter(|on| *on != link.allmulti) {
            return Err(fail!(
                "Error: Tuning configured all-multicast mode of {ifname} is {on}, current value is {}",
                link.allmulti
            ));
        }
        if let Some(qlen) = s.txqlen.filter(|q| *q != link.txqlen) {
            return Err(fail!(
                "Error: Tuning configured Transmit Queue Length of {ifname} is {qlen}, current value is {}",
                link.txqlen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<TuningFields>(), Vec::<String>::new());
    }

    #[test]
    fn sysctl_keys_stay_under_net() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.IFNAME.arp_filter", "eth0.100").unwrap(),
            "/net/ipv4/conf/eth0.100/arp_filter"
        );
        assert_eq!(
            sysctl_path("net/ipv6/conf/IFNAME/disable_ipv6", "eth0").unwrap(),
            "/net/ipv6/conf/eth0/disable_ipv6"
        );
        for bad in [
            "kernel.hostname",
            "net",
            "net/../kernel/hostname",
            "net/ipv4/../../kernel/x",
            "/proc/sys/net/x",
            "net..x",
            "",
            "netx.y",
        ] {
            let e = sysctl_path(bad, "eth0").unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.starts_with("sysctl: "), "{}", e.msg);
        }
    }

    #[test]
    fn duplicate_keys_in_the_text_are_refused() {
        let dup = br#"{"name":"n","sysctl":{"net.a":"1","net.b":"2","net.a":"3"}}"#;
        let e = refuse_duplicate_keys(dup).unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.contains("duplicated sysctl keys"), "{}", e.msg);
        let other_case = br#"{"name":"n","Sysctl":{"net.a":"1","net.a":"1"}}"#;
        assert!(refuse_duplicate_keys(other_case).is_err());
        let fine = br#"{"name":"n","sysctl":{"net.a":"1"},"x":{"net.a":1,"net.a":2}}"#;
        assert!(refuse_duplicate_keys(fine).is_ok());
        assert!(refuse_duplicate_keys(br#"{"sysctl":null}"#).is_ok());
    }

    #[test]
    fn backup_file_as_the_reference_writes_it() {
        let backup = Backup {
            mac: "02:00:00:00:00:01".into(),
            promisc: Some(false),
            mtu: 1500,
            allmulti: None,
            txqlen: Some(1000),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/c_eth0.json");
        write_backup(&path, &backup).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\n \"mac\": \"02:00:00:00:00:01\",\n \"promisc\": false,\n \"mtu\": 1500,\n \"txQLen\": 1000\n}"
        );
        assert_eq!(read_backup(&path).unwrap(), Some(backup));
        assert_eq!(read_backup(&dir.path().join("none")).unwrap(), None);
        write_backup(&path, &Backup::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
    }
}
