//! What the runtime end-to-end tests share: bounded commands, the rcni
//! binary under test, the plugin directory a runtime is pointed at, and a
//! throwaway "host" network namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bound on every command, call and wait of a test.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs a command with a time limit and returns its stdout; panics with its
/// output on failure.
pub fn run(cmd: &str, args: &[&str]) -> String {
    try_run(cmd, args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run`] that says what failed instead of panicking: for clean-ups, which
/// may run while a test panics.
pub fn try_run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {cmd}: {e}"))?;
    let deadline = Instant::now() + TIMEOUT;
    while child
        .try_wait()
        .map_err(|e| format!("wait for {cmd}: {e}"))?
        .is_none()
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd} {args:?} did not finish in {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("output of {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rcni binary `cargo test --workspace` built next to this test
/// (`RCNI_BIN` overrides).
pub fn rcni_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RCNI_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<this test> -> target/<profile>/rcni
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("rcni");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p rcni`; `cargo test --workspace` does)",
        bin.display()
    );
    bin
}

/// Fills `bin` (created here) with the plugins a runtime will execute:
/// links to `plugins` of the `reference` directory, or else rcni's own
/// links made by `rcni install`.
pub fn plugin_dir(bin: &Path, reference: Option<&Path>, plugins: &[&str]) {
    match reference {
        Some(reference) => {
            std::fs::create_dir(bin).expect("mkdir bin");
            for plugin in plugins {
                std::os::unix::fs::symlink(reference.join(plugin), bin.join(plugin))
                    .expect("link plugin");
            }
        }
        None => {
            run(
                rcni_binary().to_str().expect("utf8"),
                &["install", bin.to_str().expect("utf8")],
            );
        }
    }
}

/// A throwaway network namespace, deleted on drop.
pub struct HostNetns {
    pub name: String,
}

impl HostNetns {
    pub fn new(tag: &str) -> HostNetns {
        let name = format!("rcni-cri-{tag}-{}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = HostNetns { name };
        run("ip", &["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }
}

impl Drop for HostNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn read_dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A program of our own as PID 1 of new mount and PID namespaces inside
/// `host`'s network namespace, with `dir/run` and `dir/varlib` bound over
/// `/run` and `/var/lib`: the netns mounts, runtime state, CNI result cache
/// and iptables lock of everything it starts stay out of the machine's.
/// Killed on drop, with everything in its PID namespace.
pub struct Isolated {
    /// `unshare`, whose child is the program, PID 1 of the namespace.
    unshare: Child,
    /// The program's PID as seen from here.
    pub pid: u32,
}

impl Isolated {
    /// Starts `program` (a shell command line) with its output in `log`.
    pub fn start(host: &HostNetns, dir: &Path, program: &str, log: &Path) -> Isolated {
        for sub in ["run", "varlib"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let log_file = std::fs::File::create(log).expect("log");
        let script = format!(
            "mount --bind {d}/run /run && mount --bind {d}/varlib /var/lib && exec {program}",
            d = dir.display()
        );
        let unshare = Command::new("nsenter")
            .arg(format!("--net={}", host.path().display()))
            .args(["--", "unshare", "--mount", "--propagation", "private"])
            .args([
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "sh",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let mut isolated = Isolated { unshare, pid: 0 };
        isolated.pid = isolated.wait_for_child(program, log);
        isolated
    }

    /// The program's PID: the one child of `unshare` (nsenter execs it).
    fn wait_for_child(&mut self, program: &str, log: &Path) -> u32 {
        let pid = self.unshare.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(child) = text.split_whitespace().next() {
                return child.parse().expect("pid");
            }
            if let Ok(Some(status)) = self.unshare.try_wait() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("{program} exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "{program} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A path in the program's mount namespace, seen from ours.
    pub fn in_mounts(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{path}", self.pid))
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        // Killing PID 1 of the namespace kills everything in it; `unshare`
        // returns once they are all gone. Killing `unshare` first (when the
        // program's PID is not known yet) kills its child too.
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let deadline = Instant::now() + TIMEOUT;
            while !matches!(self.unshare.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}
