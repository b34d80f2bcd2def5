//! nftables, as rcni drives it: rules are added with one `nft -f -`
//! transaction per change; reads and deletions go over netlink
//! (`rcni_net::nf_tables`), with no process. Only ever in rcni's (the
//! reference's) own tables, and under one lock per network namespace
//! ([`locked`]).

use crate::error::FirewallError;
use crate::run::{installed, run};

/// Whether nft is installed (looked up on PATH, no exec).
pub fn supported() -> bool {
    installed("nft")
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

pub use rcni_net::nf_tables::{NfFamily, NftDeletion, NftRule as ListedRule};

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
pub fn apply(script: &str) -> Result<(), FirewallError> {
    if script.trim().is_empty() {
        return Ok(());
    }
    locked(|| run("nft", &["-f", "-"], Some(script)).map(|_| ()))
}

/// How long a call waits for another rcni process's nftables change.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Depth of [`locked`] in this process, so that nested calls do not wait
/// for themselves.
static LOCK_DEPTH: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

/// Runs `f` holding rcni's nftables lock of this network namespace (an
/// flock on a file of `netns_state`). Every change rcni makes
/// to its tables, and every read that decides what to delete, happens
/// under it: a DEL that lists a table and then deletes what it found (a
/// rule, an attachment chain it saw as emptied) must not interleave with
/// another ADD or DEL of the same tables. Where the lock file cannot be
/// made (no writable /run), `f` runs unlocked, as before the lock existed.
pub fn locked<T>(f: impl FnOnce() -> Result<T, FirewallError>) -> Result<T, FirewallError> {
    let nested = {
        let mut depth = LOCK_DEPTH.lock().unwrap_or_else(|p| p.into_inner());
        *depth += 1;
        *depth > 1
    };
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
    *LOCK_DEPTH.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
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
pub fn quote(s: &str) -> String {
    let inner: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{inner}\"")
}
