//! The integration-test harness: runs the built `rcni` binary exactly as a
//! runtime does (env + stdin), as root, inside throwaway network
//! namespaces, with data in temp dirs. Nothing here touches the machine's
//! own interfaces, routes or firewall.

#![allow(dead_code)]

pub mod mutate;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The spec versions the main cases run across.
pub const VERSIONS: &[&str] = &["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Where the reference plugins (Debian's containernetworking-plugins) live.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique short name for this test process.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id() % 100000)
}

/// Runs a command and returns its output; panics with its stderr on
/// failure.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made with `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = unique(prefix);
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs a command inside the namespace; panics on failure.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        sh("ip", &args)
    }

    /// Runs a command inside the namespace and says whether it succeeded.
    pub fn try_exec(&self, cmd: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// `ip -j <args>` inside the namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-n", &self.name, "-j"];
        full.extend_from_slice(args);
        let out = sh("ip", &full);
        if out.trim().is_empty() {
            return Value::Array(Vec::new());
        }
        serde_json::from_str(&out).expect("ip -j output")
    }

    /// Names of the links in the namespace.
    pub fn links(&self) -> Vec<String> {
        self.ip_json(&["link", "show"])
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["ifname"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `addr/prefix` strings on `dev` (all families, all scopes).
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                out.push(format!(
                    "{}/{}",
                    a["local"].as_str().unwrap_or(""),
                    a["prefixlen"]
                ));
            }
        }
        out
    }

    /// Routes as `ip route` prints them, one string each, both families.
    pub fn routes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for fam in ["-4", "-6"] {
            let text = sh(
                "ip",
                &["-n", &self.name, fam, "route", "show", "table", "all"],
            );
            out.extend(text.lines().map(|l| l.trim().to_string()));
        }
        out
    }

    /// Everything a plugin could leave behind, for before/after comparison:
    /// links (name and kind), addresses and routes (IPv6 link-local and
    /// kernel multicast/local noise excluded).
    pub fn snapshot(&self) -> Vec<String> {
        // One dump of every link with its addresses.
        let mut s = Vec::new();
        for link in self
            .ip_json(&["addr", "show"])
            .as_array()
            .into_iter()
            .flatten()
        {
            let l = link["ifname"].as_str().unwrap_or("").to_string();
            for a in link["addr_info"].as_array().into_iter().flatten() {
                let a = format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]);
                if !a.starts_with("fe80:") {
                    s.push(format!("addr {l} {a}"));
                }
            }
            s.push(l);
        }
        s.extend(
            self.routes()
                .into_iter()
                .filter(|r| {
                    !r.starts_with("fe80::")
                        && !r.starts_with("multicast")
                        && !r.contains("fe80::/64")
                })
                .filter(|r| !r.starts_with("local fe80") && !r.starts_with("anycast fe80"))
                .map(|r| format!("route {r}")),
        );
        s.sort();
        s
    }

    /// Every iptables table of both families and the nftables ruleset, one
    /// rule per line, without counters and generation comments.
    pub fn firewall(&self) -> std::collections::BTreeSet<String> {
        let mut lines = std::collections::BTreeSet::new();
        for (tool, tag) in [
            ("iptables-save", "v4 "),
            ("ip6tables-save", "v6 "),
            ("nft", "nft "),
        ] {
            let args: &[&str] = if tool == "nft" {
                &["nft", "list", "ruleset"]
            } else {
                &[tool]
            };
            let mut full = vec!["ip", "netns", "exec", &self.name];
            full.extend_from_slice(args);
            let text = sh(full[0], &full[1..]);
            // nft keeps its blocks apart only by indentation; prefix each line
            // with its table and chain so that equal lines of two chains differ.
            let mut table = String::new();
            let mut chain = String::new();
            for line in text.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let word = |n: usize| line.split(' ').nth(n).unwrap_or("").to_string();
                if line == "COMMIT" {
                    chain.clear();
                } else if line.starts_with("table ") || line.starts_with('*') {
                    table = line.to_string();
                    chain.clear();
                } else if line.starts_with("chain ") || line.starts_with("-A ") {
                    chain = word(1);
                } else if let Some(decl) = line.strip_prefix(':') {
                    chain = decl.split(' ').next().unwrap_or("").to_string();
                }
                let line = if line.starts_with(':') {
                    // `:CHAIN POLICY [packets:bytes]`
                    line.split(' ').take(2).collect::<Vec<_>>().join(" ")
                } else {
                    without_counters(line)
                };
                lines.insert(format!("{tag}{table} {chain} | {line}"));
            }
        }
        lines
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A directory with the rcni plugins installed: one symlink per plugin
/// name to the built binary (no copy: a test process must not leave 40 MB
/// behind in /tmp), made once per test process.
pub fn rcni_bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rcni-test-bin-{}", std::process::id()));
        let binary = Path::new(env!("CARGO_BIN_EXE_rcni"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the plugin dir");
        let names = sh(binary.to_str().expect("utf8"), &["list"]);
        for name in names.lines().chain(["rcni"]) {
            std::os::unix::fs::symlink(binary, dir.join(name)).expect("link a plugin");
        }
        dir
    })
}

/// True when the reference plugins are installed.
pub fn have_reference() -> bool {
    Path::new(REFERENCE_DIR).join("host-local").exists()
}

/// One plugin call as a runtime makes it.
#[derive(Clone)]
pub struct Call {
    pub plugin_dir: PathBuf,
    pub plugin: String,
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub cni_args: String,
    pub cni_path: String,
    pub host: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

/// What a plugin printed and how it exited.
pub struct Reply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} stderr {:?}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the parsed stdout (or Null when empty).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts failure with the error JSON and returns (code, msg).
    pub fn err(&self) -> (u64, String) {
        assert_ne!(self.code, 0, "expected failure, got {}", self.stdout);
        let v = self.json();
        let code = v["code"].as_u64().expect("error code");
        let msg = format!(
            "{} {}",
            v["msg"].as_str().unwrap_or(""),
            v["details"].as_str().unwrap_or("")
        );
        (code, msg)
    }
}

impl Call {
    /// A call of rcni's `plugin`, from inside `host`.
    pub fn rcni(plugin: &str, command: &str, host: &Netns, container: Option<&Netns>) -> Call {
        let dir = rcni_bin_dir().to_path_buf();
        Call {
            plugin_dir: dir.clone(),
            plugin: plugin.into(),
            command: command.into(),
            container_id: "ctr1".into(),
            netns: container.map(|c| c.path()).unwrap_or_default(),
            ifname: "eth0".into(),
            cni_args: String::new(),
            cni_path: dir.to_string_lossy().into_owned(),
            host: Some(host.name.clone()),
            extra_env: Vec::new(),
        }
    }

    /// The same call made with the reference binaries.
    pub fn reference(mut self) -> Call {
        self.plugin_dir = PathBuf::from(REFERENCE_DIR);
        self.cni_path = REFERENCE_DIR.into();
        self
    }

    pub fn command(mut self, c: &str) -> Call {
        self.command = c.into();
        self
    }

    pub fn id(mut self, id: &str) -> Call {
        self.container_id = id.into();
        self
    }

    pub fn ifname(mut self, n: &str) -> Call {
        self.ifname = n.into();
        self
    }

    pub fn args(mut self, a: &str) -> Call {
        self.cni_args = a.into();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Call {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    /// The process, ready to be spawned.
    pub fn process(&self) -> Command {
        let bin = self.plugin_dir.join(&self.plugin);
        let mut cmd = match &self.host {
            Some(h) => {
                // By absolute path: a test may give the plugin a PATH
                // without the usual tools.
                let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
                    .into_iter()
                    .find(|p| Path::new(p).exists())
                    .unwrap_or("ip");
                let mut c = Command::new(ip);
                c.args(["netns", "exec", h]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.cni_args)
            .env("CNI_PATH", &self.cni_path);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The process run by `wrapper` (a program and its arguments, e.g. a
    /// tracer), with the plugin's environment.
    pub fn wrapped(&self, wrapper: &[&str]) -> Command {
        let inner = self.process();
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(inner.get_program())
            .args(inner.get_args());
        cmd.env_clear();
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs the plugin under `strace -f -e trace=execve` and returns its
    /// reply and the programs it (and its children) executed.
    pub fn run_traced(&self, conf: &Value) -> (Reply, Vec<String>) {
        let trace = tempfile::NamedTempFile::new().expect("trace file");
        let trace_path = trace.path().to_str().expect("utf8");
        let mut cmd = self.wrapped(&[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=execve",
            "-o",
            trace_path,
        ]);
        let mut child = cmd.spawn().expect("spawn strace");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(conf.to_string().as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        let programs = std::fs::read_to_string(trace.path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("execve(\"") && !l.contains("ENOENT"))
            .filter_map(|l| {
                l.split('"')
                    .nth(1)
                    .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            })
            .collect();
        let reply = Reply {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (reply, programs)
    }

    /// Runs the plugin with `conf` on stdin.
    pub fn run(&self, conf: &Value) -> Reply {
        self.run_raw(conf.to_string().as_bytes())
    }

    pub fn run_raw(&self, stdin: &[u8]) -> Reply {
        let mut child = self.process().spawn().expect("spawn plugin");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        let out: Output = child.wait_with_output().expect("wait plugin");
        Reply {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `call` with `stdin`, killing it with SIGKILL after `kill_after`
/// (then None: a plugin crashed at that point); panics if it has not
/// answered within `limit`.
pub fn run_or_kill(
    call: &Call,
    stdin: &[u8],
    kill_after: Option<std::time::Duration>,
    limit: std::time::Duration,
) -> Option<Reply> {
    let mut child = call.process().spawn().expect("spawn plugin");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    // The plugin may exit before reading: ignore a broken pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait plugin").is_some() {
            break;
        }
        let elapsed = start.elapsed();
        if kill_after.is_some_and(|k| elapsed >= k) || elapsed > limit {
            // `ip netns exec` execs the plugin, so this is the plugin itself.
            let _ = child.kill();
            let _ = child.wait();
            let _ = writer.join();
            assert!(
                elapsed <= limit,
                "{} {} did not answer within {limit:?}",
                call.plugin,
                call.command
            );
            return None;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("wait plugin");
    Some(Reply {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// A temp data dir for host-local, removed on drop.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rcni-data-")
        .tempdir()
        .expect("tempdir")
}

/// Files in `<dir>/<net>` (sorted), excluding the lock and last_reserved
/// files, i.e. the allocated IPs.
pub fn allocated_ips(dir: &Path, net: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join(net))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Sets a value at a JSON pointer-ish path of object keys.
pub fn with(mut conf: Value, key: &str, value: Value) -> Value {
    conf[key] = value;
    conf
}

/// Runs `f` on a thread inside the namespace `ns` (for sockets).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&file),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
}

/// A TCP and a UDP server in `ns` on `port` that answer every client with
/// `reply`, for `secs` seconds.
pub fn serve(ns: &Netns, port: u16, reply: &'static str, secs: u64) {
    use std::io::Write;
    let tcp = std::sync::Arc::new(std::sync::Barrier::new(2));
    let ready = tcp.clone();
    in_netns(&ns.name, move || {
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).expect("bind tcp");
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind udp");
        udp.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .ok();
        listener.set_nonblocking(true).ok();
        ready.wait();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut buf = [0u8; 64];
        while std::time::Instant::now() < end {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.write_all(reply.as_bytes());
            }
            if let Ok((_, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(reply.as_bytes(), from);
            }
        }
    });
    tcp.wait();
}

/// Connects over TCP from inside `ns` and returns what the server said.
pub fn tcp_get(ns: &Netns, addr: &str) -> Option<String> {
    use std::io::Read;
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    in_netns(&ns.name, move || {
        let mut s =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .ok();
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .join()
    .ok()
    .flatten()
}

/// Sends a UDP datagram from inside `ns` and returns the answer.
pub fn udp_get(ns: &Netns, addr: &str) -> Option<String> {
    udp_get_from(ns, 0, addr)
}

/// As [`udp_get`], from a fixed source port (0: any).
pub fn udp_get_from(ns: &Netns, src_port: u16, addr: &str) -> Option<String> {
    let addr: std::net::SocketAddr = addr.parse().expect("address");
    in_netns(&ns.name, move || {
        let local: std::net::IpAddr = if addr.is_ipv4() {
            [0u8; 4].into()
        } else {
            [0u16; 8].into()
        };
        let s = std::net::UdpSocket::bind((local, src_port)).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_millis(400)))
            .ok();
        let mut buf = [0u8; 64];
        for _ in 0..6 {
            s.send_to(b"ping", addr).ok()?;
            if let Ok((n, _)) = s.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    })
    .join()
    .ok()
    .flatten()
}

/// An "outside" namespace behind `host`: a veth `up0` (host, 203.0.113.1)
/// to `down0` (outside, 203.0.113.2). The outside has no route to any
/// container subnet, so only masqueraded traffic gets answers.
pub fn outside_of(host: &Netns) -> Netns {
    let outside = Netns::new("out");
    host.exec(&[
        "ip",
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "down0",
        "netns",
        &outside.name,
    ]);
    host.exec(&["ip", "addr", "add", "203.0.113.1/24", "dev", "up0"]);
    host.exec(&["ip", "link", "set", "up0", "up"]);
    outside.exec(&["ip", "addr", "add", "203.0.113.2/24", "dev", "down0"]);
    outside.exec(&["ip", "link", "set", "down0", "up"]);
    outside
}

/// A veth pair `name` ↔ `name`p in `ns`, both up: a master for macvlan,
/// ipvlan and vlan tests whose traffic stays in the namespace.
pub fn veth_master(ns: &Netns, name: &str) {
    let peer = format!("{name}p");
    ns.exec(&[
        "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
    ]);
    ns.exec(&["ip", "link", "set", name, "up"]);
    ns.exec(&["ip", "link", "set", &peer, "up"]);
}

/// `ip -d -j link show dev <dev>` in `ns`: the link with its kind
/// (`linkinfo.info_kind`) and kind data (`linkinfo.info_data`).
pub fn link_details(ns: &Netns, dev: &str) -> Value {
    ns.ip_json(&["-d", "link", "show", "dev", dev])[0].clone()
}

/// Only `lo` is left in the namespace.
pub fn assert_only_lo(ns: &Netns) {
    assert_eq!(ns.links(), ["lo"], "links left in {}", ns.name);
}

/// Interop tests need Debian's reference plugins; they never skip.
pub fn require_reference() {
    assert!(
        have_reference(),
        "the reference plugins are not installed at {REFERENCE_DIR}"
    );
}

/// ADD and DEL calls of `plugin` for an interop round: one made by the
/// reference, the other by rcni.
pub fn interop_pair(plugin: &str, host: &Netns, ctr: &Netns, reference_adds: bool) -> (Call, Call) {
    let add = Call::rcni(plugin, "ADD", host, Some(ctr));
    let del = Call::rcni(plugin, "DEL", host, Some(ctr));
    if reference_adds {
        (add.reference(), del)
    } else {
        (add, del.reference())
    }
}

/// `line` without nft's `counter packets N bytes M` values.
fn without_counters(line: &str) -> String {
    let mut out = Vec::new();
    let mut words = line.split(' ');
    while let Some(w) = words.next() {
        if w == "packets" || w == "bytes" {
            words.next();
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}
