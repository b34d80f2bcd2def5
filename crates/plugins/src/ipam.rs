//! IPAM delegation: whether a config has IPAM, the lease an ADD takes
//! from the IPAM plugin (released when the ADD fails), and the other verbs
//! forwarded to it. When `CNI_PATH` finds rcni itself under the IPAM
//! plugin's name, the plugin runs in-process (no exec); anything else on
//! `CNI_PATH`, such as the reference's host-local, is exec'd.

use rcni_skel::invoke;
use rcni_skel::{CmdArgs, Command};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::Key;
use rcni_spec::{CniError, CniResult};

/// The `routes` key of the `ipam` object of host-local and static.
pub const ROUTES_KEY: Key = Key {
    name: "routes",
    ty: "[{dst, gw}]",
    default: "",
    meaning: "routes to report with the addresses",
};

/// Whether the config names an IPAM plugin (`ipam: {}` does not).
pub fn has_ipam(conf: &PluginConf) -> bool {
    conf.ipam.as_ref().is_some_and(|i| !i.ipam_type.is_empty())
}

/// The `ipam.type` of a config, which must be set.
pub fn ipam_type(conf: &PluginConf) -> Result<String, CniError> {
    match conf.ipam.as_ref().map(|i| i.ipam_type.as_str()) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(CniError::invalid_config(
            "ipam.type is missing: an IPAM plugin is required",
        )),
    }
}

/// An address lease from the IPAM plugin named in the config. Dropping it
/// without [`IpamLease::keep`] calls IPAM DEL, so an ADD that fails after
/// IPAM leaves no address behind.
pub struct IpamLease<'a> {
    ipam_type: String,
    args: &'a CmdArgs,
    kept: bool,
}

impl<'a> IpamLease<'a> {
    /// Runs IPAM ADD with the plugin's own stdin, as the reference does.
    pub fn acquire(
        conf: &PluginConf,
        args: &'a CmdArgs,
    ) -> Result<(IpamLease<'a>, CniResult), CniError> {
        let ipam_type = ipam_type(conf)?;
        let result = invoke::delegate_add(&ipam_type, &args.stdin, args, Some(crate::lookup))?;
        Ok((
            IpamLease {
                ipam_type,
                args,
                kept: false,
            },
            result,
        ))
    }

    /// The attachment succeeded: keep the address.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for IpamLease<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = invoke::delegate(
                Command::Del,
                &self.ipam_type,
                &self.args.stdin,
                self.args,
                Some(crate::lookup),
            );
        }
    }
}

/// Forwards a verb without result (DEL, CHECK, GC, STATUS) to the IPAM
/// plugin of the config.
pub fn ipam_forward(command: Command, conf: &PluginConf, args: &CmdArgs) -> Result<(), CniError> {
    invoke::delegate(
        command,
        &ipam_type(conf)?,
        &args.stdin,
        args,
        Some(crate::lookup),
    )
}

/// Forwards a verb to the IPAM plugin when the config has one.
pub fn forward_if_any(command: Command, conf: &PluginConf, args: &CmdArgs) -> Result<(), CniError> {
    if has_ipam(conf) {
        ipam_forward(command, conf, args)?;
    }
    Ok(())
}
