//! resolv.conf parsing for host-local's `resolvConf` key, as the
//! reference's `parseResolvConf` (`plugins/ipam/host-local/dns.go`).

use crate::error::IpamError;
use std::path::Path;

/// What host-local reports as the result's `dns`. The fields are those of
/// the CNI result's DNS object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub domain: String,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// The most of a resolv.conf that is read.
const MAX_RESOLV_CONF: u64 = 1024 * 1024;

/// Reads `path` and parses it with [`parse_resolv_conf_text`]. Opened
/// non-blocking and read up to [`MAX_RESOLV_CONF`], so a FIFO or an
/// endless device under that name cannot hang the call.
pub fn parse_resolv_conf(path: &Path) -> Result<ResolvConf, IpamError> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let error = IpamError::io("cannot read resolvConf", path);
    let file = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(std::fs::File::from)
    .map_err(std::io::Error::from);
    let mut data = Vec::new();
    file.and_then(|f| f.take(MAX_RESOLV_CONF).read_to_end(&mut data))
        .map_err(error)?;
    Ok(parse_resolv_conf_text(&String::from_utf8_lossy(&data)))
}

/// Every `nameserver` (its first value), the last `domain`, every
/// `search` and `options` value, in order; blank lines, lines starting
/// with `#` or `;` and lines with fewer than two words are skipped, as are
/// unknown keywords.
pub fn parse_resolv_conf_text(text: &str) -> ResolvConf {
    let mut dns = ResolvConf::default();
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
        let dns = parse_resolv_conf_text(
            "# c\r\nnameserver 1.1.1.1\n  nameserver ::1 extra\ndomain d\ndomain e f\nsearch a b\n;x\n\noptions ndots:5 rotate\noptions edns0\nbogus\nsortlist 1.2.3.4\nnameserver\n",
        );
        assert_eq!(dns.nameservers, ["1.1.1.1", "::1"]);
        assert_eq!(dns.domain, "e");
        assert_eq!(dns.search, ["a", "b"]);
        assert_eq!(dns.options, ["ndots:5", "rotate", "edns0"]);
    }

    #[test]
    fn reads_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("resolv.conf");
        std::fs::write(&p, "nameserver 192.0.2.3").unwrap();
        assert_eq!(
            parse_resolv_conf(&p).unwrap(),
            ResolvConf {
                nameservers: vec!["192.0.2.3".into()],
                ..Default::default()
            }
        );
        let e = parse_resolv_conf(&d.path().join("missing")).unwrap_err();
        assert!(e.is_io() && e.to_string().contains("missing"), "{e}");
        std::fs::write(&p, b"search \xff\xfe x\n").unwrap();
        assert_eq!(parse_resolv_conf(&p).unwrap().search.len(), 2);
    }
}
