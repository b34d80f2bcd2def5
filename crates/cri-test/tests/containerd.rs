//! containerd's CRI plugin running pods on rcni: the path kubelet takes.
//!
//! Each test starts its own containerd (Debian's 1.6, with runc) inside a
//! throwaway "host" network namespace and private mount and PID namespaces,
//! with its own config, root, state dir and socket in a temp dir. `/run` and
//! `/var/lib` are temp dirs in its mount namespace, so its shim sockets, the
//! pods' netns mounts, runc's state and libcni's result cache never reach the
//! machine's own. Its CNI `bin_dir` holds rcni's plugin links and `conf_dir`
//! a bridge + portmap conflist. The sandbox image is busybox-static packed
//! here as a docker archive and imported with `ctr`; nothing is pulled.
//!
//! A pod is run through the CRI API with a port mapping; the test checks
//! eth0 and its address in the pod's netns, connects through the host port
//! (to the bridge's address and to 127.0.0.1 in the host netns) to a
//! listener it opens inside the pod's netns, then stops the pod twice and
//! removes it, as kubelet does, and checks that no veth, no host-local
//! address, no DNAT or masquerade rule and no result cache file is left.

mod common;

use common::{read_dir_names, sh, Isolated, Netns, TIMEOUT};
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, PortMapping, Protocol,
    RemovePodSandboxRequest, RunPodSandboxRequest, StatusRequest, StopPodSandboxRequest,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const SANDBOX_IMAGE: &str = "rcni.test/pause:1";
const NETWORK: &str = "rcni-cri";
const SUBNET: &str = "10.89.0.0/24";
const GATEWAY: &str = "10.89.0.1";
const CONTAINER_PORT: u16 = 80;
const FIRST_HOST_PORT: u16 = 18080;

/// The docker archive of the sandbox image: busybox-static sleeping.
fn write_sandbox_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("mkdir rootfs");
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    let layer = dir.join("layer.tar");
    sh(
        "tar",
        &[
            "-C",
            rootfs.to_str().expect("utf8"),
            "-cf",
            layer.to_str().expect("utf8"),
            "bin",
        ],
    );
    let diff_id = Sha256::digest(std::fs::read(&layer).expect("read layer"));
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/busybox", "sleep", "31536000"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id:x}")]},
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write config");
    let manifest =
        json!([{"Config": "config.json", "RepoTags": [SANDBOX_IMAGE], "Layers": ["layer.tar"]}]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("write manifest");
    let archive = dir.join("pause.tar");
    sh(
        "tar",
        &[
            "-C",
            dir.to_str().expect("utf8"),
            "-cf",
            archive.to_str().expect("utf8"),
            "manifest.json",
            "config.json",
            "layer.tar",
        ],
    );
    archive
}

/// bridge (gateway, ipMasq, host-local) + portmap, both on `backend`.
fn conflist(backend: &str, ipam_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
             "ipMasqBackend": backend,
             "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": ipam_dir,
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": true}, "backend": backend},
        ],
    })
}

/// containerd 1.6's config: everything under `dir`, no network, no
/// cgroup driver of systemd.
fn containerd_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/bin"
    conf_dir = "{d}/conf"
    max_conf_num = 1
"#
    )
}

/// A containerd of our own; killed (with everything in its PID namespace:
/// shims and pods) on drop.
struct Containerd {
    /// Dropped first: killed before its directory goes.
    process: Isolated,
    dir: tempfile::TempDir,
    host: Netns,
}

impl Containerd {
    fn start(tag: &str, backend: &str, plugin_dir: Option<&Path>) -> Containerd {
        let host = Netns::new(&format!("rcni-cri-{tag}-"));
        let dir = tempfile::Builder::new()
            .prefix("rcni-cri-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        for sub in ["conf", "ipam", "image"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        common::plugin_dir(
            &d.join("bin"),
            plugin_dir,
            &["bridge", "host-local", "portmap", "loopback"],
        );
        std::fs::write(
            d.join("conf/10-rcni.conflist"),
            conflist(backend, &d.join("ipam")).to_string(),
        )
        .expect("write conflist");
        std::fs::write(d.join("config.toml"), containerd_config(d)).expect("write config");
        let process = Isolated::start(
            &host,
            d,
            &format!("containerd --config {}/config.toml", d.display()),
            &d.join("containerd.log"),
        );
        Containerd { process, dir, host }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn import_sandbox_image(&self) {
        let archive = write_sandbox_image(&self.dir.path().join("image"));
        sh(
            "ctr",
            &[
                "--address",
                self.socket().to_str().expect("utf8"),
                "--namespace",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "native",
                archive.to_str().expect("utf8"),
            ],
        );
    }

    /// Connects to the CRI service once containerd answers and says its
    /// runtime and network are ready.
    async fn client(&self) -> RuntimeServiceClient<Channel> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(client) = self.try_client().await {
                return client;
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI service is not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_client(&self) -> Option<RuntimeServiceClient<Channel>> {
        let socket = self.socket();
        let channel = tonic::transport::Endpoint::from_static("http://[::]:0")
            .connect_timeout(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
            .await
            .ok()?;
        let mut client = RuntimeServiceClient::new(channel);
        let status = client.status(StatusRequest { verbose: false }).await.ok()?;
        let conditions = status.into_inner().status?.conditions;
        let ready = |kind: &str| conditions.iter().any(|c| c.r#type == kind && c.status);
        (ready("RuntimeReady") && ready("NetworkReady")).then_some(client)
    }

    /// What the host holds for the network: each veth, each address in
    /// host-local's store, each cached result, each DNAT rule, and each rule
    /// naming one of `pods` (by sandbox ID or address).
    fn traces(&self, pods: &[Pod]) -> Vec<Trace> {
        let mut traces = Vec::new();
        let mut add = |kind, what: &str| {
            traces.push(Trace {
                kind,
                what: what.to_string(),
            })
        };
        let veths = self
            .host
            .exec(&["ip", "-o", "link", "show", "type", "veth"]);
        veths.lines().for_each(|l| add(Kind::Veth, l));
        read_dir_names(&self.dir.path().join("ipam").join(NETWORK))
            .iter()
            .filter(|n| *n != "lock" && *n != "rcni-index" && !n.starts_with("last_reserved_ip"))
            .for_each(|n| add(Kind::Address, n));
        read_dir_names(&self.dir.path().join("varlib/cni/results"))
            .iter()
            .for_each(|n| add(Kind::Cached, n));
        let rules = format!(
            "{}\n{}",
            self.host.exec(&["iptables-save"]),
            self.host.exec(&["nft", "list", "ruleset"])
        );
        for line in rules.lines() {
            // `-j DNAT` or nft's `dnat ... to`; chain names do not count.
            if line
                .split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("dnat"))
            {
                add(Kind::Dnat, line);
            } else if pods
                .iter()
                .any(|p| line.contains(&p.id) || line.contains(&p.ip))
            {
                add(Kind::PodRule, line);
            }
        }
        traces
    }

    /// While `pod` runs, the host holds its veth, its address, its cached
    /// result, a DNAT rule to it and its masquerade rule: what
    /// [`Self::traces`] must see, so that its finding nothing later means
    /// something.
    fn assert_pod_traced(&self, pod: &Pod) {
        let traces = self.traces(std::slice::from_ref(pod));
        for (kind, holding) in [
            (Kind::Veth, "veth"),
            (Kind::Address, pod.ip.as_str()),
            (Kind::Cached, pod.id.as_str()),
            (Kind::Dnat, pod.ip.as_str()),
            (Kind::PodRule, pod.id.as_str()),
        ] {
            assert!(
                traces.iter().any(|t| t.is(kind, holding)),
                "{}: no {kind:?} holding {holding}: {traces:#?}",
                pod.name
            );
        }
    }

    fn assert_nothing_left(&self, pods: &[Pod]) {
        let traces = self.traces(pods);
        assert!(
            traces.is_empty(),
            "left after RemovePodSandbox: {traces:#?}"
        );
    }
}

/// Something the host holds for a pod (see [`Containerd::traces`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Veth,
    Address,
    Cached,
    Dnat,
    PodRule,
}

#[derive(Debug)]
struct Trace {
    kind: Kind,
    what: String,
}

impl Trace {
    fn is(&self, kind: Kind, holding: &str) -> bool {
        self.kind == kind && self.what.contains(holding)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(keep) = std::env::var_os("RCNI_CRI_LOG") {
            let _ = std::fs::copy(self.dir.path().join("containerd.log"), keep);
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("containerd's log, last lines:");
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
    }
}

/// A running pod as the test knows it.
struct Pod {
    name: String,
    id: String,
    ip: String,
    host_port: u16,
    /// Its netns, as a path in containerd's mount namespace.
    netns: String,
}

fn sandbox_config(name: &str, host_port: u16, log_dir: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: format!("uid-{name}"),
            namespace: "rcni-test".to_string(),
            attempt: 0,
        }),
        hostname: name.to_string(),
        log_directory: log_dir.display().to_string(),
        port_mappings: vec![PortMapping {
            protocol: Protocol::Tcp as i32,
            container_port: CONTAINER_PORT.into(),
            host_port: host_port.into(),
            host_ip: String::new(),
        }],
        ..Default::default()
    }
}

async fn run_pod(
    mut client: RuntimeServiceClient<Channel>,
    name: String,
    host_port: u16,
    log_dir: PathBuf,
) -> Pod {
    let id = client
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config(&name, host_port, &log_dir)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"))
        .into_inner()
        .pod_sandbox_id;
    let status = client
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap_or_else(|e| panic!("PodSandboxStatus {name}: {e}"))
        .into_inner();
    let ip = status
        .status
        .and_then(|s| s.network)
        .map(|n| n.ip)
        .unwrap_or_default();
    let info: Value =
        serde_json::from_str(status.info.get("info").expect("verbose info")).expect("info JSON");
    let netns = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
        .unwrap_or_else(|| panic!("no netns path in {info}"))
        .to_string();
    Pod {
        name,
        id,
        ip,
        host_port,
        netns,
    }
}

async fn stop_and_remove(mut client: RuntimeServiceClient<Channel>, pod_sandbox_id: String) {
    // kubelet stops a sandbox more than once before removing it.
    for _ in 0..2 {
        client
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod_sandbox_id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("StopPodSandbox {pod_sandbox_id}: {e}"));
    }
    client
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("RemovePodSandbox {pod_sandbox_id}: {e}"));
}

/// The pod has lo up and eth0 with its address in the bridge's subnet, and TCP to
/// its host port, from the host netns to the bridge's address and to
/// 127.0.0.1, reaches a listener on port 80 inside the pod.
fn assert_pod_reachable(containerd: &Containerd, pod: &Pod) {
    assert!(
        pod.ip.starts_with("10.89.0."),
        "{}: pod IP {:?}",
        pod.name,
        pod.ip
    );
    let netns = containerd.process.in_mounts(&pod.netns);
    let in_pod = |args: &[&str]| {
        let net = format!("--net={}", netns.display());
        sh("nsenter", &[&[net.as_str(), "ip", "-o"], args].concat())
    };
    let addrs = in_pod(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addrs.contains(&format!("inet {}/24", pod.ip)),
        "{}: eth0 has {addrs}",
        pod.name
    );
    // containerd's own loopback network, also run by rcni.
    let lo = in_pod(&["link", "show", "dev", "lo"]);
    assert!(lo.contains(",UP"), "{}: lo is down: {lo}", pod.name);
    let pod_ns = rcni_net::NetNs::open(&netns).expect("open pod netns");
    let listener = pod_ns
        .run(|| TcpListener::bind(("0.0.0.0", CONTAINER_PORT)))
        .expect("enter pod netns")
        .expect("listen in the pod");
    let reply = pod.name.clone();
    let server = std::thread::spawn(move || serve(listener, &reply, 2));
    let host_ns = rcni_net::NetNs::open(containerd.host.path()).expect("host netns");
    for target in [GATEWAY, "127.0.0.1"] {
        let addr: SocketAddr = format!("{target}:{}", pod.host_port).parse().expect("addr");
        let answer = host_ns.run(|| fetch(addr)).expect("enter host netns");
        assert_eq!(
            answer.as_deref(),
            Some(pod.name.as_str()),
            "{}: TCP to {addr} from the host netns",
            pod.name
        );
    }
    server.join().expect("server thread");
    containerd.assert_pod_traced(pod);
}

/// Answers `count` connections with `reply`, giving up after the timeout.
fn serve(listener: TcpListener, reply: &str, count: usize) {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + TIMEOUT;
    let mut served = 0;
    while served < count && Instant::now() < deadline {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.write_all(reply.as_bytes());
                served += 1;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn fetch(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Runs `work` to its end, or panics after the timeout.
fn within<T>(runtime: &tokio::runtime::Runtime, what: &str, work: impl Future<Output = T>) -> T {
    runtime
        .block_on(async { tokio::time::timeout(TIMEOUT, work).await })
        .unwrap_or_else(|_| panic!("{what} took longer than {TIMEOUT:?}"))
}

/// Five pods one after the other, then five at once, on `backend`.
fn pods_through_containerd(tag: &str, backend: &str, plugin_dir: Option<&Path>) {
    let containerd = Containerd::start(tag, backend, plugin_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = runtime.block_on(containerd.client());
    containerd.import_sandbox_image();
    let log_dir = containerd.dir.path().join("logs");

    for i in 0..5u16 {
        let name = format!("seq{i}");
        let pod = within(
            &runtime,
            "RunPodSandbox",
            run_pod(client.clone(), name, FIRST_HOST_PORT + i, log_dir.clone()),
        );
        assert_pod_reachable(&containerd, &pod);
        within(
            &runtime,
            "stopping and removing",
            stop_and_remove(client.clone(), pod.id.clone()),
        );
        containerd.assert_nothing_left(std::slice::from_ref(&pod));
    }

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5u16 {
        let name = format!("par{i}");
        let host_port = FIRST_HOST_PORT + 10 + i;
        tasks.spawn_on(
            run_pod(client.clone(), name, host_port, log_dir.clone()),
            runtime.handle(),
        );
    }
    let pods = within(&runtime, "RunPodSandbox of five pods", tasks.join_all());
    for pod in &pods {
        assert_pod_reachable(&containerd, pod);
    }
    let mut ips: Vec<&str> = pods.iter().map(|p| p.ip.as_str()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), pods.len(), "pods share an address: {ips:?}");
    let mut tasks = tokio::task::JoinSet::new();
    for pod in &pods {
        tasks.spawn_on(
            stop_and_remove(client.clone(), pod.id.clone()),
            runtime.handle(),
        );
    }
    within(
        &runtime,
        "stopping and removing five pods",
        tasks.join_all(),
    );
    containerd.assert_nothing_left(&pods);
}

#[test]
fn containerd_pods_on_iptables() {
    pods_through_containerd("ipt", "iptables", None);
}

#[test]
fn containerd_pods_on_nftables() {
    pods_through_containerd("nft", "nftables", None);
}

/// The harness itself, against the reference plugins (which accept
/// containerd's Go-cased port mappings): a failure here is the harness's
/// or the machine's, not rcni's.
#[test]
fn containerd_pods_on_reference_plugins() {
    pods_through_containerd("ref", "iptables", Some(Path::new("/usr/lib/cni")));
}
