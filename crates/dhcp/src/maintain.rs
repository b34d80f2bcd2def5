//! Keeping a lease: renew at T1, rebind at T2, stop using it when it
//! expires (DHCPv4: the interface set down, as the reference; DHCPv6: the
//! address removed, so an expired v6 lease does not cut IPv4 too), stop
//! when the link goes. One thread per lease, inside the container's
//! network namespace.

use crate::client::{Client4, Error};
use crate::lease::Lease4;
use rcni_dhcp6::{Client6, Error6, Lease6};
use rcni_net::Handle;
use std::fmt::Display;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

/// What the upkeep of one address family's lease needs from its client:
/// DHCPv4's [`Client4`] and DHCPv6's [`Client6`].
pub trait Family {
    type Lease: Clone;
    type Error: Display;
    /// A new lease, within the client's own bound.
    fn acquire(&self) -> Result<Self::Lease, Self::Error>;
    fn renew(&self, lease: &Self::Lease, until: Instant) -> Result<Self::Lease, Self::Error>;
    fn rebind(&self, lease: &Self::Lease, until: Instant) -> Result<Self::Lease, Self::Error>;
    fn release(&self, lease: &Self::Lease) -> Result<(), Self::Error>;
    /// T1, T2 and the expiry.
    fn times(lease: &Self::Lease) -> [SystemTime; 3];
    /// The client's interface.
    fn ifindex(&self) -> u32;
    /// Stops using an expired lease on the interface.
    fn expire(&self, lease: &Self::Lease);
}

impl Family for Client4 {
    type Lease = Lease4;
    type Error = Error;
    fn acquire(&self) -> Result<Lease4, Error> {
        Client4::acquire(self)
    }
    fn renew(&self, lease: &Lease4, until: Instant) -> Result<Lease4, Error> {
        Client4::renew(self, lease, until)
    }
    fn rebind(&self, lease: &Lease4, until: Instant) -> Result<Lease4, Error> {
        Client4::rebind(self, lease, until)
    }
    fn release(&self, lease: &Lease4) -> Result<(), Error> {
        Client4::release(self, lease)
    }
    fn times(l: &Lease4) -> [SystemTime; 3] {
        [l.renew_at(), l.rebind_at(), l.expires_at()]
    }
    fn ifindex(&self) -> u32 {
        Client4::ifindex(self)
    }
    /// As the reference: the interface goes down.
    fn expire(&self, _: &Lease4) {
        if let Err(e) = Handle::new().and_then(|mut h| h.set_down(self.ifindex())) {
            eprintln!("dhcp: failed to set the interface down: {e}");
        }
    }
}

impl Family for Client6 {
    type Lease = Lease6;
    type Error = Error6;
    fn acquire(&self) -> Result<Lease6, Error6> {
        Client6::acquire(self)
    }
    fn renew(&self, lease: &Lease6, until: Instant) -> Result<Lease6, Error6> {
        self.renew_until(lease, until)
    }
    fn rebind(&self, lease: &Lease6, until: Instant) -> Result<Lease6, Error6> {
        self.rebind_until(lease, until)
    }
    fn release(&self, lease: &Lease6) -> Result<(), Error6> {
        Client6::release(self, lease)
    }
    fn times(l: &Lease6) -> [SystemTime; 3] {
        [l.renew_at(), l.rebind_at(), l.expires_at()]
    }
    fn ifindex(&self) -> u32 {
        Client6::ifindex(self)
    }
    /// Its valid lifetime is over, so the address may no longer be used: it goes,
    /// and the link, with any IPv4 lease on it, stays up.
    fn expire(&self, lease: &Lease6) {
        let net = ipnet::IpNet::from(std::net::IpAddr::V6(lease.address));
        if let Err(e) = Handle::new().and_then(|mut h| h.delete_address(self.ifindex(), net)) {
            eprintln!(
                "dhcp: failed to remove the expired address {}: {e}",
                lease.address
            );
        }
    }
}

/// A request to a maintenance thread.
pub enum Control {
    /// Send a RELEASE, answer on the sender, and stop.
    Release(Sender<()>),
}

/// Why maintenance ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Released,
    /// The lease ran out; the interface was set down.
    Expired,
    /// The interface is gone.
    LinkGone,
}

/// How often a bound lease checks that its link is still there, and the
/// longest a renewal attempt runs before a RELEASE request is looked at.
const LINK_CHECK: Duration = Duration::from_secs(5);

/// Time from now until `t` (zero if past), as an `Instant`.
fn instant_of(t: SystemTime) -> Instant {
    Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default()
}

/// Maintains `lease` on link `ifindex` until released, expired or gone.
/// `renew_now` starts with a renewal (a lease resumed after a restart).
/// `saved` is called with every renewed lease.
pub fn run<F: Family>(
    client: &F,
    mut lease: F::Lease,
    ifindex: u32,
    label: &str,
    control: &Receiver<Control>,
    mut renew_now: bool,
    mut saved: impl FnMut(&F::Lease),
) -> Ended {
    loop {
        let [t1, t2, expiry] = F::times(&lease);
        let now = SystemTime::now();
        if now >= expiry {
            eprintln!("dhcp: {label}: lease expired");
            client.expire(&lease);
            return Ended::Expired;
        }
        if !link_exists(ifindex) {
            eprintln!("dhcp: {label}: the interface is gone, stopping");
            return Ended::LinkGone;
        }
        let due = renew_now || now >= t1;
        if due {
            // One bounded attempt, then look at the control channel again.
            let rebinding = now >= t2;
            let phase_end = if rebinding { expiry } else { t2 };
            let until = instant_of(phase_end).min(Instant::now() + LINK_CHECK * 2);
            let outcome = if rebinding {
                client.rebind(&lease, until)
            } else {
                client.renew(&lease, until)
            };
            match outcome {
                Ok(new) => {
                    eprintln!(
                        "dhcp: {label}: lease {}",
                        if rebinding { "rebound" } else { "renewed" }
                    );
                    lease = new;
                    renew_now = false;
                    saved(&lease);
                }
                Err(e) => eprintln!("dhcp: {label}: {e}"),
            }
        }
        let sleep = if due {
            Duration::ZERO
        } else {
            t1.duration_since(now).unwrap_or_default().min(LINK_CHECK)
        };
        // A daemon that no longer holds this lease's control channel has
        // given it up: released as on request.
        let done = match control.recv_timeout(sleep) {
            Ok(Control::Release(done)) => Some(done),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => continue,
        };
        if let Err(e) = client.release(&lease) {
            eprintln!("dhcp: {label}: failed to release the lease: {e}");
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
        return Ended::Released;
    }
}

fn link_exists(ifindex: u32) -> bool {
    match Handle::new().and_then(|mut h| h.link_by_index(ifindex)) {
        Ok(link) => link.is_some(),
        // Cannot tell: keep going.
        Err(_) => true,
    }
}
