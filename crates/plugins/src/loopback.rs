//! `loopback`: sets `lo` up in the container (whatever CNI_IFNAME says),
//! reports it, and sets it down again on DEL.

use crate::container::{handle_in, open_netns};
use crate::error::Context;
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::schema::Schema;
use rcni_spec::{CniError, CniResult, Interface, IpConfig};

pub struct Loopback;

const LO: &str = "lo";

/// loopback has no keys of its own.
pub const SCHEMA: Schema = Schema {
    about: "sets the container's lo up",
    keys: &[],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}"#,
    check: |_| Ok(()),
};

impl Plugin for Loopback {
    fn name(&self) -> &str {
        "loopback"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = args.conf()?;
        let prev = conf.prev_result()?;
        let ns = open_netns(&args.netns)?.ok_or_else(|| missing_netns(&args.netns))?;
        let mut nl = handle_in(&ns)?;
        let lo = nl.find_link(LO).context("look up lo")?;
        nl.set_up(lo.index).context("set lo up")?;
        let addrs = nl.addresses(Some(lo.index)).context("list lo addresses")?;
        if let Some(bad) = addrs.iter().find(|a| !a.net.addr().is_loopback()) {
            return Err(fail!(
                "loopback interface found with non-loopback address {:?}",
                bad.net.addr().to_string()
            ));
        }
        if let Some(prev) = prev {
            return Ok(prev);
        }
        let first_of = |v4: bool| addrs.iter().find(|a| a.net.addr().is_ipv4() == v4);
        Ok(CniResult {
            cni_version: conf.cni_version.clone(),
            interfaces: vec![Interface {
                name: LO.into(),
                mac: "00:00:00:00:00:00".into(),
                sandbox: args.netns.clone(),
                ..Interface::default()
            }],
            ips: [first_of(true), first_of(false)]
                .into_iter()
                .flatten()
                .map(|a| IpConfig {
                    interface: Some(0),
                    address: a.net,
                    gateway: None,
                })
                .collect(),
            ..CniResult::default()
        })
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let Some(ns) = open_netns(&args.netns)? else {
            return Ok(());
        };
        let mut nl = handle_in(&ns)?;
        if let Some(lo) = nl.link_by_name(LO).context("look up lo")? {
            nl.set_down(lo.index).context("set lo down")?;
        }
        Ok(())
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let ns = open_netns(&args.netns)?.ok_or_else(|| missing_netns(&args.netns))?;
        let mut nl = handle_in(&ns)?;
        match nl.link_by_name(LO).context("look up lo")? {
            Some(lo) if lo.admin_up => Ok(()),
            _ => Err(fail!("loopback interface is down")),
        }
    }
}

fn missing_netns(path: &str) -> CniError {
    fail!("failed to open netns {path:?}: no such network namespace")
}
