//! Interface addresses.

use crate::error::{NetError, Result, EADDRNOTAVAIL};
use crate::socket::Handle;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// `IFA_F_SECONDARY`.
pub const IFA_F_SECONDARY: u32 = 0x01;
/// `IFA_F_NODAD`.
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_DADFAILED`: duplicate address detection failed.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE`: duplicate address detection still running.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_PERMANENT`: configured, not autoconfigured.
pub const IFA_F_PERMANENT: u32 = 0x80;
/// `IFA_F_NOPREFIXROUTE`.
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Index of the link it is on.
    pub index: u32,
    /// The address with its prefix, host bits kept: `10.1.2.3/24`.
    pub net: IpNet,
    /// `RT_SCOPE_*` (0 universe, 253 link, 254 host).
    pub scope: u8,
    /// `IFA_F_*` flags (from `IFA_FLAGS` when present, so all 32 bits),
    /// e.g. [`IFA_F_TENTATIVE`], [`IFA_F_DADFAILED`].
    pub flags: u32,
    /// `IFA_LABEL` (IPv4 only).
    pub label: Option<String>,
}

impl Address {
    /// Duplicate address detection is still running.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }

    /// Duplicate address detection found a duplicate.
    pub fn is_dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// The RTM_NEWADDR / RTM_DELADDR message for `net` on `index`.
fn message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family(net.addr());
    msg.header.prefix_len = net.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(net.addr()));
    msg.attributes.push(AddressAttribute::Address(net.addr()));
    msg
}

fn add_message(index: u32, net: IpNet) -> AddressMessage {
    let mut msg = message(index, net);
    // As `ip addr add`: host scope for IPv4 loopback addresses (the kernel
    // refuses them with scope universe), universe otherwise.
    msg.header.scope = match net.addr() {
        IpAddr::V4(v4) if v4.is_loopback() => AddressScope::Host,
        _ => AddressScope::Universe,
    };
    // As `ip addr add ... brd +` and the reference's netlink library do.
    if let IpNet::V4(n) = net {
        if n.prefix_len() < 31 {
            msg.attributes
                .push(AddressAttribute::Broadcast(n.broadcast()));
        }
    }
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
    // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
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
    /// Addresses (both families) of one link (`Some(index)`) or of all
    /// links: IPv4's, then IPv6's.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut all = self.family_addresses(index, AddressFamily::Inet)?;
        all.extend(self.family_addresses(index, AddressFamily::Inet6)?);
        Ok(all)
    }

    /// The addresses of one link in the family of `ip`.
    pub fn addresses_like(&mut self, index: u32, ip: IpAddr) -> Result<Vec<Address>> {
        self.family_addresses(Some(index), family(ip))
    }

    /// One family's addresses. A dump of one family is served without
    /// RTNL, where a dump of both at once (`AF_UNSPEC`) takes it and waits
    /// for whoever holds it: on a node with many veths, the link watcher
    /// (measured: about 0.1 ms of CPU spinning per bridge ADD). A kernel
    /// without the family answers with what it has, so answers of the
    /// other family are dropped.
    fn family_addresses(
        &mut self,
        index: Option<u32>,
        family: AddressFamily,
    ) -> Result<Vec<Address>> {
        let mut req = AddressMessage::default();
        req.header.family = family;
        // With strict checking the kernel filters by index itself.
        req.header.index = index.unwrap_or(0);
        let replies = self.dump(RouteNetlinkMessage::GetAddress(req), "list addresses")?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.family == family => from_message(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Adds `net` (address and prefix length, e.g. `10.1.2.3/24`) to a
    /// link, with scope universe (host for 127.0.0.0/8), and for IPv4 up
    /// to /30 the broadcast address, as `ip addr add ... brd +`. An address already there gives `EEXIST`
    /// ([`NetError::is_exists`]).
    pub fn add_address(&mut self, index: u32, net: IpNet) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewAddress(add_message(index, net)),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {net} to link {index}"),
        )
    }

    /// Removes `net` from a link. A missing address gives
    /// [`NetError::NotFound`] (the kernel says `EADDRNOTAVAIL`).
    pub fn delete_address(&mut self, index: u32, net: IpNet) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelAddress(message(index, net)),
            0,
            &format!("delete address {net} from link {index}"),
        )
        .map_err(|e| match e {
            NetError::Netlink {
                errno: EADDRNOTAVAIL,
                ..
            } => NetError::NotFound(format!("address {net} on link {index}")),
            other => other,
        })
    }

    /// Waits until no IPv6 address of the link is tentative (duplicate
    /// address detection done), polling every 50 ms, as the reference's
    /// `ip.SettleAddresses`: an address whose DAD failed is an error; at
    /// the deadline, still-tentative addresses are an error only if the
    /// link is operationally up (DAD does not progress on a down link).
    pub fn settle_addresses(&mut self, index: u32, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let addrs = self.family_addresses(Some(index), AddressFamily::Inet6)?;
            if let Some(a) = addrs.iter().find(|a| a.is_dad_failed()) {
                return Err(NetError::InvalidArgument(format!(
                    "link {index} has address {} in DADFAILED state",
                    a.net.addr()
                )));
            }
            if !addrs.iter().any(Address::is_tentative) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let up = self.link_by_index(index)?.is_some_and(|l| l.oper_up);
                if up {
                    return Err(NetError::Protocol(format!(
                        "link {index} still has tentative addresses after {timeout:?}"
                    )));
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn roundtrip(msg: &AddressMessage) -> AddressMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        AddressMessage::parse(buf.as_slice()).unwrap()
    }

    #[test]
    fn v4_gets_a_broadcast_below_31() {
        let net: IpNet = "10.1.2.3/24".parse().unwrap();
        let msg = roundtrip(&add_message(7, net));
        assert!(msg
            .attributes
            .contains(&AddressAttribute::Broadcast("10.1.2.255".parse().unwrap())));
        let a = from_message(&msg).unwrap();
        assert_eq!((a.index, a.net, a.scope), (7, net, 0));
        let p2p = add_message(7, "10.1.2.3/31".parse().unwrap());
        assert!(!p2p
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
    }

    #[test]
    fn v6_keeps_host_bits() {
        let net: IpNet = "fd00::5/64".parse().unwrap();
        let msg = roundtrip(&add_message(3, net));
        assert_eq!(msg.header.family, AddressFamily::Inet6);
        assert_eq!(from_message(&msg).unwrap().net, net);
    }
}
