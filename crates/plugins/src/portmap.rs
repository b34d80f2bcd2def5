//! `portmap` (chained): forwards host ports to the container's address,
//! from `runtimeConfig.portMappings`, on iptables or nftables, with the
//! reference's rule layout (see `rcni_netfilter::hostport`). Only traffic
//! addressed to the node itself is translated.

use crate::attachments::valid_attachments;
use crate::error::Context;
use crate::undo::Undo;
use ipnet::IpNet;
use rcni_net::{Handle, Ipv4Conf};
use rcni_netfilter::hostport::{self as portmap, Mapping, PortMap};
use rcni_netfilter::script::{ChainName, Conditions};
use rcni_netfilter::Backend;
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, ErrorCode};
use serde::Deserialize;
use std::net::IpAddr;

pub struct Portmap;

const DEFAULT_MARK_BIT: i64 = 13;

#[derive(Deserialize, Default)]
struct PortmapConf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    snat: Option<bool>,
    #[serde(rename = "conditionsV4", default)]
    conditions_v4: Option<Vec<String>>,
    #[serde(rename = "conditionsV6", default)]
    conditions_v6: Option<Vec<String>>,
    #[serde(rename = "masqAll", default)]
    masq_all: bool,
    #[serde(rename = "markMasqBit", default)]
    mark_masq_bit: Option<i64>,
    #[serde(rename = "externalSetMarkChain", default)]
    external_set_mark_chain: Option<String>,
}

#[derive(Deserialize)]
struct RawMapping {
    #[serde(rename = "hostPort", default)]
    host_port: i64,
    #[serde(rename = "containerPort", default)]
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(rename = "hostIP", default)]
    host_ip: String,
}

struct Config {
    conf: PluginConf,
    own: PortmapConf,
    backend: Backend,
    mappings: Vec<Mapping>,
    mark_bit: u8,
    conditions_v4: Conditions,
    conditions_v6: Conditions,
    set_mark_chain: Option<ChainName>,
    /// Why a value for the scripts was refused. ADD and CHECK fail with it;
    /// DEL goes on without those values, which no rule can hold since ADD
    /// refused them, so a runtime's DEL of a failed ADD succeeds.
    script_error: Option<CniError>,
    containers: Vec<IpNet>,
    prev: Option<CniResult>,
}

/// `-…`/`!…` first token: iptables conditions; anything else: nftables.
fn conditions_backend(c: &Option<Vec<String>>) -> Option<&'static str> {
    let first = c.as_ref()?.first()?;
    match first.chars().next()? {
        '-' | '!' => Some("iptables"),
        _ => Some("nftables"),
    }
}

fn parse_mappings(conf: &PluginConf) -> Result<Vec<Mapping>, CniError> {
    let raw: Vec<RawMapping> = match conf.runtime("portMappings") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(v) => rcni_spec::gojson::from_value(v)
            .map_err(|e| e.within("runtimeConfig.portMappings"))
            .cni()?,
    };
    raw.into_iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |f: &str| format!("runtimeConfig.portMappings[{i}].{f}");
            let port = |v: i64, f: &str, what: &str| {
                u16::try_from(v)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid!("{}: Invalid {what} port number: {v}", field(f)))
            };
            let protocol = m.protocol.to_ascii_lowercase();
            if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
                return Err(invalid!(
                    "{}: unknown protocol {:?} (expected tcp, udp or sctp)",
                    field("protocol"),
                    m.protocol
                ));
            }
            let host_ip = match m.host_ip.as_str() {
                "" => None,
                s => Some(
                    s.parse::<IpAddr>()
                        .ok()
                        .ok_or_else(|| invalid!("{}: invalid IP {s:?}", field("hostIP")))?,
                ),
            };
            Ok(Mapping {
                host_port: port(m.host_port, "hostPort", "host")?,
                container_port: port(m.container_port, "containerPort", "container")?,
                protocol,
                host_ip,
            })
        })
        .collect()
}

/// The first IPv4 and IPv6 address of the container interface `ifname`.
fn container_addresses(prev: &CniResult, ifname: &str) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for ip in &prev.ips {
        if out
            .iter()
            .any(|o| o.addr().is_ipv4() == ip.address.addr().is_ipv4())
        {
            continue;
        }
        if let Some(i) = ip.interface.and_then(|i| prev.interfaces.get(i)) {
            if i.name != ifname || i.sandbox.is_empty() {
                continue;
            }
        }
        out.push(ip.address);
    }
    out
}

fn load(args: &CmdArgs) -> Result<Config, CniError> {
    let conf = args.conf()?;
    let own: PortmapConf = conf.plugin_fields()?;
    if own.mark_masq_bit.is_some() && own.external_set_mark_chain.is_some() {
        return Err(CniError::invalid_config(
            "Cannot specify externalSetMarkChain and markMasqBit",
        ));
    }
    let bit = own.mark_masq_bit.unwrap_or(DEFAULT_MARK_BIT);
    if !(0..=31).contains(&bit) {
        return Err(invalid!("markMasqBit must be between 0 and 31, got {bit}"));
    }
    let backend = Backend::choose(own.backend.as_deref(), "backend").cni()?;
    let mut foreign = Vec::new();
    if own.external_set_mark_chain.is_some() && backend == Backend::Nftables {
        foreign.push("externalSetMarkChain");
    }
    for (c, key) in [
        (&own.conditions_v4, "conditionsV4"),
        (&own.conditions_v6, "conditionsV6"),
    ] {
        if let Some(b) = conditions_backend(c) {
            if b != backend.name() {
                foreign.push(key);
            }
        }
    }
    if !foreign.is_empty() {
        let other = if backend == Backend::Iptables {
            "nftables"
        } else {
            "iptables"
        };
        return Err(invalid!(
            "{} backend was requested but configuration contains {other}-specific options {foreign:?}",
            backend.name()
        ));
    }
    // Validated here, once, for the script they go into: the types cannot
    // be built otherwise.
    let conditions = |c: &Option<Vec<String>>, field: &str| {
        let tokens = c.as_deref().unwrap_or_default();
        match backend {
            Backend::Iptables => Conditions::iptables(field, tokens),
            Backend::Nftables => Conditions::nftables(field, tokens),
        }
    };
    let script_values = conditions(&own.conditions_v4, "conditionsV4").and_then(|v4| {
        let v6 = conditions(&own.conditions_v6, "conditionsV6")?;
        let chain = own
            .external_set_mark_chain
            .as_deref()
            .map(|c| ChainName::new("externalSetMarkChain", c))
            .transpose()?;
        Ok((v4, v6, chain))
    });
    let (conditions_v4, conditions_v6, set_mark_chain, script_error) = match script_values {
        Ok((v4, v6, chain)) => (v4, v6, chain, None),
        Err(e) => (
            Conditions::none(),
            Conditions::none(),
            None,
            Some(CniError::invalid_config(e.to_string())),
        ),
    };
    let mappings = parse_mappings(&conf)?;
    let prev = conf.prev_result()?;
    let containers = prev
        .as_ref()
        .map(|p| container_addresses(p, &args.ifname))
        .unwrap_or_default();
    Ok(Config {
        conf,
        own,
        backend,
        mappings,
        mark_bit: bit as u8,
        conditions_v4,
        conditions_v6,
        set_mark_chain,
        script_error,
        containers,
        prev,
    })
}

impl Config {
    /// The config, or the error of a value refused for the scripts.
    fn strict(mut self) -> Result<Config, CniError> {
        match self.script_error.take() {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }

    fn portmap<'a>(&'a self, args: &'a CmdArgs) -> PortMap<'a> {
        PortMap {
            network: &self.conf.name,
            container_id: &args.container_id,
            mappings: &self.mappings,
            snat: self.own.snat.unwrap_or(true),
            mark_bit: self.mark_bit,
            external_set_mark_chain: self.set_mark_chain.as_ref(),
            masq_all: self.own.masq_all,
            conditions_v4: &self.conditions_v4,
            conditions_v6: &self.conditions_v6,
        }
    }
}

/// Lets hairpin traffic from 127.0.0.1 be routed to the container: sets
/// `route_localnet` on the host interface that routes to it.
fn enable_route_localnet(container: IpAddr) -> Result<(), CniError> {
    let mut nl = Handle::new().context("open netlink")?;
    let Ok(route) = nl.route_get(container) else {
        return Ok(());
    };
    let Some(oif) = route.oif else { return Ok(()) };
    match nl.set_ipv4_conf(oif, &[(Ipv4Conf::RouteLocalnet, 1)]) {
        // The interface went away since the lookup.
        Err(e) if e.is_not_found() => Ok(()),
        done => done.context("unable to enable route_localnet"),
    }
}

/// Deletes the conntrack entries of the mapped UDP ports, so a flow that
/// existed before the mapping changed (to the host, or to an old
/// container) does not keep swallowing the traffic. Failures are logged:
/// the mapping itself is in place.
fn flush_udp_flows(cfg: &Config) {
    let families: Vec<bool> = if cfg.containers.is_empty() {
        vec![false, true]
    } else {
        cfg.containers.iter().map(|c| c.addr().is_ipv6()).collect()
    };
    for m in cfg.mappings.iter().filter(|m| m.protocol == "udp") {
        for v6 in &families {
            if let Err(e) = rcni_net::conntrack::delete_udp_flows_to_port(*v6, m.host_port) {
                eprintln!(
                    "portmap: failed to delete stale UDP conntrack entries for port {}: {e}",
                    m.host_port
                );
            }
        }
    }
}

/// portmap's keys, as `rcni help portmap` prints them.
pub const SCHEMA: Schema = Schema {
    about: "forwards host ports to the container (chained after a main plugin)",
    keys: &[
        Key { name: "backend", ty: "string", default: "iptables, or nftables when only nft works", meaning: "firewall backend: iptables or nftables" },
        Key { name: "snat", ty: "bool", default: "true", meaning: "masquerade hairpin and localhost traffic to the container" },
        Key { name: "conditionsV4", ty: "[string]", default: "", meaning: "extra match tokens on the IPv4 DNAT rules (iptables tokens, or one nft expression)" },
        Key { name: "conditionsV6", ty: "[string]", default: "", meaning: "extra match tokens on the IPv6 DNAT rules" },
        Key { name: "masqAll", ty: "bool", default: "false", meaning: "masquerade every source, not only the container's own" },
        Key { name: "markMasqBit", ty: "int (0-31)", default: "13", meaning: "the packet mark bit that asks for masquerading (iptables)" },
        Key { name: "externalSetMarkChain", ty: "string", default: "", meaning: "an existing iptables chain that sets the masquerade mark instead (excludes markMasqBit)" },
    ],
    capabilities: &["portMappings"],
    example: r#"{"cniVersion": "1.0.0", "name": "podnet", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}},
  {"type": "portmap", "capabilities": {"portMappings": true}, "backend": "nftables"}]}"#,
    check: |conf| conf.plugin_fields::<PortmapConf>().map(drop),
};

impl Plugin for Portmap {
    fn name(&self) -> &str {
        "portmap"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let cfg = load(args)?.strict()?;
        let prev = cfg
            .prev
            .clone()
            .ok_or_else(|| CniError::invalid_config("must be called as chained plugin"))?;
        if cfg.mappings.is_empty() {
            return Ok(prev);
        }
        cfg.backend.ensure_available().invalid_context("backend")?;
        let pm = cfg.portmap(args);
        let rules = Undo::new(|| {
            let _ = portmap::del(&cfg.conf.name, &args.container_id);
        });
        portmap::add(cfg.backend, &pm, &cfg.containers)
            .context("unable to set up port mappings")?;
        match cfg.containers.iter().find(|c| c.addr().is_ipv4()) {
            Some(v4) if pm.snat => enable_route_localnet(v4.addr())?,
            _ => {}
        }
        rules.keep();
        flush_udp_flows(&cfg);
        Ok(prev)
    }

    /// Removes the container's mappings, found by name: this works even
    /// when the runtime leaves the mappings out on DEL, and needs nothing
    /// ADD would refuse (mappings, mark bits, backend keys).
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        if let Err(e) = load(args) {
            eprintln!("portmap: DEL: {}; removing the rules by name", e.msg);
        }
        let conf = args.conf()?;
        portmap::del(&conf.name, &args.container_id).context("could not tear down port mappings")
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?.strict()?;
        if cfg.prev.is_none() {
            return Err(CniError::invalid_config("Required prevResult missing"));
        }
        if cfg.mappings.is_empty() {
            return Ok(());
        }
        // Rules not as ADD left them are not a config error, whatever the
        // firewall layer calls them.
        portmap::check(cfg.backend, &cfg.portmap(args), &cfg.containers)
            .context_code(ErrorCode::INTERNAL, "port mappings")
    }

    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let valid: Vec<String> = valid_attachments(&conf)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        portmap::gc(&conf.name, &valid).context("port mapping GC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<PortmapConf>(), Vec::<String>::new());
    }

    fn args(conf: &str) -> CmdArgs {
        CmdArgs {
            stdin: conf.as_bytes().to_vec(),
            ifname: "eth0".into(),
            ..CmdArgs::default()
        }
    }

    #[test]
    fn bad_keys_name_the_field() {
        let cases = [
            (
                r#"{"name":"n","backend":"iptables","runtimeConfig":{"portMappings":[{"hostPort":70000,"containerPort":80,"protocol":"tcp"}]}}"#,
                "hostPort",
            ),
            (
                r#"{"name":"n","backend":"iptables","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":0,"protocol":"tcp"}]}}"#,
                "containerPort",
            ),
            (
                r#"{"name":"n","backend":"iptables","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}}"#,
                "protocol",
            ),
            (
                r#"{"name":"n","backend":"iptables","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"tcp","hostIP":"x"}]}}"#,
                "hostIP",
            ),
            (
                r#"{"name":"n","backend":"iptables","markMasqBit":32}"#,
                "markMasqBit",
            ),
            (
                r#"{"name":"n","backend":"iptables","markMasqBit":3,"externalSetMarkChain":"X"}"#,
                "externalSetMarkChain",
            ),
            (
                r#"{"name":"n","backend":"nftables","conditionsV4":["-s","1.2.3.4"]}"#,
                "conditionsV4",
            ),
            (r#"{"name":"n","backend":"ebtables"}"#, "backend"),
            (
                r#"{"name":"n","backend":"iptables","conditionsV4":["-s","10.0.0.0/8\nCOMMIT"]}"#,
                "conditionsV4[1]",
            ),
            (
                r#"{"name":"n","backend":"nftables","conditionsV6":["ip6 saddr ::1 ; add table inet x"]}"#,
                "conditionsV6[0]",
            ),
            (
                r#"{"name":"n","backend":"iptables","externalSetMarkChain":"X\n-A INPUT -j ACCEPT"}"#,
                "externalSetMarkChain",
            ),
        ];
        for (conf, needle) in cases {
            let e = load(&args(conf)).and_then(Config::strict).err().unwrap();
            assert_eq!(e.code, 7, "{conf}");
            assert!(e.msg.contains(needle), "{conf}: {}", e.msg);
        }
    }

    #[test]
    fn picks_the_container_addresses() {
        let conf = r#"{"name":"n","backend":"iptables","prevResult":{"cniVersion":"1.0.0",
            "interfaces":[{"name":"br"},{"name":"veth1"},{"name":"eth0","sandbox":"/ns"}],
            "ips":[{"interface":0,"address":"10.0.0.1/24"},{"interface":2,"address":"10.0.0.5/24"},
                   {"interface":2,"address":"10.0.0.6/24"},{"interface":2,"address":"fd00::5/64"}]}}"#;
        let cfg = load(&args(conf)).unwrap();
        let c: Vec<String> = cfg.containers.iter().map(|n| n.to_string()).collect();
        assert_eq!(c, ["10.0.0.5/24", "fd00::5/64"]);
    }
}
