//! `dhcp` IPAM: asks rcni's dhcp daemon (`dhcp daemon`) for a lease from
//! the LAN's DHCP server; the daemon keeps it renewed. The plugin reads
//! and checks the config, sends one request over the daemon's socket
//! (rcni's protocol, docs/dhcp.md) and prints the answer.

use crate::error::Context;
use rcni_dhcp::codec::opt;
use rcni_dhcp::protocol::{self, CallError, IpFamily, Method, Request};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::{decode, PluginConf};
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, ErrorCode};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

pub struct Dhcp;

/// Longer than the daemon's default bound of an acquisition (3m28s).
const DAEMON_WAIT: Duration = Duration::from_secs(300);

#[derive(Deserialize, Default)]
struct DhcpIpam {
    #[serde(default, rename = "daemonSocketPath")]
    daemon_socket_path: String,
    #[serde(default)]
    request: Vec<RequestOption>,
    #[serde(default)]
    provide: Vec<ProvideOption>,
    #[serde(default)]
    priority: u32,
    #[serde(default, rename = "ipFamilies")]
    ip_families: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RequestOption {
    #[serde(default)]
    option: String,
    #[serde(default, rename = "skipDefault")]
    skip_default: bool,
}

#[derive(Deserialize)]
struct ProvideOption {
    #[serde(default)]
    option: String,
    #[serde(default)]
    value: String,
    #[serde(default, rename = "fromArg")]
    from_arg: String,
}

/// The options a client always asks for, unless `skipDefault` (the
/// reference's).
const DEFAULT_REQUEST: [u8; 2] = [opt::SUBNET_MASK, opt::ROUTER];

/// An option by name (the reference's names) or number.
fn option_code(name: &str, field: &str) -> Result<u8, CniError> {
    let code = match name {
        "subnet-mask" => opt::SUBNET_MASK,
        "routers" => opt::ROUTER,
        "host-name" => opt::HOST_NAME,
        "vendor-class-identifier" => opt::VENDOR_CLASS,
        "dhcp-client-identifier" => opt::CLIENT_ID,
        "user-class" => opt::USER_CLASS,
        number => number
            .parse()
            .map_err(|_| invalid!("{field}: can not parse option {name:?}"))?,
    };
    // Pad, the message type and end would break the message.
    if matches!(code, opt::PAD | opt::MESSAGE_TYPE | opt::END) {
        return Err(invalid!(
            "{field}: option {code} is set by the client itself"
        ));
    }
    Ok(code)
}

struct Config {
    socket: PathBuf,
    request: Vec<u8>,
    provide: Vec<(u8, String)>,
    priority: u32,
    families: Vec<IpFamily>,
}

/// `ipFamilies` (rcni's): a non-empty list of "ipv4" and "ipv6"; absent
/// means IPv4 only, as the reference.
fn families(names: Option<&[String]>) -> Result<Vec<IpFamily>, CniError> {
    let Some(names) = names else {
        return Ok(vec![IpFamily::Ipv4]);
    };
    if names.is_empty() {
        return Err(invalid!(
            "ipam.ipFamilies: empty; name \"ipv4\", \"ipv6\" or both"
        ));
    }
    let mut families = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let family = match name.as_str() {
            "ipv4" => IpFamily::Ipv4,
            "ipv6" => IpFamily::Ipv6,
            other => {
                return Err(invalid!(
                    "ipam.ipFamilies[{i}]: {other:?} is not \"ipv4\" or \"ipv6\""
                ))
            }
        };
        if !families.contains(&family) {
            families.push(family);
        }
    }
    Ok(families)
}

fn load(conf: &PluginConf, cni_args: &str) -> Result<Config, CniError> {
    let ipam = conf
        .ipam
        .as_ref()
        .ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    let parsed: DhcpIpam = decode(&ipam.raw)?;
    let mut request = Vec::new();
    let mut skip_default = false;
    for (i, r) in parsed.request.iter().enumerate() {
        skip_default |= r.skip_default;
        let code = option_code(&r.option, &format!("ipam.request[{i}].option"))?;
        if !request.contains(&code) {
            request.push(code);
        }
    }
    if !skip_default {
        for code in DEFAULT_REQUEST {
            if !request.contains(&code) {
                request.push(code);
            }
        }
    }
    // CNI_ARGS as the reference reads them here: `K=V` pairs split on ';'.
    let from_args = |key: &str| {
        cni_args
            .split(';')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    let mut provide: Vec<(u8, String)> = Vec::new();
    for (i, p) in parsed.provide.iter().enumerate() {
        let field = format!("ipam.provide[{i}]");
        let code = option_code(&p.option, &format!("{field}.option"))?;
        let value = match from_args(&p.from_arg).filter(|_| !p.from_arg.is_empty()) {
            Some(v) => v,
            None => p.value.clone(),
        };
        if value.len() > 255 {
            return Err(invalid!("{field}: value too long for option {code:?}"));
        }
        if !value.is_empty() {
            provide.retain(|(c, _)| *c != code);
            provide.push((code, value));
        }
    }
    let socket = match parsed.daemon_socket_path.as_str() {
        "" => protocol::DEFAULT_SOCKET.into(),
        path => path.into(),
    };
    Ok(Config {
        socket,
        request,
        provide,
        priority: parsed.priority,
        families: families(parsed.ip_families.as_deref())?,
    })
}

/// `daemonSocketPath` alone, or the default.
fn socket_only(conf: &PluginConf) -> PathBuf {
    let path = conf
        .ipam
        .as_ref()
        .and_then(|i| rcni_spec::gojson::get(&i.raw, "daemonSocketPath"))
        .and_then(serde_json::Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(protocol::DEFAULT_SOCKET);
    PathBuf::from(path)
}

/// dhcp's keys: those of the `ipam` object, as `rcni help dhcp` prints
/// them.
pub const SCHEMA: Schema = Schema {
    about: "IPAM (keys of the ipam object): a lease from the LAN's DHCP server, kept by rcni's dhcp daemon",
    keys: &[
        Key {
            name: "daemonSocketPath",
            ty: "string",
            default: "/run/cni/dhcp.sock",
            meaning: "the socket of the dhcp daemon (`dhcp daemon`)",
        },
        Key {
            name: "request",
            ty: "[{option, skipDefault}]",
            default: "",
            meaning: "options to ask the server for (name or number); skipDefault: leave out subnet-mask and routers",
        },
        Key {
            name: "provide",
            ty: "[{option, value, fromArg}]",
            default: "",
            meaning: "options to send, with a value or the CNI_ARGS value of fromArg (e.g. host-name from K8S_POD_NAME)",
        },
        Key {
            name: "priority",
            ty: "uint32",
            default: "0",
            meaning: "the metric of the routes in the result",
        },
        Key {
            name: "ipFamilies",
            ty: "[string]",
            default: "[\"ipv4\"]",
            meaning: "rcni's: the families to lease, \"ipv4\" (DHCPv4) and/or \"ipv6\" (DHCPv6, an IA_NA address as a /128: the on-link prefix and default route come from router advertisements)",
        },
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "lan", "type": "macvlan", "master": "eth0",
  "ipam": {"type": "dhcp", "request": [{"option": "121"}],
           "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}]}}"#,
    check: |conf| load(conf, "").map(drop),
};

/// The request for this call's attachment.
fn request(method: Method, conf: &PluginConf, args: &CmdArgs, cfg: &Config) -> Request {
    // The daemon runs elsewhere: it needs an absolute netns path.
    let netns = match std::path::Path::new(&args.netns) {
        p if args.netns.is_empty() || p.is_absolute() => args.netns.clone(),
        p => std::env::current_dir()
            .map(|d| d.join(p).to_string_lossy().into_owned())
            .unwrap_or_else(|_| args.netns.clone()),
    };
    Request {
        container_id: args.container_id.clone(),
        netns,
        ifname: args.ifname.clone(),
        network: conf.name.clone(),
        request: cfg.request.clone(),
        provide: cfg.provide.clone(),
        priority: cfg.priority,
        ip_families: cfg.families.clone(),
        ..Request::new(method)
    }
}

/// Sends `req`; the daemon's CNI error as it gave it.
fn call(cfg: &Config, req: &Request) -> Result<Option<serde_json::Value>, CniError> {
    let response = protocol::call(&cfg.socket, req, DAEMON_WAIT).map_err(|e| match e {
        CallError::Unreachable(_) if req.method == Method::Status => {
            CniError::new(ErrorCode::PLUGIN_NOT_AVAILABLE, e.to_string())
        }
        e => fail!("{e}"),
    })?;
    match response.error {
        Some(f) => Err(CniError::new(f.code, f.msg)),
        None => Ok(response.result),
    }
}

fn lease_of(value: Option<serde_json::Value>) -> Result<CniResult, CniError> {
    let value = value.ok_or_else(|| fail!("the dhcp daemon answered without a lease"))?;
    rcni_spec::result::parse(&value).context("the dhcp daemon's lease")
}

impl Plugin for Dhcp {
    fn name(&self) -> &str {
        "dhcp"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn about(&self) -> String {
        format!(
            "CNI dhcp plugin (rcni {}); run `dhcp daemon -h` for the daemon",
            env!("CARGO_PKG_VERSION")
        )
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let mut result = lease_of(call(&cfg, &request(Method::Allocate, &conf, args, &cfg))?)?;
        result.cni_version = conf.cni_version.clone();
        Ok(result)
    }

    /// Releases the lease; the daemon holds the netns, so this works after
    /// the runtime removed it. No lease is success.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        // DEL needs the socket only: a config whose other keys are refused
        // is still torn down.
        let cfg = load(&conf, &args.args).unwrap_or_else(|_| Config {
            socket: socket_only(&conf),
            request: Vec::new(),
            provide: Vec::new(),
            priority: 0,
            families: Vec::new(),
        });
        call(&cfg, &request(Method::Release, &conf, args, &cfg)).map(drop)
    }

    /// The daemon must hold a lease for the attachment, with an address
    /// that prevResult (when given) reports.
    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let lease = lease_of(call(&cfg, &request(Method::Check, &conf, args, &cfg))?)?;
        if let Some(prev) = conf.prev_result()? {
            for ip in &lease.ips {
                if !prev
                    .ips
                    .iter()
                    .any(|p| p.address.addr() == ip.address.addr())
                {
                    return Err(fail!(
                        "dhcp: the lease's address {} is not in prevResult",
                        ip.address
                    ));
                }
            }
        }
        Ok(())
    }

    /// Releases the network's leases of attachments the runtime no longer
    /// has.
    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        let mut req = request(Method::Gc, &conf, args, &cfg);
        req.valid_attachments = crate::attachments::valid_attachments(&conf)?;
        call(&cfg, &req).map(drop)
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let cfg = load(&conf, &args.args)?;
        call(&cfg, &request(Method::Status, &conf, args, &cfg)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<DhcpIpam>(), Vec::<String>::new());
    }

    fn cfg(ipam: &str, cni_args: &str) -> Result<Config, CniError> {
        let stdin = format!(r#"{{"cniVersion":"1.0.0","name":"n","ipam":{ipam}}}"#);
        load(&PluginConf::parse(stdin.as_bytes()).unwrap(), cni_args)
    }

    #[test]
    fn options_by_name_or_number_with_defaults() {
        let c = cfg(
            r#"{"type":"dhcp","request":[{"option":"121"},{"option":"routers"}]}"#,
            "",
        )
        .unwrap();
        assert_eq!(c.request, [121, 3, 1]);
        assert_eq!(c.socket, PathBuf::from("/run/cni/dhcp.sock"));
        let c = cfg(
            r#"{"type":"dhcp","request":[{"option":"6","skipDefault":true}]}"#,
            "",
        )
        .unwrap();
        assert_eq!(c.request, [6]);
        assert_eq!(c.families, [IpFamily::Ipv4]);
        let c = cfg(r#"{"type":"dhcp","ipFamilies":["ipv6","ipv4","ipv6"]}"#, "").unwrap();
        assert_eq!(c.families, [IpFamily::Ipv6, IpFamily::Ipv4]);
    }

    #[test]
    fn provide_from_value_or_cni_args() {
        let ipam = r#"{"type":"dhcp","provide":[{"option":"host-name","fromArg":"K8S_POD_NAME"},
            {"option":"60","value":"rcni"}]}"#;
        let c = cfg(ipam, "IgnoreUnknown=1;K8S_POD_NAME=web-1").unwrap();
        assert_eq!(c.provide, [(12, "web-1".into()), (60, "rcni".into())]);
        let c = cfg(ipam, "").unwrap();
        assert_eq!(c.provide, [(60, "rcni".into())]);
    }

    #[test]
    fn bad_config_names_the_field() {
        for (ipam, field) in [
            (
                r#"{"type":"dhcp","request":[{"option":"nope"}]}"#,
                "ipam.request[0].option",
            ),
            (
                r#"{"type":"dhcp","request":[{"option":"256"}]}"#,
                "ipam.request[0].option",
            ),
            (
                r#"{"type":"dhcp","provide":[{"option":"53","value":"x"}]}"#,
                "ipam.provide[0].option",
            ),
            (r#"{"type":"dhcp","priority":-1}"#, "priority"),
            (
                r#"{"type":"dhcp","daemonSocketPath":7}"#,
                "daemonSocketPath",
            ),
            (
                r#"{"type":"dhcp","ipFamilies":["ipv4","ipv5"]}"#,
                "ipam.ipFamilies[1]",
            ),
            (r#"{"type":"dhcp","ipFamilies":[]}"#, "ipam.ipFamilies"),
            (r#"{"type":"dhcp","ipFamilies":"ipv6"}"#, "ipFamilies"),
        ] {
            let e = cfg(ipam, "").err().unwrap();
            assert_eq!(e.code, 7, "{ipam}: {}", e.msg);
            assert!(e.msg.contains(field), "{ipam}: {}", e.msg);
        }
        let long = format!(
            r#"{{"type":"dhcp","provide":[{{"option":"12","value":"{}"}}]}}"#,
            "a".repeat(256)
        );
        assert_eq!(cfg(&long, "").err().unwrap().code, 7);
    }
}
