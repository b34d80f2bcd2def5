//! `sample`: how a third party writes a CNI plugin on rcni's framework.
//!
//! Like the reference's sample plugin, it is a chained plugin: it needs a
//! previous result, checks one plugin-specific key (`anotherAwesomeArg`)
//! and passes the previous result on. Build it with
//! `cargo build -p rcni-sample` and put `target/debug/sample` in CNI_PATH.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "mynet",
//!  "plugins": [{"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
//!              {"type": "sample", "anotherAwesomeArg": "awesome"}]}
//! ```

use rcni_skel::{CmdArgs, Plugin};
use rcni_spec::{CniError, CniResult};
use serde::Deserialize;

/// The plugin's own config keys; the framework hands us the rest
/// (name, cniVersion, prevResult, runtimeConfig...).
#[derive(Deserialize)]
struct SampleConf {
    #[serde(rename = "anotherAwesomeArg", default)]
    another_awesome_arg: String,
}

struct Sample;

impl Sample {
    fn load(args: &CmdArgs) -> Result<(rcni_spec::config::PluginConf, SampleConf), CniError> {
        let conf = args.conf()?;
        let own: SampleConf = conf.plugin_fields()?;
        if own.another_awesome_arg.is_empty() {
            return Err(CniError::invalid_config(
                "anotherAwesomeArg must be specified",
            ));
        }
        Ok((conf, own))
    }
}

impl Plugin for Sample {
    fn name(&self) -> &str {
        "sample"
    }

    fn add(&self, args: &CmdArgs) -> Result<CniResult, CniError> {
        let (conf, own) = Self::load(args)?;
        let prev = conf
            .prev_result()?
            .ok_or_else(|| CniError::invalid_config("must be called as chained plugin"))?;
        // A real plugin would act on the container's interfaces here, e.g.
        // the addresses of the interface it was asked about.
        let mine = prev
            .interfaces
            .iter()
            .position(|i| i.name == args.ifname && !i.sandbox.is_empty());
        eprintln!(
            "sample: anotherAwesomeArg={} container interface index {:?}",
            own.another_awesome_arg, mine
        );
        Ok(prev)
    }

    fn del(&self, args: &CmdArgs) -> Result<(), CniError> {
        // DEL must succeed even when ADD never ran or the netns is gone.
        Self::load(args).map(|_| ())
    }

    fn check(&self, args: &CmdArgs) -> Result<(), CniError> {
        let (conf, _) = Self::load(args)?;
        match conf.prev_result()? {
            Some(_) => Ok(()),
            None => Err(CniError::invalid_config(
                "sample: Required prevResult missing",
            )),
        }
    }
}

fn main() {
    std::process::exit(rcni_skel::run(&Sample));
}
