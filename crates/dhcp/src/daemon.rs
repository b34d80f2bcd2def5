//! `dhcp daemon`: serves the plugin's requests on a unix socket, keeps one
//! maintenance thread per lease, persists leases and resumes them after a
//! restart.

use crate::client::{Client4, Identity, Timing};
use crate::lease::{self, Lease4};
use crate::maintain::{self, Control, Family};
use crate::protocol::{self, Failure, IpFamily, Method, Request, Response};
use crate::store::{self, FamilyLease, Record};
use rcni_dhcp6::{Client6, Lease6, Timing6};
use rcni_net::NetNs;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const USAGE: &str = "\
usage: dhcp daemon [flags]   (or: rcni dhcp daemon [flags])
  -pidfile PATH        write the daemon's PID to PATH
  -hostprefix DIR      prefix of the host's root: applied to the socket path and netns paths
  -socketpath PATH     the socket to listen on (default /run/cni/dhcp.sock); with systemd
                       socket activation, the socket systemd passes is used instead
  -broadcast           ask servers to broadcast their answers (BOOTP broadcast flag)
  -timeout DURATION    longest wait for an answer to one message (default 10s)
  -resendmax DURATION  longest delay between retransmissions (default 62s)
  -resendtimeout DURATION
                       bound of a whole acquisition, DHCPv4 or DHCPv6 (default 3m28s)
  -statedir DIR        where leases are persisted (default /var/lib/cni/dhcp)
Durations as Go writes them: 500ms, 10s, 1m30s, 2h.";

/// The daemon's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub pidfile: Option<PathBuf>,
    pub hostprefix: String,
    pub socketpath: String,
    pub broadcast: bool,
    pub timing: Timing,
    pub statedir: PathBuf,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            pidfile: None,
            hostprefix: String::new(),
            socketpath: protocol::DEFAULT_SOCKET.into(),
            broadcast: false,
            timing: Timing {
                timeout: Duration::from_secs(10),
                resend_max: Duration::from_secs(62),
                resend_timeout: Duration::from_secs(208),
            },
            statedir: store::DEFAULT_DIR.into(),
        }
    }
}

/// A Go duration: a sequence of decimal numbers, each with a unit (`ns`,
/// `us`, `µs`, `ms`, `s`, `m`, `h`), or a bare `0`. In integer
/// nanoseconds: floating point parsing would cost the binary its tables.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let (whole, tail) = rest.split_at(digits_end(rest));
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(t) => t.split_at(digits_end(t)),
            None => ("", tail),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        nanos = nanos.checked_add(whole.checked_mul(scale)?)?;
        let mut digit_scale = scale;
        for d in fraction.bytes() {
            digit_scale /= 10;
            nanos += u128::from(d - b'0') * digit_scale;
        }
        rest = tail;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    (!text.is_empty()).then(|| Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Parses the flags as Go's `flag` package does: `-flag value`,
/// `-flag=value`, one or two dashes, bare booleans.
pub fn parse_flags(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if name == "broadcast" {
            o.broadcast = match inline.as_deref() {
                None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => true,
                Some("false" | "0" | "f" | "F" | "FALSE" | "False") => false,
                Some(v) => return Err(format!("invalid boolean value {v:?} for -broadcast")),
            };
            continue;
        }
        if matches!(name, "h" | "help") {
            return Err(String::new());
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        let duration = || {
            parse_go_duration(&value)
                .ok_or_else(|| format!("invalid value {value:?} for flag -{name}: parse error"))
        };
        match name {
            "pidfile" => o.pidfile = Some(value.into()),
            "hostprefix" => o.hostprefix = value,
            "socketpath" if !value.is_empty() => o.socketpath = value,
            "socketpath" => {}
            "timeout" => o.timing.timeout = duration()?,
            "resendmax" => o.timing.resend_max = duration()?,
            "resendtimeout" => o.timing.resend_timeout = duration()?,
            "statedir" => o.statedir = value.into(),
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    Ok(o)
}

/// `dhcp daemon ARGS`: runs until killed; the exit code on failure.
pub fn main(args: &[String]) -> i32 {
    let opts = match parse_flags(args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("dhcp daemon: {e}");
            }
            eprintln!("{USAGE}");
            return 2;
        }
    };
    match serve(opts) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dhcp daemon: {e}");
            1
        }
    }
}

fn serve(opts: Options) -> Result<(), String> {
    let listener = listen(&opts)?;
    if let Some(pidfile) = &opts.pidfile {
        std::fs::write(pidfile, format!("{}\n", std::process::id()))
            .map_err(|e| format!("write {}: {e}", pidfile.display()))?;
    }
    let daemon = Arc::new(Daemon {
        opts,
        leases: Mutex::new(HashMap::new()),
        acquiring: Mutex::default(),
    });
    daemon.resume_all();
    eprintln!("dhcp daemon: listening");
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let daemon = Arc::clone(&daemon);
                std::thread::spawn(move || daemon.serve_connection(stream));
            }
            Err(e) => eprintln!("dhcp daemon: accept: {e}"),
        }
    }
    Ok(())
}

/// The socket systemd passed, or a new one at the socket path (a stale
/// file nobody listens on is replaced; a live daemon is not).
fn listen(opts: &Options) -> Result<UnixListener, String> {
    if let Some(fd) = rcni_net::take_activation_socket() {
        return Ok(UnixListener::from(fd));
    }
    let path = PathBuf::from(format!("{}{}", opts.hostprefix, opts.socketpath));
    if UnixStream::connect(&path).is_ok() {
        return Err(format!("a daemon already listens on {}", path.display()));
    }
    if path.symlink_metadata().is_ok() {
        std::fs::remove_file(&path).map_err(|e| format!("remove {}: {e}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(&path).map_err(|e| format!("listen on {}: {e}", path.display()))?;
    // Whoever can connect can make the daemon act in any netns: root only.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    Ok(listener)
}

/// A lease being maintained.
struct Maintained {
    /// As granted; the thread keeps the renewed one (same address, same
    /// options) and the record on disk up to date.
    record: Record,
    control: Sender<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A lease's key: the client id `containerID/network/ifname` and the
/// family.
type Key = (String, IpFamily);

struct Daemon {
    opts: Options,
    leases: Mutex<HashMap<Key, Arc<Maintained>>>,
    /// Client ids whose lease is being acquired.
    acquiring: Mutex<HashSet<String>>,
}

fn failure(code: u32, msg: impl Into<String>) -> Response {
    Response {
        result: None,
        error: Some(Failure {
            code,
            msg: msg.into(),
        }),
    }
}

fn success(result: Option<serde_json::Value>) -> Response {
    Response {
        result,
        error: None,
    }
}

const CNI_INTERNAL: u32 = 999;
const CNI_INVALID_CONFIG: u32 = 7;
const CNI_TRY_AGAIN_LATER: u32 = 11;

impl Daemon {
    fn serve_connection(&self, mut stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let line = match protocol::read_line(&stream) {
            Ok(line) => line,
            Err(e) => return eprintln!("dhcp daemon: read a request: {e}"),
        };
        // The reference's plugin opens with Go net/rpc's HTTP CONNECT.
        if line.starts_with(b"CONNECT ") || line.starts_with(b"GET ") || line.starts_with(b"POST ")
        {
            let _ = stream.write_all(
                b"HTTP/1.0 501 This is rcni's dhcp daemon: it does not speak Go net/rpc; use rcni's dhcp plugin\n\n",
            );
            return;
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(request) => self.handle(&request),
            Err(e) => failure(CNI_INVALID_CONFIG, format!("bad request: {e}")),
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        let _ = stream.write_all(&out);
    }

    fn handle(&self, req: &Request) -> Response {
        match req.method {
            Method::Status => success(None),
            Method::Allocate => self.allocate(req),
            Method::Check => self.check(req),
            Method::Release => {
                self.release(&req.client_id());
                success(None)
            }
            Method::Gc => {
                self.gc(&req.network, &req.valid_attachments);
                success(None)
            }
        }
    }

    /// Releases the leases of `network` whose attachment is not valid.
    fn gc(&self, network: &str, valid: &[(String, String)]) {
        let stale: Vec<Key> = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, m)| {
                let r = &m.record;
                r.network == network
                    && !valid
                        .iter()
                        .any(|(cid, ifname)| *cid == r.container_id && *ifname == r.ifname)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.release_one(&key);
        }
    }

    /// The result of the attachment's leases of every family asked for,
    /// or an error naming the first that is not held.
    fn check(&self, req: &Request) -> Response {
        let client_id = req.client_id();
        let mut records = Vec::new();
        for family in req.families() {
            match self.lookup(&(client_id.clone(), family)) {
                Some(m) => records.push(m.record.clone()),
                None => {
                    let what = match family {
                        IpFamily::Ipv4 => "DHCP",
                        IpFamily::Ipv6 => "DHCPv6",
                    };
                    return failure(CNI_INTERNAL, format!("no {what} lease for {client_id}"));
                }
            }
        }
        success(Some(result_of(&records)))
    }

    fn lock_acquiring(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.acquiring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lease still maintained under `key`; one whose maintenance
    /// ended (expired, link gone) is forgotten here.
    fn lookup(&self, key: &Key) -> Option<Arc<Maintained>> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let m = leases.get(key)?;
        let ended = m
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(JoinHandle::is_finished);
        if ended {
            leases.remove(key);
            return None;
        }
        Some(Arc::clone(m))
    }

    /// Leases every family asked for (those held already are kept), the
    /// families in parallel; if one fails, the leases this call acquired
    /// are released and the call fails.
    fn allocate(&self, req: &Request) -> Response {
        let client_id = req.client_id();
        let families = req.families();
        let missing: Vec<IpFamily> = families
            .iter()
            .copied()
            .filter(|f| self.lookup(&(client_id.clone(), *f)).is_none())
            .collect();
        if missing.is_empty() {
            return self.result_of_held(&client_id, &families);
        }
        if !req.netns.starts_with('/') {
            return failure(CNI_INVALID_CONFIG, "the netns path must be absolute");
        }
        let netns = PathBuf::from(format!("{}{}", self.opts.hostprefix, req.netns));
        // One handle per family: each upkeep thread keeps its own.
        let namespaces = match missing
            .iter()
            .map(|_| NetNs::open(&netns))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(ns) => ns,
            Err(e) => return failure(CNI_INTERNAL, e.to_string()),
        };
        let identity = Identity {
            client_id: client_id.clone(),
            request: req.request.clone(),
            provide: req.provide.clone(),
            broadcast: self.opts.broadcast,
        };
        let draft = Record {
            container_id: req.container_id.clone(),
            network: req.network.clone(),
            ifname: req.ifname.clone(),
            netns,
            identity,
            priority: req.priority,
            lease: placeholder_lease(IpFamily::Ipv4),
        };
        if !self.lock_acquiring().insert(client_id.clone()) {
            return failure(
                CNI_TRY_AGAIN_LATER,
                format!("{client_id}: a lease is being acquired already"),
            );
        }
        let names: Vec<String> = missing.iter().map(IpFamily::to_string).collect();
        eprintln!(
            "dhcp: {client_id}: acquiring a lease ({})",
            names.join(", ")
        );
        let outcomes: Vec<(IpFamily, Result<Record, String>)> = std::thread::scope(|scope| {
            let running: Vec<_> = missing
                .iter()
                .zip(namespaces)
                .map(|(&family, ns)| {
                    let record = Record {
                        lease: placeholder_lease(family),
                        ..draft.clone()
                    };
                    (family, scope.spawn(move || self.start(ns, record, false)))
                })
                .collect();
            running
                .into_iter()
                .map(|(family, t)| {
                    let outcome = t
                        .join()
                        .unwrap_or_else(|_| Err("the DHCP client failed".into()));
                    (family, outcome)
                })
                .collect()
        });
        self.lock_acquiring().remove(&client_id);
        if let Some((family, Err(e))) = outcomes.iter().find(|(_, o)| o.is_err()) {
            // No orphan: what this call got goes back.
            for (acquired, _) in outcomes.iter().filter(|(_, o)| o.is_ok()) {
                self.release_one(&(client_id.clone(), *acquired));
            }
            return failure(CNI_INTERNAL, format!("{client_id}: {family}: {e}"));
        }
        self.result_of_held(&client_id, &families)
    }

    /// The result of the leases of `families` held for `client_id`.
    fn result_of_held(&self, client_id: &str, families: &[IpFamily]) -> Response {
        let records: Vec<Record> = families
            .iter()
            .filter_map(|f| self.lookup(&(client_id.to_string(), *f)))
            .map(|m| m.record.clone())
            .collect();
        success(Some(result_of(&records)))
    }

    /// Starts the upkeep thread of `record` inside `ns`: with a new
    /// lease of the record's family (`resumed` false: acquire first), or
    /// the persisted one. Returns once the lease is held and saved.
    fn start(&self, ns: NetNs, record: Record, resumed: bool) -> Result<Record, String> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Record, String>>();
        let (control_tx, control_rx) = mpsc::channel();
        let timing = self.opts.timing;
        let family = record.lease.family();
        let path = store::path_for(&self.opts.statedir, &record.identity.client_id, family);
        let thread = std::thread::spawn(move || {
            // The thread lives in the container's netns, and holding `ns`
            // keeps it alive after the runtime removed its mount.
            if let Err(e) = rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            ) {
                let _ = ready_tx.send(Err(format!("setns: {e}")));
                return;
            }
            let upkeep = Upkeep {
                path,
                ready: ready_tx,
                control: control_rx,
                resumed,
            };
            match record.lease.clone() {
                FamilyLease::V4(lease) => {
                    let client = Client4::new(&record.ifname, record.identity.clone(), timing);
                    upkeep.run(client, lease, record, FamilyLease::V4);
                }
                FamilyLease::V6(lease) => {
                    let id = &record.identity.client_id;
                    // DHCPv6 sends from the link-local address, which only
                    // an up link has.
                    let client = crate::client::link_set_up(&record.ifname)
                        .map_err(|e| e.to_string())
                        .and_then(|_| {
                            Client6::new(
                                &record.ifname,
                                rcni_dhcp6::duid_from_client_id(id),
                                rcni_dhcp6::iaid_from_client_id(id),
                                Timing6 {
                                    timeout: timing.resend_timeout,
                                    resend_max: timing.resend_max,
                                },
                            )
                            .map_err(|e| e.to_string())
                        });
                    upkeep.run(client, lease, record, FamilyLease::V6);
                }
            }
            drop(ns);
        });
        let wait = timing.resend_timeout + timing.timeout + Duration::from_secs(30);
        let record = match ready_rx.recv_timeout(wait) {
            Ok(Ok(record)) => record,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("the DHCP client did not finish in time".into()),
        };
        let maintained = Arc::new(Maintained {
            record: record.clone(),
            control: control_tx,
            thread: Mutex::new(Some(thread)),
        });
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((record.identity.client_id.clone(), family), maintained);
        Ok(record)
    }

    /// Releases the attachment's leases of every family.
    fn release(&self, client_id: &str) {
        for family in IpFamily::ALL {
            self.release_one(&(client_id.to_string(), family));
        }
    }

    /// Sends RELEASE and stops maintenance; forgets the record either way.
    fn release_one(&self, key: &Key) {
        let removed = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if let Some(m) = removed {
            let (done_tx, done_rx) = mpsc::channel();
            if m.control.send(Control::Release(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(self.opts.timing.timeout + Duration::from_secs(30));
            }
            if let Some(t) = m.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                if t.is_finished() {
                    let _ = t.join();
                }
            }
        }
        store::remove(&store::path_for(&self.opts.statedir, &key.0, key.1));
    }

    /// Resumes every persisted lease whose netns is still there; drops the
    /// others.
    fn resume_all(&self) {
        for (path, record) in store::load_all(&self.opts.statedir) {
            let family = record.lease.family();
            let id = format!("{} ({family})", record.identity.client_id);
            if path != store::path_for(&self.opts.statedir, &record.identity.client_id, family) {
                eprintln!("dhcp: {}: not a record of ours, skipped", path.display());
                continue;
            }
            let ns = match NetNs::open(&record.netns) {
                Ok(ns) => ns,
                Err(e) => {
                    eprintln!("dhcp: {id}: dropping the lease: {e}");
                    store::remove(&path);
                    continue;
                }
            };
            match self.start(ns, record, true) {
                Ok(_) => eprintln!("dhcp: {id}: lease resumed"),
                Err(e) => {
                    eprintln!("dhcp: {id}: dropping the lease: {e}");
                    store::remove(&path);
                }
            }
        }
    }
}

/// The thread-side ends of a lease's upkeep.
struct Upkeep {
    path: PathBuf,
    ready: Sender<Result<Record, String>>,
    control: mpsc::Receiver<Control>,
    /// The record's lease is a persisted one: renew it at once.
    resumed: bool,
}

impl Upkeep {
    /// Acquires a lease (unless resumed) with `client`, saves it, reports
    /// it as ready, and keeps it until released, expired or the link goes.
    /// `wrap` puts a lease of `F` into a record.
    fn run<F: Family, E: std::fmt::Display>(
        self,
        client: Result<F, E>,
        resumed: F::Lease,
        mut record: Record,
        wrap: fn(F::Lease) -> FamilyLease,
    ) {
        let family = record.lease.family();
        let label = format!("{} ({family})", record.identity.client_id);
        let started = client.map_err(|e| e.to_string()).and_then(|c| {
            if self.resumed {
                Ok((c, resumed))
            } else {
                c.acquire()
                    .map(|lease| (c, lease))
                    .map_err(|e| e.to_string())
            }
        });
        let (client, lease) = match started {
            Ok(ok) => ok,
            Err(e) => {
                let _ = self.ready.send(Err(e));
                return;
            }
        };
        record.lease = wrap(lease.clone());
        if let Err(e) = store::save(&self.path, &record) {
            let _ = self.ready.send(Err(format!("save the lease: {e}")));
            let _ = client.release(&lease);
            return;
        }
        if self.ready.send(Ok(record.clone())).is_err() {
            // The request gave up waiting: nobody will maintain this.
            let _ = client.release(&lease);
            store::remove(&self.path);
            return;
        }
        let path = &self.path;
        let ended = maintain::run(
            &client,
            lease,
            client.ifindex(),
            &label,
            &self.control,
            self.resumed,
            |lease| {
                record.lease = wrap(lease.clone());
                if let Err(e) = store::save(path, &record) {
                    eprintln!("dhcp: {label}: save the lease: {e}");
                }
            },
        );
        eprintln!("dhcp: {label}: maintenance ended: {ended:?}");
        store::remove(path);
    }
}

/// The CNI result of an attachment's leases, one record per family.
fn result_of(records: &[Record]) -> serde_json::Value {
    let results = records.iter().map(|r| match &r.lease {
        FamilyLease::V4(l) => l.result(r.priority),
        FamilyLease::V6(l) => lease::result_v6(l),
    });
    rcni_spec::result::render(&lease::merge(results), rcni_spec::version::CURRENT)
        .unwrap_or_default()
}

/// Stands for the lease of `family` in a record until the server's
/// first answer.
fn placeholder_lease(family: IpFamily) -> FamilyLease {
    match family {
        IpFamily::Ipv4 => FamilyLease::V4(Lease4 {
            address: std::net::Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            server_id: std::net::Ipv4Addr::UNSPECIFIED,
            lease_time: 0,
            renewal_time: 0,
            rebinding_time: 0,
            obtained_unix: 0,
            routers: Vec::new(),
            static_routes: Vec::new(),
            classless_routes: Vec::new(),
            dns_servers: Vec::new(),
            domain_name: String::new(),
            domain_search: Vec::new(),
        }),
        IpFamily::Ipv6 => FamilyLease::V6(Lease6 {
            address: std::net::Ipv6Addr::UNSPECIFIED,
            preferred_lifetime: 0,
            valid_lifetime: 0,
            t1: 0,
            t2: 0,
            server_duid: Vec::new(),
            server_address: std::net::Ipv6Addr::UNSPECIFIED,
            dns_servers: Vec::new(),
            domain_search: Vec::new(),
            obtained_unix: 0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(
            parse_go_duration("1.25ms"),
            Some(Duration::from_micros(1250))
        );
        for bad in [
            "",
            "10",
            "s",
            "5x",
            "1e400s",
            "--1s",
            ".s",
            "99999999999999999999999999999999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn flags_as_go_parses_them() {
        let o = parse_flags(&args(&[
            "-socketpath",
            "/tmp/d.sock",
            "--broadcast",
            "-timeout=3s",
            "--resendmax",
            "8s",
            "-statedir=/tmp/s",
            "-hostprefix",
            "/host",
        ]))
        .unwrap();
        assert_eq!(o.socketpath, "/tmp/d.sock");
        assert!(o.broadcast);
        assert_eq!(o.timing.timeout, Duration::from_secs(3));
        assert_eq!(o.timing.resend_max, Duration::from_secs(8));
        assert_eq!(o.timing.resend_timeout, Duration::from_secs(208));
        assert_eq!(o.statedir, PathBuf::from("/tmp/s"));
        assert_eq!(o.hostprefix, "/host");
        assert_eq!(parse_flags(&[]).unwrap(), Options::default());
        assert!(parse_flags(&args(&["-timeout"])).is_err());
        assert!(parse_flags(&args(&["-timeout", "ten"])).is_err());
        assert!(parse_flags(&args(&["-nope"])).is_err());
        assert!(parse_flags(&args(&["-broadcast=maybe"])).is_err());
        assert!(parse_flags(&args(&["stray"])).is_err());
    }
}
