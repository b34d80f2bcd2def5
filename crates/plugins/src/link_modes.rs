//! CNI's mode strings for the links the plugins create (macvlan's and
//! ipvlan's `mode`), read into the kernel layer's types. Error texts are
//! rcni's and name the field.

use rcni_net::{IpVlanMode, MacVlanMode};
use rcni_spec::CniError;

/// macvlan's `mode`: `""` or `bridge` (the default), `private`, `vepa`,
/// `passthru`.
pub fn macvlan_mode(mode: &str) -> Result<MacVlanMode, CniError> {
    Ok(match mode {
        "" | "bridge" => MacVlanMode::Bridge,
        "private" => MacVlanMode::Private,
        "vepa" => MacVlanMode::Vepa,
        "passthru" => MacVlanMode::Passthru,
        _ => {
            return Err(CniError::invalid_config(format!(
                "mode: unknown macvlan mode: {mode:?}"
            )))
        }
    })
}

/// ipvlan's `mode`: `""` or `l2` (the default), `l3`, `l3s`.
pub fn ipvlan_mode(mode: &str) -> Result<IpVlanMode, CniError> {
    Ok(match mode {
        "" | "l2" => IpVlanMode::L2,
        "l3" => IpVlanMode::L3,
        "l3s" => IpVlanMode::L3s,
        _ => {
            return Err(CniError::invalid_config(format!(
                "mode: unknown ipvlan mode: {mode:?}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_the_reference() {
        assert_eq!(macvlan_mode("").unwrap(), MacVlanMode::Bridge);
        assert_eq!(macvlan_mode("passthru").unwrap(), MacVlanMode::Passthru);
        assert!(macvlan_mode("passthrough").is_err());
        assert_eq!(ipvlan_mode("").unwrap(), IpVlanMode::L2);
        assert_eq!(ipvlan_mode("l3s").unwrap(), IpVlanMode::L3s);
        assert!(ipvlan_mode("L3").is_err());
        for m in ["bridge", "private", "vepa", "passthru"] {
            assert_eq!(macvlan_mode(m).unwrap().to_string(), m);
        }
        for m in ["l2", "l3", "l3s"] {
            assert_eq!(ipvlan_mode(m).unwrap().to_string(), m);
        }
        let err = macvlan_mode("bogus").unwrap_err();
        assert_eq!(err.code, 7);
        assert_eq!(err.msg, r#"mode: unknown macvlan mode: "bogus""#);
    }
}
