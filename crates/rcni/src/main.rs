//! The multi-call binary: `rcni` dispatches on the name it was run as
//! (`/opt/cni/bin/ptp` → the ptp plugin) or on its first argument
//! (`rcni ptp`). `rcni install DIR` lays the plugin names down as links
//! (and, for the node installer image, copies and a network config);
//! `rcni pause` keeps that image's pod running.
#![no_main]

mod check_config;
mod help;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

const USAGE: &str = "\
rcni: the CNI plugin suite in one binary

usage:
  <plugin>                  when installed under a plugin's name (see `install`)
  rcni <plugin>             run a plugin as a runtime would (CNI_* env, stdin)
  rcni dhcp daemon [flags]  the dhcp plugin's daemon (also `dhcp daemon` when
                            installed as dhcp); `rcni dhcp daemon -h` lists the flags
  rcni install DIR [--copy] [--force] [--conflist FILE --net-dir NETDIR]
                            put a link (or, with --copy, a copy) named after
                            every plugin into DIR, e.g. /opt/cni/bin; each
                            file appears under its name only when complete.
                            With --conflist, also check FILE and put it
                            into NETDIR (e.g. /etc/cni/net.d) the same way
  rcni list                 print the plugin names
  rcni help PLUGIN          the plugin's keys (type, default, meaning) and an example
  rcni check-config FILE|DIR
                            check network configs offline as a runtime loads
                            them: keys and types, likely typos, capabilities,
                            versions, overlapping subnets (exit 1 on errors)
  rcni pause                sleep until killed (the installer pod's container)
  rcni --version | --help";

/// The process's entry point, called by the C library in place of std's
/// (which `no_main` leaves out): a plugin's start-up is the runtime's wait
/// for every exec, and std's reads `/proc/self/maps` and sets up a signal
/// stack, about 50 µs; `prepare_process` does what of it rcni needs.
/// `process::exit` flushes stdout, as returning from std's `main` does.
// SAFETY: `no_main` leaves no other `main` symbol; the C library calls
// this one as `int main(int, char **)`, the signature below. std needs no
// set-up of its own for what rcni uses: on glibc it reads the arguments
// through `.init_array`, and creates the rest (stdout, the main thread's
// handle) when first used.
#[allow(unsafe_code)]
#[no_mangle]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    rcni_net::prepare_process();
    std::process::exit(i32::from(run()))
}

/// What the process does, as its exit status.
fn run() -> u8 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let invoked_as = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // `dhcp daemon ...` (installed as dhcp) and `rcni dhcp daemon ...`.
    let daemon_args = match (invoked_as.as_str(), args.as_slice()) {
        ("dhcp", [cmd, rest @ ..]) if cmd == "daemon" => Some(rest),
        (_, [dhcp, cmd, rest @ ..]) if dhcp == "dhcp" && cmd == "daemon" => Some(rest),
        _ => None,
    };
    if let Some(rest) = daemon_args {
        return status(rcni_dhcp::daemon::main(rest));
    }
    if let Some(plugin) = rcni_plugins::lookup(&invoked_as) {
        return status(rcni_skel::run(plugin));
    }
    match args.first().map(String::as_str) {
        Some("install") => install(&args[1..]),
        Some("check-config") => check_config::run(&args[1..]),
        Some("help") if args.len() == 2 => help::run(&args[1]),
        Some("pause") => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        Some("list") => {
            for p in rcni_plugins::all() {
                println!("{}", p.name());
            }
            0
        }
        Some("--version" | "-V" | "version") => {
            println!("rcni {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("--help" | "-h" | "help") | None => {
            println!("{USAGE}");
            0
        }
        Some(name) => match rcni_plugins::lookup(name) {
            Some(plugin) => status(rcni_skel::run(plugin)),
            None => {
                eprintln!(
                    "rcni: unknown plugin or command {name:?}; `rcni list` shows the plugins"
                );
                2
            }
        },
    }
}

/// A plugin's or the daemon's status, as an exit status.
fn status(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(1)
}

fn install(args: &[String]) -> u8 {
    let usage = || {
        eprintln!("usage: rcni install DIR [--copy] [--force] [--conflist FILE --net-dir NETDIR]");
        2
    };
    let (mut copy, mut force) = (false, false);
    let (mut dirs, mut conflist, mut net_dir) = (Vec::new(), None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--copy" => copy = true,
            "--force" => force = true,
            "--conflist" => conflist = rest.next(),
            "--net-dir" => net_dir = rest.next(),
            flag if flag.starts_with("--") => return usage(),
            dir => dirs.push(dir),
        }
    }
    let ([dir], true) = (dirs.as_slice(), conflist.is_some() == net_dir.is_some()) else {
        return usage();
    };
    let result = install_into(Path::new(dir), copy, force).and_then(|n| {
        println!("installed {n} plugins into {dir}");
        match (conflist, net_dir) {
            (Some(file), Some(net_dir)) => install_conflist(Path::new(file), Path::new(net_dir)),
            _ => Ok(()),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rcni install: {e}");
            1
        }
    }
}

/// Checks a network config list as a runtime would load it, then puts it
/// into `net_dir` under its own file name.
fn install_conflist(file: &Path, net_dir: &Path) -> std::io::Result<()> {
    let invalid = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidData, msg);
    let bytes = std::fs::read(file)?;
    rcni_spec::config::NetConfList::parse(&bytes)
        .map_err(|e| invalid(format!("{}: {}", file.display(), e.msg)))?;
    let name = file
        .file_name()
        .ok_or_else(|| invalid(format!("{}: no file name", file.display())))?;
    std::fs::create_dir_all(net_dir)?;
    let target = net_dir.join(name);
    replace_with(&target, |tmp| std::fs::write(tmp, &bytes))?;
    println!("installed {}", target.display());
    Ok(())
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

/// Creates `path` atomically: build it under a temporary name, flush it
/// to disk, then rename over the old one, so a runtime never sees (or,
/// after a crash, finds) a half-written plugin or config under its name.
fn replace_with(
    path: &Path,
    make: impl FnOnce(&Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("rcni-tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    make(&tmp)?;
    if !tmp.is_symlink() {
        std::fs::File::open(&tmp)?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
