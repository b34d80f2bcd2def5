//! Hardware (MAC) addresses as text: the one parser and formatter of the
//! workspace.

use crate::error::{NetError, Result};

/// Formats a hardware address as lower-case hex pairs joined by `:`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a 6-byte MAC in the forms Go's `net.ParseMAC` takes (what the
/// reference reads `mac` and `hwaddr` with): `aa:bb:cc:dd:ee:ff`,
/// `aa-bb-cc-dd-ee-ff` (one separator throughout) or `aabb.ccdd.eeff`;
/// hex digits in either case.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || NetError::InvalidArgument(format!("invalid MAC address {s:?}"));
    let b = s.as_bytes();
    // Byte `i`'s two hex digits start at `starts(i)`; `seps` are the
    // positions of the separator, which must all be the same `sep`.
    let (sep, starts, seps): (u8, fn(usize) -> usize, &[usize]) = match b.len() {
        17 if b[2] == b':' || b[2] == b'-' => (b[2], |i| 3 * i, &[2, 5, 8, 11, 14]),
        14 if b[4] == b'.' => (b'.', |i| i * 2 + i / 2, &[4, 9]),
        _ => return Err(bad()),
    };
    if seps.iter().any(|&at| b[at] != sep) {
        return Err(bad());
    }
    let mut out = [0u8; 6];
    for (i, byte) in out.iter_mut().enumerate() {
        let digit = |at: usize| char::from(b[at]).to_digit(16).ok_or_else(bad);
        *byte = (digit(starts(i))? * 16 + digit(starts(i) + 1)?) as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            format_mac(&[0x02, 0xab, 0, 1, 0xff, 0x10]),
            "02:ab:00:01:ff:10"
        );
        assert_eq!(
            parse_mac("02:AB:00:01:ff:10").unwrap(),
            [0x02, 0xab, 0, 1, 0xff, 0x10]
        );
        assert_eq!(parse_mac("02-ab-00-01-ff-10").unwrap()[1], 0xab);
        assert_eq!(
            parse_mac("02aB.0001.fF10").unwrap(),
            [0x02, 0xab, 0, 1, 0xff, 0x10]
        );
        for bad in [
            "",
            "02:ab:00:01:ff",
            "02:ab:00:01:ff:10:11",
            "2:ab:00:01:ff:10",
            "zz:ab:00:01:ff:10",
            "02:ab-00:01:ff:10",
            "+2:ab:00:01:ff:10",
            "02ab.0001.ff10.",
            "02ab:0001.ff10",
            "02ab.0001.ff1g",
            "é2:ab:00:01:ff:1",
            "02:ab:00:01:ff:é",
            "02ab.0001.ffé",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
