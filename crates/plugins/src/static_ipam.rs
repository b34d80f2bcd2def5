//! `static` IPAM: hands out the addresses written in the config (or given
//! by the runtime), with routes and DNS. It keeps no state.

use crate::cidr::parse_cidr_keep_host;
use crate::error::Context;
use ipnet::IpNet;
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::args::CniArgs;
use rcni_spec::config::{decode, PluginConf};
use rcni_spec::gojson;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::version;
use rcni_spec::{CniError, CniResult, Dns, IpConfig, Route};
use serde::Deserialize;
use std::net::IpAddr;

pub struct Static;

#[derive(Deserialize, Default)]
struct StaticIpam {
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    addresses: Vec<AddressEntry>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Deserialize)]
struct AddressEntry {
    address: String,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

struct Address {
    address: IpNet,
    gateway: Option<IpAddr>,
}

/// The `ipam` section with every override applied, in the reference's
/// order: CNI_ARGS `IP`/`GATEWAY` append, then `args.cni.ips` replaces,
/// then `runtimeConfig.ips` replaces.
struct Config {
    addresses: Vec<Address>,
    routes: Vec<Route>,
    dns: Dns,
}

fn string_list(value: Option<&serde_json::Value>, field: &str) -> Result<Vec<String>, CniError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(v) => gojson::from_value(v).map_err(|e| e.within(field)).cni(),
    }
}

fn parse_override(list: &[String], field: &str) -> Result<Vec<Address>, CniError> {
    list.iter()
        .map(|s| {
            parse_cidr_keep_host(s)
                .map(|address| Address {
                    address,
                    gateway: None,
                })
                .ok_or_else(|| {
                    invalid!("an entry in the '{field}' field is NOT in CIDR notation, got: '{s}'")
                })
        })
        .collect()
}

fn load(conf: &PluginConf, cni_args: &str) -> Result<Config, CniError> {
    let ipam = conf
        .ipam
        .as_ref()
        .ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    let parsed: StaticIpam = decode(&ipam.raw).context("invalid ipam config")?;
    let mut addresses = parsed
        .addresses
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let address = parse_cidr_keep_host(&a.address).ok_or_else(|| {
                invalid!(
                    "the 'address' field is expected to be in CIDR notation, got: '{}' (ipam.addresses[{i}])",
                    a.address
                )
            })?;
            Ok(Address { address, gateway: a.gateway })
        })
        .collect::<Result<Vec<_>, CniError>>()?;

    let env = CniArgs::parse_known(cni_args, &["IP", "GATEWAY"])?;
    if let Some(ips) = env.get("IP").filter(|s| !s.is_empty()) {
        for item in ips.split(',').map(str::trim) {
            let address = parse_cidr_keep_host(item).ok_or_else(|| {
                invalid!("the 'ip' field is expected to be in CIDR notation, got: '{item}'")
            })?;
            addresses.push(Address {
                address,
                gateway: None,
            });
        }
    }
    if let Some(gws) = env.get("GATEWAY").filter(|s| !s.is_empty()) {
        for item in gws.split(',') {
            let Ok(gw) = item.trim().parse::<IpAddr>() else {
                return Err(invalid!("invalid gateway address: {item}"));
            };
            for a in addresses.iter_mut().filter(|a| a.address.contains(&gw)) {
                a.gateway = Some(gw);
            }
        }
    }
    let from_args = string_list(conf.cni_arg("ips"), "args.cni.ips")?;
    if !from_args.is_empty() {
        addresses = parse_override(&from_args, "ips")?;
    }
    let from_runtime = string_list(conf.runtime("ips"), "runtimeConfig.ips")?;
    if !from_runtime.is_empty() {
        addresses = parse_override(&from_runtime, "ips")?;
    }

    let v4 = addresses
        .iter()
        .filter(|a| a.address.addr().is_ipv4())
        .count();
    let v6 = addresses.len() - v4;
    if (v4 > 1 || v6 > 1) && !version::at_least(&conf.cni_version, "0.3.0")? {
        return Err(invalid!(
            "CNI version {} does not support more than 1 address per family",
            conf.cni_version
        ));
    }
    Ok(Config {
        addresses,
        routes: parsed.routes,
        dns: parsed.dns,
    })
}

/// static's keys: those of the `ipam` object, as `rcni help static`
/// prints them.
pub const SCHEMA: Schema = Schema {
    about: "IPAM (keys of the ipam object): hands out the addresses written in the config",
    keys: &[
        Key {
            name: "addresses",
            ty: "[{address, gateway}]",
            default: "",
            meaning: "the addresses (CIDR) with their optional gateways",
        },
        crate::ipam::ROUTES_KEY,
        Key {
            name: "dns",
            ty: "{nameservers, domain, search, options}",
            default: "",
            meaning: "DNS settings to report",
        },
    ],
    capabilities: &["ips"],
    example: r#"{"cniVersion": "1.0.0", "name": "fixed", "type": "macvlan", "master": "eth0",
  "ipam": {"type": "static", "addresses": [{"address": "10.40.0.7/24", "gateway": "10.40.0.1"}],
           "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.40.0.1"]}}}"#,
    check: |conf| load(conf, "").map(drop),
};

impl Plugin for Static {
    fn name(&self) -> &str {
        "static"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        Ok(CniResult {
            cni_version: conf.cni_version.clone(),
            interfaces: Vec::new(),
            ips: cfg
                .addresses
                .iter()
                .map(|a| IpConfig {
                    interface: None,
                    address: a.address,
                    gateway: a.gateway,
                })
                .collect(),
            routes: cfg.routes,
            dns: cfg.dns,
        })
    }

    fn del(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }

    /// Every configured address must be in prevResult (with its gateway,
    /// when one is configured).
    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let prev = conf
            .prev_result()?
            .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))?;
        for want in &cfg.addresses {
            let found = prev
                .ips
                .iter()
                .find(|ip| ip.address.addr() == want.address.addr());
            match found {
                Some(ip) if want.gateway.is_none() || ip.gateway == want.gateway => {}
                _ => {
                    return Err(fail!(
                        "static: Failed to match addr {} on interface {}",
                        want.address.addr(),
                        args.ifname
                    ))
                }
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
        assert_eq!(SCHEMA.drift::<StaticIpam>(), Vec::<String>::new());
    }

    fn add(stdin: &str, cni_args: &str) -> Result<CniResult, CniError> {
        let args = CmdArgs {
            stdin: stdin.as_bytes().to_vec(),
            args: cni_args.into(),
            ..CmdArgs::default()
        };
        Static.add(&args)
    }

    const BASE: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"static","ipam":{"type":"static",
        "addresses":[{"address":"10.10.0.5/24","gateway":"10.10.0.1"},{"address":"3ffe:ffff:0:1::5/64"}],
        "routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["8.8.8.8"]}}"#;

    #[test]
    fn returns_configured_addresses() {
        let r = add(&format!("{BASE}}}"), "").unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[0].address.to_string(), "10.10.0.5/24");
        assert_eq!(r.ips[0].gateway, Some("10.10.0.1".parse().unwrap()));
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.dns.nameservers, ["8.8.8.8"]);
    }

    #[test]
    fn overrides_in_reference_order() {
        let r = add(&format!("{BASE}}}"), "IP=10.20.0.9/16;GATEWAY=10.20.0.1").unwrap();
        assert_eq!(r.ips.len(), 3);
        assert_eq!(r.ips[2].gateway, Some("10.20.0.1".parse().unwrap()));
        let with_args = format!(r#"{BASE},"args":{{"cni":{{"ips":["10.30.0.2/24"]}}}}}}"#);
        assert_eq!(add(&with_args, "").unwrap().ips.len(), 1);
        let with_rt = format!(
            r#"{BASE},"args":{{"cni":{{"ips":["10.30.0.2/24"]}}}},"runtimeConfig":{{"ips":["10.40.0.2/24","10.40.0.3/24"]}}}}"#
        );
        let r = add(&with_rt, "").unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.40.0.2/24");
        assert_eq!(r.ips.len(), 2);
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            add(r#"{"cniVersion":"1.0.0","name":"n"}"#, "")
                .unwrap_err()
                .code,
            7
        );
        let bad =
            r#"{"cniVersion":"1.0.0","name":"n","ipam":{"addresses":[{"address":"10.0.0.1"}]}}"#;
        let e = add(bad, "").unwrap_err();
        assert!(e.msg.contains("address"), "{}", e.msg);
        assert_eq!(add(&format!("{BASE}}}"), "IP=nope").unwrap_err().code, 7);
        assert_eq!(add(&format!("{BASE}}}"), "FOO=bar").unwrap_err().code, 4);
        let two = r#"{"cniVersion":"0.2.0","name":"n","ipam":{"addresses":[{"address":"10.0.0.1/24"},{"address":"10.0.0.2/24"}]}}"#;
        assert_eq!(add(two, "").unwrap_err().code, 7);
    }
}
