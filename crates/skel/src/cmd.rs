//! The verb and the per-call arguments a runtime passes in the environment.

use rcni_spec::config::PluginConf;
use rcni_spec::names;
use rcni_spec::CniError;
use std::fmt;

/// A CNI verb (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// Whether the verb is about one attachment (and so needs its ID and
    /// interface name).
    fn is_attachment_verb(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a plugin is called with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdArgs {
    pub container_id: String,
    /// `CNI_NETNS`; may be empty on DEL.
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` as given.
    pub args: String,
    /// `CNI_PATH` as given (colon-separated).
    pub path: String,
    /// `CNI_NETNS_OVERRIDE` set to 1/true: skip the check that the plugin
    /// does not run inside the container's own netns.
    pub netns_override: bool,
    pub stdin: Vec<u8>,
    /// The verb (`CNI_COMMAND`), when it is known.
    pub command: Option<Command>,
}

impl CmdArgs {
    /// Parses stdin as a plugin config. For a DEL, what cannot be decoded
    /// is left out with a warning (see [`PluginConf::parse_lenient`]): a
    /// DEL must tear down what it can find whatever the config's values.
    pub fn conf(&self) -> Result<PluginConf, CniError> {
        if self.is_del() {
            PluginConf::parse_lenient(&self.stdin)
        } else {
            PluginConf::parse(&self.stdin)
        }
    }

    /// Whether this call is a DEL, which validates only what it uses.
    pub fn is_del(&self) -> bool {
        self.command == Some(Command::Del)
    }

    /// The directories of `CNI_PATH`.
    pub fn path_dirs(&self) -> Vec<&str> {
        self.path.split(':').filter(|p| !p.is_empty()).collect()
    }
}

struct EnvVar {
    name: &'static str,
    required_for: &'static [Command],
}

const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "CNI_COMMAND",
        required_for: &[],
    },
    EnvVar {
        name: "CNI_CONTAINERID",
        required_for: &[Command::Add, Command::Check, Command::Del],
    },
    EnvVar {
        name: "CNI_NETNS",
        required_for: &[Command::Add, Command::Check],
    },
    EnvVar {
        name: "CNI_IFNAME",
        required_for: &[Command::Add, Command::Check, Command::Del],
    },
    EnvVar {
        name: "CNI_ARGS",
        required_for: &[],
    },
    EnvVar {
        name: "CNI_PATH",
        required_for: &[
            Command::Add,
            Command::Check,
            Command::Del,
            Command::Gc,
            Command::Status,
        ],
    },
];

/// Reads and validates the variables as the reference's skel does. The
/// command string is returned raw so the caller can report an unknown one.
pub fn from_env(getenv: &dyn Fn(&str) -> Option<String>) -> Result<(String, CmdArgs), CniError> {
    let get = |k: &str| getenv(k).unwrap_or_default();
    let raw_cmd = get("CNI_COMMAND");
    let cmd = Command::parse(&raw_cmd);
    let mut missing = Vec::new();
    for var in ENV_VARS {
        let value = get(var.name);
        let required =
            var.name == "CNI_COMMAND" || cmd.is_some_and(|c| var.required_for.contains(&c));
        if value.is_empty() {
            if required {
                missing.push(var.name);
            }
            continue;
        }
        if !required || !cmd.is_some_and(Command::is_attachment_verb) {
            continue;
        }
        match var.name {
            "CNI_CONTAINERID" => names::validate_container_id(&value)?,
            "CNI_IFNAME" => names::validate_interface_name(&value)?,
            _ => {}
        }
    }
    if !missing.is_empty() {
        return Err(CniError::invalid_env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )));
    }
    let over = get("CNI_NETNS_OVERRIDE");
    Ok((
        raw_cmd,
        CmdArgs {
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS"),
            path: get("CNI_PATH"),
            netns_override: over == "1" || over.eq_ignore_ascii_case("true"),
            stdin: Vec::new(),
            command: cmd,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn add_needs_everything() {
        let e = from_env(&env(&[("CNI_COMMAND", "ADD")])).unwrap_err();
        assert_eq!(e.code, 4);
        assert_eq!(
            e.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"
        );
    }

    #[test]
    fn del_does_not_need_netns() {
        let (cmd, args) = from_env(&env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]))
        .unwrap();
        assert_eq!(cmd, "DEL");
        assert!(args.netns.is_empty());
    }

    #[test]
    fn validates_ids_and_names() {
        let base = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_NETNS", "/x"),
            ("CNI_PATH", "/p"),
        ];
        let mut v = base.to_vec();
        v.extend([("CNI_CONTAINERID", "a/b"), ("CNI_IFNAME", "eth0")]);
        assert_eq!(
            from_env(&env(&v)).unwrap_err().msg,
            "invalid characters in containerID"
        );
        let mut v = base.to_vec();
        v.extend([("CNI_CONTAINERID", "ab"), ("CNI_IFNAME", "eth0:1")]);
        assert_eq!(from_env(&env(&v)).unwrap_err().code, 4);
    }

    #[test]
    fn gc_and_status_need_only_path() {
        assert!(from_env(&env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/p")])).is_ok());
        assert!(from_env(&env(&[("CNI_COMMAND", "STATUS")])).is_err());
        assert!(from_env(&env(&[("CNI_COMMAND", "VERSION")])).is_ok());
    }
}
