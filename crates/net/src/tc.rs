//! Traffic control over the route socket: the qdiscs and the filter that
//! traffic shaping needs (a token bucket filter, the ingress qdisc, a
//! match-all u32 filter whose mirred action redirects to another link).
//! netlink-packet-route has the u32 and mirred encodings; TBF's options
//! (`struct tc_tbf_qopt`, linux/pkt_sched.h) are encoded here.

use crate::error::{NetError, Result};
use crate::framing::{attributes, u32_at};
use crate::socket::Handle;
use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionGeneric, TcActionMirrorOption, TcActionOption,
    TcActionType, TcAttribute, TcFilterU32Option, TcHandle, TcMessage, TcMirror,
    TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

/// `TCA_TBF_PARMS`: the `struct tc_tbf_qopt`.
const TCA_TBF_PARMS: u16 = 1;
/// `TCA_TBF_RATE64`: the rate when it does not fit the 32 bits of
/// `tc_ratespec.rate`.
const TCA_TBF_RATE64: u16 = 4;
/// `sizeof(struct tc_tbf_qopt)`: two 12-byte `tc_ratespec`s and limit,
/// buffer, mtu.
const TBF_QOPT_LEN: usize = 36;
/// Where `tc_tbf_qopt.rate.rate`, `.limit` and `.buffer` sit.
const TBF_RATE_AT: usize = 8;
const TBF_LIMIT_AT: usize = 24;
const TBF_BUFFER_AT: usize = 28;
/// `ETH_P_ALL`, which the filter header carries in network byte order.
const ETH_P_ALL: u16 = 0x0003;
/// The kernel's ticks per microsecond come from here.
const PSCHED: &str = "/proc/net/psched";

/// A token bucket filter's parameters as the kernel holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    /// Bytes per second.
    pub rate: u64,
    /// Bytes that may queue.
    pub limit: u32,
    /// The bucket size, in scheduler ticks.
    pub buffer: u32,
}

/// What a qdisc is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QdiscKind {
    /// `tbf`.
    Tbf(Tbf),
    /// `ingress`.
    Ingress,
    /// Any other kind, by name.
    Other(String),
}

/// A qdisc of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    /// The link's index.
    pub index: u32,
    /// Its handle (`major << 16 | minor`).
    pub handle: u32,
    /// Its parent (`TC_H_ROOT` for the root qdisc).
    pub parent: u32,
    /// Kind and parameters.
    pub kind: QdiscKind,
}

/// A filter of a link, with the link its mirred action redirects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The filter's kind (`u32`, ...).
    pub kind: String,
    /// The target of a mirred egress redirect among its actions.
    pub redirect_to: Option<u32>,
}

/// `TC_H_ROOT`: the parent of a root qdisc.
pub const TC_H_ROOT: u32 = 0xffff_ffff;
/// `TC_H_INGRESS`: the parent of the ingress qdisc.
pub const TC_H_INGRESS: u32 = 0xffff_fff1;
/// `ffff:`, the ingress qdisc's handle.
pub const INGRESS_HANDLE: u32 = 0xffff_0000;

/// The kernel's scheduler ticks per microsecond, from `/proc/net/psched`
/// (four hex words: ns per µs, ns per tick, clock resolution, HZ): what
/// `tc` and the reference's netlink library compute.
pub fn tick_in_usec() -> Result<f64> {
    let text = std::fs::read_to_string(PSCHED).map_err(NetError::io(format!("read {PSCHED}")))?;
    tick_in_usec_of(&text)
        .ok_or_else(|| NetError::Protocol(format!("{PSCHED}: unexpected content {text:?}")))
}

fn tick_in_usec_of(text: &str) -> Option<f64> {
    let words: Vec<u64> = text
        .split_whitespace()
        .take(4)
        .map(|w| u64::from_str_radix(w, 16).ok())
        .collect::<Option<_>>()?;
    let [mut t2us, us2t, clock_res, _] = <[u64; 4]>::try_from(words).ok()?;
    // A 1 GHz clock resolution means the old "ticks are ns" layout, where
    // the first word is not to be used.
    if clock_res == 1_000_000_000 {
        t2us = us2t;
    }
    if us2t == 0 {
        return None;
    }
    Some(t2us as f64 / us2t as f64 * (clock_res as f64 / 1_000_000.0))
}

/// The `TCA_OPTIONS` payload of a TBF: `tc_tbf_qopt` (rate, limit, buffer;
/// no peak rate), and the 64-bit rate when it needs more than 32 bits.
fn tbf_options(tbf: &Tbf) -> Vec<TcOption> {
    let mut qopt = [0u8; TBF_QOPT_LEN];
    let rate32 = u32::try_from(tbf.rate).unwrap_or(u32::MAX);
    qopt[TBF_RATE_AT..TBF_RATE_AT + 4].copy_from_slice(&rate32.to_ne_bytes());
    qopt[TBF_LIMIT_AT..TBF_LIMIT_AT + 4].copy_from_slice(&tbf.limit.to_ne_bytes());
    qopt[TBF_BUFFER_AT..TBF_BUFFER_AT + 4].copy_from_slice(&tbf.buffer.to_ne_bytes());
    let mut options = vec![TcOption::Other(DefaultNla::new(
        TCA_TBF_PARMS,
        qopt.to_vec(),
    ))];
    if tbf.rate > u64::from(u32::MAX) {
        options.push(TcOption::Other(DefaultNla::new(
            TCA_TBF_RATE64,
            tbf.rate.to_ne_bytes().to_vec(),
        )));
    }
    options
}

/// A TBF's parameters from its `TCA_OPTIONS` payload.
fn parse_tbf(options: &[u8]) -> Option<Tbf> {
    let mut attrs = attributes(options);
    let qopt = attrs.clone().find(|(k, _)| *k == TCA_TBF_PARMS)?.1;
    let mut rate = u64::from(u32_at(qopt, TBF_RATE_AT)?);
    if let Some((_, r)) = attrs.find(|(k, _)| *k == TCA_TBF_RATE64) {
        rate = u64::from_ne_bytes(r.get(..8)?.try_into().ok()?);
    }
    Some(Tbf {
        rate,
        limit: u32_at(qopt, TBF_LIMIT_AT)?,
        buffer: u32_at(qopt, TBF_BUFFER_AT)?,
    })
}

fn header(index: u32, handle: u32, parent: u32) -> Result<TcMessage> {
    let index = i32::try_from(index)
        .map_err(|_| NetError::Protocol(format!("interface index {index} out of range")))?;
    let mut msg = TcMessage::with_index(index);
    msg.header.handle = TcHandle::from(handle);
    msg.header.parent = TcHandle::from(parent);
    Ok(msg)
}

/// `tc qdisc add dev <index> parent <parent> handle <handle> tbf ...`.
fn tbf_message(index: u32, parent: u32, handle: u32, tbf: &Tbf) -> Result<TcMessage> {
    let mut msg = header(index, handle, parent)?;
    msg.attributes = vec![
        TcAttribute::Kind("tbf".into()),
        TcAttribute::Options(tbf_options(tbf)),
    ];
    Ok(msg)
}

/// `tc qdisc add dev <index> ingress`.
fn ingress_message(index: u32) -> Result<TcMessage> {
    let mut msg = header(index, INGRESS_HANDLE, TC_H_INGRESS)?;
    msg.attributes = vec![
        TcAttribute::Kind("ingress".into()),
        TcAttribute::Options(Vec::new()),
    ];
    Ok(msg)
}

/// `tc filter add dev <index> parent <parent> protocol all prio <prio> u32
/// match u32 0 0 flowid <class> action mirred egress redirect dev <target>`.
fn redirect_filter_message(
    index: u32,
    parent: u32,
    prio: u16,
    class: u32,
    target: u32,
) -> Result<TcMessage> {
    let mut msg = header(index, 0, parent)?;
    msg.header.info = (u32::from(prio) << 16) | u32::from(ETH_P_ALL.to_be());
    let mut generic = TcActionGeneric::default();
    generic.action = TcActionType::Stolen;
    let mut mirred = TcMirror::default();
    mirred.generic = generic;
    mirred.eaction = TcMirrorActionType::EgressRedir;
    mirred.ifindex = target;
    let mut action = TcAction::default();
    action.attributes = vec![
        TcActionAttribute::Kind("mirred".into()),
        TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
            mirred,
        ))]),
    ];
    // One key with a zero mask: every packet matches.
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.nkeys = 1;
    selector.keys = vec![TcU32Key::default()];
    msg.attributes = vec![
        TcAttribute::Kind("u32".into()),
        TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::ClassId(TcHandle::from(class))),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
            TcOption::U32(TcFilterU32Option::Selector(selector)),
        ]),
    ];
    Ok(msg)
}

fn qdisc_of(msg: &TcMessage) -> Qdisc {
    let mut kind_name = String::new();
    for attr in &msg.attributes {
        if let TcAttribute::Kind(k) = attr {
            kind_name = k.clone();
        }
    }
    let kind = match kind_name.as_str() {
        "ingress" => QdiscKind::Ingress,
        "tbf" => msg
            .attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Options(opts) => opts.iter().find_map(|o| match o {
                    TcOption::Other(nla) => {
                        let mut raw = vec![0u8; netlink_packet_core::Nla::value_len(nla)];
                        netlink_packet_core::Nla::emit_value(nla, &mut raw);
                        parse_tbf(&raw)
                    }
                    _ => None,
                }),
                _ => None,
            })
            .map_or(QdiscKind::Other(kind_name.clone()), QdiscKind::Tbf),
        _ => QdiscKind::Other(kind_name.clone()),
    };
    Qdisc {
        index: u32::try_from(msg.header.index).unwrap_or_default(),
        handle: u32::from(msg.header.handle),
        parent: u32::from(msg.header.parent),
        kind,
    }
}

fn filter_of(msg: &TcMessage) -> Option<Filter> {
    let mut kind = None;
    let mut redirect_to = None;
    for attr in &msg.attributes {
        match attr {
            TcAttribute::Kind(k) => kind = Some(k.clone()),
            TcAttribute::Options(opts) => {
                for opt in opts {
                    let TcOption::U32(TcFilterU32Option::Action(actions)) = opt else {
                        continue;
                    };
                    for a in actions.iter().flat_map(|a| &a.attributes) {
                        let TcActionAttribute::Options(aopts) = a else {
                            continue;
                        };
                        for o in aopts {
                            if let TcActionOption::Mirror(TcActionMirrorOption::Parms(m)) = o {
                                if m.eaction == TcMirrorActionType::EgressRedir {
                                    redirect_to = Some(m.ifindex);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Some(Filter {
        kind: kind?,
        redirect_to,
    })
}

impl Handle {
    /// Adds a TBF as the root qdisc of link `index`, with `handle`.
    pub fn add_root_tbf(&mut self, index: u32, handle: u32, tbf: &Tbf) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(tbf_message(index, TC_H_ROOT, handle, tbf)?),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add tbf qdisc to link {index}"),
        )
    }

    /// Adds the ingress qdisc (`ffff:`) to link `index`.
    pub fn add_ingress_qdisc(&mut self, index: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewQueueDiscipline(ingress_message(index)?),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add ingress qdisc to link {index}"),
        )
    }

    /// Adds to link `index`, under qdisc `parent`, a u32 filter matching
    /// every packet of every protocol, classified as `class`, whose mirred
    /// action redirects it to the egress of link `target`.
    pub fn add_redirect_filter(
        &mut self,
        index: u32,
        parent: u32,
        prio: u16,
        class: u32,
        target: u32,
    ) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewTrafficFilter(redirect_filter_message(
                index, parent, prio, class, target,
            )?),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add redirect filter to link {index}"),
        )
    }

    /// The qdiscs of link `index`.
    pub fn qdiscs(&mut self, index: u32) -> Result<Vec<Qdisc>> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetQueueDiscipline(header(index, 0, 0)?),
            &format!("list qdiscs of link {index}"),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewQueueDiscipline(q) => Some(qdisc_of(q)),
                _ => None,
            })
            .filter(|q| q.index == index)
            .collect())
    }

    /// Deletes the qdisc of link `index` at `parent` (and its filters).
    pub fn delete_qdisc(&mut self, index: u32, parent: u32, handle: u32) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelQueueDiscipline(header(index, handle, parent)?),
            0,
            &format!("delete qdisc {handle:#x} of link {index}"),
        )
    }

    /// The filters of link `index` under qdisc `parent`.
    pub fn filters(&mut self, index: u32, parent: u32) -> Result<Vec<Filter>> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetTrafficFilter(header(index, 0, parent)?),
            &format!("list filters of link {index}"),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewTrafficFilter(f) => filter_of(f),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::attribute;
    use netlink_packet_core::{Emitable, Parseable};

    /// The attribute that `tc` and the kernel write for a TBF's options.
    fn tbf_options_bytes(tbf: &Tbf) -> Vec<u8> {
        use netlink_packet_core::Emitable;
        let opts = tbf_options(tbf);
        let mut buf = vec![0u8; opts.as_slice().buffer_len()];
        opts.as_slice().emit(&mut buf);
        attribute(2, &buf)
    }

    fn bytes(msg: &TcMessage) -> Vec<u8> {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    fn le32(v: u32) -> [u8; 4] {
        v.to_ne_bytes()
    }

    /// The request `tc filter add dev vx1 parent ffff: protocol all prio 1
    /// u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev ifb0`
    /// sent (vx1 = 3, ifb0 = 4), as captured from iproute2 6.1.
    #[test]
    fn redirect_filter_is_what_tc_sends() {
        #[rustfmt::skip]
        let tc: Vec<u8> = [
            // tcmsg: family, pad, ifindex 3, handle 0, parent ffff:0, info prio 1 | htons(ETH_P_ALL)
            &[0u8, 0, 0, 0][..], &le32(3), &le32(0), &le32(0xffff_0000), &le32(0x0001_0300),
            // TCA_KIND "u32"
            &[8, 0, 1, 0, b'u', b'3', b'2', 0],
            // TCA_OPTIONS
            &[104, 0, 2, 0],
            // TCA_U32_CLASSID 1:1
            &[8, 0, 1, 0], &le32(0x0001_0001),
            // TCA_U32_ACT { 1: { TCA_ACT_KIND "mirred", TCA_ACT_OPTIONS { TCA_MIRRED_PARMS } } }
            &[56, 0, 7, 0, 52, 0, 1, 0],
            &[11, 0, 1, 0, b'm', b'i', b'r', b'r', b'e', b'd', 0, 0],
            &[36, 0, 2, 0x80, 32, 0, 2, 0],
            // tc_mirred: index, capab, action TC_ACT_STOLEN, refcnt, bindcnt, eaction TCA_EGRESS_REDIR, ifindex 4
            &le32(0), &le32(0), &le32(4), &le32(0), &le32(0), &le32(1), &le32(4),
            // TCA_U32_SEL: flags TERMINAL, offshift, nkeys 1, pad, offmask, off, offoff, hoff, hmask, one zero key
            &[36, 0, 5, 0, 1, 0, 1, 0], &[0; 4], &[0; 4], &[0; 4], &[0; 16],
        ]
        .concat();
        let ours = redirect_filter_message(3, INGRESS_HANDLE, 1, 0x0001_0001, 4).unwrap();
        assert_eq!(bytes(&ours), tc);
        let back = TcMessage::parse(&tc).unwrap();
        assert_eq!(
            filter_of(&back),
            Some(Filter {
                kind: "u32".into(),
                redirect_to: Some(4)
            })
        );
    }

    /// `struct tc_tbf_qopt` (linux/pkt_sched.h): rate (tc_ratespec: cell_log,
    /// linklayer, overhead, cell_align, mpu, rate), peakrate, limit,
    /// buffer, mtu, in `TCA_TBF_PARMS` inside `TCA_OPTIONS`.
    #[test]
    fn tbf_options_layout() {
        let tbf = Tbf {
            rate: 125_000,
            limit: 15_625,
            buffer: 2_000_000,
        };
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[44u8, 0, 2, 0, 40, 0, 1, 0][..],
            &[0; 8], &le32(125_000),
            &[0; 12],
            &le32(15_625), &le32(2_000_000), &le32(0),
        ]
        .concat();
        assert_eq!(tbf_options_bytes(&tbf), expected);
        assert_eq!(parse_tbf(&expected[4..]), Some(tbf));
    }

    #[test]
    fn tbf_rates_beyond_32_bits_use_rate64() {
        let tbf = Tbf {
            rate: 5_000_000_000,
            limit: 1,
            buffer: 2,
        };
        let raw = tbf_options_bytes(&tbf);
        let attrs: Vec<_> = attributes(&raw[4..]).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(u32_at(attrs[0].1, TBF_RATE_AT), Some(u32::MAX));
        assert_eq!(attrs[1].0, TCA_TBF_RATE64);
        assert_eq!(parse_tbf(&raw[4..]), Some(tbf));
    }

    #[test]
    fn tbf_qdisc_round_trips_through_the_message_parser() {
        let tbf = Tbf {
            rate: 1_250_000,
            limit: 40_000,
            buffer: 1_000,
        };
        let msg = tbf_message(7, TC_H_ROOT, 0x0001_0000, &tbf).unwrap();
        let back = TcMessage::parse(&bytes(&msg)).unwrap();
        assert_eq!(
            qdisc_of(&back),
            Qdisc {
                index: 7,
                handle: 0x0001_0000,
                parent: TC_H_ROOT,
                kind: QdiscKind::Tbf(tbf)
            }
        );
    }

    #[test]
    fn ingress_qdisc_header() {
        let raw = bytes(&ingress_message(5).unwrap());
        assert_eq!(&raw[4..8], &le32(5));
        assert_eq!(&raw[8..12], &le32(INGRESS_HANDLE));
        assert_eq!(&raw[12..16], &le32(TC_H_INGRESS));
        assert_eq!(
            &raw[20..],
            &[12, 0, 1, 0, b'i', b'n', b'g', b'r', b'e', b's', b's', 0, 4, 0, 2, 0]
        );
    }

    #[test]
    fn psched_ticks() {
        // High-resolution timers: 1000 ns per µs, 64 ns per tick.
        assert_eq!(
            tick_in_usec_of("000003e8 00000040 000f4240 3b9aca00\n"),
            Some(15.625)
        );
        // The old layout with a 1 GHz clock resolution.
        assert_eq!(
            tick_in_usec_of("000003e8 00000400 3b9aca00 000003e8"),
            Some(1000.0)
        );
        assert_eq!(tick_in_usec_of("garbage"), None);
        assert_eq!(tick_in_usec_of("1 0 1 1"), None);
    }
}
