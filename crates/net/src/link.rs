//! Links: lookup, creation (veth, bridge, dummy, macvlan, ipvlan, vlan,
//! vrf, ifb), and attribute changes.

use crate::error::{NetError, Result};
use crate::netns::NetNs;
use crate::socket::Handle;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth, InfoVlan, InfoVrf, IpVlanMode,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode, State,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::os::fd::AsRawFd;

/// What rcni needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`, `dummy`, ... (`None` for physical devices and lo).
    pub kind: Option<String>,
    pub mac: Option<Vec<u8>>,
    pub mtu: u32,
    pub admin_up: bool,
    pub oper_up: bool,
    pub promisc: bool,
    /// Index of the bridge (or VRF, bond) it is enslaved to.
    pub master: Option<u32>,
    /// IFLA_LINK: the peer of a veth, the parent of a macvlan/vlan.
    pub link: Option<u32>,
    /// The namespace id of `link` when it lives in another namespace.
    pub link_netnsid: Option<i32>,
    pub alias: Option<String>,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: 0,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            oper_up: false,
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = Some(a.clone()),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::Link(l) => link.link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::OperState(s) => link.oper_up = matches!(s, State::Up),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(k) = info {
                            link.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// The kinds of link rcni creates, with their parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Bridge {
        vlan_filtering: bool,
    },
    Dummy,
    Ifb,
    /// `mode`: private, vepa, bridge, passthru.
    MacVlan {
        master: u32,
        mode: String,
    },
    /// `mode`: l2, l3, l3s.
    IpVlan {
        master: u32,
        mode: String,
    },
    Vlan {
        master: u32,
        id: u16,
    },
    Vrf {
        table: u32,
    },
}

/// A veth pair: `name` here, `peer_name` here or in `peer_netns`.
pub struct VethSpec<'a> {
    pub name: String,
    pub peer_name: String,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub peer_mac: Option<[u8; 6]>,
    pub peer_netns: Option<&'a NetNs>,
}

/// `veth` + 8 hex digits from 4 random bytes, as the reference names host
/// ends.
pub fn random_veth_name() -> String {
    let mut bytes = [0u8; 4];
    if rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = (nanos ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    format!(
        "veth{:02x}{:02x}{:02x}{:02x}",
        bytes[0], bytes[1], bytes[2], bytes[3]
    )
}

fn message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

fn info(kind: InfoKind, data: Option<InfoData>) -> LinkAttribute {
    let mut infos = vec![LinkInfo::Kind(kind)];
    if let Some(d) = data {
        infos.push(LinkInfo::Data(d));
    }
    LinkAttribute::LinkInfo(infos)
}

fn macvlan_mode(mode: &str) -> Result<MacVlanMode> {
    Ok(match mode {
        "private" => MacVlanMode::Private,
        "vepa" => MacVlanMode::Vepa,
        "bridge" | "" => MacVlanMode::Bridge,
        "passthru" => MacVlanMode::Passthrough,
        other => {
            return Err(NetError::Protocol(format!(
                "unknown macvlan mode {other:?}"
            )))
        }
    })
}

fn ipvlan_mode(mode: &str) -> Result<IpVlanMode> {
    Ok(match mode {
        "l2" | "" => IpVlanMode::L2,
        "l3" => IpVlanMode::L3,
        "l3s" => IpVlanMode::L3S,
        other => return Err(NetError::Protocol(format!("unknown ipvlan mode {other:?}"))),
    })
}

impl Handle {
    /// Every link in the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let replies = self.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
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
        match self.get_one(RouteNetlinkMessage::GetLink(msg), op)? {
            Some(RouteNetlinkMessage::NewLink(l)) => Ok(Some(Link::from_message(&l))),
            _ => Ok(None),
        }
    }

    /// The link called `name`, if any.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = message(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg, &format!("look up link {name}"))
    }

    /// The link with `index`, if any.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        self.get_link(message(index), &format!("look up link {index}"))
    }

    fn new_link(&mut self, msg: LinkMessage, op: &str) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        )
    }

    /// Creates a veth pair.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        let mut peer = message(0);
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer_name.clone()));
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

    /// Creates a link of another kind, optionally with an MTU, a MAC, and
    /// directly inside another namespace.
    pub fn create_link(
        &mut self,
        name: &str,
        kind: &LinkKind,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        netns: Option<&NetNs>,
    ) -> Result<()> {
        let mut msg = message(0);
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(ns) = netns {
            msg.attributes
                .push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
        }
        let attr = match kind {
            LinkKind::Bridge { vlan_filtering } => info(
                InfoKind::Bridge,
                vlan_filtering.then(|| {
                    InfoData::Bridge(vec![netlink_packet_route::link::InfoBridge::VlanFiltering(
                        true,
                    )])
                }),
            ),
            LinkKind::Dummy => info(InfoKind::Dummy, None),
            LinkKind::Ifb => info(InfoKind::Ifb, None),
            LinkKind::MacVlan { master, mode } => {
                msg.attributes.push(LinkAttribute::Link(*master));
                info(
                    InfoKind::MacVlan,
                    Some(InfoData::MacVlan(vec![InfoMacVlan::Mode(macvlan_mode(
                        mode,
                    )?)])),
                )
            }
            LinkKind::IpVlan { master, mode } => {
                msg.attributes.push(LinkAttribute::Link(*master));
                info(
                    InfoKind::IpVlan,
                    Some(InfoData::IpVlan(vec![InfoIpVlan::Mode(ipvlan_mode(mode)?)])),
                )
            }
            LinkKind::Vlan { master, id } => {
                msg.attributes.push(LinkAttribute::Link(*master));
                info(
                    InfoKind::Vlan,
                    Some(InfoData::Vlan(vec![InfoVlan::Id(*id)])),
                )
            }
            LinkKind::Vrf { table } => info(
                InfoKind::Vrf,
                Some(InfoData::Vrf(vec![InfoVrf::TableId(*table)])),
            ),
        };
        msg.attributes.push(attr);
        self.new_link(msg, &format!("create link {name}"))
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

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, true, &format!("set link {index} up"))
    }

    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Up,
            false,
            &format!("set link {index} down"),
        )
    }

    pub fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Promisc,
            on,
            &format!("set promisc on link {index}"),
        )
    }

    fn set_attr(&mut self, index: u32, attr: LinkAttribute, op: &str) -> Result<()> {
        let mut msg = message(index);
        msg.attributes.push(attr);
        self.set_link(msg, op)
    }

    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Mtu(mtu),
            &format!("set mtu {mtu} on link {index}"),
        )
    }

    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Address(mac.to_vec()),
            &format!("set mac on link {index}"),
        )
    }

    /// Renames a link (it must be down).
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::IfName(name.to_string()),
            &format!("rename link {index} to {name}"),
        )
    }

    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::IfAlias(alias.to_string()),
            &format!("set alias on link {index}"),
        )
    }

    /// Enslaves a link to a bridge/VRF (`Some`) or releases it (`None`).
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Controller(master.unwrap_or(0)),
            &format!("set master of link {index}"),
        )
    }

    /// Moves a link into another namespace.
    pub fn set_netns(&mut self, index: u32, ns: &NetNs) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::NetNsFd(ns.fd().as_raw_fd()),
            &format!("move link {index} to a netns"),
        )
    }

    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelLink(message(index)),
            0,
            &format!("delete link {index}"),
        )
    }
}
