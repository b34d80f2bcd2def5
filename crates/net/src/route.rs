//! Routes.

use crate::error::Result;
use crate::socket::Handle;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RT_TABLE_MAIN: u32 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

/// An address family, for filtering dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

/// A route as rcni sets and reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub prefsrc: Option<IpAddr>,
    pub scope: u8,
    pub table: u32,
    pub priority: Option<u32>,
    pub protocol: u8,
    /// RTN_* (1 = unicast).
    pub kind: u8,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
}

impl Route {
    /// A unicast route to `dst` in the main table (scope universe, proto
    /// boot, as `ip route add` makes them).
    pub fn new(dst: IpNet) -> Route {
        Route {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            prefsrc: None,
            scope: RT_SCOPE_UNIVERSE,
            table: RT_TABLE_MAIN,
            priority: None,
            protocol: RTPROT_BOOT,
            kind: RTN_UNICAST,
            mtu: None,
            advmss: None,
        }
    }

    fn to_message(&self) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let v4 = self.dst.addr().is_ipv4();
        msg.header = RouteHeader {
            address_family: if v4 {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            },
            destination_prefix_length: self.dst.prefix_len(),
            table: u8::try_from(self.table).unwrap_or(0),
            protocol: RouteProtocol::from(self.protocol),
            scope: RouteScope::from(self.scope),
            kind: RouteType::from(self.kind),
            ..RouteHeader::default()
        };
        if self.dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    self.dst.addr(),
                )));
        }
        if self.table > 255 {
            msg.attributes.push(RouteAttribute::Table(self.table));
        }
        if let Some(gw) = self.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        if let Some(src) = self.prefsrc {
            msg.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
        }
        if let Some(p) = self.priority {
            msg.attributes.push(RouteAttribute::Priority(p));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = self.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            msg.attributes.push(RouteAttribute::Metrics(metrics));
        }
        msg
    }

    fn from_message(msg: &RouteMessage) -> Option<Route> {
        let v4 = match msg.header.address_family {
            AddressFamily::Inet => true,
            AddressFamily::Inet6 => false,
            _ => return None,
        };
        let to_ip = |a: &RouteAddress| match a {
            RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
            RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
            _ => None,
        };
        let unspecified: IpAddr = if v4 {
            [0u8; 4].into()
        } else {
            [0u16; 8].into()
        };
        let mut route = Route {
            dst: IpNet::new(unspecified, 0).ok()?,
            gateway: None,
            oif: None,
            prefsrc: None,
            scope: u8::from(msg.header.scope),
            table: u32::from(msg.header.table),
            priority: None,
            protocol: u8::from(msg.header.protocol),
            kind: u8::from(msg.header.kind),
            mtu: None,
            advmss: None,
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(a) => {
                    route.dst = IpNet::new(to_ip(a)?, msg.header.destination_prefix_length).ok()?
                }
                RouteAttribute::Gateway(a) => route.gateway = to_ip(a),
                RouteAttribute::PrefSource(a) => route.prefsrc = to_ip(a),
                RouteAttribute::Oif(i) => route.oif = Some(*i),
                RouteAttribute::Table(t) => route.table = *t,
                RouteAttribute::Priority(p) => route.priority = Some(*p),
                RouteAttribute::Metrics(ms) => {
                    for m in ms {
                        match m {
                            RouteMetric::Mtu(v) => route.mtu = Some(*v),
                            RouteMetric::Advmss(v) => route.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Some(route)
    }
}

impl Handle {
    /// Routes of a family (or both) in a table (or all tables).
    pub fn routes(&mut self, family: Option<IpFamily>, table: Option<u32>) -> Result<Vec<Route>> {
        let families: &[IpFamily] = match family {
            Some(IpFamily::V4) => &[IpFamily::V4],
            Some(IpFamily::V6) => &[IpFamily::V6],
            None => &[IpFamily::V4, IpFamily::V6],
        };
        let mut out = Vec::new();
        for fam in families {
            let mut req = RouteMessage::default();
            req.header.address_family = match fam {
                IpFamily::V4 => AddressFamily::Inet,
                IpFamily::V6 => AddressFamily::Inet6,
            };
            let replies = self.dump(RouteNetlinkMessage::GetRoute(req), "list routes")?;
            out.extend(
                replies
                    .iter()
                    .filter_map(|m| match m {
                        RouteNetlinkMessage::NewRoute(r) => Route::from_message(r),
                        _ => None,
                    })
                    .filter(|r| table.is_none_or(|t| r.table == t)),
            );
        }
        Ok(out)
    }

    /// Adds a route; fails if it exists.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add route {}", route.dst),
        )
    }

    /// Adds or replaces a route.
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("replace route {}", route.dst),
        )
    }

    /// Deletes a route (matched on the fields that are set).
    pub fn delete_route(&mut self, route: &Route) -> Result<()> {
        let mut msg = route.to_message();
        // Let the kernel match any protocol, scope and type.
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.scope = RouteScope::NoWhere;
        msg.header.kind = RouteType::Unspec;
        self.request(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            &format!("delete route {}", route.dst),
        )
    }
}
