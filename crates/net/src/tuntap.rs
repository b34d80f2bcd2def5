//! Tap devices, made over the tun driver (`/dev/net/tun`) as `ip tuntap
//! add` does, without running it: the device is created in the namespace
//! of the thread that opens the driver, made persistent, and its owner and
//! group set.

use crate::error::{NetError, Result};
use crate::link::IFNAMSIZ_MAX;
use crate::sys::{tun_set_iff, tun_set_value, IfReqFlags};
use crate::NetNs;
use std::fs::OpenOptions;
use std::os::fd::AsFd;

/// A tap device to create.
#[derive(Debug, Clone, Default)]
pub struct TapSpec {
    /// Its name.
    pub name: String,
    /// `IFF_MULTI_QUEUE`: several queues (file descriptors) may attach.
    pub multi_queue: bool,
    /// The user allowed to attach to it (`TUNSETOWNER`).
    pub owner: Option<u32>,
    /// The group allowed to attach to it (`TUNSETGROUP`).
    pub group: Option<u32>,
    /// An SELinux label for the sockets the creating thread makes
    /// (`/proc/thread-self/attr/sockcreate`), as the reference sets it.
    pub selinux_context: Option<String>,
}

const TUN_DEVICE: &str = "/dev/net/tun";

/// Creates a persistent tap device inside `ns` (with a virtio-net header,
/// as the reference's tap plugin asks for).
pub fn create_tap(ns: &NetNs, spec: &TapSpec) -> Result<()> {
    if spec.name.is_empty() || spec.name.len() > IFNAMSIZ_MAX {
        return Err(NetError::InvalidArgument(format!(
            "invalid tap name {:?}",
            spec.name
        )));
    }
    let spec = spec.clone();
    ns.run(move || -> Result<()> {
        let op = |what: &str| format!("{what} of tap {}", spec.name);
        if let Some(label) = &spec.selinux_context {
            std::fs::write("/proc/thread-self/attr/sockcreate", label).map_err(NetError::io(
                format!("set the SELinux socket label {label:?}"),
            ))?;
        }
        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN_DEVICE)
            .map_err(NetError::io(format!("open {TUN_DEVICE}")))?;
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        if spec.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        let mut req = IfReqFlags::new(&spec.name, flags as libc::c_short);
        tun_set_iff(tun.as_fd(), &mut req).map_err(NetError::io(op("TUNSETIFF")))?;
        if let Some(uid) = spec.owner {
            tun_set_value(tun.as_fd(), libc::TUNSETOWNER, libc::c_ulong::from(uid))
                .map_err(NetError::io(op("TUNSETOWNER")))?;
        }
        if let Some(gid) = spec.group {
            tun_set_value(tun.as_fd(), libc::TUNSETGROUP, libc::c_ulong::from(gid))
                .map_err(NetError::io(op("TUNSETGROUP")))?;
        }
        // Persistent: the device outlives this file descriptor.
        tun_set_value(tun.as_fd(), libc::TUNSETPERSIST, 1)
            .map_err(NetError::io(op("TUNSETPERSIST")))
    })?
}
