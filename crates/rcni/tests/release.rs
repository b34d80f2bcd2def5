//! The release artifact (`scripts/release.sh`): extracted as users extract
//! the reference's tarball into /opt/cni/bin (here a temp dir), it gives
//! every plugin under its name, checksums that verify, the licence, and
//! plugins that run from there.

// Tests panic on anything unexpected; that is their job.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn tarball_extracts_into_a_working_plugin_dir() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let built = Command::new(root.join("scripts/release.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_rcni"), "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let tgz = String::from_utf8(built.stdout).unwrap().trim().to_string();
    let file_name = Path::new(&tgz)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        file_name.starts_with(&format!("rcni-{}-linux-", env!("CARGO_PKG_VERSION")))
            && file_name.ends_with(".tgz"),
        "{file_name}"
    );
    sh(
        "sh",
        &[
            "-c",
            &format!(
                "cd {} && sha256sum -c {file_name}.sha256",
                out.path().display()
            ),
        ],
    );

    let bin = tempfile::tempdir().unwrap();
    sh("tar", &["-C", bin.path().to_str().unwrap(), "-xzf", &tgz]);
    let mode = std::fs::metadata(bin.path()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o755,
        "extraction changed the directory's mode"
    );
    sh(
        "sh",
        &[
            "-c",
            &format!("cd {} && sha256sum -c SHA256SUMS", bin.path().display()),
        ],
    );
    assert!(bin.path().join("LICENSE").is_file());
    let listed = sh(env!("CARGO_BIN_EXE_rcni"), &["list"]);
    for plugin in listed.lines() {
        let reply = Command::new(bin.path().join(plugin))
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&reply.stdout).unwrap_or_else(|e| panic!("{plugin}: {e}"));
        assert!(
            v["supportedVersions"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{plugin}: {v}"
        );
    }

    // A real call from the extracted directory: host-local ADD and DEL.
    let data = data_dir();
    let conf = json!({"cniVersion": "1.0.0", "name": "relnet", "type": "host-local",
        "ipam": {"type": "host-local", "subnet": "10.79.0.0/24", "dataDir": data.path()}});
    let call = |verb: &str| {
        let mut child = Command::new(bin.path().join("host-local"))
            .envs([
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", "rel1"),
                ("CNI_NETNS", "/nonexistent"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", bin.path().to_str().unwrap()),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            conf.to_string().as_bytes(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(call("ADD").contains("10.79.0.2/24"));
    assert_eq!(allocated_ips(data.path(), "relnet"), ["10.79.0.2"]);
    call("DEL");
    assert!(allocated_ips(data.path(), "relnet").is_empty());
}
