//! Policy routing rules (`ip rule`).

use crate::error::Result;
use crate::route::{address_family, families, IpFamily};
use crate::socket::Handle;
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleHeader, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// A rule as rcni sets and reads them: "from `src` lookup `table`".
/// Selectors rcni does not model (fwmark, iif, ...) are not read, so a
/// rule read back may match more narrowly than it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The family (rules are per family).
    pub family: IpFamily,
    /// `FRA_SRC` with its prefix length; `None` matches every source.
    pub src: Option<IpNet>,
    /// The table looked up (`FR_ACT_TO_TBL`); 0 for rules of another
    /// action.
    pub table: u32,
    /// `FRA_PRIORITY` (the preference); `None` when adding lets the kernel
    /// pick one just below the first rule after priority 0, as
    /// `ip rule add` without `pref` does. Always set in rules read back
    /// (the kernel leaves out a priority of 0).
    pub priority: Option<u32>,
}

impl Rule {
    /// "from `src` lookup `table`", priority chosen by the kernel.
    pub fn from_source(src: IpNet, table: u32) -> Rule {
        Rule {
            family: IpFamily::of(src.addr()),
            src: Some(src),
            table,
            priority: None,
        }
    }

    fn to_message(&self) -> RuleMessage {
        let mut msg = RuleMessage::default();
        msg.header = RuleHeader {
            family: address_family(self.family),
            src_len: self.src.map_or(0, |s| s.prefix_len()),
            table: u8::try_from(self.table).unwrap_or(0),
            action: RuleAction::ToTable,
            ..RuleHeader::default()
        };
        if let Some(src) = self.src {
            msg.attributes.push(RuleAttribute::Source(src.addr()));
        }
        // Always in FRA_TABLE too, as iproute2 does: the header byte cannot
        // hold ids above 255.
        msg.attributes.push(RuleAttribute::Table(self.table));
        if let Some(p) = self.priority {
            msg.attributes.push(RuleAttribute::Priority(p));
        }
        msg
    }

    fn from_message(msg: &RuleMessage) -> Option<Rule> {
        let family = match msg.header.family {
            AddressFamily::Inet => IpFamily::V4,
            AddressFamily::Inet6 => IpFamily::V6,
            _ => return None,
        };
        let mut rule = Rule {
            family,
            src: None,
            table: match msg.header.action {
                RuleAction::ToTable => u32::from(msg.header.table),
                _ => 0,
            },
            priority: Some(0),
        };
        for attr in &msg.attributes {
            match attr {
                RuleAttribute::Source(ip) => {
                    rule.src = IpNet::new(*ip, msg.header.src_len).ok();
                }
                RuleAttribute::Table(t) if msg.header.action == RuleAction::ToTable => {
                    rule.table = *t
                }
                RuleAttribute::Priority(p) => rule.priority = Some(*p),
                _ => {}
            }
        }
        Some(rule)
    }
}

impl Handle {
    /// The rules of a family (or both), as `ip rule` lists them.
    pub fn rules(&mut self, family: Option<IpFamily>) -> Result<Vec<Rule>> {
        let mut out = Vec::new();
        for fam in families(family) {
            let mut req = RuleMessage::default();
            req.header.family = address_family(*fam);
            let replies = self.dump(RouteNetlinkMessage::GetRule(req), "list rules")?;
            out.extend(replies.iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => Rule::from_message(r),
                _ => None,
            }));
        }
        Ok(out)
    }

    /// Adds a rule; an identical one existing fails with `EEXIST`
    /// ([`NetError::is_exists`]).
    ///
    /// [`NetError::is_exists`]: crate::NetError::is_exists
    pub fn add_rule(&mut self, rule: &Rule) -> Result<()> {
        self.request(
            RouteNetlinkMessage::NewRule(rule.to_message()),
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("add rule {}", describe(rule)),
        )
    }

    /// Deletes the first rule matching source, table and (when set)
    /// priority. A missing rule fails with `ENOENT`
    /// ([`NetError::is_not_found`]).
    ///
    /// [`NetError::is_not_found`]: crate::NetError::is_not_found
    pub fn delete_rule(&mut self, rule: &Rule) -> Result<()> {
        self.request(
            RouteNetlinkMessage::DelRule(rule.to_message()),
            0,
            &format!("delete rule {}", describe(rule)),
        )
    }
}

/// `from 10.0.0.2/32 lookup 100 pref 32765`, for error messages.
fn describe(rule: &Rule) -> String {
    let mut s = match rule.src {
        Some(src) => format!("from {src}"),
        None => "from all".to_string(),
    };
    s.push_str(&format!(" lookup {}", rule.table));
    if let Some(p) = rule.priority {
        s.push_str(&format!(" pref {p}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};

    fn roundtrip(r: &Rule) -> Rule {
        let msg = r.to_message();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let parsed = RuleMessage::parse(buf.as_slice()).unwrap();
        Rule::from_message(&parsed).unwrap()
    }

    #[test]
    fn encode_decode() {
        let small = Rule::from_source("10.0.0.2/32".parse().unwrap(), 100);
        let msg = small.to_message();
        assert_eq!((msg.header.src_len, msg.header.table), (32, 100));
        let mut read = small.clone();
        read.priority = Some(0);
        assert_eq!(roundtrip(&small), read, "no FRA_PRIORITY is priority 0");
        let mut big = Rule::from_source("fd00::2/128".parse().unwrap(), 5000);
        big.priority = Some(1000);
        assert_eq!(big.family, IpFamily::V6);
        assert_eq!(
            big.to_message().header.table,
            0,
            "ids above 255 only in FRA_TABLE"
        );
        assert_eq!(roundtrip(&big), big);
    }

    #[test]
    fn descriptions() {
        let mut r = Rule::from_source("10.0.0.2/32".parse().unwrap(), 100);
        assert_eq!(describe(&r), "from 10.0.0.2/32 lookup 100");
        r.src = None;
        r.priority = Some(7);
        assert_eq!(describe(&r), "from all lookup 100 pref 7");
    }
}
