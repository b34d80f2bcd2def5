//! `sbr` (chained): source-based routing in the container. Each address
//! the previous plugin gave the interface gets a rule "from ip/32 (or
//! /128) lookup T". Without `table`, T is a table of its own (the first
//! free one from 100, then the next free one per further address): the
//! interface's main-table routes move into it, with a default route via
//! the gateway (`gateways` overrides prevResult's), so that traffic from
//! that address leaves through that interface. With `table`, only the
//! rules are made: the table is the user's. Calls on one container are
//! serialised by an flock on its netns file, as the reference does.
//!
//! DEL removes the rules from the interface's addresses (those on the
//! link and those prevResult names, so rules outlive neither a link
//! already gone nor a second DEL), and puts the routes of the tables it
//! made back into the main table. CHECK, as the reference's, checks
//! nothing in the kernel.

use crate::container::{handle_in, open_netns, require_netns};
use crate::error::{Context, Teardown};
use ipnet::IpNet;
use rcni_net::{Handle, IpFamily, NetNs, Route, Rule, RT_SCOPE_LINK, RT_TABLE_MAIN};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::types::IpConfig;
use rcni_spec::{CniError, CniResult};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

pub struct Sbr;

/// The first table the reference considers.
const FIRST_TABLE: u32 = 100;
/// How long a call waits for another sbr call on the same container.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// The protocol of the default route sbr adds to its table, which tells
/// it apart from the routes moved there from the main table (those go
/// back to the main table on DEL; this one does not).
const OWN_ROUTE_PROTOCOL: u8 = rcni_net::RTPROT_STATIC;

#[derive(Deserialize, Default)]
struct SbrConf {
    #[serde(default)]
    table: Option<i64>,
    #[serde(default)]
    gateways: Option<Vec<String>>,
    #[serde(default, rename = "addSourceHints")]
    add_source_hints: bool,
}

/// The keys, checked.
struct Settings {
    table: Option<u32>,
    gateway_v4: Option<IpAddr>,
    gateway_v6: Option<IpAddr>,
    add_source_hints: bool,
}

fn load(args: &CmdArgs) -> Result<(PluginConf, Settings), CniError> {
    let conf = args.conf()?;
    let own: SbrConf = conf.plugin_fields()?;
    let table = match own.table {
        Some(t) => match u32::try_from(t) {
            Ok(t) if t != 0 => Some(t),
            // DEL then looks for the rules in every table.
            _ if args.is_del() => None,
            _ => {
                return Err(invalid!(
                    "table: {t} is not a routing table id (1 to 4294967295)"
                ))
            }
        },
        None => None,
    };
    let (gateway_v4, gateway_v6) = if args.is_del() {
        (None, None)
    } else {
        gateways(own.gateways.as_deref().unwrap_or_default())?
    };
    Ok((
        conf,
        Settings {
            table,
            gateway_v4,
            gateway_v6,
            add_source_hints: own.add_source_hints,
        },
    ))
}

/// `gateways`: at most one address per family.
fn gateways(list: &[String]) -> Result<(Option<IpAddr>, Option<IpAddr>), CniError> {
    if list.len() > 2 {
        // reference text
        return Err(invalid!(
            "gateways: gateways list cannot contain more than 2 entries (one IPv4, one IPv6)"
        ));
    }
    let (mut v4, mut v6) = (None, None);
    for text in list {
        let ip: IpAddr = text
            .parse()
            .ok()
            .ok_or_else(|| invalid!("gateways: invalid static gateway IP address: {text:?}"))?;
        let slot = if ip.is_ipv4() { &mut v4 } else { &mut v6 };
        if let Some(first) = slot.replace(ip) {
            return Err(invalid!(
                "gateways: gateways list contains multiple {} addresses: {first} and {ip}",
                if ip.is_ipv4() { "IPv4" } else { "IPv6" }
            ));
        }
    }
    Ok((v4, v6))
}

/// prevResult's addresses of `ifname`, as the reference picks them: those
/// without an interface index or with an index it cannot resolve count.
fn addresses_of<'a>(prev: &'a CniResult, ifname: &str) -> Vec<&'a IpConfig> {
    prev.ips
        .iter()
        .filter(|ip| {
            ip.interface
                .and_then(|i| prev.interfaces.get(i))
                .is_none_or(|iface| iface.name == ifname)
        })
        .collect()
}

/// Takes the container's lock, which lasts as long as the returned
/// namespace, and opens netlink there.
fn locked(ns: NetNs) -> Result<(NetNs, Handle), CniError> {
    ns.lock_exclusive(LOCK_WAIT)
        .context("lock the container's netns")?;
    let nl = handle_in(&ns)?;
    Ok((ns, nl))
}

/// The first table from `from` on that no rule looks up and no route is in.
fn free_table(from: u32, rules: &[Rule], routes: &[Route], taken: &[u32]) -> u32 {
    (from..=u32::MAX)
        .find(|t| {
            !taken.contains(t)
                && !rules.iter().any(|r| r.table == *t)
                && !routes.iter().any(|r| r.table == *t)
        })
        .unwrap_or(u32::MAX)
}

/// Whether a main-table route of the link goes with `ip`'s table (the
/// reference's test: its source or gateway is in the address's subnet,
/// or it has neither).
fn goes_with(route: &Route, ip: &IpConfig) -> bool {
    let inside = |a: Option<IpAddr>| a.is_some_and(|a| ip.address.contains(&a));
    inside(route.prefsrc)
        || inside(route.gateway)
        || (route.prefsrc.is_none() && route.gateway.is_none())
}

/// Routes in the order they can be added: a gateway must be reachable
/// when its route is added.
fn gateways_last(routes: &mut [Route]) {
    routes.sort_by_key(|r| r.gateway.is_some());
}

/// An ADD's changes in the container, and their undo: dropped without
/// [`Changes::keep`], it removes the rules and the routes of the tables
/// it made and puts back what it took from the main table.
struct Changes<'a> {
    nl: &'a mut Handle,
    link: u32,
    rules: Vec<Rule>,
    tables: Vec<u32>,
    removed_from_main: Vec<Route>,
    kept: bool,
}

impl<'a> Changes<'a> {
    fn new(nl: &'a mut Handle) -> Changes<'a> {
        Changes {
            nl,
            link: 0,
            rules: Vec::new(),
            tables: Vec::new(),
            removed_from_main: Vec::new(),
            kept: false,
        }
    }

    /// The ADD succeeded.
    fn keep(mut self) {
        self.kept = true;
    }

    /// "from ip lookup `table`" for each address.
    fn add_rules(&mut self, ips: &[&IpConfig], table: u32) -> Result<(), CniError> {
        for ip in ips {
            let rule = Rule::from_source(IpNet::from(ip.address.addr()), table);
            self.nl.add_rule(&rule).context("failed to add rule")?;
            self.rules.push(rule);
        }
        Ok(())
    }

    /// Tables of their own for each address, the link's routes moved there.
    fn route_by_source(
        &mut self,
        ifname: &str,
        ips: &[&IpConfig],
        settings: &Settings,
    ) -> Result<(), CniError> {
        let rules = self.nl.rules(None).context("failed to list all rules")?;
        let all_routes = self
            .nl
            .routes(None, None)
            .context("failed to list all routes")?;
        let link = self
            .nl
            .find_link(ifname)
            .context(format!("cannot find network interface {ifname}"))?;
        self.link = link.index;
        let link_routes: Vec<Route> = all_routes
            .iter()
            .filter(|r| r.table == RT_TABLE_MAIN && r.oif == Some(link.index))
            .cloned()
            .collect();
        let mut table = free_table(FIRST_TABLE, &rules, &all_routes, &[]);
        for ip in ips {
            self.add_rules(std::slice::from_ref(ip), table)?;
            self.tables.push(table);
            let gateway = match IpFamily::of(ip.address.addr()) {
                IpFamily::V4 => settings.gateway_v4,
                IpFamily::V6 => settings.gateway_v6,
            }
            .or(ip.gateway);
            if let Some(gw) = gateway {
                let any = match gw {
                    IpAddr::V4(_) => IpNet::V4(Default::default()),
                    IpAddr::V6(_) => IpNet::V6(Default::default()),
                };
                let mut default = Route::new(any)
                    .with_gateway(gw)
                    .with_oif(link.index)
                    .with_table(table);
                default.protocol = OWN_ROUTE_PROTOCOL;
                self.nl
                    .add_route(&default)
                    .context(format!("failed to add default route to {gw}"))?;
            }
            // Replace: the main table's default route may be the one just
            // added.
            for route in link_routes.iter().filter(|r| goes_with(r, ip)) {
                let moved = route.clone().with_table(table);
                self.nl
                    .replace_route(&moved)
                    .context("failed to readd route")?;
            }
            table = free_table(table + 1, &rules, &all_routes, &self.tables);
        }
        if settings.add_source_hints {
            // The subnets stay reachable through the main table from
            // whatever source the kernel picks; other routes of the link
            // leave it.
            for ip in ips {
                let subnet = Route::new(ip.address.trunc())
                    .with_oif(link.index)
                    .with_prefsrc(ip.address.addr())
                    .with_scope(RT_SCOPE_LINK);
                if let Err(e) = self.nl.replace_route(&subnet) {
                    eprintln!("sbr: cannot add the subnet route {}: {e}", ip.address);
                }
            }
            for route in link_routes.iter().filter(|r| r.scope != RT_SCOPE_LINK) {
                match self.nl.delete_route(route) {
                    Ok(()) => self.removed_from_main.push(route.clone()),
                    Err(e) => eprintln!("sbr: cannot delete route {}: {e}", route.dst),
                }
            }
        } else {
            for route in &link_routes {
                match self.nl.delete_route(route) {
                    Ok(()) => self.removed_from_main.push(route.clone()),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e).context("failed to delete route"),
                }
            }
        }
        Ok(())
    }
}

impl Drop for Changes<'_> {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for rule in &self.rules {
            let _ = self.nl.delete_rule(rule);
        }
        for &table in &self.tables {
            let _ = empty_table(self.nl, table, self.link, false);
        }
        gateways_last(&mut self.removed_from_main);
        for route in &self.removed_from_main {
            let _ = self.nl.add_route(route);
        }
    }
}

/// Deletes the link's routes from `table`, first putting back into the
/// main table those that came from there when `restore` is set.
fn empty_table(nl: &mut Handle, table: u32, link: u32, restore: bool) -> Result<(), CniError> {
    let mut routes: Vec<Route> = nl
        .routes(None, Some(table))
        .context(format!("list routes of table {table}"))?
        .into_iter()
        .filter(|r| r.oif == Some(link))
        .collect();
    gateways_last(&mut routes);
    for route in &routes {
        if restore && route.protocol != OWN_ROUTE_PROTOCOL {
            match nl.add_route(&route.clone().with_table(RT_TABLE_MAIN)) {
                // Another table of the interface had it too.
                Err(e) if !e.is_exists() => {
                    return Err(e).context("put a route back into the main table")
                }
                _ => {}
            }
        }
        match nl.delete_route(route) {
            Err(e) if !e.is_not_found() => {
                return Err(e).context(format!("delete a route of table {table}"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// DEL in the container: the rules from the interface's addresses, then
/// the tables they looked up (unless `table` names the user's).
fn tidy(
    nl: &mut Handle,
    ifname: &str,
    table: Option<u32>,
    mut addresses: Vec<IpAddr>,
) -> Result<(), CniError> {
    let link = nl.link_by_name(ifname).context("look up the interface")?;
    if let Some(link) = &link {
        let on_link = nl
            .addresses(Some(link.index))
            .context("failed to list all addrs")?;
        addresses.extend(on_link.iter().map(|a| a.net.addr()));
    }
    let rules = nl.rules(None).context("failed to list all rules to tidy")?;
    let mut steps = Teardown::new("sbr");
    let mut emptied = Vec::new();
    for rule in rules.iter().filter(|r| {
        table.is_none_or(|t| r.table == t)
            && r.src.is_some_and(|s| {
                s.prefix_len() == s.max_prefix_len() && addresses.contains(&s.addr())
            })
    }) {
        match nl.delete_rule(rule) {
            Ok(()) => emptied.push(rule.table),
            Err(e) if e.is_not_found() => emptied.push(rule.table),
            Err(e) => steps.step(Err(e).context("failed to delete rule")),
        }
    }
    if let (None, Some(link)) = (table, link) {
        let left = nl.rules(None).context("list rules")?;
        emptied.sort_unstable();
        emptied.dedup();
        for t in emptied {
            // Only tables sbr could have picked, which no other rule uses
            // any more.
            if t < FIRST_TABLE || (253..=255).contains(&t) || left.iter().any(|r| r.table == t) {
                continue;
            }
            steps.step(empty_table(nl, t, link.index, true));
        }
    }
    steps.finish()
}

/// sbr's keys, as `rcni help sbr` prints them.
pub const SCHEMA: Schema = Schema {
    about: "source-based routing: traffic from each container address leaves by its own interface (chained)",
    keys: &[
        Key {
            name: "table",
            ty: "uint32",
            default: "a table per address, the first free from 100",
            meaning: "only add `from <ip> lookup <table>` rules to this table, which the user fills",
        },
        Key {
            name: "gateways",
            ty: "[string]",
            default: "prevResult's gateways",
            meaning: "the default route's gateway per family (one IPv4, one IPv6)",
        },
        Key {
            name: "addSourceHints",
            ty: "bool",
            default: "false",
            meaning: "keep the subnet routes in main, with the address as their source",
        },
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "second", "plugins": [
  {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.31.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "sbr"}]}"#,
    check: |conf| load(&crate::offline::add_call(conf)).map(drop),
};

impl Plugin for Sbr {
    fn name(&self) -> &str {
        "sbr"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        rcni_spec::version::ALL
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, settings) = load(args)?;
        // reference text
        let prev = conf.prev_result()?.ok_or_else(|| {
            CniError::invalid_config("prevResult: This plugin must be called as chained plugin")
        })?;
        if prev.ips.is_empty() {
            // reference text
            return Err(invalid!(
                "prevResult: No IP addresses supplied on interface: {}",
                args.ifname
            ));
        }
        let ips = addresses_of(&prev, &args.ifname);
        if !ips.is_empty() {
            let (_lock, mut nl) = locked(require_netns(args)?)?;
            let mut changes = Changes::new(&mut nl);
            match settings.table {
                Some(table) => changes.add_rules(&ips, table)?,
                None => changes.route_by_source(&args.ifname, &ips, &settings)?,
            }
            changes.keep();
        }
        let mut result = prev;
        result.cni_version = conf.cni_version.clone();
        Ok(result)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, settings) = load(args)?;
        let Some(ns) = open_netns(&args.netns)? else {
            return Ok(());
        };
        let from_prev = match conf.prev_result() {
            Ok(Some(prev)) => addresses_of(&prev, &args.ifname)
                .iter()
                .map(|ip| ip.address.addr())
                .collect(),
            _ => Vec::new(),
        };
        let (_lock, mut nl) = locked(ns)?;
        tidy(&mut nl, &args.ifname, settings.table, from_prev)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        load(args).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<SbrConf>(), Vec::<String>::new());
    }

    #[test]
    fn tables_skip_those_in_use() {
        let rule = |t| Rule::from_source("10.0.0.1/32".parse().unwrap(), t);
        let route = |t| Route::new("10.1.0.0/16".parse().unwrap()).with_table(t);
        assert_eq!(free_table(100, &[], &[], &[]), 100);
        assert_eq!(free_table(100, &[rule(100)], &[route(101)], &[102]), 103);
        assert_eq!(free_table(105, &[rule(100)], &[], &[]), 105);
    }

    #[test]
    fn gateways_one_per_family() {
        let list = |l: &[&str]| gateways(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let (v4, v6) = list(&["10.0.0.1", "fd00::1"]).unwrap();
        assert_eq!(v4, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(v6, Some("fd00::1".parse().unwrap()));
        for bad in [
            &["10.0.0.1", "10.0.0.2"][..],
            &["a", "b", "c"],
            &["not-an-ip"],
        ] {
            let e = list(bad).unwrap_err();
            assert!(e.code == 7 && e.msg.starts_with("gateways: "), "{e:?}");
        }
    }

    #[test]
    fn routes_that_follow_an_address() {
        let ip = IpConfig {
            interface: None,
            address: "10.1.0.5/24".parse().unwrap(),
            gateway: None,
        };
        let subnet = Route::new("10.1.0.0/24".parse().unwrap());
        assert!(goes_with(&subnet, &ip), "no source, no gateway");
        let other_src = subnet.clone().with_prefsrc("10.2.0.5".parse().unwrap());
        assert!(!goes_with(&other_src, &ip));
        let via =
            Route::new("0.0.0.0/0".parse().unwrap()).with_gateway("10.1.0.1".parse().unwrap());
        assert!(goes_with(&via, &ip));
        let via_other = via.clone().with_gateway("10.2.0.1".parse().unwrap());
        assert!(!goes_with(&via_other, &ip));
    }
}
