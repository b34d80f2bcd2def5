//! `host-local` IPAM: allocates addresses from configured ranges and keeps
//! them in files under `<dataDir>/<network>/`, exactly as the reference
//! does, so both can share one data dir. Beyond the reference: GC releases
//! the addresses of attachments the runtime no longer knows, and STATUS
//! reports an exhausted or unwritable store.

use crate::attachments::prev_addresses;
use crate::cidr::parse_ip_maybe_cidr;
use crate::error::Context;
use rcni_ipam::{Allocator, DiskStore, Range};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::args::CniArgs;
use rcni_spec::config::{decode, PluginConf};
use rcni_spec::gojson;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{version, CniError, CniResult, ErrorCode, IpConfig, Route};
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

pub struct HostLocal;

/// Where the reference keeps its stores.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

#[derive(Deserialize, Default)]
struct IpamSection {
    /// The legacy flat form: one range written at the top of `ipam`.
    #[serde(default)]
    subnet: Option<Value>,
    #[serde(rename = "rangeStart", default)]
    range_start: Option<Value>,
    #[serde(rename = "rangeEnd", default)]
    range_end: Option<Value>,
    #[serde(default)]
    gateway: Option<Value>,
    #[serde(default)]
    ranges: Option<Value>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(rename = "dataDir", default)]
    data_dir: String,
    #[serde(rename = "resolvConf", default)]
    resolv_conf: String,
}

/// The IPAM config with every source merged and every range validated.
pub(crate) struct Config {
    network: String,
    range_sets: Vec<Vec<Range>>,
    routes: Vec<Route>,
    data_dir: PathBuf,
    resolv_conf: String,
    requested: Vec<IpAddr>,
}

/// One range as written, every field a string, so a bad value can be
/// reported with its field's name.
#[derive(Deserialize)]
struct RawRange {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(rename = "rangeStart", default)]
    range_start: Option<String>,
    #[serde(rename = "rangeEnd", default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

fn parse_range(value: &Value, place: &str) -> Result<Range, CniError> {
    let Value::Object(map) = value else {
        return Err(invalid!("{place}: a range must be an object"));
    };
    let raw: RawRange = gojson::from_map(map).map_err(|e| e.within(place)).cni()?;
    let subnet_text = raw
        .subnet
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid!("{place}.subnet is missing"))?;
    let subnet = crate::cidr::parse_cidr_keep_host(&subnet_text)
        .ok_or_else(|| invalid!("{place}.subnet: invalid CIDR {subnet_text:?}"))?;
    let ip = |field: &str, v: Option<String>| -> Result<Option<IpAddr>, CniError> {
        match v.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => match s.parse() {
                Ok(ip) => Ok(Some(ip)),
                Err(_) => Err(invalid!("{place}.{field}: invalid IP {s:?}")),
            },
        }
    };
    Ok(Range {
        subnet,
        range_start: ip("rangeStart", raw.range_start)?,
        range_end: ip("rangeEnd", raw.range_end)?,
        gateway: ip("gateway", raw.gateway)?,
    })
}

/// Decodes one range set from JSON, naming its place on failure.
fn parse_range_set(value: &Value, place: &str) -> Result<Vec<Range>, CniError> {
    let Value::Array(items) = value else {
        return Err(invalid!("{place}: a range set must be a list of ranges"));
    };
    items
        .iter()
        .enumerate()
        .map(|(j, item)| parse_range(item, &format!("{place}[{j}]")))
        .collect()
}

fn parse_range_sets(value: Option<&Value>, place: &str) -> Result<Vec<Vec<Range>>, CniError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(sets)) => sets
            .iter()
            .enumerate()
            .map(|(i, set)| parse_range_set(set, &format!("{place}[{i}]")))
            .collect(),
        Some(_) => Err(invalid!("{place} must be a list of range sets")),
    }
}

/// Requested IPs, merged from CNI_ARGS `IP`, `args.cni.ips` and
/// `runtimeConfig.ips` (the reference merges rather than overrides).
fn requested_ips(conf: &PluginConf, cni_args: &str) -> Result<Vec<IpAddr>, CniError> {
    let mut out = Vec::new();
    let env = CniArgs::parse_known(cni_args, &["IP"])?;
    if let Some(ip) = env.get("IP").filter(|s| !s.is_empty()) {
        out.push(parse_ip_maybe_cidr(ip).ok_or_else(|| {
            CniError::invalid_env(format!(
                "ARGS: error parsing value of pair \"IP={ip}\": invalid IP"
            ))
        })?);
    }
    for (value, field) in [
        (conf.cni_arg("ips"), "args.cni.ips"),
        (conf.runtime("ips"), "runtimeConfig.ips"),
    ] {
        let list: Vec<String> = match value {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => gojson::from_value(v).map_err(|e| e.within(field)).cni()?,
        };
        for s in list {
            out.push(parse_ip_maybe_cidr(&s).ok_or_else(|| invalid!("{field}: invalid IP {s:?}"))?);
        }
    }
    Ok(out)
}

/// At most this many range sets (one address each) per attachment: real
/// networks use one or two, and every set costs a store walk per ADD.
const MAX_RANGE_SETS: usize = 64;
/// At most this many ranges over all sets: the overlap checks compare
/// every pair.
const MAX_RANGES: usize = 1024;

/// Bounds the work a config can ask for, so that no ADD runs unbounded.
fn check_range_limits(range_sets: &[Vec<Range>]) -> Result<(), CniError> {
    let ranges: usize = range_sets.iter().map(Vec::len).sum();
    if range_sets.len() > MAX_RANGE_SETS || ranges > MAX_RANGES {
        return Err(invalid!(
            "ipam.ranges: {} range sets with {ranges} ranges in all (with runtimeConfig.ipRanges); \
             at most {MAX_RANGE_SETS} range sets and {MAX_RANGES} ranges are supported",
            range_sets.len()
        ));
    }
    Ok(())
}

pub(crate) fn load(conf: &PluginConf, cni_args: &str) -> Result<Config, CniError> {
    conf.validate_name()?;
    let ipam = conf
        .ipam
        .as_ref()
        .ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    let section: IpamSection = decode(&ipam.raw).context("ipam")?;
    let requested = requested_ips(conf, cni_args)?;

    let mut range_sets = parse_range_sets(section.ranges.as_ref(), "ipam.ranges")?;
    if let Some(subnet) = section.subnet.as_ref().filter(|s| !s.is_null()) {
        let mut flat = serde_json::Map::new();
        flat.insert("subnet".into(), subnet.clone());
        for (key, value) in [
            ("rangeStart", &section.range_start),
            ("rangeEnd", &section.range_end),
            ("gateway", &section.gateway),
        ] {
            if let Some(v) = value {
                flat.insert(key.into(), v.clone());
            }
        }
        range_sets.insert(0, vec![parse_range(&Value::Object(flat), "ipam")?]);
    }
    let from_runtime = parse_range_sets(conf.runtime("ipRanges"), "runtimeConfig.ipRanges")?;
    if !from_runtime.is_empty() {
        range_sets.splice(0..0, from_runtime);
    }
    if range_sets.is_empty() {
        return Err(CniError::invalid_config("no IP ranges specified"));
    }
    check_range_limits(&range_sets)?;
    for (i, set) in range_sets.iter_mut().enumerate() {
        rcni_ipam::canonicalize_set(set).invalid_context(format!("invalid range set {i}"))?;
    }
    let v4 = range_sets
        .iter()
        .filter(|s| s[0].subnet.addr().is_ipv4())
        .count();
    let v6 = range_sets.len() - v4;
    if (v4 > 1 || v6 > 1) && !version::at_least(&conf.cni_version, "0.3.0")? {
        return Err(invalid!(
            "CNI version {} does not support more than 1 address per family",
            conf.cni_version
        ));
    }
    for i in 0..range_sets.len() {
        for j in i + 1..range_sets.len() {
            if rcni_ipam::sets_overlap(&range_sets[i], &range_sets[j]) {
                return Err(invalid!("range set {i} overlaps with {j}"));
            }
        }
    }
    Ok(Config {
        network: conf.name.clone(),
        range_sets,
        routes: section.routes,
        data_dir: data_dir(&section.data_dir),
        resolv_conf: section.resolv_conf,
        requested,
    })
}

/// The store's parent directory: `ipam.dataDir`, or the reference's
/// default when it is empty.
fn data_dir(configured: &str) -> PathBuf {
    PathBuf::from(if configured.is_empty() {
        DEFAULT_DATA_DIR
    } else {
        configured
    })
}

fn open_store(cfg: &Config) -> Result<DiskStore, CniError> {
    DiskStore::open(&cfg.data_dir, &cfg.network).cni()
}

/// The addresses the store of `conf`'s network holds, when its IPAM is
/// host-local and the store can be read. A main plugin's GC, run after
/// IPAM's, drops the firewall rules of the addresses host-local released,
/// so that both agree on which attachments (container ID and interface)
/// are gone.
pub(crate) fn held_addresses(conf: &PluginConf) -> Option<Vec<IpAddr>> {
    if conf.ipam.as_ref()?.ipam_type != "host-local" {
        return None;
    }
    let cfg = load(conf, "").ok()?;
    let store = open_store(&cfg).ok()?;
    let _lock = store.lock().ok()?;
    Some(
        store
            .allocations()
            .ok()?
            .into_iter()
            .map(|a| a.ip)
            .collect(),
    )
}

/// Allocates one address per range set, honouring requested IPs; on any
/// failure releases what this call took.
fn allocate(
    cfg: &Config,
    store: &DiskStore,
    id: &str,
    ifname: &str,
) -> Result<Vec<IpConfig>, CniError> {
    // A requested address outside every range set is refused before any
    // address is taken: holding one meanwhile would make concurrent ADDs
    // find the pool exhausted.
    let unmatched: Vec<String> = cfg
        .requested
        .iter()
        .filter(|ip| !cfg.range_sets.iter().flatten().any(|r| r.contains(**ip)))
        .map(IpAddr::to_string)
        .collect();
    if !unmatched.is_empty() {
        return Err(invalid!(
            "failed to allocate all requested IPs: {}",
            unmatched.join(" ")
        ));
    }
    let mut pending = cfg.requested.clone();
    let mut ips = Vec::new();
    let release_taken = |count: usize| {
        for idx in 0..count {
            let _ = Allocator::new(&cfg.range_sets[idx], store, idx).release(id, ifname);
        }
    };
    for (idx, set) in cfg.range_sets.iter().enumerate() {
        let requested = pending
            .iter()
            .position(|ip| set.iter().any(|r| r.contains(*ip)))
            .map(|at| pending.remove(at));
        match Allocator::new(set, store, idx).allocate(id, ifname, requested) {
            Ok(a) => ips.push(IpConfig {
                interface: None,
                address: a.address,
                gateway: a.gateway,
            }),
            Err(e) => {
                release_taken(idx);
                // reference text
                return Err(e).context(format!("failed to allocate for range {idx}"));
            }
        }
    }
    if !pending.is_empty() {
        release_taken(cfg.range_sets.len());
        let list: Vec<String> = pending.iter().map(IpAddr::to_string).collect();
        return Err(invalid!(
            "failed to allocate all requested IPs: {}",
            list.join(" ")
        ));
    }
    Ok(ips)
}

/// host-local's keys: those of the `ipam` object, as `rcni help
/// host-local` prints them.
pub const SCHEMA: Schema = Schema {
    about: "IPAM (keys of the ipam object): allocates addresses from ranges, leases kept in files",
    keys: &[
        Key {
            name: "ranges",
            ty: "[[{subnet, rangeStart, rangeEnd, gateway}]]",
            default: "",
            meaning: "range sets: one address from each set, in order",
        },
        Key {
            name: "subnet",
            ty: "string (CIDR)",
            default: "",
            meaning: "a single range, the legacy flat form (before ranges)",
        },
        Key {
            name: "rangeStart",
            ty: "string (IP)",
            default: "the subnet's first host",
            meaning: "first address of the flat range",
        },
        Key {
            name: "rangeEnd",
            ty: "string (IP)",
            default: "the subnet's last host",
            meaning: "last address of the flat range",
        },
        Key {
            name: "gateway",
            ty: "string (IP)",
            default: "the subnet's first host",
            meaning: "gateway of the flat range",
        },
        crate::ipam::ROUTES_KEY,
        Key {
            name: "dataDir",
            ty: "string",
            default: DEFAULT_DATA_DIR,
            meaning: "where the leases are kept, a directory per network",
        },
        Key {
            name: "resolvConf",
            ty: "string",
            default: "",
            meaning: "a resolv.conf file whose DNS settings are reported",
        },
    ],
    capabilities: &["ips", "ipRanges"],
    example: r#"{"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", "bridge": "cni0", "isGateway": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd22::/64"}]],
           "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}"#,
    check: |conf| load(conf, "").map(drop),
};

impl Plugin for HostLocal {
    fn name(&self) -> &str {
        "host-local"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let dns = if cfg.resolv_conf.is_empty() {
            Default::default()
        } else {
            let r = rcni_ipam::parse_resolv_conf(std::path::Path::new(&cfg.resolv_conf)).cni()?;
            rcni_spec::Dns {
                nameservers: r.nameservers,
                domain: r.domain,
                search: r.search,
                options: r.options,
            }
        };
        let store = open_store(&cfg)?;
        let ips = allocate(&cfg, &store, &args.container_id, &args.ifname)?;
        Ok(CniResult {
            cni_version: conf.cni_version.clone(),
            interfaces: Vec::new(),
            ips,
            routes: cfg.routes.clone(),
            dns,
        })
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        // DEL needs only where the store is: ranges and requested IPs
        // that ADD would refuse must not keep an address allocated.
        let conf = args.conf()?;
        conf.validate_name()?;
        let configured = conf
            .ipam
            .as_ref()
            .and_then(|ipam| gojson::get(&ipam.raw, "dataDir"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let store = DiskStore::open(&data_dir(configured), &conf.name).cni()?;
        let _lock = store.lock().cni()?;
        // The addresses of prevResult, when all of them are this
        // attachment's, are freed without walking the whole store.
        let known: Vec<IpAddr> = prev_addresses(&conf, &args.ifname)
            .iter()
            .map(|n| n.addr())
            .collect();
        if store
            .release_known(&args.container_id, &args.ifname, &known)
            .cni()?
            .is_none()
        {
            store
                .release_by_id(&args.container_id, &args.ifname)
                .cni()?;
        }
        Ok(())
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let store = open_store(&cfg)?;
        if store
            .get_by_id(&args.container_id, &args.ifname)
            .cni()?
            .is_empty()
        {
            return Err(fail!(
                "host-local: Failed to find address added by container {}",
                args.container_id
            ));
        }
        Ok(())
    }

    /// Releases every address whose attachment is not in
    /// `cni.dev/valid-attachments`.
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let valid = crate::attachments::valid_attachments(&conf)?;
        let store = open_store(&cfg)?;
        let _lock = store.lock().cni()?;
        for alloc in store.allocations().cni()? {
            let keep = valid.iter().any(|(id, ifname)| {
                *id == alloc.container_id && (alloc.ifname.is_empty() || *ifname == alloc.ifname)
            });
            if !keep {
                store.release(alloc.ip).cni()?;
            }
        }
        Ok(())
    }

    /// Code 50 when the store cannot be written or a range set has no free
    /// address left, so the runtime stops scheduling pods here.
    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        const UNAVAILABLE: u32 = ErrorCode::PLUGIN_NOT_AVAILABLE;
        let store = open_store(&cfg).context_code(UNAVAILABLE, "host-local store unusable")?;
        store
            .check_writable()
            .context_code(UNAVAILABLE, "host-local store is not writable")?;
        for (idx, set) in cfg.range_sets.iter().enumerate() {
            if !Allocator::new(set, &store, idx).has_free().cni()? {
                return Err(CniError::new(
                    UNAVAILABLE,
                    format!("range set {idx} is exhausted"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<IpamSection>(), Vec::<String>::new());
    }
}
