//! The lease as the daemon keeps and persists it, and when to act on it.

use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A lifetime (or T1/T2) of `0xffffffff` seconds means "forever".
pub const INFINITY: u32 = u32::MAX;

/// One IA_NA address leased from a server. Serialized as the lease file's
/// JSON (the DUID as a hex string).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease6 {
    /// The leased address (a /128: the prefix comes from router adverts).
    pub address: Ipv6Addr,
    /// Seconds from `obtained_unix`.
    pub preferred_lifetime: u32,
    /// Seconds from `obtained_unix`; the address must go after that.
    pub valid_lifetime: u32,
    /// As the server sent it; 0 leaves the renew time to the client
    /// ([`Lease6::renew_at`]).
    pub t1: u32,
    /// As the server sent it; 0 leaves the rebind time to the client
    /// ([`Lease6::rebind_at`]).
    pub t2: u32,
    /// The DUID of the server that granted or last renewed the lease.
    #[serde(with = "hex_bytes")]
    pub server_duid: Vec<u8>,
    /// Where that server's reply came from (its link-local address).
    pub server_address: Ipv6Addr,
    /// `OPTION_DNS_SERVERS`.
    pub dns_servers: Vec<Ipv6Addr>,
    /// `OPTION_DOMAIN_LIST`.
    pub domain_search: Vec<String>,
    /// Seconds since the epoch when the Reply came.
    pub obtained_unix: u64,
}

impl Lease6 {
    /// When to send a Renew: T1, or half the preferred lifetime when the
    /// server left T1 to the client (RFC 8415 §14.2: 0.5 × the shortest
    /// preferred lifetime).
    pub fn renew_at(&self) -> SystemTime {
        self.at(match self.t1 {
            0 => fraction(self.preferred_lifetime, 5),
            t1 => t1,
        })
    }

    /// When to send a Rebind: T2, or 0.8 × the preferred lifetime.
    pub fn rebind_at(&self) -> SystemTime {
        self.at(match self.t2 {
            0 => fraction(self.preferred_lifetime, 8),
            t2 => t2,
        })
    }

    /// When the address stops being valid.
    pub fn expires_at(&self) -> SystemTime {
        self.at(self.valid_lifetime)
    }

    /// `obtained_unix + seconds`, where [`INFINITY`] (and anything past
    /// what the clock can hold) is a time far beyond any lease.
    fn at(&self, seconds: u32) -> SystemTime {
        let far_future = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 4);
        if seconds == INFINITY {
            return far_future;
        }
        UNIX_EPOCH
            .checked_add(Duration::from_secs(
                self.obtained_unix.saturating_add(u64::from(seconds)),
            ))
            .map_or(far_future, |t| t.min(far_future))
    }
}

/// `tenths`/10 of a lifetime, infinity kept.
fn fraction(lifetime: u32, tenths: u64) -> u32 {
    if lifetime == INFINITY {
        return INFINITY;
    }
    u32::try_from(u64::from(lifetime) * tenths / 10).unwrap_or(INFINITY)
}

/// Bytes as a lowercase hex string, for DUIDs in the lease JSON.
mod hex_bytes {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(D::Error::custom("hex string of odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| D::Error::custom(format!("not hex: {text:?}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lease() -> Lease6 {
        Lease6 {
            address: "fd00:db8::42".parse().unwrap(),
            preferred_lifetime: 100,
            valid_lifetime: 200,
            t1: 0,
            t2: 0,
            server_duid: vec![0, 1, 0xab, 0xcd],
            server_address: "fe80::1".parse().unwrap(),
            dns_servers: vec!["fd00:db8::53".parse().unwrap()],
            domain_search: vec!["lan.test".into()],
            obtained_unix: 1_000_000,
        }
    }

    fn unix(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn times_derive_from_preferred_lifetime_when_t1_t2_are_zero() {
        let mut l = lease();
        assert_eq!(unix(l.renew_at()), 1_000_050);
        assert_eq!(unix(l.rebind_at()), 1_000_080);
        assert_eq!(unix(l.expires_at()), 1_000_200);
        (l.t1, l.t2) = (30, 60);
        assert_eq!(unix(l.renew_at()), 1_000_030);
        assert_eq!(unix(l.rebind_at()), 1_000_060);
    }

    #[test]
    fn infinite_and_huge_times_do_not_overflow() {
        let mut l = lease();
        (l.preferred_lifetime, l.valid_lifetime) = (INFINITY, INFINITY);
        let far = l.expires_at();
        assert!(far > SystemTime::now() + Duration::from_secs(100 * 365 * 86400));
        assert_eq!(l.renew_at(), far);
        l.obtained_unix = u64::MAX;
        l.valid_lifetime = 5;
        assert_eq!(l.expires_at(), far);
    }

    #[test]
    fn json_round_trip_with_hex_duid() {
        let text = serde_json::to_string(&lease()).unwrap();
        assert!(text.contains(r#""server_duid":"0001abcd""#), "{text}");
        assert_eq!(serde_json::from_str::<Lease6>(&text).unwrap(), lease());
        let bad = text.replace("0001abcd", "0001abc");
        assert!(serde_json::from_str::<Lease6>(&bad).is_err());
        let bad = text.replace("0001abcd", "0001abzz");
        assert!(serde_json::from_str::<Lease6>(&bad).is_err());
    }
}
