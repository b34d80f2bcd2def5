//! A small deterministic input generator for the probe tests: a seeded
//! random source, Go-style key re-casing, and mutations of a JSON document
//! (keys dropped or re-cased, types flipped, hostile strings and numbers,
//! huge and deeply nested values) and of its text. Every hostile string
//! that names a file, a chain or a table carries [`CANARY`], so a test
//! can look for it afterwards.

use serde_json::{json, Map, Value};

/// The marker every injected name carries.
pub const CANARY: &str = "rcniprobe";

/// Files an injected path names; none may ever exist.
pub const CANARY_PATHS: &[&str] = &[
    "/tmp/rcniprobe-path",
    "/tmp/rcniprobe-shell",
    "/tmp/rcniprobe-abs",
    "/etc/rcniprobe-path",
    "/run/rcniprobe-path",
    "/var/lib/cni/rcniprobe-path",
];

/// A seeded xorshift generator, so a failing case can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed: nearby seeds give unrelated streams, and
        // the state is never zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// The next number of the stream (an endless stream, not an
    /// `Iterator`: the probe draws from it by hand).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// `key` with the case of its letters changed at random (and changed at
/// least once when it has letters).
pub fn recase_key(key: &str, rng: &mut Rng) -> String {
    loop {
        let mask = rng.next();
        let out: String = key
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        if out != key || !key.chars().any(|c| c.is_ascii_alphabetic()) {
            return out;
        }
    }
}

/// Every key re-cased, except the keys of maps that hold data rather than
/// fields (capability names, tuning's sysctl names), which Go matches
/// exactly too.
pub fn recase(value: &Value, rng: &mut Rng) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "capabilities" || k == "sysctl" {
                        v.clone()
                    } else {
                        recase(v, rng)
                    };
                    (recase_key(k, rng), v)
                })
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| recase(v, rng)).collect()),
        other => other.clone(),
    }
}

/// Strings that try to break out of where they are pasted: firewall
/// scripts (line breaks, `;`, `#`, quotes), shells, paths (`../`), logs
/// (control characters), and the length limits of names and comments.
/// None contains NUL: they also go into environment variables.
pub fn hostile_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "\n-A INPUT -j RCNIPROBE\n",
        "x\nCOMMIT\n*filter\n:RCNIPROBE - [0:0]\n-A INPUT -j RCNIPROBE\nCOMMIT\n",
        "x -j RCNIPROBE",
        "x; add table ip rcniprobe",
        "x\nadd table ip rcniprobe\n",
        "x } ; add table inet rcniprobe { chain c { } } ; #",
        "\" ; add table ip rcniprobe ; \"",
        "\"\n-A INPUT -j RCNIPROBE\n#\"",
        "x # rcniprobe",
        "'rcniprobe'",
        "$(touch /tmp/rcniprobe-shell)",
        "`touch /tmp/rcniprobe-shell`",
        "../../../../../../tmp/rcniprobe-path",
        "../../../../../../etc/rcniprobe-path",
        "../../../../../../run/rcniprobe-path",
        "../../../../../../var/lib/cni/rcniprobe-path",
        "/tmp/rcniprobe-abs",
        "..",
        ".",
        "/",
        "a/b",
        "\x01\x02\x07\x08\x1b[31mrcniprobe\x7f",
        "\t\r\x0b\x0c",
        "eth%d",
        "eth0:1",
        "eth0\n",
        " eth0",
        "lo",
        "-",
        "!",
        "--comment",
        "-j ACCEPT",
        "-1",
        "99999999999999999999",
        "0x10",
        "1e3",
        "NaN",
        "0.0.0.0/0",
        "::/0",
        "255.255.255.255",
        "10.99.0.1/33",
        "10.99.0.300",
        "1.2.3.4\n",
        "::ffff:10.99.0.5",
        "fe80::1%eth0",
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
        "01:00:5e:00:00:01",
        "02:00:00:00:00:4",
        "\u{e9}\u{202e}\u{feff}",
        "tcp\n",
        "TCP",
        "sctp",
        "icmp",
        "nftables",
        "iptables",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("a".repeat(16));
    v.push("a".repeat(256));
    v.push("rcniprobe-".repeat(500));
    v.push("a".repeat(70_000));
    v
}

/// Numbers at and beyond the edges of the fields they may land in.
fn hostile_number(rng: &mut Rng) -> Value {
    match rng.below(13) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(65535),
        3 => json!(65536),
        4 => json!(4094),
        5 => json!(4095),
        6 => json!(i32::MAX as i64 + 1),
        7 => json!(u32::MAX as u64 + 1),
        8 => json!(u64::MAX),
        9 => json!(i64::MIN),
        10 => json!(1e308),
        11 => json!(0.5),
        _ => json!(31 + rng.below(4)),
    }
}

/// Placeholders swapped for text too large or too deep to build as a
/// `Value` cheaply: see [`render`].
const HUGE: &str = "@RCNIPROBE-HUGE@";
const DEEP: &str = "@RCNIPROBE-DEEP@";

/// The paths (object keys and array indexes) of every node below `root`.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                prefix.push(Step::Key(k.clone()));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(Step::Index(i));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn parent_mut<'a>(root: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut node = root;
    for step in &path[..path.len() - 1] {
        node = match step {
            Step::Key(k) => node.get_mut(k)?,
            Step::Index(i) => node.get_mut(*i)?,
        };
    }
    Some(node)
}

/// A value of another type than `old`, or a hostile one of the same type.
fn replacement(old: &Value, rng: &mut Rng, strings: &[String]) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(rng.one_in(2)),
        2 => hostile_number(rng),
        3 => Value::String(rng.pick(strings).clone()),
        4 => json!([]),
        5 => json!({}),
        6 => json!([old.clone()]),
        7 => json!({"x": old.clone()}),
        8 => Value::String(if rng.one_in(2) { HUGE } else { DEEP }.into()),
        // Strings get the most attention: they are what is pasted.
        _ => match old {
            Value::String(s) => {
                let bad = rng.pick(strings);
                Value::String(match rng.below(3) {
                    0 => bad.clone(),
                    1 => format!("{s}{bad}"),
                    _ => format!("{bad}{s}"),
                })
            }
            Value::Number(_) => {
                if rng.one_in(2) {
                    Value::String(old.to_string())
                } else {
                    hostile_number(rng)
                }
            }
            Value::Bool(b) if rng.one_in(2) => json!(!b),
            Value::Bool(b) => json!(b.to_string()),
            _ => Value::String(rng.pick(strings).clone()),
        },
    }
}

/// Applies one random mutation to `root`. Keys named in `protected` keep
/// their value (they point the plugin at the test's temp dirs); they may
/// only be re-cased.
pub fn mutate(root: &mut Value, rng: &mut Rng, protected: &[&str], strings: &[String]) {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    if all.is_empty() {
        *root = replacement(root, rng, strings);
        return;
    }
    let path = rng.pick(&all).clone();
    let Some(parent) = parent_mut(root, &path) else {
        return;
    };
    match (parent, path.last()) {
        (Value::Object(m), Some(Step::Key(k))) => {
            let is_protected = protected.contains(&k.as_str());
            match rng.below(6) {
                0 if !is_protected => {
                    m.remove(k);
                }
                1 => {
                    if let Some(v) = m.remove(k) {
                        m.insert(recase_key(k, rng), v);
                    }
                }
                // The same key twice in two spellings: which one wins?
                2 if !is_protected => {
                    let other = replacement(&m[k.as_str()], rng, strings);
                    m.insert(recase_key(k, rng), other);
                }
                _ if !is_protected => {
                    let new = replacement(&m[k.as_str()], rng, strings);
                    m.insert(k.clone(), new);
                }
                _ => {}
            }
        }
        (Value::Array(items), Some(Step::Index(i))) => match rng.below(4) {
            0 => {
                items.remove(*i);
            }
            1 => {
                let copy = items[*i].clone();
                items.insert(*i, copy);
            }
            _ => items[*i] = replacement(&items[*i], rng, strings),
        },
        _ => {}
    }
}

/// The text of `value`, placeholders expanded: a 2 MB array, or nesting
/// 100,000 levels deep (far beyond any JSON parser's recursion limit).
pub fn render(value: &Value) -> Vec<u8> {
    let mut text = value.to_string();
    if text.contains(HUGE) {
        let huge = format!("[{}1]", "1,".repeat(1_000_000));
        text = text.replace(&format!("\"{HUGE}\""), &huge);
    }
    if text.contains(DEEP) {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        text = text.replace(&format!("\"{DEEP}\""), &deep);
    }
    text.into_bytes()
}

/// Damages the text itself: cut short, stray or invalid UTF-8 bytes,
/// two documents, a byte-order mark, nothing at all.
pub fn mutate_text(mut text: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let at = rng.below(text.len().max(1));
    match rng.below(6) {
        0 => text.truncate(at),
        1 => text.insert(at, *rng.pick(&[0xff, 0xc3, b'\\', b'"', b'}', 0])),
        2 => {
            let copy = text.clone();
            text.extend_from_slice(&copy);
        }
        3 => {
            let mut bom = vec![0xef, 0xbb, 0xbf];
            bom.extend_from_slice(&text);
            text = bom;
        }
        4 => text.clear(),
        _ => text.extend_from_slice(b"\n garbage"),
    }
    text
}
