//! A framework for CNI plugins: the counterpart of the reference's `skel`
//! and `invoke` packages.
//!
//! A plugin implements [`Plugin`] and calls [`run`] from `main`:
//!
//! ```no_run
//! use rcni_skel::{CmdArgs, Plugin};
//! use rcni_spec::{CniError, CniResult};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn name(&self) -> &str { "hello" }
//!     fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
//!         let conf = args.conf()?;
//!         Ok(conf.prev_result()?.unwrap_or_default())
//!     }
//!     fn del(&self, _args: &CmdArgs) -> Result<(), CniError> { Ok(()) }
//! }
//!
//! fn main() { std::process::exit(rcni_skel::run(&Hello)) }
//! ```
//!
//! [`run`] reads `CNI_COMMAND` and the other variables, validates them as
//! the reference does, answers VERSION, refuses CHECK below 0.4.0 and
//! GC/STATUS below 1.1.0, calls the plugin, and prints its result in the
//! config's version, or the error JSON, on stdout.
//!
//! [`invoke`] finds and runs other plugins (IPAM delegation).
//! [`call_log`] is the opt-in log of every call.

pub mod call_log;
pub mod cmd;
pub mod dispatch;
pub mod invoke;

pub use cmd::{CmdArgs, Command};
pub use dispatch::{run, run_with, Io, Plugin};
