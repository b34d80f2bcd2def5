//! A DHCPv4 lease: what the server's ACK granted, its timers, and the CNI
//! result it gives.

use crate::client::Error;
use crate::codec::{self, opt, Message};
use ipnet::{IpNet, Ipv4Net};
use rcni_spec::{CniResult, Dns, IpConfig, Route};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `RT_SCOPE_LINK`: a route to a destination on the link itself.
const SCOPE_LINK: u8 = 253;

/// The lease as granted, in the form the daemon persists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease4 {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Option 54: where renewals go.
    pub server_id: Ipv4Addr,
    /// Option 51, and T1/T2 (options 58/59 or RFC 2131's defaults), in
    /// seconds from `obtained_unix`.
    pub lease_time: u32,
    pub renewal_time: u32,
    pub rebinding_time: u32,
    /// Seconds since the epoch when the ACK came.
    pub obtained_unix: u64,
    #[serde(default)]
    pub routers: Vec<Ipv4Addr>,
    /// Option 33: (destination, router).
    #[serde(default)]
    pub static_routes: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Option 121: (destination, router); router 0.0.0.0 is on-link.
    #[serde(default)]
    pub classless_routes: Vec<(Ipv4Net, Ipv4Addr)>,
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    #[serde(default)]
    pub domain_name: String,
    #[serde(default)]
    pub domain_search: Vec<String>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Lease4 {
    pub fn from_ack(ack: &Message) -> Result<Lease4, Error> {
        let mask = ack.addr(opt::SUBNET_MASK).ok_or(Error::Malformed(
            "DHCP option Subnet Mask not found in DHCPACK",
        ))?;
        let prefix_len = ipnet::ipv4_mask_to_prefix(mask)
            .map_err(|_| Error::Malformed("the subnet mask is not contiguous"))?;
        let lease_time = ack
            .u32(opt::LEASE_TIME)
            .ok_or(Error::Malformed("no lease time"))?;
        // RFC 2131 4.4.5 defaults, and the reference's sanity bounds.
        let rebinding_time = ack
            .u32(opt::REBINDING_TIME)
            .filter(|t| *t <= lease_time)
            .unwrap_or((u64::from(lease_time) * 85 / 100) as u32);
        let renewal_time = ack
            .u32(opt::RENEWAL_TIME)
            .filter(|t| *t <= rebinding_time)
            .unwrap_or(lease_time / 2);
        let list = |code| ack.get(code).unwrap_or_default();
        Ok(Lease4 {
            address: ack.yiaddr,
            prefix_len,
            server_id: ack
                .addr(opt::SERVER_ID)
                .ok_or(Error::Malformed("no server identifier"))?,
            lease_time,
            renewal_time,
            rebinding_time,
            obtained_unix: now_unix(),
            routers: codec::addrs(&list(opt::ROUTER)),
            static_routes: codec::static_routes(&list(opt::STATIC_ROUTES)),
            classless_routes: codec::classless_routes(&list(opt::CLASSLESS_ROUTES)),
            dns_servers: codec::addrs(&list(opt::DNS_SERVERS)),
            domain_name: String::from_utf8_lossy(&list(opt::DOMAIN_NAME))
                .trim_end_matches('\0')
                .to_string(),
            domain_search: codec::domain_search(&list(opt::DOMAIN_SEARCH)),
        })
    }

    fn at(&self, secs: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.obtained_unix.saturating_add(u64::from(secs)))
    }

    pub fn renew_at(&self) -> SystemTime {
        self.at(self.renewal_time)
    }

    pub fn rebind_at(&self) -> SystemTime {
        self.at(self.rebinding_time)
    }

    pub fn expires_at(&self) -> SystemTime {
        self.at(self.lease_time)
    }

    /// The CNI result, as the reference builds it: the address with the
    /// first router as gateway; the option-121 routes if there are any
    /// (RFC 3442: they replace option 33 and the router; a route without
    /// a router gets scope link), else option 33's and a default route via
    /// the router. `priority` becomes every route's metric.
    pub fn result(&self, priority: u32) -> CniResult {
        let gateway = self.routers.first().copied();
        let route = |dst: Ipv4Net, gw: Option<Ipv4Addr>| {
            let mut r = Route::new(IpNet::V4(dst), gw.map(IpAddr::V4));
            r.priority = priority;
            if gw.is_none() {
                r.scope = Some(SCOPE_LINK);
            }
            r
        };
        let routes = if !self.classless_routes.is_empty() {
            self.classless_routes
                .iter()
                .map(|(dst, gw)| route(*dst, Some(*gw).filter(|g| !g.is_unspecified())))
                .collect()
        } else {
            let mut routes: Vec<Route> = self
                .static_routes
                .iter()
                .map(|(dst, gw)| route(*dst, Some(*gw)))
                .collect();
            if let Some(gw) = gateway {
                routes.push(route(Ipv4Net::default(), Some(gw)));
            }
            routes
        };
        CniResult {
            cni_version: rcni_spec::version::CURRENT.to_string(),
            interfaces: Vec::new(),
            ips: vec![IpConfig {
                interface: None,
                address: IpNet::V4(Ipv4Net::new(self.address, self.prefix_len).unwrap_or_default()),
                gateway: gateway.map(IpAddr::V4),
            }],
            routes,
            dns: Dns {
                nameservers: self.dns_servers.iter().map(|a| a.to_string()).collect(),
                domain: self.domain_name.clone(),
                search: self.domain_search.clone(),
                options: Vec::new(),
            },
        }
    }
}

/// The CNI result of a DHCPv6 lease: the address as a /128 and no
/// gateway or routes, since DHCPv6 carries neither a prefix length nor a
/// router; the on-link prefix and the default route come from router
/// advertisements, which the container's kernel follows.
pub fn result_v6(lease: &rcni_dhcp6::Lease6) -> CniResult {
    CniResult {
        cni_version: rcni_spec::version::CURRENT.to_string(),
        ips: vec![IpConfig {
            interface: None,
            address: IpNet::V6(lease.address.into()),
            gateway: None,
        }],
        dns: Dns {
            nameservers: lease.dns_servers.iter().map(|a| a.to_string()).collect(),
            search: lease.domain_search.clone(),
            ..Dns::default()
        },
        ..CniResult::default()
    }
}

/// One result of the leases of an attachment's families, in order: their
/// addresses and routes, their DNS servers and search domains without
/// repeats, the first domain.
pub fn merge(results: impl IntoIterator<Item = CniResult>) -> CniResult {
    let mut merged = CniResult {
        cni_version: rcni_spec::version::CURRENT.to_string(),
        ..CniResult::default()
    };
    for r in results {
        merged.ips.extend(r.ips);
        merged.routes.extend(r.routes);
        let dns = &mut merged.dns;
        for server in r.dns.nameservers {
            if !dns.nameservers.contains(&server) {
                dns.nameservers.push(server);
            }
        }
        for domain in r.dns.search {
            if !dns.search.contains(&domain) {
                dns.search.push(domain);
            }
        }
        if dns.domain.is_empty() {
            dns.domain = r.dns.domain;
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::MessageType;

    fn ack(options: &[(u8, Vec<u8>)]) -> Message {
        let mut m = Message::request(MessageType::Ack, 1, [2, 0, 0, 0, 0, 1]);
        m.op = codec::BOOTREPLY;
        m.yiaddr = Ipv4Addr::new(10, 5, 0, 20);
        m.set(opt::SUBNET_MASK, vec![255, 255, 255, 0]);
        m.set(opt::SERVER_ID, vec![10, 5, 0, 1]);
        m.set(opt::LEASE_TIME, 120u32.to_be_bytes().to_vec());
        m.set(opt::ROUTER, vec![10, 5, 0, 1]);
        for (c, v) in options {
            m.set(*c, v.clone());
        }
        m
    }

    fn routes(r: &CniResult) -> Vec<String> {
        r.routes
            .iter()
            .map(|r| format!("{} {:?} {:?}", r.dst, r.gw, r.scope))
            .collect()
    }

    #[test]
    fn timers_default_as_rfc_2131() {
        let l = Lease4::from_ack(&ack(&[])).unwrap();
        assert_eq!((l.renewal_time, l.rebinding_time), (60, 102));
        let l = Lease4::from_ack(&ack(&[
            (opt::RENEWAL_TIME, 10u32.to_be_bytes().to_vec()),
            (opt::REBINDING_TIME, 500u32.to_be_bytes().to_vec()),
        ]))
        .unwrap();
        assert_eq!((l.renewal_time, l.rebinding_time), (10, 102));
    }

    #[test]
    fn router_gives_gateway_and_default_route() {
        let r = Lease4::from_ack(&ack(&[(opt::DNS_SERVERS, vec![10, 5, 0, 53])]))
            .unwrap()
            .result(0);
        assert_eq!(r.ips[0].address.to_string(), "10.5.0.20/24");
        assert_eq!(r.ips[0].gateway.unwrap().to_string(), "10.5.0.1");
        assert_eq!(routes(&r), ["0.0.0.0/0 Some(10.5.0.1) None"]);
        assert_eq!(r.dns.nameservers, ["10.5.0.53"]);
    }

    #[test]
    fn classless_routes_replace_static_and_router() {
        let r = Lease4::from_ack(&ack(&[
            (opt::STATIC_ROUTES, vec![10, 0, 0, 0, 10, 5, 0, 9]),
            (
                opt::CLASSLESS_ROUTES,
                vec![16, 10, 99, 10, 5, 0, 7, 24, 10, 98, 1, 0, 0, 0, 0],
            ),
        ]))
        .unwrap()
        .result(300);
        assert_eq!(
            routes(&r),
            [
                "10.99.0.0/16 Some(10.5.0.7) None",
                "10.98.1.0/24 None Some(253)"
            ]
        );
        assert!(r.routes.iter().all(|r| r.priority == 300));
    }

    #[test]
    fn v6_result_is_a_128_without_gateway_and_merges_dns() {
        let v6 = rcni_dhcp6::Lease6 {
            address: "fd77::42".parse().unwrap(),
            preferred_lifetime: 120,
            valid_lifetime: 120,
            t1: 60,
            t2: 96,
            server_duid: vec![0, 1, 2],
            server_address: "fe80::1".parse().unwrap(),
            dns_servers: vec!["fd77::53".parse().unwrap()],
            domain_search: vec!["lan.test".into(), "x.test".into()],
            obtained_unix: 1,
        };
        let mut v4 = Lease4::from_ack(&ack(&[(opt::DNS_SERVERS, vec![10, 5, 0, 53])])).unwrap();
        v4.domain_search = vec!["lan.test".into()];
        let r = merge([v4.result(0), result_v6(&v6)]);
        let ips: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(ips, ["10.5.0.20/24", "fd77::42/128"]);
        assert_eq!(r.ips[1].gateway, None);
        assert_eq!(routes(&r), ["0.0.0.0/0 Some(10.5.0.1) None"]);
        assert_eq!(r.dns.nameservers, ["10.5.0.53", "fd77::53"]);
        assert_eq!(r.dns.search, ["lan.test", "x.test"]);
    }

    #[test]
    fn ack_without_mask_is_refused() {
        let mut m = ack(&[]);
        m.options.retain(|(c, _)| *c != opt::SUBNET_MASK);
        assert!(Lease4::from_ack(&m).is_err());
    }
}
