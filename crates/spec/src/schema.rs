//! What a plugin's config may hold, for `rcni help` and `rcni
//! check-config`. Each plugin declares its keys next to the struct it
//! decodes them with, and a unit test holds the two together
//! ([`crate::gojson::field_names`]), so the help and the checks cannot
//! drift from what the plugin really reads.

use crate::config::PluginConf;
use crate::CniError;

/// One key of a plugin's own config.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// As a user writes it: `string`, `bool`, `uint32`, `[string]`, ...
    pub ty: &'static str,
    /// The value when the key is absent ("" when there is none).
    pub default: &'static str,
    pub meaning: &'static str,
}

/// A plugin's config as documented and checked.
#[derive(Debug)]
pub struct Schema {
    /// What the plugin does, in one line.
    pub about: &'static str,
    /// The plugin's own keys (for an IPAM plugin: the keys of `ipam`).
    pub keys: &'static [Key],
    /// The capabilities it reads from `runtimeConfig`.
    pub capabilities: &'static [&'static str],
    /// A whole working config.
    pub example: &'static str,
    /// Decodes the plugin's keys as the plugin does (types, ranges): the
    /// config's errors, if any, each naming its key.
    pub check: fn(&PluginConf) -> Result<(), CniError>,
}

/// The keys every plugin's config may hold (the spec's, and what runtimes
/// inject), besides its own.
pub const COMMON_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "ipam",
    "dns",
    "capabilities",
    "runtimeConfig",
    "args",
    "prevResult",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
];

impl Schema {
    /// Whether `key` is one this plugin reads (Go's case rule).
    pub fn knows(&self, key: &str) -> bool {
        COMMON_KEYS
            .iter()
            .copied()
            .chain(self.keys.iter().map(|k| k.name))
            .any(|known| crate::gojson::fold_eq(known, key))
    }

    /// How the declared keys differ from the fields `T` decodes (empty
    /// when they agree): each plugin's unit test asserts it is empty.
    pub fn drift<T: serde::de::DeserializeOwned>(&self) -> Vec<String> {
        let fields = crate::gojson::field_names::<T>();
        let undeclared = fields
            .iter()
            .filter(|f| !self.keys.iter().any(|k| k.name == **f))
            .map(|f| format!("{f}: decoded but not declared"));
        let unread = self
            .keys
            .iter()
            .filter(|k| !fields.contains(&k.name))
            .map(|k| format!("{}: declared but not decoded", k.name));
        undeclared.chain(unread).collect()
    }

    /// The known key nearest to a misspelt one, if it is near enough to
    /// be the likely intent (`ipMasqq` → `ipMasq`).
    pub fn closest(&self, key: &str) -> Option<&'static str> {
        nearest(
            key,
            self.keys
                .iter()
                .map(|k| k.name)
                .chain(COMMON_KEYS.iter().copied()),
        )
    }
}

/// Of `candidates`, the one nearest to `key` up to case, if near enough
/// to be what was meant: within two edits, or a quarter of its length.
pub fn nearest<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|known| (edit_distance(&lower, &known.to_ascii_lowercase()), known))
        .filter(|(d, known)| *d <= 2.max(known.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

/// Levenshtein distance, for typo hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: Schema = Schema {
        about: "demo",
        keys: &[
            Key {
                name: "ipMasq",
                ty: "bool",
                default: "false",
                meaning: "masquerade",
            },
            Key {
                name: "mtu",
                ty: "uint32",
                default: "",
                meaning: "MTU",
            },
        ],
        capabilities: &[],
        example: "{}",
        check: |_| Ok(()),
    };

    #[test]
    fn typos_find_their_key() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(DEMO.closest("ipMasqq"), Some("ipMasq"));
        assert_eq!(DEMO.closest("IPMASK"), Some("ipMasq"));
        assert_eq!(DEMO.closest("nmae"), Some("name"));
        assert_eq!(DEMO.closest("somethingelse"), None);
        assert!(DEMO.knows("MTU") && DEMO.knows("cniversion") && !DEMO.knows("mtuu"));
    }
}
