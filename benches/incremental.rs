//! Re-collect at the speed of change: on the collect benchmark's corpora, side by side with
//! WhiteNoise's second run, time
//! - a warm re-collect (nothing changed since the last collect),
//! - a cold collect into an empty STATIC_ROOT with a warm variant cache,
//! - watch latency: a CSS file written → its new hashed URL answers 200 from `staticd dev`.
//!
//! Needs the corpora of `cargo bench --bench collect` (built under `target/bench-corpus/`, or
//! `$CARGO_TARGET_DIR/bench-corpus/`).
//! `STATICD_BENCH_CORPORA` (default `small,large`), `STATICD_BENCH_REPEAT` (default 3),
//! `STATICD_BENCH_WATCH_EDITS` (default 20), `STATICD_BENCH_SKIP=whitenoise` to leave the slow
//! WhiteNoise runs out, `STATICD_BENCH_ONLY=watch` to time only the watch latency (no
//! warm/cold runs, and a variant cache kept across runs: quick iterations on the watch loop),
//! `STATICD_BENCH_STATICD` to time another staticd binary.
mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::corpus::{bench_corpus_root, copy_tree};
use support::cpu::timed_output;
use support::spawn::poll;
use support::{env_list, env_num, python::bench_python, target_dir};

/// The binary timed: this build's, or `STATICD_BENCH_STATICD` (e.g. an older build, to compare
/// two versions under the same machine load).
fn staticd_bin() -> PathBuf {
    std::env::var_os("STATICD_BENCH_STATICD")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::STATICD.into())
}

fn main() {
    let target = target_dir();
    let python = bench_python();
    let repeat = env_num("STATICD_BENCH_REPEAT", 3) as usize;
    let edits = env_num("STATICD_BENCH_WATCH_EDITS", 20) as usize;
    let skip = std::env::var("STATICD_BENCH_SKIP").unwrap_or_default();
    let watch_only = std::env::var("STATICD_BENCH_ONLY").is_ok_and(|v| v == "watch");
    let mut md = String::from(
        "| corpus | files | WhiteNoise 2nd run | staticd warm re-collect | cold, warm cache | watch p50 | watch p95 |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut verdicts = Vec::new();
    for name in env_list("STATICD_BENCH_CORPORA", "small,large") {
        let name = name.as_str();
        // Built by `cargo bench --bench collect`.
        let project = bench_corpus_root().join(name);
        if !project.join("manage.py").exists() {
            println!(
                "{name}: no corpus at {}; run `cargo bench --bench collect` first",
                project.display()
            );
            continue;
        }
        let work = target.join("bench-incremental").join(name);
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        // A private copy: the watch edits must not touch the shared corpus.
        copy_tree(&project, &work.join("proj"), |rel| {
            rel.starts_with("static_root") || rel.to_string_lossy().contains("staticd-")
        })
        .expect("copying the corpus");
        let proj = work.join("proj");
        // Watch-only runs keep their variant cache across runs: the compressing first collect
        // (which gives STATIC_ROOT its ~6 files per source) then costs seconds, not minutes.
        let cache = if watch_only {
            target
                .join("bench-incremental")
                .join(format!("{name}-cache"))
        } else {
            work.join("cache")
        };
        let static_root = proj.join("static_root");

        // WhiteNoise: a first run, then its second run on the unchanged tree.
        let whitenoise = (!skip.contains("whitenoise") && !watch_only).then(|| {
            let _ = fs::remove_dir_all(&static_root);
            let run = || {
                let t = Instant::now();
                let ok = Command::new(&python)
                    .args(["manage.py", "collectstatic", "--noinput", "-v0"])
                    .current_dir(&proj)
                    .env("STATICD_BENCH_STORAGE", "whitenoise")
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "WhiteNoise collectstatic failed");
                t.elapsed().as_secs_f64()
            };
            run();
            run()
        });
        let _ = fs::remove_dir_all(&static_root);

        let staticd = |extra: &[&str]| -> (f64, serde_json::Value) {
            let run = timed_output(
                Command::new(staticd_bin())
                    .arg("collect")
                    .arg(&proj)
                    .arg("--python")
                    .arg(&python)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .args(["--format", "json", "-v", "0"])
                    .args(extra)
                    .env("STATICD_BENCH_STORAGE", "whitenoise"),
            )
            .unwrap();
            let out = run.output;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (run.wall, serde_json::from_slice(&out.stdout).unwrap())
        };
        if !watch_only {
            let _ = fs::remove_dir_all(&cache);
        }
        let (_, first) = staticd(&[]);
        let files = first["copied"].as_u64().unwrap_or(0);
        let runs = if watch_only { 0 } else { repeat };

        let mut warm = Vec::new();
        for _ in 0..runs {
            let (t, s) = staticd(&[]);
            assert_eq!(s["compressions"], 0, "warm re-collect compressed: {s}");
            assert_eq!(s["hashed"], 0, "warm re-collect hashed: {s}");
            warm.push(t);
        }
        let mut cold = Vec::new();
        for _ in 0..runs {
            let _ = fs::remove_dir_all(&static_root);
            let state = proj.join(".static_root.staticd-state.json");
            let _ = fs::remove_file(state);
            let (t, s) = staticd(&[]);
            assert_eq!(s["compressions"], 0, "warm cache still compressed: {s}");
            cold.push(t);
        }
        let latencies = watch_latency(&proj, &python, edits);

        let w = whitenoise.map_or("skipped".into(), |w| format!("{w:.2} s"));
        let warm_m = median(&warm);
        let cold_m = median(&cold);
        let (p50, p95) = (percentile(&latencies, 50.0), percentile(&latencies, 95.0));
        md += &format!(
            "| {name} | {files} | {w} | {warm_m:.3} s | {cold_m:.3} s | {:.0} ms | {:.0} ms |\n",
            p50 * 1e3,
            p95 * 1e3
        );
        if name == "small" && !watch_only {
            verdicts.push(format!("warm ≤ 0.3 s: {}", met(warm_m <= 0.3)));
            if let Some(wn) = whitenoise {
                verdicts.push(format!(
                    "WhiteNoise 2nd run / warm = {:.0}x (≥ 100x: {})",
                    wn / warm_m,
                    met(wn / warm_m >= 100.0)
                ));
            }
        }
        if !watch_only {
            verdicts.push(format!(
                "{name}: cold with warm cache ≤ 1 s: {}",
                met(cold_m <= 1.0)
            ));
        }
        verdicts.push(format!("{name}: watch p95 ≤ 150 ms: {}", met(p95 <= 0.150)));
        println!(
            "{name}: warm runs {warm:?}, cold runs {cold:?}, watch latencies (s) {latencies:?}"
        );
    }
    md += &format!("\nTargets: {}\n", verdicts.join("; "));
    println!("\n{md}");
    let _ = fs::write(target.join("bench-incremental.md"), &md);
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// Starts `staticd dev`, edits one CSS file `edits` times; each latency is from the write to
/// the first 200 of the new hashed URL.
fn watch_latency(proj: &Path, python: &Path, edits: usize) -> Vec<f64> {
    let mut child = Command::new(staticd_bin())
        .arg("dev")
        .arg(proj)
        .arg("--python")
        .arg(python)
        .args([
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "off",
            "--workers",
            "1",
        ])
        .env("STATICD_BENCH_STORAGE", "whitenoise")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = Guard(&mut child);
    let stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr: Option<SocketAddr> = None;
    let mut collected = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    while addr.is_none() || !collected {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("staticd dev did not start");
        if let Some(a) = line.strip_prefix("staticd serve: listening on http://") {
            addr = a.parse().ok();
        }
        collected |= line.contains("initial collect");
    }
    let addr = addr.unwrap();
    let static_root = proj.join("static_root");
    let css = find_css(proj).expect("a CSS file in the corpus");
    let key = css.1.clone();
    let original = fs::read(&css.0).unwrap();
    let mut out = Vec::new();
    for i in 0..edits {
        let before = manifest_value(&static_root, &key);
        let mut body = original.clone();
        body.extend_from_slice(format!("\n/* edit {i} */\n").as_bytes());
        let t = Instant::now();
        fs::write(&css.0, &body).unwrap();
        let (within, every) = (Duration::from_secs(30), Duration::from_millis(1));
        let new = poll(within, every, || {
            manifest_value(&static_root, &key).filter(|v| Some(v) != before.as_ref())
        })
        .unwrap_or_else(|| panic!("edit {i} never published"));
        let url = format!("/static/{new}");
        poll(within, every, || {
            (get_status(addr, &url) == 200).then_some(())
        })
        .unwrap_or_else(|| panic!("{new} never answered"));
        out.push(t.elapsed().as_secs_f64());
        // The next edit starts once the watcher has reported this re-collect (a line
        // `... changed → ... in N ms`, or its error): it is idle again, and the edits do not
        // coalesce into one burst.
        let reported = poll(Duration::from_secs(5), Duration::ZERO, || {
            rx.recv_timeout(Duration::from_millis(50))
                .ok()
                .filter(|l| l.contains(" changed → ") || l.contains("error:"))
        });
        if reported.is_none() {
            println!("edit {i}: no report line from the watcher within 5 s; going on");
        }
    }
    fs::write(&css.0, original).unwrap();
    out
}

struct Guard<'a>(&'a mut Child);
impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CSS file of a vendor tree and its manifest key.
fn find_css(proj: &Path) -> Option<(PathBuf, String)> {
    let man: serde_json::Value =
        serde_json::from_slice(&fs::read(proj.join("static_root/staticfiles.json")).ok()?).ok()?;
    let vendor = proj.join("vendor");
    for e in walkdir::WalkDir::new(&vendor).sort_by_file_name() {
        let e = e.ok()?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "css") {
            // vendor/<prefix>/<rel> is collected as <prefix>/<rel>.
            let rel = p.strip_prefix(&vendor).ok()?.to_string_lossy().to_string();
            if man["paths"][&rel].is_string() {
                return Some((p.to_path_buf(), rel));
            }
        }
    }
    None
}

fn manifest_value(root: &Path, key: &str) -> Option<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("staticfiles.json")).ok()?).ok()?;
    v["paths"][key].as_str().map(str::to_string)
}

fn get_status(addr: SocketAddr, path: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return 0;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    );
    let mut buf = [0u8; 12];
    if s.read_exact(&mut buf).is_err() {
        return 0;
    }
    std::str::from_utf8(&buf[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx]
}
