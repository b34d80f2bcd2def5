//! `vlan`: an 802.1Q VLAN link on a host interface, placed in the
//! container with addresses from IPAM.

use crate::container_link::{self as cl, Addressing};
use rcni_net::{LinkKind, LinkOptions};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult};
use serde::Deserialize;

pub struct Vlan;

const MAX_VLAN_ID: i64 = 4094;

#[derive(Deserialize, Default)]
struct VlanConf {
    #[serde(default)]
    master: String,
    #[serde(rename = "vlanId", default)]
    vlan_id: i64,
    #[serde(default)]
    mtu: i64,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
}

fn load(args: &CmdArgs) -> Result<(rcni_spec::config::PluginConf, VlanConf), CniError> {
    let conf = args.conf()?;
    let own: VlanConf = conf.plugin_fields()?;
    if args.is_del() {
        // DEL needs neither the master nor the VLAN ID.
        return Ok((conf, own));
    }
    if own.master.is_empty() {
        return Err(CniError::invalid_config(
            "\"master\" field is required. It specifies the host interface name to create the VLAN for",
        ));
    }
    if !(0..=MAX_VLAN_ID).contains(&own.vlan_id) {
        return Err(invalid!(
            "vlanId: invalid VLAN ID {} (must be between 0 and {MAX_VLAN_ID} inclusive)",
            own.vlan_id
        ));
    }
    Ok((conf, own))
}

/// vlan's keys, as `rcni help vlan` prints them.
pub const SCHEMA: Schema = Schema {
    about: "gives the container an 802.1Q VLAN link on a host interface",
    keys: &[
        Key {
            name: "master",
            ty: "string",
            default: "",
            meaning: "the interface the VLAN is made on (required)",
        },
        Key {
            name: "vlanId",
            ty: "int (0-4094)",
            default: "0",
            meaning: "the VLAN ID",
        },
        cl::MTU_KEY,
        cl::LINK_IN_CONTAINER_KEY,
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "vlan100", "type": "vlan", "master": "eth0", "vlanId": 100,
  "ipam": {"type": "host-local", "subnet": "10.100.0.0/24"}}"#,
    check: |conf| load(&crate::offline::add_call(conf)).map(drop),
};

impl Plugin for Vlan {
    fn name(&self) -> &str {
        "vlan"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, own) = load(args)?;
        crate::ipam::ipam_type(&conf)?;
        let ns = crate::container::require_netns(args)?;
        let master = cl::find_master(&own.master, &ns, own.link_in_container, false)?;
        let mtu = cl::check_mtu(own.mtu, &master)?;
        let kind = LinkKind::Vlan {
            master: master.index,
            id: own.vlan_id as u16,
        };
        let opts = LinkOptions {
            mtu,
            ..LinkOptions::default()
        };
        let iface = cl::create(
            &kind,
            "vlan",
            &args.ifname,
            &ns,
            own.link_in_container,
            opts,
        )?;
        cl::address(&conf, args, &ns, iface, Addressing::Ipam, false)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, _) = load(args)?;
        cl::del("vlan", &conf, args)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, own) = load(args)?;
        cl::check("vlan", &conf, args, Some("vlan"), |link| match &link.kind {
            Some(LinkKind::Vlan { id, .. }) if i64::from(*id) != own.vlan_id => Err(fail!(
                "vlan: container VLAN ID {id} does not match expected value: {}",
                own.vlan_id
            )),
            _ => Ok(()),
        })
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, _) = load(args)?;
        cl::status(&conf, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<VlanConf>(), Vec::<String>::new());
    }
}
