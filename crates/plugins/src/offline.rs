//! A plugin's load-time validation run on a config alone, for the
//! `check` of its [`rcni_spec::schema::Schema`] (`rcni check-config`):
//! no kernel, no files, no CNI_* environment.

use crate::error::Context;
use rcni_skel::{CmdArgs, Command};
use rcni_spec::config::PluginConf;
use rcni_spec::CniError;

/// The ADD call of `conf` for an `eth0` with nothing else set, for the
/// plugins whose validation reads the whole call.
pub fn add_call(conf: &PluginConf) -> CmdArgs {
    CmdArgs {
        stdin: conf.to_value().to_string().into_bytes(),
        command: Some(Command::Add),
        ifname: "eth0".into(),
        ..CmdArgs::default()
    }
}

/// `ipMasqBackend` names a backend rcni has (whether it is installed is
/// the host's business, checked at ADD).
pub fn masq_backend(named: Option<&str>) -> Result<(), CniError> {
    named.map_or(Ok(()), |name| {
        rcni_netfilter::Backend::choose(Some(name), "ipMasqBackend")
            .cni()
            .map(drop)
    })
}

#[cfg(test)]
mod tests {
    use rcni_spec::config::{NetConfList, PluginConf};
    use serde_json::Value;

    /// Runs the check of `conf`'s plugin and of its IPAM plugin, if rcni
    /// has one.
    fn check_member(conf: &PluginConf, example_of: &str) {
        for ty in [
            Some(conf.plugin_type.as_str()),
            conf.ipam.as_ref().map(|i| i.ipam_type.as_str()),
        ]
        .into_iter()
        .flatten()
        {
            let Some(schema) = crate::lookup(ty).and_then(|p| p.schema()) else {
                continue;
            };
            if let Err(e) = (schema.check)(conf) {
                panic!("{example_of}'s example fails {ty}'s check: {}", e.msg);
            }
        }
    }

    #[test]
    fn every_plugin_has_a_schema_whose_example_passes_its_check() {
        for plugin in crate::all() {
            let name = plugin.name();
            let schema = plugin
                .schema()
                .unwrap_or_else(|| panic!("{name} has no schema"));
            let json: Value = serde_json::from_str(schema.example)
                .unwrap_or_else(|e| panic!("{name}'s example is not JSON: {e}"));
            let members = if json.get("plugins").is_some() {
                let list = NetConfList::parse(schema.example.as_bytes())
                    .unwrap_or_else(|e| panic!("{name}'s example list: {}", e.msg));
                list.plugins
                    .iter()
                    .map(|member| {
                        let mut member = member.clone();
                        member.insert("name".into(), list.name.clone().into());
                        member.insert("cniVersion".into(), list.cni_version.clone().into());
                        PluginConf::from_value(Value::Object(member))
                    })
                    .collect::<Result<Vec<_>, _>>()
            } else {
                PluginConf::parse(schema.example.as_bytes()).map(|conf| vec![conf])
            }
            .unwrap_or_else(|e| panic!("{name}'s example does not parse: {}", e.msg));
            let uses = |c: &PluginConf| {
                c.plugin_type == name || c.ipam.as_ref().is_some_and(|i| i.ipam_type == name)
            };
            assert!(members.iter().any(uses), "{name}'s example does not use it");
            for conf in &members {
                check_member(conf, name);
            }
        }
    }

    #[test]
    fn checks_report_bad_values_by_their_key() {
        let cases = [
            ("bridge", r#""vlan": 5000"#, "VLAN"),
            (
                "bridge",
                r#""hairpinMode": true, "promiscMode": true"#,
                "hairpin",
            ),
            ("bridge", r#""ipMasqBackend": "pf""#, "ipMasqBackend"),
            ("ptp", r#""mtu": "big""#, "mtu"),
            ("macvlan", r#""mode": "bridged""#, "mode"),
            ("macvlan", r#""mac": "02:00""#, "mac"),
            ("ipvlan", r#""mode": "l4""#, "mode"),
            ("vlan", r#""master": "eth0", "vlanId": 4095"#, "vlanId"),
            (
                "host-device",
                r#""device": "eth1", "hwaddr": "02:00:00:00:00:01""#,
                "hwaddr",
            ),
            ("tap", r#""mtu": 70000"#, "mtu"),
            ("vrf", r#""table": 5"#, "vrfname"),
            (
                "host-local",
                r#""ipam": {"type": "host-local", "subnet": "10.0.0.0/33"}"#,
                "subnet",
            ),
            (
                "static",
                r#""ipam": {"type": "static", "addresses": [{"address": "10.0.0.1"}]}"#,
                "address",
            ),
        ];
        for (ty, keys, named) in cases {
            let text = format!(r#"{{"cniVersion": "1.0.0", "name": "n", "type": "{ty}", {keys}}}"#);
            let conf = PluginConf::parse(text.as_bytes()).unwrap();
            let schema = crate::lookup(ty).and_then(|p| p.schema()).unwrap();
            let err = (schema.check)(&conf).expect_err(&text);
            assert_eq!(err.code, 7, "{text}: {}", err.msg);
            assert!(err.msg.contains(named), "{text}: {}", err.msg);
        }
    }
}
