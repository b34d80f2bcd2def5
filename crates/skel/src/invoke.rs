//! Finding and running other plugins: IPAM delegation for plugins, and
//! the execution layer of the runtime library.

use crate::cmd::{CmdArgs, Command};
use crate::dispatch::{run_with, Io, Plugin};
use rcni_spec::result;
use rcni_spec::version;
use rcni_spec::{CniError, CniResult};
use rustix::buffer::spare_capacity;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command as Process, Stdio};
use std::time::{Duration, Instant};

/// Finds `plugin` in `dirs` (the first regular file of that name).
pub fn find_in_path(plugin: &str, dirs: &[&str]) -> Result<PathBuf, CniError> {
    if plugin.is_empty() {
        return Err(CniError::invalid_config("no plugin name provided"));
    }
    if plugin.contains('/') || plugin == "." || plugin == ".." {
        return Err(CniError::invalid_config(format!(
            "invalid plugin name: {plugin}"
        )));
    }
    if dirs.is_empty() {
        return Err(CniError::invalid_config("no paths provided"));
    }
    for dir in dirs {
        let candidate = Path::new(dir).join(plugin);
        if candidate.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Ok(candidate);
        }
    }
    Err(CniError::invalid_config(format!(
        "failed to find plugin {plugin:?} in path {dirs:?}"
    )))
}

/// How to run a plugin: its environment variables on top of ours, stdin,
/// and an optional time limit.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub timeout: Option<Duration>,
}

impl Exec {
    /// The `CNI_*` variables for `command` on the attachment in `args`.
    pub fn for_attachment(command: Command, args: &CmdArgs, stdin: &[u8]) -> Exec {
        let env = [
            ("CNI_COMMAND", command.as_str()),
            ("CNI_CONTAINERID", args.container_id.as_str()),
            ("CNI_NETNS", args.netns.as_str()),
            ("CNI_IFNAME", args.ifname.as_str()),
            ("CNI_ARGS", args.args.as_str()),
            ("CNI_PATH", args.path.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Exec {
            env,
            stdin: stdin.to_vec(),
            timeout: None,
        }
    }
}

const TEXT_FILE_BUSY_RETRIES: usize = 5;

fn spawn(path: &Path, exec: &Exec) -> Result<Child, CniError> {
    let mut attempt = 0;
    loop {
        let mut cmd = Process::new(path);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &exec.env {
            cmd.env(k, v);
        }
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            // The binary is being replaced right now; the reference waits.
            Err(e)
                if e.kind() == ErrorKind::ExecutableFileBusy
                    && attempt < TEXT_FILE_BUSY_RETRIES =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                return Err(CniError::io(format!(
                    "failed to run plugin {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

fn wait(
    child: &mut Child,
    path: &Path,
    timeout: Option<Duration>,
) -> Result<std::process::ExitStatus, CniError> {
    let Some(limit) = timeout else {
        return child
            .wait()
            .map_err(|e| CniError::io(format!("waiting for plugin {}: {e}", path.display())));
    };
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if start.elapsed() >= limit => {
                return Err(give_up(child, path, limit));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(CniError::io(format!(
                    "waiting for plugin {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

/// Ends a plugin that outran its time limit.
fn give_up(child: &mut Child, path: &Path, limit: Duration) -> CniError {
    let _ = child.kill();
    let _ = child.wait();
    CniError::try_again(format!(
        "plugin {} timed out after {limit:?}",
        path.display()
    ))
}

/// What any pipe takes at once without blocking: one page, the least a
/// pipe holds. Stdin no longer than this is written at once; a longer one
/// is written as the plugin reads it.
const PIPE_MIN_CAPACITY: usize = 4096;

/// How much room each read of a plugin's output makes.
const READ_CHUNK: usize = 16 * 1024;

/// The plugin's output, or how the exchange ended early.
struct Exchange {
    out: Vec<u8>,
    err: Vec<u8>,
    timed_out: bool,
}

/// Writes `input` to the plugin's stdin and reads its stdout and stderr
/// until both are closed (or `deadline` passes), on this thread: one
/// `poll` loop instead of a reader thread per pipe, whose creation cost
/// more than a small plugin's whole exchange.
fn exchange(
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    input: &[u8],
    deadline: Option<Instant>,
) -> Exchange {
    let mut done = Exchange {
        out: Vec::new(),
        err: Vec::new(),
        timed_out: false,
    };
    let mut stdin = stdin;
    let mut written = 0;
    if input.len() <= PIPE_MIN_CAPACITY {
        if let Some(mut w) = stdin.take() {
            let _ = w.write_all(input);
        }
    } else if let Some(w) = &stdin {
        // A plugin may answer before it has read all of a long stdin.
        if rustix::io::ioctl_fionbio(w, true).is_err() {
            stdin = None;
        }
    }
    let mut outputs = [stdout.map(Output::Out), stderr.map(Output::Err)];
    loop {
        let open: Vec<usize> = (0..2).filter(|&i| outputs[i].is_some()).collect();
        if open.is_empty() {
            return done;
        }
        let timeout = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) => Some(Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: i64::MAX,
                    tv_nsec: 0,
                })),
                None => {
                    done.timed_out = true;
                    return done;
                }
            },
            None => None,
        };
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .filter_map(|&i| outputs[i].as_ref())
            .map(|o| PollFd::from_borrowed_fd(o.fd(), PollFlags::IN))
            .collect();
        if let Some(w) = &stdin {
            fds.push(PollFd::new(w, PollFlags::OUT));
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return done,
        }
        let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds);
        for (slot, revents) in open.iter().zip(&ready) {
            if revents.is_empty() {
                continue;
            }
            let Some(output) = outputs[*slot].as_mut() else {
                continue;
            };
            let into = match output {
                Output::Out(_) => &mut done.out,
                Output::Err(_) => &mut done.err,
            };
            // Read into the output's spare capacity: no zeroed buffer
            // (its pages would each fault in once per call).
            into.reserve(READ_CHUNK);
            match rustix::io::read(output.fd(), spare_capacity(into)) {
                Ok(0) => outputs[*slot] = None,
                Ok(_) | Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(_) => outputs[*slot] = None,
            }
        }
        if let (Some(w), Some(revents)) = (stdin.as_mut(), ready.get(open.len())) {
            if !revents.is_empty() {
                match w.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => written = input.len(),
                }
                if written >= input.len() {
                    stdin = None;
                }
            }
        }
    }
}

/// One of the plugin's two output pipes.
enum Output {
    Out(ChildStdout),
    Err(ChildStderr),
}

impl Output {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Output::Out(p) => p.as_fd(),
            Output::Err(p) => p.as_fd(),
        }
    }
}

/// Runs the plugin at `path` and returns its stdout. On failure, returns
/// the plugin's own error JSON, or an error quoting its stderr when its
/// stdout is empty. The plugin's stderr is forwarded to ours.
pub fn exec_plugin(path: &Path, exec: &Exec) -> Result<Vec<u8>, CniError> {
    let mut child = spawn(path, exec)?;
    let start = Instant::now();
    let deadline = exec.timeout.map(|t| start + t);
    // The time limit also covers a plugin that never closes its output.
    let Exchange {
        out,
        err,
        timed_out,
    } = exchange(
        child.stdin.take(),
        child.stdout.take(),
        child.stderr.take(),
        &exec.stdin,
        deadline,
    );
    if let (true, Some(limit)) = (timed_out, exec.timeout) {
        return Err(give_up(&mut child, path, limit));
    }
    let left = exec.timeout.map(|t| t.saturating_sub(start.elapsed()));
    let status = wait(&mut child, path, left)?;
    if !err.is_empty() {
        let _ = std::io::stderr().write_all(&err);
    }
    if status.success() {
        return Ok(out);
    }
    Err(plugin_error(path, &out, &err, &status))
}

fn plugin_error(
    path: &Path,
    stdout: &[u8],
    stderr: &[u8],
    status: &dyn std::fmt::Display,
) -> CniError {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stdout.iter().all(u8::is_ascii_whitespace) {
        let stderr = String::from_utf8_lossy(stderr);
        let msg = if stderr.trim().is_empty() {
            format!("netplugin {name} failed with no error message: {status}")
        } else {
            format!("netplugin {name} failed: {:?}: {status}", stderr.trim_end())
        };
        return CniError::new(rcni_spec::ErrorCode::UNKNOWN, msg);
    }
    serde_json::from_slice::<serde_json::Value>(stdout)
        .map_err(|e| e.to_string())
        .and_then(|v| rcni_spec::gojson::from_value::<CniError>(&v).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            CniError::new(
                rcni_spec::ErrorCode::UNKNOWN,
                format!(
                    "netplugin {name} failed but error parsing its diagnostic message {:?}: {e}",
                    String::from_utf8_lossy(stdout)
                ),
            )
        })
}

/// Parses a plugin's ADD output; an output without `cniVersion` is taken
/// to be in the config's version, as the reference's `fixupResultVersion`.
pub fn parse_result(conf: &[u8], stdout: &[u8]) -> Result<CniResult, CniError> {
    let mut value: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|e| CniError::decode(format!("failed to unmarshal raw result: {e}")))?;
    if value.is_null() {
        value = serde_json::json!({});
    }
    if let serde_json::Value::Object(m) = &mut value {
        let empty = rcni_spec::gojson::get(m, "cniVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .is_empty();
        if empty {
            m.insert("cniVersion".into(), version::config_version(conf)?.into());
        }
    }
    result::parse(&value)
}

/// The plugins a multi-call binary holds, by name: those it can run
/// in-process when `CNI_PATH` leads back to the binary itself.
pub type OwnPlugins = fn(&str) -> Option<&'static dyn Plugin>;

/// Whether `path` is the running binary (a link to it or the file itself,
/// not a copy): only then is running in-process what an exec would run.
fn is_this_binary(path: &Path) -> bool {
    match (std::fs::metadata(path), std::fs::metadata("/proc/self/exe")) {
        (Ok(found), Ok(me)) => found.dev() == me.dev() && found.ino() == me.ino(),
        _ => false,
    }
}

/// Runs `plugin` from `path` as [`exec_plugin`] does; in-process, without
/// the exec, when `path` is this binary and `own` holds the plugin. The
/// plugin then reads its variables from `exec.env` over ours (nothing is
/// set in our environment), its stdin from `exec.stdin`, and writes its
/// answer into a buffer (never our stdout); its result or error is read
/// back exactly as an exec'd plugin's.
fn run_delegate(
    plugin: &str,
    path: &Path,
    exec: &Exec,
    own: Option<OwnPlugins>,
) -> Result<Vec<u8>, CniError> {
    let Some(found) = own.and_then(|lookup| lookup(plugin)) else {
        return exec_plugin(path, exec);
    };
    if !is_this_binary(path) {
        return exec_plugin(path, exec);
    }
    let getenv = |key: &str| {
        exec.env
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
            .or_else(|| std::env::var(key).ok())
    };
    let mut stdin = exec.stdin.as_slice();
    let mut stdout = Vec::new();
    let code = run_with(
        found,
        &getenv,
        &mut Io {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut std::io::stderr(),
        },
    );
    if code == 0 {
        return Ok(stdout);
    }
    Err(plugin_error(
        path,
        &stdout,
        &[],
        &format!("exit status: {code}"),
    ))
}

/// Runs `plugin` (an IPAM plugin, usually) with ADD and our attachment's
/// variables, and returns its result; in-process when `own` holds it and
/// `CNI_PATH` finds this very binary under its name.
pub fn delegate_add(
    plugin: &str,
    conf: &[u8],
    args: &CmdArgs,
    own: Option<OwnPlugins>,
) -> Result<CniResult, CniError> {
    let path = find_in_path(plugin, &args.path_dirs())?;
    let out = run_delegate(
        plugin,
        &path,
        &Exec::for_attachment(Command::Add, args, conf),
        own,
    )?;
    parse_result(conf, &out)
}

/// Runs `plugin` with a verb that returns no result (DEL, CHECK, GC,
/// STATUS), in-process as [`delegate_add`].
pub fn delegate(
    command: Command,
    plugin: &str,
    conf: &[u8],
    args: &CmdArgs,
    own: Option<OwnPlugins>,
) -> Result<(), CniError> {
    let path = find_in_path(plugin, &args.path_dirs())?;
    run_delegate(
        plugin,
        &path,
        &Exec::for_attachment(command, args, conf),
        own,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap_or_default();
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
        p
    }

    #[test]
    fn finds_plugins_in_order() {
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let pb = script(b.path(), "p", "true");
        let dirs = [
            a.path().to_str().unwrap_or(""),
            b.path().to_str().unwrap_or(""),
        ];
        assert_eq!(find_in_path("p", &dirs).ok(), Some(pb));
        assert_eq!(find_in_path("q", &dirs).unwrap_err().code, 7);
        assert!(find_in_path("../p", &dirs).is_err());
    }

    #[test]
    fn surfaces_errors() {
        let d = tempfile::tempdir().expect("tempdir");
        let json_err = script(d.path(), "e", r#"echo '{"code":11,"msg":"busy"}'; exit 1"#);
        let e = exec_plugin(&json_err, &Exec::default()).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "busy"));
        let stderr_only = script(d.path(), "s", "echo boom >&2; exit 3");
        let e = exec_plugin(&stderr_only, &Exec::default()).unwrap_err();
        assert!(e.msg.contains("boom"), "{}", e.msg);
        let garbage = script(d.path(), "g", "echo garbage; exit 1");
        assert!(exec_plugin(&garbage, &Exec::default())
            .unwrap_err()
            .msg
            .contains("garbage"));
    }

    #[test]
    fn passes_env_and_stdin_and_times_out() {
        let d = tempfile::tempdir().expect("tempdir");
        let echo = script(d.path(), "echo", r#"printf '%s|' "$CNI_COMMAND"; cat"#);
        let exec = Exec {
            env: vec![("CNI_COMMAND".into(), "ADD".into())],
            stdin: b"hello".to_vec(),
            timeout: Some(Duration::from_secs(10)),
        };
        assert_eq!(exec_plugin(&echo, &exec).ok(), Some(b"ADD|hello".to_vec()));
        // Longer than any pipe holds, echoed while it is written: neither
        // side may wait for the other.
        let long: Vec<u8> = (0..300_000).map(|i| b'a' + (i % 26) as u8).collect();
        let exec = Exec {
            stdin: long.clone(),
            ..exec
        };
        let out = exec_plugin(&echo, &exec).unwrap_or_default();
        assert!(
            out.strip_prefix(b"ADD|") == Some(&long[..]),
            "{} bytes",
            out.len()
        );
        let slow = script(d.path(), "slow", "exec sleep 5");
        let exec = Exec {
            timeout: Some(Duration::from_millis(100)),
            ..Exec::default()
        };
        assert_eq!(exec_plugin(&slow, &exec).unwrap_err().code, 11);
        // A plugin whose child keeps its stdout open: the limit still holds.
        let leaves_child = script(d.path(), "bg", "sleep 5 & echo '{}'");
        let start = Instant::now();
        assert_eq!(exec_plugin(&leaves_child, &exec).unwrap_err().code, 11);
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    /// A plugin that answers with its `CNI_ARGS` as the address, or fails
    /// with the config's `fail` code.
    struct Echo;

    impl Plugin for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
            let conf = args.conf()?;
            if let Some(code) = conf.raw.get("fail").and_then(|c| c.as_u64()) {
                return Err(CniError::new(code as u32, "asked to fail").with_details("here"));
            }
            Ok(CniResult {
                ips: vec![rcni_spec::IpConfig {
                    interface: None,
                    address: args
                        .args
                        .parse()
                        .map_err(|_| CniError::decode("CNI_ARGS"))?,
                    gateway: None,
                }],
                ..CniResult::default()
            })
        }
        fn del(&self, _: &CmdArgs) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn own_echo(name: &str) -> Option<&'static dyn Plugin> {
        (name == "echo").then_some(&Echo as &'static dyn Plugin)
    }

    #[test]
    fn own_plugin_runs_in_process_only_from_this_binary() {
        // Were the in-process path broken, this test binary would be
        // exec'd as the plugin: its copy of this test must not recurse.
        if std::env::var_os("CNI_COMMAND").is_some() {
            return;
        }
        let me = std::env::current_exe().expect("current_exe");
        let d = tempfile::tempdir().expect("tempdir");
        // A link to this test binary is this binary; the script is not.
        let link = d.path().join("echo");
        std::os::unix::fs::symlink(&me, &link).expect("symlink");
        let other = tempfile::tempdir().expect("tempdir");
        script(
            other.path(),
            "echo",
            r#"echo '{"code":11,"msg":"exec'"'"'d"}'; exit 1"#,
        );
        let args = CmdArgs {
            container_id: "c1".into(),
            netns: "/nonexistent/netns".into(),
            ifname: "eth0".into(),
            args: "10.9.0.2/24".into(),
            ..CmdArgs::default()
        };
        let conf = br#"{"cniVersion":"1.0.0","name":"n"}"#;
        let in_process = CmdArgs {
            path: d.path().display().to_string(),
            ..args.clone()
        };
        let r = delegate_add("echo", conf, &in_process, Some(own_echo)).expect("in-process ADD");
        assert_eq!(r.ips[0].address.to_string(), "10.9.0.2/24");
        assert_eq!(r.cni_version, "1.0.0");
        let e = delegate_add(
            "echo",
            br#"{"cniVersion":"1.0.0","name":"n","fail":7}"#,
            &in_process,
            Some(own_echo),
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (7, "asked to fail", "here")
        );
        // Not this binary: exec'd.
        let elsewhere = CmdArgs {
            path: other.path().display().to_string(),
            ..args.clone()
        };
        let e = delegate_add("echo", conf, &elsewhere, Some(own_echo)).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (11, "exec'd"));
    }

    #[test]
    fn result_without_version_takes_config_version() {
        let r = parse_result(
            br#"{"cniVersion":"0.4.0"}"#,
            br#"{"ips":[{"version":"4","address":"10.0.0.2/24"}]}"#,
        );
        assert_eq!(r.map(|r| r.cni_version).ok(), Some("0.4.0".to_string()));
    }
}
