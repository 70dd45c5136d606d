//! Bundler-aware collect: files a front-end bundler (Vite, webpack) already named by their
//! content keep that name.
//!
//! Django's manifest storage hashes every file again, so Vite's `assets/main-DxqxU1Uw.js` is
//! published as `assets/main-DxqxU1Uw.2c1f0a9b3e4d.js`, and the bundler's own references
//! between its chunks (`import("./lazy-CILrhhju.js")`) still load the singly-hashed names,
//! which WhiteNoise then serves without long-lived caching (django-vite #30, #79, #112). A
//! *bundled* file instead:
//!
//! - is published under its own collected path: `staticfiles.json` maps it to itself, which
//!   `{% static %}` (and django-vite, which calls the same storage) resolves like any entry;
//! - is copied byte for byte, never rewritten, even when it is CSS or JS. Its name claims to
//!   pin its bytes (that is what lets a browser cache it for a year), and the references in
//!   it are the bundler's own, already naming files published under those very names:
//!   rewriting them could only change bytes behind a name that promised they would not;
//! - is served `immutable` (`serve::table::is_immutable` accepts an entry that maps to
//!   itself when the name shows a bundler's hash; Django's own names always insert one).
//!
//! Other files that reference a bundled file are rewritten as usual and get its name, which
//! is its own.
//!
//! Which files are bundled:
//!
//! - Those a bundler manifest lists. Looked for below every directory finder source
//!   (STATICFILES_DIRS, app `static/` directories), in each directory that holds a collected
//!   file, at any depth:
//!   - `DIR/.vite/manifest.json` (Vite ≥ 5 with `build.manifest = true`), read although
//!     Django's default ignore pattern `.*` keeps `.vite/` out of the collected files;
//!   - a collected `manifest.json` of Vite's shape (Vite < 5, or `build.manifest =
//!     "manifest.json"`, django-vite's documented setting): an object of chunks that each
//!     have a `file`;
//!   - a collected `manifest.json` of webpack-manifest-plugin's shape: an object of strings
//!     in which each key's extension is its value's (`"main.js": "/static/main.1a2b3c4d.js"`).
//!     Any other `manifest.json` (a web app manifest, say) is just a file.
//!
//!   A manifest's entries (Vite: each chunk's `file`, `css` and `assets`) are relative to its
//!   directory (Vite: the directory holding `.vite/`); webpack's may carry the public path or
//!   STATIC_URL in front, which is matched away. A manifest vouches only for files collected
//!   from below its own directory: an entry naming anything else is a warning naming the
//!   manifest. So is an entry whose name shows no content hash ([`crate::manifest::has_bundler_hash`]:
//!   Vite's `entryFileNames: "[name].js"` produces such names, and serving `main.js` as
//!   immutable would pin stale code in browsers); that file is hashed like any other.
//! - Those matching a configured glob (`[collect] bundled = [...]` in `staticd.toml`,
//!   `--bundled GLOB`), matched like an ignore pattern against the collected path and its
//!   basename. A glob is the user's word: no name check here (but the server calls such a
//!   name immutable only if it shows a hash).
//!
//! A `.vite/manifest.json` that is not a Vite manifest (bad JSON, or a chunk without a string
//! `file`) stops the collect with the file, line and column ([`Error::BundlerManifest`], kind
//! `bundler_manifest`): a truncated build must not be published hashed twice. One that cannot
//! be read is a source that cannot be read (`unreadable_source`, or `source_vanished`, which
//! watch mode retries: a build replacing it as it is read). A collected `manifest.json` that is not JSON at all is only a
//! warning, because it need not be a bundler's and Django collects it without a word.
//!
//! Whether a file is bundled is on its [`Entry`] (`bundled`, set here before the previous run
//! is compared), and in the incremental state its recorded name is its own path: a file whose
//! status flips is processed again even if unchanged ([`Entry::unchanged`]).
use super::entry::Entry;
use super::ignore::IgnoreRules;
use super::plan::SourceFile;
use super::Error;
use crate::django::Source;
use crate::manifest::has_bundler_hash;
use rayon::prelude::*;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// Vite ≥ 5's manifest, relative to its `outDir`.
pub const VITE_MANIFEST: &str = ".vite/manifest.json";

/// The configured globs (`[collect] bundled`, then `--bundled`).
#[derive(Debug, Clone, Default)]
pub struct Globs {
    patterns: Vec<String>,
    rules: IgnoreRules,
}

impl Globs {
    /// `file`: `[collect] bundled` of this `staticd.toml`; `cli`: `--bundled`.
    pub fn new(file: Option<(&Path, &[String])>, cli: Vec<String>) -> anyhow::Result<Globs> {
        let mut patterns = Vec::new();
        if let Some((path, strings)) = file {
            for s in strings {
                if s.is_empty() {
                    anyhow::bail!(
                        "invalid {}: [collect] bundled: empty pattern (e.g. \"dist/assets/*\")",
                        path.display()
                    );
                }
                patterns.push(s.clone());
            }
        }
        for s in cli {
            if s.is_empty() {
                anyhow::bail!("--bundled: empty pattern (e.g. --bundled 'dist/assets/*')");
            }
            patterns.push(s);
        }
        let rules = IgnoreRules::new(&patterns);
        Ok(Globs { patterns, rules })
    }

    pub fn matches(&self, rel: &str) -> bool {
        !self.patterns.is_empty() && self.rules.ignores_file(rel)
    }

    /// What changes output, for the incremental state's settings digest.
    pub fn key(&self) -> String {
        self.patterns.join("\n")
    }
}

/// Something worth telling that does not stop the collect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// An entry that is not a file collected from below the manifest's directory.
    NotCollected { manifest: PathBuf, entry: String },
    /// An entry whose name shows no content hash: hashed like any other file.
    NoHash { manifest: PathBuf, rel: String },
    /// A collected `manifest.json` that is not JSON.
    NotJson {
        manifest: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::NotCollected { manifest, entry } => write!(
                f,
                "warning: bundler manifest {} names '{entry}', which is not a static file \
                 collected from its directory; ignored",
                manifest.display()
            ),
            Warning::NoHash { manifest, rel } => write!(
                f,
                "warning: bundler manifest {} names '{rel}', whose name carries no content \
                 hash; it is hashed like any other file (--bundled '{rel}' keeps its name)",
                manifest.display()
            ),
            Warning::NotJson {
                manifest,
                line,
                column,
                message,
            } => write!(
                f,
                "warning: {}:{line}:{column}: not JSON ({message}); not read as a bundler \
                 manifest",
                manifest.display()
            ),
        }
    }
}

/// What [`mark`] found.
#[derive(Debug, Default)]
pub struct Marked {
    /// The bundler manifests read.
    pub manifests: Vec<PathBuf>,
    /// Files marked bundled (by a manifest or a glob).
    pub bundled: usize,
    pub warnings: Vec<Warning>,
}

/// Marks bundled ([`Entry::set_bundled`]) every entry that a bundler manifest among
/// `sources` lists or a glob matches, and no other.
pub fn mark<'a>(
    sources: &[Source],
    entries: &mut [Entry<'a>],
    globs: &Globs,
    static_url: &str,
) -> Result<Marked, Error> {
    let files: Vec<&'a SourceFile> = entries.iter().map(|e| e.src).collect();
    let found = find_manifests(sources, &files);
    let by_rel: HashMap<&str, usize> = match found.is_empty() {
        true => HashMap::new(),
        false => files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.rel.as_str(), i))
            .collect(),
    };
    let read: Vec<Result<Read, Error>> = found.par_iter().map(read_manifest).collect();
    let mut marked = Marked::default();
    for e in entries.iter_mut() {
        e.set_bundled(globs.matches(&e.src.rel));
    }
    for (m, read) in found.iter().zip(read) {
        let listed = match read? {
            Read::Entries(listed) => listed,
            Read::NotJson(w) => {
                marked.warnings.push(w);
                continue;
            }
            Read::NotBundler => continue,
        };
        marked.manifests.push(m.path.clone());
        for entry in listed {
            let hit = candidates(&entry, &m.dir_rel, static_url)
                .into_iter()
                .filter_map(|c| by_rel.get(c.as_str()).copied())
                .find(|&i| files[i].abs.starts_with(&m.dir_abs));
            match hit {
                None => marked.warnings.push(Warning::NotCollected {
                    manifest: m.path.clone(),
                    entry,
                }),
                // A glob kept it already: the user's word, no warning.
                Some(i) if entries[i].bundled => {}
                Some(i) if !has_bundler_hash(&files[i].rel) => {
                    marked.warnings.push(Warning::NoHash {
                        manifest: m.path.clone(),
                        rel: files[i].rel.clone(),
                    })
                }
                Some(i) => entries[i].set_bundled(true),
            }
        }
    }
    marked.bundled = entries.iter().filter(|e| e.bundled).count();
    marked.warnings.dedup();
    Ok(marked)
}

/// A bundler manifest candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    path: PathBuf,
    /// The directory its entries are relative to, on disk and as a collected path.
    dir_abs: PathBuf,
    dir_rel: String,
    /// `.vite/manifest.json`: it is Vite's or broken; otherwise a `manifest.json` that may be
    /// anybody's.
    vite_dir: bool,
}

/// `.vite/manifest.json` in every directory of a directory source that holds a collected
/// file (or a directory that does), and every collected `manifest.json` elsewhere.
fn find_manifests(sources: &[Source], files: &[&SourceFile]) -> Vec<Found> {
    // Paths compared as bytes: the walk wrote them all the same way (and hashing a `Path`
    // walks its components, which showed in a do-nothing collect of 9k files).
    let roots: HashSet<&OsStr> = sources
        .iter()
        .filter_map(|s| match s {
            Source::Dir { root, .. } => Some(root.as_os_str()),
            Source::Files { .. } => None,
        })
        .collect();
    // Directories known to lie below a directory source (the walk up stops at them).
    let mut below_root: HashSet<&OsStr> = HashSet::new();
    let mut dirs: Vec<(&Path, &str)> = Vec::new();
    let mut out = Vec::new();
    let mut last_dir: Option<&Path> = None;
    for f in files {
        let dir = f.abs.parent();
        // Files of one directory come together: one walk up for all of them.
        if dir.map(Path::as_os_str) != last_dir.map(Path::as_os_str) {
            last_dir = dir;
            let mut chain: Vec<(&Path, &str)> = Vec::new();
            let (mut abs, mut rel) = (dir, parent(&f.rel));
            let inside = loop {
                // Above the top of the collected tree without meeting a source: another
                // finder's file.
                let (Some(a), Some(r)) = (abs, rel) else {
                    break false;
                };
                if below_root.contains(a.as_os_str()) {
                    break true;
                }
                chain.push((a, r));
                if roots.contains(a.as_os_str()) {
                    break true;
                }
                (abs, rel) = (a.parent(), parent(r));
            };
            if inside {
                below_root.extend(chain.iter().map(|(a, _)| a.as_os_str()));
                dirs.extend(chain);
            }
        }
        if basename(&f.rel) == "manifest.json"
            && dir.and_then(Path::file_name) != Some(".vite".as_ref())
        {
            out.push(Found {
                path: f.abs.clone(),
                dir_abs: f.abs.parent().unwrap_or(Path::new("/")).to_path_buf(),
                dir_rel: parent(&f.rel).unwrap_or("").to_string(),
                vite_dir: false,
            });
        }
    }
    let mut vite: Vec<Found> = dirs
        .par_iter()
        .filter_map(|&(a, r)| {
            let path = a.join(VITE_MANIFEST);
            path.is_file().then(|| Found {
                path,
                dir_abs: a.to_path_buf(),
                dir_rel: r.to_string(),
                vite_dir: true,
            })
        })
        .collect();
    vite.sort_by(|a, b| a.path.cmp(&b.path));
    vite.extend(out);
    vite
}

/// The collected path of `rel`'s directory (`""` for the top), `None` above the top.
fn parent(rel: &str) -> Option<&str> {
    if rel.is_empty() {
        return None;
    }
    Some(rel.rsplit_once('/').map_or("", |(d, _)| d))
}

fn basename(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// What a manifest candidate turned out to be.
enum Read {
    /// A bundler's: the files it names.
    Entries(Vec<String>),
    /// A collected `manifest.json` that is not JSON.
    NotJson(Warning),
    /// A collected `manifest.json` of no bundler's shape (a web app manifest, say).
    NotBundler,
}

fn read_manifest(m: &Found) -> Result<Read, Error> {
    let bytes = std::fs::read(&m.path).map_err(|e| Error::read(&m.path, e))?;
    if m.vite_dir {
        return vite_entries(&bytes)
            .map(Read::Entries)
            .map_err(|e| malformed(&m.path, e));
    }
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return Ok(Read::NotJson(Warning::NotJson {
                manifest: m.path.clone(),
                line: e.line(),
                column: e.column(),
                message: message_of(&e),
            }));
        }
    };
    match shape(&value) {
        Some(Shape::Vite) => vite_entries(&bytes)
            .map(Read::Entries)
            .map_err(|e| malformed(&m.path, e)),
        Some(Shape::Webpack) => Ok(Read::Entries(webpack_entries(&value))),
        None => Ok(Read::NotBundler),
    }
}

fn malformed(path: &Path, e: serde_json::Error) -> Error {
    Error::BundlerManifest {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: message_of(&e),
    }
}

/// serde_json's message without its trailing " at line L column C" (we print `path:L:C:`).
fn message_of(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    s.strip_suffix(&tail).unwrap_or(&s).to_string()
}

/// The kinds of `manifest.json` recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Vite,
    Webpack,
}

/// Vite: a non-empty object whose every value is an object with a `file`. webpack: a
/// non-empty object of strings, each key's extension that of its value.
fn shape(v: &serde_json::Value) -> Option<Shape> {
    let obj = v.as_object().filter(|o| !o.is_empty())?;
    if obj
        .values()
        .all(|c| c.as_object().is_some_and(|c| c.contains_key("file")))
    {
        return Some(Shape::Vite);
    }
    let same_ext = |k: &str, v: &serde_json::Value| {
        v.as_str()
            .is_some_and(|v| extension(k).is_some() && extension(k) == extension(strip_query(v)))
    };
    obj.iter()
        .all(|(k, v)| same_ext(k, v))
        .then_some(Shape::Webpack)
}

/// A chunk of a Vite manifest (only what names files; Vite adds fields between versions).
#[derive(Deserialize)]
struct ViteChunk {
    file: String,
    #[serde(default)]
    css: Vec<String>,
    #[serde(default)]
    assets: Vec<String>,
}

/// Every file a Vite manifest names, in order, each once.
fn vite_entries(bytes: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    let chunks: BTreeMap<String, ViteChunk> = serde_json::from_slice(bytes)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for c in chunks.into_values() {
        for f in std::iter::once(c.file).chain(c.css).chain(c.assets) {
            if seen.insert(f.clone()) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn webpack_entries(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn strip_query(s: &str) -> &str {
    s.find(['?', '#']).map_or(s, |i| &s[..i])
}

/// The extension of the last path segment (`os.path.splitext`: leading dots do not count).
fn extension(s: &str) -> Option<&str> {
    let base = basename(s).trim_start_matches('.');
    base.rfind('.')
        .map(|i| &base[i + 1..])
        .filter(|e| !e.is_empty())
}

/// The collected paths a manifest entry may stand for, most likely first: relative to the
/// manifest's directory as written; with STATIC_URL (or a whole URL up to it) taken off; then
/// with leading segments taken off one by one (a public path such as `/dist/` or `auto/`).
pub fn candidates(entry: &str, dir_rel: &str, static_url: &str) -> Vec<String> {
    let join = |p: &str| {
        if dir_rel.is_empty() {
            p.to_string()
        } else {
            format!("{dir_rel}/{p}")
        }
    };
    let entry = strip_query(entry);
    // A URL: its path.
    let path = match entry.split_once("//") {
        Some((scheme, rest)) if scheme.is_empty() || scheme.ends_with(':') => {
            rest.find('/').map_or("", |i| &rest[i..])
        }
        _ => entry,
    };
    let mut out = Vec::new();
    if !path.starts_with('/') {
        out.push(join(path));
    }
    let url_path = match static_url.split_once("//") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => static_url,
    };
    if let Some(rest) = path.strip_prefix(url_path) {
        out.push(rest.to_string());
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for k in 0..segments.len() {
        out.push(join(&segments[k..].join("/")));
    }
    let mut seen = HashSet::new();
    out.retain(|c| {
        !c.is_empty() && !c.split('/').any(|s| s == ".." || s == ".") && seen.insert(c.clone())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            shape(&v(
                r#"{"src/main.js": {"file": "assets/main-DxqxU1Uw.js"}}"#
            )),
            Some(Shape::Vite)
        );
        assert_eq!(
            shape(&v(
                r#"{"main.js": "/static/main.1a2b3c4d.js", "main.js.map": "main.1a2b3c4d.js.map", "img/logo.png": "logo.abcdef12.png?v=2"}"#
            )),
            Some(Shape::Webpack)
        );
        // A web app manifest, and other JSON: not a bundler's.
        assert_eq!(
            shape(&v(
                r#"{"name": "App", "short_name": "A", "start_url": "/", "icons": []}"#
            )),
            None
        );
        assert_eq!(shape(&v(r#"{"name": "App", "start_url": "/"}"#)), None);
        assert_eq!(shape(&v(r#"{"main.js": "main.1a2b3c4d.css"}"#)), None);
        assert_eq!(shape(&v("{}")), None);
        assert_eq!(shape(&v("[]")), None);
        assert_eq!(
            shape(&v(r#"{"a": {"file": "x.js"}, "b": {"src": "y"}}"#)),
            None
        );
    }

    #[test]
    fn vite_entries_name_every_file_once() {
        let m = br#"{
          "src/lazy.js": {"file": "assets/lazy-CILrhhju.js", "isDynamicEntry": true},
          "src/main.js": {"file": "assets/main-DxqxU1Uw.js", "isEntry": true,
            "dynamicImports": ["src/lazy.js"], "css": ["assets/main-D7AT1Ceu.css"],
            "assets": ["assets/logo-D9VB3iTY.png", "assets/bg-oX-bZsvC.png"]},
          "src/logo.png": {"file": "assets/logo-D9VB3iTY.png", "src": "src/logo.png"}
        }"#;
        assert_eq!(
            vite_entries(m).unwrap(),
            // Chunks in key order; each chunk's file, css, assets.
            [
                "assets/lazy-CILrhhju.js",
                "assets/logo-D9VB3iTY.png",
                "assets/main-DxqxU1Uw.js",
                "assets/main-D7AT1Ceu.css",
                "assets/bg-oX-bZsvC.png",
            ]
        );
        let e = vite_entries(b"{\n  \"a\": {\"file\": 3}\n}").unwrap_err();
        assert_eq!((e.line(), e.column()), (2, 17));
        let e = malformed(Path::new("/p/dist/.vite/manifest.json"), e).to_string();
        assert!(
            e.starts_with("/p/dist/.vite/manifest.json:2:17: not a valid Vite manifest: invalid type: integer `3`, expected a string ("),
            "{e}"
        );
    }

    #[test]
    fn entry_candidates() {
        assert_eq!(
            candidates("assets/main-X.js", "dist", "/static/"),
            ["dist/assets/main-X.js", "dist/main-X.js"]
        );
        assert_eq!(
            candidates("assets/main-X.js", "", "/static/"),
            ["assets/main-X.js", "main-X.js"]
        );
        assert_eq!(
            candidates("/static/bundles/main.1a.js?v=1", "bundles", "/static/"),
            [
                "bundles/main.1a.js",
                "bundles/static/bundles/main.1a.js",
                "bundles/bundles/main.1a.js"
            ]
        );
        assert_eq!(
            candidates(
                "https://cdn.example/static/b/x.js",
                "b",
                "https://cdn.example/static/"
            ),
            ["b/x.js", "b/static/b/x.js", "b/b/x.js"]
        );
        assert_eq!(
            candidates("auto/main.1a.js", "", "/static/"),
            ["auto/main.1a.js", "main.1a.js"]
        );
        assert!(candidates("../up.js", "d", "/static/")
            .iter()
            .all(|c| !c.contains("..")));
    }

    #[test]
    fn globs() {
        let path = Path::new("/p/staticd.toml");
        let g = Globs::new(
            Some((path, &["dist/assets/*".to_string()])),
            vec!["*.min.js".into()],
        )
        .unwrap();
        assert!(g.matches("dist/assets/a.js"));
        assert!(g.matches("vendor/x.min.js"));
        assert!(!g.matches("dist/a.js"));
        assert!(!Globs::default().matches("a.js"));
        assert_eq!(g.key(), "dist/assets/*\n*.min.js");
        let e = Globs::new(Some((path, &[String::new()])), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid /p/staticd.toml: [collect] bundled: empty pattern"));
        assert!(Globs::new(None, vec![String::new()]).is_err());
    }

    fn dir_source(root: &Path) -> Source {
        Source::Dir {
            finder: "x".into(),
            prefix: String::new(),
            root: root.to_path_buf(),
        }
    }

    fn planned(root: &Path, prefix: &str) -> Vec<SourceFile> {
        let ignore = IgnoreRules::new(&crate::django::DEFAULT_IGNORE_PATTERNS);
        let src = Source::Dir {
            finder: "x".into(),
            prefix: prefix.into(),
            root: root.to_path_buf(),
        };
        super::super::plan::plan(&[src], &ignore).unwrap().files
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// [`mark`] with one directory source, `root`, and no glob.
    fn mark_in(root: &Path, entries: &mut [Entry]) -> Result<Marked, Error> {
        mark(&[dir_source(root)], entries, &Globs::default(), "/static/")
    }

    fn entries_of(files: &[SourceFile]) -> Vec<Entry<'_>> {
        files.iter().map(Entry::new).collect()
    }

    fn bundled<'e>(entries: &'e [Entry]) -> Vec<&'e str> {
        entries
            .iter()
            .filter(|e| e.bundled)
            .map(|e| e.src.rel.as_str())
            .collect()
    }

    #[test]
    fn marks_what_a_hidden_vite_manifest_lists() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("assets");
        write(
            &root,
            "front/dist/.vite/manifest.json",
            r#"{"src/main.js": {"file": "assets/main-DxqxU1Uw.js", "css": ["assets/main-D7AT1Ceu.css"],
                "assets": ["assets/gone-D9VB3iTY.png"]},
               "src/plain.js": {"file": "plain.js"}}"#,
        );
        write(&root, "front/dist/assets/main-DxqxU1Uw.js", "js");
        write(&root, "front/dist/assets/main-D7AT1Ceu.css", "css");
        write(&root, "front/dist/plain.js", "js");
        write(&root, "css/site.css", "css");
        let files = planned(&root, "p");
        let mut entries = entries_of(&files);
        assert!(files.iter().all(|f| !f.rel.contains(".vite")), "hidden");
        let m = mark_in(&root, &mut entries).unwrap();
        assert_eq!(
            bundled(&entries),
            [
                "p/front/dist/assets/main-D7AT1Ceu.css",
                "p/front/dist/assets/main-DxqxU1Uw.js"
            ]
        );
        let manifest = root.join("front/dist/.vite/manifest.json");
        assert_eq!(m.manifests, std::slice::from_ref(&manifest));
        assert_eq!(m.bundled, 2);
        assert_eq!(
            m.warnings,
            [
                Warning::NotCollected {
                    manifest: manifest.clone(),
                    entry: "assets/gone-D9VB3iTY.png".into()
                },
                Warning::NoHash {
                    manifest: manifest.clone(),
                    rel: "p/front/dist/plain.js".into()
                },
            ]
        );
        assert!(m.warnings[0]
            .to_string()
            .contains("/front/dist/.vite/manifest.json names 'assets/gone-D9VB3iTY.png'"));

        // A glob is the user's word: plain.js is kept, and no warning about it.
        let globs = Globs::new(None, vec!["p/front/dist/*.js".into()]).unwrap();
        let m = mark(&[dir_source(&root)], &mut entries, &globs, "/static/").unwrap();
        assert_eq!(bundled(&entries).len(), 3);
        assert_eq!(m.warnings.len(), 1);
    }

    #[test]
    fn a_collected_vite_dir_is_read_once() {
        // Ignore patterns without `.*`: Django collects `.vite/manifest.json`, and so does
        // staticd; it is still read as the manifest of the directory above, once.
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("assets");
        write(
            &root,
            "dist/.vite/manifest.json",
            r#"{"m": {"file": "assets/main-DxqxU1Uw.js"}}"#,
        );
        write(&root, "dist/assets/main-DxqxU1Uw.js", "js");
        let src = dir_source(&root);
        let files =
            super::super::plan::plan(std::slice::from_ref(&src), &IgnoreRules::new(&["CVS"]))
                .unwrap()
                .files;
        let mut entries = entries_of(&files);
        assert!(files.iter().any(|f| f.rel == "dist/.vite/manifest.json"));
        let m = mark(&[src], &mut entries, &Globs::default(), "/static/").unwrap();
        assert_eq!(bundled(&entries), ["dist/assets/main-DxqxU1Uw.js"]);
        assert_eq!(m.manifests, [root.join("dist/.vite/manifest.json")]);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn webpack_manifest_and_web_app_manifest() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("assets");
        write(
            &root,
            "bundles/manifest.json",
            r#"{"main.js": "/static/bundles/main.1a2b3c4d5e6f7a8b9c0d.js",
                "main.css": "/static/bundles/main.0d9c8b7a.css",
                "logo.png": "bundles/9f2c1b3a4d5e6f708192.png"}"#,
        );
        write(&root, "bundles/main.1a2b3c4d5e6f7a8b9c0d.js", "js");
        write(&root, "bundles/main.0d9c8b7a.css", "css");
        write(&root, "bundles/9f2c1b3a4d5e6f708192.png", "png");
        write(
            &root,
            "pwa/manifest.json",
            r#"{"name": "App", "start_url": "/"}"#,
        );
        write(&root, "pwa/icon.12345678.png", "png");
        let files = planned(&root, "");
        let mut entries = entries_of(&files);
        let m = mark_in(&root, &mut entries).unwrap();
        assert_eq!(
            bundled(&entries),
            [
                "bundles/9f2c1b3a4d5e6f708192.png",
                "bundles/main.0d9c8b7a.css",
                "bundles/main.1a2b3c4d5e6f7a8b9c0d.js"
            ]
        );
        assert_eq!(m.manifests, [root.join("bundles/manifest.json")]);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn a_manifest_vouches_only_for_its_own_directory() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        // b's manifest lists a file that a (first) wins: not b's to vouch for.
        write(&a, "x/assets/main-DxqxU1Uw.js", "from a");
        write(
            &b,
            "x/.vite/manifest.json",
            r#"{"m": {"file": "assets/main-DxqxU1Uw.js"}}"#,
        );
        write(&b, "x/assets/main-DxqxU1Uw.js", "from b");
        write(&b, "x/other.txt", "b's own");
        let ignore = IgnoreRules::new(&crate::django::DEFAULT_IGNORE_PATTERNS);
        let sources = [dir_source(&a), dir_source(&b)];
        let files = super::super::plan::plan(&sources, &ignore).unwrap().files;
        let mut entries = entries_of(&files);
        let m = mark(&sources, &mut entries, &Globs::default(), "/static/").unwrap();
        assert!(bundled(&entries).is_empty());
        assert!(matches!(&m.warnings[..], [Warning::NotCollected { .. }]));
    }

    #[test]
    fn broken_manifests() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("assets");
        write(
            &root,
            "dist/.vite/manifest.json",
            "{\n  \"src/main.js\": {\"file\": \"a.js\"\n",
        );
        write(&root, "dist/a.js", "js");
        write(&root, "other/manifest.json", "not json");
        let files = planned(&root, "");
        let mut entries = entries_of(&files);
        let err = mark_in(&root, &mut entries).unwrap_err();
        let path = root.join("dist/.vite/manifest.json");
        assert_eq!(err.kind(), "bundler_manifest");
        assert_eq!(err.path(), Some(path.display().to_string()));
        assert_eq!((err.line(), err.column()), (Some(3), Some(0)));
        let e = err.to_string();
        assert!(
            e.starts_with(&format!(
                "{}:3:0: not a valid Vite manifest: EOF while parsing",
                path.display()
            )),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        let m = mark_in(&root, &mut entries).unwrap();
        assert!(
            matches!(
                &m.warnings[..],
                [Warning::NotJson {
                    line: 1,
                    column: 2,
                    ..
                }]
            ),
            "{:?}",
            m.warnings
        );
        assert!(m.manifests.is_empty());
    }
}
