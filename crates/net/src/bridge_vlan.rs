//! Bridge port VLAN membership (the kernel's AF_BRIDGE messages, as
//! `bridge vlan` sends them).

use crate::error::Result;
use crate::socket::Handle;
use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, LinkAttribute, LinkExtentMask, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// One VLAN a bridge port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    /// The VLAN ID.
    pub vid: u16,
    /// Untagged frames on the port get this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port untagged.
    pub untagged: bool,
}

fn bridge_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.interface_family = AddressFamily::Bridge;
    msg.header.index = index;
    msg
}

impl Handle {
    fn vlan_message(index: u32, vlan: PortVlan) -> LinkMessage {
        let mut flags = BridgeVlanInfoFlags::empty();
        if vlan.pvid {
            flags |= BridgeVlanInfoFlags::Pvid;
        }
        if vlan.untagged {
            flags |= BridgeVlanInfoFlags::Untagged;
        }
        let mut msg = bridge_message(index);
        msg.attributes
            .push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
                BridgeVlanInfo {
                    flags,
                    vid: vlan.vid,
                },
            )]));
        msg
    }

    /// Adds a port to a VLAN (the bridge needs vlan_filtering).
    pub fn bridge_vlan_add(&mut self, index: u32, vlan: PortVlan) -> Result<()> {
        self.request(
            RouteNetlinkMessage::SetLink(Self::vlan_message(index, vlan)),
            0,
            &format!("add vlan {} to link {index}", vlan.vid),
        )
    }

    /// Removes a port from a VLAN.
    pub fn bridge_vlan_del(&mut self, index: u32, vid: u16) -> Result<()> {
        let vlan = PortVlan {
            vid,
            pvid: false,
            untagged: false,
        };
        self.request(
            RouteNetlinkMessage::DelLink(Self::vlan_message(index, vlan)),
            0,
            &format!("remove vlan {vid} from link {index}"),
        )
    }

    /// The VLANs of a bridge port.
    pub fn bridge_vlans(&mut self, index: u32) -> Result<Vec<PortVlan>> {
        let mut req = bridge_message(0);
        req.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let replies = self.dump(RouteNetlinkMessage::GetLink(req), "list bridge vlans")?;
        let mut out = Vec::new();
        for reply in replies {
            let RouteNetlinkMessage::NewLink(msg) = reply else {
                continue;
            };
            if msg.header.index != index {
                continue;
            }
            for attr in &msg.attributes {
                if let LinkAttribute::AfSpecBridge(specs) = attr {
                    for spec in specs {
                        if let AfSpecBridge::VlanInfo(info) = spec {
                            out.push(PortVlan {
                                vid: info.vid,
                                pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                                untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}
