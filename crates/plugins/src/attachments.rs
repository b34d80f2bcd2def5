//! What the runtime says about attachments: the addresses a DEL's
//! prevResult gave one, and the attachments a GC keeps.

use crate::error::Context;
use ipnet::IpNet;
use rcni_spec::config::PluginConf;
use rcni_spec::CniError;

/// `cni.dev/valid-attachments` of a GC call, as (container ID, ifname).
pub fn valid_attachments(conf: &PluginConf) -> Result<Vec<(String, String)>, CniError> {
    #[derive(serde::Deserialize)]
    struct Attachment {
        #[serde(rename = "containerID")]
        container_id: String,
        #[serde(default)]
        ifname: String,
    }
    const FIELD: &str = "cni.dev/valid-attachments";
    let list: Vec<Attachment> = match rcni_spec::gojson::get(&conf.raw, FIELD) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => rcni_spec::gojson::from_value(v)
            .map_err(|e| e.within(FIELD))
            .cni()?,
    };
    Ok(list
        .into_iter()
        .map(|a| (a.container_id, a.ifname))
        .collect())
}

/// The addresses of a DEL's prevResult that belong to `ifname` (those
/// without an interface index included); none when there is no
/// prevResult or it does not parse. A hint that saves reading the
/// firewall or the whole IPAM store.
pub fn prev_addresses(conf: &PluginConf, ifname: &str) -> Vec<IpNet> {
    let Ok(Some(prev)) = conf.prev_result() else {
        return Vec::new();
    };
    prev.ips
        .iter()
        .filter(|ip| {
            ip.interface
                .is_none_or(|i| prev.interfaces.get(i).is_some_and(|f| f.name == ifname))
        })
        .map(|ip| ip.address)
        .collect()
}
