//! A minimal blocking D-Bus client: just what talking to firewalld on the
//! system bus takes. One Unix socket, SASL `EXTERNAL` (the kernel tells the
//! bus who we are), `Hello`, then method calls whose arguments are strings
//! and whose replies are a string or a boolean. Every wait is bounded, so
//! a stuck bus cannot hang a plugin call. Messages are little-endian, as
//! the specification lets a sender choose; replies in either byte order
//! are read.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the system bus listens unless `DBUS_SYSTEM_BUS_ADDRESS` says.
const DEFAULT_SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
/// The longest message rcni reads (firewalld's replies are tiny).
const MAX_MESSAGE: usize = 1 << 20;

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// No bus, or it does not answer as a bus does.
    #[error("D-Bus: {0}")]
    Connection(String),
    /// The called service answered with an error.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
}

fn conn_err(what: impl std::fmt::Display) -> DbusError {
    DbusError::Connection(what.to_string())
}

/// The socket of the system bus: the first `unix:path=` of
/// `DBUS_SYSTEM_BUS_ADDRESS`, else the standard one.
pub fn system_bus_path() -> Option<PathBuf> {
    match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
        Ok(addresses) => addresses.split(';').find_map(|a| {
            let params = a.strip_prefix("unix:")?;
            params
                .split(',')
                .find_map(|kv| kv.strip_prefix("path="))
                .map(PathBuf::from)
        }),
        Err(_) => Some(PathBuf::from(DEFAULT_SYSTEM_BUS)),
    }
}

/// A value of a reply body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Bool(bool),
}

/// A method call on the bus.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub destination: &'a str,
    pub path: &'a str,
    pub interface: &'a str,
    pub member: &'a str,
    pub args: &'a [&'a str],
}

/// A connection to the bus, every read and write bounded by `deadline`.
pub struct Connection {
    stream: UnixStream,
    serial: u32,
    deadline: Instant,
}

impl Connection {
    /// Connects to the system bus and says `Hello`, all within `timeout`.
    /// A missing socket fails at once.
    pub fn system(timeout: Duration) -> Result<Connection, DbusError> {
        let path = system_bus_path().ok_or_else(|| conn_err("no unix:path= bus address"))?;
        if !path.exists() {
            return Err(conn_err(format!("no system bus at {}", path.display())));
        }
        let deadline = Instant::now() + timeout;
        // A Unix connect can block when the bus's backlog is full: give it
        // a thread of its own and stop waiting at the deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(UnixStream::connect(&path));
        });
        let stream = rx
            .recv_timeout(timeout)
            .map_err(|_| conn_err("connecting to the system bus timed out"))?
            .map_err(conn_err)?;
        let mut conn = Connection {
            stream,
            serial: 0,
            deadline,
        };
        conn.authenticate()?;
        conn.call(&Call {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
            args: &[],
        })?;
        Ok(conn)
    }

    fn arm(&self) -> Result<(), DbusError> {
        let left = self
            .deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| conn_err("the system bus did not answer in time"))?;
        self.stream
            .set_read_timeout(Some(left))
            .and_then(|()| self.stream.set_write_timeout(Some(left)))
            .map_err(conn_err)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), DbusError> {
        self.arm()?;
        self.stream.write_all(bytes).map_err(conn_err)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DbusError> {
        self.arm()?;
        self.stream.read_exact(buf).map_err(conn_err)
    }

    /// SASL: a NUL byte, `AUTH EXTERNAL <hex of our uid>`, `OK`, `BEGIN`.
    fn authenticate(&mut self) -> Result<(), DbusError> {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").map_err(conn_err)?.uid();
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let mut line = Vec::new();
        let mut byte = [0u8];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(conn_err("overlong authentication reply"));
            }
            self.read_exact(&mut byte)?;
            line.push(byte[0]);
        }
        if !line.starts_with(b"OK ") {
            return Err(conn_err(format!(
                "the bus refused authentication: {}",
                String::from_utf8_lossy(&line).trim_end()
            )));
        }
        self.write_all(b"BEGIN\r\n")
    }

    /// Calls a method and returns the first value of its reply, if any.
    pub fn call(&mut self, call: &Call<'_>) -> Result<Option<Value>, DbusError> {
        self.serial += 1;
        let serial = self.serial;
        self.write_all(&method_call(serial, call))?;
        loop {
            let mut fixed = [0u8; 16];
            self.read_exact(&mut fixed)?;
            let little = match fixed[0] {
                b'l' => true,
                b'B' => false,
                _ => return Err(conn_err("not a D-Bus message")),
            };
            let u32_at = |i: usize| {
                let b = [fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]];
                if little {
                    u32::from_le_bytes(b)
                } else {
                    u32::from_be_bytes(b)
                }
            };
            let (body_len, fields_len) = (u32_at(4) as usize, u32_at(12) as usize);
            let total = 16 + align(fields_len, 8) + body_len;
            if total > MAX_MESSAGE {
                return Err(conn_err("overlong message from the bus"));
            }
            let mut msg = fixed.to_vec();
            msg.resize(total, 0);
            self.read_exact(&mut msg[16..])?;
            let reply =
                parse_reply(&msg).ok_or_else(|| conn_err("malformed message from the bus"))?;
            if reply.reply_serial != Some(serial) {
                continue; // a signal such as NameAcquired
            }
            return match reply.kind {
                METHOD_RETURN => Ok(reply.first),
                ERROR => Err(DbusError::Remote {
                    name: reply.error_name.unwrap_or_default(),
                    message: match reply.first {
                        Some(Value::Str(s)) => s,
                        _ => String::new(),
                    },
                }),
                _ => continue,
            };
        }
    }
}

fn align(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Little-endian marshalling.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn pad(&mut self, to: usize) {
        let len = align(self.0.len(), to);
        self.0.resize(len, 0);
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.0.extend(v.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.0.extend(s.as_bytes());
        self.0.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.0.push(s.len() as u8);
        self.0.extend(s.as_bytes());
        self.0.push(0);
    }

    /// A header field: struct (byte code, variant of type `sig`).
    fn field(&mut self, code: u8, sig: &str, write: impl FnOnce(&mut Writer)) {
        self.pad(8);
        self.0.push(code);
        self.signature(sig);
        write(self);
    }
}

/// The bytes of a method call with string arguments.
pub(super) fn method_call(serial: u32, c: &Call<'_>) -> Vec<u8> {
    let mut body = Writer::default();
    for a in c.args {
        body.string(a);
    }
    let sig = "s".repeat(c.args.len());
    let mut fields = Writer(vec![0; 16]); // offsets as in the message
    fields.field(FIELD_PATH, "o", |w| w.string(c.path));
    fields.field(FIELD_INTERFACE, "s", |w| w.string(c.interface));
    fields.field(FIELD_MEMBER, "s", |w| w.string(c.member));
    fields.field(FIELD_DESTINATION, "s", |w| w.string(c.destination));
    if !sig.is_empty() {
        fields.field(FIELD_SIGNATURE, "g", |w| w.signature(&sig));
    }
    let fields_len = (fields.0.len() - 16) as u32;
    let mut msg = Writer(vec![b'l', METHOD_CALL, 0, 1]);
    msg.u32(body.0.len() as u32);
    msg.u32(serial);
    msg.u32(fields_len);
    msg.0.extend(&fields.0[16..]);
    msg.pad(8);
    msg.0.extend(body.0);
    msg.0
}

/// What rcni reads of a message.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Reply {
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
    first: Option<Value>,
}

/// Reading in the message's byte order, every read bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
}

impl Reader<'_> {
    fn pad(&mut self, to: usize) -> Option<()> {
        self.pos = align(self.pos, to);
        (self.pos <= self.buf.len()).then_some(())
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let out = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.pad(4)?;
        let b: [u8; 4] = self.bytes(4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn string(&mut self) -> Option<String> {
        let len = self.u32()? as usize;
        let s = String::from_utf8(self.bytes(len)?.to_vec()).ok()?;
        self.u8()?;
        Some(s)
    }

    fn signature(&mut self) -> Option<String> {
        let len = self.u8()? as usize;
        let s = String::from_utf8(self.bytes(len)?.to_vec()).ok()?;
        self.u8()?;
        Some(s)
    }

    /// A value of a basic type rcni reads; anything else ends the read.
    fn value(&mut self, sig: &str) -> Option<Value> {
        match sig.as_bytes().first()? {
            b's' | b'o' => self.string().map(Value::Str),
            b'g' => self.signature().map(Value::Str),
            b'b' => self.u32().map(|v| Value::Bool(v != 0)),
            b'u' => self.u32().map(|v| Value::Str(v.to_string())),
            _ => None,
        }
    }
}

pub(super) fn parse_reply(msg: &[u8]) -> Option<Reply> {
    let mut r = Reader {
        buf: msg,
        pos: 0,
        little: *msg.first()? == b'l',
    };
    r.bytes(1)?;
    let kind = r.u8()?;
    r.bytes(2)?;
    r.u32()?; // body length
    r.u32()?; // serial
    let fields_len = r.u32()? as usize;
    let fields_end = r.pos.checked_add(fields_len)?;
    let (mut reply_serial, mut error_name, mut signature) = (None, None, String::new());
    while r.pos < fields_end {
        r.pad(8)?;
        let code = r.u8()?;
        let sig = r.signature()?;
        let value = r.value(&sig)?;
        match (code, value) {
            (FIELD_REPLY_SERIAL, Value::Str(s)) => reply_serial = s.parse().ok(),
            (FIELD_ERROR_NAME, Value::Str(s)) => error_name = Some(s),
            (FIELD_SIGNATURE, Value::Str(s)) => signature = s,
            _ => {}
        }
    }
    r.pos = fields_end;
    r.pad(8)?;
    let first = if signature.is_empty() {
        None
    } else {
        r.value(&signature)
    };
    Some(Reply {
        kind,
        reply_serial,
        error_name,
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: Call<'static> = Call {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "Hello",
        args: &[],
    };

    #[test]
    fn hello_is_marshalled_as_the_specification_says() {
        let m = method_call(1, &HELLO);
        // Fixed header: little endian, method call, no flags, version 1,
        // empty body, serial 1, then the length of the fields array.
        assert_eq!(&m[..12], &[b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
        let fields_len = u32::from_le_bytes(m[12..16].try_into().unwrap()) as usize;
        assert_eq!(
            m.len(),
            16 + align(fields_len, 8),
            "the body starts 8-aligned"
        );
        // The path field: code 1, signature "o", then the string.
        assert_eq!(&m[16..20], &[FIELD_PATH, 1, b'o', 0]);
        assert_eq!(u32::from_le_bytes(m[20..24].try_into().unwrap()), 21);
        assert_eq!(&m[24..46], b"/org/freedesktop/DBus\0");
        // Every field struct starts 8-aligned.
        assert_eq!(m[48], FIELD_INTERFACE);
        assert!(!m.windows(4).any(|w| w == [FIELD_SIGNATURE, 1, b'g', 0]));
    }

    #[test]
    fn string_arguments_carry_their_signature_and_body() {
        let c = Call {
            args: &["trusted", "10.0.0.2/32"],
            member: "addSource",
            ..HELLO
        };
        let m = method_call(7, &c);
        let body_len = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
        // "trusted\0" after its length, padded, then "10.0.0.2/32\0".
        assert_eq!(body_len, 4 + 8 + 4 + 12);
        let body = &m[m.len() - body_len..];
        assert_eq!(&body[..12], b"\x07\0\0\0trusted\0");
        assert_eq!(&body[12..], b"\x0b\0\0\0\x310.0.0.2/32\0");
        assert!(m
            .windows(6)
            .any(|w| w == [FIELD_SIGNATURE, 1, b'g', 0, 2, b's']));
    }

    /// A reply as a bus would send it, built with the same writer.
    fn reply(kind: u8, serial: u32, error: Option<&str>, body: Option<Value>) -> Vec<u8> {
        let mut fields = Writer(vec![0; 16]);
        fields.field(FIELD_REPLY_SERIAL, "u", |w| w.u32(serial));
        if let Some(e) = error {
            fields.field(FIELD_ERROR_NAME, "s", |w| w.string(e));
        }
        let mut b = Writer::default();
        match &body {
            Some(Value::Str(s)) => {
                fields.field(FIELD_SIGNATURE, "g", |w| w.signature("s"));
                b.string(s);
            }
            Some(Value::Bool(v)) => {
                fields.field(FIELD_SIGNATURE, "g", |w| w.signature("b"));
                b.u32(u32::from(*v));
            }
            None => {}
        }
        let mut msg = Writer(vec![b'l', kind, 1, 1]);
        msg.u32(b.0.len() as u32);
        msg.u32(99);
        msg.u32((fields.0.len() - 16) as u32);
        msg.0.extend(&fields.0[16..]);
        msg.pad(8);
        msg.0.extend(b.0);
        msg.0
    }

    #[test]
    fn replies_and_errors_are_read() {
        let ok = parse_reply(&reply(METHOD_RETURN, 3, None, Some(Value::Bool(true)))).unwrap();
        assert_eq!(
            (ok.kind, ok.reply_serial, ok.first),
            (METHOD_RETURN, Some(3), Some(Value::Bool(true)))
        );
        let msg = Value::Str("ZONE_ALREADY_SET: trusted".into());
        let err = parse_reply(&reply(
            ERROR,
            4,
            Some("org.fedoraproject.FirewallD1.Exception"),
            Some(msg.clone()),
        ))
        .unwrap();
        assert_eq!(
            err.error_name.as_deref(),
            Some("org.fedoraproject.FirewallD1.Exception")
        );
        assert_eq!(err.first, Some(msg));
    }

    #[test]
    fn truncated_or_hostile_messages_are_refused() {
        let full = reply(METHOD_RETURN, 3, None, Some(Value::Str("x".into())));
        for n in 0..full.len() {
            // Never a panic; a cut message is not read as complete.
            let _ = parse_reply(&full[..n]);
        }
        let mut huge = full.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_reply(&huge).is_none());
    }

    #[test]
    fn the_bus_address_comes_from_the_environment() {
        // Only the parsing: set in a child process to keep this process's
        // environment untouched.
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("RCNI_DBUS_ADDRESS_CHILD").is_some() {
            assert_eq!(
                system_bus_path(),
                Some(PathBuf::from("/tmp/x/bus")),
                "first unix:path= wins"
            );
            return;
        }
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "firewall::dbus::tests::the_bus_address_comes_from_the_environment",
            ])
            .env("RCNI_DBUS_ADDRESS_CHILD", "1")
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                "tcp:host=x;unix:guid=1,path=/tmp/x/bus;unix:path=/other",
            )
            .status()
            .unwrap();
        assert!(status.success());
    }
}
