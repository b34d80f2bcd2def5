//! Throwaway network namespaces (`ip netns add`, deleted on drop) and what
//! tests read from them: links, addresses, routes, firewall rules, and
//! snapshots to compare before and after. Nothing here touches the
//! machine's own interfaces, routes or firewall.

use crate::{sh, unique};
use serde_json::Value;
use std::process::{Command, Stdio};

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace; panics on failure.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        sh("ip", &args)
    }

    /// Runs a command inside the namespace and says whether it succeeded.
    pub fn try_exec(&self, cmd: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// `ip -j <args>` inside the namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-n", &self.name, "-j"];
        full.extend_from_slice(args);
        let out = sh("ip", &full);
        if out.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&out).expect("ip -j output")
    }

    /// Names of the links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `addr/prefix` strings on `dev` (all families, all scopes).
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{}/{}",
                    a["local"].as_str().unwrap_or(""),
                    a["prefixlen"]
                ));
            }
        }
        out
    }

    /// Routes as `ip route` prints them, one string each, both families.
    pub fn routes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for fam in ["-4", "-6"] {
            let text = sh(
                "ip",
                &["-n", &self.name, fam, "route", "show", "table", "all"],
            );
            out.extend(text.lines().map(|l| l.trim().to_string()));
        }
        out
    }

    /// Everything a plugin could leave behind, for before/after comparison:
    /// links (name and kind), addresses and routes (IPv6 link-local and
    /// kernel multicast/local noise excluded).
    pub fn snapshot(&self) -> Vec<String> {
        // One dump of every link with its addresses.
        let mut s = Vec::new();
        for link in self
            .ip_json(&["addr", "show"])
            .as_array()
            .into_iter()
            .flatten()
        {
            let l = link["ifname"].as_str().unwrap_or("").to_string();
            for a in link["addr_info"].as_array().into_iter().flatten() {
                let a = format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]);
                if !a.starts_with("fe80:") {
                    s.push(format!("addr {l} {a}"));
                }
            }
            s.push(l);
        }
        s.extend(
            self.routes()
                .into_iter()
                .filter(|r| {
                    !r.starts_with("fe80::")
                        && !r.starts_with("multicast")
                        && !r.contains("fe80::/64")
                })
                .filter(|r| !r.starts_with("local fe80") && !r.starts_with("anycast fe80"))
                .map(|r| format!("route {r}")),
        );
        s.sort();
        s
    }

    /// Every iptables table of both families and the nftables ruleset, one
    /// rule per line, without counters and generation comments.
    pub fn firewall(&self) -> std::collections::BTreeSet<String> {
        let mut lines = std::collections::BTreeSet::new();
        for (tool, tag) in [
            ("iptables-save", "v4 "),
            ("ip6tables-save", "v6 "),
            ("nft", "nft "),
        ] {
            let args: &[&str] = if tool == "nft" {
                &["nft", "list", "ruleset"]
            } else {
                &[tool]
            };
            let mut full = vec!["ip", "netns", "exec", &self.name];
            full.extend_from_slice(args);
            let text = sh(full[0], &full[1..]);
            // nft keeps its blocks apart only by indentation; prefix each line
            // with its table and chain so that equal lines of two chains differ.
            let mut table = String::new();
            let mut chain = String::new();
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let word = |n: usize| line.split(' ').nth(n).unwrap_or("").to_string();
                if line == "COMMIT" {
                    chain.clear();
                } else if line.starts_with("table ") || line.starts_with('*') {
                    table = line.to_string();
                    chain.clear();
                } else if line.starts_with("chain ") || line.starts_with("-A ") {
                    chain = word(1);
                } else if let Some(decl) = line.strip_prefix(':') {
                    chain = decl.split(' ').next().unwrap_or("").to_string();
                }
                let line = if line.starts_with(':') {
                    // `:CHAIN POLICY [packets:bytes]`
                    line.split(' ').take(2).collect::<Vec<_>>().join(" ")
                } else {
                    without_counters(line)
                };
                lines.insert(format!("{tag}{table} {chain} | {line}"));
            }
        }
        lines
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_rcni_state(&self.name);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Removes what rcni keeps for the namespace `name` in /run/rcni (files and
/// directories named `<what>ns<inode>[.<suffix>]`): the namespace is about to
/// go, and its inode will be reused.
fn remove_rcni_state(name: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(format!("/run/netns/{name}")).map(|m| m.ino()) else {
        return;
    };
    let key = format!("ns{ino}");
    let Ok(entries) = std::fs::read_dir("/run/rcni") else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let ours = file_name
            .find(&key)
            .map(|at| &file_name[at + key.len()..])
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'));
        if ours {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

/// Runs `f` on a thread inside the namespace `ns` (for sockets).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
}

/// An "outside" namespace behind `host`: a veth `up0` (host, 203.0.113.1)
/// to `down0` (outside, 203.0.113.2). The outside has no route to any
/// container subnet, so only masqueraded traffic gets answers.
pub fn outside_of(host: &Netns) -> Netns {
    let outside = Netns::new("out");
    host.exec(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "down0",
        "netns",
        &outside.name,
    ]);
    host.exec(&["ip", "addr", "add", "203.0.113.1/24", "dev", "up0"]);
    host.exec(&["ip", "link", "set", "up0", "up"]);
    outside.exec(&["ip", "addr", "add", "203.0.113.2/24", "dev", "down0"]);
    outside.exec(&["ip", "link", "set", "down0", "up"]);
    outside
}

/// A veth pair `name` ↔ `name`p in `ns`, both up: a master for macvlan,
/// ipvlan and vlan tests whose traffic stays in the namespace.
pub fn veth_master(ns: &Netns, name: &str) {
    let peer = format!("{name}p");
    ns.exec(&[
        "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
    ]);
    ns.exec(&["ip", "link", "set", name, "up"]);
    ns.exec(&["ip", "link", "set", &peer, "up"]);
}

/// `ip -d -j link show dev <dev>` in `ns`: the link with its kind
/// (`linkinfo.info_kind`) and kind data (`linkinfo.info_data`).
pub fn link_details(ns: &Netns, dev: &str) -> Value {
    ns.ip_json(&["-d", "link", "show", "dev", dev])[0].clone()
}

/// Only `lo` is left in the namespace.
pub fn assert_only_lo(ns: &Netns) {
    assert_eq!(ns.links(), ["lo"], "links left in {}", ns.name);
}

/// `line` without nft's `counter packets N bytes M` values.
fn without_counters(line: &str) -> String {
    let mut out = Vec::new();
    let mut words = line.split(' ');
    while let Some(w) = words.next() {
        if w == "packets" || w == "bytes" {
            words.next();
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}
