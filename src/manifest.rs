//! `staticfiles.json`, read and written byte-for-byte like Django 6.1 (spec §2.7).
//!
//! Django loads this file once per process to turn `{% static "css/app.css" %}` into the
//! hashed URL, so its bytes must be exactly what `json.dumps` would produce: one line, key order
//! `paths`, `version`, `hash`, separators `", "` and `": "`, paths sorted by code point,
//! non-ASCII as lowercase `\uXXXX` (surrogate pairs above the BMP), `/` not escaped, and no
//! trailing newline.
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Default file name (`ManifestFilesMixin.manifest_name`).
pub const DEFAULT_NAME: &str = "staticfiles.json";

/// The parsed manifest: collected path → hashed path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Sorted by key; `BTreeMap<String, _>` orders by UTF-8 bytes, which equals Python's
    /// code-point order of `sorted()`.
    pub paths: BTreeMap<String, String>,
    /// Django's `manifest_hash`: 12 hex of md5 over `json.dumps(sorted(paths.items()))`.
    /// Empty for a version 1.0 manifest.
    pub hash: String,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Django's own wording, plus the path so the user knows which file.
    #[error("Couldn't load manifest '{path}' (version 1.1): {reason}")]
    Invalid { path: String, reason: String },
}

impl Manifest {
    /// A manifest for `paths`, with the hash computed as Django computes it.
    pub fn new(paths: BTreeMap<String, String>) -> Self {
        let hash = manifest_hash(&paths);
        Manifest { paths, hash }
    }

    /// The exact bytes Django 6.1 writes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64 + self.paths.len() * 64);
        out.push_str("{\"paths\": {");
        for (i, (k, v)) in self.paths.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_json_str(&mut out, k);
            out.push_str(": ");
            push_json_str(&mut out, v);
        }
        out.push_str("}, \"version\": \"1.1\", \"hash\": ");
        push_json_str(&mut out, &self.hash);
        out.push('}');
        out.into_bytes()
    }

    /// Parses manifest bytes; versions 1.0 and 1.1 are accepted like `load_manifest()`.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Self, ManifestError> {
        let invalid = |reason: String| ManifestError::Invalid {
            path: path.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let version = value.get("version").and_then(|v| v.as_str()).unwrap_or("");
        if version != "1.0" && version != "1.1" {
            return Err(invalid(format!("unsupported version {version:?}")));
        }
        let mut paths = BTreeMap::new();
        if let Some(obj) = value.get("paths").and_then(|p| p.as_object()) {
            for (k, v) in obj {
                let v = v
                    .as_str()
                    .ok_or_else(|| invalid(format!("path {k:?} maps to a non-string")))?;
                paths.insert(k.clone(), v.to_string());
            }
        } else {
            return Err(invalid("no \"paths\" object".into()));
        }
        let hash = match version {
            "1.0" => String::new(),
            _ => value
                .get("hash")
                .and_then(|h| h.as_str())
                .unwrap_or("")
                .to_string(),
        };
        Ok(Manifest { paths, hash })
    }

    /// Reads `path`; `Ok(None)` when it does not exist (Django: `({}, "")`).
    pub fn read(path: &Path) -> Result<Option<Self>, ManifestError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ManifestError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

/// `md5(json.dumps(sorted(paths.items())))[:12]`: a list of two-element lists.
pub fn manifest_hash(paths: &BTreeMap<String, String>) -> String {
    let mut s = String::with_capacity(2 + paths.len() * 64);
    s.push('[');
    for (i, (k, v)) in paths.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('[');
        push_json_str(&mut s, k);
        s.push_str(", ");
        push_json_str(&mut s, v);
        s.push(']');
    }
    s.push(']');
    let digest = Md5::digest(s.as_bytes());
    let mut hex = String::with_capacity(32);
    for b in digest.iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex.truncate(12);
    hex
}

/// Python's `json.dumps` string encoding with `ensure_ascii=True`.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether a file's name (the last segment of `path`) carries a content hash as bundlers
/// write one: a run of at least 8
/// characters of the base64url alphabet (hex included) after a `-` or `.` that follows the
/// name, ending at a `.` (Vite/Rollup `[name]-[hash]`, whose hash may itself hold `-` and `_`;
/// webpack `[name].[contenthash]`); or 16 or more hex digits before the first `.` (webpack's
/// assets, `[hash][ext]`). WhiteNoise's documented test for Vite names is the first half.
/// `main.js`, `app.css`, `logo.png` do not pass: a bundler configured not to hash.
///
/// Here because both sides use it: collect trusts a bundler manifest's name only if it
/// passes, and serve calls a name the manifest maps to itself immutable only if it passes
/// (a Django storage that overrides `hashed_name` to leave some files unhashed writes such
/// entries too, for names that promise nothing).
pub fn has_bundler_hash(path: &str) -> bool {
    let b = path.rsplit('/').next().unwrap_or(path).as_bytes();
    let hash_char = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
    let leading_hex = b.iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if leading_hex >= 16 && b.get(leading_hex) == Some(&b'.') {
        return true;
    }
    (1..b.len()).any(|p| {
        if b[p] != b'-' && b[p] != b'.' {
            return false;
        }
        let run = b[p + 1..].iter().take_while(|&&c| hash_char(c)).count();
        run >= 8 && b.get(p + 1 + run) == Some(&b'.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprinted_names() {
        for yes in [
            "main-DxqxU1Uw.js",
            "assets/x/main-DxqxU1Uw.js",
            "bg-oX-bZsvC.png",
            "lazy-CILrhhju.js",
            "main-D7AT1Ceu.css",
            "x_y-Ab_cD-eF.js",
            "main.1a2b3c4d5e6f7a8b9c0d.js",
            "main.1a2b3c4d.css",
            "main-DxqxU1Uw.js.map",
            "9f2c1b3a4d5e6f708192.png",
        ] {
            assert!(has_bundler_hash(yes), "{yes}");
        }
        for no in [
            "main.js",
            "app.css",
            "logo.png",
            "application.js",
            "index-abc.js",
            "main-DxqxU1Uw",
            "-DxqxU1Uw.js",
            "deadbeef.png",
            "LICENSE",
            "main-DxqxU1Uw/app.js",
        ] {
            assert!(!has_bundler_hash(no), "{no}");
        }
    }

    fn m(pairs: &[(&str, &str)]) -> Manifest {
        Manifest::new(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    /// The example observed from Django 6.1 in spec §2.7.
    #[test]
    fn bytes_match_django_example() {
        let man = m(&[
            ("other.css", "other.d4648bfec955.css"),
            ("a.png", "a.55505ba281b0.png"),
            ("main.css", "main.472eb4d942df.css"),
        ]);
        assert_eq!(
            String::from_utf8(man.to_bytes()).unwrap(),
            r#"{"paths": {"a.png": "a.55505ba281b0.png", "main.css": "main.472eb4d942df.css", "other.css": "other.d4648bfec955.css"}, "version": "1.1", "hash": "904a0b088e63"}"#
        );
    }

    #[test]
    fn non_ascii_is_escaped_lowercase_with_surrogates() {
        let man = m(&[("test/⊗.txt", "test/⊗.8a3dda0dff20.txt"), ("😀.txt", "x")]);
        let s = String::from_utf8(man.to_bytes()).unwrap();
        assert!(s.contains(r#""test/\u2297.txt": "test/\u2297.8a3dda0dff20.txt""#));
        assert!(s.contains(r#""\ud83d\ude00.txt""#));
        assert!(!s.ends_with('\n'));
    }

    #[test]
    fn empty_manifest() {
        let man = m(&[]);
        // md5("[]")[:12]
        assert_eq!(man.hash, "d75171398898");
        assert_eq!(
            String::from_utf8(man.to_bytes()).unwrap(),
            r#"{"paths": {}, "version": "1.1", "hash": "d75171398898"}"#
        );
    }

    #[test]
    fn sorted_by_code_point() {
        let man = m(&[
            ("b", "1"),
            ("B", "2"),
            ("é", "3"),
            ("a/b", "4"),
            ("a.b", "5"),
        ]);
        let keys: Vec<_> = man.paths.keys().cloned().collect();
        assert_eq!(keys, vec!["B", "a.b", "a/b", "b", "é"]);
    }

    #[test]
    fn round_trip_and_versions() {
        let man = m(&[("x.css", "x.0123456789ab.css")]);
        let back = Manifest::parse(&man.to_bytes(), "staticfiles.json").unwrap();
        assert_eq!(back, man);
        let v1 = Manifest::parse(
            br#"{"paths": {"dummy.txt": "dummy.txt"}, "version": "1.0"}"#,
            "v1.json",
        )
        .unwrap();
        assert_eq!(v1.hash, "");
        assert_eq!(v1.paths["dummy.txt"], "dummy.txt");
        let err = Manifest::parse(br#"{"paths": {}, "version": "2"}"#, "bad.json").unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        assert!(Manifest::parse(b"not json", "x.json").is_err());
    }
}
