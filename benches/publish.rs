//! Publishing to S3-compatible storage (SeaweedFS `weed mini` on loopback), side by side:
//! - staticd: `staticd collect --no-compress --publish s3://…` (collect + publish, the same
//!   work as Django's manifest storage: no compression, which django-storages does not do);
//! - django-storages: `manage.py collectstatic` with `S3ManifestStaticStorage`;
//! - collectfasta (if `.ci/s3` installed it): the same storage through its
//!   `Boto3ManifestMemoryStrategy`.
//!
//! For each: a cold publish (empty prefix, empty STATIC_ROOT), a re-run with nothing changed,
//! and a run after one CSS file changed. Wall time of the whole command (Python start and
//! discovery included, for every tool), and the objects written as the store's filer counts
//! them (new chunk ids: a re-upload of identical bytes counts).
//!
//! Needs the corpora of `cargo bench --bench collect` (under `target/bench-corpus/`).
//! `STATICD_BENCH_CORPORA` (default `small,large`), `STATICD_BENCH_REPEAT` (default 1),
//! `STATICD_BENCH_SKIP=storages,collectfasta` to leave peers out.
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::corpus::{bench_corpus_root, copy_tree};
use support::seaweed::{s3_python, written, Seaweed};
use support::{env_list, env_num, median, target_dir};

const BUCKET: &str = "bench";

/// The Django settings of the peers: the corpus's, with the staticfiles storage on the store.
const SETTINGS_S3: &str = r#"# Written by staticd's publish benchmark (benches/publish.rs).
import os
from .settings import *  # noqa

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "storages.backends.s3.S3ManifestStaticStorage",
        "OPTIONS": {
            "bucket_name": os.environ["STATICD_BENCH_BUCKET"],
            "location": os.environ["STATICD_BENCH_PREFIX"],
            "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
            "region_name": "us-east-1",
            "addressing_style": "path",
            "default_acl": None,
            "querystring_auth": False,
        },
    },
}
if os.environ.get("STATICD_BENCH_TOOL") == "collectfasta":
    INSTALLED_APPS = ["collectfasta"] + INSTALLED_APPS
    COLLECTFASTA_STRATEGY = "collectfasta.strategies.boto3.Boto3ManifestMemoryStrategy"
"#;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    Staticd,
    Storages,
    Collectfasta,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Staticd => "staticd collect --no-compress --publish",
            Tool::Storages => "django-storages S3ManifestStaticStorage",
            Tool::Collectfasta => "collectfasta (Boto3ManifestMemoryStrategy)",
        }
    }
}

/// Seconds and objects written of each of the three runs.
#[derive(Default, Clone)]
struct Runs {
    cold: Vec<(f64, usize)>,
    nothing: Vec<(f64, usize)>,
    one_file: Vec<(f64, usize)>,
}

fn main() {
    if support::filtered_out("publish") {
        return;
    }
    let target = target_dir();
    let py = s3_python().unwrap_or_else(|e| panic!("{e}"));
    let weed = py.parent().unwrap().join("weed");
    let has_collectfasta = Command::new(&py)
        .args(["-c", "import collectfasta"])
        .status()
        .is_ok_and(|s| s.success());
    let skip = std::env::var("STATICD_BENCH_SKIP").unwrap_or_default();
    let repeat = env_num("STATICD_BENCH_REPEAT", 1).max(1) as usize;
    let mut tools = vec![Tool::Staticd];
    if !skip.contains("storages") {
        tools.push(Tool::Storages);
    }
    if has_collectfasta && !skip.contains("collectfasta") {
        tools.push(Tool::Collectfasta);
    }
    let work_root = target.join("bench-publish");
    let _ = fs::remove_dir_all(&work_root);
    fs::create_dir_all(&work_root).unwrap();
    let load_before = support::cpu::loadavg(3);
    let mut md = format!(
        "Publish to SeaweedFS (weed mini, loopback); load average before: {load_before}\n\n| corpus | tool | cold | nothing changed | one CSS file changed | objects written (cold / nothing / one file) |\n|---|---|---:|---:|---:|---:|\n"
    );
    let mut ratios = Vec::new();
    for corpus in env_list("STATICD_BENCH_CORPORA", "small,large") {
        let project = bench_corpus_root().join(&corpus);
        if !project.join("manage.py").exists() {
            println!(
                "{corpus}: no corpus at {}; run `cargo bench --bench collect` first",
                project.display()
            );
            continue;
        }
        let store = Seaweed::start(&weed, BUCKET, &work_root);
        let mut results: BTreeMap<Tool, Runs> = BTreeMap::new();
        for rep in 0..repeat {
            for &tool in &tools {
                let work = work_root.join(format!("{corpus}-{tool:?}-{rep}"));
                copy_tree(&project, &work, |rel| {
                    rel.starts_with("static_root") || rel.to_string_lossy().contains("staticd-")
                })
                .expect("copying the corpus");
                fs::write(work.join("benchproj/settings_s3.py"), SETTINGS_S3).unwrap();
                let prefix = format!("{corpus}-{tool:?}-{rep}").to_lowercase();
                let r = results.entry(tool).or_default();
                let run = |what: &str| -> (f64, usize) {
                    let before = store.chunks(&prefix);
                    let secs = run_tool(tool, &py, &work, &store, &prefix, &work_root);
                    let n = written(&before, &store.chunks(&prefix));
                    println!("{corpus} {tool:?} {what}: {secs:.2} s, {n} objects written");
                    (secs, n)
                };
                r.cold.push(run("cold"));
                r.nothing.push(run("nothing changed"));
                edit_one_css(&work);
                r.one_file.push(run("one file changed"));
                let _ = fs::remove_dir_all(&work);
            }
        }
        let med = |v: &[(f64, usize)]| {
            median(&v.iter().map(|x| x.0).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        for (tool, r) in &results {
            let objs = |v: &[(f64, usize)]| v.last().map_or(0, |x| x.1);
            md += &format!(
                "| {corpus} | {} | {:.2} s | {:.2} s | {:.2} s | {} / {} / {} |\n",
                tool.label(),
                med(&r.cold),
                med(&r.nothing),
                med(&r.one_file),
                objs(&r.cold),
                objs(&r.nothing),
                objs(&r.one_file)
            );
        }
        if let (Some(s), Some(d)) = (results.get(&Tool::Staticd), results.get(&Tool::Storages)) {
            ratios.push(format!(
                "{corpus}: staticd vs django-storages: cold {:.1}x (target 5x), nothing changed {:.1}x (target 50x), one file {:.1}x",
                med(&d.cold) / med(&s.cold),
                med(&d.nothing) / med(&s.nothing),
                med(&d.one_file) / med(&s.one_file)
            ));
        }
    }
    md += &format!("\nload average after: {}\n", support::cpu::loadavg(3));
    for r in &ratios {
        md += &format!("\n{r}");
    }
    support::publish(&md, "bench-publish.md");
    let _ = fs::remove_dir_all(&work_root);
}

/// One run of `tool` on the project copy `work`; its wall seconds. A failed run ends the bench.
fn run_tool(tool: Tool, py: &Path, work: &Path, store: &Seaweed, prefix: &str, tmp: &Path) -> f64 {
    let mut cmd = match tool {
        Tool::Staticd => {
            let mut c = Command::new(support::STATICD);
            c.arg("collect")
                .arg(work)
                .arg("--python")
                .arg(py)
                .args(["--no-compress", "--format", "json", "-v", "0", "--publish"])
                .arg(format!("s3://{BUCKET}/{prefix}"))
                .env("XDG_CACHE_HOME", tmp.join(format!("cache-{prefix}")));
            c
        }
        Tool::Storages | Tool::Collectfasta => {
            let mut c = Command::new(py);
            c.args(["manage.py", "collectstatic", "--noinput", "-v", "0"])
                .args(["--settings", "benchproj.settings_s3"])
                .current_dir(work)
                .env("STATICD_BENCH_BUCKET", BUCKET)
                .env("STATICD_BENCH_PREFIX", prefix)
                .env(
                    "STATICD_BENCH_TOOL",
                    if tool == Tool::Collectfasta {
                        "collectfasta"
                    } else {
                        "storages"
                    },
                );
            c
        }
    };
    for (k, v) in store.env() {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("run the publish");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{tool:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    secs
}

/// Appends a rule to the first CSS file of the corpus (in name order).
fn edit_one_css(work: &Path) {
    let mut css: Vec<PathBuf> = walkdir::WalkDir::new(work.join("vendor"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "css"))
        .map(|e| e.into_path())
        .collect();
    css.sort();
    let f = css.first().expect("a CSS file in the corpus");
    let mut text = fs::read(f).unwrap();
    text.extend_from_slice(b"\n.staticd-bench-edit { color: red }\n");
    fs::write(f, text).unwrap();
}
