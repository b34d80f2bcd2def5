//! What rcni remembers of the attachments whose rules name no attachment:
//! iptables' accept rules (the reference's layout, found by address) and
//! firewalld's zone sources. One small JSON file per attachment, in a
//! directory of the network namespace's own under /run/rcni (so it lives
//! as long as the rules do), named by the attachment's hash: DEL without
//! prevResult finds the addresses there, and GC finds a network's
//! attachments.

use super::Attachment;
use crate::rule_names::nft_attachment_prefix;
use serde_json::{json, Value};
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;

/// The longest record read (a record is a few hundred bytes).
const MAX_RECORD: u64 = 64 * 1024;

/// One attachment's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub container_id: String,
    pub ifname: String,
    pub ips: Vec<IpAddr>,
    /// The firewalld zone holding the addresses, if firewalld does.
    pub zone: Option<String>,
}

fn file(a: &Attachment<'_>) -> Option<PathBuf> {
    let dir = crate::netns_state::firewall_records_dir().ok()?;
    Some(dir.join(nft_attachment_prefix(a.network, a.ifname, a.container_id)))
}

/// Remembers an attachment (written whole under a temporary name, then
/// renamed). Failing to is logged, not fatal: the rules are in place, and
/// a DEL with prevResult needs no record.
pub(super) fn write(a: &Attachment<'_>, ips: &[IpAddr], zone: Option<&str>) {
    let Some(path) = file(a) else { return };
    let record = json!({
        "network": a.network, "containerID": a.container_id, "ifname": a.ifname,
        "ips": ips.iter().map(ToString::to_string).collect::<Vec<_>>(), "zone": zone,
    });
    let tmp = path.with_extension("tmp");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, record.to_string()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        eprintln!(
            "firewall: cannot record the attachment in {}: {e}",
            path.display()
        );
    }
}

fn read_file(path: &std::path::Path) -> Option<(String, Record)> {
    // Only plain files, and only so much of them.
    if !std::fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_RECORD)
        .read_to_string(&mut text)
        .ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let ips = v
        .get("ips")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    Some((
        s("network")?,
        Record {
            container_id: s("containerID")?,
            ifname: s("ifname")?,
            ips,
            zone: s("zone"),
        },
    ))
}

/// The record of an attachment, if there is one.
pub(super) fn read(a: &Attachment<'_>) -> Option<Record> {
    let (network, record) = read_file(&file(a)?)?;
    (network == a.network).then_some(record)
}

pub(super) fn remove(a: &Attachment<'_>) {
    if let Some(path) = file(a) {
        let _ = std::fs::remove_file(path);
    }
}

/// Every record of the namespace, with its network.
pub(super) fn all() -> Vec<(String, Record)> {
    let Ok(dir) = crate::netns_state::firewall_records_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_none())
        .filter_map(|e| read_file(&e.path()))
        .collect()
}
