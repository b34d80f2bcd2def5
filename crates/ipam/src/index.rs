//! rcni's index of a host-local store: for each address file rcni has
//! seen, its inode number and its owner, so that ADD's duplicate check and
//! DEL's release by container ID cost one listing of the directory instead
//! of reading every file.
//!
//! It is the file `rcni-index` in the store. The reference never takes it
//! for an allocation: it reserves only names that parse as an address and
//! matches owners by comparing a file's whole trimmed contents to
//! `<id>\r\n<ifname>` or `<id>`, which the header line (it holds spaces, a
//! container ID cannot) keeps this file from ever equalling.
//!
//! The header holds a digest of the directory's listing (names and inode
//! numbers) as rcni last left it, kept up to date by every change rcni
//! makes, the number of names listed, a hash of the lines, their number,
//! and a stamp: the directory's change time once rcni has proven that any
//! later change to the directory gets another one (see
//! `DiskStore::seal_index`). While the directory still has that change time,
//! nobody changed its listing and a walk need not list it; when a walk's
//! listing has the digest, the same holds. Either way an attachment's files
//! are found by searching the index for its ID instead of matching every
//! line. Otherwise each line is believed only for a file of its name, its
//! inode number and its change time (a `statx`, no read: ext4 soon hands a
//! freed inode number out again, so a name released and taken again by the
//! reference can come back with the same inode); the other files (the
//! reference wrote them, or the index was lost) are read and added. Lines
//! that do not hash to the header's hash (a write torn by a crash, damage)
//! are not believed at all: the index is rebuilt from the files. A digest
//! or a stamp of 0 means unknown.
//!
//! The lines are kept a multiple of 8 bytes long (the last line of each
//! write padded with spaces), so that an append extends the hash.

use crate::store::LINE_BREAK;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The index's file name in the store.
pub const INDEX_FILE: &str = "rcni-index";
/// The first line of a valid index, before the header's fields.
pub const HEADER_PREFIX: &str = "# rcni host-local index v2 ";
/// Where the header's fields are in the file.
pub const FIELDS_AT: u64 = HEADER_PREFIX.len() as u64;
/// The length of the header's fields: five of 16 hex digits, spaces
/// between.
const FIELDS_LEN: usize = 5 * 17 - 1;
/// The length of the first line.
pub const HEADER_LEN: usize = HEADER_PREFIX.len() + FIELDS_LEN + 1;
/// The hash of no lines.
pub const EMPTY_HASH: u64 = 0x6a09_e667_f3bc_c908;
/// Owners longer than this stay out of the index (their file is read on
/// each walk): it keeps the index small whatever IDs the runtime uses.
const MAX_INDEXED_OWNER: usize = 512;

/// What the first line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The listing's digest (0: unknown).
    pub digest: u64,
    /// The hash of the lines.
    pub hash: u64,
    /// How many lines there are.
    pub lines: u64,
    /// How many names the digest counts (meaningful with a digest).
    pub listed: u64,
    /// The directory's change time, in nanoseconds, when the digest was
    /// last known to be its listing's (0: unknown).
    pub stamp: u64,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            digest: 0,
            hash: EMPTY_HASH,
            lines: 0,
            listed: 0,
            stamp: 0,
        }
    }
}

impl Header {
    /// The fields, as written at [`FIELDS_AT`].
    pub fn fields(&self) -> String {
        format!(
            "{:016x} {:016x} {:016x} {:016x} {:016x}",
            self.digest, self.hash, self.lines, self.listed, self.stamp
        )
    }

    /// The whole first line.
    pub fn line(&self) -> String {
        format!("{HEADER_PREFIX}{}\n", self.fields())
    }

    /// The header after `more` lines, `count` of them, are appended;
    /// `None` when `more` does not keep the lines a multiple of 8 bytes.
    pub fn extended(&self, more: &str, count: usize) -> Option<Header> {
        Some(Header {
            hash: extend_hash(self.hash, more.as_bytes())?,
            lines: self.lines.saturating_add(count as u64),
            ..*self
        })
    }
}

/// The header and the lines of a text that begins with a header (the
/// lines not checked against its hash).
pub fn split_header(text: &str) -> Option<(Header, &str)> {
    let fields = text.strip_prefix(HEADER_PREFIX)?.get(..=FIELDS_LEN)?;
    let mut parts = fields.strip_suffix('\n')?.split(' ');
    let mut field = || u64::from_str_radix(parts.next()?, 16).ok();
    let header = Header {
        digest: field()?,
        hash: field()?,
        lines: field()?,
        listed: field()?,
        stamp: field()?,
    };
    Some((header, &text[HEADER_LEN..]))
}

/// What one directory entry adds to the listing's digest.
pub fn digest_of(name: &str, ino: u64) -> u64 {
    let bytes = name.as_bytes();
    let whole = bytes.len() / 8 * 8;
    let mut tail = [0xffu8; 8];
    tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
    let name_hash = extend_hash(EMPTY_HASH, &bytes[..whole])
        .and_then(|h| extend_hash(h, &tail))
        .unwrap_or_default();
    name_hash.rotate_left(17) ^ ino.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Whether a name in the store is left out of the digest: the files rcni
/// and the reference rewrite in place or replace on their own.
pub fn outside_digest(name: &str) -> bool {
    matches!(name, "." | ".." | INDEX_FILE | crate::store::LOCK_FILE)
        || name.starts_with(crate::store::LAST_RESERVED_PREFIX)
}

/// Extends the hash `hash` of the lines by `more` (a multiple of 8 bytes
/// long); `None` otherwise. Eight bytes a step: every walk hashes the
/// whole index.
pub fn extend_hash(hash: u64, more: &[u8]) -> Option<u64> {
    if !more.len().is_multiple_of(8) {
        return None;
    }
    Some(more.chunks_exact(8).fold(hash, |h, c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29)
    }))
}

/// Pads `lines` (ending in a newline, or empty) with spaces before the
/// final newline to a multiple of 8 bytes.
pub fn pad(lines: &mut String) {
    if !lines.len().is_multiple_of(8) {
        lines.pop();
        while lines.len() % 8 != 7 {
            lines.push(' ');
        }
        lines.push('\n');
    }
}

/// The owner an address file records, as the reference compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    pub id: &'a str,
    /// `None` for the legacy format that recorded only the container ID.
    pub ifname: Option<&'a str>,
}

impl<'a> Owner<'a> {
    /// The owner recorded in a file's whitespace-trimmed contents.
    pub fn parse(trimmed: &'a str) -> Owner<'a> {
        match trimmed.split_once(LINE_BREAK) {
            Some((id, ifname)) => Owner {
                id,
                ifname: Some(ifname),
            },
            None => Owner {
                id: trimmed,
                ifname: None,
            },
        }
    }

    /// Whether the file holds exactly `<id>\r\n<ifname>` (`id` trimmed).
    pub fn is_exact(&self, id: &str, ifname: &str) -> bool {
        self.ifname == Some(ifname) && self.id == id
    }

    /// Whether the file holds the legacy `<id>` (`id` trimmed).
    pub fn is_legacy(&self, id: &str) -> bool {
        self.ifname.is_none() && self.id == id
    }
}

/// Which file a name stood for: a file replaced under the same name has
/// another inode number, or another change time if ext4 reused the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub ino: u64,
    /// The change time in nanoseconds.
    pub ctime: u64,
}

impl FileId {
    /// The identity of a file from its metadata.
    pub fn of(stat: &rustix::fs::Stat) -> FileId {
        FileId {
            ino: stat.st_ino,
            ctime: (stat.st_ctime as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(stat.st_ctime_nsec),
        }
    }
}

/// One line of the index.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub file: FileId,
    pub owner: Owner<'a>,
    /// The whole line with its newline, to copy when the index is rewritten.
    pub line: &'a str,
}

/// A parsed index.
#[derive(Debug, Default)]
pub struct Index<'a> {
    /// Whether the text has a header and lines of its hash; if not, no
    /// line is believed and the index is rebuilt.
    pub valid: bool,
    pub header: Header,
    /// By inode number (a line counts only for a file of its name); a
    /// later line replaces an earlier one.
    pub entries: HashMap<u64, Entry<'a>, BuildHasherDefault<InodeHasher>>,
    /// Lines in the file, live or not (to tell when to compact it).
    pub lines: usize,
}

/// Inode numbers are already spread: one multiplication mixes them
/// enough, where the default hasher would cost more than the lookup.
#[derive(Default)]
pub struct InodeHasher(u64);

impl Hasher for InodeHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|b| self.write_u64(u64::from(*b)));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Parses the index's text: nothing when it has no header or its lines do
/// not have the header's hash.
pub fn parse(text: &str) -> Index<'_> {
    let Some((header, body)) = split_header(text) else {
        return Index::default();
    };
    if extend_hash(EMPTY_HASH, body.as_bytes()) != Some(header.hash) {
        return Index::default();
    }
    let mut index = Index {
        valid: true,
        header,
        entries: HashMap::with_capacity_and_hasher(body.len() / 32, Default::default()),
        lines: 0,
    };
    let mut rest = body;
    while let Some(end) = rest.find('\n') {
        let line = &rest[..=end];
        rest = &rest[end + 1..];
        index.lines += 1;
        if let Some((ino, entry)) = parse_line(line) {
            index.entries.insert(ino, entry);
        }
    }
    index
}

/// The lines of `body` (the index after its header) that give `id`
/// (trimmed) as the owner, found by a vectorised search for the ID rather
/// than a parse of every line; a line that is not UTF-8 is no one's.
pub fn lines_of<'a>(body: &'a [u8], id: &str) -> Vec<Entry<'a>> {
    let needle = format!("\t{id}");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = search::find(&body[from..], needle.as_bytes()).map(|n| from + n) {
        let start = search::newline(&body[..at], true).map_or(0, |n| n + 1);
        let end = search::newline(&body[at..], false).map_or(body.len(), |n| at + n + 1);
        from = end;
        let Ok(line) = std::str::from_utf8(&body[start..end]) else {
            continue;
        };
        if let Some((_, entry)) = parse_line(line) {
            if entry.owner.id == id {
                found.push(entry);
            }
        }
    }
    found
}

/// Byte searches that never probe the CPU. memchr's generic entry points
/// look for AVX2 with CPUID on their first use, and in a virtual machine
/// each CPUID is an exit to the hypervisor: the probe cost a plugin more
/// than its search. SSE2 is part of x86_64, so its searchers need no
/// probe; other targets use the portable ones.
mod search {
    /// Where `needle` first occurs in `hay`.
    pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        {
            use memchr::arch::x86_64::sse2::packedpair::Finder;
            if let Some(f) = Finder::new(needle).filter(|f| hay.len() >= f.min_haystack_len()) {
                return f.find(hay, needle);
            }
        }
        memchr::arch::all::rabinkarp::Finder::new(needle).find(hay, needle)
    }

    /// The first (or with `last`, the last) newline in `hay`.
    pub fn newline(hay: &[u8], last: bool) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(one) = memchr::arch::x86_64::sse2::memchr::One::new(b'\n') {
                return if last { one.rfind(hay) } else { one.find(hay) };
            }
        }
        let one = memchr::arch::all::memchr::One::new(b'\n');
        if last {
            one.rfind(hay)
        } else {
            one.find(hay)
        }
    }
}

fn parse_line(line: &str) -> Option<(u64, Entry<'_>)> {
    let fields = line.strip_suffix('\n')?.trim_end_matches(' ');
    let mut parts = fields.split('\t');
    let name = parts.next()?;
    let ino = parts.next()?.parse().ok()?;
    let ctime = parts.next()?.parse().ok()?;
    let id = parts.next()?;
    let ifname = parts.next();
    if parts.next().is_some() {
        return None;
    }
    Some((
        ino,
        Entry {
            name,
            file: FileId { ino, ctime },
            owner: Owner { id, ifname },
            line,
        },
    ))
}

/// The index line for file `name` (which is `file`) held by `owner`;
/// `None` when the owner cannot be written on one line or is too long to
/// index.
pub fn line(name: &str, file: FileId, owner: Owner<'_>) -> Option<String> {
    let plain = |s: &str| !s.contains(['\t', '\n', '\r']) && s.trim_end() == s;
    let ifname = owner.ifname.unwrap_or_default();
    if !plain(name)
        || !plain(owner.id)
        || !plain(ifname)
        || owner.id.len() + ifname.len() > MAX_INDEXED_OWNER
    {
        return None;
    }
    let FileId { ino, ctime } = file;
    Some(match owner.ifname {
        Some(ifname) => format!("{name}\t{ino}\t{ctime}\t{}\t{ifname}\n", owner.id),
        None => format!("{name}\t{ino}\t{ctime}\t{}\n", owner.id),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn searches_agree_with_a_naive_one() {
        let naive = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
        let text: Vec<u8> = (0..3000u32)
            .flat_map(|i| format!("10.1.{}.{}\tid{}\n", i / 250, i % 250, i % 97).into_bytes())
            .collect();
        for len in [0, 1, 5, 17, 40, 100, text.len()] {
            let hay = &text[..len];
            for needle in ["\tid96", "\tid9\n", "\t", "1.11.", "zz", "\tid3\n10.1"] {
                assert_eq!(
                    search::find(hay, needle.as_bytes()),
                    naive(hay, needle.as_bytes())
                );
            }
            let first = hay.iter().position(|b| *b == b'\n');
            let last = hay.iter().rposition(|b| *b == b'\n');
            assert_eq!(
                (search::newline(hay, false), search::newline(hay, true)),
                (first, last)
            );
        }
    }

    use super::*;

    fn id(ino: u64) -> FileId {
        FileId { ino, ctime: 7 }
    }

    fn index_text(lines: &str) -> String {
        let mut lines = lines.to_string();
        pad(&mut lines);
        let header = Header::default()
            .extended(&lines, lines.matches('\n').count())
            .unwrap();
        format!(
            "{}{lines}",
            Header {
                digest: 42,
                listed: 2,
                stamp: 1_796_000_000_123_456_789,
                ..header
            }
            .line()
        )
    }

    #[test]
    fn lines_round_trip_and_damage_is_not_believed() {
        let exact = Owner::parse("c1\r\neth0");
        let legacy = Owner::parse("old");
        let a = line("10.0.0.2", id(17), exact).unwrap();
        let b = line("fd00::3", id(18), legacy).unwrap();
        let text = index_text(&format!("{a}{b}"));
        assert_eq!(text.len() % 8, HEADER_LEN % 8);
        let index = parse(&text);
        assert!(index.valid);
        assert_eq!(index.lines, 2);
        let Header {
            digest,
            lines,
            listed,
            stamp,
            ..
        } = index.header;
        assert_eq!((digest, lines, listed), (42, 2, 2));
        assert_eq!(stamp, 1_796_000_000_123_456_789);
        assert_eq!(index.entries[&17].owner, exact);
        assert_eq!(index.entries[&17].name, "10.0.0.2");
        assert_eq!(index.entries[&17].line, a);
        assert_eq!(index.entries[&18].owner, legacy);
        let (_, body) = split_header(&text).unwrap();
        let body = body.as_bytes();
        assert_eq!(lines_of(body, "c1")[0].name, "10.0.0.2");
        assert_eq!(lines_of(body, "old")[0].name, "fd00::3");
        assert!(lines_of(body, "c").is_empty());
        // A line that is not UTF-8 is skipped; the lines after it are found.
        let mut mixed = b"10.0.0.7\t5\t7\tc1\t\xff\n".to_vec();
        mixed.extend_from_slice(body);
        let found = lines_of(&mixed, "c1");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "10.0.0.2");
        assert!(exact.is_exact("c1", "eth0") && !exact.is_legacy("c1"));
        assert!(legacy.is_legacy("old") && !legacy.is_exact("old", "eth0"));
        // One changed byte, a torn append, no header.
        for damaged in [
            text.replace("c1", "c2"),
            format!("{text}10.0.0.9\t12"),
            text[HEADER_LEN..].to_string(),
        ] {
            let index = parse(&damaged);
            assert!(!index.valid && index.entries.is_empty(), "{damaged:?}");
        }
        assert!(!parse("").valid);
    }

    #[test]
    fn owners_that_do_not_fit_one_line_stay_out() {
        assert!(line("10.0.0.2", id(1), Owner::parse("a\tb")).is_none());
        assert!(line("10.0.0.2", id(1), Owner::parse("a\r\nb\r\nc")).is_none());
        assert!(line("10.0.0.2", id(1), Owner::parse("a\nb")).is_none());
        assert!(line("10.0.0.2", id(1), Owner::parse(&"a".repeat(600))).is_none());
        // An empty file: the legacy owner "".
        let empty = line("10.0.0.2", id(1), Owner::parse("")).unwrap();
        assert_eq!(
            parse(&index_text(&empty)).entries[&1].owner,
            Owner::parse("")
        );
    }
}
