//! cnitool: runs a network config (from `NETCONFPATH`) against a network
//! namespace, compatible with the reference's cnitool.

use rcni_runtime::{conf, Cni, GcAttachment, NetworkList, RuntimeConf, RuntimeError};
use rcni_spec::result::to_pretty_json;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_NET_DIR: &str = "/etc/cni/net.d";

const USAGE: &str = "\
cnitool: run a CNI network config against a network namespace

usage:
  cnitool add    <network> <netns-path> [-i IFNAME]   attach; prints the result
  cnitool check  <network> <netns-path> [-i IFNAME]   verify an attachment
  cnitool del    <network> <netns-path> [-i IFNAME]   detach
  cnitool gc     <network> [<netns-path>] [--valid CONTAINERID/IFNAME]...
                                                     delete cached attachments not
                                                     listed as valid (all without --valid),
                                                     then send GC to the plugins
  cnitool status <network>                            ask the plugins whether they can serve ADD
  cnitool version <plugin>                            the spec versions a plugin supports
  cnitool list                                        the networks in NETCONFPATH
  cnitool <command> --help

environment:
  NETCONFPATH   config directory (default /etc/cni/net.d)
  CNI_PATH      plugin directories, colon-separated
  CNI_IFNAME    interface name (default eth0; -i/--ifname wins)
  CNI_ARGS      KEY=VALUE;... passed to the plugins
  CAP_ARGS      JSON object of capability arguments (portMappings, ...)
  CNI_CACHE_DIR result cache directory (default /var/lib/cni)
  CNI_TIMEOUT   seconds after which a plugin is killed (default: none)

The container ID is cnitool- followed by the hex of the first 10 bytes of
the SHA-512 of the absolute netns path, as in the reference's cnitool.
Exit status: 0 on success, 1 when a plugin or the config fails, 2 on
usage errors.";

fn help_for(command: &str) -> String {
    USAGE
        .lines()
        .filter(|l| {
            l.contains(&format!("cnitool {command}"))
                || l.starts_with("environment")
                || l.starts_with("  NETCONF")
                || l.starts_with("  CNI_")
                || l.starts_with("  CAP_")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A usage error (exit 2) or a failure (exit 1).
enum Failure {
    Usage(String),
    Failed(String),
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Failure {
        Failure::Failed(format!("{e} (code {})", e.code()))
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_default()
}

/// `filepath.Abs`: made absolute against the working directory and
/// cleaned lexically, without resolving symlinks.
fn absolute(path: &str) -> PathBuf {
    let joined = std::env::current_dir().unwrap_or_default().join(path);
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    out
}

/// The reference's container ID for a netns path.
pub fn container_id(netns: &Path) -> String {
    let digest = Sha512::digest(netns.to_string_lossy().as_bytes());
    // The first 10 bytes, as 20 hex digits.
    format!("cnitool-{digest:.20x}")
}

/// `CNI_ARGS` for cnitool: every pair `k=v` with both sides non-empty.
fn parse_cni_args(raw: &str) -> Result<Vec<(String, String)>, Failure> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(';')
        .map(|pair| {
            let kv: Vec<&str> = pair.split('=').collect();
            match kv.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Failure::Usage(format!("invalid CNI_ARGS pair {pair:?}"))),
            }
        })
        .collect()
}

fn cni() -> Result<Cni, Failure> {
    let dirs = env("CNI_PATH")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    let mut cni = Cni::new(dirs);
    if let Ok(dir) = std::env::var("CNI_CACHE_DIR") {
        if !dir.is_empty() {
            cni.cache_dir = PathBuf::from(dir);
        }
    }
    if let Ok(secs) = std::env::var("CNI_TIMEOUT") {
        let secs: f64 = secs
            .parse()
            .map_err(|_| Failure::Usage(format!("CNI_TIMEOUT: not a number: {secs:?}")))?;
        cni.timeout = Some(Duration::from_secs_f64(secs));
    }
    Ok(cni)
}

fn net_dir() -> PathBuf {
    let dir = env("NETCONFPATH");
    PathBuf::from(if dir.is_empty() {
        DEFAULT_NET_DIR
    } else {
        dir.as_str()
    })
}

fn load(network: &str) -> Result<NetworkList, Failure> {
    Ok(conf::load(&net_dir(), network)?)
}

/// Parsed command line of one subcommand.
struct Args {
    positional: Vec<String>,
    ifname: Option<String>,
    valid: Vec<GcAttachment>,
}

fn parse(args: &[String]) -> Result<Args, Failure> {
    let mut out = Args {
        positional: Vec::new(),
        ifname: None,
        valid: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-i" | "--ifname" => {
                out.ifname = Some(
                    it.next()
                        .ok_or_else(|| Failure::Usage(format!("{a} needs a value")))?
                        .clone(),
                )
            }
            "--valid" => {
                let v = it
                    .next()
                    .ok_or_else(|| Failure::Usage("--valid needs CONTAINERID/IFNAME".into()))?;
                let (id, ifname) = v.split_once('/').ok_or_else(|| {
                    Failure::Usage(format!("--valid {v}: expected CONTAINERID/IFNAME"))
                })?;
                out.valid.push(GcAttachment {
                    container_id: id.into(),
                    ifname: ifname.into(),
                });
            }
            s if s.starts_with("--ifname=") => {
                out.ifname = Some(s["--ifname=".len()..].to_string())
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(Failure::Usage(format!("unknown option {s}")))
            }
            s => out.positional.push(s.to_string()),
        }
    }
    Ok(out)
}

fn runtime_conf(args: &Args) -> Result<RuntimeConf, Failure> {
    let netns = absolute(&args.positional[1]);
    let capability_args: Map<String, Value> = match env("CAP_ARGS").as_str() {
        "" => Map::new(),
        raw => serde_json::from_str(raw)
            .map_err(|e| Failure::Usage(format!("CAP_ARGS is not a JSON object: {e}")))?,
    };
    let ifname = args
        .ifname
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| match env("CNI_IFNAME") {
            s if s.is_empty() => "eth0".to_string(),
            s => s,
        });
    Ok(RuntimeConf {
        container_id: container_id(&netns),
        netns: netns.to_string_lossy().into_owned(),
        ifname,
        args: parse_cni_args(&env("CNI_ARGS"))?,
        capability_args,
    })
}

fn need(args: &Args, n: usize, what: &str) -> Result<(), Failure> {
    if args.positional.len() < n {
        return Err(Failure::Usage(format!("missing arguments: {what}")));
    }
    Ok(())
}

fn run(argv: &[String]) -> Result<(), Failure> {
    let Some(command) = argv.first() else {
        return Err(Failure::Usage("no command given".into()));
    };
    if matches!(command.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return Ok(());
    }
    if argv.iter().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("{}", help_for(command));
        return Ok(());
    }
    let args = parse(&argv[1..])?;
    match command.as_str() {
        "add" | "check" | "del" => {
            need(&args, 2, "<network> <netns-path>")?;
            let list = load(&args.positional[0])?;
            let rt = runtime_conf(&args)?;
            let cni = cni()?;
            match command.as_str() {
                "add" => println!("{}", to_pretty_json(&cni.add_network_list(&list, &rt)?)),
                "check" => cni.check_network_list(&list, &rt)?,
                _ => cni.del_network_list(&list, &rt)?,
            }
        }
        "gc" => {
            need(&args, 1, "<network>")?;
            let list = load(&args.positional[0])?;
            let valid = (!args.valid.is_empty()).then_some(args.valid.as_slice());
            cni()?.gc_network_list(&list, valid)?;
        }
        "status" => {
            need(&args, 1, "<network>")?;
            cni()?.status_network_list(&load(&args.positional[0])?)?;
        }
        "version" => {
            need(&args, 1, "<plugin>")?;
            let info = cni()?.version_info(&args.positional[0])?;
            println!("{}", to_pretty_json(&info));
        }
        "list" => {
            for (list, path) in conf::list(&net_dir())? {
                let types: Vec<&str> = list
                    .plugins
                    .iter()
                    .map(|p| p.plugin_type.as_str())
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    list.name,
                    list.cni_version,
                    types.join(","),
                    path.display()
                );
            }
        }
        other => return Err(Failure::Usage(format!("unknown command {other:?}"))),
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("cnitool: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("cnitool: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_matches_the_reference_derivation() {
        // "cnitool-" + hex(sha512("/var/run/netns/test")[:10]), computed
        // independently.
        assert_eq!(
            container_id(Path::new("/var/run/netns/test")),
            "cnitool-7b8a61d5d8e94d07cbe4"
        );
    }

    #[test]
    fn absolute_paths_are_cleaned() {
        assert_eq!(
            absolute("/run/netns/../netns/x"),
            PathBuf::from("/run/netns/x")
        );
        assert!(absolute("rel").is_absolute());
    }

    #[test]
    fn cni_args_are_strict() {
        assert_eq!(parse_cni_args("A=1;B=2").ok().map(|v| v.len()), Some(2));
        assert!(parse_cni_args("A=").is_err());
        assert!(parse_cni_args("A=1=2").is_err());
    }
}
