//! Link operations on a [`Handle`]: lookup, creation (veth, bridge,
//! dummy, macvlan, ipvlan, vlan, vrf, ifb), attribute changes, moves
//! between namespaces, deletion.

use crate::error::{NetError, Result};
use crate::framing::attribute;
use crate::link::{
    info, message, new_link_message, Link, LinkKind, LinkOptions, VethSpec, IFNAMSIZ_MAX,
};
use crate::mac::format_mac;
use crate::netns::NetNs;
use crate::socket::Handle;
use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind,
    InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// `IFLA_INET_CONF`: the IPv4 settings inside `IFLA_AF_SPEC`/`AF_INET`.
const IFLA_INET_CONF: u16 = 1;

/// IPv4 settings of a link, by their index in the kernel's
/// `IPV4_DEVCONF_*` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Conf {
    /// `arp_notify`: announce the link's address with a gratuitous ARP
    /// when it comes up or changes.
    ArpNotify = 22,
    /// `route_localnet`: route 127/8 sources to and from this link.
    RouteLocalnet = 26,
}

/// Four random bytes from the kernel (`getrandom`), with a time-based
/// fallback that never fails.
pub(crate) fn random_bytes() -> [u8; 4] {
    let mut bytes = [0u8; 4];
    match rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()) {
        Ok(4) => bytes,
        _ => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            (nanos ^ std::process::id().rotate_left(16)).to_le_bytes()
        }
    }
}

/// A veth end's queue counts (see [`Handle::create_veth`]).
fn one_queue_each_way() -> [LinkAttribute; 2] {
    [LinkAttribute::NumTxQueues(1), LinkAttribute::NumRxQueues(1)]
}

/// `veth` + 8 hex digits from 4 random bytes, as the reference names host
/// ends (e.g. `veth1a2b3c4d`).
pub fn random_veth_name() -> String {
    let b = random_bytes();
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// Refuses names the kernel would reject, and those with `%`, which the
/// kernel takes as a template (`eth%d` becomes `eth0`): a link made or
/// renamed so could not be found again by its name.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > IFNAMSIZ_MAX
        || name == "."
        || name == ".."
        || name
            .contains(|c: char| c == '/' || c == ':' || c == '%' || c == '\0' || c.is_whitespace())
    {
        return Err(NetError::InvalidArgument(format!(
            "invalid interface name {name:?}"
        )));
    }
    Ok(())
}

/// A link request that asks the kernel to leave out the counters
/// (`RTEXT_FILTER_SKIP_STATS`): rcni reads none, and summing a veth's
/// per-CPU counters and parsing them came with every link looked up.
fn without_stats(mut msg: LinkMessage) -> LinkMessage {
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    msg
}

impl Handle {
    /// Every link in the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.dump(
            RouteNetlinkMessage::GetLink(without_stats(LinkMessage::default())),
            "list links",
        )?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    fn get_link(&mut self, msg: LinkMessage, op: &str) -> Result<Option<Link>> {
        match self.get_one(RouteNetlinkMessage::GetLink(without_stats(msg)), op)? {
            Some(RouteNetlinkMessage::NewLink(l)) => Ok(Some(Link::from_message(&l))),
            _ => Ok(None),
        }
    }

    /// The link called `name`, if any. A name too long to exist gives
    /// `None`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        if name.is_empty() || name.len() > IFNAMSIZ_MAX {
            return Ok(None);
        }
        let mut msg = message(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg, &format!("look up link {name}"))
    }

    /// The link with `index`, if any.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        if index == 0 {
            return Ok(None);
        }
        self.get_link(message(index), &format!("look up link {index}"))
    }

    /// The link called `name`, or [`NetError::NotFound`].
    pub fn find_link(&mut self, name: &str) -> Result<Link> {
        self.link_by_name(name)?
            .ok_or_else(|| NetError::NotFound(format!("link {name:?}")))
    }

    fn new_link(&mut self, msg: LinkMessage, op: &str) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        )
    }

    /// Creates a veth pair (see [`VethSpec`]), each end with one transmit
    /// and one receive queue. Fails with `EEXIST` (see
    /// [`NetError::is_exists`]) when either name is taken.
    ///
    /// Without a queue count the kernel makes a queue per CPU, each with
    /// its sysfs directory, then disables all but one, which waits for an
    /// expedited RCU grace period under RTNL: about 0.1 ms of every ADD on
    /// two CPUs, more on larger nodes. Either way one queue is in use.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        check_name(&spec.name)?;
        check_name(&spec.peer_name)?;
        let mut peer = message(0);
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer_name.clone()));
        peer.attributes.extend(one_queue_each_way());
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(ns) = spec.peer_netns {
            peer.attributes
                .push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
        }
        let mut msg = message(0);
        msg.attributes
            .push(LinkAttribute::IfName(spec.name.clone()));
        msg.attributes.extend(one_queue_each_way());
        if let Some(mtu) = spec.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes.push(info(
            InfoKind::Veth,
            Some(InfoData::Veth(InfoVeth::Peer(peer))),
        ));
        self.new_link(
            msg,
            &format!("create veth {} <-> {}", spec.name, spec.peer_name),
        )
    }

    /// Creates a link of another kind. Fails with `EEXIST` when the name is
    /// taken (in the target namespace), `EOPNOTSUPP` when the kernel lacks
    /// the kind's module. A veth pair needs [`Handle::create_veth`].
    pub fn create_link(
        &mut self,
        name: &str,
        kind: &LinkKind,
        opts: &LinkOptions<'_>,
    ) -> Result<()> {
        check_name(name)?;
        if *kind == LinkKind::Veth {
            return Err(NetError::InvalidArgument(
                "a veth pair is made with create_veth".into(),
            ));
        }
        let msg = new_link_message(name, kind, opts);
        self.new_link(msg, &format!("create {} link {name}", kind.info_kind()))
    }

    fn set_link(&mut self, msg: LinkMessage, op: &str) -> Result<()> {
        self.request(RouteNetlinkMessage::SetLink(msg), 0, op)
    }

    fn set_flag(&mut self, index: u32, flag: LinkFlags, on: bool, op: &str) -> Result<()> {
        let mut msg = message(index);
        msg.header.change_mask = flag;
        if on {
            msg.header.flags = flag;
        }
        self.set_link(msg, op)
    }

    /// Sets the link administratively up.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, true, &format!("set link {index} up"))
    }

    /// Sets the link administratively down.
    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Up,
            false,
            &format!("set link {index} down"),
        )
    }

    /// Turns promiscuous mode on or off.
    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Promisc,
            on,
            &format!(
                "set promisc {} on link {index}",
                if on { "on" } else { "off" }
            ),
        )
    }

    /// Turns all-multicast mode on or off.
    pub fn set_allmulticast(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Allmulti,
            on,
            &format!(
                "set allmulticast {} on link {index}",
                if on { "on" } else { "off" }
            ),
        )
    }

    fn set_attr(&mut self, index: u32, attr: LinkAttribute, op: &str) -> Result<()> {
        let mut msg = message(index);
        msg.attributes.push(attr);
        self.set_link(msg, op)
    }

    /// Sets IPv4 settings of a link, the values of
    /// `/proc/sys/net/ipv4/conf/<link>/<setting>`, over netlink
    /// (`IFLA_INET_CONF`), which reaches them without a path lookup under
    /// `/proc/sys` (see [`crate::sysctl`] for why that lookup is slow on a
    /// node with many namespaces). Only the settings given change.
    pub fn set_ipv4_conf(&mut self, index: u32, settings: &[(Ipv4Conf, u32)]) -> Result<()> {
        let nested: Vec<u8> = settings
            .iter()
            .flat_map(|(setting, value)| attribute(*setting as u16, &value.to_ne_bytes()))
            .collect();
        let conf = AfSpecInet::Other(DefaultNla::new(IFLA_INET_CONF, nested));
        self.set_attr(
            index,
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![conf])]),
            &format!("set IPv4 settings {settings:?} of link {index}"),
        )
    }

    /// Sets the MTU.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Mtu(mtu),
            &format!("set mtu {mtu} on link {index}"),
        )
    }

    /// Sets the transmit queue length.
    pub fn set_txqlen(&mut self, index: u32, txqlen: u32) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::TxQueueLen(txqlen),
            &format!("set txqlen {txqlen} on link {index}"),
        )
    }

    /// Sets the hardware address.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Address(mac.to_vec()),
            &format!("set mac {} on link {index}", format_mac(&mac)),
        )
    }

    /// Renames a link (the kernel wants it down; `EBUSY` otherwise).
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        check_name(name)?;
        self.set_attr(
            index,
            LinkAttribute::IfName(name.to_string()),
            &format!("rename link {index} to {name}"),
        )
    }

    /// Sets `IFLA_IFALIAS`; an empty string removes it.
    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::IfAlias(alias.to_string()),
            &format!("set alias on link {index}"),
        )
    }

    /// Enslaves a link to a bridge/VRF (`Some`) or releases it (`None`).
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        let op = match master {
            Some(m) => format!("set master of link {index} to {m}"),
            None => format!("release link {index} from its master"),
        };
        self.set_attr(index, LinkAttribute::Controller(master.unwrap_or(0)), &op)
    }

    /// Moves a link into another namespace. Its index may change there.
    pub fn set_netns(&mut self, index: u32, ns: &NetNs) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::NetNsFd(ns.fd().as_raw_fd()),
            &format!("move link {index} to netns {}", ns.path().display()),
        )
    }

    fn set_bridge_port(&mut self, index: u32, setting: InfoBridgePort, op: &str) -> Result<()> {
        let mut msg = message(index);
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![setting])),
        ]));
        // Port settings go through RTM_NEWLINK on the existing link
        // (`ip link set dev X type bridge_slave ...`).
        self.request(RouteNetlinkMessage::NewLink(msg), 0, op)
    }

    /// Sets hairpin mode on a bridge port (`IFLA_BRPORT_MODE`).
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_bridge_port(
            index,
            InfoBridgePort::HairpinMode(on),
            &format!(
                "set hairpin {} on link {index}",
                if on { "on" } else { "off" }
            ),
        )
    }

    /// Isolates a bridge port (`IFLA_BRPORT_ISOLATED`): isolated ports
    /// only talk to non-isolated ones.
    pub fn set_isolated(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_bridge_port(
            index,
            InfoBridgePort::Isolated(on),
            &format!(
                "set isolated {} on link {index}",
                if on { "on" } else { "off" }
            ),
        )
    }

    /// Deletes a link (both ends, for a veth). A missing link gives an
    /// error for which [`NetError::is_not_found`] holds.
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelLink(message(index)),
            0,
            &format!("delete link {index}"),
        )
    }

    /// Polls (every 10 ms) until the link's operational state is UP;
    /// returns whether it got there before `timeout`.
    pub fn wait_oper_up(&mut self, index: u32, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let link = self
                .link_by_index(index)?
                .ok_or_else(|| NetError::NotFound(format!("link {index}")))?;
            if link.oper_up {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names() {
        let a = random_veth_name();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert!(a[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, random_veth_name());
    }

    #[test]
    fn veth_pairs_are_not_made_by_create_link() {
        // Refused before anything is sent.
        let err = Handle::new()
            .unwrap()
            .create_link("x0", &LinkKind::Veth, &LinkOptions::default())
            .unwrap_err();
        assert!(matches!(err, NetError::InvalidArgument(_)), "{err}");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("eth0").is_ok());
        assert!(check_name("123456789012345").is_ok());
        assert!(check_name("1234567890123456").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("eth%d").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name("eth0.100").is_ok());
    }
}
