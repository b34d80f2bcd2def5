//! `tap`: a persistent tap device in the container (for a VM monitor
//! such as QEMU or Firecracker to attach to), made over the tun driver,
//! optionally a port of a bridge in the container, with addresses from
//! IPAM or none.

use crate::common::{configured_mac, kernel_err};
use crate::container_link::{self as cl, Addressing};
use rcni_net::{Handle, NetNs, TapSpec};
use rcni_skel::{CmdArgs, Plugin};
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
    rcni_net::create_tap(ns, &spec).map_err(|e| {
        if spec.selinux_context.is_some() {
            CniError::internal(format!("selinuxContext: failed to create tap: {e}"))
        } else {
            CniError::internal(format!("failed to create tap: {e}"))
        }
    })?;
    let mut ctr = Handle::new_in(ns).map_err(kernel_err("open netlink in the container"))?;
    let index = ctr
        .find_link(&tmp_name)
        .map_err(kernel_err("look up the new tap"))?
        .index;
    let configured = (|| {
        if own.mtu != 0 {
            ctr.set_mtu(index, own.mtu as u32).map_err(|e| {
                CniError::invalid_config(format!("mtu: failed to set MTU {}: {e}", own.mtu))
            })?;
        }
        if let Some(mac) = mac {
            ctr.set_mac(index, mac)
                .map_err(|e| CniError::internal(format!("failed to set the tap's MAC: {e}")))?;
        }
        ctr.set_name(index, ifname)
            .map_err(|e| CniError::internal(format!("failed to rename tap to {ifname:?}: {e}")))?;
        if !own.bridge.is_empty() {
            let bridge = ctr
                .link_by_name(&own.bridge)
                .map_err(kernel_err("look up the bridge"))?
                .filter(|l| matches!(l.kind, Some(rcni_net::LinkKind::Bridge { .. })))
                .ok_or_else(|| {
                    CniError::invalid_config(format!(
                        "bridge: failed to get bridge {:?} in the container netns",
                        own.bridge
                    ))
                })?;
            ctr.set_master(index, Some(bridge.index)).map_err(|e| {
                CniError::internal(format!(
                    "failed to set tap {ifname} as a port of bridge {}: {e}",
                    own.bridge
                ))
            })?;
        }
        ctr.set_up(index)
            .map_err(|e| CniError::internal(format!("failed to set tap interface up: {e}")))?;
        ctr.link_by_index(index)
            .map_err(kernel_err("look up the tap"))?
            .ok_or_else(|| CniError::internal(format!("failed to refetch tap {ifname:?}")))
    })();
    match configured {
        Ok(link) => Ok(Interface {
            name: ifname.to_string(),
            mac: link.mac_string(),
            sandbox: ns.path().to_string_lossy().into_owned(),
            ..Interface::default()
        }),
        Err(e) => {
            let _ = ctr.delete_link(index);
            Err(e)
        }
    }
}

impl Plugin for Tap {
    fn name(&self) -> &str {
        "tap"
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let own: TapConf = conf.plugin_fields()?;
        if own.mtu < 0 || own.mtu > i64::from(u16::MAX) {
            return Err(CniError::invalid_config(format!(
                "mtu: invalid MTU {}",
                own.mtu
            )));
        }
        let mac = configured_mac(&conf, &own.mac, &args.args)?;
        let ns = cl::require_netns(args)?;
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
        cl::del(&args.conf()?, args)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = args.conf()?;
        cl::check("tap", &conf, args, Some("tun"), |_| Ok(()))
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::status(&args.conf()?, args)
    }
}
