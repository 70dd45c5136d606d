//! `collect --watch`: re-collect incrementally whenever a source changes.
//!
//! Events are coalesced until the sources have been quiet for a moment, so a `git checkout`
//! of thousands of files is one re-collect. Each re-collect publishes atomically; a broken
//! reference prints its error, with its kind (`error[missing_reference]: …`), and the last
//! good generation stays published. A collect that raced with a file being replaced (a
//! source or a carried output vanished under it) is run again at once. A missing
//! reference a `warn` rule lets through is printed once, when it first appears, and counted in
//! each report line. Discovery runs once: a change to Django's settings needs a restart.
use super::report::{Log, Summary};
use super::{collect, CollectOptions};
use crate::django::{Discovery, Source};
use crate::manifest::Manifest;
use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the sources must be quiet before a re-collect starts.
const QUIET: Duration = Duration::from_millis(10);
/// A steady stream of events still gets a re-collect this often.
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Collects once, then after every burst of changes, until the process ends.
pub fn watch(d: &Discovery, opts: &CollectOptions, log: &Log) -> Result<()> {
    let opts = CollectOptions {
        progress: false,
        clear: false,
        reuse_stage: true,
        ..opts.clone()
    };
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            if !matches!(ev.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(ev.paths);
            }
        }
    })
    .context("cannot start the file watcher")?;
    let roots = watched_roots(d);
    for root in &roots {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .with_context(|| format!("cannot watch {}", root.display()))?;
    }
    log.warn(format!(
        "watching {} source director{} for changes (Ctrl-C to stop)",
        roots.len(),
        if roots.len() == 1 { "y" } else { "ies" }
    ));
    let mut warned = BTreeSet::new();
    let mut last = run_once(d, &opts, log, &BTreeSet::new(), None, &mut warned);
    loop {
        let Ok(first) = rx.recv() else {
            return Ok(());
        };
        let mut changed: BTreeSet<PathBuf> = first.into_iter().collect();
        let burst = Instant::now();
        while burst.elapsed() < MAX_WAIT {
            match rx.recv_timeout(QUIET) {
                Ok(paths) => changed.extend(paths),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        changed.retain(|p| !is_noise(p));
        if changed.is_empty() {
            continue;
        }
        last = run_once(d, &opts, log, &changed, last, &mut warned);
    }
}

/// Existing directory sources; other finders' files are listed once and not watched.
fn watched_roots(d: &Discovery) -> Vec<PathBuf> {
    d.sources
        .iter()
        .filter_map(|s| match s {
            Source::Dir { root, .. } if root.is_dir() => Some(root.clone()),
            _ => None,
        })
        .collect()
}

/// Editors' swap and backup files do not deserve a re-collect of their own.
fn is_noise(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx") || name == "4913"
}

/// One re-collect and its one-line report. Returns the manifest now published. `warned`: the
/// warnings printed so far that still apply (a warning is printed when it first appears).
fn run_once(
    d: &Discovery,
    opts: &CollectOptions,
    log: &Log,
    changed: &BTreeSet<PathBuf>,
    before: Option<Manifest>,
    warned: &mut BTreeSet<String>,
) -> Option<Manifest> {
    let started = Instant::now();
    let manifest_path = d.static_root.join(&d.storage.manifest_name);
    let mut result = collect(d, opts, log);
    if let Err(e) = &result {
        if e.is_transient() {
            log.warn(format!(
                "error[{}]: {e}\n(a file changed during the collect: collecting again)",
                e.kind()
            ));
            result = collect(d, opts, log);
        }
    }
    match result {
        Ok(summary) => {
            let now: BTreeSet<String> = summary
                .warnings
                .iter()
                .map(|w| w.warning(&opts.missing))
                .collect();
            for w in now.difference(warned) {
                log.warn(w);
            }
            *warned = now;
            let after = Manifest::read(&manifest_path).ok().flatten();
            log.line(
                1,
                describe(
                    d,
                    changed,
                    before.as_ref(),
                    after.as_ref(),
                    &summary,
                    started,
                ),
            );
            after
        }
        Err(e) => {
            log.warn(format!(
                "error[{}]: {e}\n(the last good generation stays published; fix the file and save again)",
                e.kind()
            ));
            before
        }
    }
}

/// `css/app.css changed → /static/css/app.1a2b3c4d5e6f.css (+1 more) in 35 ms`
fn describe(
    d: &Discovery,
    changed: &BTreeSet<PathBuf>,
    before: Option<&Manifest>,
    after: Option<&Manifest>,
    summary: &Summary,
    started: Instant,
) -> String {
    // Name a file that still exists first: an atomic save also touches its temporary file.
    let mut names: Vec<&PathBuf> = changed.iter().filter(|p| p.is_file()).collect();
    if names.is_empty() {
        names = changed.iter().collect();
    }
    let what = match names.len() {
        0 => "initial collect".to_string(),
        1 => format!("{} changed", short(names[0])),
        n => format!("{} (+{} more) changed", short(names[0]), n - 1),
    };
    let mut urls: Vec<String> = after
        .map(|a| {
            a.paths
                .iter()
                .filter(|(k, v)| before.and_then(|b| b.paths.get(*k)) != Some(*v))
                .map(|(_, v)| format!("{}{v}", d.static_url))
                .collect()
        })
        .unwrap_or_default();
    if before.is_none() {
        urls.clear();
    }
    let new = match urls.len() {
        0 => format!(
            "{} files, {} unmodified",
            summary.copied + summary.unmodified,
            summary.unmodified
        ),
        1 => urls.remove(0),
        n => format!("{} (+{} more)", urls[0], n - 1),
    };
    let unresolved = match summary.missing_warned {
        0 => String::new(),
        1 => " (1 missing reference left unchanged)".to_string(),
        n => format!(" ({n} missing references left unchanged)"),
    };
    format!(
        "{what} → {new} in {} ms{unresolved}",
        started.elapsed().as_millis()
    )
}

fn short(p: &Path) -> String {
    let parts: Vec<_> = p.iter().collect();
    let keep = parts.len().saturating_sub(3);
    parts[keep..]
        .iter()
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
