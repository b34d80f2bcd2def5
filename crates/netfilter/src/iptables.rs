//! iptables, driven in batches: one `iptables-save` to read a table and
//! one `iptables-restore --noflush` to change it, never one exec per rule.

use crate::error::FirewallError;
use crate::run::{installed, run};
use crate::script::has_control;
use crate::Family;

/// The tool of `family` (`iptables<suffix>` or `ip6tables<suffix>`).
fn tool(family: Family, suffix: &str) -> String {
    match family {
        Family::V4 => format!("iptables{suffix}"),
        Family::V6 => format!("ip6tables{suffix}"),
    }
}

/// Whether iptables is installed. (The reference also lists a chain to see
/// that it works, one exec on every call; rcni only looks for the tools,
/// and a broken iptables shows up as the error of the batch itself.)
pub fn supported() -> bool {
    installed("iptables-restore") && installed("iptables-save")
}

/// Whether the `iptables` on PATH is the nf_tables flavour
/// (`xtables-nft-multi`, Debian's default), whose tables can be probed
/// over netlink. Found by resolving its links, no exec.
pub fn uses_nf_tables() -> bool {
    static NFT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NFT.get_or_init(|| {
        std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("iptables"))
                .find(|p| p.exists())
                .and_then(|p| std::fs::canonicalize(p).ok())
                .is_some_and(|real| real.to_string_lossy().contains("nft"))
        })
    })
}

/// Whether `chain` exists in the `nat` table of `family`, when that can be
/// told without a process (the nf_tables flavour, over netlink); `None`
/// otherwise or when the probe fails, so callers then read the table.
pub fn nat_chain_exists(family: Family, chain: &str) -> Option<bool> {
    if !uses_nf_tables() {
        return None;
    }
    rcni_net::nf_tables::chain_exists(family.into(), "nat", chain).ok()
}

/// Whether each `(chain, target)` of `jumps` is a rule of the `nat` table
/// that jumps from `chain` to `target`: answered over netlink for the
/// nf_tables flavour (no process). The legacy flavour cannot be asked
/// without a process and answers yes; a failed probe answers no.
pub fn nat_jumps_present(family: Family, jumps: &[(&str, &str)]) -> bool {
    if !uses_nf_tables() {
        return true;
    }
    jumps.iter().all(|(chain, target)| {
        rcni_net::nf_tables::list_rules(family.into(), "nat", Some(chain))
            .is_ok_and(|rules| rules.iter().any(|r| r.jumps_to.as_deref() == Some(*target)))
    })
}

/// One table as `iptables-save` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Chain names, built-in and user-defined.
    pub chains: Vec<String>,
    /// Rules as `-A CHAIN ...` lines, in order.
    pub rules: Vec<String>,
}

impl Table {
    /// Parses `iptables-save -t <table>` output.
    pub fn parse(text: &str) -> Table {
        let mut t = Table::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(':') {
                if let Some(name) = rest.split_whitespace().next() {
                    t.chains.push(name.to_string());
                }
            } else if line.starts_with("-A ") {
                t.rules.push(line.to_string());
            }
        }
        t
    }

    /// The rules of `chain`.
    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        let prefix = format!("-A {chain} ");
        self.rules.iter().filter(move |r| r.starts_with(&prefix))
    }

    pub fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }
}

/// Reads a table (one exec). A missing table reads as empty.
pub fn save(family: Family, table: &str) -> Result<Table, FirewallError> {
    let out = run(&tool(family, "-save"), &["-t", table], None)?;
    Ok(Table::parse(&out))
}

/// Changes to one table, applied atomically by one `iptables-restore
/// --noflush`. Lines use the restore syntax (`:CHAIN - [0:0]` declares,
/// and in noflush mode flushes, a user chain; `-A`, `-D`, `-I`, `-X`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub lines: Vec<String>,
}

impl Batch {
    pub fn push(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The restore input for `table`.
    pub fn render(&self, table: &str) -> String {
        let mut s = format!("*{table}\n");
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("COMMIT\n");
        s
    }

    /// Applies the batch (one exec); nothing to do runs nothing. A line
    /// with a control character (a line break would start a rule or a
    /// table of its own) is refused and nothing runs.
    pub fn apply(&self, family: Family, table: &str) -> Result<(), FirewallError> {
        if self.is_empty() {
            return Ok(());
        }
        if let Some(bad) = self.lines.iter().find(|l| has_control(l)) {
            return Err(FirewallError::Config(format!(
                "refusing an iptables-restore line with a control character: {bad:?}"
            )));
        }
        run(
            &tool(family, "-restore"),
            &["--noflush", "-w", "5"],
            Some(&self.render(table)),
        )
        .map(|_| ())
    }
}

/// Quotes a comment for restore input as iptables-save prints it.
pub fn quote(comment: &str) -> String {
    format!("\"{}\"", comment.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The comment of a rule in its `iptables-save` form (quotes included,
/// as [`quote`] writes it), if it has one.
pub fn comment_of(rule: &str) -> Option<&str> {
    let start = rule.find(" --comment \"")? + " --comment ".len();
    let mut escaped = false;
    for (i, c) in rule[start + 1..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(&rule[start..start + 1 + i + 1]),
            _ => {}
        }
    }
    None
}

/// The chain a rule jumps to (`-j CHAIN` at its end).
pub fn jump_target(rule: &str) -> Option<&str> {
    rule.rsplit_once(" -j ").map(|(_, chain)| chain)
}

/// Turns an `-A CHAIN spec` line into the `-D CHAIN spec` that deletes it.
pub fn delete_line(rule: &str) -> String {
    format!("-D {}", &rule[3..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:CNI-abc - [0:0]\n-A POSTROUTING -s 10.0.0.2/32 -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j CNI-abc\n-A CNI-abc -d 10.0.0.0/24 -j ACCEPT\nCOMMIT\n";

    #[test]
    fn parses_save_output() {
        let t = Table::parse(SAVE);
        assert_eq!(t.chains, ["PREROUTING", "POSTROUTING", "CNI-abc"]);
        assert_eq!(t.rules_of("POSTROUTING").count(), 1);
        assert_eq!(t.rules_of("CNI-abc").count(), 1);
        assert!(t.has_chain("CNI-abc"));
        let jump = t.rules_of("POSTROUTING").next().unwrap();
        assert_eq!(
            comment_of(jump),
            Some(quote(r#"name: "n" id: "c""#).as_str())
        );
        assert_eq!(jump_target(jump), Some("CNI-abc"));
        let d = delete_line(t.rules_of("CNI-abc").next().unwrap());
        assert_eq!(d, "-D CNI-abc -d 10.0.0.0/24 -j ACCEPT");
    }

    #[test]
    fn renders_a_restore_batch() {
        let mut b = Batch::default();
        b.push(":CNI-abc - [0:0]");
        b.push(format!(
            "-A CNI-abc -m comment --comment {} -j ACCEPT",
            quote(r#"name: "n" id: "c""#)
        ));
        assert_eq!(
            b.render("nat"),
            "*nat\n:CNI-abc - [0:0]\n-A CNI-abc -m comment --comment \"name: \\\"n\\\" id: \\\"c\\\"\" -j ACCEPT\nCOMMIT\n"
        );
        assert!(
            Batch::default().apply(Family::V4, "nat").is_ok(),
            "an empty batch runs nothing"
        );
        let mut injected = Batch::default();
        injected.push("-A X -s 10.0.0.1\nCOMMIT\n*filter\n-A INPUT -j ACCEPT");
        assert!(matches!(
            injected.apply(Family::V4, "nat"),
            Err(FirewallError::Config(_))
        ));
    }
}
