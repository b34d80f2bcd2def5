//! `firewall` (chained, spec ≥ 0.4.0): lets the container's addresses
//! through the host's forward path, after an admin chain the user owns,
//! and isolates bridges from each other (`ingressPolicy`), on iptables
//! (the reference's layout), nftables (rcni's table `inet cni_firewall`)
//! or firewalld (the addresses as sources of a zone, over D-Bus; the
//! isolation then on iptables, as in the reference). See
//! `rcni_netfilter::firewall`.

use crate::attachments::valid_attachments;
use crate::error::{Context, Teardown};
use crate::undo::Undo;
use rcni_netfilter::firewall::firewalld::{self, Zone, DEFAULT_ZONE};
use rcni_netfilter::firewall::{self, Attachment, Isolation, Setup, DEFAULT_ADMIN_CHAIN};
use rcni_netfilter::script::{ChainName, InterfaceName};
use rcni_netfilter::Backend;
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, ErrorCode};
use serde::Deserialize;
use std::net::IpAddr;

pub struct Firewall;

#[derive(Deserialize, Default)]
struct FirewallConf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(rename = "iptablesAdminChainName", default)]
    admin_chain: Option<String>,
    #[serde(rename = "firewalldZone", default)]
    zone: Option<String>,
    #[serde(rename = "ingressPolicy", default)]
    ingress_policy: Option<String>,
}

/// Where the accept rules go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Netfilter(Backend),
    Firewalld(Zone),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IngressPolicy {
    Open,
    SameBridge,
    Isolated,
}

struct Config {
    conf: PluginConf,
    target: Target,
    admin_chain: ChainName,
    policy: IngressPolicy,
    prev: Option<CniResult>,
    ips: Vec<IpAddr>,
}

fn target(own: &FirewallConf) -> Result<Target, CniError> {
    target_with(own, firewalld::running)
}

/// As [`target`], with the probe for firewalld given (an offline check
/// asks no bus).
fn target_with(own: &FirewallConf, firewalld_running: fn() -> bool) -> Result<Target, CniError> {
    let zone = || {
        let name = own.zone.as_deref().filter(|z| !z.is_empty());
        Zone::new("firewalldZone", name.unwrap_or(DEFAULT_ZONE)).cni()
    };
    match own.backend.as_deref() {
        Some("iptables") => Ok(Target::Netfilter(Backend::Iptables)),
        Some("nftables") => Ok(Target::Netfilter(Backend::Nftables)),
        Some("firewalld") => Ok(Target::Firewalld(zone()?)),
        // The reference's default (Podman sends ""): firewalld if it is on
        // the system bus, else iptables.
        None | Some("") if firewalld_running() => Ok(Target::Firewalld(zone()?)),
        None | Some("") => Ok(Target::Netfilter(Backend::Iptables)),
        Some(other) => Err(invalid!(
            "backend: unknown backend {other:?} (expected \"iptables\", \"firewalld\" or \"nftables\")"
        )),
    }
}

/// Every address of the prevResult, as the reference takes them.
fn addresses(prev: Option<&CniResult>) -> Vec<IpAddr> {
    prev.map(|p| p.ips.iter().map(|ip| ip.address.addr()).collect())
        .unwrap_or_default()
}

fn load(args: &CmdArgs) -> Result<Config, CniError> {
    let conf = args.conf()?;
    let own: FirewallConf = conf.plugin_fields()?;
    let target = target(&own)?;
    let (admin_chain, policy) = chain_and_policy(&own)?;
    let prev = conf.prev_result()?;
    let ips = addresses(prev.as_ref());
    Ok(Config {
        conf,
        target,
        admin_chain,
        policy,
        prev,
        ips,
    })
}

/// `iptablesAdminChainName` and `ingressPolicy`, validated.
fn chain_and_policy(own: &FirewallConf) -> Result<(ChainName, IngressPolicy), CniError> {
    let admin_chain = ChainName::new(
        "iptablesAdminChainName",
        own.admin_chain
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_ADMIN_CHAIN),
    )
    .cni()?;
    let policy = match own.ingress_policy.as_deref() {
        None | Some("") | Some("open") => IngressPolicy::Open,
        Some("same-bridge") => IngressPolicy::SameBridge,
        Some("isolated") => IngressPolicy::Isolated,
        // reference text
        Some(other) => return Err(invalid!("ingressPolicy: unknown ingress policy: {other:?}")),
    };
    Ok((admin_chain, policy))
}

/// firewall's keys, as `rcni help firewall` prints them.
pub const SCHEMA: Schema = Schema {
    about: "lets the container's traffic through the host's firewall (chained, spec 0.4.0 on)",
    keys: &[
        Key {
            name: "backend",
            ty: "string",
            default: "firewalld if it is on the system bus, else iptables",
            meaning: "iptables, nftables (rcni only) or firewalld",
        },
        Key {
            name: "iptablesAdminChainName",
            ty: "string",
            default: DEFAULT_ADMIN_CHAIN,
            meaning: "a chain jumped to before the accept rules, for the admin's own rules (kept)",
        },
        Key {
            name: "firewalldZone",
            ty: "string",
            default: DEFAULT_ZONE,
            meaning: "the firewalld zone the container's addresses are added to",
        },
        Key {
            name: "ingressPolicy",
            ty: "string",
            default: "open",
            meaning: "open, same-bridge (only containers on the same bridge reach it) or isolated",
        },
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "0.4.0", "name": "podman", "plugins": [
  {"type": "bridge", "bridge": "cni-podman0", "isGateway": true, "ipMasq": true, "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "firewall", "backend": "nftables", "ingressPolicy": "same-bridge"},
  {"type": "tuning"}]}"#,
    check: |conf| {
        let own: FirewallConf = conf.plugin_fields()?;
        target_with(&own, || false)?;
        chain_and_policy(&own).map(drop)
    },
};

impl Config {
    fn attachment<'a>(&'a self, args: &'a CmdArgs) -> Attachment<'a> {
        Attachment {
            network: &self.conf.name,
            container_id: &args.container_id,
            ifname: &args.ifname,
        }
    }

    fn prev(&self) -> Result<&CniResult, CniError> {
        // reference text
        self.prev
            .as_ref()
            .ok_or_else(|| invalid!("prevResult: missing prevResult from earlier plugin"))
    }

    /// The bridge an ingress policy isolates: the first interface of the
    /// prevResult, as in the reference.
    fn bridge(&self) -> Result<Option<InterfaceName>, CniError> {
        if self.policy == IngressPolicy::Open {
            return Ok(None);
        }
        let Some(first) = self.prev()?.interfaces.first() else {
            // reference text
            return Err(invalid!(
                "interface needs to be set for ingress policy, make sure to chain \"firewall\" plugin with \"bridge\""
            ));
        };
        InterfaceName::new("prevResult.interfaces[0].name", &first.name)
            .cni()
            .map(Some)
    }

    fn setup<'a>(&'a self, args: &'a CmdArgs, bridge: Option<&'a InterfaceName>) -> Setup<'a> {
        Setup {
            attachment: self.attachment(args),
            ips: &self.ips,
            admin_chain: Some(&self.admin_chain),
            isolation: bridge.map(|bridge| Isolation {
                bridge,
                isolated: self.policy == IngressPolicy::Isolated,
            }),
        }
    }
}

impl Plugin for Firewall {
    fn name(&self) -> &str {
        "firewall"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        &rcni_spec::version::ALL[4..]
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let cfg = load(args)?;
        let prev = cfg.prev()?.clone();
        let bridge = cfg.bridge()?;
        let setup = cfg.setup(args, bridge.as_ref());
        match &cfg.target {
            // One batch or transaction: nothing to undo when it fails.
            Target::Netfilter(backend) => {
                backend.ensure_available().invalid_context("backend")?;
                firewall::add(*backend, &setup).context("unable to set up the firewall rules")?;
            }
            Target::Firewalld(zone) => {
                // Made first, so an ADD that fails half-way is undone too.
                let sources = Undo::new(|| {
                    let _ = firewalld::del(zone, &cfg.ips);
                });
                firewalld::add(&setup.attachment, zone, &cfg.ips).context("firewalld")?;
                if setup.isolation.is_some() {
                    // The reference isolates bridges on iptables whatever
                    // the backend.
                    let isolation_only = Setup {
                        admin_chain: None,
                        ..setup
                    };
                    firewall::add(Backend::Iptables, &isolation_only)
                        .context("unable to set up the ingress policy")?;
                }
                sources.keep();
            }
        }
        Ok(prev)
    }

    /// Removes the accept rules wherever they are: nftables' by the
    /// attachment, iptables' and firewalld's by the prevResult's addresses
    /// (or, without one, those rcni recorded at ADD). Only those are read,
    /// so a config ADD would refuse is still torn down. The
    /// isolation rules are the bridge's and stay, as in the reference.
    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let prev = conf.prev_result().unwrap_or_else(|e| {
            eprintln!(
                "firewall: DEL: {}; using rcni's records of the addresses",
                e.msg
            );
            None
        });
        let a = Attachment {
            network: &conf.name,
            container_id: &args.container_id,
            ifname: &args.ifname,
        };
        let ips = firewall::addresses(&a, &addresses(prev.as_ref()));
        let mut teardown = Teardown::new("firewall");
        // firewalld only where the config chose it: its zones hold sources
        // that are not the plugin's too.
        if let Ok(Target::Firewalld(zone)) = conf.plugin_fields().and_then(|own| target(&own)) {
            teardown.step(firewalld::del(&zone, &ips).context("firewalld"));
        }
        teardown.step(firewall::del(&a, &ips).context("could not tear down the firewall rules"));
        teardown.finish()
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let cfg = load(args)?;
        cfg.prev()?;
        match &cfg.target {
            Target::Netfilter(backend) => {
                backend.ensure_available().invalid_context("backend")?;
                firewall::check(*backend, &cfg.setup(args, None))
            }
            Target::Firewalld(zone) => firewalld::check(zone, &cfg.ips),
        }
        .context_code(ErrorCode::INTERNAL, "firewall rules")
    }

    fn gc(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let valid = valid_attachments(&conf)?;
        firewall::gc(&conf.name, &valid).context("firewall GC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<FirewallConf>(), Vec::<String>::new());
    }

    fn args(conf: &str) -> CmdArgs {
        CmdArgs {
            stdin: conf.as_bytes().to_vec(),
            ifname: "eth0".into(),
            ..CmdArgs::default()
        }
    }

    const PREV: &str = r#""prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"br0"}],"ips":[{"address":"10.0.0.5/24"}]}"#;

    #[test]
    fn bad_keys_name_the_field() {
        let cases = [
            (r#""backend":"ebtables""#, "backend"),
            (r#""backend":7"#, "backend"),
            (
                r#""iptablesAdminChainName":"X\n-A INPUT -j ACCEPT""#,
                "iptablesAdminChainName",
            ),
            (r#""iptablesAdminChainName":"-j""#, "iptablesAdminChainName"),
            (r#""ingressPolicy":"closed""#, "ingressPolicy"),
            (
                r#""backend":"firewalld","firewalldZone":"a b""#,
                "firewalldZone",
            ),
        ];
        for (keys, needle) in cases {
            let conf = format!(r#"{{"name":"n","cniVersion":"1.0.0",{keys},{PREV}}}"#);
            let e = load(&args(&conf)).err().unwrap();
            assert_eq!(e.code, 7, "{conf}");
            assert!(e.msg.contains(needle), "{conf}: {}", e.msg);
        }
    }

    #[test]
    fn the_bridge_is_the_first_interface_and_must_be_a_plain_name() {
        let conf = format!(r#"{{"name":"n","ingressPolicy":"same-bridge",{PREV}}}"#);
        let cfg = load(&args(&conf)).unwrap();
        assert_eq!(cfg.bridge().unwrap().unwrap().as_str(), "br0");
        assert_eq!(cfg.ips, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        let bad = conf.replace("br0", "br+");
        let e = load(&args(&bad)).unwrap().bridge().unwrap_err();
        assert!(e.msg.contains("prevResult.interfaces[0].name"), "{}", e.msg);
        let open = r#"{"name":"n","ingressPolicy":"open"}"#;
        assert!(load(&args(open)).unwrap().bridge().unwrap().is_none());
    }
}
