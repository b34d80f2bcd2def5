//! `macvlan`: a macvlan link on a host interface (the master), placed in
//! the container with its own MAC address; addresses from IPAM, or none
//! (`ipam: {}`, layer 2 only).

use crate::container_link::{self as cl, Addressing};
use crate::mac::configured_mac;
use rcni_net::{LinkKind, LinkOptions};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult};
use serde::Deserialize;

pub struct MacVlan;

#[derive(Deserialize, Default)]
struct MacVlanConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    mac: String,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
    #[serde(default)]
    bcqueuelen: u32,
}

/// macvlan's keys, as `rcni help macvlan` prints them.
pub const SCHEMA: Schema = Schema {
    about: "gives the container a macvlan link, with a MAC of its own, on a host interface",
    keys: &[
        Key {
            name: "master",
            ty: "string",
            default: "the default route's interface",
            meaning: "the interface the link is made on",
        },
        Key {
            name: "mode",
            ty: "string",
            default: "bridge",
            meaning: "bridge, private, vepa or passthru",
        },
        cl::MTU_KEY,
        Key {
            name: "mac",
            ty: "string",
            default: "random",
            meaning: "the link's MAC address (runtime args override it)",
        },
        cl::LINK_IN_CONTAINER_KEY,
        Key {
            name: "bcqueuelen",
            ty: "uint32",
            default: "0 (the kernel's)",
            meaning: "length of the broadcast queue",
        },
    ],
    capabilities: &["mac"],
    example: r#"{"cniVersion": "1.0.0", "name": "lan", "type": "macvlan", "master": "eth0", "mode": "bridge",
  "ipam": {"type": "host-local", "subnet": "192.168.1.0/24"}}"#,
    check: |conf| {
        let own: MacVlanConf = conf.plugin_fields()?;
        crate::link_modes::macvlan_mode(&own.mode)?;
        configured_mac(conf, &own.mac, "").map(drop)
    },
};

impl Plugin for MacVlan {
    fn name(&self) -> &str {
        "macvlan"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let own: MacVlanConf = conf.plugin_fields()?;
        let mode = crate::link_modes::macvlan_mode(&own.mode)?;
        let mac = configured_mac(&conf, &own.mac, &args.args)?;
        let ns = crate::container::require_netns(args)?;
        let master = cl::find_master(&own.master, &ns, own.link_in_container, true)?;
        let mtu = cl::check_mtu(own.mtu, &master)?;
        let kind = LinkKind::MacVlan {
            master: master.index,
            mode,
            bc_queue_len: (own.bcqueuelen > 0).then_some(own.bcqueuelen),
        };
        let opts = LinkOptions {
            mtu,
            mac,
            ..LinkOptions::default()
        };
        let iface = cl::create(
            &kind,
            "macvlan",
            &args.ifname,
            &ns,
            own.link_in_container,
            opts,
        )?;
        cl::address(
            &conf,
            args,
            &ns,
            iface,
            Addressing::from_conf(&conf, Addressing::None),
            true,
        )
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::del("macvlan", &args.conf()?, args)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        let own: MacVlanConf = conf.plugin_fields()?;
        let want = crate::link_modes::macvlan_mode(&own.mode)?;
        cl::check(
            "macvlan",
            &conf,
            args,
            Some("macvlan"),
            |link| match &link.kind {
                Some(LinkKind::MacVlan { mode, .. }) if *mode != want => Err(fail!(
                    "container macvlan mode {mode} does not match expected value: {want}"
                )),
                _ => Ok(()),
            },
        )
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
        assert_eq!(SCHEMA.drift::<MacVlanConf>(), Vec::<String>::new());
    }
}
