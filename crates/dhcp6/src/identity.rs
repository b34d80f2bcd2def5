//! The client's identity for a CNI attachment, derived from its client id
//! `containerID/network/ifname` so that a restarted daemon (or a new
//! container with the same id) asks for the same lease.

use sha2::{Digest, Sha512};

/// `DUID-UUID` (RFC 6355, type 4): a DUID needing no link-layer address
/// (the daemon may derive it before the interface exists, and a MAC may
/// change) and no enterprise number.
const DUID_UUID: [u8; 2] = [0, 4];

/// SHA-512 rather than SHA-256: the binary has it already (lease file
/// names, rule names), and 20 of its bytes are all the identity needs.
fn digest(client_id: &str) -> [u8; 64] {
    Sha512::digest(client_id.as_bytes()).into()
}

/// The client DUID of an attachment: DUID-UUID whose UUID is the first 16
/// bytes of SHA-512(`client_id`), marked as an RFC 9562 version-8 UUID.
pub fn duid_from_client_id(client_id: &str) -> Vec<u8> {
    let hash = digest(client_id);
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&hash[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    let mut duid = DUID_UUID.to_vec();
    duid.extend_from_slice(&uuid);
    duid
}

/// The IAID of an attachment's IA_NA: bytes 16..20 of SHA-512(`client_id`),
/// big-endian (disjoint from the bytes the DUID uses).
pub fn iaid_from_client_id(client_id: &str) -> u32 {
    let hash = digest(client_id);
    u32::from_be_bytes([hash[16], hash[17], hash[18], hash[19]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_distinct_and_well_formed() {
        let a = duid_from_client_id("ctr1/lan/eth0");
        assert_eq!(a, duid_from_client_id("ctr1/lan/eth0"));
        assert_ne!(a, duid_from_client_id("ctr1/lan/eth1"));
        assert_eq!(a.len(), 18);
        assert_eq!(&a[..2], &[0, 4]);
        assert_eq!(a[8] >> 4, 8, "UUID version 8");
        assert_eq!(a[10] >> 6, 0b10, "RFC 9562 variant");
        assert_eq!(
            iaid_from_client_id("ctr1/lan/eth0"),
            iaid_from_client_id("ctr1/lan/eth0")
        );
        assert_ne!(
            iaid_from_client_id("ctr1/lan/eth0"),
            iaid_from_client_id("ctr2/lan/eth0")
        );
    }
}
