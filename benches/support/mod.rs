//! What the benches share, so each bench file keeps only its scenarios and its report:
//! - `wrk`: wrk runs, their output parsed, medians over repetitions;
//! - `h2load`: h2load runs (HTTP/2), parsed into wrk's samples;
//! - `cpu`: CPU time from /proc (per request of a server) and getrusage (of a child);
//! - `spawn`: servers pinned to a core, waited for until they listen, killed on drop;
//! - `peers`: nginx, Caddy and wrk, installed with apt when missing and started from templates;
//! - `http`: one plain GET, for the sanity checks before a run;
//! - `corpus`: the serve bench's synthetic corpus, where the collect bench keeps its Django
//!   projects, tree copies and sizes;
//! - `django_corpus`: those Django projects (`small`, `large`), built once by the collect or
//!   the publish bench, whichever runs first;
//! - `python`: the venv `.ci/venv` builds;
//! - `npm`: npm and PyPI packages fetched once with their own clients (the delta bench).
//! - `seaweed`: SeaweedFS for the publish bench, and what it says was written, on `ports`
//!   leased for it: the tests' own `tests/common/{seaweed,ports}.rs`, included by path (one
//!   startup code for both crates).
//!
//! Every bench is its own crate and uses only part of this module: unused items are expected.
#![allow(dead_code)]

pub mod cgroup;
pub mod corpus;
pub mod cpu;
pub mod django_corpus;
pub mod h2load;
pub mod http;
pub mod npm;
pub mod peers;
#[path = "../../tests/common/ports.rs"]
pub mod ports;
pub mod python;
#[path = "../../tests/common/seaweed.rs"]
pub mod seaweed;
pub mod spawn;
pub mod wrk;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The staticd this build made.
pub const STATICD: &str = env!("CARGO_BIN_EXE_staticd");

/// `$CARGO_TARGET_DIR` (relative to the package root when relative, as cargo reads it), else
/// `<package>/target`: where corpora, runs and reports go.
pub fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// `cargo bench -- <filter>`: a filter that is not part of `name` means another bench was asked
/// for (flags such as `--bench` are not filters).
pub fn filtered_out(name: &str) -> bool {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .is_some_and(|f| !name.contains(f.as_str()))
}

/// A numeric knob from the environment; `default` when unset or unparsable.
pub fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A comma-separated knob from the environment, trimmed, empty items dropped.
pub fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The median (the mean of the two middle values for an even count) of the values that
/// are numbers (a figure a tool did not report is NaN); `None` for none.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

pub fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// First line `cmd ARGS` prints on stdout or stderr (nginx -v writes to stderr); empty if none.
pub fn version_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

/// Runs `cmd` to its end; an error names `what` and, when it failed, carries its stderr.
pub fn checked_output(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// Prints the report and writes it to `target/<file>`.
pub fn publish(md: &str, file: &str) {
    println!("\n{md}");
    let out = target_dir().join(file);
    match std::fs::write(&out, md) {
        Ok(()) => println!("written to {}", out.display()),
        Err(e) => println!("cannot write {}: {e}", out.display()),
    }
}
