//! `ipvlan`: an ipvlan link on a host interface, sharing its MAC, placed
//! in the container. Chained after another plugin it can take its master
//! and its addresses from the previous result.

use crate::container_link::{self as cl, Addressing};
use rcni_net::{IpVlanFlag, LinkKind, LinkOptions};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult};
use serde::Deserialize;

pub struct IpVlan;

#[derive(Deserialize, Default)]
struct IpVlanConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: i64,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
}

/// ipvlan's keys, as `rcni help ipvlan` prints them.
pub const SCHEMA: Schema = Schema {
    about: "gives the container an ipvlan link, sharing the MAC of a host interface",
    keys: &[
        Key {
            name: "master",
            ty: "string",
            default: "the single interface of prevResult, else the default route's",
            meaning: "the interface the link is made on",
        },
        Key {
            name: "mode",
            ty: "string",
            default: "l2",
            meaning: "l2, l3 or l3s",
        },
        cl::MTU_KEY,
        cl::LINK_IN_CONTAINER_KEY,
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "l3net", "type": "ipvlan", "master": "eth0", "mode": "l3",
  "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}"#,
    check: |conf| {
        let own: IpVlanConf = conf.plugin_fields()?;
        crate::link_modes::ipvlan_mode(&own.mode).map(drop)
    },
};

impl Plugin for IpVlan {
    fn name(&self) -> &str {
        "ipvlan"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let own: IpVlanConf = conf.plugin_fields()?;
        let mode = crate::link_modes::ipvlan_mode(&own.mode)?;
        let prev = conf.prev_result()?;
        let mut master_name = own.master.clone();
        if master_name.is_empty() {
            if let Some(prev) = &prev {
                match prev.interfaces.as_slice() {
                    [only] if !only.name.is_empty() => master_name = only.name.clone(),
                    _ => return Err(CniError::invalid_config(
                        "master: chained master failure. PrevResult lacks a single named interface",
                    )),
                }
            }
        }
        let ns = crate::container::require_netns(args)?;
        let master = cl::find_master(&master_name, &ns, own.link_in_container, true)?;
        let mtu = cl::check_mtu(own.mtu, &master)?;
        let addressing = match prev {
            Some(prev) if !crate::ipam::has_ipam(&conf) && !prev.ips.is_empty() => {
                Addressing::Previous(prev)
            }
            _ => Addressing::Ipam,
        };
        if matches!(addressing, Addressing::Ipam) {
            crate::ipam::ipam_type(&conf)?;
        }
        let kind = LinkKind::IpVlan {
            master: master.index,
            mode,
            flag: IpVlanFlag::Bridge,
        };
        let opts = LinkOptions {
            mtu,
            ..LinkOptions::default()
        };
        let iface = cl::create(
            &kind,
            "ipvlan",
            &args.ifname,
            &ns,
            own.link_in_container,
            opts,
        )?;
        cl::address(&conf, args, &ns, iface, addressing, true)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::del("ipvlan", &args.conf()?, args)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let own: IpVlanConf = conf.plugin_fields()?;
        let want = crate::link_modes::ipvlan_mode(&own.mode)?;
        cl::check("ipvlan", &conf, args, Some("ipvlan"), |link| {
            match &link.kind {
                Some(LinkKind::IpVlan { mode, .. }) if *mode != want => Err(fail!(
                    "Container IPVlan mode {mode} does not match expected value: {want}"
                )),
                _ => Ok(()),
            }
        })
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::status(&args.conf()?, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<IpVlanConf>(), Vec::<String>::new());
    }
}
