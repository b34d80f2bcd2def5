//! `vrf` (chained): puts the container interface of the previous plugin
//! into a VRF of the container, created on first use (on a table of its
//! own) and removed when its last interface leaves. The interface's routes
//! move into the VRF's table; IPv6 addresses the kernel drops on enslaving
//! are put back.

use crate::container::{handle_in, open_netns};
use crate::error::Context;
use rcni_net::{Handle, Link, LinkKind, LinkOptions, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::{CniError, CniResult};
use serde::Deserialize;
use std::time::Duration;

pub struct Vrf;

#[derive(Deserialize, Default)]
struct VrfConf {
    #[serde(default)]
    vrfname: String,
    #[serde(default)]
    table: u32,
}

/// Tables with a fixed meaning that a new VRF never gets.
const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];
/// How long to wait for the kernel's local route of a restored address.
const LOCAL_ROUTE_WAIT: Duration = Duration::from_secs(3);

fn load(args: &CmdArgs) -> Result<(PluginConf, VrfConf), CniError> {
    let conf = args.conf()?;
    let own: VrfConf = conf.plugin_fields()?;
    if own.vrfname.is_empty() && !args.is_del() {
        return Err(CniError::invalid_config(
            "vrfname: configuration is expected to have a valid vrf name",
        ));
    }
    Ok((conf, own))
}

/// The VRF named `name`, if there is a link of that name (which must be a
/// VRF), with its table.
fn find_vrf(nl: &mut Handle, name: &str) -> Result<Option<(Link, u32)>, CniError> {
    let Some(link) = nl.link_by_name(name).context("look up the VRF")? else {
        return Ok(None);
    };
    match link.kind {
        Some(LinkKind::Vrf { table }) => Ok(Some((link, table))),
        _ => Err(invalid!("vrfname: link {name} exists and is not a VRF")),
    }
}

/// The lowest table no VRF of the namespace uses.
fn free_table(nl: &mut Handle) -> Result<u32, CniError> {
    let taken: Vec<u32> = nl
        .links()
        .context("list links")?
        .into_iter()
        .filter_map(|l| match l.kind {
            Some(LinkKind::Vrf { table }) => Some(table),
            _ => None,
        })
        .collect();
    // reference text
    lowest_free_table(&taken).ok_or_else(|| fail!("failed to find an available routing table id"))
}

/// The lowest table that is neither `taken` nor reserved.
fn lowest_free_table(taken: &[u32]) -> Option<u32> {
    (1..u32::MAX).find(|t| !taken.contains(t) && !RESERVED_TABLES.contains(t))
}

/// The links enslaved to `vrf`.
fn members(nl: &mut Handle, vrf: u32) -> Result<Vec<Link>, CniError> {
    Ok(nl
        .links()
        .context("list links")?
        .into_iter()
        .filter(|l| l.master == Some(vrf))
        .collect())
}

/// Enslaves `ifname` to the VRF, restores its global IPv6 addresses and
/// moves its main-table routes into `table`.
fn enslave(nl: &mut Handle, ifname: &str, vrf: &Link, table: u32) -> Result<(), CniError> {
    // reference text
    let link = nl
        .find_link(ifname)
        .context(format!("could not get link by name {ifname}"))?;
    if let Some(master) = link.master {
        let name = nl
            .link_by_index(master)
            .ok()
            .flatten()
            .map(|m| m.name)
            .unwrap_or_else(|| master.to_string());
        return Err(fail!("interface {ifname} has already a master set: {name}"));
    }
    let global_v6: Vec<_> = nl
        .addresses(Some(link.index))
        .context("list addresses")?
        .into_iter()
        .filter(|a| a.net.addr().is_ipv6() && a.scope == RT_SCOPE_UNIVERSE)
        .collect();
    let routes: Vec<_> = nl
        .routes(None, Some(RT_TABLE_MAIN))
        .context("list routes")?
        .into_iter()
        .filter(|r| r.oif == Some(link.index) && r.scope == RT_SCOPE_UNIVERSE)
        .collect();
    nl.set_master(link.index, Some(vrf.index)).context(format!(
        "could not set vrf {} as master of {ifname}",
        vrf.name
    ))?;
    let now: Vec<_> = nl.addresses(Some(link.index)).context("list addresses")?;
    for addr in global_v6
        .iter()
        .filter(|a| !now.iter().any(|n| n.net == a.net))
    {
        nl.add_address(link.index, addr.net).context(format!(
            "could not restore address {} to {ifname} @ {}",
            addr.net, vrf.name
        ))?;
        wait_for_local_route(nl, addr.net.addr(), table)?;
    }
    for mut route in routes {
        route.table = table;
        nl.replace_route(&route)
            .context(format!("could not add route '{}'", route.dst))?;
    }
    Ok(())
}

/// Routes via an address fail until the kernel has its local route in the
/// VRF table.
fn wait_for_local_route(nl: &mut Handle, ip: std::net::IpAddr, table: u32) -> Result<(), CniError> {
    let deadline = std::time::Instant::now() + LOCAL_ROUTE_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let routes = nl.routes(None, Some(table)).context("list routes")?;
        if routes
            .iter()
            .any(|r| r.dst.addr() == ip && r.dst.prefix_len() == r.dst.max_prefix_len())
        {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(fail!(
                "failed getting local/host addresses for {ip} in table {table}"
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// vrf's keys, as `rcni help vrf` prints them.
pub const SCHEMA: Schema = Schema {
    about: "puts the container interface of the previous plugin into a VRF (chained)",
    keys: &[
        Key {
            name: "vrfname",
            ty: "string",
            default: "",
            meaning: "the VRF in the container, created on first use (required)",
        },
        Key {
            name: "table",
            ty: "uint32",
            default: "0 (the first free table)",
            meaning: "routing table of a new VRF",
        },
    ],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "tenant", "plugins": [
  {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.30.0.0/24"}},
  {"type": "vrf", "vrfname": "blue", "table": 1001}]}"#,
    check: |conf| load(&crate::offline::add_call(conf)).map(drop),
};

impl Plugin for Vrf {
    fn name(&self) -> &str {
        "vrf"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        &rcni_spec::version::ALL[3..]
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, own) = load(args)?;
        let prev = conf.prev_result()?.ok_or_else(|| {
            CniError::invalid_config("prevResult: missing prevResult from earlier plugin")
        })?;
        let ns = crate::container::require_netns(args)?;
        let mut nl = handle_in(&ns)?;
        let (vrf, table, created) = match find_vrf(&mut nl, &own.vrfname)? {
            Some((_, table)) if own.table != 0 && table != own.table => {
                return Err(invalid!(
                    "table: VRF {} already exist with different routing table {table}",
                    own.vrfname
                ))
            }
            Some((vrf, table)) => (vrf, table, false),
            None => {
                let table = match own.table {
                    0 => free_table(&mut nl)?,
                    t => t,
                };
                nl.create_link(
                    &own.vrfname,
                    &LinkKind::Vrf { table },
                    &LinkOptions {
                        up: true,
                        ..LinkOptions::default()
                    },
                )
                .context(format!("could not add VRF {}", own.vrfname))?;
                let vrf = nl.find_link(&own.vrfname).context("look up the new VRF")?;
                nl.set_up(vrf.index)
                    .context(format!("could not set link up for VRF {}", own.vrfname))?;
                (vrf, table, true)
            }
        };
        if let Err(e) = enslave(&mut nl, &args.ifname, &vrf, table) {
            if let Ok(Some(link)) = nl.link_by_name(&args.ifname) {
                if link.master == Some(vrf.index) {
                    let _ = nl.set_master(link.index, None);
                }
            }
            if created {
                let _ = nl.delete_link(vrf.index);
            }
            return Err(e);
        }
        let mut result = prev;
        result.cni_version = conf.cni_version.clone();
        Ok(result)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (_, own) = load(args)?;
        if own.vrfname.is_empty() {
            return Ok(());
        }
        let Some(ns) = open_netns(&args.netns)? else {
            return Ok(());
        };
        let mut nl = handle_in(&ns)?;
        let Some((vrf, _)) = find_vrf(&mut nl, &own.vrfname)? else {
            return Ok(());
        };
        if let Some(link) = nl
            .link_by_name(&args.ifname)
            .context("look up the interface")?
            .filter(|l| l.master == Some(vrf.index))
        {
            nl.set_master(link.index, None)
                .context(format!("could not release {} from its VRF", args.ifname))?;
        }
        if members(&mut nl, vrf.index)?.is_empty() {
            match nl.delete_link(vrf.index) {
                Ok(()) => {}
                // Another DEL removed it first.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e).context(format!("could not delete VRF {}", own.vrfname)),
            }
        }
        Ok(())
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, own) = load(args)?;
        if conf.prev_result()?.is_none() {
            return Err(CniError::invalid_config(
                "prevResult: missing prevResult from earlier plugin",
            ));
        }
        let ns = crate::container::require_netns(args)?;
        let mut nl = handle_in(&ns)?;
        let (vrf, _) = find_vrf(&mut nl, &own.vrfname)?
            .ok_or_else(|| fail!("VRF {} not found", own.vrfname))?;
        if !members(&mut nl, vrf.index)?
            .iter()
            .any(|l| l.name == args.ifname)
        {
            return Err(fail!(
                "failed to find {} associated to vrf {}",
                args.ifname,
                own.vrfname
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<VrfConf>(), Vec::<String>::new());
    }

    #[test]
    fn the_lowest_table_neither_taken_nor_reserved() {
        assert_eq!(lowest_free_table(&[]), Some(1));
        assert_eq!(lowest_free_table(&[1, 2, 4]), Some(3));
        let below_reserved: Vec<u32> = (1..253).collect();
        assert_eq!(lowest_free_table(&below_reserved), Some(256));
    }
}
