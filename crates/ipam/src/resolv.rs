//! resolv.conf parsing for host-local's `resolvConf` key.

use crate::error::IpamError;
use rcni_spec::Dns;
use std::path::Path;

/// Reads `nameserver`, `domain`, `search` and `options` lines as the
/// reference does (comments and short lines skipped).
pub fn parse_resolv_conf(path: &Path) -> Result<Dns, IpamError> {
    let text =
        std::fs::read_to_string(path).map_err(IpamError::io("cannot read resolvConf", path))?;
    Ok(parse_text(&text))
}

fn parse_text(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 2 {
            continue;
        }
        let rest = fields[1..].iter().map(|s| s.to_string());
        match fields[0] {
            "nameserver" => dns.nameservers.push(fields[1].to_string()),
            "domain" => dns.domain = fields[1].to_string(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let dns = parse_text("# c\nnameserver 1.1.1.1\nnameserver ::1\ndomain d\nsearch a b\n;x\noptions ndots:5 rotate\nbogus\n");
        assert_eq!(dns.nameservers, ["1.1.1.1", "::1"]);
        assert_eq!(dns.domain, "d");
        assert_eq!(dns.search, ["a", "b"]);
        assert_eq!(dns.options, ["ndots:5", "rotate"]);
    }
}
