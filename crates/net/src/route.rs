//! Routes.

use crate::error::{NetError, Result};
use crate::socket::Handle;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

/// `RT_SCOPE_UNIVERSE`: a gateway or a distant destination.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`: the destination is directly on the link.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_HOST`: a local address.
pub const RT_SCOPE_HOST: u8 = 254;
/// `RT_TABLE_MAIN`.
pub const RT_TABLE_MAIN: u32 = 254;
/// `RT_TABLE_LOCAL`.
pub const RT_TABLE_LOCAL: u32 = 255;
/// `RTPROT_KERNEL`: made by the kernel (e.g. an address's prefix route).
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_BOOT`: what `ip route add` and the reference use.
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const RTPROT_STATIC: u8 = 4;
/// `RTN_UNICAST`.
pub const RTN_UNICAST: u8 = 1;
/// `RTN_LOCAL`.
pub const RTN_LOCAL: u8 = 2;

/// An address family, for filtering dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> IpFamily {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }
}

/// A route as rcni sets and reads them. Multipath routes are read with
/// their first-level fields only (no gateway/oif).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// `RTA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`: outgoing link index.
    pub oif: Option<u32>,
    /// `RTA_PREFSRC`: preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// `RT_SCOPE_*` (IPv6 routes are always read back as universe).
    pub scope: u8,
    /// Routing table ([`RT_TABLE_MAIN`] = 254; ids above 255 travel in
    /// `RTA_TABLE`).
    pub table: u32,
    /// `RTA_PRIORITY` (the metric).
    pub priority: Option<u32>,
    /// `RTPROT_*` ([`RTPROT_BOOT`] by default).
    pub protocol: u8,
    /// `RTN_*` ([`RTN_UNICAST`] by default).
    pub kind: u8,
    /// `RTAX_MTU` metric.
    pub mtu: Option<u32>,
    /// `RTAX_ADVMSS` metric.
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

    /// The route's family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.dst.addr())
    }

    /// With a gateway.
    pub fn with_gateway(mut self, gateway: IpAddr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    /// Through a link.
    pub fn with_oif(mut self, oif: u32) -> Route {
        self.oif = Some(oif);
        self
    }

    /// With a preferred source address.
    pub fn with_prefsrc(mut self, prefsrc: IpAddr) -> Route {
        self.prefsrc = Some(prefsrc);
        self
    }

    /// With a scope.
    pub fn with_scope(mut self, scope: u8) -> Route {
        self.scope = scope;
        self
    }

    /// In a table.
    pub fn with_table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// With a metric.
    pub fn with_priority(mut self, priority: u32) -> Route {
        self.priority = Some(priority);
        self
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
    /// Routes of a family (or both) in a table (or all tables, including
    /// `local`).
    pub fn routes(&mut self, family: Option<IpFamily>, table: Option<u32>) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for fam in families(family) {
            let mut req = RouteMessage::default();
            req.header.address_family = address_family(*fam);
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

    /// Adds a route; fails with `EEXIST` ([`NetError::is_exists`]) if it
    /// exists (`NLM_F_CREATE | NLM_F_EXCL`, as `ip route add`).
    ///
    /// [`NetError::is_exists`]: crate::NetError::is_exists
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add route {}", describe(route)),
        )
    }

    /// Adds a route, or another next hop to an existing one
    /// (`NLM_F_CREATE | NLM_F_APPEND`, as `ip route append` and the
    /// reference's `RouteAddEcmp`).
    pub fn append_route(&mut self, route: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_APPEND,
            &format!("append route {}", describe(route)),
        )
    }

    /// Adds or replaces a route (`NLM_F_CREATE | NLM_F_REPLACE`).
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("replace route {}", describe(route)),
        )
    }

    /// Deletes a route, matched on destination, table and the optional
    /// fields that are set (gateway, oif, prefsrc, priority); protocol,
    /// scope and type match anything. A missing route gives an error for
    /// which [`NetError::is_not_found`] holds (`ESRCH`).
    ///
    /// [`NetError::is_not_found`]: crate::NetError::is_not_found
    pub fn delete_route(&mut self, route: &Route) -> Result<()> {
        let mut msg = route.to_message();
        msg.header.protocol = RouteProtocol::Unspec;
        msg.header.scope = RouteScope::NoWhere;
        msg.header.kind = RouteType::Unspec;
        self.request(
            RouteNetlinkMessage::DelRoute(msg),
            0,
            &format!("delete route {}", describe(route)),
        )
    }

    /// The route the kernel would use to reach `dst` (`ip route get`).
    /// Its `dst` is `dst`/32 (or /128) and `oif` the outgoing link.
    pub fn route_get(&mut self, dst: IpAddr) -> Result<Route> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = address_family(IpFamily::of(dst));
        msg.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let op = format!("get route to {dst}");
        match self.get_one(RouteNetlinkMessage::GetRoute(msg), &op)? {
            Some(RouteNetlinkMessage::NewRoute(r)) => Route::from_message(&r)
                .ok_or_else(|| NetError::Protocol(format!("{op}: undecodable answer"))),
            _ => Err(NetError::NotFound(format!("route to {dst}"))),
        }
    }
}

/// One family, or both when `None`, for dumps.
pub(crate) fn families(family: Option<IpFamily>) -> &'static [IpFamily] {
    match family {
        Some(IpFamily::V4) => &[IpFamily::V4],
        Some(IpFamily::V6) => &[IpFamily::V6],
        None => &[IpFamily::V4, IpFamily::V6],
    }
}

pub(crate) fn address_family(f: IpFamily) -> AddressFamily {
    match f {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    }
}

/// `10.0.0.0/8 via 10.1.0.1 dev 3 table 254`, for error messages.
fn describe(r: &Route) -> String {
    let mut s = r.dst.to_string();
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = r.oif {
        s.push_str(&format!(" dev {oif}"));
    }
    if let Some(src) = r.prefsrc {
        s.push_str(&format!(" src {src}"));
    }
    if r.table != RT_TABLE_MAIN {
        s.push_str(&format!(" table {}", r.table));
    }
    if let Some(p) = r.priority {
        s.push_str(&format!(" metric {p}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn roundtrip(r: &Route) -> Route {
        let msg = r.to_message();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let parsed = RouteMessage::parse(buf.as_slice()).unwrap();
        Route::from_message(&parsed).unwrap()
    }

    #[test]
    fn encode_decode() {
        let r = Route::new("10.1.2.3/24".parse().unwrap())
            .with_gateway("10.0.0.1".parse().unwrap())
            .with_oif(4)
            .with_prefsrc("10.0.0.2".parse().unwrap())
            .with_priority(100);
        assert_eq!(r.dst, "10.1.2.0/24".parse::<IpNet>().unwrap(), "truncated");
        assert_eq!(roundtrip(&r), r);
        let mut big = Route::new("fd00::/64".parse().unwrap())
            .with_table(1000)
            .with_scope(RT_SCOPE_LINK);
        big.mtu = Some(1400);
        big.advmss = Some(1300);
        let msg = big.to_message();
        assert_eq!(msg.header.table, 0, "ids above 255 go in RTA_TABLE");
        assert_eq!(roundtrip(&big), big);
        assert_eq!(big.family(), IpFamily::V6);
        let default = Route::new("0.0.0.0/0".parse().unwrap());
        assert!(default.to_message().attributes.is_empty());
        assert_eq!(roundtrip(&default), default);
    }

    #[test]
    fn descriptions() {
        let r = Route::new("0.0.0.0/0".parse().unwrap())
            .with_gateway("10.0.0.1".parse().unwrap())
            .with_table(100);
        assert_eq!(describe(&r), "0.0.0.0/0 via 10.0.0.1 table 100");
    }
}
