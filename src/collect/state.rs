//! What the last collect of a STATIC_ROOT knew, so the next one can skip work.
//!
//! Kept beside STATIC_ROOT (`.static.staticd-state.json`), never inside it, so it is not served
//! and not swapped away. A source whose path, size, mtime and inode are unchanged is trusted to
//! have the same bytes (the rule make and cargo use); `--clear` or deleting the file resets it.
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The stat fields that must not change for a file to count as unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i128,
    pub ino: u64,
}

impl Stat {
    pub fn of(path: &Path) -> Option<Stat> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stat {
            size: m.len(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ino: m.ino(),
        })
    }
}

/// One collected file as the last run left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileState {
    pub abs: PathBuf,
    pub stat: Stat,
    /// Fingerprint of the source bytes.
    pub fingerprint: String,
    /// Final hashed name.
    pub name: String,
    /// Reference targets (CSS/JS only), as manifest keys.
    pub targets: Vec<String>,
    /// Missing references the policy let through (reported again by a run that skips the file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<super::missing::MissingReference>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Digest of every setting that changes output; a different one invalidates everything.
    pub settings: String,
    /// (dev, inode) of STATIC_ROOT right after the publish: another writer changes it.
    pub root_id: Option<(u64, u64)>,
    pub files: HashMap<String, FileState>,
}

pub fn path_for(static_root: &Path) -> PathBuf {
    super::publish::beside(static_root, "state.json")
}

impl State {
    /// The previous state if it applies to these settings; anything unreadable is ignored.
    pub fn load(static_root: &Path, settings: &str) -> Option<State> {
        let bytes = std::fs::read(path_for(static_root)).ok()?;
        let state: State = serde_json::from_slice(&bytes).ok()?;
        (state.settings == settings).then_some(state)
    }

    /// Written after a successful publish (temp file and rename).
    pub fn save(&self, static_root: &Path) -> std::io::Result<()> {
        let path = path_for(static_root);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(tmp, path)
    }

    /// Drops the state (e.g. before a `--clear`).
    pub fn remove(static_root: &Path) {
        let _ = std::fs::remove_file(path_for(static_root));
    }
}
