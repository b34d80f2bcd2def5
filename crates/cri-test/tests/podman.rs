//! Podman running a container on rcni: Debian's podman 4.3 with its CNI
//! network backend, whose networks chain bridge + portmap + firewall +
//! tuning.
//!
//! Podman runs inside a throwaway "host" network namespace and private
//! mount and PID namespaces (`/run` and `/var/lib` are temp dirs there, so
//! its netns files, runc's state, libcni's result cache and host-local's
//! addresses never reach the machine's own), with its own containers.conf
//! and storage.conf (vfs, cgroupfs, no events, file locks) in a temp dir:
//! its `cni_plugin_dirs` is only the plugin directory of the test and its
//! `network_config_dir` is private too. The image is busybox-static packed
//! here and imported; nothing is pulled.
//!
//! `podman network create` writes the conflist (checked: cniVersion 0.4.0,
//! the four plugins); `podman run -d -p` starts busybox's httpd; the page
//! is fetched through the host port from the host netns (to the gateway and
//! to 127.0.0.1) and from an outside namespace (to the host's address on
//! the link between them); `podman exec` pings the gateway. Then `podman
//! rm` must leave no veth, address file, cached result, netns file, DNAT
//! rule, rule naming the container or record of rcni's firewall, and
//! `podman network rm` no bridge.

mod common;

use common::{plugin_dir, read_dir_names, sh, Isolated, Netns};
use rcni_testkit::try_sh;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

const IMAGE: &str = "localhost/rcni-test/web:1";
const NETWORK: &str = "rcni-podman";
const SUBNET: &str = "10.90.7.0/24";
const GATEWAY: &str = "10.90.7.1";
const HOST_PORT: u16 = 18080;
const CONTAINER_PORT: u16 = 80;
/// The host's address on its link to the outside namespace, and the
/// outside's.
const HOST_ADDRESS: &str = "10.250.7.1";
const OUTSIDE_ADDRESS: &str = "10.250.7.2";
/// The host's end of that link (a veth, like the containers').
const OUTSIDE_LINK: &str = "rcni-out0";
/// The page the container serves.
const PAGE: &str = "served from a podman container\n";
/// The plugins of a network Podman creates, in its order.
const CHAIN: [&str; 4] = ["bridge", "portmap", "firewall", "tuning"];

/// A podman setup of our own, in its own namespaces; on drop it removes
/// what is left through podman (so that the plugins' DEL runs and runc's
/// cgroups go), then everything in its namespaces is killed.
struct Podman {
    /// PID 1 of the namespaces (a `sleep`): podman commands join it, and
    /// conmon and the containers end up as its children.
    holder: Isolated,
    dir: tempfile::TempDir,
    outside: Netns,
    host: Netns,
}

/// The running container as the test knows it.
struct Container {
    id: String,
    ip: String,
}

impl Podman {
    fn start(tag: &str, reference: Option<&Path>) -> Podman {
        let host = Netns::new(&format!("rcni-cri-{tag}-"));
        let outside = Netns::new(&format!("rcni-cri-{tag}-out-"));
        sh(
            "ip",
            &[
                "-n",
                &host.name,
                "link",
                "add",
                OUTSIDE_LINK,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &outside.name,
            ],
        );
        host.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{HOST_ADDRESS}/24"),
            "dev",
            OUTSIDE_LINK,
        ]);
        host.exec(&["ip", "link", "set", OUTSIDE_LINK, "up"]);
        outside.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{OUTSIDE_ADDRESS}/24"),
            "dev",
            "eth0",
        ]);
        outside.exec(&["ip", "link", "set", "eth0", "up"]);

        let dir = tempfile::Builder::new()
            .prefix("rcni-podman-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        for sub in ["netconf", "storage", "tmp", "image"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        let mut plugins = CHAIN.to_vec();
        plugins.extend(["host-local", "loopback"]);
        plugin_dir(&d.join("bin"), reference, &plugins);
        for plugin in &plugins {
            assert!(
                d.join("bin").join(plugin).exists(),
                "the plugin directory has no {plugin}"
            );
        }
        std::fs::write(d.join("containers.conf"), containers_conf(d)).expect("write conf");
        std::fs::write(d.join("storage.conf"), storage_conf(d)).expect("write conf");
        let holder = Isolated::start(&host, d, "sleep infinity", &d.join("holder.log"));
        Podman {
            holder,
            dir,
            outside,
            host,
        }
    }

    /// Runs podman in the namespaces with the private config; its stdout.
    fn podman(&self, args: &[&str]) -> String {
        self.podman_command(args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn podman_command(&self, args: &[&str]) -> Result<String, String> {
        let target = self.holder.pid.to_string();
        let d = self.dir.path().display();
        let conf = format!("CONTAINERS_CONF={d}/containers.conf");
        let storage = format!("CONTAINERS_STORAGE_CONF={d}/storage.conf");
        // Where `podman import` stages the tarball (else the machine's /var/tmp).
        let tmp = format!("TMPDIR={d}/tmp");
        let mut cmd = vec![
            "--target", &target, "--mount", "--net", "--pid", "--", "env", &conf, &storage, &tmp,
            "podman",
        ];
        cmd.extend_from_slice(args);
        try_sh("nsenter", &cmd)
    }

    /// Imports busybox-static with a page to serve as [`IMAGE`].
    fn import_image(&self) {
        let rootfs = self.dir.path().join("image/rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).expect("mkdir rootfs");
        std::fs::create_dir_all(rootfs.join("www")).expect("mkdir rootfs");
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
        std::fs::write(rootfs.join("www/index.html"), PAGE).expect("write page");
        let tarball = self.dir.path().join("image/rootfs.tar");
        let (rootfs, tarball) = (
            rootfs.to_str().expect("utf8"),
            tarball.to_str().expect("utf8"),
        );
        sh("tar", &["-C", rootfs, "-cf", tarball, "bin", "www"]);
        self.podman(&["import", "--quiet", tarball, IMAGE]);
    }

    /// `podman network create`, and the conflist it wrote.
    fn create_network(&self) -> Value {
        self.podman(&["network", "create", "--subnet", SUBNET, NETWORK]);
        let path = self.conflist_path();
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("conflist JSON")
    }

    fn conflist_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("netconf")
            .join(format!("{NETWORK}.conflist"))
    }

    /// busybox's httpd in a container on the network, published on the
    /// host port.
    fn run_web_server(&self) -> Container {
        let publish = format!("{HOST_PORT}:{CONTAINER_PORT}");
        let port = CONTAINER_PORT.to_string();
        let id = self
            .podman(&[
                "run",
                "-d",
                "--name",
                "web",
                "--network",
                NETWORK,
                "-p",
                &publish,
                IMAGE,
                "/bin/busybox",
                "httpd",
                "-f",
                "-p",
                &port,
                "-h",
                "/www",
            ])
            .trim()
            .to_string();
        let format = format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}");
        let ip = self
            .podman(&["inspect", "web", "--format", &format])
            .trim()
            .to_string();
        Container { id, ip }
    }

    /// What the host holds for the network and `container`.
    fn traces(&self, container: &Container) -> Vec<Trace> {
        let mut traces = Vec::new();
        let mut add = |kind, what: &str| {
            traces.push(Trace {
                kind,
                what: what.to_string(),
            })
        };
        let links = self.host.exec(&["ip", "-o", "link", "show"]);
        for line in links.lines() {
            if line.contains(OUTSIDE_LINK) || line.contains(": lo:") {
                continue;
            }
            let kind = if line.contains("master ") {
                Kind::Veth
            } else {
                Kind::Link
            };
            add(kind, line);
        }
        // Where podman and the plugins keep them, as seen from its mounts.
        let seen = |path: &str| read_dir_names(&self.holder.in_mounts(path));
        seen(&format!("/var/lib/cni/networks/{NETWORK}"))
            .iter()
            .filter(|n| *n != "lock" && *n != "rcni-index" && !n.starts_with("last_reserved_ip"))
            .for_each(|n| add(Kind::Address, n));
        seen("/var/lib/cni/results")
            .iter()
            .for_each(|n| add(Kind::Cached, n));
        seen("/run/netns").iter().for_each(|n| add(Kind::Netns, n));
        // rcni's state under /run/rcni (the firewall's attachment records):
        // files that name the container.
        let rcni_state = self.holder.in_mounts("/run/rcni");
        for name in read_dir_names(&rcni_state) {
            let path = rcni_state.join(&name);
            let files = if path.is_dir() {
                read_dir_names(&path).iter().map(|n| path.join(n)).collect()
            } else {
                vec![path]
            };
            files
                .iter()
                .filter(|f| {
                    std::fs::read_to_string(f).is_ok_and(|text| text.contains(&container.id))
                })
                .for_each(|f| add(Kind::Record, &f.display().to_string()));
        }
        let rules = format!(
            "{}\n{}",
            self.host.exec(&["iptables-save"]),
            self.host.exec(&["nft", "list", "ruleset"])
        );
        for line in rules.lines() {
            if line
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("dnat"))
            {
                add(Kind::Dnat, line);
            } else if line.contains(&container.id) || contains_address(line, &container.ip) {
                add(Kind::Rule, line);
            }
        }
        traces
    }

    /// The page through `addr` from the namespace at `netns`.
    fn fetch_from(&self, netns: &str, addr: &str) -> Option<String> {
        let addr: SocketAddr = format!("{addr}:{HOST_PORT}").parse().expect("address");
        rcni_net::NetNs::open(netns)
            .expect("open netns")
            .run(|| http_get(addr))
            .expect("enter netns")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // After a failure: through podman, so that the plugins' DEL runs and
        // runc's cgroups go; what is left dies with the namespaces.
        let _ = self.podman_command(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman_command(&["network", "rm", "--force", NETWORK]);
    }
}

/// Something the host holds (see [`Podman::traces`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A link enslaved to a bridge: a container's host end.
    Veth,
    /// Any other link but lo and the outside link: the bridge.
    Link,
    Address,
    Cached,
    Netns,
    /// A file of rcni's under /run/rcni naming the container.
    Record,
    Dnat,
    Rule,
}

#[derive(Debug)]
struct Trace {
    kind: Kind,
    what: String,
}

/// `line` names `ip` as a whole address (10.90.7.2 is not in 10.90.7.23).
fn contains_address(line: &str, ip: &str) -> bool {
    line.match_indices(ip).any(|(at, _)| {
        let next = line[at + ip.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_digit())
    })
}

/// An HTTP/1.0 GET of `/`: the whole answer, or None when it fails.
fn http_get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn containers_conf(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"[containers]
# Podman's default rlimits need CAP_SYS_RESOURCE, which a test sandbox may lack.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{d}/bin"]
network_config_dir = "{d}/netconf"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
runtime = "runc"
lock_type = "file"
image_copy_tmp_dir = "{d}/tmp"
"#
    )
}

fn storage_conf(d: &Path) -> String {
    let d = d.display();
    format!(
        r#"[storage]
driver = "vfs"
graphroot = "{d}/storage"
runroot = "{d}/run/storage"
"#
    )
}

/// The whole path, on the plugins in `reference` or (None) rcni's.
fn podman_end_to_end(tag: &str, reference: Option<&Path>) {
    let podman = Podman::start(tag, reference);
    podman.import_image();

    let conflist = podman.create_network();
    assert_eq!(conflist["cniVersion"], "0.4.0", "{conflist:#}");
    let types: Vec<&str> = conflist["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    assert_eq!(types, CHAIN, "{conflist:#}");

    let container = podman.run_web_server();
    assert!(
        container.ip.starts_with("10.90.7."),
        "container address {:?}",
        container.ip
    );
    let eth0 = podman.podman(&[
        "exec",
        "web",
        "/bin/busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        eth0.contains(&format!("inet {}/24", container.ip)),
        "eth0 in the container: {eth0}"
    );
    let host = podman.host.path();
    let outside = podman.outside.path();
    for (from, netns, addr) in [
        ("the host", &host, GATEWAY),
        ("the host", &host, "127.0.0.1"),
        ("outside", &outside, HOST_ADDRESS),
    ] {
        let answer = podman.fetch_from(netns, addr).unwrap_or_default();
        assert!(
            answer.starts_with("HTTP/1.") && answer.ends_with(PAGE),
            "GET http://{addr}:{HOST_PORT}/ from {from}: {answer:?}"
        );
    }
    let ping = podman.podman(&[
        "exec",
        "web",
        "/bin/busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        GATEWAY,
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");

    // What the checks after removal look for is there while it runs.
    let traces = podman.traces(&container);
    let mut expected = vec![
        (Kind::Veth, "veth"),
        (Kind::Link, "cni-podman"),
        (Kind::Address, container.ip.as_str()),
        (Kind::Cached, container.id.as_str()),
        (Kind::Netns, "netns-"),
        (Kind::Dnat, container.ip.as_str()),
        (Kind::Rule, container.ip.as_str()),
    ];
    if reference.is_none() {
        // rcni's firewall records the attachment (the reference keeps none).
        expected.push((Kind::Record, "firewall"));
    }
    for (kind, holding) in expected {
        assert!(
            traces
                .iter()
                .any(|t| t.kind == kind && t.what.contains(holding)),
            "no {kind:?} holding {holding} while the container runs: {traces:#?}"
        );
    }

    podman.podman(&["rm", "--force", "--time", "0", "web"]);
    let left: Vec<Trace> = podman
        .traces(&container)
        .into_iter()
        .filter(|t| t.kind != Kind::Link)
        .collect();
    assert!(left.is_empty(), "left after podman rm: {left:#?}");

    podman.podman(&["network", "rm", NETWORK]);
    let left = podman.traces(&container);
    assert!(left.is_empty(), "left after podman network rm: {left:#?}");
    assert!(
        !podman.conflist_path().exists(),
        "the conflist is left after podman network rm"
    );
}

#[test]
fn podman_on_rcni() {
    podman_end_to_end("podman", None);
}

/// The harness itself, against the reference plugins: a failure here is
/// the harness's or the machine's, not rcni's.
#[test]
fn podman_on_reference_plugins() {
    podman_end_to_end("podman-ref", Some(Path::new("/usr/lib/cni")));
}
