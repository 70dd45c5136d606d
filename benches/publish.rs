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
//! The corpora are the collect bench's Django projects (`target/bench-corpus/`), built here
//! first if `cargo bench --bench collect` never ran (`support::django_corpus`: npm downloads,
//! then Django's collectstatic until it accepts the tree; minutes for `large`).
//! `STATICD_BENCH_CORPORA` (default `small,large`; `tiny` for a smoke run of this code),
//! `STATICD_BENCH_REPEAT` (default 1),
//! `STATICD_BENCH_SKIP=storages,collectfasta` to leave peers out.
//!
//! The targets of issue 15, printed with met or missed: a cold publish at least
//! [`COLD_TARGET`] times faster than django-storages, a publish with nothing changed at least
//! [`NOTHING_TARGET`] times; and a one-file change sends only that file's objects (its
//! original and hashed keys, and keys under the hashed name: variants, deltas), the manifest
//! and the generation record, as the store's filer counts them.
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::corpus::copy_tree;
use support::seaweed::{s3_python, written_between, Identity, Options, Seaweed};
use support::{env_list, env_num, median, target_dir};

const BUCKET: &str = "bench";
/// The one identity every tool publishes as.
const IDENTITY: Identity = Identity {
    name: "bench",
    access_key: "staticd-bench",
    secret_key: "staticd-bench-secret",
    actions: &["Admin", "Read", "Write", "List", "Tagging"],
};

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

/// Cold publish: django-storages' time over staticd's, at least.
const COLD_TARGET: f64 = 5.0;
/// Nothing changed: django-storages' time over staticd's, at least.
const NOTHING_TARGET: f64 = 50.0;
/// The keys a staticd generation writes besides the objects of its files.
const MANIFEST_KEYS: [&str; 2] = ["staticfiles.json", ".staticd-generations.json"];

/// Seconds and objects written of each of the three runs.
#[derive(Default, Clone)]
struct Runs {
    cold: Vec<(f64, usize)>,
    nothing: Vec<(f64, usize)>,
    one_file: Vec<(f64, usize)>,
    /// staticd only: the keys (under the prefix) its last one-file run wrote that are
    /// neither the edited file's objects nor the manifest and record; and whether it wrote
    /// the ones it must (the original, the new hashed name, the manifest).
    one_file_extra: Vec<String>,
    one_file_missing: Vec<String>,
}

/// Pure: `a / b` against `target`, as the report prints it.
fn verdict(what: &str, a: f64, b: f64, target: f64) -> String {
    let ratio = a / b;
    let met = if ratio >= target { "met" } else { "missed" };
    format!("{what} {ratio:.1}x (target {target}x): {met}")
}

/// Pure: of `written` (keys relative to the prefix) after the one file `orig` changed to
/// `hashed`, the keys that are none of its objects, the manifest or the record; and those of
/// the original, the hashed name and the manifest that were not written.
fn one_file_check(written: &[String], orig: &str, hashed: &str) -> (Vec<String>, Vec<String>) {
    let under_hashed = format!("{hashed}.");
    let extra = written
        .iter()
        .filter(|k| {
            *k != orig
                && *k != hashed
                && !k.starts_with(&under_hashed)
                && !MANIFEST_KEYS.contains(&k.as_str())
        })
        .cloned()
        .collect();
    let missing = [orig, hashed, MANIFEST_KEYS[0]]
        .into_iter()
        .filter(|k| !written.iter().any(|w| w == k))
        .map(str::to_string)
        .collect();
    (extra, missing)
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
        // The s3 venv's Django and DRF are .ci/venv's: the same corpus either bench builds.
        let project = match support::django_corpus::project(&corpus, &py) {
            Ok(p) => p,
            Err(e) => {
                println!("{corpus}: no corpus: {e}");
                continue;
            }
        };
        let store = Seaweed::launch(
            &weed,
            &Options {
                bucket: BUCKET,
                identities: &[IDENTITY],
                parent: Some(&work_root),
            },
        );
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
                let run = |what: &str| -> (f64, Vec<String>) {
                    let before = store.objects(&prefix);
                    let secs = run_tool(tool, &py, &work, &store, &prefix, &work_root);
                    let written = written_between(&before, &store.objects(&prefix));
                    let n = written.len();
                    println!("{corpus} {tool:?} {what}: {secs:.2} s, {n} objects written");
                    let rel = written
                        .iter()
                        .map(|k| {
                            k.strip_prefix(&format!("{prefix}/"))
                                .unwrap_or(k)
                                .to_string()
                        })
                        .collect();
                    (secs, rel)
                };
                let counted = |(secs, keys): (f64, Vec<String>)| (secs, keys.len());
                r.cold.push(counted(run("cold")));
                r.nothing.push(counted(run("nothing changed")));
                let edited = edit_one_css(&work);
                let (secs, written) = run("one file changed");
                r.one_file.push((secs, written.len()));
                if tool == Tool::Staticd {
                    let hashed = hashed_name(&work.join("static_root"), &edited);
                    let (extra, missing) = one_file_check(&written, &edited, &hashed);
                    r.one_file_extra = extra;
                    r.one_file_missing = missing;
                }
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
                "{corpus}: staticd vs django-storages: {}; {}; one file changed {:.1}x (info)",
                verdict("cold", med(&d.cold), med(&s.cold), COLD_TARGET),
                verdict(
                    "nothing changed",
                    med(&d.nothing),
                    med(&s.nothing),
                    NOTHING_TARGET
                ),
                med(&d.one_file) / med(&s.one_file)
            ));
        }
        if let Some(s) = results.get(&Tool::Staticd) {
            let sent = s.one_file.last().map_or(0, |x| x.1);
            let met = s.one_file_extra.is_empty() && s.one_file_missing.is_empty();
            ratios.push(format!(
                "{corpus}: one CSS file changed: staticd sent {sent} objects (target: only that file's objects, the manifest and the record): {}{}{}",
                if met { "met" } else { "missed" },
                if s.one_file_extra.is_empty() {
                    String::new()
                } else {
                    format!("; also sent {:?}", s.one_file_extra)
                },
                if s.one_file_missing.is_empty() {
                    String::new()
                } else {
                    format!("; did not send {:?}", s.one_file_missing)
                },
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

/// Appends a rule to the first CSS file of the corpus (in name order); its static path (the
/// corpus's STATICFILES_DIRS prefix each directory under vendor/).
fn edit_one_css(work: &Path) -> String {
    let vendor = work.join("vendor");
    let mut css: Vec<PathBuf> = walkdir::WalkDir::new(&vendor)
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
    f.strip_prefix(&vendor)
        .unwrap()
        .to_string_lossy()
        .replace('\\', "/")
}

/// The hashed name of `orig` in the manifest staticd left in `static_root`.
fn hashed_name(static_root: &Path, orig: &str) -> String {
    let path = static_root.join("staticfiles.json");
    let text = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    v["paths"][orig]
        .as_str()
        .unwrap_or_else(|| panic!("{orig} is not in {}", path.display()))
        .to_string()
}
