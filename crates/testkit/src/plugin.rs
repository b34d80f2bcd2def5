//! Plugin calls made as a runtime makes them (environment + stdin), of
//! rcni's built binary or of the reference's, and their replies.

use crate::{sh, Netns, REFERENCE_DIR};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The spec versions the main cases run across.
pub const VERSIONS: &[&str] = &["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The rcni binary cargo built next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/rcni`); `RCNI_BIN`
/// overrides.
pub fn rcni_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("RCNI_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
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

/// The prefix of the plugin dirs of test processes, followed by the pid.
const BIN_DIR_PREFIX: &str = "rcni-test-bin-";

/// The longest a plugin call may take in a test (the slowest, a dhcp ADD
/// against a server that does not answer, takes well under a minute).
pub const CALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// A directory with the rcni plugins installed: one symlink per plugin
/// name to the built binary (no copy: a test process must not leave 40 MB
/// behind in /tmp), made once per test process. A static is never dropped,
/// so each process removes the dirs of test processes that have exited.
pub fn rcni_bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_dirs_of_exited(&tmp);
        let dir = tmp.join(format!("{BIN_DIR_PREFIX}{}", std::process::id()));
        let binary = rcni_binary();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the plugin dir");
        let names = sh(binary.to_str().expect("utf8"), &["list"]);
        for name in names.lines().chain(["rcni"]) {
            std::os::unix::fs::symlink(&binary, dir.join(name)).expect("link a plugin");
        }
        dir
    })
}

/// Removes the plugin dirs in `tmp` whose test process no longer runs.
fn remove_dirs_of_exited(tmp: &Path) {
    for name in crate::read_dir_names(tmp) {
        let Some(pid) = name.strip_prefix(BIN_DIR_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(tmp.join(&name));
        }
    }
}

/// One plugin call as a runtime makes it.
#[derive(Clone)]
pub struct Call {
    pub plugin_dir: PathBuf,
    pub plugin: String,
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub cni_args: String,
    pub cni_path: String,
    pub host: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

/// What a plugin printed and how it exited.
pub struct Reply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} stderr {:?}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the parsed stdout (or Null when empty).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts failure with the error JSON and returns (code, msg).
    pub fn err(&self) -> (u64, String) {
        assert_ne!(self.code, 0, "expected failure, got {}", self.stdout);
        let v = self.json();
        let code = v["code"].as_u64().expect("error code");
        let msg = format!(
            "{} {}",
            v["msg"].as_str().unwrap_or(""),
            v["details"].as_str().unwrap_or("")
        );
        (code, msg)
    }
}

impl Call {
    /// A call of rcni's `plugin`, from inside `host`.
    pub fn rcni(plugin: &str, command: &str, host: &Netns, container: Option<&Netns>) -> Call {
        let dir = rcni_bin_dir().to_path_buf();
        Call {
            plugin_dir: dir.clone(),
            plugin: plugin.into(),
            command: command.into(),
            container_id: "ctr1".into(),
            netns: container.map(|c| c.path()).unwrap_or_default(),
            ifname: "eth0".into(),
            cni_args: String::new(),
            cni_path: dir.to_string_lossy().into_owned(),
            host: Some(host.name.clone()),
            extra_env: Vec::new(),
        }
    }

    /// The same call made with the reference binaries.
    pub fn reference(mut self) -> Call {
        self.plugin_dir = PathBuf::from(REFERENCE_DIR);
        self.cni_path = REFERENCE_DIR.into();
        self
    }

    pub fn command(mut self, c: &str) -> Call {
        self.command = c.into();
        self
    }

    pub fn id(mut self, id: &str) -> Call {
        self.container_id = id.into();
        self
    }

    pub fn ifname(mut self, n: &str) -> Call {
        self.ifname = n.into();
        self
    }

    pub fn args(mut self, a: &str) -> Call {
        self.cni_args = a.into();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Call {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// The process, ready to be spawned.
    pub fn process(&self) -> Command {
        let bin = self.plugin_dir.join(&self.plugin);
        let mut cmd = match &self.host {
            Some(h) => {
                // By absolute path: a test may give the plugin a PATH
                // without the usual tools.
                let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
                    .into_iter()
                    .find(|p| Path::new(p).exists())
                    .unwrap_or("ip");
                let mut c = Command::new(ip);
                c.args(["netns", "exec", h]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.cni_args)
            .env("CNI_PATH", &self.cni_path);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The process run by `wrapper` (a program and its arguments, e.g. a
    /// tracer), with the plugin's environment.
    pub fn wrapped(&self, wrapper: &[&str]) -> Command {
        let inner = self.process();
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(inner.get_program())
            .args(inner.get_args());
        cmd.env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs the plugin under `strace -f -e trace=execve` and returns its
    /// reply and the programs it (and its children) executed.
    pub fn run_traced(&self, conf: &Value) -> (Reply, Vec<String>) {
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let trace_path = trace.path().to_str().expect("utf8");
        let mut cmd = self.wrapped(&[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve",
            "-o",
            trace_path,
        ]);
        let mut child = cmd.spawn().expect("spawn strace");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(conf.to_string().as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        let programs = std::fs::read_to_string(trace.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("execve(\"") && !l.contains("ENOENT"))
            .filter_map(|l| {
                l.split('"')
                    .nth(1)
                    .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            })
            .collect();
        let reply = Reply {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (reply, programs)
    }

    /// Runs the plugin with `conf` on stdin.
    pub fn run(&self, conf: &Value) -> Reply {
        self.run_raw(conf.to_string().as_bytes())
    }

    /// Runs the plugin with `stdin`; fails the test if it has not answered
    /// within [`CALL_LIMIT`] (killing it), rather than hanging the run.
    pub fn run_raw(&self, stdin: &[u8]) -> Reply {
        self.run_within(stdin, CALL_LIMIT)
    }

    fn run_within(&self, stdin: &[u8], limit: std::time::Duration) -> Reply {
        let mut child = self.process().spawn().expect("spawn plugin");
        let pid = child.id();
        let (answered, watch) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let late = matches!(
                watch.recv_timeout(limit),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
            if late {
                // `ip netns exec` execs the plugin: this pid is the plugin.
                if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            late
        });
        // The plugin may exit before reading all of it.
        let _ = child.stdin.take().expect("stdin").write_all(stdin);
        let out: Output = child.wait_with_output().expect("wait plugin");
        let _ = answered.send(());
        let late = watchdog.join().unwrap_or(false);
        assert!(
            !late,
            "{} {} did not answer within {limit:?}",
            self.plugin, self.command
        );
        Reply {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `call` with `stdin`, killing it with SIGKILL after `kill_after`
/// (then None: a plugin crashed at that point); panics if it has not
/// answered within `limit`.
pub fn run_or_kill(
    call: &Call,
    stdin: &[u8],
    kill_after: Option<std::time::Duration>,
    limit: std::time::Duration,
) -> Option<Reply> {
    let mut child = call.process().spawn().expect("spawn plugin");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    // The plugin may exit before reading: ignore a broken pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait plugin").is_some() {
            break;
        }
        let elapsed = start.elapsed();
        if kill_after.is_some_and(|k| elapsed >= k) || elapsed > limit {
            // `ip netns exec` execs the plugin, so this is the plugin itself.
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            assert!(
                elapsed <= limit,
                "{} {} did not answer within {limit:?}",
                call.plugin,
                call.command
            );
            return None;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("wait plugin");
    Some(Reply {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// ADD and DEL calls of `plugin` for an interop round: one made by the
/// reference, the other by rcni.
pub fn interop_pair(plugin: &str, host: &Netns, ctr: &Netns, reference_adds: bool) -> (Call, Call) {
    let add = Call::rcni(plugin, "ADD", host, Some(ctr));
    let del = Call::rcni(plugin, "DEL", host, Some(ctr));
    if reference_adds {
        (add.reference(), del)
    } else {
        (add, del.reference())
    }
}

/// The first address of a result, without its prefix length.
pub fn ip_of(result: &Value) -> String {
    let cidr = result["ips"][0]["address"].as_str().unwrap();
    cidr.split('/').next().unwrap().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn call_of(dir: &Path, plugin: &str) -> Call {
        Call {
            plugin_dir: dir.to_path_buf(),
            plugin: plugin.into(),
            command: "ADD".into(),
            container_id: "c".into(),
            netns: String::new(),
            ifname: "eth0".into(),
            cni_args: String::new(),
            cni_path: String::new(),
            host: None,
            extra_env: Vec::new(),
        }
    }

    #[test]
    fn a_call_that_hangs_fails_the_test_within_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("hangs");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let start = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            call_of(dir.path(), "hangs").run_within(b"{}", std::time::Duration::from_millis(300))
        });
        let message = outcome
            .err()
            .and_then(|p| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(message.contains("did not answer within"), "{message:?}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10));

        std::fs::write(dir.path().join("answers"), "#!/bin/sh\ncat\n").expect("write");
        std::fs::set_permissions(
            dir.path().join("answers"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        let reply = call_of(dir.path(), "answers").run_raw(b"{\"ok\":1}");
        assert_eq!((reply.code, reply.stdout.as_str()), (0, "{\"ok\":1}"));
    }
}
