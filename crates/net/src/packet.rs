//! A link-layer socket on one interface: what a DHCP client needs before
//! the interface has an address (the server may answer to the offered
//! address at layer 2, which the IP stack would drop).

use crate::sys;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// An `AF_PACKET` datagram socket bound to one interface, for IPv4.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: u32,
}

/// The Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

impl PacketSocket {
    /// Opens the socket on interface `ifindex` of the calling thread's
    /// network namespace.
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        Ok(PacketSocket {
            fd: sys::packet_socket(ifindex)?,
            ifindex,
        })
    }

    /// Sends a whole IPv4 packet to the link-layer address `mac`.
    pub fn send(&self, mac: [u8; 6], ip_packet: &[u8]) -> io::Result<()> {
        sys::packet_send(self.fd.as_fd(), self.ifindex, mac, ip_packet)
    }

    /// The next IPv4 packet received within `timeout`, if any.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        sys::recv_within(self.fd.as_fd(), buf, timeout)
    }
}
