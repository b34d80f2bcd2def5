//! `rcni check-config FILE|DIR`: network configs checked offline, the way
//! a runtime loads them (libcni's rules, rcni's runtime library) and the
//! way each plugin decodes its keys, plus what the reference accepts in
//! silence: keys no plugin reads (with the likely intended key), capability
//! names no plugin declares, versions a plugin does not support, and
//! subnets that overlap across the networks of one directory.
//!
//! Output is one line per finding, `PATH: [network N: plugins[i] (TYPE):]
//! error|warning: ...`, then a count; exit 0 without errors, 1 with, 2
//! when nothing could be read.

use ipnet::IpNet;
use rcni_runtime::conf::{conf_files, NetworkList};
use rcni_spec::config::PluginConf;
use rcni_spec::gojson;
use rcni_spec::schema::Schema;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The keys of a config list itself.
const LIST_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "plugins",
];

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Error,
    Warning,
}

struct Finding {
    level: Level,
    place: String,
    message: String,
}

#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, level: Level, place: impl Into<String>, message: impl Into<String>) {
        self.findings.push(Finding {
            level,
            place: place.into(),
            message: message.into(),
        });
    }
}

pub fn run(args: &[String]) -> u8 {
    let [target] = args else {
        eprintln!("usage: rcni check-config FILE|DIR");
        return 2;
    };
    let target = Path::new(target);
    let files = if target.is_dir() {
        let found = conf_files(target, &["conflist"]).and_then(|mut lists| {
            lists.extend(conf_files(target, &["conf", "json"])?);
            Ok(lists)
        });
        match found {
            Ok(files) => files,
            Err(e) => {
                eprintln!("rcni check-config: {e}");
                return 2;
            }
        }
    } else {
        vec![target.to_path_buf()]
    };
    if files.is_empty() {
        eprintln!(
            "rcni check-config: no network configs in {}",
            target.display()
        );
        return 2;
    }
    let mut report = Report::default();
    let mut networks = Vec::new();
    for file in &files {
        if let Some(list) = check_file(file, &mut report) {
            networks.push((file.clone(), list));
        }
    }
    check_overlaps(&networks, &mut report);

    report.findings.sort_by(|a, b| a.place.cmp(&b.place));
    for f in &report.findings {
        let level = match f.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        println!("{}: {level}: {}", f.place, f.message);
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .count();
    println!(
        "{} file(s): {errors} error(s), {} warning(s)",
        files.len(),
        report.findings.len() - errors
    );
    if errors == 0 {
        0
    } else {
        1
    }
}

/// Loads one file as a runtime would, then checks each of its plugins.
fn check_file(path: &Path, report: &mut Report) -> Option<NetworkList> {
    let place = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            report.add(Level::Error, place, format!("cannot read: {e}"));
            return None;
        }
    };
    let is_list = path.extension().is_some_and(|e| e == "conflist");
    let loaded = if is_list {
        NetworkList::from_file(path).map_err(|e| e.to_string())
    } else {
        NetworkList::from_single(&bytes).map_err(|e| e.msg)
    };
    let list = match loaded {
        Ok(list) => list,
        Err(e) => {
            report.add(Level::Error, place, e);
            return None;
        }
    };
    if is_list {
        if let Ok(Value::Object(raw)) = serde_json::from_slice::<Value>(&bytes) {
            for key in raw.keys() {
                if !LIST_KEYS.iter().any(|k| gojson::fold_eq(k, key)) {
                    unknown_key(report, &place, key, closest(key, LIST_KEYS));
                }
            }
        }
    }
    for (i, plugin) in list.plugins.iter().enumerate() {
        let at = format!(
            "{place}: network {}: plugins[{i}] ({})",
            list.name, plugin.plugin_type
        );
        check_plugin(&list, &plugin.raw, &plugin.plugin_type, &at, report);
    }
    Some(list)
}

fn check_plugin(
    list: &NetworkList,
    raw: &Map<String, Value>,
    plugin_type: &str,
    at: &str,
    report: &mut Report,
) {
    let Some(plugin) = rcni_plugins::lookup(plugin_type) else {
        report.add(
            Level::Warning,
            at,
            "not one of rcni's plugins: its keys are not checked",
        );
        return;
    };
    if !plugin
        .supported_versions()
        .contains(&list.cni_version.as_str())
    {
        report.add(
            Level::Error,
            at,
            format!(
                "cniVersion {:?} is not supported (supported: {})",
                list.cni_version,
                plugin.supported_versions().join(", ")
            ),
        );
    }
    let mut member = raw.clone();
    gojson::set(&mut member, "name", Value::String(list.name.clone()));
    gojson::set(
        &mut member,
        "cniVersion",
        Value::String(list.cni_version.clone()),
    );
    let conf = match PluginConf::from_value(Value::Object(member)) {
        Ok(conf) => conf,
        Err(e) => {
            report.add(Level::Error, at, e.msg);
            return;
        }
    };
    let Some(schema) = plugin.schema() else {
        return;
    };
    for key in raw.keys() {
        if !schema.knows(key) {
            unknown_key(report, at, key, schema.closest(key));
        }
    }
    if let Err(e) = (schema.check)(&conf) {
        report.add(Level::Error, at, e.msg);
    }
    // The IPAM plugin reads some capabilities itself (host-local: ips).
    let ipam_schema = conf
        .ipam
        .as_ref()
        .and_then(|i| rcni_plugins::lookup(&i.ipam_type))
        .and_then(|p| p.schema());
    check_capabilities(raw, schema, ipam_schema, at, report);
    if let Some(ipam) = &conf.ipam {
        check_ipam(&conf, &ipam.ipam_type, &ipam.raw, at, report);
    }
}

/// The `ipam` section, against the IPAM plugin it names.
fn check_ipam(
    conf: &PluginConf,
    ipam_type: &str,
    raw: &Map<String, Value>,
    at: &str,
    report: &mut Report,
) {
    if ipam_type.is_empty() {
        return;
    }
    let at = format!("{at}: ipam ({ipam_type})");
    let Some(schema) = rcni_plugins::lookup(ipam_type).and_then(|p| p.schema()) else {
        report.add(
            Level::Warning,
            at,
            "not one of rcni's IPAM plugins: its keys are not checked",
        );
        return;
    };
    for key in raw.keys() {
        let known = gojson::fold_eq(key, "type")
            || schema.keys.iter().any(|k| gojson::fold_eq(k.name, key));
        if !known {
            let names: Vec<&str> = schema.keys.iter().map(|k| k.name).collect();
            unknown_key(report, &at, key, closest(key, &names));
        }
    }
    if let Err(e) = (schema.check)(conf) {
        report.add(Level::Error, at, e.msg);
    }
}

/// Declared capabilities: a name no rcni plugin reads is most likely a
/// typo (the runtime then never passes that value); one that only other
/// plugins read is ignored by this one.
fn check_capabilities(
    raw: &Map<String, Value>,
    schema: &Schema,
    ipam: Option<&Schema>,
    at: &str,
    report: &mut Report,
) {
    let Some(Value::Object(caps)) = gojson::get(raw, "capabilities") else {
        return;
    };
    let all: Vec<&str> = rcni_plugins::all()
        .iter()
        .filter_map(|p| p.schema())
        .flat_map(|s| s.capabilities.iter().copied())
        .collect();
    for (name, on) in caps {
        let read = schema
            .capabilities
            .iter()
            .chain(ipam.map_or(&[][..], |i| i.capabilities))
            .any(|c| c == name);
        if on != &Value::Bool(true) || read {
            continue;
        }
        if all.contains(&name.as_str()) {
            report.add(
                Level::Warning,
                at,
                format!("capabilities.{name}: this plugin does not read it"),
            );
        } else {
            let hint = closest(name, &all)
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            report.add(
                Level::Error,
                at,
                format!("capabilities.{name}: no plugin declares this capability{hint}"),
            );
        }
    }
}

fn unknown_key(report: &mut Report, at: &str, key: &str, near: Option<&str>) {
    match near {
        Some(near) => report.add(
            Level::Error,
            at,
            format!("{key}: unknown key, likely a typo of {near}"),
        ),
        None => report.add(Level::Warning, at, format!("{key}: unknown key (ignored)")),
    }
}

fn closest<'a>(key: &str, names: &[&'a str]) -> Option<&'a str> {
    rcni_spec::schema::nearest(key, names.iter().copied())
}

/// The subnets a network hands out with host-local (flat `subnet` and
/// every `ranges` entry).
fn subnets(list: &NetworkList) -> Vec<IpNet> {
    let mut out = Vec::new();
    for plugin in &list.plugins {
        let Some(Value::Object(ipam)) = gojson::get(&plugin.raw, "ipam") else {
            continue;
        };
        let mut texts: Vec<&Value> = gojson::get(ipam, "subnet").into_iter().collect();
        if let Some(Value::Array(sets)) = gojson::get(ipam, "ranges") {
            for set in sets {
                for range in set.as_array().into_iter().flatten() {
                    texts.extend(gojson::get_in(range, "subnet"));
                }
            }
        }
        out.extend(
            texts
                .into_iter()
                .filter_map(Value::as_str)
                .filter_map(|s| s.parse::<IpNet>().ok())
                .map(|n| n.trunc()),
        );
    }
    out
}

fn check_overlaps(networks: &[(PathBuf, NetworkList)], report: &mut Report) {
    for (i, (path_a, a)) in networks.iter().enumerate() {
        for (path_b, b) in &networks[i + 1..] {
            if a.name == b.name {
                report.add(
                    Level::Warning,
                    path_b.display().to_string(),
                    format!(
                        "network {} is also defined in {}; a runtime loads only one of them",
                        b.name,
                        path_a.display()
                    ),
                );
                continue;
            }
            for x in subnets(a) {
                for y in subnets(b) {
                    if x.contains(&y.network()) || y.contains(&x.network()) {
                        report.add(
                            Level::Error,
                            path_b.display().to_string(),
                            format!(
                                "network {}: subnet {y} overlaps {x} of network {} ({})",
                                b.name,
                                a.name,
                                path_a.display()
                            ),
                        );
                    }
                }
            }
        }
    }
}
