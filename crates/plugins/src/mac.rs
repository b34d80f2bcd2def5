//! The container MAC address a config or runtime asks for. The syntax is
//! the kernel crate's [`rcni_net::parse_mac`] (Go's `net.ParseMAC`, as the
//! reference reads it: `:` or `-` separators, or the dotted form), the
//! same for every key.

use crate::error::Context;
use rcni_spec::config::PluginConf;
use rcni_spec::CniError;

/// Parses a MAC address from the config; `field` names its key in the
/// error (code 7).
pub fn parse_mac(s: &str, field: &str) -> Result<[u8; 6], CniError> {
    rcni_net::parse_mac(s).invalid_context(field)
}

/// The container MAC a runtime asks for: CNI_ARGS `MAC`, then
/// `args.cni.mac`, then `runtimeConfig.mac` (the last one set wins).
pub fn requested_mac(conf: &PluginConf, cni_args: &str) -> Result<Option<[u8; 6]>, CniError> {
    let env = rcni_spec::args::CniArgs::parse_known(cni_args, &["MAC"])?;
    let mut chosen: Option<(String, &str)> = env
        .get("MAC")
        .filter(|m| !m.is_empty())
        .map(|m| (m.to_string(), "CNI_ARGS MAC"));
    for (value, field) in [
        (conf.cni_arg("mac"), "args.cni.mac"),
        (conf.runtime("mac"), "runtimeConfig.mac"),
    ] {
        if let Some(m) = value
            .and_then(serde_json::Value::as_str)
            .filter(|m| !m.is_empty())
        {
            chosen = Some((m.to_string(), field));
        }
    }
    chosen.map(|(m, field)| parse_mac(&m, field)).transpose()
}

/// The MAC of a plugin with its own `mac` key (macvlan, tap): the key,
/// overridden by what the runtime asks for ([`requested_mac`]).
pub fn configured_mac(
    conf: &PluginConf,
    own_mac: &str,
    cni_args: &str,
) -> Result<Option<[u8; 6]>, CniError> {
    if let Some(requested) = requested_mac(conf, cni_args)? {
        return Ok(Some(requested));
    }
    (!own_mac.is_empty())
        .then(|| parse_mac(own_mac, "mac"))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_separators_and_the_field_in_errors() {
        let want = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
        assert_eq!(parse_mac("02:42:AC:11:00:02", "mac").unwrap(), want);
        assert_eq!(parse_mac("02-42-ac-11-00-02", "hwaddr").unwrap(), want);
        let e = parse_mac("02:42:ac:11:00", "hwaddr").unwrap_err();
        assert_eq!(e.code, 7);
        assert!(e.msg.starts_with("hwaddr: "), "{}", e.msg);
    }
}
