//! Links: lookup, creation (veth, bridge, dummy, macvlan, ipvlan, vlan,
//! vrf, ifb), and attribute changes.

use crate::error::{NetError, Result};
use crate::netns::NetNs;
use crate::socket::Handle;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoPortData,
    InfoPortKind, InfoVeth, InfoVlan, InfoVrf, IpVlanFlags, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage, State,
};
use netlink_packet_route::RouteNetlinkMessage;
use std::fmt;
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
pub const IFNAMSIZ_MAX: usize = 15;

/// What rcni needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (in its own namespace).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND`: `veth`, `bridge`, `dummy`, `macvlan`, ... (`None`
    /// for physical devices and `lo`).
    pub kind: Option<String>,
    /// Kind-specific settings as the kernel reports them, for the kinds
    /// [`LinkKind`] describes (veth has none).
    pub info: Option<LinkKind>,
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
    fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            info: None,
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
        let mut data = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = Some(a.clone()),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
                LinkAttribute::Link(l) if *l != 0 => link.link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::OperState(s) => link.oper_up = matches!(s, State::Up),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => link.kind = Some(k.to_string()),
                            LinkInfo::Data(d) => data = Some(d),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link.info = LinkKind::from_kernel(link.kind.as_deref(), data, link.link);
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

/// Formats a hardware address as lower-case hex pairs joined by `:`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a 6-byte MAC (`aa:bb:cc:dd:ee:ff` or with `-`; case-insensitive).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || NetError::InvalidArgument(format!("invalid MAC address {s:?}"));
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in &mut out {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

/// Macvlan modes (`IFLA_MACVLAN_MODE`). Parses the CNI config strings:
/// `""`/`bridge`, `private`, `vepa`, `passthru`.
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

impl FromStr for MacVlanMode {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "bridge" => MacVlanMode::Bridge,
            "private" => MacVlanMode::Private,
            "vepa" => MacVlanMode::Vepa,
            "passthru" => MacVlanMode::Passthru,
            other => {
                return Err(NetError::InvalidArgument(format!(
                    "unknown macvlan mode: {other:?}"
                )))
            }
        })
    }
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

/// Ipvlan modes (`IFLA_IPVLAN_MODE`). Parses `""`/`l2`, `l3`, `l3s`.
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

impl FromStr for IpVlanMode {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "l2" => IpVlanMode::L2,
            "l3" => IpVlanMode::L3,
            "l3s" => IpVlanMode::L3s,
            other => {
                return Err(NetError::InvalidArgument(format!(
                    "unknown ipvlan mode: {other:?}"
                )))
            }
        })
    }
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

/// Ipvlan flags (`IFLA_IPVLAN_FLAGS`). Parses `""`/`bridge`, `private`,
/// `vepa`.
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

impl FromStr for IpVlanFlag {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "bridge" => IpVlanFlag::Bridge,
            "private" => IpVlanFlag::Private,
            "vepa" => IpVlanFlag::Vepa,
            other => {
                return Err(NetError::InvalidArgument(format!(
                    "unknown ipvlan flag: {other:?}"
                )))
            }
        })
    }
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

/// The kinds of link [`Handle::create_link`] makes, with their parameters.
/// Also what [`Link::info`] reports back.
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
}

impl LinkKind {
    fn info_kind(&self) -> InfoKind {
        match self {
            LinkKind::Bridge { .. } => InfoKind::Bridge,
            LinkKind::Dummy => InfoKind::Dummy,
            LinkKind::Ifb => InfoKind::Ifb,
            LinkKind::MacVlan { .. } => InfoKind::MacVlan,
            LinkKind::IpVlan { .. } => InfoKind::IpVlan,
            LinkKind::Vlan { .. } => InfoKind::Vlan,
            LinkKind::Vrf { .. } => InfoKind::Vrf,
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
            LinkKind::Dummy | LinkKind::Ifb => None,
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
    fn from_kernel(kind: Option<&str>, data: Option<&InfoData>, link: Option<u32>) -> Option<Self> {
        let master = link.unwrap_or(0);
        Some(match (kind?, data) {
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

/// `veth` + 8 hex digits from 4 random bytes, as the reference names host
/// ends (e.g. `veth1a2b3c4d`).
pub fn random_veth_name() -> String {
    let b = random_bytes();
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
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

    /// Creates a veth pair (see [`VethSpec`]). Fails with `EEXIST` (see
    /// [`NetError::is_exists`]) when either name is taken.
    pub fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        check_name(&spec.name)?;
        check_name(&spec.peer_name)?;
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

    /// Creates a link of another kind. Fails with `EEXIST` when the name is
    /// taken (in the target namespace), `EOPNOTSUPP` when the kernel lacks
    /// the kind's module.
    pub fn create_link(
        &mut self,
        name: &str,
        kind: &LinkKind,
        opts: &LinkOptions<'_>,
    ) -> Result<()> {
        check_name(name)?;
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

/// The RTM_NEWLINK message for [`Handle::create_link`].
fn new_link_message(name: &str, kind: &LinkKind, opts: &LinkOptions<'_>) -> LinkMessage {
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
    fn macs() {
        assert_eq!(
            format_mac(&[0x02, 0xab, 0, 1, 0xff, 0x10]),
            "02:ab:00:01:ff:10"
        );
        assert_eq!(
            parse_mac("02:AB:00:01:ff:10").unwrap(),
            [0x02, 0xab, 0, 1, 0xff, 0x10]
        );
        assert_eq!(parse_mac("02-ab-00-01-ff-10").unwrap()[1], 0xab);
        for bad in [
            "",
            "02:ab:00:01:ff",
            "02:ab:00:01:ff:10:11",
            "2:ab:00:01:ff:10",
            "zz:ab:00:01:ff:10",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_parse_like_the_reference() {
        assert_eq!("".parse::<MacVlanMode>().unwrap(), MacVlanMode::Bridge);
        assert_eq!(
            "passthru".parse::<MacVlanMode>().unwrap(),
            MacVlanMode::Passthru
        );
        assert!("passthrough".parse::<MacVlanMode>().is_err());
        assert_eq!("".parse::<IpVlanMode>().unwrap(), IpVlanMode::L2);
        assert_eq!("l3s".parse::<IpVlanMode>().unwrap(), IpVlanMode::L3s);
        assert!("L3".parse::<IpVlanMode>().is_err());
        assert_eq!("vepa".parse::<IpVlanFlag>().unwrap(), IpVlanFlag::Vepa);
        for m in ["bridge", "private", "vepa", "passthru"] {
            assert_eq!(m.parse::<MacVlanMode>().unwrap().to_string(), m);
        }
    }

    fn roundtrip(msg: &LinkMessage) -> LinkMessage {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        LinkMessage::parse(buf.as_slice()).unwrap()
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
                link.kind.as_deref(),
                Some(kind.info_kind().to_string().as_str())
            );
            assert_eq!(link.info.as_ref(), Some(&kind), "{kind:?}");
        }
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
