//! Deltas at collect time (RFC 9842, see `crate::delta`): for each hashed file of a
//! delta-eligible type that this run writes anew, the other versions of the same logical
//! file that the last K generations published, and still in STATIC_ROOT (old hashed files
//! stay until `staticd prune`), are its dictionaries. The [`Compressor`](super::variants)
//! makes a dcb and a dcz of the new bytes against each, in its pool and through the variant
//! cache, and keeps those clearly smaller than the best ordinary answer.
//!
//! Only changed files get deltas: an output the old tree already holds is reused, never
//! handed to the compressor, and its deltas from the run that wrote it are still there.
use super::cache::Cache;
use super::compress::Variants;
use super::generations::History;
use super::naming::hashed_name;
use crate::delta::{self, format, Coding};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Stands for the fingerprint in a hashed name: no file name holds these characters, and
/// fingerprints are always 12 characters (blake3 or md5 hex).
const HOLE: &str = "\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}\u{1}";
const FINGERPRINT_LEN: usize = 12;

/// The earlier versions of every logical file, from the generations record.
#[derive(Debug)]
pub struct Finder {
    root: PathBuf,
    opts: delta::Options,
    /// A hashed name with its fingerprint replaced by [`HOLE`] → the names of that shape in
    /// the last K generations, newest first.
    index: HashMap<String, Vec<String>>,
}

/// An earlier version: its name and bytes, and the SHA-256 a browser names it by.
#[derive(Debug, Clone)]
pub struct Dictionary {
    pub name: String,
    pub bytes: Arc<[u8]>,
    pub sha: [u8; 32],
}

impl Finder {
    /// The finder of STATIC_ROOT `root`, from the generations recorded beside it.
    pub fn new(root: &Path, opts: &delta::Options) -> Finder {
        Self::of(root, opts, &History::load(root))
    }

    pub fn of(root: &Path, opts: &delta::Options, history: &History) -> Finder {
        let mut index: HashMap<String, Vec<String>> = HashMap::new();
        let recent = history.generations.iter().rev().take(opts.generations);
        for file in recent.flat_map(|g| g.files.iter()) {
            if !opts.eligible(file) {
                continue;
            }
            for shape in shapes(file) {
                let names = index.entry(shape).or_default();
                if !names.contains(file) {
                    names.push(file.clone());
                }
            }
        }
        Finder {
            root: root.to_path_buf(),
            opts: opts.clone(),
            index,
        }
    }

    /// The codings to make, in [`Coding::ALL`] order, each once.
    pub fn codings(&self) -> Vec<Coding> {
        Coding::ALL
            .into_iter()
            .filter(|c| self.opts.codings.contains(c))
            .collect()
    }

    /// Whether `hashed` (a hashed output's path) is of a type that gets deltas.
    pub fn eligible(&self, hashed: &str) -> bool {
        self.opts.eligible(hashed)
    }

    /// The names other than `current` that the last K generations gave `logical`, newest
    /// first.
    pub fn earlier(&self, logical: &str, current: &str) -> Vec<&str> {
        let shape = hashed_name(logical, HOLE);
        self.index
            .get(&shape)
            .map(|names| {
                names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| *n != current)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`Finder::earlier`] with the bytes of each that is still in STATIC_ROOT, skipping
    /// any with the same bytes as `current_bytes` (a rename back) or the same as a newer one.
    pub fn dictionaries(
        &self,
        logical: &str,
        current: &str,
        current_bytes: &[u8],
    ) -> Vec<Dictionary> {
        let mut out: Vec<Dictionary> = Vec::new();
        let current_sha = format::sha256(current_bytes);
        for name in self.earlier(logical, current) {
            let Ok(bytes) = std::fs::read(self.root.join(name)) else {
                continue;
            };
            let sha = format::sha256(&bytes);
            if sha == current_sha || out.iter().any(|d| d.sha == sha) {
                continue;
            }
            out.push(Dictionary {
                name: name.to_string(),
                bytes: bytes.into(),
                sha,
            });
        }
        out
    }
}

/// Each way `file` could be a hashed name: itself with one `.`-delimited segment of 12
/// lowercase hex digits replaced by [`HOLE`] (usually there is one such segment).
fn shapes(file: &str) -> Vec<String> {
    let dir_end = file.rfind('/').map_or(0, |i| i + 1);
    let b = file.as_bytes();
    let mut out = Vec::new();
    for i in dir_end..b.len() {
        let end = i + FINGERPRINT_LEN;
        let starts = i > dir_end && b[i - 1] == b'.';
        let ends = end == b.len() || b.get(end) == Some(&b'.');
        if starts
            && ends
            && end <= b.len()
            && b[i..end]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        {
            out.push(format!("{}{HOLE}{}", &file[..i], &file[end..]));
        }
    }
    out
}

/// The variant-cache key of the deltas of `data` against `dict`: both digests and every
/// setting that changes the encoders' output.
pub fn cache_key(data: &[u8], dict: &[u8], codings: &[Coding]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"staticd deltas: dcb=q11 dcz=19 rfc9842-windows v1\0");
    // An entry holds the codings that were made: one made without dcb must not answer for
    // a run that wants it. Both (the default) adds nothing, so older entries stay valid.
    if codings != Coding::ALL {
        for c in codings {
            h.update(c.token().as_bytes());
        }
        h.update(b"\0");
    }
    h.update(blake3::hash(data).as_bytes());
    h.update(blake3::hash(dict).as_bytes());
    h.finalize().to_hex().to_string()
}

/// A cache entry holds the pair in a [`Variants`] record: dcb in its brotli slot, dcz in
/// its zstd slot (the cache stores bytes, the key says what they are).
pub fn to_cached(dcb: Option<Vec<u8>>, dcz: Option<Vec<u8>>) -> Variants {
    Variants {
        br: dcb,
        gz: None,
        zst: dcz,
    }
}

/// The pair back from a cache entry.
pub fn from_cached(v: Variants) -> [Option<Vec<u8>>; 2] {
    [v.br, v.zst]
}

/// Looks the pair up; `None` on a miss (a damaged entry counts as one).
pub fn lookup(cache: Option<&Cache>, key: &str) -> Option<[Option<Vec<u8>>; 2]> {
    match cache?.get(key) {
        super::cache::Lookup::Hit(v) => Some(from_cached(v)),
        _ => None,
    }
}

/// The deltas of one output kept after comparing them with its ordinary variants: each
/// `(file name, bytes)`.
pub fn keep(
    target: &str,
    dict: &[u8; 32],
    made: &[Option<Vec<u8>>; 2],
    identity_len: usize,
    variants: &Variants,
) -> Vec<(String, Vec<u8>)> {
    let best = variants
        .iter()
        .map(|(_, b)| b.len())
        .chain([identity_len])
        .min()
        .unwrap_or(identity_len);
    Coding::ALL
        .iter()
        .zip(made)
        .filter_map(|(&c, d)| {
            let d = d.as_ref()?;
            delta::worth_keeping(d.len(), best)
                .then(|| (delta::file_name(target, dict, c), d.clone()))
        })
        .collect()
}

/// What delta making did in one collect (`deltas` in `--format json`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Changed files that had at least one earlier version to make deltas against.
    pub files: usize,
    /// (file, dictionary) pairs whose deltas were made this run (cache misses).
    pub made: usize,
    /// Pairs whose deltas came from the variant cache.
    pub cache_hits: usize,
    /// Delta files written (kept: clearly smaller than the best ordinary variant).
    pub written: usize,
    /// Deltas made or found but not kept (not clearly smaller).
    pub dropped: usize,
    /// CPU time the delta encoders took this run, in milliseconds (they run beside the
    /// ordinary compressions, so this is work, not added wall time).
    pub cpu_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(gens: &[&[&str]]) -> History {
        let mut h = History::default();
        for (i, files) in gens.iter().enumerate() {
            h.record(
                &format!("m{i}"),
                files.iter().map(|f| f.to_string()).collect(),
            );
        }
        h
    }

    #[test]
    fn earlier_versions_of_a_logical_name_newest_first_within_k() {
        let h = history(&[
            &["js/app.000000000001.js", "css/s.00000000000a.css"],
            &["js/app.000000000002.js", "css/s.00000000000a.css"],
            &["js/app.000000000003.js", "js/app.min.000000000009.js"],
            &["js/app.000000000004.js", "img/a.00000000000b.png"],
        ]);
        let opts = delta::Options::default();
        let f = Finder::of(Path::new("/nonexistent"), &opts, &h);
        assert_eq!(
            f.earlier("js/app.js", "js/app.000000000005.js"),
            [
                "js/app.000000000004.js",
                "js/app.000000000003.js",
                "js/app.000000000002.js"
            ]
        );
        assert_eq!(
            f.earlier("js/app.js", "js/app.000000000004.js"),
            ["js/app.000000000003.js", "js/app.000000000002.js"]
        );
        assert_eq!(
            f.earlier("js/app.min.js", "x"),
            ["js/app.min.000000000009.js"]
        );
        assert_eq!(f.earlier("css/s.css", "x"), ["css/s.00000000000a.css"]);
        assert!(f.earlier("img/a.png", "x").is_empty(), "not eligible");
        assert!(f.earlier("js/other.js", "x").is_empty());
        let one = delta::Options {
            generations: 1,
            ..delta::Options::default()
        };
        let f = Finder::of(Path::new("/"), &one, &h);
        assert_eq!(f.earlier("js/app.js", "x"), ["js/app.000000000004.js"]);
    }

    #[test]
    fn shapes_follow_djangos_hashed_names() {
        for logical in [
            "a/b.js",
            "app.js.map",
            "LICENSE.js",
            "x/.hidden.js",
            "a..b.css",
        ] {
            let hashed = hashed_name(logical, "0123456789ab");
            assert!(
                shapes(&hashed).contains(&hashed_name(logical, HOLE)),
                "{logical} → {hashed}"
            );
        }
        assert!(shapes("js/app.js").is_empty());
        assert!(
            shapes("js/app.0123456789AB.js").is_empty(),
            "uppercase is no fingerprint"
        );
    }

    #[test]
    fn dictionaries_are_read_from_the_root_and_deduplicated() {
        let t = tempfile::tempdir().unwrap();
        let write = |n: &str, b: &[u8]| {
            std::fs::create_dir_all(t.path().join("js")).unwrap();
            std::fs::write(t.path().join(n), b).unwrap();
        };
        write("js/app.000000000001.js", b"one");
        write("js/app.000000000002.js", b"one");
        // 000000000003 was pruned: no file.
        write("js/app.000000000004.js", b"new");
        let h = history(&[
            &["js/app.000000000001.js"],
            &["js/app.000000000002.js"],
            &["js/app.000000000003.js"],
            &["js/app.000000000004.js"],
        ]);
        let opts = delta::Options {
            generations: 4,
            ..Default::default()
        };
        let f = Finder::of(t.path(), &opts, &h);
        let d = f.dictionaries("js/app.js", "js/app.000000000005.js", b"new");
        // 0004 has the current bytes, 0003 is gone, 0001 repeats 0002's bytes.
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "js/app.000000000002.js");
        assert_eq!(d[0].sha, format::sha256(b"one"));
    }

    #[test]
    fn deltas_are_kept_only_when_clearly_smaller() {
        let dict = format::sha256(b"d");
        let v = Variants {
            br: Some(vec![0; 100]),
            gz: Some(vec![0; 120]),
            zst: None,
        };
        let kept = keep(
            "a.1.js",
            &dict,
            &[Some(vec![0; 90]), Some(vec![0; 91])],
            1000,
            &v,
        );
        assert_eq!(kept.len(), 1);
        assert!(kept[0].0.starts_with("a.1.js.") && kept[0].0.ends_with(".dcb"));
        // No ordinary variant: identity is the one to beat.
        let kept = keep(
            "a.1.js",
            &dict,
            &[None, Some(vec![0; 9])],
            10,
            &Variants::default(),
        );
        assert_eq!(kept.len(), 1);
        assert!(kept[0].0.ends_with(".dcz"));
    }

    #[test]
    fn cache_key_depends_on_both_contents() {
        let all = &Coding::ALL;
        assert_ne!(cache_key(b"a", b"b", all), cache_key(b"b", b"a", all));
        assert_ne!(cache_key(b"a", b"b", all), cache_key(b"a", b"c", all));
        assert_eq!(cache_key(b"a", b"b", all), cache_key(b"a", b"b", all));
        assert_ne!(
            cache_key(b"a", b"b", all),
            cache_key(b"a", b"b", &[Coding::Dcz]),
            "an entry without dcb is not one with it"
        );
        let v = to_cached(Some(vec![1]), None);
        assert_eq!(from_cached(v), [Some(vec![1]), None]);
    }
}
