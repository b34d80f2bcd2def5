//! Results on the wire, in every spec version, with the reference's
//! conversions: 0.1.0/0.2.0 (`ip4`/`ip6`), 0.3.x/0.4.0 (`ips[].version`)
//! and 1.x (the model in [`crate::types`]).

use crate::error::CniError;
use crate::types::{CniResult, Dns, Interface, IpConfig, Route};
use crate::version::Version;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// Pretty JSON with four-space indents, as the reference plugins print.
pub fn to_pretty_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut ser).is_err() {
        return "{}".to_string();
    }
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_string())
}

#[derive(Serialize, Deserialize)]
struct Wire100 {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    /// 1.x omits an empty `dns`.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct Interface040 {
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sandbox: String,
}

#[derive(Serialize, Deserialize)]
struct IpConfig040 {
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct Wire040 {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface040>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<IpConfig040>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct IpConfig020 {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

#[derive(Serialize, Deserialize)]
struct Wire020 {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<IpConfig020>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<IpConfig020>,
    #[serde(default)]
    dns: Dns,
}

/// Which wire shape a version string uses; unknown versions are an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    V020,
    V040,
    V100,
}

fn shape_of(version: &str) -> Result<Shape, CniError> {
    match version {
        "" | "0.1.0" | "0.2.0" => Ok(Shape::V020),
        "0.3.0" | "0.3.1" | "0.4.0" => Ok(Shape::V040),
        "1.0.0" | "1.1.0" => Ok(Shape::V100),
        other => Err(CniError::new(
            crate::ErrorCode::INCOMPATIBLE_VERSION,
            format!("unsupported CNI result version {other:?}"),
        )),
    }
}

fn decode_err(e: impl std::fmt::Display) -> CniError {
    CniError::decode(format!("failed to parse CNI result: {e}"))
}

/// Reads a result of any version (taken from its `cniVersion`; empty means
/// 0.1.0) into the model, converting up.
pub fn parse(value: &Value) -> Result<CniResult, CniError> {
    let version = crate::gojson::get_in(value, "cniVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut result = match shape_of(&version)? {
        Shape::V100 => {
            let w: Wire100 = crate::gojson::from_value(value).map_err(decode_err)?;
            CniResult {
                cni_version: w.cni_version,
                interfaces: w.interfaces,
                ips: w.ips,
                routes: w.routes,
                dns: w.dns,
            }
        }
        Shape::V040 => {
            let w: Wire040 = crate::gojson::from_value(value).map_err(decode_err)?;
            from_040(w)
        }
        Shape::V020 => {
            let w: Wire020 = crate::gojson::from_value(value).map_err(decode_err)?;
            from_020(w)
        }
    };
    result.cni_version = if version.is_empty() {
        "0.1.0".into()
    } else {
        version
    };
    Ok(result)
}

/// Parses result bytes (a plugin's stdout).
pub fn parse_bytes(bytes: &[u8]) -> Result<CniResult, CniError> {
    let value: Value = serde_json::from_slice(bytes).map_err(decode_err)?;
    parse(&value)
}

fn from_040(w: Wire040) -> CniResult {
    CniResult {
        cni_version: w.cni_version,
        interfaces: w
            .interfaces
            .into_iter()
            .map(|i| Interface {
                name: i.name,
                mac: i.mac,
                sandbox: i.sandbox,
                ..Interface::default()
            })
            .collect(),
        ips: w
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: w.routes,
        dns: w.dns,
    }
}

fn from_020(w: Wire020) -> CniResult {
    let mut result = CniResult {
        cni_version: w.cni_version,
        dns: w.dns,
        ..CniResult::default()
    };
    for ip in [w.ip4, w.ip6].into_iter().flatten() {
        result.ips.push(IpConfig {
            interface: None,
            address: ip.ip,
            gateway: ip.gateway,
        });
        result
            .routes
            .extend(ip.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
    }
    result
}

fn family_tag(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "4",
        IpNet::V6(_) => "6",
    }
}

fn to_040(result: &CniResult, version: &str) -> Wire040 {
    Wire040 {
        cni_version: version.to_string(),
        interfaces: result
            .interfaces
            .iter()
            .map(|i| Interface040 {
                name: i.name.clone(),
                mac: i.mac.clone(),
                sandbox: i.sandbox.clone(),
            })
            .collect(),
        ips: result
            .ips
            .iter()
            .map(|ip| IpConfig040 {
                version: family_tag(&ip.address).to_string(),
                interface: ip.interface,
                address: ip.address,
                gateway: ip.gateway,
            })
            .collect(),
        routes: result.routes.clone(),
        dns: result.dns.clone(),
    }
}

/// Down to 0.2.0: the first address of each family and the routes of the
/// families kept; no address at all cannot be expressed.
fn to_020(result: &CniResult, version: &str) -> Result<Wire020, CniError> {
    let mut ip4: Option<IpConfig020> = None;
    let mut ip6: Option<IpConfig020> = None;
    for ip in &result.ips {
        let slot = match ip.address {
            IpNet::V4(_) => &mut ip4,
            IpNet::V6(_) => &mut ip6,
        };
        if slot.is_none() {
            *slot = Some(IpConfig020 {
                ip: ip.address,
                gateway: ip.gateway,
                routes: Vec::new(),
            });
        }
    }
    for route in &result.routes {
        let slot = match route.dst {
            IpNet::V4(_) => &mut ip4,
            IpNet::V6(_) => &mut ip6,
        };
        if let Some(cfg) = slot {
            cfg.routes.push(Route::new(route.dst, route.gw));
        }
    }
    if ip4.is_none() && ip6.is_none() {
        return Err(CniError::new(
            crate::ErrorCode::INCOMPATIBLE_VERSION,
            "cannot convert: no valid IP addresses",
        ));
    }
    Ok(Wire020 {
        cni_version: version.to_string(),
        ip4,
        ip6,
        dns: result.dns.clone(),
    })
}

/// Writes the result as the JSON value of spec version `version`.
pub fn render(result: &CniResult, version: &str) -> Result<Value, CniError> {
    let encode = |r: Result<Value, serde_json::Error>| {
        r.map_err(|e| CniError::internal(format!("failed to encode result: {e}")))
    };
    match shape_of(version)? {
        Shape::V100 => encode(serde_json::to_value(Wire100 {
            cni_version: version.to_string(),
            interfaces: result.interfaces.clone(),
            ips: result.ips.clone(),
            routes: result.routes.clone(),
            dns: result.dns.clone(),
        })),
        Shape::V040 => encode(serde_json::to_value(to_040(result, version))),
        Shape::V020 => {
            let version = if version.is_empty() { "0.1.0" } else { version };
            encode(serde_json::to_value(to_020(result, version)?))
        }
    }
}

/// Converts a result value of any version to `version`.
pub fn convert(value: &Value, version: &str) -> Result<Value, CniError> {
    render(&parse(value)?, version)
}

/// The `ip4`/`ip6` shape is the only one where the version parses below 0.3.
pub fn is_legacy(version: &str) -> bool {
    Version::parse(version)
        .map(|v| v.is_legacy_result())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> CniResult {
        CniResult {
            cni_version: "1.1.0".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "aa:bb:cc:dd:ee:ff".into(),
                mtu: 1400,
                sandbox: "/var/run/netns/x".into(),
                ..Interface::default()
            }],
            ips: vec![
                IpConfig {
                    interface: Some(0),
                    address: "10.1.2.3/24".parse().unwrap(),
                    gateway: Some("10.1.2.1".parse().unwrap()),
                },
                IpConfig {
                    interface: Some(0),
                    address: "10.9.2.3/24".parse().unwrap(),
                    gateway: None,
                },
                IpConfig {
                    interface: Some(0),
                    address: "2001:db8::5/64".parse().unwrap(),
                    gateway: Some("2001:db8::1".parse().unwrap()),
                },
            ],
            routes: vec![
                Route::new(
                    "0.0.0.0/0".parse().unwrap(),
                    Some("10.1.2.1".parse().unwrap()),
                ),
                Route::new("::/0".parse().unwrap(), None),
            ],
            dns: Dns {
                nameservers: vec!["10.1.2.1".into()],
                ..Dns::default()
            },
        }
    }

    #[test]
    fn renders_100_without_version_tags_and_empty_dns() {
        let mut r = sample();
        r.dns = Dns::default();
        let v = render(&r, "1.0.0").unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert!(v["ips"][0].get("version").is_none());
        assert!(v.get("dns").is_none());
        assert_eq!(v["interfaces"][0]["mtu"], 1400);
        assert_eq!(v["ips"][0]["address"], "10.1.2.3/24");
    }

    #[test]
    fn renders_040_with_version_tags() {
        let v = render(&sample(), "0.4.0").unwrap();
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][2]["version"], "6");
        assert!(v["interfaces"][0].get("mtu").is_none());
        assert_eq!(v["dns"]["nameservers"][0], "10.1.2.1");
        let mut empty_dns = sample();
        empty_dns.dns = Dns::default();
        assert_eq!(render(&empty_dns, "0.3.1").unwrap()["dns"], json!({}));
    }

    #[test]
    fn renders_020_first_ip_per_family() {
        let v = render(&sample(), "0.2.0").unwrap();
        assert_eq!(v["ip4"]["ip"], "10.1.2.3/24");
        assert_eq!(v["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(v["ip6"]["ip"], "2001:db8::5/64");
        assert_eq!(v["ip6"]["routes"][0]["dst"], "::/0");
        let no_ips = CniResult::default();
        assert_eq!(render(&no_ips, "0.2.0").unwrap_err().code, 1);
        assert_eq!(render(&sample(), "7.0.0").unwrap_err().code, 1);
    }

    #[test]
    fn parses_020_up() {
        let v = json!({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/8","gateway":"10.0.0.1",
            "routes":[{"dst":"0.0.0.0/0"}]},"dns":{}});
        let r = parse(&v).unwrap();
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.routes.len(), 1);
        let up = render(&r, "0.4.0").unwrap();
        assert_eq!(up["ips"][0]["version"], "4");
        assert_eq!(up["ips"][0]["gateway"], "10.0.0.1");
    }

    #[test]
    fn parses_without_version_as_010() {
        let r = parse(&json!({"ip4":{"ip":"10.0.0.2/8"}})).unwrap();
        assert_eq!(r.cni_version, "0.1.0");
    }

    #[test]
    fn keeps_11_route_fields() {
        let v = json!({"cniVersion":"1.1.0","routes":[{"dst":"10.0.0.0/8","mtu":1300,
            "advmss":1200,"priority":5,"table":100,"scope":253}]});
        let back = convert(&v, "1.1.0").unwrap();
        assert_eq!(back["routes"][0], v["routes"][0]);
    }

    #[test]
    fn pretty_json_uses_four_spaces() {
        let s = to_pretty_json(&json!({"a":1}));
        assert_eq!(s, "{\n    \"a\": 1\n}");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn any_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| IpNet::new(Ipv4Addr::from(a).into(), p).unwrap()),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| IpNet::new(Ipv6Addr::from(a).into(), p).unwrap()),
        ]
    }

    fn any_result() -> impl Strategy<Value = CniResult> {
        let ip =
            (any_net(), proptest::option::of(0usize..3), any::<bool>()).prop_map(|(n, i, gw)| {
                IpConfig {
                    interface: i,
                    address: n,
                    gateway: gw.then(|| n.addr()),
                }
            });
        let route =
            (any_net(), any::<bool>()).prop_map(|(n, gw)| Route::new(n, gw.then(|| n.addr())));
        let iface = "[a-z]{1,8}".prop_map(|name| Interface {
            name,
            ..Interface::default()
        });
        (
            proptest::collection::vec(iface, 0..3),
            proptest::collection::vec(ip, 0..5),
            proptest::collection::vec(route, 0..4),
        )
            .prop_map(|(interfaces, ips, routes)| CniResult {
                cni_version: "1.1.0".into(),
                interfaces,
                ips,
                routes,
                dns: Dns::default(),
            })
    }

    proptest! {
        #[test]
        fn round_trip_through_1x_and_04x(r in any_result()) {
            for v in ["1.0.0", "1.1.0", "0.3.0", "0.3.1", "0.4.0"] {
                let back = parse(&render(&r, v).unwrap()).unwrap();
                prop_assert_eq!(&back.cni_version, v);
                prop_assert_eq!(&back.ips, &r.ips);
                prop_assert_eq!(&back.routes, &r.routes);
                prop_assert_eq!(&back.interfaces, &r.interfaces);
            }
        }

        #[test]
        fn down_to_020_keeps_first_ip_of_each_family(r in any_result()) {
            for v in ["0.1.0", "0.2.0"] {
                match render(&r, v) {
                    Err(e) => prop_assert!(r.ips.is_empty() && e.code == 1),
                    Ok(out) => {
                        let back = parse(&out).unwrap();
                        let first4 = r.ips.iter().find(|i| i.address.addr().is_ipv4()).map(|i| i.address);
                        let first6 = r.ips.iter().find(|i| i.address.addr().is_ipv6()).map(|i| i.address);
                        let kept: Vec<IpNet> = back.ips.iter().map(|i| i.address).collect();
                        let expected: Vec<IpNet> = first4.into_iter().chain(first6).collect();
                        prop_assert_eq!(kept, expected);
                        prop_assert!(back.interfaces.is_empty());
                        prop_assert!(back.ips.iter().all(|i| i.interface.is_none()));
                    }
                }
            }
        }
    }
}
