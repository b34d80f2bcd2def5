//! Running the firewall tools.

use crate::error::FirewallError;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `program args` with `stdin`, returns stdout; fails with stderr.
pub(crate) fn run(
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, FirewallError> {
    let tool_err = |message: String| FirewallError::Tool {
        program: program.to_string(),
        message,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FirewallError::Io(format!("cannot run {program}: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(|e| tool_err(format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| tool_err(e.to_string()))?;
    if !out.status.success() {
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if let Some(input) = stdin {
            msg.push_str(&format!("\ninput was:\n{input}"));
        }
        return Err(tool_err(msg));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` is on PATH: a stat per directory, no exec, so it can
/// sit on every ADD.
pub(crate) fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file()))
    })
}
