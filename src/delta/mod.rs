//! Delta deploys (RFC 9842, Compression Dictionary Transport): a returning visitor who has an
//! earlier version of a bundle downloads the new one compressed against it.
//!
//! What collect and serve share, all pure: which files get deltas ([`Options`]), how a
//! delta file is named ([`file_name`], [`parse_file_name`]), when one is worth keeping
//! ([`worth_keeping`]), and the two wire formats with their encoders ([`format`]).
//!
//! Naming: a delta of `js/app.1a2b3c4d5e6f.js` against a dictionary whose SHA-256 starts
//! `9f86d081884c7d65` is `js/app.1a2b3c4d5e6f.js.9f86d081884c7d65.dcz` (and `.dcb`). It
//! starts with the file it decodes to, as `.br` and `.gz` do, so a listing groups it with
//! its asset and `staticd prune` removes it with that file; it names its dictionary by the
//! hash a request's `Available-Dictionary` carries, so serving needs no history to find it;
//! the prefix is only a name (64 bits keep names distinct), the full hash is in the file's
//! own header, which the server reads.
pub mod format;

pub use format::Coding;

/// The types that get deltas by default: text a bundler or a build rewrites a little at
/// each deploy (JS, CSS, JSON, source maps, SVG, HTML) and WebAssembly.
pub const DEFAULT_EXTENSIONS: &[&str] = &[
    "js", "mjs", "css", "json", "map", "svg", "html", "htm", "wasm",
];

/// How many earlier generations a changed file gets deltas against by default.
pub const DEFAULT_GENERATIONS: usize = 3;

/// Hex digits of the dictionary's SHA-256 in a delta's name.
pub const NAME_HEX: usize = 16;

/// A delta is kept when it is at most this share of the best ordinary answer (the smallest
/// of br, zstd, gzip and identity): each one costs a file and a scan entry, and one that
/// saves less than a tenth is not worth them (WhiteNoise keeps a `.br` at 95 %).
pub const KEEP_RATIO: f64 = 0.9;

/// Which files get deltas, against how many earlier generations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Earlier generations searched for other versions of a changed file (`--delta-generations`).
    pub generations: usize,
    /// Lowercase extensions without the dot (`--delta-extensions`).
    pub extensions: Vec<String>,
    /// The codings made (`--delta-codings`): both by default; dcz alone saves the brotli
    /// encoder's CPU, the larger share of delta making.
    pub codings: Vec<Coding>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            generations: DEFAULT_GENERATIONS,
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| e.to_string()).collect(),
            codings: Coding::ALL.to_vec(),
        }
    }
}

impl Options {
    /// True when `path`'s extension is one that gets deltas (case-insensitive).
    pub fn eligible(&self, path: &str) -> bool {
        eligible(path, &self.extensions)
    }
}

/// True when `path` ends in `.EXT` for one of `extensions` (lowercase, without the dot).
pub fn eligible<S: AsRef<str>>(path: &str, extensions: &[S]) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = file.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && extensions
            .iter()
            .any(|e| e.as_ref().eq_ignore_ascii_case(ext))
}

/// The name of the delta of `target` (a path under STATIC_ROOT) against the dictionary
/// whose SHA-256 is `dict`.
pub fn file_name(target: &str, dict: &[u8; 32], coding: Coding) -> String {
    let mut hex = String::with_capacity(NAME_HEX);
    for b in &dict[..NAME_HEX / 2] {
        hex.push_str(&format!("{b:02x}"));
    }
    format!("{target}.{hex}.{}", coding.token())
}

/// `(target, hex prefix, coding)` of a delta's name, if it is one.
pub fn parse_file_name(rel: &str) -> Option<(&str, &str, Coding)> {
    let (rest, token) = rel.rsplit_once('.')?;
    let coding = Coding::from_token(token)?;
    let (target, hex) = rest.rsplit_once('.')?;
    let hex_ok = hex.len() == NAME_HEX
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex_ok && !target.is_empty()).then_some((target, hex, coding))
}

/// Pure: of `names` (paths under STATIC_ROOT, or keys under a store's prefix), the deltas
/// whose target `is_target` accepts, sorted: what goes with those targets (prune) or is
/// published beside them.
pub fn deltas_of<'a>(
    names: impl IntoIterator<Item = &'a str>,
    is_target: impl Fn(&str) -> bool,
) -> Vec<(&'a str, &'a str, Coding)> {
    let mut out: Vec<(&str, &str, Coding)> = names
        .into_iter()
        .filter_map(|rel| {
            let (target, _, coding) = parse_file_name(rel)?;
            is_target(target).then_some((rel, target, coding))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// True when the dictionary whose SHA-256 is `dict` has the hex prefix `hex`.
pub fn prefix_matches(hex: &str, dict: &[u8; 32]) -> bool {
    file_name("", dict, Coding::Dcb)[1..].starts_with(hex)
}

/// Whether a delta of `delta_len` bytes is worth keeping beside an ordinary answer of
/// `best_len` bytes (see [`KEEP_RATIO`]).
pub fn worth_keeping(delta_len: usize, best_len: usize) -> bool {
    (delta_len as f64) <= (best_len as f64) * KEEP_RATIO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_of_their_targets_only() {
        let names = [
            "js/a.1.js",
            "js/a.1.js.br",
            "js/a.1.js.9f86d081884c7d65.dcz",
            "js/a.1.js.9f86d081884c7d65.dcb",
            "js/b.2.js.9f86d081884c7d65.dcz",
            "js/a.1.js.9f86d081884c7d6.dcz",
            "js/a.1.js.9f86d081884c7d65.dcz",
        ];
        let got = deltas_of(names, |t| t == "js/a.1.js");
        assert_eq!(
            got,
            vec![
                ("js/a.1.js.9f86d081884c7d65.dcb", "js/a.1.js", Coding::Dcb),
                ("js/a.1.js.9f86d081884c7d65.dcz", "js/a.1.js", Coding::Dcz),
            ],
            "another file's delta, a short hex and a duplicate are left out"
        );
    }

    #[test]
    fn eligible_types() {
        let o = Options::default();
        for p in [
            "js/app.abc.js",
            "a.CSS",
            "x/y.json",
            "app.js.123.map",
            "i.svg",
            "w.wasm",
        ] {
            assert!(o.eligible(p), "{p}");
        }
        for p in [
            "img/a.png",
            "js",
            ".js",
            "dir.js/file",
            "font.woff2",
            "a.js.br",
        ] {
            assert!(!o.eligible(p), "{p}");
        }
        let only_css = Options {
            extensions: vec!["css".into()],
            ..Options::default()
        };
        assert!(!only_css.eligible("a.js") && only_css.eligible("a.css"));
    }

    #[test]
    fn names_round_trip() {
        let dict = format::sha256(b"v1");
        let name = file_name("js/app.1a2b3c4d5e6f.js", &dict, Coding::Dcz);
        assert!(name.starts_with("js/app.1a2b3c4d5e6f.js."), "{name}");
        assert!(name.ends_with(".dcz"));
        let (target, hex, coding) = parse_file_name(&name).unwrap();
        assert_eq!((target, coding), ("js/app.1a2b3c4d5e6f.js", Coding::Dcz));
        assert!(prefix_matches(hex, &dict));
        assert!(!prefix_matches(hex, &format::sha256(b"v2")));
        for not in [
            "app.js.br",
            "app.js.dcz",
            "app.js.0123456789ABCDEF.dcb",
            "app.js.0123456789abcde.dcb",
            ".0123456789abcdef.dcb",
        ] {
            assert_eq!(parse_file_name(not), None, "{not}");
        }
    }

    #[test]
    fn keep_only_clear_savings() {
        assert!(worth_keeping(90, 100));
        assert!(!worth_keeping(91, 100));
        assert!(!worth_keeping(1, 0));
    }
}
