//! What the runtime end-to-end tests share beyond the test kit (bounded
//! commands, the rcni binary, the throwaway "host" [`Netns`]): the plugin
//! directory a runtime is pointed at, and a runtime isolated in its own
//! mount and PID namespaces.

pub use rcni_testkit::{rcni_binary, read_dir_names, sh, Netns, TIMEOUT};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
            sh(
                rcni_binary().to_str().expect("utf8"),
                &["install", bin.to_str().expect("utf8")],
            );
        }
    }
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
    pub fn start(host: &Netns, dir: &Path, program: &str, log: &Path) -> Isolated {
        for sub in ["run", "varlib"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let log_file = std::fs::File::create(log).expect("log");
        let script = format!(
            "mount --bind {d}/run /run && mount --bind {d}/varlib /var/lib && exec {program}",
            d = dir.display()
        );
        let unshare = Command::new("nsenter")
            .arg(format!("--net={}", host.path()))
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
