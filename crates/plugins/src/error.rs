//! The one way a plugin turns a failure into a CNI error. Each layer's
//! error type gets its CNI code here ([`IntoCniError`]), and a step names
//! itself with [`Context::context`]:
//!
//! ```ignore
//! let br = host.find_link(&name).context("look up the bridge")?;
//! ```
//!
//! Failures that are not conversions are built with [`fail!`] (999) or
//! [`invalid!`] (7, the message starting with the bad field). A DEL runs
//! all its steps through [`Teardown`].

use rcni_ipam::IpamError;
use rcni_net::NetError;
use rcni_netfilter::{ErrorKind as FirewallErrorKind, FirewallError};
use rcni_spec::gojson::DecodeError;
use rcni_spec::{CniError, ErrorCode};
use std::fmt::Display;

/// An internal failure (code 999, the reference's code for whatever has
/// no other): `fail!("failed to lookup {name:?}")`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        rcni_spec::CniError::internal(format!($($arg)*))
    };
}

/// An invalid config (code 7); the message names the field first:
/// `invalid!("vlan: invalid VLAN ID {id}")`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => {
        rcni_spec::CniError::invalid_config(format!($($arg)*))
    };
}

/// A layer's error, with the CNI code of its kind.
pub trait IntoCniError: Display {
    fn into_cni(self) -> CniError;
}

impl IntoCniError for CniError {
    fn into_cni(self) -> CniError {
        self
    }
}

/// Kernel failures are internal errors (999), as the reference reports
/// them.
impl IntoCniError for NetError {
    fn into_cni(self) -> CniError {
        CniError::internal(self.to_string())
    }
}

/// By the firewall layer's own [`FirewallErrorKind`]: a value the config
/// asks for that cannot work is the config's fault (7), a tool that cannot
/// be started I/O (5), a refused change or missing tools internal (999),
/// as in the reference (a backend the config names but the host lacks is
/// reported as 7 where the config is read, with `invalid_context`).
impl IntoCniError for FirewallError {
    fn into_cni(self) -> CniError {
        match self.kind() {
            FirewallErrorKind::InvalidConfig => CniError::invalid_config(self.to_string()),
            FirewallErrorKind::Io => CniError::io(self.to_string()),
            FirewallErrorKind::Internal => CniError::internal(self.to_string()),
        }
    }
}

/// IPAM config errors are 7, store I/O 5, the rest (no address free,
/// ...) 999.
impl IntoCniError for IpamError {
    fn into_cni(self) -> CniError {
        if self.is_config() {
            CniError::invalid_config(self.to_string())
        } else if self.is_io() {
            CniError::io(self.to_string())
        } else {
            CniError::internal(self.to_string())
        }
    }
}

/// A config value that does not decode: 7, with its path.
impl IntoCniError for DecodeError {
    fn into_cni(self) -> CniError {
        CniError::invalid_config(self.to_string())
    }
}

impl IntoCniError for std::io::Error {
    fn into_cni(self) -> CniError {
        CniError::io(self.to_string())
    }
}

/// JSON that does not parse: 6 (a config value is named with
/// `invalid_context`, 7); a failed write: 5.
impl IntoCniError for serde_json::Error {
    fn into_cni(self) -> CniError {
        match self.classify() {
            serde_json::error::Category::Io => CniError::io(self.to_string()),
            _ => CniError::decode(self.to_string()),
        }
    }
}

/// A pattern of an admin's file that does not compile (tuning's
/// allowlist): internal, as the reference reports it.
impl IntoCniError for regex_lite::Error {
    fn into_cni(self) -> CniError {
        CniError::internal(self.to_string())
    }
}

/// Naming the step that failed, on any layer's `Result`.
pub trait Context<T> {
    /// The error as a CNI error with its kind's code, its message
    /// prefixed with `what` (`what: cause`).
    fn context(self, what: impl Display) -> Result<T, CniError>;
    /// As [`Context::context`], but the config is at fault (code 7):
    /// `what` names the field.
    fn invalid_context(self, what: impl Display) -> Result<T, CniError>;
    /// As [`Context::context`], with the CNI code set by the caller (50
    /// for a plugin that cannot serve, say).
    fn context_code(self, code: u32, what: impl Display) -> Result<T, CniError>;
    /// The error as a CNI error, message unchanged.
    fn cni(self) -> Result<T, CniError>;
}

impl<T, E: IntoCniError> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, CniError> {
        self.map_err(|e| e.into_cni().context(what))
    }

    fn invalid_context(self, what: impl Display) -> Result<T, CniError> {
        self.context_code(ErrorCode::INVALID_CONFIG, what)
    }

    fn context_code(self, code: u32, what: impl Display) -> Result<T, CniError> {
        self.map_err(|e| CniError::new(code, format!("{what}: {e}")))
    }

    fn cni(self) -> Result<T, CniError> {
        self.map_err(IntoCniError::into_cni)
    }
}

/// The steps of a DEL: every step runs, whatever the ones before did; the
/// first failure is returned at the end and later ones are logged.
pub struct Teardown {
    plugin: &'static str,
    first: Option<CniError>,
}

impl Teardown {
    pub fn new(plugin: &'static str) -> Teardown {
        Teardown {
            plugin,
            first: None,
        }
    }

    /// Records the outcome of one step.
    pub fn step(&mut self, outcome: Result<(), CniError>) {
        if let Err(e) = outcome {
            if self.first.is_none() {
                self.first = Some(e);
            } else {
                eprintln!("{}: DEL: {e}", self.plugin);
            }
        }
    }

    /// Runs `side` on a thread of its own while `steps` run here, and
    /// records its outcome after theirs. Meant for a DEL's firewall
    /// teardown, which needs neither the link nor the address: its waits
    /// (an `iptables-restore`; the kernel freeing deleted nf_tables rules
    /// after a grace period, which the process's exit would otherwise wait
    /// for) then pass during the link's deletion, itself a wait of the
    /// kernel. Without a thread to be had, `side` runs here, after `steps`.
    pub fn alongside(
        &mut self,
        side: impl FnOnce() -> Result<(), CniError> + Send,
        steps: impl FnOnce(&mut Teardown),
    ) {
        let side = std::sync::Mutex::new(Some(side));
        let run_side = || {
            let f = side.lock().unwrap_or_else(|p| p.into_inner()).take();
            f.map(|f| f())
        };
        let outcome = std::thread::scope(|s| {
            let thread = std::thread::Builder::new().spawn_scoped(s, run_side);
            steps(self);
            let joined = thread.ok().and_then(|t| t.join().ok()).flatten();
            joined.or_else(run_side)
        });
        let plugin = self.plugin;
        self.step(outcome.unwrap_or_else(|| Err(fail!("{plugin}: a DEL step panicked"))));
    }

    /// The first failure, if any, once every step has run.
    pub fn finish(self) -> Result<(), CniError> {
        self.first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_kind() {
        let kernel: Result<(), NetError> = Err(NetError::NotFound("link \"x\"".into()));
        let e = kernel.context("look up the bridge").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (999, "look up the bridge: link \"x\" not found")
        );
        let fw: Result<(), FirewallError> = Err(FirewallError::Config("bad".into()));
        assert_eq!(fw.cni().unwrap_err().code, 7);
        let gone: Result<(), FirewallError> = Err(FirewallError::Unavailable("no nft".into()));
        assert_eq!(gone.cni().unwrap_err().code, 999);
        let io: Result<(), std::io::Error> = Err(std::io::Error::other("disk"));
        assert_eq!(io.context("write").unwrap_err().code, 5);
        let field: Result<(), std::io::Error> = Err(std::io::Error::other("gone"));
        let e = field.invalid_context("kernelpath").unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (7, "kernelpath: gone"));
    }

    #[test]
    fn teardown_runs_every_step_and_returns_the_first_failure() {
        let mut ran = Vec::new();
        let mut td = Teardown::new("test");
        for (i, outcome) in [Ok(()), Err(fail!("first")), Err(fail!("second")), Ok(())]
            .into_iter()
            .enumerate()
        {
            ran.push(i);
            td.step(outcome);
        }
        assert_eq!(ran, [0, 1, 2, 3]);
        assert_eq!(td.finish().unwrap_err().msg, "first");
        assert!(Teardown::new("test").finish().is_ok());
    }

    #[test]
    fn a_side_step_runs_alongside_and_counts_after_the_steps() {
        let mut td = Teardown::new("test");
        let main_thread = std::thread::current().id();
        let side_thread = std::sync::Mutex::new(None);
        td.alongside(
            || {
                *side_thread.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::thread::current().id());
                Err(fail!("side"))
            },
            |td| td.step(Err(fail!("main"))),
        );
        assert_eq!(td.finish().unwrap_err().msg, "main");
        let side_thread = side_thread.into_inner().unwrap_or_else(|p| p.into_inner());
        assert!(side_thread.is_some_and(|id| id != main_thread));

        let mut td = Teardown::new("test");
        td.alongside(|| Err(fail!("side")), |td| td.step(Ok(())));
        assert_eq!(td.finish().unwrap_err().msg, "side");
    }
}
