//! What a publish sends: the objects of the current generation, their headers, and whether
//! the store already holds each one. The decisions are pure; [`select`] reads STATIC_ROOT.
//!
//! A store listing gives each key's size and ETag. For an object written in one request the
//! ETag is the MD5 of its bytes; written in parts, the MD5 of the parts' MD5s and `-N`
//! (S3's scheme, which SeaweedFS, MinIO and moto follow). staticd computes the ETag each local
//! file would get with the same part size, so one listing tells which objects are already
//! there with the right bytes: no HEAD per file, and an unchanged publish sends nothing.
use super::error::RemoteError;
use crate::manifest::Manifest;
use md5::{Digest, Md5};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Cache-Control of a fingerprinted name: its bytes never change, so a year and `immutable`
/// (what `staticd serve` and WhiteNoise send).
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Variant suffixes collect writes, and the Content-Encoding each stands for.
pub const VARIANTS: [(&str, &str); 3] = [(".br", "br"), (".gz", "gzip"), (".zst", "zstd")];

/// One file to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalObject {
    /// `/`-separated path under STATIC_ROOT (and under the store's prefix).
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    /// The ETag the store will report for these bytes (unquoted).
    pub etag: String,
    /// A fingerprinted name (or a variant of one): the name pins the bytes.
    pub immutable: bool,
    pub content_type: String,
    /// `Some` for a precompressed variant: the base's Content-Type, this encoding.
    pub encoding: Option<&'static str>,
    pub cache_control: String,
}

/// What a listing says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub size: u64,
    pub etag: Option<String>,
}

/// What to do with one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The store has these bytes under this key.
    Skip,
    /// Not listed: written with `If-None-Match: *`, so a concurrent publish writing the same
    /// content-addressed key is no error.
    Create,
    /// Listed with other bytes (an unhashed original that changed, or a damaged object).
    Overwrite,
}

/// Pure: compares the local object with its listing.
pub fn decide(o: &LocalObject, listed: Option<&Listed>) -> Action {
    let Some(l) = listed else {
        return Action::Create;
    };
    if l.size != o.size {
        return Action::Overwrite;
    }
    match l.etag.as_deref().map(|e| e.trim_matches('"')) {
        Some(e) if e.eq_ignore_ascii_case(&o.etag) => Action::Skip,
        // An MD5-based ETag that differs: other bytes are stored under this name.
        Some(e) if md5_based(e) => Action::Overwrite,
        // No usable ETag (SSE-KMS, some gateways): a fingerprinted name still pins its bytes;
        // an unhashed one is sent again, since nothing says it is current.
        _ if o.immutable => Action::Skip,
        _ => Action::Overwrite,
    }
}

/// `32 hex` or `32 hex-N`.
fn md5_based(etag: &str) -> bool {
    let (hex, parts) = match etag.split_once('-') {
        Some((h, n)) => (h, Some(n)),
        None => (etag, None),
    };
    hex.len() == 32
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
        && parts.is_none_or(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Cache-Control for a published name.
pub fn cache_control(immutable: bool, max_age: u64) -> String {
    if immutable {
        IMMUTABLE.to_string()
    } else {
        format!("public, max-age={max_age}")
    }
}

/// The ETag S3 gives `reader`'s bytes when uploaded whole (`size <= threshold`) or in parts
/// of `part` bytes.
pub fn etag_of(
    mut reader: impl Read,
    size: u64,
    threshold: u64,
    part: u64,
) -> std::io::Result<String> {
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    if size <= threshold {
        let mut h = Md5::new();
        std::io::copy(&mut reader, &mut HashWriter(&mut h))?;
        return Ok(hex(&h.finalize()));
    }
    let mut outer = Md5::new();
    let mut parts = 0u64;
    let mut buf = vec![0u8; part as usize];
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        outer.update(Md5::digest(&buf[..n]));
        parts += 1;
        if n < buf.len() {
            break;
        }
    }
    Ok(format!("{}-{parts}", hex(&outer.finalize())))
}

/// Reads until `buf` is full or the reader ends; the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct HashWriter<'a>(&'a mut Md5);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A name to publish before its file is read: the rel, whether it is fingerprinted, and its
/// encoding if it is a variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub rel: String,
    pub immutable: bool,
    pub encoding: Option<&'static str>,
    /// The name whose Content-Type it carries (itself, or the base of a variant).
    pub typed_as: String,
    /// The file whose bytes are sent: `rel` itself, or the base for a [`fill_variants`] key.
    pub source: String,
}

/// Extensions a CDN rule may send to `name.br` / `name.gz` / `name.zst` by Accept-Encoding
/// (the README's CloudFront, Cloudflare and Fastly rules use this list). collect writes no
/// variant where compressing does not pay (a tiny file), so for these names staticd fills the
/// gap: the variant key holds the identity bytes without Content-Encoding, and the rule needs
/// no fallback.
pub const NEGOTIATED: [&str; 12] = [
    "css",
    "js",
    "mjs",
    "json",
    "map",
    "svg",
    "txt",
    "html",
    "xml",
    "ico",
    "wasm",
    "webmanifest",
];

/// Pure: for each encoding this generation has at all, a variant key for every negotiated
/// name that lacks one (see [`NEGOTIATED`]). A generation without any `.br` gets no `.br`
/// keys: no rule should ask for them.
pub fn fill_variants(mut names: Vec<Wanted>) -> Vec<Wanted> {
    let have: std::collections::BTreeSet<&str> = names.iter().map(|w| w.rel.as_str()).collect();
    let used: Vec<(&str, &str)> = VARIANTS
        .iter()
        .filter(|(_, enc)| names.iter().any(|w| w.encoding == Some(*enc)))
        .copied()
        .collect();
    let mut fills = Vec::new();
    for w in names
        .iter()
        .filter(|w| w.encoding.is_none() && w.source == w.rel)
    {
        let ext = w.rel.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        if !ext.is_some_and(|e| NEGOTIATED.contains(&e.as_str())) {
            continue;
        }
        for (suffix, _) in &used {
            let key = format!("{}{suffix}", w.rel);
            if !have.contains(key.as_str()) {
                fills.push(Wanted {
                    rel: key,
                    immutable: w.immutable,
                    encoding: None,
                    typed_as: w.rel.clone(),
                    source: w.rel.clone(),
                });
            }
        }
    }
    names.extend(fills);
    names.sort_by(|a, b| a.rel.cmp(&b.rel));
    names
}

/// Pure: the names of the current generation, given the manifest and which files exist.
/// Each manifest entry gives its hashed name (immutable when it differs from the original)
/// and its original; each of those gives the variants collect wrote beside it.
pub fn wanted(manifest: &Manifest, exists: impl Fn(&str) -> bool) -> Vec<Wanted> {
    let mut out: BTreeMap<String, Wanted> = BTreeMap::new();
    let mut add = |rel: &str, immutable: bool| {
        if !exists(rel) {
            return;
        }
        out.entry(rel.to_string())
            .and_modify(|w| w.immutable &= immutable)
            .or_insert(Wanted {
                rel: rel.to_string(),
                immutable,
                encoding: None,
                typed_as: rel.to_string(),
                source: rel.to_string(),
            });
        for (suffix, enc) in VARIANTS {
            let v = format!("{rel}{suffix}");
            if exists(&v) {
                out.entry(v.clone()).or_insert(Wanted {
                    rel: v.clone(),
                    immutable,
                    encoding: Some(enc),
                    typed_as: rel.to_string(),
                    source: v,
                });
            }
        }
    };
    for (orig, hashed) in &manifest.paths {
        add(hashed, hashed != orig);
        if hashed != orig {
            add(orig, false);
        }
    }
    out.into_values().collect()
}

/// Pure: `names` with the RFC 9842 deltas (see [`crate::delta`]) of its fingerprinted names,
/// found among `beside` (the files in their directories). A delta keeps its local name, so a
/// CDN rule finds it from the request alone: the asset's key, `.`, the first 16 hex digits of
/// the SHA-256 that `Available-Dictionary` carries, `.dcb` or `.dcz` (README "CDN rules").
/// It is sent as is (Content-Encoding `dcb`/`dcz`, the asset's Content-Type, immutable like
/// the asset); an unhashed original never has one.
pub fn add_deltas(mut names: Vec<Wanted>, beside: &[String]) -> Vec<Wanted> {
    let bases: std::collections::BTreeSet<&str> = names
        .iter()
        .filter(|w| w.immutable && w.encoding.is_none() && w.source == w.rel)
        .map(|w| w.rel.as_str())
        .collect();
    let have: std::collections::BTreeSet<&str> = names.iter().map(|w| w.rel.as_str()).collect();
    let deltas: Vec<Wanted> =
        crate::delta::deltas_of(beside.iter().map(String::as_str), |t| bases.contains(t))
            .into_iter()
            .filter(|(rel, _, _)| !have.contains(rel))
            .map(|(rel, target, coding)| Wanted {
                rel: rel.to_string(),
                immutable: true,
                encoding: Some(coding.token()),
                typed_as: target.to_string(),
                source: rel.to_string(),
            })
            .collect();
    names.extend(deltas);
    names.sort_by(|a, b| a.rel.cmp(&b.rel));
    names
}

/// Pure: every file of a tree without a manifest; `x.gz` is a variant when `x` is there too.
pub fn wanted_tree(files: &[String]) -> Vec<Wanted> {
    let set: std::collections::BTreeSet<&str> = files.iter().map(String::as_str).collect();
    files
        .iter()
        .map(|rel| {
            let variant = VARIANTS.iter().find_map(|(suffix, enc)| {
                let base = rel.strip_suffix(suffix)?;
                set.contains(base).then_some((base, *enc))
            });
            Wanted {
                rel: rel.clone(),
                immutable: false,
                encoding: variant.map(|v| v.1),
                typed_as: variant.map_or(rel.clone(), |v| v.0.to_string()),
                source: rel.clone(),
            }
        })
        .collect()
}

/// What a publish reads from STATIC_ROOT.
pub struct Selection {
    pub objects: Vec<LocalObject>,
    /// The manifest and its exact bytes (`None` for a storage without one).
    pub manifest: Option<(Manifest, Vec<u8>)>,
}

/// Reads the current generation of `root`: the manifest `manifest_name` (required when
/// `manifest_storage`), then sizes and ETags of every file it names, in parallel.
pub fn select(
    root: &Path,
    manifest_name: &str,
    manifest_storage: bool,
    max_age: u64,
    threshold: u64,
    part: u64,
) -> Result<Selection, RemoteError> {
    let local = |path: &Path, source| RemoteError::Local {
        path: path.to_path_buf(),
        source,
    };
    let manifest_path = root.join(manifest_name);
    let (names, manifest) = match std::fs::read(&manifest_path) {
        Ok(bytes) => {
            let m = Manifest::parse(&bytes, &manifest_path.display().to_string())
                .map_err(|e| RemoteError::Other(e.to_string()))?;
            let names = wanted(&m, |rel| root.join(rel).is_file());
            let hashed = names.iter().filter(|w| w.immutable && w.encoding.is_none());
            let beside =
                crate::collect::generations::files_beside(root, hashed.map(|w| w.rel.as_str()));
            let names = fill_variants(add_deltas(names, &beside));
            (names, Some((m, bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !manifest_storage => {
            let mut files = Vec::new();
            for entry in walkdir::WalkDir::new(root).follow_links(true).min_depth(1) {
                let entry = entry.map_err(|e| {
                    let p = e.path().unwrap_or(root).to_path_buf();
                    local(&p, e.into())
                })?;
                if entry.file_type().is_file() {
                    let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
                    files.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
            files.sort();
            (fill_variants(wanted_tree(&files)), None)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RemoteError::Other(format!(
                "no manifest {} to publish: run `staticd collect` first",
                manifest_path.display()
            )))
        }
        Err(e) => return Err(local(&manifest_path, e)),
    };
    let objects = names
        .into_par_iter()
        .map(|w| {
            let abs = root.join(&w.source);
            let file = std::fs::File::open(&abs).map_err(|e| local(&abs, e))?;
            let size = file.metadata().map_err(|e| local(&abs, e))?.len();
            let etag = etag_of(std::io::BufReader::new(file), size, threshold, part)
                .map_err(|e| local(&abs, e))?;
            Ok(LocalObject {
                content_type: crate::media_type::content_type(&w.typed_as),
                cache_control: cache_control(w.immutable, max_age),
                rel: w.rel,
                abs,
                size,
                etag,
                immutable: w.immutable,
                encoding: w.encoding,
            })
        })
        .collect::<Result<Vec<_>, RemoteError>>()?;
    Ok(Selection { objects, manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(immutable: bool, size: u64, etag: &str) -> LocalObject {
        LocalObject {
            rel: "a.css".into(),
            abs: "/x".into(),
            size,
            etag: etag.into(),
            immutable,
            content_type: "text/css; charset=utf-8".into(),
            encoding: None,
            cache_control: cache_control(immutable, 60),
        }
    }

    const E1: &str = "6f5902ac237024bdd0c176cb93063dc4";
    const E2: &str = "00000000000000000000000000000000";

    #[test]
    fn decisions() {
        let l = |size, etag: Option<&str>| Listed {
            size,
            etag: etag.map(String::from),
        };
        let o = obj(false, 12, E1);
        assert_eq!(decide(&o, None), Action::Create);
        assert_eq!(
            decide(&o, Some(&l(12, Some(&format!("\"{E1}\""))))),
            Action::Skip
        );
        assert_eq!(decide(&o, Some(&l(12, Some(E2)))), Action::Overwrite);
        assert_eq!(decide(&o, Some(&l(13, Some(E1)))), Action::Overwrite);
        assert_eq!(
            decide(&o, Some(&l(12, Some(&format!("{E2}-2"))))),
            Action::Overwrite
        );
        // An opaque ETag: a hashed name is trusted, an unhashed one re-sent.
        assert_eq!(decide(&o, Some(&l(12, Some("opaque")))), Action::Overwrite);
        assert_eq!(decide(&o, Some(&l(12, None))), Action::Overwrite);
        let h = obj(true, 12, E1);
        assert_eq!(decide(&h, Some(&l(12, Some("opaque")))), Action::Skip);
        assert_eq!(
            decide(&h, Some(&l(12, Some(E2)))),
            Action::Overwrite,
            "damaged"
        );
        assert_eq!(
            decide(&h, Some(&l(11, None))),
            Action::Overwrite,
            "truncated"
        );
    }

    #[test]
    fn etags_as_s3_computes_them() {
        // md5("hello world\n"), and the multipart ETag SeaweedFS reported for 5 MiB + 1000.
        assert_eq!(etag_of(&b"hello world\n"[..], 12, 16, 5).unwrap(), E1);
        let data: Vec<u8> = (0..23u8).collect();
        let parts = [&data[..10], &data[10..20], &data[20..]];
        let mut outer = Md5::new();
        for p in parts {
            outer.update(Md5::digest(p));
        }
        let want: String = outer
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(etag_of(&data[..], 23, 16, 10).unwrap(), format!("{want}-3"));
        // Exactly two full parts: no empty third part.
        let e = etag_of(&data[..20], 20, 16, 10).unwrap();
        assert!(e.ends_with("-2"), "{e}");
    }

    #[test]
    fn wanted_names_hashed_originals_and_variants() {
        let m = Manifest::new(BTreeMap::from([
            ("css/a.css".into(), "css/a.1234.css".into()),
            ("img/b.png".into(), "img/b.5678.png".into()),
            ("robots.txt".into(), "robots.txt".into()),
        ]));
        let present = [
            "css/a.1234.css",
            "css/a.1234.css.br",
            "css/a.1234.css.gz",
            "css/a.css",
            "css/a.css.gz",
            "img/b.5678.png",
            "robots.txt",
        ];
        let w = wanted(&m, |r| present.contains(&r));
        let got: Vec<(&str, bool, Option<&str>, &str)> = w
            .iter()
            .map(|w| (w.rel.as_str(), w.immutable, w.encoding, w.typed_as.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("css/a.1234.css", true, None, "css/a.1234.css"),
                ("css/a.1234.css.br", true, Some("br"), "css/a.1234.css"),
                ("css/a.1234.css.gz", true, Some("gzip"), "css/a.1234.css"),
                ("css/a.css", false, None, "css/a.css"),
                ("css/a.css.gz", false, Some("gzip"), "css/a.css"),
                ("img/b.5678.png", true, None, "img/b.5678.png"),
                ("robots.txt", false, None, "robots.txt"),
            ]
        );
    }

    #[test]
    fn fills_missing_variants_of_negotiated_names_only() {
        let w = |rel: &str, enc: Option<&'static str>| Wanted {
            rel: rel.into(),
            immutable: true,
            encoding: enc,
            typed_as: rel.trim_end_matches(".br").trim_end_matches(".gz").into(),
            source: rel.into(),
        };
        let names = vec![
            w("a.1.css", None),
            w("a.1.css.br", Some("br")),
            w("a.1.css.gz", Some("gzip")),
            w("tiny.2.js", None),
            w("logo.3.png", None),
        ];
        let filled = fill_variants(names);
        let fills: Vec<(&str, &str, Option<&str>)> = filled
            .iter()
            .filter(|w| w.source != w.rel)
            .map(|w| (w.rel.as_str(), w.source.as_str(), w.encoding))
            .collect();
        assert_eq!(
            fills,
            vec![
                ("tiny.2.js.br", "tiny.2.js", None),
                ("tiny.2.js.gz", "tiny.2.js", None)
            ],
            "no .zst (the generation has none), nothing for a PNG"
        );
        let none = fill_variants(vec![w("tiny.2.js", None)]);
        assert_eq!(none.len(), 1, "no variants at all: nothing to fill");
    }

    #[test]
    fn deltas_go_with_fingerprinted_names() {
        let m = Manifest::new(BTreeMap::from([
            ("js/app.js".into(), "js/app.1234.js".into()),
            ("js/plain.js".into(), "js/plain.js".into()),
        ]));
        let present = ["js/app.1234.js", "js/app.1234.js.br", "js/plain.js"];
        let beside: Vec<String> = [
            "js/app.1234.js",
            "js/app.1234.js.br",
            "js/app.1234.js.9f86d081884c7d65.dcb",
            "js/app.1234.js.9f86d081884c7d65.dcz",
            // A delta of an older version (its own generation published it).
            "js/app.0042.js.9f86d081884c7d65.dcz",
            // Never made (an original), but named like one: not sent as a delta.
            "js/plain.js.9f86d081884c7d65.dcz",
        ]
        .map(String::from)
        .to_vec();
        let w = fill_variants(add_deltas(wanted(&m, |r| present.contains(&r)), &beside));
        let deltas: Vec<(&str, bool, Option<&str>, &str)> = w
            .iter()
            .filter(|w| w.rel.ends_with(".dcb") || w.rel.ends_with(".dcz"))
            .map(|w| (w.rel.as_str(), w.immutable, w.encoding, w.typed_as.as_str()))
            .collect();
        assert_eq!(
            deltas,
            vec![
                (
                    "js/app.1234.js.9f86d081884c7d65.dcb",
                    true,
                    Some("dcb"),
                    "js/app.1234.js"
                ),
                (
                    "js/app.1234.js.9f86d081884c7d65.dcz",
                    true,
                    Some("dcz"),
                    "js/app.1234.js"
                ),
            ]
        );
        assert!(
            w.iter()
                .all(|w| !w.rel.starts_with("js/app.1234.js.9f86") || w.source == w.rel),
            "no variant key is filled for a delta"
        );
        assert_eq!(
            w.iter().filter(|w| w.rel.ends_with(".br")).count(),
            2,
            "app's own .br and plain.js's fill: {w:?}"
        );
    }

    #[test]
    fn tree_variants_need_their_base() {
        let files = vec!["a.js".to_string(), "a.js.gz".into(), "dump.tar.gz".into()];
        let w = wanted_tree(&files);
        assert_eq!(w[1].encoding, Some("gzip"));
        assert_eq!(w[1].typed_as, "a.js");
        assert_eq!(w[2].encoding, None, "a .gz source file is not a variant");
    }
}
