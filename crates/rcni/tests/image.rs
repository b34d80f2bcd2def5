//! The node installer image (`Containerfile`, `scripts/image.sh`): built
//! locally with podman (FROM scratch, nothing pulled) from the static
//! release binary, run with the host's plugin and config directories
//! bind-mounted from temp dirs, as the DaemonSet in `deploy/` runs it.
//! podman keeps its storage in temp dirs too, never the machine's.
//! Needs `target/release/rcni` (`scripts/build-release.sh`, which
//! `scripts/test.sh` runs first).

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn release_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/rcni");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/build-release.sh first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// podman with all of its state in `dir`.
fn podman(dir: &Path) -> String {
    format!(
        "podman --root {0}/root --runroot {0}/run --storage-driver vfs \
         --cgroup-manager cgroupfs --events-backend none",
        dir.display()
    )
}

#[test]
fn installer_image_copies_the_plugins_and_the_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let state = tempfile::tempdir().unwrap();
    let podman = podman(state.path());
    let built = Command::new(root.join("scripts/image.sh"))
        .arg("localhost/rcni-test:1")
        .env("PODMAN", &podman)
        .env("RCNI_BINARY", release_binary())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let (bin, net, config) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let conflist =
        r#"{"cniVersion": "1.0.0", "name": "podnet", "plugins": [{"type": "loopback"}]}"#;
    std::fs::write(config.path().join("10-rcni.conflist"), conflist).unwrap();
    std::fs::write(config.path().join("bad.conflist"), r#"{"plugins": []}"#).unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = format!(
            // This sandbox lacks CAP_SYS_RESOURCE: podman's default limits
            // would be raised over the current ones and refused.
            "{podman} run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
             -v {}:/host/opt/cni/bin -v {}:/host/etc/cni/net.d -v {}:/config:ro localhost/rcni-test:1",
            bin.path().display(),
            net.path().display(),
            config.path().display()
        );
        for a in extra {
            cmd.push(' ');
            cmd.push_str(a);
        }
        Command::new("sh")
            .args(["-c", &cmd])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // A config that would not load is refused before anything is written.
    let refused = run(&[
        "--conflist",
        "/config/bad.conflist",
        "--net-dir",
        "/host/etc/cni/net.d",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("bad.conflist"));
    assert!(std::fs::read_dir(net.path()).unwrap().next().is_none());

    let out = run(&[
        "--conflist",
        "/config/10-rcni.conflist",
        "--net-dir",
        "/host/etc/cni/net.d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(net.path().join("10-rcni.conflist")).unwrap(),
        conflist
    );
    let listed = sh(env!("CARGO_BIN_EXE_rcni"), &["list"]);
    let mut names: Vec<String> = std::fs::read_dir(bin.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = listed.lines().map(String::from).collect();
    want.push("rcni".into());
    want.sort();
    assert_eq!(names, want, "no temporary file may be left");
    for plugin in listed.lines() {
        let path = bin.path().join(plugin);
        assert!(
            !path.is_symlink(),
            "{plugin}: a copy, not a link into the image"
        );
        let reply = Command::new(&path)
            .env("CNI_COMMAND", "VERSION")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&reply.stdout).contains("supportedVersions"),
            "{plugin}"
        );
    }
    // Run again over the installed files (a restarted pod): still fine.
    assert!(run(&[]).status.success());
    let _ = Command::new("sh")
        .args(["-c", &format!("{podman} rmi -f localhost/rcni-test:1")])
        .output();
}
