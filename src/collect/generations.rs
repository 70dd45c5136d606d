//! Generations: what each publish named, so `staticd prune` can delete the hashed files of
//! old deploys that staticd itself wrote, and nothing else.
//!
//! The record lives beside STATIC_ROOT (`.static.staticd-generations.json`). A file is only
//! ever deleted when an older generation named it and none of the kept ones (nor the current
//! manifest) does; files other tools put in STATIC_ROOT are never named, so never deleted.
//! Neither are current originals: a bundler's name (collect/bundler.rs) is recorded like a
//! hashed one, and it is the original's path, so the caller protects the manifest's keys too.
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Variant suffixes that belong to a hashed file.
const VARIANTS: [&str; 3] = [".br", ".gz", ".zst"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    pub id: u64,
    /// Seconds since the epoch.
    pub published: u64,
    pub manifest_hash: String,
    /// Hashed files (manifest values) of this publish.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub generations: Vec<Generation>,
}

pub fn path_for(static_root: &Path) -> PathBuf {
    super::publish::beside(static_root, "generations.json")
}

impl History {
    pub fn load(static_root: &Path) -> History {
        std::fs::read(path_for(static_root))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, static_root: &Path) -> std::io::Result<()> {
        let path = path_for(static_root);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(tmp, path)
    }

    /// Records a publish, unless it republished the same manifest.
    pub fn record(&mut self, manifest_hash: &str, files: Vec<String>) {
        if self.generations.last().map(|g| g.manifest_hash.as_str()) == Some(manifest_hash) {
            return;
        }
        let id = self.generations.last().map_or(1, |g| g.id + 1);
        let published = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.generations.push(Generation {
            id,
            published,
            manifest_hash: manifest_hash.to_string(),
            files,
        });
    }

    /// Files (with their variants) of generations older than the last `keep` that no kept
    /// generation names, and the history trimmed to the kept ones. Pure.
    pub fn plan_prune(&self, keep: usize, current: &BTreeSet<String>) -> (Vec<String>, History) {
        let split = self.generations.len().saturating_sub(keep.max(1));
        let (old, kept) = self.generations.split_at(split);
        let mut protected: BTreeSet<&str> = current.iter().map(String::as_str).collect();
        for g in kept {
            protected.extend(g.files.iter().map(String::as_str));
        }
        let mut doomed = BTreeSet::new();
        for g in old {
            for f in &g.files {
                if !protected.contains(f.as_str()) {
                    doomed.insert(f.clone());
                    for v in VARIANTS {
                        doomed.insert(format!("{f}{v}"));
                    }
                }
            }
        }
        (
            doomed.into_iter().collect(),
            History {
                generations: kept.to_vec(),
            },
        )
    }
}

/// `doomed` with the delta files (`FILE.<hex>.dcb`, `.dcz`, see `crate::delta`) of each of its
/// files added: a delta decodes to the file it is named after and goes with it. Deltas
/// against a pruned dictionary stay with their file: browsers may still hold that version.
pub fn with_deltas(static_root: &Path, doomed: Vec<String>) -> Vec<String> {
    let doomed_set: BTreeSet<&str> = doomed.iter().map(String::as_str).collect();
    let beside = files_beside(static_root, doomed.iter().map(String::as_str));
    let extra: Vec<String> = crate::delta::deltas_of(beside.iter().map(String::as_str), |t| {
        doomed_set.contains(t)
    })
    .into_iter()
    .map(|(rel, _, _)| rel.to_string())
    .collect();
    let mut all = doomed;
    all.extend(extra);
    all
}

/// Every file (`/`-separated path under `static_root`) in the directories that hold `files`:
/// where their deltas are, since a delta is named after its file. Unreadable directories
/// and non-UTF-8 names are skipped (staticd writes neither).
pub fn files_beside<'a>(static_root: &Path, files: impl Iterator<Item = &'a str>) -> Vec<String> {
    let dirs: BTreeSet<&str> = files
        .map(|f| f.rfind('/').map_or("", |i| &f[..i]))
        .collect();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(listing) = std::fs::read_dir(static_root.join(dir)) else {
            continue;
        };
        for entry in listing.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            out.push(if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            });
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_shared_and_recent_files() {
        let mut h = History::default();
        h.record("m1", vec!["a.1.css".into(), "img.1.png".into()]);
        h.record("m1", vec!["ignored".into()]);
        h.record("m2", vec!["a.2.css".into(), "img.1.png".into()]);
        h.record("m3", vec!["a.3.css".into(), "img.1.png".into()]);
        assert_eq!(h.generations.len(), 3, "a republish is not a generation");
        let current: BTreeSet<String> = ["a.3.css".to_string()].into();
        let (doomed, kept) = h.plan_prune(2, &current);
        assert_eq!(
            doomed,
            vec!["a.1.css", "a.1.css.br", "a.1.css.gz", "a.1.css.zst"]
        );
        assert_eq!(
            kept.generations.iter().map(|g| g.id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let (none, _) = h.plan_prune(5, &current);
        assert!(none.is_empty());
    }

    #[test]
    fn deltas_go_with_the_file_they_decode_to() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("js")).unwrap();
        for f in [
            "js/a.1.js",
            "js/a.1.js.0123456789abcdef.dcz",
            "js/a.1.js.0123456789abcdef.dcb",
            "js/a.2.js.0123456789abcdef.dcz",
            "js/a.1.js.notadelta.dcz",
        ] {
            std::fs::write(t.path().join(f), b"x").unwrap();
        }
        let all = with_deltas(t.path(), vec!["js/a.1.js".into(), "js/a.1.js.br".into()]);
        assert_eq!(
            all,
            [
                "js/a.1.js",
                "js/a.1.js.br",
                "js/a.1.js.0123456789abcdef.dcb",
                "js/a.1.js.0123456789abcdef.dcz"
            ]
        );
    }
}
