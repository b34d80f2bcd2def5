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

/// Parses a 6-byte MAC (`aa:bb:cc:dd:ee:ff` or with `-`; case-insensitive).
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = || NetError::InvalidArgument(format!("invalid MAC address {s:?}"));
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in &mut out {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
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
        for bad in [
            "",
            "02:ab:00:01:ff",
            "02:ab:00:01:ff:10:11",
            "2:ab:00:01:ff:10",
            "zz:ab:00:01:ff:10",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
