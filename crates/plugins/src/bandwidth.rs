//! `bandwidth` (chained, spec 0.3.0 on): shapes the traffic of the
//! container interface at its host veth. Ingress (into the container) is
//! a token bucket filter as the veth's root qdisc. Egress (out of the
//! container) arrives on the veth's ingress side, where no qdisc can
//! shape; an ingress qdisc there redirects every packet to an IFB device
//! (`bwp` + hash of network name and container ID), whose root is the
//! second token bucket filter. The IFB is added to the result.

use crate::container::{handle_in, open_netns, require_netns};
use crate::error::{Context, Teardown};
use crate::undo::Undo;
use rcni_net::{
    format_mac, tick_in_usec, Handle, Link, LinkKind, LinkOptions, QdiscKind, Tbf, INGRESS_HANDLE,
    TC_H_INGRESS, TC_H_ROOT,
};
use rcni_netfilter::rule_names::hash_with_prefix;
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::{Key, Schema};
use rcni_spec::types::Interface;
use rcni_spec::{gojson, CniError, CniResult};
use serde::Deserialize;

pub struct Bandwidth;

/// The IFB's name: `bwp` and the hash, as long as an interface name may be.
const IFB_PREFIX: &str = "bwp";
const IFB_NAME_LEN: usize = 15;
/// Handle `1:` of both token bucket filters.
const TBF_HANDLE: u32 = 0x0001_0000;
/// The redirect filter's priority and class (`1:1`), as the reference's.
const FILTER_PRIO: u16 = 1;
const FILTER_CLASS: u32 = 0x0001_0001;
/// How long a packet may wait in a bucket; the queue holds that much.
const LATENCY_MS: f64 = 25.0;
const USEC_PER_SEC: f64 = 1_000_000.0;

/// The four keys, top-level or under `runtimeConfig.bandwidth` (CNI's
/// conventions): rates in bits per second, bursts in bits.
#[derive(Deserialize, Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    #[serde(rename = "ingressRate", default)]
    ingress_rate: u64,
    #[serde(rename = "ingressBurst", default)]
    ingress_burst: u64,
    #[serde(rename = "egressRate", default)]
    egress_rate: u64,
    #[serde(rename = "egressBurst", default)]
    egress_burst: u64,
}

const KEYS: [&str; 4] = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

impl Limits {
    fn is_zero(&self) -> bool {
        *self == Limits::default()
    }

    /// `(rate, burst)` of ingress and of egress, each when both are set.
    fn ingress(&self) -> Option<(u64, u64)> {
        (self.ingress_rate > 0 && self.ingress_burst > 0)
            .then_some((self.ingress_rate, self.ingress_burst))
    }

    fn egress(&self) -> Option<(u64, u64)> {
        (self.egress_rate > 0 && self.egress_burst > 0)
            .then_some((self.egress_rate, self.egress_burst))
    }
}

/// Each rate needs its burst and the other way round; a burst must fit
/// the kernel's 32-bit byte count; a rate under 8 bits/s would be zero
/// bytes/s, which no bucket can hold.
fn validate(rate: u64, burst: u64, direction: &str, at: &str) -> Result<(), CniError> {
    // reference text
    if burst == 0 && rate != 0 {
        return Err(invalid!(
            "{at}{direction}Burst: if rate is set, burst must also be set"
        ));
    }
    if rate == 0 && burst != 0 {
        return Err(invalid!(
            "{at}{direction}Rate: if burst is set, rate must also be set"
        ));
    }
    if burst / 8 >= u64::from(u32::MAX) {
        return Err(invalid!(
            "{at}{direction}Burst: burst cannot be more than 4GB"
        ));
    }
    if rate != 0 && rate < 8 {
        return Err(invalid!(
            "{at}{direction}Rate: {rate} bits/s is less than a byte per second"
        ));
    }
    Ok(())
}

/// The limits in force: the top-level keys when any is present (even
/// zero, as the reference decodes them), else `runtimeConfig.bandwidth`.
/// `None` when neither is there.
fn limits(conf: &PluginConf) -> Result<Option<Limits>, CniError> {
    if KEYS.iter().any(|k| gojson::get(&conf.raw, k).is_some()) {
        let top: Limits = conf.plugin_fields()?;
        validate(top.ingress_rate, top.ingress_burst, "ingress", "")?;
        validate(top.egress_rate, top.egress_burst, "egress", "")?;
        return Ok(Some(top));
    }
    match conf.runtime("bandwidth") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => {
            let at = "runtimeConfig.bandwidth.";
            let rt: Limits = gojson::from_value(v).invalid_context("runtimeConfig.bandwidth")?;
            validate(rt.ingress_rate, rt.ingress_burst, "ingress", at)?;
            validate(rt.egress_rate, rt.egress_burst, "egress", at)?;
            Ok(Some(rt))
        }
    }
}

/// The IFB of an attachment.
fn ifb_name(network: &str, container_id: &str) -> String {
    hash_with_prefix(
        IFB_NAME_LEN,
        IFB_PREFIX,
        &format!("{network}{container_id}"),
    )
}

/// Go's float-to-uint32 conversion on amd64 (through a signed 64-bit
/// integer, then the low 32 bits), which the reference's arithmetic uses.
fn go_u32(x: f64) -> u32 {
    if x.is_finite() && x.abs() < 9.2e18 {
        (x as i64) as u32
    } else {
        0
    }
}

/// The reference's token bucket: rate in bytes/s; buffer = the time the
/// burst takes at that rate, in scheduler ticks; limit = what the rate
/// sends in 25 ms, plus the burst in bytes.
fn tbf_for(rate_bits: u64, burst_bits: u64, ticks_per_usec: f64) -> Tbf {
    let rate = rate_bits / 8;
    // Validated: burst / 8 < 2^32 - 1.
    let burst = u32::try_from(burst_bits / 8).unwrap_or(u32::MAX);
    let burst_usec = go_u32(f64::from(burst) * USEC_PER_SEC / rate as f64);
    let buffer = go_u32(f64::from(burst_usec) * ticks_per_usec);
    let latency_usec = USEC_PER_SEC * (LATENCY_MS / 1000.0);
    let limit = go_u32(rate as f64 * latency_usec / USEC_PER_SEC).wrapping_add(burst);
    Tbf {
        rate,
        limit,
        buffer,
    }
}

struct Config {
    conf: PluginConf,
    limits: Option<Limits>,
}

fn load(args: &CmdArgs) -> Result<Config, CniError> {
    let conf = args.conf()?;
    // DEL needs only the names: it must go on whatever the limits say.
    let limits = match limits(&conf) {
        Ok(l) => l,
        Err(_) if args.is_del() => None,
        Err(e) => return Err(e),
    };
    Ok(Config { conf, limits })
}

/// The host end of the container interface's veth, which must be one of
/// the previous result's host interfaces.
fn host_veth(args: &CmdArgs, prev: &CniResult, host: &mut Handle) -> Result<Link, CniError> {
    // reference text
    if prev.interfaces.is_empty() {
        return Err(fail!("no interfaces provided"));
    }
    let ns = require_netns(args)?;
    let ctr_link = handle_in(&ns)?
        .link_by_name(&args.ifname)
        .context("look up the container interface")?;
    let peer = match ctr_link {
        Some(Link {
            kind: Some(LinkKind::Veth),
            link: Some(peer),
            ..
        }) if peer > 0 => peer,
        // reference text
        _ => {
            return Err(fail!(
                "container interface {} has no veth peer",
                args.ifname
            ))
        }
    };
    let link = host
        .link_by_index(peer)
        .context("look up the veth peer")?
        .ok_or_else(|| fail!("veth peer with index {peer} is not in host ns"))?;
    if !prev
        .interfaces
        .iter()
        .any(|i| i.sandbox.is_empty() && i.name == link.name)
    {
        return Err(fail!(
            "no veth peer of container interface found in host ns"
        ));
    }
    Ok(link)
}

fn prev_result(conf: &PluginConf) -> Result<CniResult, CniError> {
    conf.prev_result()?
        // reference text
        .ok_or_else(|| invalid!("prevResult: must be called as chained plugin"))
}

/// The undo of a change on the host, with a socket of its own.
fn undo_on_host(action: impl FnOnce(&mut Handle)) -> Undo<impl FnOnce()> {
    Undo::new(move || {
        if let Ok(mut host) = Handle::new() {
            action(&mut host);
        }
    })
}

/// Deletes the IFB `name` if it exists.
fn delete_ifb(host: &mut Handle, name: &str) -> Result<(), CniError> {
    let Some(ifb) = host.link_by_name(name).context("look up the ifb device")? else {
        return Ok(());
    };
    match host.delete_link(ifb.index) {
        Err(e) if !e.is_not_found() => Err(e).context(format!("delete ifb device {name}")),
        _ => Ok(()),
    }
}

/// Removes this plugin's qdiscs (the root TBF `1:` and the ingress qdisc)
/// from the host veth, when prevResult and the container still lead to
/// it; the reference leaves them for the veth's deletion, so that a new
/// ADD on the same veth would fail.
fn unshape_veth(args: &CmdArgs, conf: &PluginConf, host: &mut Handle) -> Result<(), CniError> {
    let Some(prev) = conf.prev_result()? else {
        return Ok(());
    };
    if open_netns(&args.netns)?.is_none() {
        return Ok(());
    }
    // A veth already gone, or no longer the container's: nothing to undo.
    let Ok(veth) = host_veth(args, &prev, host) else {
        return Ok(());
    };
    for q in host.qdiscs(veth.index).context("list qdiscs")? {
        let ours = match q.kind {
            QdiscKind::Tbf(_) => q.parent == TC_H_ROOT && q.handle == TBF_HANDLE,
            QdiscKind::Ingress => true,
            QdiscKind::Other(_) => false,
        };
        if ours {
            match host.delete_qdisc(veth.index, q.parent, q.handle) {
                Err(e) if !e.is_not_found() => {
                    return Err(e).context(format!("delete qdisc of {}", veth.name))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The root qdisc of `index`, which must be a TBF with `want`'s values.
fn check_tbf(host: &mut Handle, index: u32, want: &Tbf) -> Result<(), CniError> {
    let qdiscs = host.qdiscs(index).context("list qdiscs")?;
    // reference text for the messages
    let Some(QdiscKind::Tbf(tbf)) = qdiscs
        .into_iter()
        .find(|q| q.parent == TC_H_ROOT)
        .map(|q| q.kind)
    else {
        return Err(fail!("Failed to find qdisc"));
    };
    if tbf.rate != want.rate {
        return Err(fail!("Rate doesn't match"));
    }
    if tbf.limit != want.limit {
        return Err(fail!("Limit doesn't match"));
    }
    if tbf.buffer != want.buffer {
        return Err(fail!("Buffer doesn't match"));
    }
    Ok(())
}

/// bandwidth's keys, as `rcni help bandwidth` prints them.
pub const SCHEMA: Schema = Schema {
    about: "shapes the container's traffic with token buckets on the host side of its veth (chained, spec 0.3.0 on)",
    keys: &[
        Key {
            name: "ingressRate",
            ty: "uint64 (bits/s)",
            default: "0 (not shaped)",
            meaning: "rate of traffic into the container (a TBF on the host veth)",
        },
        Key {
            name: "ingressBurst",
            ty: "uint64 (bits)",
            default: "0",
            meaning: "burst into the container; needed with ingressRate",
        },
        Key {
            name: "egressRate",
            ty: "uint64 (bits/s)",
            default: "0 (not shaped)",
            meaning: "rate of traffic out of the container (a TBF on an IFB the veth redirects to)",
        },
        Key {
            name: "egressBurst",
            ty: "uint64 (bits)",
            default: "0",
            meaning: "burst out of the container; needed with egressRate",
        },
    ],
    capabilities: &["bandwidth"],
    example: r#"{"cniVersion": "1.0.0", "name": "shaped", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipam": {"type": "host-local", "subnet": "10.33.0.0/24"}},
  {"type": "bandwidth", "ingressRate": 10000000, "ingressBurst": 320000, "egressRate": 10000000, "egressBurst": 320000}]}"#,
    check: |conf| limits(conf).map(drop),
};

impl Plugin for Bandwidth {
    fn name(&self) -> &str {
        "bandwidth"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        rcni_spec::version::starting_from("0.3.0")
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let Config { conf, limits } = load(args)?;
        let mut result = prev_result(&conf)?;
        result.cni_version = conf.cni_version.clone();
        let Some(limits) = limits.filter(|l| !l.is_zero()) else {
            return Ok(result);
        };
        let ticks = tick_in_usec().context("read the kernel's tick rate")?;
        let mut host = Handle::new().context("open netlink")?;
        let veth = host_veth(args, &result, &mut host)?;
        let veth_index = veth.index;

        let mut ingress = None;
        if let Some((rate, burst)) = limits.ingress() {
            host.add_root_tbf(veth_index, TBF_HANDLE, &tbf_for(rate, burst, ticks))
                .context("create qdisc")?;
            ingress = Some(undo_on_host(move |h| {
                let _ = h.delete_qdisc(veth_index, TC_H_ROOT, TBF_HANDLE);
            }));
        }
        if let Some((rate, burst)) = limits.egress() {
            let name = ifb_name(&conf.name, &args.container_id);
            host.create_link(
                &name,
                &LinkKind::Ifb,
                &LinkOptions {
                    mtu: Some(veth.mtu),
                    // The reference creates it with an empty transmit queue.
                    txqlen: Some(0),
                    up: true,
                    ..LinkOptions::default()
                },
            )
            .context("adding link")?;
            let ifb_made = undo_on_host({
                let name = name.clone();
                move |h| {
                    let _ = delete_ifb(h, &name);
                }
            });
            let ifb = host.find_link(&name).context("get ifb device")?;
            host.add_ingress_qdisc(veth_index)
                .context("create ingress qdisc")?;
            let redirect = undo_on_host(move |h| {
                let _ = h.delete_qdisc(veth_index, TC_H_INGRESS, INGRESS_HANDLE);
            });
            host.add_redirect_filter(
                veth_index,
                INGRESS_HANDLE,
                FILTER_PRIO,
                FILTER_CLASS,
                ifb.index,
            )
            .context("add filter")?;
            host.add_root_tbf(ifb.index, TBF_HANDLE, &tbf_for(rate, burst, ticks))
                .context("create ifb qdisc")?;
            result.interfaces.push(Interface {
                name,
                mac: ifb.mac.as_deref().map(format_mac).unwrap_or_default(),
                ..Interface::default()
            });
            redirect.keep();
            ifb_made.keep();
        }
        if let Some(ingress) = ingress {
            ingress.keep();
        }
        Ok(result)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        let Config { conf, .. } = load(args)?;
        let mut host = Handle::new().context("open netlink")?;
        let mut teardown = Teardown::new("bandwidth");
        teardown.step(delete_ifb(
            &mut host,
            &ifb_name(&conf.name, &args.container_id),
        ));
        teardown.step(unshape_veth(args, &conf, &mut host));
        teardown.finish()
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let Config { conf, limits } = load(args)?;
        let prev = conf
            .prev_result()?
            // reference text
            .ok_or_else(|| invalid!("prevResult: must be called as a chained plugin"))?;
        let mut host = Handle::new().context("open netlink")?;
        let veth = host_veth(args, &prev, &mut host)?;
        let Some(limits) = limits.filter(|l| !l.is_zero()) else {
            return Ok(());
        };
        let ticks = tick_in_usec().context("read the kernel's tick rate")?;
        if let Some((rate, burst)) = limits.ingress() {
            check_tbf(&mut host, veth.index, &tbf_for(rate, burst, ticks))?;
        }
        if let Some((rate, burst)) = limits.egress() {
            let name = ifb_name(&conf.name, &args.container_id);
            let ifb = host
                .link_by_name(&name)
                .context("get ifb device")?
                .ok_or_else(|| fail!("get ifb device: link {name} not found"))?;
            check_tbf(&mut host, ifb.index, &tbf_for(rate, burst, ticks))?;
            let redirected = host
                .filters(veth.index, INGRESS_HANDLE)
                .context("list filters")?
                .iter()
                .any(|f| f.redirect_to == Some(ifb.index));
            if !redirected {
                return Err(fail!(
                    "no filter on {} redirects its traffic to {name}",
                    veth.name
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_declares_what_is_decoded() {
        assert_eq!(SCHEMA.drift::<Limits>(), Vec::<String>::new());
    }

    #[test]
    fn ifb_name_is_the_references() {
        // "bwp" + the hex SHA-512 of "mynet" + "ctr1", cut to 15.
        assert_eq!(ifb_name("mynet", "ctr1"), "bwp5145007e2a84");
    }

    #[test]
    fn tbf_arithmetic_is_the_references() {
        // 1 Mbit/s, 10 kB burst, 15.625 ticks per µs (high-resolution timers).
        let tbf = tbf_for(1_000_000, 80_000, 15.625);
        assert_eq!(tbf.rate, 125_000);
        // 10000 B at 125000 B/s = 80000 µs = 1250000 ticks.
        assert_eq!(tbf.buffer, 1_250_000);
        // 125000 B/s for 25 ms = 3125 B, plus the 10000 B burst.
        assert_eq!(tbf.limit, 13_125);
        // Fractions are cut, as Go's conversions do.
        let odd = tbf_for(8_000_007, 8_001, 15.625);
        assert_eq!(odd.rate, 1_000_000);
        assert_eq!(odd.buffer, 15_625);
        assert_eq!(odd.limit, 26_000);
    }

    #[test]
    fn go_conversions_wrap_like_amd64() {
        assert_eq!(go_u32(5e9), 705_032_704);
        assert_eq!(go_u32(f64::INFINITY), 0);
        assert_eq!(go_u32(12.9), 12);
    }

    #[test]
    fn validation_names_the_key() {
        let e = validate(1000, 0, "ingress", "").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (7, "ingressBurst: if rate is set, burst must also be set")
        );
        let e = validate(0, 1000, "egress", "runtimeConfig.bandwidth.").unwrap_err();
        assert!(e
            .msg
            .starts_with("runtimeConfig.bandwidth.egressRate: if burst"));
        let e = validate(1000, 8 * u64::from(u32::MAX), "egress", "").unwrap_err();
        assert_eq!(e.msg, "egressBurst: burst cannot be more than 4GB");
        assert!(validate(1000, 8 * u64::from(u32::MAX) - 1, "egress", "").is_ok());
        assert!(validate(0, 0, "egress", "").is_ok());
        assert!(validate(7, 100, "egress", "").is_err());
    }
}
