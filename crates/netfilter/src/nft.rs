//! nftables, as rcni drives it: a change is a list of [`Change`]s (tables,
//! chains, rules), applied as one nf_tables transaction over netlink
//! (`rcni_net::nf_tables`, no process) or, when a rule holds free nft text
//! (portmap's `conditionsV4`/`V6`), written as a script for one
//! `nft -f -`; both give the kernel the same rules. Reads and deletions go
//! over netlink. Only ever in rcni's (the reference's) own tables, and
//! under one lock per network namespace ([`locked`]).

use crate::error::FirewallError;
use crate::run::{installed, run};
use crate::Family;
use ipnet::IpNet;
use rcni_net::nf_expr::{MetaKey, NftExpr, PayloadBase};
use rcni_net::nf_tables::NftChange;
use std::net::IpAddr;

/// Whether nft is installed (looked up on PATH, no exec): what choosing
/// the nftables backend for an ADD takes, as in the reference (and a
/// portmap network's conditions are applied with it).
pub fn supported() -> bool {
    installed("nft")
}

/// Whether the kernel has nf_tables (one netlink request, asked once per
/// process): what reading and deleting rcni's rules takes (DEL, GC),
/// which never run `nft`. Rules added over netlink need no `nft` on PATH,
/// so their removal must not depend on it either.
pub fn kernel_supported() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(rcni_net::nf_tables::available)
}

/// Whether the table `family name` may exist (a netlink probe, no
/// process; "maybe" when the probe fails).
pub fn table_may_exist(family: NfFamily, name: &str) -> bool {
    rcni_net::nf_tables::table_exists(family, name).unwrap_or(true)
}

/// Whether the chain `chain` of `family table` may exist (as
/// [`table_may_exist`]).
pub fn chain_may_exist(family: NfFamily, table: &str, chain: &str) -> bool {
    rcni_net::nf_tables::chain_exists(family, table, chain).unwrap_or(true)
}

pub use rcni_net::nf_expr::Verdict;
pub use rcni_net::nf_tables::{BaseChain, Hook, NfFamily, NftDeletion, NftRule as ListedRule};

fn netlink_err(e: rcni_net::NetError) -> FirewallError {
    FirewallError::Tool {
        program: "nf_tables (netlink)".into(),
        message: e.to_string(),
    }
}

/// A table as listed: all the rules of its chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedTable {
    pub rules: Vec<ListedRule>,
}

impl ListedTable {
    /// The rules of one chain.
    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

/// The rules of a whole table, read over netlink (no process); an absent
/// table has none.
pub fn list_table(family: NfFamily, table: &str) -> Result<ListedTable, FirewallError> {
    Ok(ListedTable {
        rules: rcni_net::nf_tables::list_rules(family, table, None).map_err(netlink_err)?,
    })
}

/// The rules of one chain; an absent table or chain has none.
pub fn list_rules(
    family: NfFamily,
    table: &str,
    chain: &str,
) -> Result<Vec<ListedRule>, FirewallError> {
    rcni_net::nf_tables::list_rules(family, table, Some(chain)).map_err(netlink_err)
}

/// Deletes rules and chains of one table in one transaction, over netlink.
pub fn delete(family: NfFamily, table: &str, what: &[NftDeletion]) -> Result<(), FirewallError> {
    if what.is_empty() {
        return Ok(());
    }
    rcni_net::nf_tables::delete(family, table, what).map_err(netlink_err)
}

/// Applies an nft script atomically (one exec), under [`locked`].
fn apply_script(script: &str) -> Result<(), FirewallError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    locked(|| run("nft", &["-f", "-"], Some(script)).map(|_| ()))
}

/// Which address of the IP header a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrField {
    Saddr,
    Daddr,
}

/// A transport protocol of portmap's mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp = 6,
    Udp = 17,
    Sctp = 132,
}

impl L4 {
    /// The protocol called `name` (`tcp`, `udp`, `sctp`).
    pub fn named(name: &str) -> Result<L4, FirewallError> {
        match name {
            "tcp" => Ok(L4::Tcp),
            "udp" => Ok(L4::Udp),
            "sctp" => Ok(L4::Sctp),
            other => Err(FirewallError::Config(format!(
                "unknown protocol {other:?} (expected tcp, udp or sctp)"
            ))),
        }
    }

    fn keyword(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
            L4::Sctp => "sctp",
        }
    }
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match<'a> {
    /// `ip saddr 10.0.0.5`, `ip6 daddr != fd00::/64`: the address, or
    /// the network when its prefix is shorter than the address.
    Addr {
        field: AddrField,
        net: IpNet,
        equal: bool,
    },
    /// `tcp dport 8080`.
    Dport(L4, u16),
    /// `fib daddr type local`.
    LocalDestination,
    /// `iifname "veth1"`, `oifname != "cni0"`.
    Ifname {
        output: bool,
        name: String,
        equal: bool,
    },
    /// `ether saddr aa:bb:cc:dd:ee:ff`.
    EtherSaddr([u8; 6]),
    /// `ct state established,related`.
    EstablishedOrRelated,
    /// Free nft match text, already validated for a script (portmap's
    /// conditions): it has no netlink form here, so a change holding it
    /// goes through `nft -f`.
    Text(&'a str),
}

/// What a rule does once it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Verdict(Verdict),
    /// `dnat to addr:port`.
    Dnat(IpAddr, u16),
    Masquerade,
}

/// One change of a table, as an `nft` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// `add table`, with its comment.
    Table(Option<&'static str>),
    /// `add chain`: its name, what makes it a base chain, its comment.
    Chain(String, Option<BaseChain>, Option<&'static str>),
    /// `flush chain`.
    Flush(String),
    /// `delete rule ... handle N`.
    Delete { chain: String, handle: u64 },
    /// `add rule` (or `insert rule` when `first`).
    Rule {
        chain: String,
        first: bool,
        matches: Vec<Match<'a>>,
        action: Action,
        comment: Option<String>,
    },
}

impl<'a> Change<'a> {
    /// `add rule`: the rule appended to `chain`.
    pub fn append(
        chain: &str,
        matches: Vec<Match<'a>>,
        action: Action,
        comment: Option<String>,
    ) -> Change<'a> {
        Change::Rule {
            chain: chain.into(),
            first: false,
            matches,
            action,
            comment,
        }
    }
}

/// A change of the table `family name`.
pub type TableChange<'a> = (NfFamily, &'static str, Change<'a>);

fn family_keyword(family: NfFamily) -> &'static str {
    match family {
        NfFamily::Inet => "inet",
        NfFamily::Ipv4 => "ip",
        NfFamily::Bridge => "bridge",
        NfFamily::Ipv6 => "ip6",
    }
}

/// The `ct state` bits (`NF_CT_STATE_BIT`) of established and related
/// connections.
const CT_ESTABLISHED: u32 = 1 << 1;
const CT_RELATED: u32 = 1 << 2;

impl Match<'_> {
    fn text(&self) -> String {
        match self {
            Match::Addr { field, net, equal } => {
                let ipx = Family::of(net.addr()).nft_keyword();
                let field = match field {
                    AddrField::Saddr => "saddr",
                    AddrField::Daddr => "daddr",
                };
                let op = if *equal { "" } else { "!= " };
                let value = if net.prefix_len() == net.max_prefix_len() {
                    net.addr().to_string()
                } else {
                    net.to_string()
                };
                format!("{ipx} {field} {op}{value}")
            }
            Match::Dport(l4, port) => format!("{} dport {port}", l4.keyword()),
            Match::LocalDestination => "fib daddr type local".into(),
            Match::Ifname {
                output,
                name,
                equal,
            } => {
                let key = if *output { "oifname" } else { "iifname" };
                let op = if *equal { "" } else { "!= " };
                format!("{key} {op}{}", quote(name))
            }
            Match::EtherSaddr(mac) => format!("ether saddr {}", rcni_net::format_mac(mac)),
            Match::EstablishedOrRelated => "ct state established,related".into(),
            Match::Text(text) => text.to_string(),
        }
    }

    /// The expressions nft writes for this match in a table of `family`;
    /// `l3` is the IP family the rule has matched so far (in an `inet`
    /// table nft checks `meta nfproto` once before the first address of
    /// each family). None for free text.
    fn exprs(&self, family: NfFamily, l3: &mut Option<Family>) -> Option<Vec<NftExpr>> {
        let cmp = |data: Vec<u8>| NftExpr::Cmp { equal: true, data };
        Some(match self {
            Match::Addr { field, net, equal } => {
                let ip = Family::of(net.addr());
                let mut out = Vec::new();
                if family == NfFamily::Inet && *l3 != Some(ip) {
                    let proto = match ip {
                        Family::V4 => NfFamily::Ipv4,
                        Family::V6 => NfFamily::Ipv6,
                    };
                    out.push(NftExpr::Meta(MetaKey::Nfproto));
                    out.push(cmp(vec![proto as u8]));
                }
                *l3 = Some(ip);
                let (offset, octets) = match (net.trunc().addr(), field) {
                    (IpAddr::V4(a), AddrField::Saddr) => (12, a.octets().to_vec()),
                    (IpAddr::V4(a), AddrField::Daddr) => (16, a.octets().to_vec()),
                    (IpAddr::V6(a), AddrField::Saddr) => (8, a.octets().to_vec()),
                    (IpAddr::V6(a), AddrField::Daddr) => (24, a.octets().to_vec()),
                };
                let prefix = usize::from(net.prefix_len());
                // nft loads only the prefix's bytes when it ends on a byte
                // boundary, else the whole address under a mask.
                let (len, data) = if prefix != 0 && prefix % 8 == 0 {
                    (prefix / 8, octets[..prefix / 8].to_vec())
                } else {
                    let mask: Vec<u8> = (0..octets.len())
                        .map(|i| {
                            let bits = prefix.saturating_sub(i * 8).min(8);
                            (0xff00u16 >> bits) as u8
                        })
                        .collect();
                    let len = octets.len();
                    out.push(NftExpr::Payload {
                        base: PayloadBase::Network,
                        offset,
                        len: len as u32,
                    });
                    out.push(NftExpr::Mask(mask));
                    out.push(NftExpr::Cmp {
                        equal: *equal,
                        data: octets,
                    });
                    return Some(out);
                };
                out.push(NftExpr::Payload {
                    base: PayloadBase::Network,
                    offset,
                    len: len as u32,
                });
                out.push(NftExpr::Cmp {
                    equal: *equal,
                    data,
                });
                out
            }
            Match::Dport(l4, port) => vec![
                NftExpr::Meta(MetaKey::L4proto),
                cmp(vec![*l4 as u8]),
                NftExpr::Payload {
                    base: PayloadBase::Transport,
                    offset: 2,
                    len: 2,
                },
                cmp(port.to_be_bytes().to_vec()),
            ],
            // RTN_LOCAL, in the host's byte order as fib writes it.
            Match::LocalDestination => {
                vec![NftExpr::FibDaddrType, cmp(2u32.to_ne_bytes().to_vec())]
            }
            Match::Ifname {
                output,
                name,
                equal,
            } => {
                // IFNAMSIZ bytes, NUL-padded: an exact match.
                let mut data = name.as_bytes()[..name.len().min(15)].to_vec();
                data.resize(16, 0);
                let key = if *output {
                    MetaKey::Oifname
                } else {
                    MetaKey::Iifname
                };
                vec![
                    NftExpr::Meta(key),
                    NftExpr::Cmp {
                        equal: *equal,
                        data,
                    },
                ]
            }
            Match::EtherSaddr(mac) => vec![
                NftExpr::Payload {
                    base: PayloadBase::Link,
                    offset: 6,
                    len: 6,
                },
                cmp(mac.to_vec()),
            ],
            // Any of the two state bits, in the host's byte order as ct
            // writes them.
            Match::EstablishedOrRelated => vec![
                NftExpr::CtState,
                NftExpr::Mask((CT_ESTABLISHED | CT_RELATED).to_ne_bytes().to_vec()),
                NftExpr::Cmp {
                    equal: false,
                    data: vec![0; 4],
                },
            ],
            Match::Text(_) => return None,
        })
    }
}

impl Action {
    fn text(&self) -> String {
        match self {
            Action::Verdict(Verdict::Accept) => "accept".into(),
            Action::Verdict(Verdict::Drop) => "drop".into(),
            Action::Verdict(Verdict::Return) => "return".into(),
            Action::Verdict(Verdict::Jump(c)) => format!("jump {c}"),
            Action::Verdict(Verdict::Goto(c)) => format!("goto {c}"),
            Action::Dnat(IpAddr::V4(a), port) => format!("dnat to {a}:{port}"),
            Action::Dnat(IpAddr::V6(a), port) => format!("dnat to [{a}]:{port}"),
            Action::Masquerade => "masquerade".into(),
        }
    }

    fn exprs(&self) -> Vec<NftExpr> {
        match self {
            Action::Verdict(v) => vec![NftExpr::Verdict(v.clone())],
            Action::Dnat(addr, port) => vec![NftExpr::Dnat {
                addr: *addr,
                port: *port,
            }],
            Action::Masquerade => vec![NftExpr::Masquerade],
        }
    }
}

/// The changes as an nft script, one command a line.
pub(crate) fn script(changes: &[TableChange<'_>]) -> String {
    let mut s = String::new();
    for (family, table, change) in changes {
        let t = format!("{} {table}", family_keyword(*family));
        let line = match change {
            Change::Table(None) => format!("add table {t}"),
            Change::Table(Some(c)) => format!("add table {t} {{ comment {}; }}", quote(c)),
            Change::Chain(name, base, comment) => {
                let mut spec = String::new();
                if let Some(b) = base {
                    let hook = match b.hook {
                        Hook::Prerouting => "prerouting",
                        Hook::Forward => "forward",
                        Hook::Output => "output",
                        Hook::Postrouting => "postrouting",
                    };
                    spec.push_str(&format!(
                        " type {} hook {hook} priority {};",
                        b.kind, b.priority
                    ));
                    if b.policy_accept {
                        spec.push_str(" policy accept;");
                    }
                }
                if let Some(c) = comment {
                    spec.push_str(&format!(" comment {};", quote(c)));
                }
                match spec.is_empty() {
                    true => format!("add chain {t} {name}"),
                    false => format!("add chain {t} {name} {{{spec} }}"),
                }
            }
            Change::Flush(chain) => format!("flush chain {t} {chain}"),
            Change::Delete { chain, handle } => {
                format!("delete rule {t} {chain} handle {handle}")
            }
            Change::Rule {
                chain,
                first,
                matches,
                action,
                comment,
            } => {
                let verb = if *first { "insert" } else { "add" };
                let mut words: Vec<String> = matches.iter().map(Match::text).collect();
                words.push(action.text());
                if let Some(c) = comment {
                    words.push(format!("comment {}", quote(c)));
                }
                format!("{verb} rule {t} {chain} {}", words.join(" "))
            }
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// The changes as netlink requests (for `rcni_net::nf_tables::apply`);
/// None when a rule holds free text.
pub fn encode(changes: &[TableChange<'_>]) -> Option<Vec<(NfFamily, &'static str, NftChange)>> {
    changes
        .iter()
        .map(|(family, table, change)| {
            let c = match change {
                Change::Table(comment) => NftChange::AddTable {
                    comment: comment.map(String::from),
                },
                Change::Chain(name, base, comment) => NftChange::AddChain {
                    name: name.clone(),
                    base: base.clone(),
                    comment: comment.map(String::from),
                },
                Change::Flush(chain) => NftChange::FlushChain(chain.clone()),
                Change::Delete { chain, handle } => NftChange::DeleteRule {
                    chain: chain.clone(),
                    handle: *handle,
                },
                Change::Rule {
                    chain,
                    first,
                    matches,
                    action,
                    comment,
                } => {
                    let mut l3 = None;
                    let mut exprs = Vec::new();
                    for m in matches {
                        exprs.extend(m.exprs(*family, &mut l3)?);
                    }
                    exprs.extend(action.exprs());
                    NftChange::AddRule {
                        chain: chain.clone(),
                        first: *first,
                        exprs,
                        comment: comment.clone(),
                    }
                }
            };
            Some((*family, *table, c))
        })
        .collect()
}

/// Applies the changes atomically under [`locked`]: one netlink
/// transaction (no process), or one `nft -f -` when a rule holds free text.
pub fn apply(changes: &[TableChange<'_>]) -> Result<(), FirewallError> {
    if changes.is_empty() {
        return Ok(());
    }
    match encode(changes) {
        Some(requests) => locked(|| rcni_net::nf_tables::apply(&requests).map_err(netlink_err)),
        None => apply_script(&script(changes)),
    }
}

/// How long a call waits for another rcni process's nftables change.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

thread_local! {
    /// Depth of [`locked`] on this thread, so that nested calls do not wait
    /// for themselves. Per thread: another thread of the process (DEL's
    /// teardown alongside) takes the flock through its own open file, and
    /// so waits for this one as another process would.
    static LOCK_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `f` holding rcni's nftables lock of this network namespace (an
/// flock on a file of `netns_state`). Every change rcni makes
/// to its tables, and every read that decides what to delete, happens
/// under it: a DEL that lists a table and then deletes what it found (a
/// rule, an attachment chain it saw as emptied) must not interleave with
/// another ADD or DEL of the same tables. Where the lock file cannot be
/// made (no writable /run), `f` runs unlocked, as before the lock existed.
pub fn locked<T>(f: impl FnOnce() -> Result<T, FirewallError>) -> Result<T, FirewallError> {
    let nested = LOCK_DEPTH.with(|depth| {
        depth.set(depth.get() + 1);
        depth.get() > 1
    });
    let out = if nested {
        f()
    } else {
        match crate::netns_state::nftables_lock_file() {
            Ok(file) => wait_for(&file).and_then(|()| f()),
            Err(e) => {
                eprintln!("rcni: nftables changes run unlocked: cannot open the lock file: {e}");
                f()
            }
        }
    };
    LOCK_DEPTH.with(|depth| depth.set(depth.get() - 1));
    out
}

/// Takes the flock of `file` (released when it is closed), waiting at most
/// [`LOCK_WAIT`]: a call never hangs on another that does.
fn wait_for(file: &std::fs::File) -> Result<(), FirewallError> {
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(2))
            }
            Err(e) => {
                return Err(FirewallError::Io(format!(
                    "cannot take the nftables lock within {} s: {e}",
                    LOCK_WAIT.as_secs()
                )))
            }
        }
    }
}

/// Quotes a string for an nft script; quotes and control characters are
/// dropped, as nothing may end the string or the line.
fn quote(s: &str) -> String {
    let inner: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{inner}\"")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcni_testkit::{in_netns, unique, Netns};

    /// What nft lists of a namespace's ruleset: every rule's expressions
    /// and user data as the kernel returns them, with handles when asked
    /// (the debug lines that name a rule's chain end with its handle and
    /// position, cut otherwise).
    fn listed(ns: &Netns, handles: bool) -> String {
        let all = ns.exec(&["nft", "-a", "--debug=netlink", "list", "ruleset"]);
        if handles {
            return all;
        }
        all.lines()
            .map(|line| {
                if line.starts_with(char::is_whitespace) || line.contains('{') {
                    return line.split(" # handle").next().unwrap_or(line).to_string();
                }
                let mut words: Vec<&str> = line.split(' ').collect();
                while words.len() > 3 && words.last().is_some_and(|w| w.parse::<u64>().is_ok()) {
                    words.pop();
                }
                words.join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn apply_with_nft(ns: &Netns, changes: &[TableChange<'_>]) {
        let path = std::env::temp_dir().join(unique("rcni-nft-script"));
        std::fs::write(&path, script(changes)).unwrap();
        let applied = ns.try_exec(&["nft", "-f", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();
        assert!(applied, "nft refused:\n{}", script(changes));
    }

    fn apply_over_netlink(ns: &Netns, changes: &[TableChange<'_>]) {
        let requests = encode(changes).expect("encodable changes");
        in_netns(&ns.name, move || {
            rcni_net::nf_tables::apply(&requests).expect("netlink transaction")
        })
        .join()
        .unwrap();
    }

    /// Applies `changes` with `nft -f` (their script) in one throwaway
    /// namespace and over netlink in another, and asserts that the kernel
    /// holds the same ruleset in both, byte for byte as nft reads it back,
    /// handles included.
    pub(crate) fn assert_same_in_kernel(changes: &[TableChange<'_>]) {
        let (by_nft, by_netlink) = (Netns::new("nftscript"), Netns::new("nftnetlink"));
        apply_with_nft(&by_nft, changes);
        apply_over_netlink(&by_netlink, changes);
        let (want, got) = (listed(&by_nft, true), listed(&by_netlink, true));
        assert!(want.contains("userdata") || !script(changes).contains("comment"));
        assert_eq!(want, got, "script:\n{}", script(changes));
    }

    /// [`assert_same_in_kernel`] for two changes one after the other (two
    /// ADDs), without handles; and over netlink the second leaves every
    /// object of the first as it was (same handle): what it would only
    /// write again (a chain that exists, the same rules after a flush) is
    /// not sent, so that the transaction only adds.
    pub(crate) fn assert_same_in_kernel_after(
        first: &[TableChange<'_>],
        second: &[TableChange<'_>],
    ) {
        let (by_nft, by_netlink) = (Netns::new("nftscript"), Netns::new("nftnetlink"));
        apply_with_nft(&by_nft, first);
        apply_with_nft(&by_nft, second);
        apply_over_netlink(&by_netlink, first);
        let objects = listed(&by_netlink, true);
        apply_over_netlink(&by_netlink, second);
        assert_eq!(listed(&by_nft, false), listed(&by_netlink, false));
        let now = listed(&by_netlink, true);
        for line in objects.lines().filter(|l| l.contains("# handle")) {
            assert!(now.contains(line), "{line:?} was written again:\n{now}");
        }
    }

    #[test]
    fn free_text_goes_through_the_script() {
        let rule = |matches| {
            vec![(
                NfFamily::Ipv4,
                "t",
                Change::Rule {
                    chain: "c".into(),
                    first: false,
                    matches,
                    action: Action::Verdict(Verdict::Accept),
                    comment: None,
                },
            )]
        };
        assert!(encode(&rule(vec![Match::Text("ip saddr 10.0.0.0/8")])).is_none());
        assert!(encode(&rule(vec![Match::LocalDestination])).is_some());
    }

    #[test]
    fn prefixes_are_matched_as_nft_matches_them() {
        let shapes = [
            "10.1.0.0/24",
            "10.1.0.5/32",
            "10.0.0.0/9",
            "0.0.0.0/0",
            "fd00::/64",
            "fd00::/57",
            "::/0",
            "fd00::5/128",
        ];
        let mut changes = vec![
            (NfFamily::Inet, "t", Change::Table(None)),
            (NfFamily::Inet, "t", Change::Chain("c".into(), None, None)),
        ];
        for net in shapes {
            for equal in [true, false] {
                changes.push((
                    NfFamily::Inet,
                    "t",
                    Change::Rule {
                        chain: "c".into(),
                        first: equal,
                        matches: vec![Match::Addr {
                            field: AddrField::Daddr,
                            net: net.parse().unwrap(),
                            equal,
                        }],
                        action: Action::Verdict(Verdict::Drop),
                        comment: Some(format!("prefix {net}")),
                    },
                ));
            }
        }
        assert_same_in_kernel(&changes);
    }
}
