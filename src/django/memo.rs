//! Remembered discoveries. Starting Python and `django.setup()` costs about half a second,
//! which would be most of an unchanged re-collect; the facts only change when the inputs do.
//!
//! An entry is keyed by everything given to the discovery (project, interpreter, settings,
//! ignore options, the whole environment but for a few shell variables) and is valid only
//! while every witness the Python side listed (imported project modules, app directories,
//! STATICFILES_DIRS parents, sys.path entries) has the size and mtime it had. Anything
//! unreadable is a miss; a miss just runs Python.
use super::{DiscoverOptions, Discovery};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    witnesses: Vec<(PathBuf, i64, i64, u64)>,
    discovery: Discovery,
}

/// Shell bookkeeping that never reaches Django's settings in practice.
const VOLATILE_ENV: &[&str] = &["_", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TERM"];

pub fn key(opts: &DiscoverOptions) -> String {
    let mut h = blake3::Hasher::new();
    let project = std::fs::canonicalize(&opts.project).unwrap_or(opts.project.clone());
    h.update(
        format!(
            "{project:?}|{:?}|{:?}|{:?}|{}|",
            opts.python, opts.settings, opts.extra_ignore, opts.no_default_ignore
        )
        .as_bytes(),
    );
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !VOLATILE_ENV.contains(&k.as_str()))
        .collect();
    env.sort();
    for (k, v) in env {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\0");
    }
    h.finalize().to_hex().to_string()
}

fn path(key: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("staticd/discovery").join(format!("{key}.json")))
}

fn stat(p: &Path) -> Option<(i64, i64, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.mtime(), m.mtime_nsec(), m.size()))
}

pub fn load(key: &str) -> Option<Discovery> {
    let entry: Entry = serde_json::from_slice(&std::fs::read(path(key)?).ok()?).ok()?;
    if entry.key != key || entry.discovery.witnesses.is_empty() {
        return None;
    }
    for (p, s, ns, size) in &entry.witnesses {
        if stat(p) != Some((*s, *ns, *size)) {
            return None;
        }
    }
    Some(entry.discovery)
}

/// Stores a Python discovery (one from `staticd.toml` is cheap and not stored).
pub fn store(key: &str, d: &Discovery) {
    if d.witnesses.is_empty() {
        return;
    }
    let Some(path) = path(key) else { return };
    let witnesses = d
        .witnesses
        .iter()
        .filter_map(|p| stat(p).map(|(s, ns, size)| (p.clone(), s, ns, size)))
        .collect();
    let entry = Entry {
        key: key.to_string(),
        witnesses,
        discovery: d.clone(),
    };
    let Ok(bytes) = serde_json::to_vec(&entry) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}
