//! The plugin entry point: verb dispatch and stdout/stderr handling.

use crate::call_log::{CallLog, Facts};
use crate::cmd::{self, CmdArgs, Command};
use rcni_spec::result::{self, to_pretty_json};
use rcni_spec::schema::Schema;
use rcni_spec::version::{self, VersionInfo};
use rcni_spec::{CniError, CniResult, ErrorCode};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;

/// A CNI plugin. Only ADD and DEL are required; CHECK, GC and STATUS
/// succeed by default, as in the reference's skel.
pub trait Plugin {
    /// The plugin's name, as in the `type` key.
    fn name(&self) -> &str;

    /// One line printed (with the supported versions) when the binary is
    /// run without `CNI_COMMAND`.
    fn about(&self) -> String {
        format!(
            "CNI {} plugin (rcni {})",
            self.name(),
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The spec versions this plugin accepts.
    fn supported_versions(&self) -> &'static [&'static str] {
        version::ALL
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError>;
    fn del(&self, args: &CmdArgs) -> Result<(), CniError>;
    fn check(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }
    fn gc(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }
    fn status(&self, _args: &CmdArgs) -> Result<(), CniError> {
        Ok(())
    }
    /// The keys the plugin reads, for `rcni help` and `rcni check-config`.
    fn schema(&self) -> Option<&'static Schema> {
        None
    }
}

/// Where a plugin reads its config and writes its answer.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// Runs `plugin` against this process's environment and standard streams
/// and returns the exit code (0 on success, 1 on error).
pub fn run(plugin: &dyn Plugin) -> i32 {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    // Not locked for the whole call: a step on another thread (a DEL's
    // firewall teardown) may log, and would wait for this one.
    let mut io = Io {
        stdin: &mut stdin.lock(),
        stdout: &mut stdout.lock(),
        stderr: &mut std::io::stderr(),
    };
    run_with(plugin, &|k| std::env::var(k).ok(), &mut io)
}

/// As [`run`], with the environment and streams supplied (for tests and
/// for running a plugin in-process).
pub fn run_with(
    plugin: &dyn Plugin,
    getenv: &dyn Fn(&str) -> Option<String>,
    io: &mut Io<'_>,
) -> i32 {
    let log = CallLog::from_env(getenv);
    let mut conf_version = String::new();
    let mut facts = Facts::default();
    let outcome = dispatch(plugin, getenv, io, &mut conf_version, &mut facts);
    if let Some(log) = &log {
        if !matches!(&outcome, Err(e) if e.code == u32::MAX) {
            log.record(plugin.name(), &facts, &outcome);
        }
    }
    match outcome {
        Ok(()) => 0,
        Err(e) if e.code == u32::MAX => 0,
        Err(e) => {
            let _ = io
                .stdout
                .write_all(with_newline(e.to_json(&conf_version)).as_bytes());
            let _ = io.stdout.flush();
            1
        }
    }
}

/// `text` and a newline, written with one `write_all`: `writeln!` on
/// stdout's line buffer made two `write`s of a multi-line answer, the
/// last line apart.
fn with_newline(mut text: String) -> String {
    text.push('\n');
    text
}

/// A pseudo error that means "about text printed, exit 0".
fn about_printed() -> CniError {
    CniError::new(u32::MAX, "")
}

fn dispatch(
    plugin: &dyn Plugin,
    getenv: &dyn Fn(&str) -> Option<String>,
    io: &mut Io<'_>,
    conf_version: &mut String,
    facts: &mut Facts,
) -> Result<(), CniError> {
    facts.command = getenv("CNI_COMMAND").unwrap_or_default();
    facts.container_id = getenv("CNI_CONTAINERID").unwrap_or_default();
    facts.ifname = getenv("CNI_IFNAME").unwrap_or_default();
    let (raw_cmd, mut args) = match cmd::from_env(getenv) {
        Ok(v) => v,
        Err(e) if getenv("CNI_COMMAND").unwrap_or_default().is_empty() => {
            let _ = writeln!(io.stderr, "{}", plugin.about());
            let _ = writeln!(
                io.stderr,
                "CNI protocol versions supported: {}",
                plugin.supported_versions().join(", ")
            );
            drop(e);
            return Err(about_printed());
        }
        Err(e) => return Err(e),
    };
    let Some(command) = Command::parse(&raw_cmd) else {
        return Err(CniError::invalid_env(format!(
            "unknown CNI_COMMAND: {raw_cmd}"
        )));
    };
    let supported = plugin.supported_versions();
    if command == Command::Version {
        let info = VersionInfo::new(supported);
        let _ = writeln!(
            io.stdout,
            "{}",
            serde_json::to_string(&info).unwrap_or_default()
        );
        return Ok(());
    }

    io.stdin
        .take(MAX_STDIN + 1)
        .read_to_end(&mut args.stdin)
        .map_err(|e| CniError::io(format!("error reading from stdin: {e}")))?;
    if args.stdin.len() as u64 > MAX_STDIN {
        return Err(CniError::invalid_config(format!(
            "the network config on stdin is larger than {} MiB",
            MAX_STDIN >> 20
        )));
    }
    facts.network = validate_stdin(&args.stdin)?;
    *conf_version = version::config_version(&args.stdin)?;

    let minimum = match command {
        Command::Check => Some("0.4.0"),
        Command::Gc | Command::Status => Some("1.1.0"),
        _ => None,
    };
    if let Some(min) = minimum {
        if !version::at_least(conf_version, min)? {
            return Err(CniError::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!("config version does not allow {command}"),
            ));
        }
    }
    version::reconcile(conf_version, supported)?;
    if matches!(command, Command::Add | Command::Del | Command::Check) {
        check_not_own_netns(&args)?;
    }

    match command {
        Command::Add => {
            let res = plugin.add(&args)?;
            let out = match result::render(&res, conf_version) {
                Ok(out) => out,
                Err(e) => {
                    // The attachment exists but cannot be reported in the
                    // config's version (e.g. no address for 0.2.0): undo
                    // it rather than leave what the runtime never learns of.
                    let _ = plugin.del(&args);
                    return Err(e);
                }
            };
            let _ = io
                .stdout
                .write_all(with_newline(to_pretty_json(&out)).as_bytes());
        }
        Command::Del => plugin.del(&args)?,
        Command::Check => plugin.check(&args)?,
        Command::Gc => plugin.gc(&args)?,
        Command::Status => plugin.status(&args)?,
        Command::Version => {}
    }
    Ok(())
}

/// The most stdin that is read: far beyond any real config (a few KiB,
/// with a prevResult), and a bound on the memory a call can be made to use.
pub const MAX_STDIN: u64 = 4 << 20;

/// What the reference checks of every config before the verb: valid JSON
/// with a valid `name`, which is returned. Only the name is decoded (the
/// rest is skipped, not built), so a huge document costs no more than
/// reading it.
fn validate_stdin(stdin: &[u8]) -> Result<String, CniError> {
    let name: String = rcni_spec::gojson::field_from_slice(stdin, "name")
        .map_err(|e| CniError::decode(format!("error unmarshall network config: {e}")))?
        .unwrap_or_default();
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    rcni_spec::names::validate_network_name(&name)?;
    Ok(name)
}

/// A plugin run inside the container's own netns would configure (or tear
/// down) the wrong side: the host. Refused with the reference's code 8
/// before the plugin touches anything (the reference checks only after the
/// verb). `stat` only: the path may be anything, e.g. a FIFO, and must not
/// be opened here.
fn check_not_own_netns(args: &CmdArgs) -> Result<(), CniError> {
    if args.netns_override || args.netns.is_empty() {
        return Ok(());
    }
    let Ok(target) = std::fs::metadata(&args.netns) else {
        return Ok(());
    };
    let own = std::fs::metadata("/proc/self/ns/net")
        .map_err(|_| CniError::new(ErrorCode::INVALID_NETNS, "get plugin's netns failed"))?;
    if own.dev() == target.dev() && own.ino() == target.ino() {
        return Err(CniError::new(
            ErrorCode::INVALID_NETNS,
            "plugin's netns and netns from CNI_NETNS should not be the same",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    struct Recorder {
        calls: RefCell<Vec<String>>,
    }

    impl Plugin for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
            self.calls.borrow_mut().push("ADD".into());
            let conf = args.conf()?;
            if conf.raw.contains_key("fail") {
                return Err(CniError::new(123, "asked to fail").with_details("fail"));
            }
            Ok(CniResult {
                ips: vec![rcni_spec::IpConfig {
                    interface: None,
                    address: "10.0.0.2/24".parse().unwrap_or_else(|_| unreachable!()),
                    gateway: None,
                }],
                ..CniResult::default()
            })
        }
        fn del(&self, _: &CmdArgs) -> Result<(), CniError> {
            self.calls.borrow_mut().push("DEL".into());
            Ok(())
        }
        fn gc(&self, _: &CmdArgs) -> Result<(), CniError> {
            self.calls.borrow_mut().push("GC".into());
            Ok(())
        }
    }

    fn call(cmd: &str, stdin: &str, extra: &[(&str, &str)]) -> (i32, String, String, Vec<String>) {
        let plugin = Recorder {
            calls: RefCell::new(Vec::new()),
        };
        let mut env: HashMap<String, String> = [
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/nonexistent/netns"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if !cmd.is_empty() {
            env.insert("CNI_COMMAND".into(), cmd.into());
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.to_string());
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = stdin.as_bytes();
        let code = run_with(
            &plugin,
            &|k| env.get(k).cloned(),
            &mut Io {
                stdin: &mut input,
                stdout: &mut out,
                stderr: &mut err,
            },
        );
        let calls = plugin.calls.into_inner();
        (
            code,
            String::from_utf8_lossy(&out).into(),
            String::from_utf8_lossy(&err).into(),
            calls,
        )
    }

    fn error_code(out: &str) -> u64 {
        let v: serde_json::Value = serde_json::from_str(out).unwrap_or_default();
        v["code"].as_u64().unwrap_or(0)
    }

    #[test]
    fn add_prints_result_in_config_version() {
        let (code, out, _, calls) = call("ADD", r#"{"cniVersion":"0.4.0","name":"n"}"#, &[]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(calls, ["ADD"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["ips"][0]["version"], "4");
        let (_, out, _, _) = call("ADD", r#"{"cniVersion":"0.2.0","name":"n"}"#, &[]);
        assert!(out.contains("\"ip4\""));
    }

    #[test]
    fn plugin_errors_keep_their_code() {
        let (code, out, _, _) = call("ADD", r#"{"cniVersion":"1.0.0","name":"n","fail":1}"#, &[]);
        assert_eq!(code, 1);
        assert_eq!(error_code(&out), 123);
        assert!(out.contains("\"cniVersion\": \"1.0.0\""));
    }

    #[test]
    fn bad_input_codes() {
        assert_eq!(error_code(&call("ADD", "{not json", &[]).1), 6);
        assert_eq!(
            error_code(&call("ADD", r#"{"cniVersion":"1.0.0"}"#, &[]).1),
            7
        );
        assert_eq!(
            error_code(&call("ADD", r#"{"cniVersion":"1.0.0","name":"a/b"}"#, &[]).1),
            7
        );
        assert_eq!(
            error_code(&call("ADD", r#"{"cniVersion":"9.9.9","name":"n"}"#, &[]).1),
            1
        );
        assert_eq!(error_code(&call("BOGUS", r#"{"name":"n"}"#, &[]).1), 4);
        assert_eq!(
            error_code(&call("ADD", r#"{"name":"n"}"#, &[("CNI_IFNAME", "a b")]).1),
            4
        );
    }

    #[test]
    fn check_gc_status_need_recent_versions() {
        let (_, out, _, calls) = call("CHECK", r#"{"cniVersion":"0.3.1","name":"n"}"#, &[]);
        assert_eq!(error_code(&out), 1);
        assert!(calls.is_empty());
        let (code, _, _, calls) = call("GC", r#"{"cniVersion":"1.1.0","name":"n"}"#, &[]);
        assert_eq!((code, calls), (0, vec!["GC".to_string()]));
        let (_, out, _, _) = call("STATUS", r#"{"cniVersion":"1.0.0","name":"n"}"#, &[]);
        assert_eq!(error_code(&out), 1);
    }

    #[test]
    fn own_netns_is_refused_before_the_plugin_runs() {
        let own = [("CNI_NETNS", "/proc/self/ns/net")];
        for verb in ["ADD", "DEL", "CHECK"] {
            let (code, out, _, calls) = call(verb, r#"{"cniVersion":"1.0.0","name":"n"}"#, &own);
            assert_eq!((code, error_code(&out)), (1, 8), "{verb}: {out}");
            assert!(calls.is_empty(), "{verb} reached the plugin");
        }
        let over = [own[0], ("CNI_NETNS_OVERRIDE", "1")];
        let (code, _, _, calls) = call("DEL", r#"{"cniVersion":"1.0.0","name":"n"}"#, &over);
        assert_eq!((code, calls), (0, vec!["DEL".to_string()]));
    }

    #[test]
    fn version_and_about() {
        let (code, out, _, _) = call("VERSION", "ignored", &[]);
        assert_eq!(code, 0);
        assert!(out.contains("\"supportedVersions\":[\"0.1.0\""));
        let (code, out, err, _) = call("", "", &[]);
        assert_eq!(code, 0);
        assert!(out.is_empty());
        assert!(err.contains("CNI protocol versions supported: 0.1.0"));
    }
}
