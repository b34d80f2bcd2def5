//! The firewalld backend, as the reference's: each container address
//! (`ip/32`, `ip/128`) becomes a source of a zone (`trusted` unless
//! `firewalldZone` says otherwise) through firewalld's D-Bus API
//! (`addSource`, `removeSource`, `querySource` of
//! `org.fedoraproject.FirewallD1.zone`), at runtime only, as the reference
//! does. firewalld counts as running when its name has an owner on the
//! system bus.

use super::dbus::{Call, Connection, DbusError, Value};
use super::{host_cidr, Attachment};
use crate::error::FirewallError;
use std::net::IpAddr;
use std::time::Duration;

const FIREWALLD: &str = "org.fedoraproject.FirewallD1";
const FIREWALLD_PATH: &str = "/org/fedoraproject/FirewallD1";
const ZONE_INTERFACE: &str = "org.fedoraproject.FirewallD1.zone";
/// The error firewalld gives for a source already in the zone.
const ZONE_ALREADY_SET: &str = "ZONE_ALREADY_SET";

/// How long finding out whether firewalld runs may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one plugin call's D-Bus work may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The reference's default zone.
pub const DEFAULT_ZONE: &str = "trusted";

/// A firewalld zone name from a config: 1 to 64 letters, digits, `_` or
/// `-` (firewalld's own names and what its tools accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone(String);

impl Zone {
    pub fn new(field: &str, name: &str) -> Result<Zone, FirewallError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !ok {
            return Err(FirewallError::Config(format!(
                "{field}: invalid zone name {name:?}: 1 to 64 letters, digits, '_' or '-'"
            )));
        }
        Ok(Zone(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn dbus_err(what: &str, e: DbusError) -> FirewallError {
    match e {
        DbusError::Connection(_) => FirewallError::Io(format!("{what}: {e}")),
        DbusError::Remote { .. } => FirewallError::Tool {
            program: "firewalld".into(),
            message: format!("{what}: {e}"),
        },
    }
}

/// Whether firewalld is on the system bus: a missing bus socket answers
/// at once, a bus that does not answer within a second counts as no.
pub fn running() -> bool {
    let Ok(mut bus) = Connection::system(PROBE_TIMEOUT) else {
        return false;
    };
    bus.call(&Call {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "GetNameOwner",
        args: &[FIREWALLD],
    })
    .is_ok()
}

fn zone_call<'a>(member: &'a str, args: &'a [&'a str]) -> Call<'a> {
    Call {
        destination: FIREWALLD,
        path: FIREWALLD_PATH,
        interface: ZONE_INTERFACE,
        member,
        args,
    }
}

fn connect() -> Result<Connection, FirewallError> {
    Connection::system(CALL_TIMEOUT).map_err(|e| dbus_err("connect to the system bus", e))
}

/// Adds each address to the zone (one already there is fine) and
/// remembers the attachment for DEL without prevResult and for GC.
pub fn add(a: &Attachment<'_>, zone: &Zone, ips: &[IpAddr]) -> Result<(), FirewallError> {
    let mut bus = connect()?;
    for ip in ips {
        let source = host_cidr(ip);
        match bus.call(&zone_call("addSource", &[zone.as_str(), &source])) {
            Err(DbusError::Remote { message, .. }) if message.contains(ZONE_ALREADY_SET) => {}
            Err(e) => {
                return Err(dbus_err(
                    &format!(
                        "failed to add the address {source} to {} zone",
                        zone.as_str()
                    ),
                    e,
                ))
            }
            Ok(_) => {}
        }
    }
    super::records::write(a, ips, Some(zone.as_str()));
    Ok(())
}

/// Removes each address from the zone. firewalld's refusals (a source not
/// in the zone) are ignored, as the reference does, so DEL is idempotent;
/// without a system bus there is no firewalld and nothing to remove (its
/// sources are runtime state, gone when it stops).
pub fn del(zone: &Zone, ips: &[IpAddr]) -> Result<(), FirewallError> {
    let mut bus = match Connection::system(CALL_TIMEOUT) {
        Ok(bus) => bus,
        Err(e) => {
            eprintln!("firewall: no firewalld sources to remove: {e}");
            return Ok(());
        }
    };
    for ip in ips {
        let source = host_cidr(ip);
        match bus.call(&zone_call("removeSource", &[zone.as_str(), &source])) {
            Err(e @ DbusError::Connection(_)) => {
                return Err(dbus_err("remove a source from firewalld", e))
            }
            Err(DbusError::Remote { .. }) | Ok(_) => {}
        }
    }
    Ok(())
}

/// Whether every address is a source of the zone.
pub fn check(zone: &Zone, ips: &[IpAddr]) -> Result<(), FirewallError> {
    let mut bus = connect()?;
    for ip in ips {
        let source = host_cidr(ip);
        let found = bus
            .call(&zone_call("querySource", &[zone.as_str(), &source]))
            .map_err(|e| dbus_err("query firewalld", e))?;
        if found != Some(Value::Bool(true)) {
            // reference text
            return Err(FirewallError::NotInPlace(format!(
                "failed to find the address {source} in {} zone",
                zone.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_are_plain_words() {
        assert!(Zone::new("firewalldZone", "trusted").is_ok());
        for bad in ["", "a b", "../x", "z\n", &"z".repeat(65)] {
            let e = Zone::new("firewalldZone", bad).unwrap_err();
            assert!(e.to_string().starts_with("firewalldZone: "), "{bad:?}");
        }
    }
}
