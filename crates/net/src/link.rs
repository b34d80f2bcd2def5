//! The link model: what rcni reads of a link ([`Link`]), the kinds it
//! creates with their parameters ([`LinkKind`] and its modes), the options
//! of a new link, and their netlink encoding and decoding. The operations
//! are in [`crate::link_ops`].

use crate::mac::format_mac;
use crate::netns::NetNs;
use netlink_packet_route::link::{
    InfoBridge, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, InfoVrf, IpVlanFlags,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State,
};
use std::fmt;
use std::os::fd::AsRawFd;

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const IFNAMSIZ_MAX: usize = 15;

/// What rcni needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (in its own namespace).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` with the kind-specific settings the kernel reports
    /// (`None` for physical devices and `lo`).
    pub kind: Option<LinkKind>,
    /// Hardware address (6 bytes for Ethernet-like links).
    pub mac: Option<Vec<u8>>,
    /// MTU.
    pub mtu: u32,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFLA_OPERSTATE` is `UP`.
    pub oper_up: bool,
    /// `IFF_PROMISC`.
    pub promisc: bool,
    /// `IFF_ALLMULTI`: all multicast frames are received.
    pub allmulti: bool,
    /// `IFLA_TXQLEN`: the transmit queue length.
    pub txqlen: u32,
    /// Index of the bridge (or VRF, bond) it is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the peer of a veth, the parent of a macvlan/vlan. When
    /// [`Link::link_netnsid`] is set the index is in that other namespace.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the namespace id (as seen from this link's
    /// namespace) where `link` lives, when that is another namespace.
    pub link_netnsid: Option<i32>,
    /// `IFLA_IFALIAS`.
    pub alias: Option<String>,
}

impl Link {
    pub(crate) fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: 0,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            oper_up: false,
            promisc: msg.header.flags.contains(LinkFlags::Promisc),
            allmulti: msg.header.flags.contains(LinkFlags::Allmulti),
            txqlen: 0,
            master: None,
            link: None,
            link_netnsid: None,
            alias: None,
        };
        let mut kind = None;
        let mut data = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = Some(a.clone()),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::TxQueueLen(q) => link.txqlen = *q,
                LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
                LinkAttribute::Link(l) if *l != 0 => link.link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::OperState(s) => link.oper_up = matches!(s, State::Up),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => kind = Some(k.to_string()),
                            LinkInfo::Data(d) => data = Some(d),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link.kind = kind.map(|k| LinkKind::from_kernel(k, data, link.link));
        link
    }

    /// The hardware address as a 6-byte MAC, if it is one.
    pub fn mac6(&self) -> Option<[u8; 6]> {
        self.mac.as_deref().and_then(|m| m.try_into().ok())
    }

    /// The hardware address as `aa:bb:cc:dd:ee:ff` (empty if none).
    pub fn mac_string(&self) -> String {
        self.mac.as_deref().map(format_mac).unwrap_or_default()
    }
}

/// Macvlan modes (`IFLA_MACVLAN_MODE`), shown by their `ip link` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacVlanMode {
    /// Frames between macvlans of one parent are dropped.
    Private,
    /// Frames between macvlans go out through the parent's switch.
    Vepa,
    /// Macvlans of one parent talk to each other directly (the default).
    #[default]
    Bridge,
    /// One macvlan takes over the parent.
    Passthru,
    /// Source-MAC based (not settable from CNI configs).
    Source,
}

impl fmt::Display for MacVlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MacVlanMode::Private => "private",
            MacVlanMode::Vepa => "vepa",
            MacVlanMode::Bridge => "bridge",
            MacVlanMode::Passthru => "passthru",
            MacVlanMode::Source => "source",
        })
    }
}

impl MacVlanMode {
    fn to_npr(self) -> netlink_packet_route::link::MacVlanMode {
        use netlink_packet_route::link::MacVlanMode as M;
        match self {
            MacVlanMode::Private => M::Private,
            MacVlanMode::Vepa => M::Vepa,
            MacVlanMode::Bridge => M::Bridge,
            MacVlanMode::Passthru => M::Passthrough,
            MacVlanMode::Source => M::Source,
        }
    }

    fn from_npr(m: &netlink_packet_route::link::MacVlanMode) -> Option<Self> {
        use netlink_packet_route::link::MacVlanMode as M;
        Some(match m {
            M::Private => MacVlanMode::Private,
            M::Vepa => MacVlanMode::Vepa,
            M::Bridge => MacVlanMode::Bridge,
            M::Passthrough => MacVlanMode::Passthru,
            M::Source => MacVlanMode::Source,
            _ => return None,
        })
    }
}

/// Ipvlan modes (`IFLA_IPVLAN_MODE`), shown by their `ip link` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpVlanMode {
    /// Layer 2 (the default).
    #[default]
    L2,
    /// Layer 3.
    L3,
    /// Layer 3 with netfilter on the slave ("l3s").
    L3s,
}

impl fmt::Display for IpVlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpVlanMode::L2 => "l2",
            IpVlanMode::L3 => "l3",
            IpVlanMode::L3s => "l3s",
        })
    }
}

/// Ipvlan flags (`IFLA_IPVLAN_FLAGS`), shown by their `ip link` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpVlanFlag {
    /// Slaves of one parent talk to each other (the default, flags 0).
    #[default]
    Bridge,
    /// `IPVLAN_F_PRIVATE`.
    Private,
    /// `IPVLAN_F_VEPA`.
    Vepa,
}

impl fmt::Display for IpVlanFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpVlanFlag::Bridge => "bridge",
            IpVlanFlag::Private => "private",
            IpVlanFlag::Vepa => "vepa",
        })
    }
}

/// A link's kind with its parameters: what [`Link::kind`] reports, and
/// (except [`LinkKind::Veth`] and [`LinkKind::Other`]) what
/// [`Handle::create_link`](crate::Handle::create_link) makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A bridge; `vlan_filtering` sets `IFLA_BR_VLAN_FILTERING` (only sent
    /// when true, as the reference does).
    Bridge {
        /// Enable VLAN filtering.
        vlan_filtering: bool,
    },
    /// A dummy device.
    Dummy,
    /// An intermediate functional block device (bandwidth's ingress).
    Ifb,
    /// A macvlan on `master` (index in the handle's namespace).
    MacVlan {
        /// Parent link index.
        master: u32,
        /// Mode.
        mode: MacVlanMode,
        /// `IFLA_MACVLAN_BC_QUEUE_LEN` (kernel >= 5.11), sent when set.
        bc_queue_len: Option<u32>,
    },
    /// An ipvlan on `master`.
    IpVlan {
        /// Parent link index.
        master: u32,
        /// Mode.
        mode: IpVlanMode,
        /// Flag.
        flag: IpVlanFlag,
    },
    /// An 802.1Q VLAN on `master`.
    Vlan {
        /// Parent link index.
        master: u32,
        /// VLAN id.
        id: u16,
    },
    /// A VRF bound to a routing table.
    Vrf {
        /// Routing table id.
        table: u32,
    },
    /// One end of a veth pair (made with
    /// [`Handle::create_veth`](crate::Handle::create_veth)).
    Veth,
    /// A kind rcni does not model (`tun`, `bond`, `vxlan`, ...), by the
    /// kernel's name; also a modelled kind whose settings the kernel did
    /// not report.
    Other(String),
}

impl LinkKind {
    pub(crate) fn info_kind(&self) -> InfoKind {
        match self {
            LinkKind::Bridge { .. } => InfoKind::Bridge,
            LinkKind::Dummy => InfoKind::Dummy,
            LinkKind::Ifb => InfoKind::Ifb,
            LinkKind::MacVlan { .. } => InfoKind::MacVlan,
            LinkKind::IpVlan { .. } => InfoKind::IpVlan,
            LinkKind::Vlan { .. } => InfoKind::Vlan,
            LinkKind::Vrf { .. } => InfoKind::Vrf,
            LinkKind::Veth => InfoKind::Veth,
            LinkKind::Other(name) => InfoKind::Other(name.clone()),
        }
    }

    /// The kernel's name of the kind (`IFLA_INFO_KIND`), as `ip -d link`
    /// shows it and error messages name it.
    pub fn name(&self) -> &str {
        match self {
            LinkKind::Bridge { .. } => "bridge",
            LinkKind::Dummy => "dummy",
            LinkKind::Ifb => "ifb",
            LinkKind::MacVlan { .. } => "macvlan",
            LinkKind::IpVlan { .. } => "ipvlan",
            LinkKind::Vlan { .. } => "vlan",
            LinkKind::Vrf { .. } => "vrf",
            LinkKind::Veth => "veth",
            LinkKind::Other(name) => name,
        }
    }

    /// `IFLA_LINK` for kinds stacked on a parent.
    fn parent(&self) -> Option<u32> {
        match self {
            LinkKind::MacVlan { master, .. }
            | LinkKind::IpVlan { master, .. }
            | LinkKind::Vlan { master, .. } => Some(*master),
            _ => None,
        }
    }

    fn info_data(&self) -> Option<InfoData> {
        match self {
            LinkKind::Bridge { vlan_filtering } => {
                vlan_filtering.then(|| InfoData::Bridge(vec![InfoBridge::VlanFiltering(true)]))
            }
            LinkKind::Dummy | LinkKind::Ifb | LinkKind::Veth | LinkKind::Other(_) => None,
            LinkKind::MacVlan {
                mode, bc_queue_len, ..
            } => {
                let mut v = vec![InfoMacVlan::Mode(mode.to_npr())];
                if let Some(q) = bc_queue_len {
                    v.push(InfoMacVlan::BcQueueLen(*q));
                }
                Some(InfoData::MacVlan(v))
            }
            LinkKind::IpVlan { mode, flag, .. } => {
                use netlink_packet_route::link::IpVlanMode as M;
                let mode = match mode {
                    IpVlanMode::L2 => M::L2,
                    IpVlanMode::L3 => M::L3,
                    IpVlanMode::L3s => M::L3S,
                };
                let flags = match flag {
                    IpVlanFlag::Bridge => IpVlanFlags::empty(),
                    IpVlanFlag::Private => IpVlanFlags::Private,
                    IpVlanFlag::Vepa => IpVlanFlags::Vepa,
                };
                Some(InfoData::IpVlan(vec![
                    InfoIpVlan::Mode(mode),
                    InfoIpVlan::Flags(flags),
                ]))
            }
            LinkKind::Vlan { id, .. } => Some(InfoData::Vlan(vec![InfoVlan::Id(*id)])),
            LinkKind::Vrf { table } => Some(InfoData::Vrf(vec![InfoVrf::TableId(*table)])),
        }
    }

    /// Rebuilds the description from a dumped link.
    fn from_kernel(kind: String, data: Option<&InfoData>, link: Option<u32>) -> Self {
        Self::modelled(&kind, data, link).unwrap_or(LinkKind::Other(kind))
    }

    /// The kinds rcni models, with their settings.
    fn modelled(kind: &str, data: Option<&InfoData>, link: Option<u32>) -> Option<Self> {
        let master = link.unwrap_or(0);
        Some(match (kind, data) {
            ("veth", _) => LinkKind::Veth,
            ("dummy", _) => LinkKind::Dummy,
            ("ifb", _) => LinkKind::Ifb,
            ("bridge", d) => LinkKind::Bridge {
                vlan_filtering: match d {
                    Some(InfoData::Bridge(v)) => v
                        .iter()
                        .any(|i| matches!(i, InfoBridge::VlanFiltering(true))),
                    _ => false,
                },
            },
            ("macvlan", Some(InfoData::MacVlan(v))) => LinkKind::MacVlan {
                master,
                mode: v
                    .iter()
                    .find_map(|i| match i {
                        InfoMacVlan::Mode(m) => MacVlanMode::from_npr(m),
                        _ => None,
                    })
                    .unwrap_or_default(),
                bc_queue_len: v.iter().find_map(|i| match i {
                    InfoMacVlan::BcQueueLen(q) => Some(*q),
                    _ => None,
                }),
            },
            ("ipvlan", Some(InfoData::IpVlan(v))) => {
                use netlink_packet_route::link::IpVlanMode as M;
                let mut mode = IpVlanMode::L2;
                let mut flag = IpVlanFlag::Bridge;
                for i in v {
                    match i {
                        InfoIpVlan::Mode(M::L3) => mode = IpVlanMode::L3,
                        InfoIpVlan::Mode(M::L3S) => mode = IpVlanMode::L3s,
                        InfoIpVlan::Flags(f) if f.contains(IpVlanFlags::Private) => {
                            flag = IpVlanFlag::Private
                        }
                        InfoIpVlan::Flags(f) if f.contains(IpVlanFlags::Vepa) => {
                            flag = IpVlanFlag::Vepa
                        }
                        _ => {}
                    }
                }
                LinkKind::IpVlan { master, mode, flag }
            }
            ("vlan", Some(InfoData::Vlan(v))) => LinkKind::Vlan {
                master,
                id: v.iter().find_map(|i| match i {
                    InfoVlan::Id(id) => Some(*id),
                    _ => None,
                })?,
            },
            ("vrf", Some(InfoData::Vrf(v))) => LinkKind::Vrf {
                table: v.iter().find_map(|i| match i {
                    InfoVrf::TableId(t) => Some(*t),
                    _ => None,
                })?,
            },
            _ => return None,
        })
    }
}

/// Settings common to every new link.
#[derive(Debug, Clone, Default)]
pub struct LinkOptions<'a> {
    /// MTU.
    pub mtu: Option<u32>,
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// `IFLA_TXQLEN`.
    pub txqlen: Option<u32>,
    /// Create the link directly inside this namespace (`IFLA_NET_NS_FD`).
    /// Parent indexes (`master` of macvlan/ipvlan/vlan) are still looked
    /// up in the handle's namespace.
    pub netns: Option<&'a NetNs>,
    /// Create it administratively up.
    pub up: bool,
}

/// A veth pair: `name` is created in the handle's namespace, `peer_name` in
/// `peer_netns` (or next to it when `None`). Both ends get `mtu`.
///
/// To follow the reference's layout (pair made in the container, host end
/// moved out), use a handle in the container namespace with the container
/// interface as `name` and the host namespace as `peer_netns`; the other
/// way round works as well. Either way nothing is moved after creation.
#[derive(Debug, Clone, Default)]
pub struct VethSpec<'a> {
    /// Name of the end in the handle's namespace.
    pub name: String,
    /// Name of the other end.
    pub peer_name: String,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of `name`.
    pub mac: Option<[u8; 6]>,
    /// MAC of `peer_name`.
    pub peer_mac: Option<[u8; 6]>,
    /// Where the peer is created.
    pub peer_netns: Option<&'a NetNs>,
}

pub(crate) fn message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

pub(crate) fn info(kind: InfoKind, data: Option<InfoData>) -> LinkAttribute {
    let mut infos = vec![LinkInfo::Kind(kind)];
    if let Some(d) = data {
        infos.push(LinkInfo::Data(d));
    }
    LinkAttribute::LinkInfo(infos)
}

/// The RTM_NEWLINK message for [`Handle::create_link`].
pub(crate) fn new_link_message(name: &str, kind: &LinkKind, opts: &LinkOptions<'_>) -> LinkMessage {
    let mut msg = message(0);
    if opts.up {
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
    }
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mtu) = opts.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = opts.mac {
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(q) = opts.txqlen {
        msg.attributes.push(LinkAttribute::TxQueueLen(q));
    }
    if let Some(parent) = kind.parent() {
        msg.attributes.push(LinkAttribute::Link(parent));
    }
    if let Some(ns) = opts.netns {
        msg.attributes
            .push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
    }
    msg.attributes
        .push(info(kind.info_kind(), kind.info_data()));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn roundtrip(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).unwrap()
    }

    #[test]
    fn unmodelled_kinds_keep_their_name() {
        for (kind, want) in [
            (InfoKind::Veth, LinkKind::Veth),
            (InfoKind::Other("tun".into()), LinkKind::Other("tun".into())),
            // A vlan whose id the kernel did not report.
            (InfoKind::Vlan, LinkKind::Other("vlan".into())),
        ] {
            let mut msg = message(3);
            msg.attributes.push(info(kind, None));
            let link = Link::from_message(&roundtrip(&msg));
            assert_eq!(link.kind, Some(want));
        }
        assert_eq!(Link::from_message(&roundtrip(&message(1))).kind, None);
        assert_eq!(LinkKind::Other("tun".into()).name(), "tun");
    }

    #[test]
    fn kinds_encode_and_decode() {
        let kinds = [
            LinkKind::Bridge {
                vlan_filtering: true,
            },
            LinkKind::Bridge {
                vlan_filtering: false,
            },
            LinkKind::Dummy,
            LinkKind::Ifb,
            LinkKind::MacVlan {
                master: 4,
                mode: MacVlanMode::Vepa,
                bc_queue_len: Some(100),
            },
            LinkKind::IpVlan {
                master: 5,
                mode: IpVlanMode::L3s,
                flag: IpVlanFlag::Private,
            },
            LinkKind::Vlan { master: 6, id: 42 },
            LinkKind::Vrf { table: 1001 },
        ];
        for kind in kinds {
            let opts = LinkOptions {
                mtu: Some(1400),
                mac: Some([2, 0, 0, 0, 0, 9]),
                up: true,
                ..LinkOptions::default()
            };
            let msg = new_link_message("x0", &kind, &opts);
            let link = Link::from_message(&roundtrip(&msg));
            assert_eq!(link.name, "x0");
            assert_eq!(link.mtu, 1400);
            assert!(link.admin_up);
            assert_eq!(link.mac6(), Some([2, 0, 0, 0, 0, 9]));
            assert_eq!(link.mac_string(), "02:00:00:00:00:09");
            assert_eq!(
                link.kind.as_ref().map(LinkKind::name),
                Some(kind.info_kind().to_string().as_str())
            );
            assert_eq!(link.kind.as_ref(), Some(&kind), "{kind:?}");
        }
    }
}
