//! Interface addresses.

use crate::error::{NetError, Result};
use crate::socket::Handle;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    /// The address with its prefix, host bits kept: `10.1.2.3/24`.
    pub net: IpNet,
    pub scope: u8,
    /// IFA_F_* flags (e.g. 0x40 tentative, 0x08 DAD failed).
    pub flags: u32,
    pub label: Option<String>,
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(net.addr());
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(net.addr()));
    msg.attributes.push(AddressAttribute::Address(net.addr()));
    msg
}

fn from_message(msg: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut label = None;
    let mut flags = u32::from(msg.header.flags.bits());
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    // For point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
    let ip = local.or(address)?;
    Some(Address {
        index: msg.header.index,
        net: IpNet::new(ip, msg.header.prefix_len).ok()?,
        scope: u8::from(msg.header.scope),
        flags,
        label,
    })
}

impl Handle {
    /// Addresses of one link (`Some(index)`) or of all links.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut req = AddressMessage::default();
        req.header.index = index.unwrap_or(0);
        let replies = self.dump(RouteNetlinkMessage::GetAddress(req), "list addresses")?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => from_message(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Adds `net` (address and prefix) to a link.
    pub fn add_address(&mut self, index: u32, net: IpNet) -> Result<()> {
        let mut msg = message(index, net);
        msg.header.scope = AddressScope::Universe;
        if let IpAddr::V4(v4) = net.addr() {
            if net.prefix_len() < 31 {
                if let IpNet::V4(n) = net {
                    msg.attributes
                        .push(AddressAttribute::Broadcast(n.broadcast()));
                }
            }
            let _ = v4;
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {net} to link {index}"),
        )
    }

    /// Removes `net` from a link.
    pub fn delete_address(&mut self, index: u32, net: IpNet) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelAddress(message(index, net)),
            0,
            &format!("delete address {net} from link {index}"),
        )
        // The kernel says EADDRNOTAVAIL for a missing address; report it as
        // "not found" like every other missing object.
        .map_err(|e| match e {
            NetError::Netlink { op, errno: 99 } => NetError::Netlink { op, errno: 2 },
            other => other,
        })
    }
}
