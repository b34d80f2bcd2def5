//! rcni-bench: measures rcni and the reference plugins (Debian's
//! containernetworking-plugins in /usr/lib/cni) in the same run, on the
//! same machine, and writes docs/performance.md with ratios and a plot.
//! Run it through scripts/bench.sh, which builds the release binaries and
//! runs this inside a throwaway "host" network namespace.

mod cluster;
mod floor;
mod measure;
mod report;

use std::path::PathBuf;

pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Command-line settings.
pub struct Settings {
    pub rcni_binary: PathBuf,
    pub pods: usize,
    pub version_runs: usize,
    pub out: PathBuf,
    /// The flannel cluster scenario: nodes, and pods per node.
    pub cluster: (usize, usize),
    /// Only these parts (`--only`); all when empty.
    pub only: Vec<String>,
}

/// The parts of the suite, as `--only` names them.
pub const PARTS: [&str; 8] = [
    "version",
    "memory",
    "ptp",
    "bridge",
    "floor",
    "podman",
    "cluster",
    "host-local",
];

impl Settings {
    /// Whether the run includes `part`.
    pub fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        rcni_binary: PathBuf::from("target/release/rcni"),
        pods: 1000,
        version_runs: 200,
        out: PathBuf::from("docs/performance.md"),
        cluster: (8, 25),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => {
                s.pods = 12;
                s.version_runs = 20;
                s.cluster = (2, 3);
            }
            "--pods" => {
                s.pods = value("--pods")?
                    .parse()
                    .map_err(|e| format!("--pods: {e}"))?
            }
            "--rcni" => s.rcni_binary = PathBuf::from(value("--rcni")?),
            "--only" => {
                for part in value("--only")?.split(',') {
                    if !PARTS.contains(&part) {
                        return Err(format!("--only: {part:?} is none of {}", PARTS.join(",")));
                    }
                    s.only.push(part.to_string());
                }
            }
            "--out" => s.out = PathBuf::from(value("--out")?),
            "-h" | "--help" => {
                println!(
                    "usage: rcni-bench [--quick] [--pods N] [--only PART,...] [--rcni PATH] [--out FILE]\n\
                     parts: {} (--only writes a partial page)",
                    PARTS.join(",")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(s)
}

fn main() {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rcni-bench: {e}");
            std::process::exit(2);
        }
    };
    let start = std::time::Instant::now();
    match measure::run_all(&settings) {
        Ok(results) => {
            if let Err(e) = report::write(&settings, &results, start.elapsed()) {
                eprintln!("rcni-bench: writing the report: {e}");
                std::process::exit(1);
            }
            println!("wrote {}", settings.out.display());
        }
        Err(e) => {
            eprintln!("rcni-bench: {e}");
            std::process::exit(1);
        }
    }
}
