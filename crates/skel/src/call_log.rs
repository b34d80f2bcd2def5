//! The opt-in call log: when enabled, every plugin call appends one JSON
//! line (time, command, network, container ID, interface, plugin,
//! duration, and the result or the error's code and message) to a
//! size-bounded file, so an operator can see what the runtime asked and
//! what each plugin answered.
//!
//! Enabled by `RCNI_CALL_LOG=<file>` in the plugin's environment (runtimes
//! pass theirs on), or, for runtimes that do not, by the node-wide file
//! [`NODE_CONFIG`] whose first line names the log file. Off, it costs one
//! environment lookup and one `stat` per call. The file is rotated to
//! `<file>.1` once it exceeds `RCNI_CALL_LOG_MAX` bytes (default
//! [`DEFAULT_MAX`]). Logging never fails a call: a log that cannot be
//! written is skipped.

use rcni_spec::CniError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The node-wide switch: its first line is the log file's path.
pub const NODE_CONFIG: &str = "/etc/rcni/call-log";
/// The size at which the log is rotated.
pub const DEFAULT_MAX: u64 = 10 << 20;

/// An enabled call log, with the call's start time.
pub struct CallLog {
    path: PathBuf,
    max: u64,
    started: Instant,
}

/// What a call was about, as far as the plugin got in reading it.
#[derive(Default)]
pub struct Facts {
    pub command: String,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
}

impl CallLog {
    /// The log, if enabled by the environment or the node-wide file.
    pub fn from_env(getenv: &dyn Fn(&str) -> Option<String>) -> Option<CallLog> {
        let path = match getenv("RCNI_CALL_LOG").filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => {
                // Read only when it exists: a missing file is the common
                // case and costs one failed stat.
                let text = std::fs::read_to_string(NODE_CONFIG).ok()?;
                PathBuf::from(text.lines().next()?.trim())
            }
        };
        if !path.is_absolute() {
            return None;
        }
        let max = getenv("RCNI_CALL_LOG_MAX")
            .and_then(|m| m.parse().ok())
            .unwrap_or(DEFAULT_MAX);
        Some(CallLog {
            path,
            max,
            started: Instant::now(),
        })
    }

    /// Appends the call's line; rotates first when the file is full.
    pub fn record(&self, plugin: &str, facts: &Facts, outcome: &Result<(), CniError>) {
        let mut line = serde_json::json!({
            "time": rfc3339_now(),
            "command": facts.command,
            "network": facts.network,
            "containerID": facts.container_id,
            "ifname": facts.ifname,
            "plugin": plugin,
            "durationUs": self.started.elapsed().as_micros() as u64,
        });
        match outcome {
            Ok(()) => line["result"] = "ok".into(),
            Err(e) => {
                line["result"] = "error".into();
                line["code"] = e.code.into();
                line["msg"] = e.msg.clone().into();
            }
        }
        let mut text = line.to_string();
        text.push('\n');
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() + text.len() as u64 > self.max) {
            let mut rotated = self.path.clone().into_os_string();
            rotated.push(".1");
            let _ = std::fs::rename(&self.path, rotated);
        }
        // Append-only, never following a link, never waiting on a FIFO.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc_flags())
            .open(&self.path);
        if let Ok(mut file) = file {
            // One write per line: appends from concurrent calls do not
            // interleave.
            let _ = file.write_all(text.as_bytes());
        }
    }
}

fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

/// Now as `2026-11-30T06:42:45.123Z`.
fn rfc3339_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_787), (2026, 11, 30));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn lines_are_appended_and_the_file_rotated() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("calls.log");
        let env = |k: &str| match k {
            "RCNI_CALL_LOG" => Some(path.to_string_lossy().into_owned()),
            "RCNI_CALL_LOG_MAX" => Some("400".into()),
            _ => None,
        };
        let facts = Facts {
            command: "ADD".into(),
            network: "net".into(),
            container_id: "c\"1\n".into(),
            ifname: "eth0".into(),
        };
        for _ in 0..5 {
            let log = CallLog::from_env(&env).unwrap_or_else(|| panic!("enabled"));
            log.record("ptp", &facts, &Err(CniError::invalid_config("mtu: bad")));
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(text.len() <= 400, "{text}");
        let first: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or_default()).unwrap_or_default();
        assert_eq!(first["containerID"], "c\"1\n");
        assert_eq!(first["code"], 7);
        assert_eq!(first["plugin"], "ptp");
        assert!(dir.path().join("calls.log.1").exists());
        let off = |_: &str| None;
        assert!(CallLog::from_env(&off).is_none() || std::path::Path::new(NODE_CONFIG).exists());
    }
}
