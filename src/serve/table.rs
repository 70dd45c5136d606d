//! The asset table: URL path → precomputed representations of one file.
//!
//! Built from a scan of STATIC_ROOT plus its manifest, then never mutated: a new generation
//! gets a new table (see `reload`). Requests look paths up here and never join them onto the
//! filesystem, so traversal is impossible by construction: only files the scan admitted
//! (regular, not hidden, resolving beneath STATIC_ROOT without ever leaving it, see `scan`)
//! can ever be answered.

use super::beneath::{self, Links};
use super::dictionary;
use super::negotiate::Encoding;
use crate::delta::{self, format, Coding};
use crate::manifest::Manifest;
use crate::media_type::content_type;
use actix_web::http::header::HeaderValue;
use bytes::Bytes;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Knobs of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    pub root: PathBuf,
    /// STATIC_URL's path (starting and ending with `/`), kept with the table it is the
    /// prefix of: a reload that changes root and prefix swaps both at once.
    pub prefix: String,
    /// Manifest file name inside the root (`staticfiles.json`).
    pub manifest_name: String,
    /// `max-age` for everything that is not a current fingerprinted name.
    pub max_age: u64,
    /// Files up to this size may be held in memory.
    pub mem_file_max: u64,
    /// Cap on the bytes held in memory across the table (RSS budget).
    pub mem_total_max: u64,
    /// RFC 9842 delta deploys (`Use-As-Dictionary` patterns start with `prefix`); false
    /// with `--no-dictionaries`: no deltas, no `Use-As-Dictionary`.
    pub dictionaries: bool,
}

#[cfg(test)]
impl BuildOptions {
    /// The options the unit tests start from: `/static/` under `root`, Django's manifest
    /// name, nothing held in memory, no deltas.
    pub fn for_tests(root: &Path) -> BuildOptions {
        BuildOptions {
            root: root.to_path_buf(),
            prefix: "/static/".into(),
            manifest_name: "staticfiles.json".into(),
            max_age: 60,
            mem_file_max: 0,
            mem_total_max: 0,
            dictionaries: false,
        }
    }
}

/// Identity of a file on disk: if all of these match, the content is the one we hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    /// Nanoseconds since the epoch (i64 covers 1678–2262).
    pub mtime_ns: i64,
}

impl FileId {
    fn of(md: &std::fs::Metadata) -> Self {
        FileId {
            dev: md.dev(),
            ino: md.ino(),
            len: md.len(),
            mtime_ns: md
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(md.mtime_nsec()),
        }
    }
}

/// Where a representation's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Held in memory (small files): answered without a syscall.
    Memory(Bytes),
    /// Streamed from disk at request time from the asset's `rel` plus this coding's suffix.
    File,
    /// Streamed from disk, from a path that is not derivable (symlinked sibling); symlink-free
    /// and relative to the root.
    FileAt(Box<Path>),
    /// In the store (`serve --origin`), under the asset's `rel` plus this coding's suffix,
    /// with this ETag in the store's listing: fetched into the disk cache before the answer
    /// (`dispatch`), which then streams the cached file.
    Remote { store_etag: Option<Box<str>> },
}

/// One representation (coding) of an asset.
#[derive(Debug, Clone)]
pub struct Variant {
    pub encoding: Encoding,
    pub len: u64,
    /// Strong, content-derived: identical on every replica and across redeploys. A slice of
    /// one buffer shared by the table (no allocation per variant).
    pub etag: HeaderValue,
    pub id: FileId,
    pub hash: [u8; 32],
    pub source: Source,
    /// This generation's file, opened on its first request and kept open while the table
    /// lives (nginx's `open_file_cache`): later requests skip the path walk, `openat2` and
    /// `close`, and check it with one `fstat`. At most [`kept_bound`] of them per table.
    pub kept: OnceLock<Arc<File>>,
}

/// Everything needed to answer for one URL. Header values are interned across the table.
#[derive(Debug)]
pub struct Asset {
    /// Symlink-free path of the identity file, relative to the root (usually the URL key
    /// itself, sharing its allocation); disk-backed variants append their suffix.
    pub rel: Arc<str>,
    pub content_type: HeaderValue,
    pub cache_control: HeaderValue,
    /// Seconds since the epoch and the formatted header; `None` when mtime is 0 (reproducible
    /// builds), where a date would be a lie.
    pub last_modified: Option<(u64, HeaderValue)>,
    /// The variants present, in [`Encoding::index`] order; identity is always present.
    pub variants: Box<[Variant]>,
    /// Position in `variants` by [`Encoding::index`], `u8::MAX` when absent.
    pub slots: [u8; 4],
    /// Some coding besides identity exists (or the asset is or has a dictionary), so every
    /// response must carry `Vary`.
    pub has_variants: bool,
    /// Current-manifest fingerprinted name.
    pub immutable: bool,
    /// RFC 9842 deltas that decode to this asset: the SHA-256 of each one's dictionary and
    /// the delta, a representation of its own (coding dcb or dcz, its own ETag).
    pub deltas: Box<[([u8; 32], Variant)]>,
    /// `Use-As-Dictionary`, on a current fingerprinted asset of a delta-eligible type.
    pub dictionary: Option<HeaderValue>,
}

impl Asset {
    pub fn variant(&self, e: Encoding) -> Option<&Variant> {
        let slot = *self.slots.get(e.index())?;
        self.variants.get(usize::from(slot))
    }

    /// The delta in coding `e` against the dictionary whose SHA-256 is `dict`.
    pub fn delta(&self, dict: &[u8; 32], e: Encoding) -> Option<&Variant> {
        self.deltas
            .iter()
            .find(|(d, v)| d == dict && v.encoding == e)
            .map(|(_, v)| v)
    }

    /// Answers about this asset depend on `Available-Dictionary` too (RFC 9842 §6.2).
    pub fn varies_on_dictionary(&self) -> bool {
        self.dictionary.is_some() || !self.deltas.is_empty()
    }
}

/// One generation of STATIC_ROOT.
#[derive(Debug, Default)]
pub struct Table {
    /// Keyed by the path below STATIC_URL, `/`-separated, decoded (e.g. `css/app.css`).
    pub assets: HashMap<Arc<str>, Arc<Asset>>,
    pub root: PathBuf,
    /// STATIC_URL's path ([`BuildOptions::prefix`]).
    pub prefix: String,
    /// The directory this generation was scanned from. A whole-directory swap leaves this fd
    /// on the old generation, so in-flight and not-yet-reloaded requests stay consistent.
    pub dir: Option<Arc<File>>,
    /// (dev, ino) of `dir`.
    pub dir_id: Option<(u64, u64)>,
    pub mem_bytes: u64,
    pub manifest_entries: usize,
    /// The manifest as it was when this generation was scanned, and `max-age` of names that
    /// are not current fingerprints: what [`Table::open_unlisted`] needs.
    manifest: Option<(PathBuf, Option<FileId>)>,
    short_cache: Option<HeaderValue>,
    /// Built from an object store's listing (`serve --origin`), not from a directory.
    pub remote: bool,
    /// What [`Table::outdated`] last found, so a stream of misses (404s) does not pay its
    /// two `stat`s each: `true` is final (a table never becomes current again), `false` is
    /// trusted for [`OUTDATED_RECHECK`] after `outdated_checked` (ns since [`epoch`]).
    outdated_seen: std::sync::atomic::AtomicBool,
    outdated_checked: std::sync::atomic::AtomicU64,
    /// Files kept open in [`Variant::kept`] (at most [`kept_bound`]).
    kept: AtomicUsize,
}

/// How many files one table keeps open: a quarter of the descriptors this process may open
/// (`serve` raises its soft limit to the hard one at start), at most 16,384. The rest stay
/// for connections; a variant past the bound is opened per request, as before.
fn kept_bound() -> usize {
    static BOUND: OnceLock<usize> = OnceLock::new();
    *BOUND.get_or_init(|| {
        let soft = super::open_files_limit().map_or(1024, |lim| lim.rlim_cur);
        usize::try_from(soft / 4).unwrap_or(usize::MAX).min(16_384)
    })
}

/// How long a miss trusts the last "no newer generation" answer: a new name published
/// this long before the reload lands may still answer 404; a miss costs a clock read, not
/// two `stat`s (the 404 benchmark lost a third of its rate to them).
const OUTDATED_RECHECK: std::time::Duration = std::time::Duration::from_millis(2);

/// The process's clock origin for [`Table`]'s atomics.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// A regular file admitted by the scan.
struct Found {
    rel: String,
    resolved: PathBuf,
    id: FileId,
}

impl Table {
    /// Scans `opts.root`. A missing root gives an empty table (the server can start before
    /// the first collect); `prev` lets unchanged files skip hashing and keep their memory.
    pub fn build(opts: &BuildOptions, prev: Option<&Table>) -> anyhow::Result<Table> {
        let t = Self::build_inner(opts, prev);
        // The scan's temporaries (many small allocations, spread over rayon's per-thread
        // arenas) are freed by now: give their pages back instead of keeping them in RSS.
        trim_heap();
        t
    }

    fn build_inner(opts: &BuildOptions, prev: Option<&Table>) -> anyhow::Result<Table> {
        let root = &opts.root;
        let dir = match File::open(root) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Table {
                    root: root.clone(),
                    prefix: opts.prefix.clone(),
                    ..Default::default()
                })
            }
            Err(e) => return Err(anyhow::anyhow!("cannot open {}: {e}", root.display())),
        };
        let dmd = dir.metadata()?;
        anyhow::ensure!(dmd.is_dir(), "{} is not a directory", root.display());
        let dir_id = (dmd.dev(), dmd.ino());
        let canon_root = std::fs::canonicalize(root)?;

        let manifest_path = root.join(&opts.manifest_name);
        // Taken before the read: a manifest replaced meanwhile makes the table look older
        // than it is, never newer.
        let manifest_id = std::fs::metadata(&manifest_path)
            .ok()
            .map(|m| FileId::of(&m));
        let manifest = Manifest::read(&manifest_path)?.unwrap_or_default();

        let found = scan(root, &dir, &canon_root);
        let by_rel: HashSet<&str> = found.iter().map(|f| f.rel.as_str()).collect();

        // Split originals from precompressed siblings and deltas.
        let mut groups: HashMap<&str, [Option<&Found>; 4]> = HashMap::new();
        let mut delta_files: HashMap<&str, Vec<(&Found, Coding, &str)>> = HashMap::new();
        for f in &found {
            if let Some((target, hex, coding)) = delta::parse_file_name(&f.rel) {
                if by_rel.contains(target) {
                    delta_files
                        .entry(target)
                        .or_default()
                        .push((f, coding, hex));
                    continue;
                }
            }
            let mut placed = false;
            for enc in [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip] {
                if let Some(base) = f.rel.strip_suffix(enc.suffix().unwrap_or_default()) {
                    if by_rel.contains(base) {
                        groups.entry(base).or_default()[enc.index()] = Some(f);
                        placed = true;
                    }
                }
            }
            if !placed {
                groups.entry(f.rel.as_str()).or_default()[Encoding::Identity.index()] = Some(f);
            }
        }
        groups.retain(|_, g| g[Encoding::Identity.index()].is_some());

        let immutable: HashSet<&str> = groups
            .keys()
            .copied()
            .filter(|name| is_immutable(name, &manifest))
            .collect();

        let in_memory = plan_memory(&groups, &immutable, opts);
        let reuse = prev.map(reuse_index).unwrap_or_default();
        let mut deltas = match opts.dictionaries {
            true => load_deltas(&dir, &delta_files, &in_memory, &found, opts),
            false => HashMap::new(),
        };

        // Hash every file (in parallel), reading into memory only the planned ones.
        let mut work: Vec<(&Found, bool)> = Vec::new();
        for g in groups.values() {
            for f in g.iter().flatten() {
                work.push((f, in_memory.contains(f.rel.as_str())));
            }
        }
        let hashed: HashMap<&str, ([u8; 32], Option<Bytes>)> = work
            .par_iter()
            .filter_map(|(f, keep)| {
                let r = hash_file(&dir, f, *keep, &reuse);
                match r {
                    Ok(v) => Some((f.rel.as_str(), v)),
                    Err(e) => {
                        tracing::warn!("skipping {}: {e}", f.rel);
                        None
                    }
                }
            })
            .collect();

        // Share identical contents (e.g. an image and its hashed copy) in memory once.
        let mut dedup: HashMap<[u8; 32], Bytes> = HashMap::new();
        let mut mem_bytes = 0u64;
        let mut assets = HashMap::with_capacity(groups.len());
        let mut interned = Interned::new(opts.max_age);
        for (name, g) in &groups {
            let Some(ident) = g[Encoding::Identity.index()] else {
                continue;
            };
            let name: Arc<str> = Arc::from(*name);
            let rel: Arc<str> = match ident.resolved.to_str() {
                Some(r) if r == &*name => name.clone(),
                Some(r) => Arc::from(r),
                // Not expressible as a prefix: every disk variant keeps its own path.
                None => name.clone(),
            };
            let mut variants = Vec::with_capacity(4);
            let mut slots = [u8::MAX; 4];
            for (i, f) in g.iter().enumerate() {
                let Some(f) = f else { continue };
                let Some((hash, bytes)) = hashed.get(f.rel.as_str()) else {
                    continue;
                };
                let enc = Encoding::PREFERENCE[i];
                let source = match bytes {
                    Some(b) => {
                        let shared = dedup.entry(*hash).or_insert_with(|| {
                            mem_bytes += b.len() as u64;
                            b.clone()
                        });
                        Source::Memory(shared.clone())
                    }
                    None => {
                        let derived = f.resolved.to_str().is_some_and(|r| {
                            r.strip_prefix(&*rel) == Some(enc.suffix().unwrap_or_default())
                        });
                        if derived {
                            Source::File
                        } else {
                            Source::FileAt(f.resolved.clone().into_boxed_path())
                        }
                    }
                };
                slots[i] = variants.len() as u8;
                variants.push(Variant {
                    encoding: enc,
                    len: f.id.len,
                    etag: interned.etags.etag(hash),
                    id: f.id,
                    hash: *hash,
                    source,
                    kept: OnceLock::new(),
                });
            }
            let Some(identity) = variants.last().filter(|v| v.encoding == Encoding::Identity)
            else {
                continue;
            };
            let secs = identity.id.mtime_ns.div_euclid(1_000_000_000);
            let imm = immutable.contains(&*name);
            let asset_deltas = deltas.remove(&*name).unwrap_or_default();
            let dictionary = Some(opts.prefix.as_str())
                .filter(|_| {
                    opts.dictionaries
                        && imm
                        && (!asset_deltas.is_empty()
                            || delta::eligible(&name, delta::DEFAULT_EXTENSIONS))
                })
                .and_then(|prefix| dictionary::use_as_dictionary(prefix, &name))
                .and_then(|v| HeaderValue::from_str(&v).ok());
            let asset_deltas: Vec<([u8; 32], Variant)> = asset_deltas
                .into_iter()
                .map(|d| {
                    let source = match d.bytes {
                        Some(b) => {
                            mem_bytes += b.len() as u64;
                            Source::Memory(b)
                        }
                        None => Source::FileAt(d.resolved.into_boxed_path()),
                    };
                    let v = Variant {
                        encoding: d.encoding,
                        len: d.id.len,
                        etag: interned.etags.etag(&d.hash),
                        id: d.id,
                        hash: d.hash,
                        source,
                        kept: OnceLock::new(),
                    };
                    (d.dict, v)
                })
                .collect();
            let mut asset = interned.asset(rel, &name, secs, variants, slots, imm);
            asset.has_variants |= dictionary.is_some() || !asset_deltas.is_empty();
            asset.deltas = asset_deltas.into_boxed_slice();
            asset.dictionary = dictionary;
            assets.insert(name, Arc::new(asset));
        }
        Ok(Table {
            assets,
            root: root.clone(),
            prefix: opts.prefix.clone(),
            dir: Some(Arc::new(dir)),
            dir_id: Some(dir_id),
            mem_bytes,
            manifest_entries: manifest.paths.len(),
            manifest: Some((manifest_path, manifest_id)),
            short_cache: Some(interned.short_cache),
            remote: false,
            ..Default::default()
        })
    }

    /// Whether a generation was published after this table was scanned: STATIC_ROOT was
    /// swapped (or created), or its manifest replaced (per-file publishing). Asked again at
    /// most every [`OUTDATED_RECHECK`] while the answer is no.
    fn outdated(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.outdated_seen.load(Relaxed) {
            return true;
        }
        let now = (epoch().elapsed().as_nanos() as u64).max(1);
        let last = self.outdated_checked.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < OUTDATED_RECHECK.as_nanos() as u64 {
            return false;
        }
        self.outdated_checked.store(now, Relaxed);
        let seen = self.check_outdated();
        if seen {
            self.outdated_seen.store(true, Relaxed);
        }
        seen
    }

    fn check_outdated(&self) -> bool {
        let root = std::fs::metadata(&self.root)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if root != self.dir_id {
            return true;
        }
        self.manifest
            .as_ref()
            .is_some_and(|(path, id)| std::fs::metadata(path).ok().map(|m| FileId::of(&m)) != *id)
    }

    /// A file this table does not list, when a newer generation has been published and the
    /// reload has not landed yet: a name new in that generation (e.g. a new hashed name,
    /// which the new manifest already gives templates) is served from the current
    /// STATIC_ROOT instead of answering 404 meanwhile. The scan's admission rules apply:
    /// no hidden component, resolution beneath the root. Costs two `stat`s per miss.
    pub fn open_unlisted(&self, key: &str) -> Option<Unlisted> {
        if key.split('/').any(|c| c.is_empty() || c.starts_with('.')) || !self.outdated() {
            return None;
        }
        let root = File::open(&self.root).ok()?;
        let file = beneath::open(&root, Path::new(key), Links::Beneath).ok()?;
        let md = file.metadata().ok()?;
        if !md.is_file() {
            return None;
        }
        let content_type = HeaderValue::from_str(&content_type(key))
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        Some(Unlisted {
            file,
            len: md.len(),
            content_type,
            cache_control: self.short_cache.clone()?,
        })
    }

    /// A table of assets from elsewhere than a directory scan (an object store's listing):
    /// nothing on disk to watch or reopen.
    pub fn remote(
        assets: HashMap<Arc<str>, Arc<Asset>>,
        prefix: String,
        manifest_entries: usize,
    ) -> Table {
        Table {
            assets,
            prefix,
            manifest_entries,
            remote: true,
            ..Default::default()
        }
    }

    pub fn get(&self, rel: &str) -> Option<&Arc<Asset>> {
        self.assets.get(rel)
    }

    /// Opens a disk-backed variant. [`Opened::Same`] proves it is still the file we hashed:
    /// this generation's directory is tried first, then the current STATIC_ROOT (the old
    /// directory may have been swapped out and deleted). A file at the current STATIC_ROOT
    /// that differs is [`Opened::Replaced`]: a collect published new bytes under this name
    /// and the table has not caught up yet.
    pub fn open(&self, asset: &Asset, v: &Variant) -> Opened {
        let derived;
        let rel: &Path = match &v.source {
            Source::Memory(_) | Source::Remote { .. } => return Opened::Gone,
            Source::FileAt(p) => p,
            Source::File => {
                derived = format!("{}{}", asset.rel, v.encoding.suffix().unwrap_or_default());
                Path::new(&derived)
            }
        };
        if let Some(f) = v.kept.get() {
            // Still the bytes the table describes: a rewrite in place (`cp` over the file)
            // changes its length or mtime, and then the name is looked up again below.
            if f.metadata().is_ok_and(|m| FileId::of(&m) == v.id) {
                return Opened::Same(f.clone());
            }
        }
        if let Some(dir) = &self.dir {
            if let Ok(f) = beneath::open(dir, rel, Links::Never) {
                if f.metadata().is_ok_and(|m| FileId::of(&m) == v.id) {
                    return Opened::Same(self.keep(v, f));
                }
            }
        }
        // The root as it is now (a swap may have replaced it), never a path through a
        // symlink below it: the scan resolved `rel` already.
        let Some(f) = File::open(&self.root)
            .ok()
            .and_then(|root| beneath::open(&root, rel, Links::Never).ok())
        else {
            return Opened::Gone;
        };
        let Ok(md) = f.metadata() else {
            return Opened::Gone;
        };
        let id = FileId::of(&md);
        if !md.is_file() {
            Opened::Gone
        } else if id.len == v.id.len && id.mtime_ns == v.id.mtime_ns {
            Opened::Same(Arc::new(f))
        } else {
            Opened::Replaced(Arc::new(f), md.len())
        }
    }

    /// `f`, opened from this generation's directory and checked against `v`, kept in
    /// `v.kept` while the bound allows (another worker may have kept its own first).
    fn keep(&self, v: &Variant, f: File) -> Arc<File> {
        let f = Arc::new(f);
        if self.kept.fetch_add(1, Ordering::Relaxed) >= kept_bound()
            || v.kept.set(f.clone()).is_err()
        {
            self.kept.fetch_sub(1, Ordering::Relaxed);
        }
        f
    }
}

/// A file found by [`Table::open_unlisted`], with what its answer needs.
pub struct Unlisted {
    pub file: File,
    pub len: u64,
    pub content_type: HeaderValue,
    pub cache_control: HeaderValue,
}

/// What [`Table::open`] found.
pub enum Opened {
    /// The very file the table describes.
    Same(Arc<File>),
    /// Another file under the same name, of this many bytes.
    Replaced(Arc<File>, u64),
    /// Nothing (or not a regular file) under that name any more.
    Gone,
}

/// Walks the root, admitting regular files that are not hidden and resolve beneath it.
///
/// A path through a symlink is admitted by the mounts' rule ([`Links::Beneath`], the kernel's
/// `RESOLVE_BENEATH`): every step of its resolution stays below the root. So a link that
/// leaves the root is refused even when it comes back in (`css -> ../static/css`), and so is
/// an absolute one wherever it points (among them what `collect --link` makes: links to the
/// sources, outside STATIC_ROOT); a relative link whose `..` stays inside is followed. The
/// admitted path is then resolved (`realpath`) to the symlink-free name requests open.
/// Only paths through a symlink are checked and resolved: for the others the path below the
/// root is already the resolved one, and a `realpath` per file was most of a rebuild.
fn scan(root: &Path, dir: &File, canon_root: &Path) -> Vec<Found> {
    let inside = |p: &Path| -> Option<PathBuf> {
        let rel = p.strip_prefix(root).ok()?;
        beneath::open(dir, rel, Links::Beneath).ok()?;
        let c = std::fs::canonicalize(p).ok()?;
        c.strip_prefix(canon_root).ok().map(Path::to_path_buf)
    };
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.file_name().as_bytes().first() == Some(&b'.');
            // Prune symlinked directories leading outside before descending into them.
            !hidden
                && (!e.path_is_symlink() || !e.file_type().is_dir() || inside(e.path()).is_some())
        });
    let mut out = Vec::new();
    // Symlinked directories seen so far: whatever is below them needs resolving.
    let mut linked_dirs: Vec<PathBuf> = Vec::new();
    for entry in walker {
        let Ok(e) = entry else { continue };
        let via_link = e.path_is_symlink() || linked_dirs.iter().any(|d| e.path().starts_with(d));
        if !e.file_type().is_file() {
            if via_link && e.file_type().is_dir() {
                linked_dirs.push(e.path().to_path_buf());
            }
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel_str) = rel.to_str() else {
            continue;
        };
        // Names that a request path could never express safely are left out.
        if rel_str.contains(['\\', '\0']) {
            continue;
        }
        let resolved = if via_link {
            let Some(r) = inside(e.path()) else {
                continue;
            };
            r
        } else {
            rel.to_path_buf()
        };
        let Ok(md) = std::fs::metadata(e.path()) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        out.push(Found {
            rel: rel_str.to_string(),
            resolved,
            id: FileId::of(&md),
        });
    }
    out
}

/// A delta found beside its asset, its header checked.
struct LoadedDelta {
    encoding: Encoding,
    /// SHA-256 of its dictionary, from its header.
    dict: [u8; 32],
    hash: [u8; 32],
    id: FileId,
    resolved: PathBuf,
    /// Held in memory when small enough and the budget allows.
    bytes: Option<Bytes>,
}

/// Reads every delta (they are small: kept only when well under the asset's best ordinary
/// variant), checking that its header is its coding's and names the dictionary its file name
/// does; a bad one is left out with a warning. Held in memory within what the table's budget
/// has left after its planned files.
fn load_deltas<'a>(
    dir: &File,
    files: &HashMap<&'a str, Vec<(&Found, Coding, &str)>>,
    in_memory: &HashSet<&str>,
    found: &[Found],
    opts: &BuildOptions,
) -> HashMap<&'a str, Vec<LoadedDelta>> {
    let planned: u64 = found
        .iter()
        .filter(|f| in_memory.contains(f.rel.as_str()))
        .map(|f| f.id.len)
        .sum();
    let budget = std::sync::atomic::AtomicU64::new(opts.mem_total_max.saturating_sub(planned));
    let work: Vec<(&str, &(&Found, Coding, &str))> = files
        .iter()
        .flat_map(|(t, ds)| ds.iter().map(move |d| (*t, d)))
        .collect();
    let loaded: Vec<(&str, LoadedDelta)> = work
        .par_iter()
        .filter_map(|&(target, &(f, coding, hex))| {
            let r = load_delta(dir, f, coding, hex).map(|(dict, hash, buf)| {
                let keep = f.id.len <= opts.mem_file_max
                    && budget
                        .fetch_update(
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                            |left| left.checked_sub(f.id.len),
                        )
                        .is_ok();
                LoadedDelta {
                    encoding: match coding {
                        Coding::Dcb => Encoding::Dcb,
                        Coding::Dcz => Encoding::Dcz,
                    },
                    dict,
                    hash,
                    id: f.id,
                    resolved: f.resolved.clone(),
                    bytes: keep.then(|| Bytes::from(buf)),
                }
            });
            match r {
                Ok(d) => Some((target, d)),
                Err(e) => {
                    tracing::warn!("skipping {}: {e}", f.rel);
                    None
                }
            }
        })
        .collect();
    let mut out: HashMap<&str, Vec<LoadedDelta>> = HashMap::new();
    for (target, d) in loaded {
        out.entry(target).or_default().push(d);
    }
    out
}

/// The dictionary a delta file names in its header, its content hash and its bytes.
fn load_delta(
    dir: &File,
    f: &Found,
    coding: Coding,
    hex: &str,
) -> io::Result<([u8; 32], [u8; 32], Vec<u8>)> {
    let file = beneath::open(dir, &f.resolved, Links::Never)?;
    if FileId::of(&file.metadata()?) != f.id {
        return Err(io::Error::other("changed while scanning"));
    }
    let mut buf = Vec::with_capacity(f.id.len as usize);
    (&file).take(f.id.len).read_to_end(&mut buf)?;
    if buf.len() as u64 != f.id.len {
        return Err(io::Error::other("changed while reading"));
    }
    let dict = format::dictionary_of(coding, &buf)
        .ok_or_else(|| io::Error::other(format!("no {} header", coding.token())))?;
    if !delta::prefix_matches(hex, &dict) {
        return Err(io::Error::other(
            "its header names another dictionary than its file name",
        ));
    }
    Ok((dict, *blake3::hash(&buf).as_bytes(), buf))
}

/// Chooses the files held in memory, most likely served first, until the byte budget is
/// spent. For each URL the coding browsers actually get comes first (br, else zstd, else
/// gzip; identity only when it has no compressed sibling), then the other compressed
/// codings, and identity files that have a compressed sibling (only clients that accept no
/// coding get them) last. Current fingerprinted names (what pages reference) go before
/// unhashed originals and older generations; smaller before larger within a rank.
fn plan_memory<'a>(
    groups: &HashMap<&'a str, [Option<&'a Found>; 4]>,
    immutable: &HashSet<&str>,
    opts: &BuildOptions,
) -> HashSet<&'a str> {
    let mut cands: Vec<(u8, u64, &str)> = Vec::new();
    for (name, g) in groups {
        let imm = immutable.contains(name);
        let compressed = g[..3].iter().any(Option::is_some);
        let mut first = true;
        for (i, f) in g.iter().enumerate() {
            let Some(f) = f else { continue };
            let rank = if i == Encoding::Identity.index() {
                if compressed {
                    2
                } else {
                    0
                }
            } else if std::mem::take(&mut first) {
                0
            } else {
                1
            };
            if f.id.len <= opts.mem_file_max {
                cands.push((rank + if imm { 0 } else { 3 }, f.id.len, f.rel.as_str()));
            }
        }
    }
    cands.sort_unstable();
    let mut total = 0u64;
    let mut out = HashSet::new();
    for (_, len, rel) in cands {
        if total + len > opts.mem_total_max {
            continue;
        }
        total += len;
        out.insert(rel);
    }
    out
}

/// What a new build can take over from the previous generation.
#[derive(Default)]
struct Reuse {
    /// Hash (and bytes, if in memory) by on-disk identity: unchanged files skip hashing.
    by_id: HashMap<FileId, ([u8; 32], Option<Bytes>)>,
    /// In-memory bytes by content: a directory swap gives every file a new inode, but
    /// unchanged contents then share the old buffer instead of doubling memory.
    by_hash: HashMap<[u8; 32], Bytes>,
}

fn reuse_index(prev: &Table) -> Reuse {
    let mut r = Reuse::default();
    for v in prev.assets.values().flat_map(|a| a.variants.iter()) {
        let bytes = match &v.source {
            Source::Memory(b) => {
                r.by_hash.insert(v.hash, b.clone());
                Some(b.clone())
            }
            Source::File | Source::FileAt(_) | Source::Remote { .. } => None,
        };
        r.by_id.insert(v.id, (v.hash, bytes));
    }
    r
}

fn hash_file(
    dir: &File,
    f: &Found,
    keep: bool,
    reuse: &Reuse,
) -> io::Result<([u8; 32], Option<Bytes>)> {
    if let Some((hash, bytes)) = reuse.by_id.get(&f.id) {
        if !keep {
            return Ok((*hash, None));
        }
        if bytes.is_some() {
            return Ok((*hash, bytes.clone()));
        }
    }
    let file = beneath::open(dir, &f.resolved, Links::Never)?;
    if FileId::of(&file.metadata()?) != f.id {
        return Err(io::Error::other("changed while scanning"));
    }
    if keep {
        let mut buf = Vec::with_capacity(f.id.len as usize);
        (&file).take(f.id.len).read_to_end(&mut buf)?;
        if buf.len() as u64 != f.id.len {
            return Err(io::Error::other("changed while reading"));
        }
        let hash = *blake3::hash(&buf).as_bytes();
        let bytes = match reuse.by_hash.get(&hash) {
            Some(old) => old.clone(),
            None => Bytes::from(buf),
        };
        Ok((hash, Some(bytes)))
    } else {
        let mut h = blake3::Hasher::new();
        h.update_reader(&file)?;
        Ok((*h.finalize().as_bytes(), None))
    }
}

/// Header values of one table, interned: few distinct types and dates, two Cache-Control
/// values, one buffer for all ETags. Also what makes an [`Asset`] of them, for a scan and
/// for an origin's listing alike.
pub struct Interned {
    types: HashMap<String, HeaderValue>,
    dates: HashMap<u64, HeaderValue>,
    pub etags: EtagArena,
    long_cache: HeaderValue,
    short_cache: HeaderValue,
}

impl Interned {
    /// `max_age`: of the names that are not current fingerprints.
    pub fn new(max_age: u64) -> Interned {
        Interned {
            types: HashMap::new(),
            dates: HashMap::new(),
            etags: EtagArena::default(),
            // Without `public`: added per request, only with Authorization
            // (`Request::cache_control`).
            long_cache: HeaderValue::from_static("max-age=31536000, immutable"),
            short_cache: HeaderValue::from_str(&format!("max-age={max_age}"))
                .expect("digits make a valid header value"),
        }
    }

    /// The asset `name` with `variants` (placed by `slots`), last modified at `secs` since
    /// the epoch (none when 0 or less: a reproducible build's date would be a lie).
    pub fn asset(
        &mut self,
        rel: Arc<str>,
        name: &str,
        secs: i64,
        variants: Vec<Variant>,
        slots: [u8; 4],
        immutable: bool,
    ) -> Asset {
        let last_modified = (secs > 0).then(|| {
            let s = secs as u64;
            let v = self.dates.entry(s).or_insert_with(|| {
                HeaderValue::from_str(&super::conditional::http_date(s))
                    .expect("http date is ASCII")
            });
            (s, v.clone())
        });
        let ct = content_type(name);
        let content_type = match self.types.get(ct.as_str()) {
            Some(v) => v.clone(),
            None => {
                let v = HeaderValue::from_str(&ct)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                self.types.insert(ct, v.clone());
                v
            }
        };
        Asset {
            rel,
            content_type,
            cache_control: if immutable {
                self.long_cache.clone()
            } else {
                self.short_cache.clone()
            },
            last_modified,
            has_variants: slots[..3].iter().any(|&s| s != u8::MAX),
            variants: variants.into_boxed_slice(),
            slots,
            immutable,
            deltas: Box::new([]),
            dictionary: None,
        }
    }
}

/// ETags of one table, written into shared buffers: each `HeaderValue` is a slice, so a
/// variant costs no allocation of its own.
#[derive(Default)]
pub struct EtagArena {
    buf: bytes::BytesMut,
}

impl EtagArena {
    /// Quoted ETag bytes per variant: 96 bits of BLAKE3 in hex.
    const LEN: usize = 26;
    /// ETags per shared buffer.
    const PER_BUF: usize = 4096;

    /// 96 bits of BLAKE3 in hex: collision-free in practice, short on the wire.
    pub fn etag(&mut self, hash: &[u8; 32]) -> HeaderValue {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        if self.buf.capacity() - self.buf.len() < Self::LEN {
            self.buf = bytes::BytesMut::with_capacity(Self::LEN * Self::PER_BUF);
        }
        self.buf.extend_from_slice(b"\"");
        for b in &hash[..12] {
            self.buf
                .extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        self.buf.extend_from_slice(b"\"");
        // The written bytes leave as their own view; `buf` keeps the rest of the allocation.
        let v = self.buf.split().freeze();
        HeaderValue::from_maybe_shared(v).expect("hex is a valid header")
    }
}

/// Returns freed heap pages to the system (glibc keeps them otherwise).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// WhiteNoise's `immutable_file_test` (spec §3.6): strip the second-to-last dot segment and
/// check that the *current* manifest maps the result back to this very name. Hashed files of
/// older generations, originals and extensionless names fail it.
///
/// Also a name the manifest maps to itself and that carries a bundler's hash
/// ([`crate::manifest::has_bundler_hash`]): `collect` writes such an entry for a file a
/// bundler already named by content (collect/bundler.rs; Django's own names always insert a
/// hash), and Vite's `main-DxqxU1Uw.js` has no dot segment to strip. The name check keeps
/// WhiteNoise's answer for the identity entries a Django storage that overrides
/// `hashed_name` writes for files it leaves unhashed (`img/logo.png`): not immutable.
pub fn is_immutable(name: &str, manifest: &Manifest) -> bool {
    if manifest.paths.get(name).map(String::as_str) == Some(name) {
        return crate::manifest::has_bundler_hash(name);
    }
    let (stem, ext) = splitext(name);
    let without_hash = format!("{}{}", splitext(stem).0, ext);
    without_hash != name && manifest.paths.get(&without_hash).map(String::as_str) == Some(name)
}

/// Python's `os.path.splitext`: leading dots of the last component do not start an extension.
fn splitext(p: &str) -> (&str, &str) {
    let base_start = p.rfind('/').map_or(0, |i| i + 1);
    let base = &p[base_start..];
    let lead = base.len() - base.trim_start_matches('.').len();
    match base[lead..].rfind('.') {
        Some(i) => p.split_at(base_start + lead + i),
        None => (p, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn python_splitext() {
        assert_eq!(splitext("a/b.c.css"), ("a/b.c", ".css"));
        assert_eq!(splitext(".bashrc"), (".bashrc", ""));
        assert_eq!(splitext("d.x/file"), ("d.x/file", ""));
        assert_eq!(splitext("..a.b"), ("..a", ".b"));
    }

    #[test]
    fn immutable_test_is_whitenoises() {
        let m = Manifest::new(BTreeMap::from([
            ("css/site.css".into(), "css/site.e76fcaa75cfb.css".into()),
            ("app.js.map".into(), "app.js.453953456fae.map".into()),
            ("LICENSE".into(), "LICENSE.f4630b744e0d".into()),
        ]));
        assert!(is_immutable("css/site.e76fcaa75cfb.css", &m));
        assert!(is_immutable("app.js.453953456fae.map", &m));
        assert!(!is_immutable("css/site.css", &m));
        assert!(!is_immutable("css/site.0123456789ab.css", &m));
        assert!(!is_immutable("LICENSE.f4630b744e0d", &m));
    }

    #[test]
    fn a_name_mapped_to_itself_is_immutable() {
        let m = Manifest::new(BTreeMap::from([
            (
                "assets/main-DxqxU1Uw.js".into(),
                "assets/main-DxqxU1Uw.js".into(),
            ),
            ("css/site.css".into(), "css/site.e76fcaa75cfb.css".into()),
            ("img/logo.png".into(), "img/logo.png".into()),
        ]));
        assert!(is_immutable("assets/main-DxqxU1Uw.js", &m));
        assert!(
            !is_immutable("img/logo.png", &m),
            "mapped to itself, but its name promises nothing"
        );
        assert!(is_immutable("css/site.e76fcaa75cfb.css", &m));
        assert!(
            !is_immutable("assets/main-AAAAAAAA.js", &m),
            "not in the manifest"
        );
        assert!(!is_immutable("css/site.css", &m), "an original");
    }

    #[test]
    fn scan_resolves_only_paths_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("css/a.css"), "a").unwrap();
        std::os::unix::fs::symlink("css", root.join("alias")).unwrap();
        std::os::unix::fs::symlink("css/a.css", root.join("b.css")).unwrap();
        // Refused although they land inside: out and back in, and absolute.
        std::os::unix::fs::symlink("../static/css", root.join("back")).unwrap();
        std::os::unix::fs::symlink("../static/css/a.css", root.join("back.css")).unwrap();
        std::os::unix::fs::symlink(root.join("css/a.css"), root.join("abs.css")).unwrap();
        let canon = std::fs::canonicalize(&root).unwrap();
        let dir = File::open(&root).unwrap();
        let mut found: Vec<(String, PathBuf)> = scan(&root, &dir, &canon)
            .into_iter()
            .map(|f| (f.rel, f.resolved))
            .collect();
        found.sort();
        let want = |r: &str, p: &str| (r.to_string(), PathBuf::from(p));
        assert_eq!(
            found,
            vec![
                want("alias/a.css", "css/a.css"),
                want("b.css", "css/a.css"),
                want("css/a.css", "css/a.css"),
            ]
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("a.woff2"), "font/woff2");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}

#[cfg(test)]
mod unlisted_tests {
    use super::*;

    /// `open_unlisted(key)` once a publish is seen: a "not outdated" answer is trusted for
    /// [`OUTDATED_RECHECK`], so poll (deadline 5 s).
    fn found(table: &Table, key: &str) -> Option<Unlisted> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let u = table.open_unlisted(key);
            if u.is_some() || std::time::Instant::now() > deadline {
                return u;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn opts(root: &Path) -> BuildOptions {
        BuildOptions {
            dictionaries: true,
            ..BuildOptions::for_tests(root)
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A name published after the scan is served only once the tree has moved on (swap or
    /// new manifest), and never a hidden one or one outside the root.
    #[test]
    fn names_of_a_newer_generation_are_found_until_the_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("static");
        write(&root.join("a.css"), b"a");
        write(
            &root.join("staticfiles.json"),
            br#"{"paths": {}, "version": "1.1"}"#,
        );
        let table = Table::build(&opts(&root), None).unwrap();
        assert!(table.get("b.css").is_none());

        // Not published yet: a file appearing without a new generation stays unlisted.
        write(&root.join("b.css"), b"bb");
        assert!(table.open_unlisted("b.css").is_none());

        // A whole-directory swap, as collect publishes.
        let next = tmp.path().join("next");
        write(&next.join("b.css"), b"bbb");
        write(&next.join(".hidden"), b"h");
        write(
            &next.join("staticfiles.json"),
            br#"{"paths": {}, "version": "1.1"}"#,
        );
        write(&tmp.path().join("outside.css"), b"o");
        std::os::unix::fs::symlink("../outside.css", next.join("out.css")).unwrap();
        std::fs::rename(&root, tmp.path().join("old")).unwrap();
        std::fs::rename(&next, &root).unwrap();

        let u = found(&table, "b.css").expect("the new generation's file");
        assert_eq!(u.len, 3);
        assert_eq!(u.content_type, "text/css; charset=utf-8");
        assert_eq!(u.cache_control, "max-age=60");
        assert!(table.open_unlisted(".hidden").is_none());
        assert!(table.open_unlisted("out.css").is_none());
        assert!(table.open_unlisted("../outside.css").is_none());
        assert!(table.open_unlisted("nope.css").is_none());

        // Per-file publishing: same directory, a new manifest.
        let table = Table::build(&opts(&root), None).unwrap();
        write(&root.join("c.css"), b"c");
        assert!(table.open_unlisted("c.css").is_none());
        write(
            &root.join("staticfiles.json"),
            br#"{"paths": {"c.css": "c.css"}, "version": "1.1"}"#,
        );
        assert!(found(&table, "c.css").is_some());
    }

    /// A served file is opened once and kept: later requests get the same descriptor. A name
    /// renamed over leaves the kept file as the table describes it (its bytes, its length);
    /// a rewrite in place (another length) is not served from it but looked up again.
    #[test]
    fn files_are_kept_open_and_checked() {
        use std::os::unix::fs::FileExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("static");
        write(&root.join("a.css"), b"aaaa");
        write(&root.join("b.css"), b"bbbb");
        let table = Table::build(&opts(&root), None).unwrap();
        let open = |key: &str| {
            let a = table.get(key).unwrap();
            table.open(a, a.variant(Encoding::Identity).unwrap())
        };
        let same = |key: &str| match open(key) {
            Opened::Same(f) => f,
            _ => panic!("{key}: not the file the table describes"),
        };
        let first = same("a.css");
        assert!(Arc::ptr_eq(&first, &same("a.css")));

        write(&root.join("a.new"), b"AAAAAAA");
        std::fs::rename(root.join("a.new"), root.join("a.css")).unwrap();
        let kept = same("a.css");
        assert!(Arc::ptr_eq(&first, &kept));
        let mut buf = [0u8; 8];
        assert_eq!(kept.read_at(&mut buf, 0).unwrap(), 4);
        assert_eq!(&buf[..4], b"aaaa");

        let b = same("b.css");
        std::fs::write(root.join("b.css"), b"bbbbbbbb").unwrap(); // same inode
        match open("b.css") {
            Opened::Replaced(f, len) => {
                assert_eq!(len, 8);
                assert!(!Arc::ptr_eq(&f, &b));
            }
            _ => panic!("b.css rewritten in place still served as the kept file"),
        }
    }

    /// A stream of misses costs a clock read each, not two `stat`s: "not outdated" is
    /// trusted for a while, and "outdated" for good.
    #[test]
    fn the_outdated_answer_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("static");
        std::fs::create_dir_all(&root).unwrap();
        let table = Table::build(&opts(&root), None).unwrap();
        assert!(!table.outdated());
        let checked = table
            .outdated_checked
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(!table.outdated());
        // Within OUTDATED_RECHECK (or at the same ns): not asked again.
        let again = table
            .outdated_checked
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(again == checked || again - checked >= OUTDATED_RECHECK.as_nanos() as u64);
        std::fs::rename(&root, tmp.path().join("old")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !table.outdated() {
            assert!(
                std::time::Instant::now() < deadline,
                "the swap is never seen"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Final: even with the old directory back.
        std::fs::remove_dir(&root).unwrap();
        std::fs::rename(tmp.path().join("old"), &root).unwrap();
        assert!(table.outdated());
    }
}
