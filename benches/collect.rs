//! `cargo bench --bench collect`: staticd collect against Django's collectstatic and WhiteNoise
//! on real front-end packages, plus the compression floor. A measurement, not a test: nothing
//! here aborts on a missed target. See benches/README.md.
//!
//! Environment:
//! - `STATICD_BENCH_CORPORA` = `small,large` (default both; `small` is ~1k files / ~30 MB,
//!   `large` ~9k files / ~90 MB; `tiny`, 8 vendor files, is a smoke run, not a measurement)
//! - `STATICD_BENCH_REPEAT` = runs of each tool per corpus (default 3, minimum 1; median reported)
//! - `STATICD_BENCH_PYTHON` = interpreter with Django, DRF, whitenoise and brotli (default: the
//!   one `.ci/venv` prints)
//! - `STATICD_BENCH_SKIP` = comma-separated tools not to run (`django-manifest`, `whitenoise`,
//!   `staticd`, `staticd-no-compress`, `floor`), for quick iterations on one of them.
mod support;

use staticd::collect::compress::Encoder;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::corpus::tree_size;
use support::cpu::{loadavg, timed_output};
use support::django_corpus::list_files;
use support::{env_list, env_num, median, python::bench_python};

/// WhiteNoise 6.12's `SKIP_COMPRESS_EXTENSIONS`.
const WHITENOISE_SKIP: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "zip", "gz", "tgz", "bz2", "tbz", "xz", "br", "swf",
    "flv", "woff", "woff2", "3gp", "3gpp", "asf", "avi", "m4v", "mov", "mp4", "mpeg", "mpg",
    "webm", "wmv",
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    DjangoManifest,
    WhiteNoise,
    Staticd,
    StaticdNoCompress,
}

impl Tool {
    const ALL: [Tool; 4] = [
        Tool::DjangoManifest,
        Tool::WhiteNoise,
        Tool::Staticd,
        Tool::StaticdNoCompress,
    ];

    fn key(self) -> &'static str {
        match self {
            Tool::DjangoManifest => "django-manifest",
            Tool::WhiteNoise => "whitenoise",
            Tool::Staticd => "staticd",
            Tool::StaticdNoCompress => "staticd-no-compress",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tool::DjangoManifest => "Django Manifest",
            Tool::WhiteNoise => "WhiteNoise",
            Tool::Staticd => "staticd",
            Tool::StaticdNoCompress => "staticd --no-compress",
        }
    }

    /// The STORAGES["staticfiles"] the run uses: the compressing runs get WhiteNoise's storage,
    /// the others Django's own.
    fn storage(self) -> &'static str {
        match self {
            Tool::WhiteNoise | Tool::Staticd => "whitenoise",
            Tool::DjangoManifest | Tool::StaticdNoCompress => "manifest",
        }
    }
}

struct Env {
    target: PathBuf,
    python: PathBuf,
    staticd: PathBuf,
    cores: usize,
    repeat: usize,
    skip: HashSet<String>,
}

#[derive(Default)]
struct CorpusResult {
    name: String,
    files: u64,
    bytes: u64,
    pruned: usize,
    /// Wall seconds of every successful run, per tool.
    times: BTreeMap<Tool, Vec<f64>>,
    /// CPU seconds (user + sys of the process and its waited-for children) of the same runs.
    cpu: BTreeMap<Tool, Vec<f64>>,
    /// 1-minute load average before each round: how noisy the machine was.
    load: Vec<String>,
    failures: BTreeMap<Tool, String>,
    /// Files and bytes in STATIC_ROOT after the tool's last run.
    output: BTreeMap<Tool, (u64, u64)>,
    staticd_json: Option<String>,
    /// Wall seconds of do-nothing re-runs (nothing changed since the tool's previous run into
    /// the same STATIC_ROOT), for Django Manifest and staticd --no-compress: issue 11 point 8.
    rerun: BTreeMap<Tool, Vec<f64>>,
    /// staticd's own `duration_ms` per run (without process start and discovery), per tool.
    internal_ms: BTreeMap<Tool, Vec<f64>>,
    floor: Option<Floor>,
}

struct Floor {
    contents: usize,
    bytes: u64,
    skipped: usize,
    kept_br: usize,
    kept_gz: usize,
    cpu: Duration,
    wall: Duration,
    /// The single most expensive job staticd can schedule: one encoder over one content
    /// (brotli of the largest file, as a rule). No schedule finishes before it does.
    largest_job: Duration,
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `fn main` has no filter to honour.
    let env = setup();
    let corpora = env_list("STATICD_BENCH_CORPORA", "small,large");
    let mut results = Vec::new();
    for name in &corpora {
        let project = match support::django_corpus::project(name, &env.python) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("corpus {name}: {e}");
                continue;
            }
        };
        results.push(run_corpus(&env, name, &project));
        // Print what we have after each corpus: a long run interrupted still leaves figures.
        report(&env, &results);
    }
}

fn setup() -> Env {
    Env {
        target: support::target_dir(),
        python: bench_python(),
        staticd: PathBuf::from(support::STATICD),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        repeat: env_num("STATICD_BENCH_REPEAT", 3).max(1) as usize,
        skip: env_list("STATICD_BENCH_SKIP", "").into_iter().collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

/// `clear`: start from an empty STATIC_ROOT (`--clear`); without it, a re-run over the
/// previous run's tree (the do-nothing collect of a deploy where no static file changed).
fn command(env: &Env, tool: Tool, project: &Path, clear: bool) -> Command {
    let mut c = match tool {
        Tool::DjangoManifest | Tool::WhiteNoise => {
            let mut c = Command::new(&env.python);
            c.args(["manage.py", "collectstatic", "--noinput", "-v0"]);
            if clear {
                c.arg("--clear");
            }
            c
        }
        Tool::Staticd | Tool::StaticdNoCompress => {
            let mut c = Command::new(&env.staticd);
            c.arg("collect")
                .arg(project)
                .arg("--python")
                .arg(&env.python)
                .args(["--format", "json", "-v", "0"]);
            if clear {
                // --no-cache: every cold run pays for its compression, as WhiteNoise's does
                // (the cache's effect is measured by benches/incremental.rs). A re-run keeps
                // what a user's re-run has: the remembered discovery (also under the cache).
                c.args(["--clear", "--no-cache"]);
            }
            if tool == Tool::StaticdNoCompress {
                c.arg("--no-compress");
            }
            c
        }
    };
    c.current_dir(project)
        .env("STATICD_BENCH_STORAGE", tool.storage())
        .stdin(Stdio::null());
    c
}

/// One timed run into a fresh STATIC_ROOT: wall seconds, CPU seconds and stdout, or the error.
fn run_once(env: &Env, tool: Tool, project: &Path) -> Result<(f64, f64, String), String> {
    let _ = fs::remove_dir_all(project.join("static_root"));
    run_timed(env, tool, project, true)
}

/// One timed run of `tool` over whatever STATIC_ROOT holds (see [`command`] for `clear`).
fn run_timed(
    env: &Env,
    tool: Tool,
    project: &Path,
    clear: bool,
) -> Result<(f64, f64, String), String> {
    let run =
        timed_output(&mut command(env, tool, project, clear)).map_err(|e| format!("spawn: {e}"))?;
    let out = run.output;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok((
        run.wall,
        run.cpu,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// `"duration_ms":N` from staticd's JSON summary.
fn duration_ms(json: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v.get("duration_ms")?.as_f64()
}

fn run_corpus(env: &Env, name: &str, project: &Path) -> CorpusResult {
    let mut r = CorpusResult {
        name: name.to_string(),
        pruned: fs::read_to_string(project.join("PRUNED.txt"))
            .map(|s| s.lines().filter(|l| !l.is_empty()).count())
            .unwrap_or(0),
        ..Default::default()
    };
    let tools: Vec<Tool> = Tool::ALL
        .into_iter()
        .filter(|t| !env.skip.contains(t.key()))
        .collect();
    eprintln!(
        "\n== corpus {name}: {} runs of {} tools, interleaved",
        env.repeat,
        tools.len()
    );
    for rep in 0..env.repeat {
        r.load.push(loadavg(1));
        // Rotate the order every round so no tool always runs first (cold) or after the heaviest.
        for k in 0..tools.len() {
            let tool = tools[(k + rep) % tools.len()];
            if r.failures.contains_key(&tool) {
                continue;
            }
            match run_once(env, tool, project) {
                Ok((secs, cpu, stdout)) => {
                    eprintln!(
                        "  round {} {:<22} {:>8.2} s wall {:>8.2} s CPU",
                        rep + 1,
                        tool.label(),
                        secs,
                        cpu
                    );
                    r.times.entry(tool).or_default().push(secs);
                    r.cpu.entry(tool).or_default().push(cpu);
                    r.output
                        .insert(tool, tree_size(&project.join("static_root")));
                    let json = stdout
                        .lines()
                        .rev()
                        .find(|l| l.starts_with('{'))
                        .map(str::to_string);
                    if let Some(ms) = json.as_deref().and_then(duration_ms) {
                        r.internal_ms.entry(tool).or_default().push(ms);
                    }
                    if tool == Tool::Staticd {
                        r.staticd_json = json;
                    }
                }
                Err(e) => {
                    eprintln!("  round {} {:<22} FAILED:\n{e}", rep + 1, tool.label());
                    r.failures.insert(tool, e);
                }
            }
        }
    }
    // Do-nothing re-runs: each tool re-collects over its own previous tree, nothing changed.
    for tool in [Tool::DjangoManifest, Tool::StaticdNoCompress] {
        if !tools.contains(&tool) || r.failures.contains_key(&tool) {
            continue;
        }
        // A cold run fills STATIC_ROOT; one untimed re-run then leaves what a deploy's previous
        // collect leaves (staticd's state and remembered discovery, which the cold run's
        // --no-cache skipped).
        if let Err(e) =
            run_once(env, tool, project).and_then(|_| run_timed(env, tool, project, false))
        {
            eprintln!("  re-run {:<22} FAILED priming:\n{e}", tool.label());
            continue;
        }
        for rep in 0..env.repeat {
            match run_timed(env, tool, project, false) {
                Ok((secs, _, _)) => {
                    eprintln!(
                        "  re-run {} {:<22} {:>8.3} s wall (nothing changed)",
                        rep + 1,
                        tool.label(),
                        secs
                    );
                    r.rerun.entry(tool).or_default().push(secs);
                }
                Err(e) => {
                    eprintln!("  re-run {:<22} FAILED:\n{e}", tool.label());
                    break;
                }
            }
        }
    }
    // Corpus size as the tools see it: every file the finders list (vendor trees, admin, DRF).
    let (files, bytes) = source_size(env, project);
    r.files = files;
    r.bytes = bytes;
    if !env.skip.contains("floor") {
        r.floor = floor(env, project);
    }
    let _ = fs::remove_dir_all(project.join("static_root"));
    r
}

/// Files and bytes that the finders list, asked from Django itself.
fn source_size(env: &Env, project: &Path) -> (u64, u64) {
    let script = r#"
import os, django
django.setup()
from django.contrib.staticfiles.finders import get_finders
n = b = 0
seen = set()
for f in get_finders():
    for path, storage in f.list(["CVS", ".*", "*~"]):
        p = getattr(storage, "prefix", None)
        key = os.path.join(p, path) if p else path
        if key in seen: continue
        seen.add(key)
        n += 1
        b += os.path.getsize(storage.path(path))
print(n, b)
"#;
    let out = Command::new(&env.python)
        .args(["-c", script])
        .env("DJANGO_SETTINGS_MODULE", "benchproj.settings")
        .current_dir(project)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
            (it.next().unwrap_or(0), it.next().unwrap_or(0))
        }
        _ => (0, 0),
    }
}

// ---------------------------------------------------------------------------------------------
// Floor

fn skipped_by_whitenoise(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    WHITENOISE_SKIP.iter().any(|ext| {
        lower.len() > ext.len() + 1
            && lower.ends_with(ext)
            && lower.as_bytes()[lower.len() - ext.len() - 1] == b'.'
    })
}

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The set a compressing run must compress: every file of an uncompressed staticd run (the
/// originals and their hashed copies; not the manifest), deduplicated by content, minus
/// WhiteNoise's skip list and empty files. Each content is compressed once on this thread with
/// staticd's brotli q11/lgwin22, then its gzip level 9 when brotli was effective (WhiteNoise's shortcut, which
/// staticd keeps).
fn floor(env: &Env, project: &Path) -> Option<Floor> {
    eprintln!("  floor: listing the files of an uncompressed staticd run");
    if let Err(e) = run_once(env, Tool::StaticdNoCompress, project) {
        eprintln!("  floor: staticd --no-compress failed: {e}");
        return None;
    }
    let root = project.join("static_root");
    let mut seen = HashSet::new();
    let mut contents: Vec<Vec<u8>> = Vec::new();
    let mut skipped = 0;
    for rel in list_files(&root) {
        if rel == "staticfiles.json" || rel.starts_with('.') {
            continue;
        }
        if skipped_by_whitenoise(&rel) {
            skipped += 1;
            continue;
        }
        let data = fs::read(root.join(&rel)).ok()?;
        if data.is_empty() {
            continue;
        }
        if seen.insert(blake3::hash(&data)) {
            contents.push(data);
        }
    }
    let bytes = contents.iter().map(|c| c.len() as u64).sum();
    eprintln!(
        "  floor: compressing {} distinct contents ({:.1} MB) on one thread",
        contents.len(),
        bytes as f64 / 1e6
    );
    let (mut kept_br, mut kept_gz) = (0, 0);
    let wall = Instant::now();
    let cpu0 = thread_cpu();
    let mut largest_job = Duration::ZERO;
    for data in &contents {
        // staticd's own encoders, so the floor moves with them.
        let job0 = thread_cpu();
        let br = Encoder::Brotli.run(data);
        largest_job = largest_job.max(thread_cpu() - job0);
        if br.is_none() {
            continue;
        }
        kept_br += 1;
        let job0 = thread_cpu();
        let gz = Encoder::Gzip.run(data);
        largest_job = largest_job.max(thread_cpu() - job0);
        kept_gz += usize::from(gz.is_some());
        std::hint::black_box((&br, &gz));
    }
    let cpu = thread_cpu() - cpu0;
    let wall = wall.elapsed();
    eprintln!(
        "  floor: {:.2} s CPU ({:.2} s wall); largest single job {:.2} s",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        largest_job.as_secs_f64()
    );
    Some(Floor {
        contents: contents.len(),
        bytes,
        skipped,
        kept_br,
        kept_gz,
        cpu,
        wall,
        largest_job,
    })
}

// ---------------------------------------------------------------------------------------------
// Report

fn fmt_s(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into())
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

fn report(env: &Env, results: &[CorpusResult]) {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Wall time in seconds, median of {} interleaved runs each into a fresh STATIC_ROOT; {} cores.\n",
        env.repeat, env.cores
    );
    let _ = writeln!(
        md,
        "| corpus | files | MB | Django Manifest | WhiteNoise | staticd | staticd --no-compress | floor (1 thread CPU) | floor / {} cores | largest job | bound |",
        env.cores
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut ratios = String::new();
    let _ = writeln!(
        ratios,
        "\n| corpus | staticd / WhiteNoise (≤ 0.5) | staticd / bound (≤ 1.1) | Manifest / staticd --no-compress, fresh root (info) | staticd CPU / floor CPU (info) |"
    );
    let _ = writeln!(ratios, "|---|---:|---:|---:|---:|");
    let mut reruns = String::new();
    let _ = writeln!(
        reruns,
        "\nDo-nothing re-run (nothing changed since the previous run into the same STATIC_ROOT), wall seconds, median of {}:\n\n| corpus | Django Manifest | staticd --no-compress | Manifest / staticd (≥ 10) |\n|---|---:|---:|---:|",
        env.repeat
    );
    let mut notes = String::new();
    for r in results {
        let m = |t: Tool| r.times.get(&t).and_then(|v| median(v));
        let floor_cpu = r.floor.as_ref().map(|f| f.cpu.as_secs_f64());
        let floor_per_core = floor_cpu.map(|f| f / env.cores as f64);
        let largest = r.floor.as_ref().map(|f| f.largest_job.as_secs_f64());
        // No schedule beats the larger of: all the work spread over every core, and the
        // single longest job.
        let bound = floor_per_core.zip(largest).map(|(a, b)| a.max(b));
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.files,
            r.bytes as f64 / 1e6,
            fmt_s(m(Tool::DjangoManifest)),
            fmt_s(m(Tool::WhiteNoise)),
            fmt_s(m(Tool::Staticd)),
            fmt_s(m(Tool::StaticdNoCompress)),
            fmt_s(floor_cpu),
            fmt_s(floor_per_core),
            fmt_s(largest),
            fmt_s(bound),
        );
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let sw = ratio(m(Tool::Staticd), m(Tool::WhiteNoise));
        let sf = ratio(m(Tool::Staticd), bound);
        let mn = ratio(m(Tool::DjangoManifest), m(Tool::StaticdNoCompress));
        let cpu_ratio = ratio(r.cpu.get(&Tool::Staticd).and_then(|v| median(v)), floor_cpu);
        let cell = |x: Option<f64>, ok: Option<bool>| match x {
            Some(x) => format!("{x:.2}x {}", verdict(ok)),
            None => "n/a".into(),
        };
        let _ = writeln!(
            ratios,
            "| {} | {} | {} | {} | {} |",
            r.name,
            cell(sw, sw.map(|x| x <= 0.5)),
            cell(sf, sf.map(|x| x <= 1.1)),
            mn.map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "n/a".into()),
            cpu_ratio
                .map(|x| format!("{x:.2}x"))
                .unwrap_or_else(|| "n/a".into()),
        );
        let rm = |t: Tool| r.rerun.get(&t).and_then(|v| median(v));
        let rr = ratio(rm(Tool::DjangoManifest), rm(Tool::StaticdNoCompress));
        let _ = writeln!(
            reruns,
            "| {} | {} | {} | {} |",
            r.name,
            rm(Tool::DjangoManifest)
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "–".into()),
            rm(Tool::StaticdNoCompress)
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "–".into()),
            cell(rr, rr.map(|x| x >= 10.0)),
        );
        let _ = writeln!(
            notes,
            "\n{} corpus (1-minute load average at each round: {}):",
            r.name,
            r.load.join(", ")
        );
        for (t, v) in &r.times {
            let runs: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
            let cpu: Vec<String> = r
                .cpu
                .get(t)
                .into_iter()
                .flatten()
                .map(|x| format!("{x:.2}"))
                .collect();
            let (n, b) = r.output.get(t).copied().unwrap_or_default();
            let _ = writeln!(
                notes,
                "- {}: wall {} s; CPU (user+sys) {} s; output {} files, {:.1} MB",
                t.label(),
                runs.join(", "),
                cpu.join(", "),
                n,
                b as f64 / 1e6
            );
        }
        for (t, v) in &r.internal_ms {
            let _ = writeln!(
                notes,
                "- {}: its own duration_ms (after discovery) median {:.2} s, wall median {} s",
                t.label(),
                median(v).unwrap_or(0.0) / 1000.0,
                fmt_s(m(*t))
            );
        }
        for (t, e) in &r.failures {
            let first = e.lines().last().unwrap_or("");
            let _ = writeln!(notes, "- {}: FAILED ({first})", t.label());
        }
        if let Some(f) = &r.floor {
            let _ = writeln!(
                notes,
                "- floor: {} distinct contents, {:.1} MB ({} files on the skip list left out); {} .br and {} .gz kept; {:.2} s CPU, {:.2} s wall",
                f.contents,
                f.bytes as f64 / 1e6,
                f.skipped,
                f.kept_br,
                f.kept_gz,
                f.cpu.as_secs_f64(),
                f.wall.as_secs_f64()
            );
        }
        if let Some(j) = &r.staticd_json {
            let _ = writeln!(notes, "- staticd summary: `{j}`");
        }
        if r.pruned > 0 {
            let _ = writeln!(
                notes,
                "- {} vendor files pruned from the corpus because Django cannot resolve their references (list: target/bench-corpus/{}/PRUNED.txt)",
                r.pruned, r.name
            );
        }
    }
    md.push_str(&ratios);
    md.push_str(&reruns);
    md.push_str(&notes);
    println!("\n{md}");
    let path = env.target.join("bench-collect.md");
    match fs::write(&path, &md) {
        Ok(()) => println!("(written to {})", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
