//! Corpora and trees: the synthetic STATIC_ROOT the serve bench loads, where the collect bench
//! keeps its Django projects (the incremental bench reuses them), tree copies and sizes.

use super::{checked_output, target_dir, STATICD};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// `target/bench-corpus/`: the collect bench's npm downloads and Django projects
/// (`<corpus>/manage.py`), which the incremental bench times again.
pub fn bench_corpus_root() -> PathBuf {
    target_dir().join("bench-corpus")
}

/// Copies `from` to `to`, leaving out every entry (and what is under it) for which
/// `skip(path relative to from)` holds.
pub fn copy_tree(from: &Path, to: &Path, skip: impl Fn(&Path) -> bool) -> std::io::Result<()> {
    let entries = walkdir::WalkDir::new(from)
        .into_iter()
        .filter_entry(|e| !skip(e.path().strip_prefix(from).unwrap_or(e.path())));
    for e in entries {
        let e = e?;
        let dst = to.join(e.path().strip_prefix(from).unwrap_or(e.path()));
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dst)?;
        } else {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}

/// Files and bytes under `dir`.
pub fn tree_size(dir: &Path) -> (u64, u64) {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .fold((0, 0), |(n, b), e| {
            (n + 1, b + e.metadata().map(|m| m.len()).unwrap_or(0))
        })
}

// ---------------------------------------------------------------------------------------------
// The serve bench's corpus.

/// Bump when the recipe below changes, so a cached corpus is rebuilt.
const VERSION: &str = "v1";

/// xorshift64*: deterministic content without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Log-uniform in [lo, hi).
    pub fn log_size(&mut self, lo: f64, hi: f64) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo * (hi / lo).powf(u)) as usize
    }
}

/// Class and function names: text that compresses like real CSS and JS.
const WORDS: &[&str] = &[
    "button",
    "header",
    "footer",
    "nav",
    "item",
    "active",
    "disabled",
    "primary",
    "secondary",
    "container",
    "row",
    "col",
    "grid",
    "flex",
    "card",
    "modal",
    "tooltip",
    "dropdown",
    "form",
    "input",
    "label",
    "select",
    "table",
    "list",
    "icon",
    "badge",
    "alert",
    "panel",
    "title",
    "content",
    "wrapper",
    "inner",
    "outer",
    "left",
    "right",
    "top",
    "bottom",
    "small",
    "large",
];

/// `size` bytes of lines, each written by `line` from two random words.
fn text(rng: &mut Rng, size: usize, line: fn(&mut String, &mut Rng, &str, &str)) -> Vec<u8> {
    let mut s = String::with_capacity(size + 200);
    while s.len() < size {
        let a = WORDS[rng.below(WORDS.len() as u64) as usize];
        let b = WORDS[rng.below(WORDS.len() as u64) as usize];
        line(&mut s, rng, a, b);
    }
    s.truncate(size);
    s.into_bytes()
}

pub fn css_text(rng: &mut Rng, size: usize) -> Vec<u8> {
    text(rng, size, |s, rng, a, b| {
        let _ = writeln!(
            s,
            ".{a}-{b}-{} {{ color: #{:06x}; margin: {}px {}px; padding: {}px; }}",
            rng.below(100),
            rng.below(0xffffff),
            rng.below(40),
            rng.below(40),
            rng.below(24)
        );
    })
}

pub fn js_text(rng: &mut Rng, size: usize) -> Vec<u8> {
    text(rng, size, |s, rng, a, b| {
        let _ = writeln!(
            s,
            "function {a}_{b}_{}(el, opts) {{ var n = opts.{b} || {}; if (el.classList.contains('{a}')) {{ el.style.width = (n * {}) + 'px'; }} return n ^ 0x{:x}; }}",
            rng.below(10_000),
            rng.below(1000),
            rng.below(64),
            rng.next() & 0xffff_ffff
        );
    })
}

/// A collected STATIC_ROOT and the hashed URLs the serve bench requests.
pub struct StaticCorpus {
    /// The directory whose `static/` is STATIC_ROOT (nginx `root`, Caddy `root`).
    pub parent: PathBuf,
    pub static_root: PathBuf,
    pub small_url: String,
    pub js_url: String,
    pub image_url: String,
    pub source_files: usize,
    pub root_files: usize,
    pub root_bytes: u64,
}

fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, data)
}

/// Builds (once; cached in `dir` per recipe version and filler count) a ~2 KB CSS, a 100 KB JS,
/// a 1 MiB random `.png` and `filler` more files (for the RSS figure), collected by
/// `staticd collect` with manifest and br/gz.
pub fn build_static(dir: &Path, filler: usize) -> Result<StaticCorpus, String> {
    let marker = dir.join(format!("built-{VERSION}-{filler}"));
    let static_root = dir.join("static");
    if !marker.exists() {
        println!("corpus: building {} (once; cached) ...", dir.display());
        let _ = std::fs::remove_dir_all(dir);
        let e = |e: std::io::Error| e.to_string();
        let assets = dir.join("assets");
        let mut rng = Rng(0x5eed_0000_0000_0001);
        write(&assets.join("css/app.css"), &css_text(&mut rng, 2048)).map_err(e)?;
        write(&assets.join("js/app.js"), &js_text(&mut rng, 100 * 1024)).map_err(e)?;
        write(&assets.join("img/hero.png"), &rng.bytes(1 << 20)).map_err(e)?;
        for i in 0..filler {
            let kind = rng.below(20);
            let (ext, data) = match kind {
                0..=6 => {
                    let n = rng.log_size(200.0, 16_000.0);
                    ("css", css_text(&mut rng, n))
                }
                7..=13 => {
                    let n = rng.log_size(200.0, 16_000.0);
                    ("js", js_text(&mut rng, n))
                }
                14..=15 => {
                    let n = rng.log_size(300.0, 6_000.0);
                    ("svg", css_text(&mut rng, n))
                }
                16..=17 => {
                    let n = rng.log_size(500.0, 30_000.0);
                    ("png", rng.bytes(n))
                }
                _ => {
                    let n = rng.log_size(5_000.0, 40_000.0);
                    ("woff2", rng.bytes(n))
                }
            };
            let p = assets.join(format!("vendor/pkg{:03}/f{i:05}.{ext}", i / 100));
            write(&p, &data).map_err(e)?;
        }
        write(
            &dir.join("staticd.toml"),
            b"static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\ncompress = true\n",
        )
        .map_err(e)?;
        let t = Instant::now();
        checked_output(
            Command::new(STATICD)
                .arg("collect")
                .arg(dir)
                .stdin(Stdio::null()),
            "staticd collect",
        )?;
        println!("corpus: collected in {:.1}s", t.elapsed().as_secs_f64());
        std::fs::write(&marker, b"").map_err(e)?;
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(static_root.join("staticfiles.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let hashed = |name: &str| -> Result<String, String> {
        manifest["paths"][name]
            .as_str()
            .map(|h| format!("/static/{h}"))
            .ok_or_else(|| format!("{name} not in the manifest"))
    };
    let (root_files, root_bytes) = tree_size(&static_root);
    Ok(StaticCorpus {
        parent: dir.to_path_buf(),
        small_url: hashed("css/app.css")?,
        js_url: hashed("js/app.js")?,
        image_url: hashed("img/hero.png")?,
        static_root,
        source_files: filler + 3,
        root_files: root_files as usize,
        root_bytes,
    })
}
