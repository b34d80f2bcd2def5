//! `tap`: a persistent tap device in the container (for a VM monitor
//! such as QEMU or Firecracker to attach to), made over the tun driver,
//! optionally a port of a bridge in the container, with addresses from
//! IPAM or none.

use crate::container::handle_in;
use crate::container_link::{self as cl, Addressing};
use crate::error::Context;
use crate::mac::configured_mac;
use crate::undo::Undo;
use rcni_net::{Handle, NetNs, TapSpec};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult, Interface};
use serde::Deserialize;

pub struct Tap;

#[derive(Deserialize, Default)]
struct TapConf {
    #[serde(rename = "multiQueue", default)]
    multi_queue: bool,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    owner: Option<u32>,
    #[serde(default)]
    group: Option<u32>,
    #[serde(rename = "selinuxContext", default)]
    selinux_context: String,
    #[serde(default)]
    bridge: String,
}

/// Creates the tap under a temporary name, then sets it up as `ifname`;
/// on failure nothing is left.
fn create(
    own: &TapConf,
    mac: Option<[u8; 6]>,
    ifname: &str,
    ns: &NetNs,
) -> Result<Interface, CniError> {
    let tmp_name = rcni_net::random_veth_name();
    let spec = TapSpec {
        name: tmp_name.clone(),
        multi_queue: own.multi_queue,
        owner: own.owner,
        group: own.group,
        selinux_context: (!own.selinux_context.is_empty()).then(|| own.selinux_context.clone()),
    };
    rcni_net::create_tap(ns, &spec).context(if spec.selinux_context.is_some() {
        "selinuxContext: failed to create tap"
    } else {
        "failed to create tap"
    })?;
    let mut ctr = handle_in(ns)?;
    let index = ctr
        .find_link(&tmp_name)
        .context("look up the new tap")?
        .index;
    // Deleted by index: the tap is renamed on the way.
    let tap = Undo::new(|| {
        if let Ok(mut ctr) = Handle::new_in(ns) {
            let _ = ctr.delete_link(index);
        }
    });
    if own.mtu != 0 {
        ctr.set_mtu(index, own.mtu as u32)
            .invalid_context(format!("mtu: failed to set MTU {}", own.mtu))?;
    }
    if let Some(mac) = mac {
        ctr.set_mac(index, mac)
            .context("failed to set the tap's MAC")?;
    }
    ctr.set_name(index, ifname)
        .context(format!("failed to rename tap to {ifname:?}"))?;
    if !own.bridge.is_empty() {
        let bridge = ctr
            .link_by_name(&own.bridge)
            .context("look up the bridge")?
            .filter(|l| matches!(l.kind, Some(rcni_net::LinkKind::Bridge { .. })))
            .ok_or_else(|| {
                invalid!(
                    "bridge: failed to get bridge {:?} in the container netns",
                    own.bridge
                )
            })?;
        ctr.set_master(index, Some(bridge.index)).context(format!(
            "failed to set tap {ifname} as a port of bridge {}",
            own.bridge
        ))?;
    }
    ctr.set_up(index)
        .context("failed to set tap interface up")?;
    let link = ctr
        .link_by_index(index)
        .context("look up the tap")?
        .ok_or_else(|| fail!("failed to refetch tap {ifname:?}"))?;
    tap.keep();
    Ok(Interface {
        name: ifname.to_string(),
        mac: link.mac_string(),
        sandbox: ns.path().to_string_lossy().into_owned(),
        ..Interface::default()
    })
}

/// tap's keys, as `rcni help tap` prints them.
pub const SCHEMA: Schema = Schema {
    about: "makes a persistent tap device in the container, for a VM monitor to attach to",
    keys: &[
        Key {
            name: "multiQueue",
            ty: "bool",
            default: "false",
            meaning: "make the tap multi-queue",
        },
        Key {
            name: "mtu",
            ty: "int (0-65535)",
            default: "0 (the kernel's)",
            meaning: "MTU of the tap",
        },
        Key {
            name: "mac",
            ty: "string",
            default: "random",
            meaning: "the tap's MAC address (runtime args override it)",
        },
        Key {
            name: "owner",
            ty: "uint32",
            default: "",
            meaning: "user ID allowed to use the tap",
        },
        Key {
            name: "group",
            ty: "uint32",
            default: "",
            meaning: "group ID allowed to use the tap",
        },
        Key {
            name: "selinuxContext",
            ty: "string",
            default: "",
            meaning: "SELinux context to create the tap with",
        },
        Key {
            name: "bridge",
            ty: "string",
            default: "",
            meaning: "a bridge in the container the tap becomes a port of",
        },
    ],
    capabilities: &["mac"],
    example: r#"{"cniVersion": "1.0.0", "name": "vmnet", "type": "tap", "multiQueue": true, "owner": 107, "ipam": {}}"#,
    check: |conf| {
        let own: TapConf = conf.plugin_fields()?;
        if own.mtu < 0 || own.mtu > i64::from(u16::MAX) {
            return Err(invalid!("mtu: invalid MTU {}", own.mtu));
        }
        configured_mac(conf, &own.mac, "").map(drop)
    },
};

impl Plugin for Tap {
    fn name(&self) -> &str {
        "tap"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let own: TapConf = conf.plugin_fields()?;
        if own.mtu < 0 || own.mtu > i64::from(u16::MAX) {
            return Err(invalid!("mtu: invalid MTU {}", own.mtu));
        }
        let mac = configured_mac(&conf, &own.mac, &args.args)?;
        let ns = crate::container::require_netns(args)?;
        let iface = create(&own, mac, &args.ifname, &ns)?;
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
        cl::del("tap", &args.conf()?, args)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        cl::check("tap", &conf, args, Some("tun"), |_| Ok(()))
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
        assert_eq!(SCHEMA.drift::<TapConf>(), Vec::<String>::new());
    }
}
