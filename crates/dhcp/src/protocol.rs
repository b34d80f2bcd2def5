//! rcni's plugin ↔ daemon protocol (docs/dhcp.md): over the unix socket,
//! one request per connection, one line of JSON each way.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The daemon's default socket (the reference's).
pub const DEFAULT_SOCKET: &str = "/run/cni/dhcp.sock";
/// The longest request or response line read.
pub const MAX_LINE: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Acquire a lease and maintain it (an existing one is returned).
    Allocate,
    /// The existing lease, or an error when there is none.
    Check,
    /// Release the lease and stop maintaining it; no lease is success.
    Release,
    /// Whether the daemon answers.
    Status,
    /// Release every lease of `network` whose attachment is not in
    /// `validAttachments`.
    Gc,
}

/// An address family the daemon leases for an attachment: DHCPv4, or
/// DHCPv6 (one IA_NA address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

impl IpFamily {
    pub const ALL: [IpFamily; 2] = [IpFamily::Ipv4, IpFamily::Ipv6];
}

/// As the config names it: `ipv4`, `ipv6`.
impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub method: Method,
    #[serde(default)]
    pub container_id: String,
    /// Absolute; the daemon puts its host prefix in front.
    #[serde(default)]
    pub netns: String,
    #[serde(default)]
    pub ifname: String,
    #[serde(default)]
    pub network: String,
    /// Option codes of the parameter request list.
    #[serde(default)]
    pub request: Vec<u8>,
    /// Options to send: code and value.
    #[serde(default)]
    pub provide: Vec<(u8, String)>,
    /// Route metric for the result's routes.
    #[serde(default)]
    pub priority: u32,
    /// GC: the attachments to keep, as (container ID, ifname).
    #[serde(default)]
    pub valid_attachments: Vec<(String, String)>,
    /// Allocate and check: the families to lease; none means IPv4 only
    /// (the reference's behaviour).
    #[serde(default)]
    pub ip_families: Vec<IpFamily>,
}

impl Request {
    pub fn new(method: Method) -> Request {
        Request {
            method,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            network: String::new(),
            request: Vec::new(),
            provide: Vec::new(),
            priority: 0,
            valid_attachments: Vec::new(),
            ip_families: Vec::new(),
        }
    }

    /// The families asked for, IPv4 when none is named.
    pub fn families(&self) -> Vec<IpFamily> {
        if self.ip_families.is_empty() {
            return vec![IpFamily::Ipv4];
        }
        let mut families = self.ip_families.clone();
        families.sort();
        families.dedup();
        families
    }

    /// The DHCP client id of the attachment, as the reference forms it.
    pub fn client_id(&self) -> String {
        format!("{}/{}/{}", self.container_id, self.network, self.ifname)
    }
}

/// A CNI error as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: u32,
    pub msg: String,
}

/// Either `result` (a CNI result in the current spec version, for
/// allocate and check) or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// Why a call to the daemon failed before it answered.
#[derive(Debug)]
pub enum CallError {
    /// Nobody listens on the socket (or it cannot be reached).
    Unreachable(std::io::Error),
    /// The connection broke or timed out.
    Io(std::io::Error),
    /// Something else answered: the text says what.
    Foreign(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "error dialing DHCP daemon: {e}"),
            CallError::Io(e) => write!(f, "error talking to the DHCP daemon: {e}"),
            CallError::Foreign(what) => f.write_str(what),
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes.
pub fn read_line(stream: impl Read) -> std::io::Result<Vec<u8>> {
    let mut line = Vec::new();
    BufReader::new(stream.take(MAX_LINE)).read_until(b'\n', &mut line)?;
    Ok(line)
}

/// Sends `request` to the daemon at `socket` and waits at most `wait` for
/// its answer.
pub fn call(socket: &Path, request: &Request, wait: Duration) -> Result<Response, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(CallError::Unreachable)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| stream.set_read_timeout(Some(wait)))
        .map_err(CallError::Io)?;
    let mut line = serde_json::to_vec(request).map_err(|e| CallError::Io(e.into()))?;
    line.push(b'\n');
    // A server that is not rcni's may close before reading everything.
    let sent = stream.write_all(&line);
    let answer = read_line(&stream).map_err(CallError::Io)?;
    if answer.starts_with(b"HTTP/") {
        return Err(CallError::Foreign(format!(
            "the daemon on {} answers HTTP: it is the reference's dhcp daemon (Go net/rpc), \
             which rcni's dhcp plugin cannot talk to; run rcni's (`dhcp daemon`) instead",
            socket.display()
        )));
    }
    sent.map_err(CallError::Io)?;
    serde_json::from_slice(&answer).map_err(|e| {
        CallError::Foreign(format!(
            "the daemon on {} gave an answer that is not rcni's protocol: {e}",
            socket.display()
        ))
    })
}
