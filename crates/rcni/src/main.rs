//! The multi-call binary: `rcni` dispatches on the name it was run as
//! (`/opt/cni/bin/ptp` → the ptp plugin) or on its first argument
//! (`rcni ptp`). `rcni install DIR` lays the plugin names down as links.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
rcni: the CNI plugin suite in one binary

usage:
  <plugin>                  when installed under a plugin's name (see `install`)
  rcni <plugin>             run a plugin as a runtime would (CNI_* env, stdin)
  rcni install DIR [--copy] [--force]
                            put a link (or, with --copy, a copy) named after
                            every plugin into DIR, e.g. /opt/cni/bin
  rcni list                 print the plugin names
  rcni --version | --help";

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(plugin) = rcni_plugins::lookup(&invoked_as) {
        return exit(rcni_skel::run(plugin));
    }
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args.first().map(String::as_str) {
        Some("install") => install(&args[1..]),
        Some("list") => {
            for p in rcni_plugins::all() {
                println!("{}", p.name());
            }
            ExitCode::SUCCESS
        }
        Some("--version" | "-V" | "version") => {
            println!("rcni {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h" | "help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(name) => match rcni_plugins::lookup(name) {
            Some(plugin) => exit(rcni_skel::run(plugin)),
            None => {
                eprintln!(
                    "rcni: unknown plugin or command {name:?}; `rcni list` shows the plugins"
                );
                ExitCode::from(2)
            }
        },
    }
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn install(args: &[String]) -> ExitCode {
    let copy = args.iter().any(|a| a == "--copy");
    let force = args.iter().any(|a| a == "--force");
    let dirs: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [dir] = dirs.as_slice() else {
        eprintln!("usage: rcni install DIR [--copy] [--force]");
        return ExitCode::from(2);
    };
    match install_into(Path::new(dir.as_str()), copy, force) {
        Ok(n) => {
            println!("installed {n} plugins into {dir}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rcni install: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Puts the binary into `dir` as `rcni`, then one symlink per plugin
/// pointing at it (or one copy each with `copy`).
fn install_into(dir: &Path, copy: bool, force: bool) -> std::io::Result<usize> {
    let me = std::env::current_exe()?;
    std::fs::create_dir_all(dir)?;
    let target: PathBuf = dir.join("rcni");
    if std::fs::canonicalize(&me)? != std::fs::canonicalize(&target).unwrap_or_default() {
        replace_with(&target, |tmp| std::fs::copy(&me, tmp).map(|_| ()))?;
    }
    let mut count = 0;
    for plugin in rcni_plugins::all() {
        let path = dir.join(plugin.name());
        if path.symlink_metadata().is_ok() && !force {
            let points_here = std::fs::read_link(&path)
                .map(|t| t == Path::new("rcni"))
                .unwrap_or(false);
            if !points_here {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists (use --force to replace it)", path.display()),
                ));
            }
        }
        if copy {
            replace_with(&path, |tmp| std::fs::copy(&target, tmp).map(|_| ()))?;
        } else {
            replace_with(&path, |tmp| std::os::unix::fs::symlink("rcni", tmp))?;
        }
        count += 1;
    }
    Ok(count)
}

/// Creates `path` atomically: build it under a temporary name, then rename
/// over the old one, so a runtime never sees a half-written plugin.
fn replace_with(
    path: &Path,
    make: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("rcni-tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    make(&tmp)?;
    std::fs::rename(&tmp, path)
}
