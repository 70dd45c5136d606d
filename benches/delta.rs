//! `cargo bench --bench delta`: delta deploys (RFC 9842) on real version pairs. A
//! measurement, not a test: nothing here aborts on a missed target. See benches/README.md.
//!
//! 1. Bytes per file of each pair (npm: bootstrap 5.3.7 → 5.3.8, jquery 3.7.0 → 3.7.1,
//!    htmx 2.0.3 → 2.0.4, three 0.168.0 → 0.169.0; PyPI: Django's admin JS/CSS 5.2 → 6.1;
//!    sample_project's app.js with one line edited): identity, gzip 9, br 11, zstd 19, and
//!    the new version as dcb and dcz against the old, made by staticd's own encoders. A
//!    returning visitor gets the smaller delta when it is kept (at most 90 % of br), else br.
//!    Target: the median pair's returning-visitor transfer at most 10 % of br 11's.
//! 2. The time collect spends on deltas: a project of every pair's old files is collected,
//!    then its new files are collected into copies of that state with deltas on and with
//!    `--no-dictionaries`, both without the variant cache (every compression real). Target:
//!    with deltas at most 1.2x the time without.
//!
//! Environment: `STATICD_BENCH_REPEAT` = runs of each timed collect (default 1; median);
//! `STATICD_BENCH_SKIP=collect` leaves the collect timing out.
mod support;

use staticd::collect::compress::Encoder;
use staticd::delta::format::{self, Coding};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::corpus::{bench_corpus_root, copy_tree};
use support::cpu::loadavg;
use support::{checked_output, env_num, median, npm, STATICD};

/// One version pair: where each version's files are, and which files to compare (paths
/// relative to those roots); `tree` is what the collect timing takes of it.
struct Pair {
    name: String,
    old: PathBuf,
    new: PathBuf,
    files: Vec<String>,
    tree: &'static str,
}

fn npm_pair(
    pkg: &str,
    old: &str,
    new: &str,
    tree: &'static str,
    files: &[&str],
) -> Result<Pair, String> {
    Ok(Pair {
        name: format!("{pkg} {old} → {new}"),
        old: npm::npm(pkg, old)?,
        new: npm::npm(pkg, new)?,
        files: files.iter().map(|f| f.to_string()).collect(),
        tree,
    })
}

/// Django's admin JS and CSS present in both versions.
fn django_admin(old: &str, new: &str) -> Result<Pair, String> {
    let sub = "django/contrib/admin/static/admin";
    let (o, n) = (
        npm::pypi("Django", old)?.join(sub),
        npm::pypi("Django", new)?.join(sub),
    );
    let mut files: Vec<String> = walkdir::WalkDir::new(&n)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            e.path()
                .strip_prefix(&n)
                .ok()
                .map(|p| p.to_string_lossy().into_owned())
        })
        .filter(|f| (f.ends_with(".js") || f.ends_with(".css")) && !f.starts_with("js/vendor/"))
        .filter(|f| o.join(f).is_file())
        .collect();
    files.sort();
    Ok(Pair {
        name: format!("Django admin {old} → {new}"),
        old: o,
        new: n,
        files,
        tree: ".",
    })
}

/// sample_project's app.js, one line changed.
fn sample_one_line() -> Result<Pair, String> {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_project/notes/static/notes/js/app.js");
    let old = std::fs::read_to_string(&src).map_err(|e| e.to_string())?;
    let dir = bench_corpus_root().join("delta-sample");
    let (o, n) = (dir.join("old"), dir.join("new"));
    for d in [&o, &n] {
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    std::fs::write(o.join("app.js"), &old).map_err(|e| e.to_string())?;
    let mut lines: Vec<&str> = old.lines().collect();
    let edited = format!("{} // edited", lines[lines.len() / 2]);
    let mid = lines.len() / 2;
    lines[mid] = &edited;
    std::fs::write(n.join("app.js"), lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    Ok(Pair {
        name: "sample_project app.js, one line".into(),
        old: o,
        new: n,
        files: vec!["app.js".into()],
        tree: ".",
    })
}

fn pairs() -> Vec<Pair> {
    let made = [
        npm_pair(
            "bootstrap",
            "5.3.7",
            "5.3.8",
            "dist",
            &[
                "dist/css/bootstrap.min.css",
                "dist/js/bootstrap.bundle.min.js",
                "dist/js/bootstrap.esm.js",
            ],
        ),
        npm_pair(
            "jquery",
            "3.7.0",
            "3.7.1",
            "dist",
            &["dist/jquery.min.js", "dist/jquery.js"],
        ),
        npm_pair(
            "htmx.org",
            "2.0.3",
            "2.0.4",
            "dist",
            &["dist/htmx.min.js", "dist/htmx.esm.js"],
        ),
        npm_pair(
            "three",
            "0.168.0",
            "0.169.0",
            "build",
            &["build/three.module.min.js", "build/three.module.js"],
        ),
        django_admin("5.2", "6.1"),
        sample_one_line(),
    ];
    made.into_iter()
        .filter_map(|p| p.map_err(|e| eprintln!("bench: pair skipped: {e}")).ok())
        .collect()
}

/// Sizes of one file's answers.
struct Sizes {
    identity: usize,
    gz: usize,
    br: usize,
    zst: usize,
    dcb: Option<usize>,
    dcz: Option<usize>,
}

impl Sizes {
    fn of(old: &[u8], new: &[u8]) -> Sizes {
        let len = |e: Encoder| e.run(new).map_or(new.len(), |v| v.len());
        Sizes {
            identity: new.len(),
            gz: len(Encoder::Gzip),
            br: len(Encoder::Brotli),
            zst: len(Encoder::Zstd),
            dcb: format::encode(Coding::Dcb, new, old).map(|d| d.len()),
            dcz: format::encode(Coding::Dcz, new, old).map(|d| d.len()),
        }
    }

    /// What a returning visitor downloads: the smaller delta when staticd keeps it.
    fn returning(&self) -> usize {
        let best = self.br.min(self.zst).min(self.gz).min(self.identity);
        [self.dcb, self.dcz]
            .into_iter()
            .flatten()
            .filter(|&d| staticd::delta::worth_keeping(d, best))
            .min()
            .unwrap_or(self.br)
    }
}

fn main() {
    if support::filtered_out("delta") {
        return;
    }
    let load_before = loadavg(3);
    let pairs = pairs();
    let mut md = String::from(
        "## Delta deploys (RFC 9842): bytes per file\n\n\
         | pair | file | identity | gzip 9 | br 11 | zstd 19 | dcb | dcz | returning visitor | of br |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut ratios = Vec::new();
    for p in &pairs {
        let (mut br_total, mut ret_total, mut unchanged) = (0, 0, 0);
        for f in &p.files {
            let (Ok(old), Ok(new)) = (std::fs::read(p.old.join(f)), std::fs::read(p.new.join(f)))
            else {
                eprintln!("bench: {}: {f} missing in one version, skipped", p.name);
                continue;
            };
            if old == new {
                // Same bytes, same hashed name: still in the browser's cache, nothing to send.
                unchanged += 1;
                continue;
            }
            let s = Sizes::of(&old, &new);
            let ret = s.returning();
            br_total += s.br;
            ret_total += ret;
            let opt = |v: Option<usize>| v.map_or("refused".to_string(), |v| v.to_string());
            let _ = writeln!(
                md,
                "| {} | {f} | {} | {} | {} | {} | {} | {} | {ret} | {:.1} % |",
                p.name,
                s.identity,
                s.gz,
                s.br,
                s.zst,
                opt(s.dcb),
                opt(s.dcz),
                100.0 * ret as f64 / s.br as f64
            );
        }
        if br_total > 0 {
            let r = ret_total as f64 / br_total as f64;
            let _ = writeln!(
                md,
                "| **{}** | {} changed files ({unchanged} unchanged) | | | **{br_total}** | | | | **{ret_total}** | **{:.1} %** |",
                p.name,
                p.files.len() - unchanged,
                100.0 * r
            );
            ratios.push(r);
        }
    }
    let med = median(&ratios).unwrap_or(f64::NAN);
    let _ = writeln!(
        md,
        "\nMedian pair: a returning visitor downloads {:.1} % of br 11's bytes (target ≤ 10 %: {}).",
        100.0 * med,
        if med <= 0.10 { "met" } else { "missed" }
    );
    let skip = support::env_list("STATICD_BENCH_SKIP", "");
    if !skip.iter().any(|s| s == "collect") {
        match collect_timing(&pairs) {
            Ok(t) => md.push_str(&t),
            Err(e) => {
                let _ = writeln!(md, "\ncollect timing failed: {e}");
            }
        }
    }
    let _ = writeln!(
        md,
        "\nLoad average (1, 5, 15 min) before: {load_before}; after: {}. {} cores.",
        loadavg(3),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    support::publish(&md, "bench-delta.md");
}

/// Wall time of collecting every pair's new tree onto its old one, with and without deltas.
fn collect_timing(pairs: &[Pair]) -> Result<String, String> {
    let base = bench_corpus_root().join("delta-collect");
    let _ = std::fs::remove_dir_all(&base);
    let project = base.join("base");
    let fill = |dir: &Path, new: bool| -> Result<(), String> {
        let assets = dir.join("assets");
        let _ = std::fs::remove_dir_all(&assets);
        for (i, p) in pairs.iter().enumerate() {
            let from = if new { &p.new } else { &p.old }.join(p.tree);
            let to = assets.join(format!("p{i}"));
            std::fs::create_dir_all(&to).map_err(|e| e.to_string())?;
            copy_tree(&from, &to, |rel| {
                rel.components()
                    .any(|c| c.as_os_str() == "node_modules" || c.as_os_str() == ".unpacked")
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    std::fs::create_dir_all(&project).map_err(|e| e.to_string())?;
    std::fs::write(
        project.join("staticd.toml"),
        "static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\n",
    )
    .map_err(|e| e.to_string())?;
    fill(&project, false)?;
    run_collect(&project, &["--no-cache"])?;
    let repeat = env_num("STATICD_BENCH_REPEAT", 1).max(1);
    let mut rows = String::from(
        "\n## Collect time with deltas (new versions onto the old, no variant cache)\n\n\
         | run | wall (median) | deltas made | delta files written | delta encoders' CPU |\n|---|---:|---:|---:|---:|\n",
    );
    let mut walls = Vec::new();
    for (label, args) in [
        (
            "--no-dictionaries",
            &["--no-cache", "--no-dictionaries"][..],
        ),
        ("deltas on", &["--no-cache"][..]),
    ] {
        let mut times = Vec::new();
        let mut last = serde_json::Value::Null;
        for r in 0..repeat {
            let run = base.join(format!("run-{}-{r}", label.trim_start_matches('-')));
            let _ = std::fs::remove_dir_all(&run);
            // The project with its STATIC_ROOT and the records beside it (state, generations).
            copy_tree(&project, &run, |_| false).map_err(|e| e.to_string())?;
            fill(&run, true)?;
            let t = Instant::now();
            last = run_collect(&run, args)?;
            times.push(t.elapsed().as_secs_f64());
            let _ = std::fs::remove_dir_all(&run);
        }
        let wall = median(&times).unwrap_or(f64::NAN);
        walls.push(wall);
        let d = &last["deltas"];
        let _ = writeln!(
            rows,
            "| {label} | {wall:.2} s | {} | {} | {:.2} s |",
            d["made"],
            d["written"],
            d["cpu_ms"].as_f64().unwrap_or(0.0) / 1000.0
        );
    }
    let ratio = walls[1] / walls[0];
    let _ = writeln!(
        rows,
        "\nWith deltas / without: {ratio:.2}x (target ≤ 1.2x: {}).",
        if ratio <= 1.2 { "met" } else { "missed" }
    );
    Ok(rows)
}

fn run_collect(project: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = checked_output(
        Command::new(STATICD)
            .arg("collect")
            .arg(project)
            .args(args)
            .args(["--format", "json", "-v", "0"])
            // Packages ship source-map comments without their maps.
            .args(["--missing", "ignore:*.map"]),
        "staticd collect",
    )?;
    serde_json::from_slice(&out.stdout).map_err(|e| format!("collect summary: {e}"))
}
