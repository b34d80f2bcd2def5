//! `dummy`: a dummy link in the container carrying the IPAM addresses
//! (an address for the pod without any traffic path).

use crate::container_link::{self as cl, Addressing};
use rcni_net::{LinkKind, LinkOptions};
use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::config::PluginConf;
use rcni_spec::schema::Schema;
use rcni_spec::{CniError, CniResult};

pub struct Dummy;

fn load(args: &CmdArgs) -> Result<PluginConf, CniError> {
    let conf = args.conf()?;
    if !crate::ipam::has_ipam(&conf) && !args.is_del() {
        return Err(CniError::invalid_config(
            "ipam: dummy interface requires an IPAM configuration",
        ));
    }
    Ok(conf)
}

/// dummy has no keys of its own, only `ipam` (required).
pub const SCHEMA: Schema = Schema {
    about: "gives the container a dummy link holding its IPAM addresses (requires ipam)",
    keys: &[],
    capabilities: &[],
    example: r#"{"cniVersion": "1.0.0", "name": "addr-only", "type": "dummy",
  "ipam": {"type": "host-local", "subnet": "10.200.0.0/24"}}"#,
    check: |conf| load(&crate::offline::add_call(conf)).map(drop),
};

impl Plugin for Dummy {
    fn name(&self) -> &str {
        "dummy"
    }

    fn schema(&self) -> Option<&'static Schema> {
        Some(&SCHEMA)
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let conf = load(args)?;
        let ns = crate::container::require_netns(args)?;
        let iface = cl::create(
            &LinkKind::Dummy,
            "dummy",
            &args.ifname,
            &ns,
            false,
            LinkOptions::default(),
        )?;
        cl::address(&conf, args, &ns, iface, Addressing::Ipam, false)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::del("dummy", &load(args)?, args)
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let conf = load(args)?;
        cl::check("dummy", &conf, args, Some("dummy"), |link| {
            if link.admin_up {
                Ok(())
            } else {
                Err(fail!("Interface {} is down", link.name))
            }
        })
    }

    fn status(&self, args: &CmdArgs) -> Result<(), CniError> {
        cl::status(&load(args)?, args)
    }
}
