//! Commands with a time limit, and names unique to this test process.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The bound on every command a test runs.
pub const TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique short name for this test process.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id() % 100000)
}

/// Runs a command with a time limit and returns its stdout; panics with its
/// output on failure.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    try_sh(cmd, args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`sh`] that says what failed instead of panicking: for clean-ups, which
/// may run while a test panics.
pub fn try_sh(cmd: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd}: {e}"))?;
    // Both pipes are drained on threads so that a chatty command cannot
    // block on a full pipe while we wait for it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = match finished.recv_timeout(TIMEOUT) {
        Ok(status) => status.map_err(|e| format!("wait for {cmd}: {e}"))?,
        Err(_) => {
            // Not reaped yet (the waiting thread still holds it), so the pid
            // is still this child's.
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            return Err(format!("{cmd} {args:?} did not finish in {TIMEOUT:?}"));
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("{cmd} {args:?} failed: {stdout}{stderr}"));
    }
    Ok(stdout)
}

/// A PATH for plugins with iptables' legacy flavour
/// (`xtables-legacy-multi`) first, under the names rcni runs
/// (`iptables`, `iptables-save`, `iptables-restore` and the `ip6` ones):
/// the test can then check what rcni does where the nf_tables flavour,
/// Debian's default, is not in use. The directory goes with the value.
pub struct LegacyIptables {
    /// The PATH to give the plugin.
    pub path: String,
    _dir: tempfile::TempDir,
}

impl LegacyIptables {
    pub fn new() -> LegacyIptables {
        let dir = tempfile::tempdir().expect("tempdir");
        for tool in ["tables", "tables-save", "tables-restore"] {
            for family in ["ip", "ip6"] {
                std::os::unix::fs::symlink(
                    "/usr/sbin/xtables-legacy-multi",
                    dir.path().join(format!("{family}{tool}")),
                )
                .expect("symlink");
            }
        }
        LegacyIptables {
            path: format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.path().display()),
            _dir: dir,
        }
    }
}

impl Default for LegacyIptables {
    fn default() -> LegacyIptables {
        LegacyIptables::new()
    }
}
