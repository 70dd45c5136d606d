//! Atomic publish: a new STATIC_ROOT is built beside the old one and swapped in with one
//! `renameat2(RENAME_EXCHANGE)`, so a server sees either the old tree or the new one, whatever
//! fails or is killed in between.
//!
//! The new tree holds every file of the old one (hard links, so it costs no copy) unless
//! `--clear`: hashed files of earlier deploys keep answering during a rolling deploy. Outputs
//! whose bytes are already in the old tree are linked, not rewritten, so their mtime (and any
//! validator derived from it) stays.
//!
//! In watch mode the tree swapped out is kept at the stage path and becomes the next stage:
//! bringing it up to date costs a walk of both trees and a few links, where relinking every
//! file of a large STATIC_ROOT took most of a re-collect.
//!
//! Where the swap is impossible (STATIC_ROOT is a mount point, e.g. a container volume, or the
//! filesystem lacks RENAME_EXCHANGE) files are renamed into place one by one, hashed files
//! first and the manifest last: everything the old manifest names is untouched throughout,
//! but an unhashed original can be newer than the manifest for a moment.
use super::Error;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Result<T, E = Error> = std::result::Result<T, E>;

/// How an output reached the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// New bytes were written.
    New,
    /// The old tree had identical bytes at this path; it was linked.
    Unchanged,
}

/// Takes the exclusive lock of `root` (held until the file is dropped): two collects, or a
/// collect and a prune, never interleave.
pub fn lock(root: &Path) -> Result<File> {
    let lock_path = sibling(root, "lock")?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("open lock file", &lock_path, e))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            "lock",
            &lock_path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(lock)
}

/// A staged generation of STATIC_ROOT.
pub struct Stage {
    root: PathBuf,
    dir: PathBuf,
    /// Keep the previous tree, once swapped out, as the next stage (watch mode).
    reuse: bool,
    _lock: File,
    written: Mutex<Vec<String>>,
}

/// What `commit` did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Committed {
    /// Files of the old tree not carried over (`--clear`).
    pub deleted: usize,
    /// True when the whole tree was swapped atomically.
    pub swapped: bool,
}

fn sibling(root: &Path, suffix: &str) -> Result<PathBuf> {
    if root.file_name().is_none() {
        return Err(Error::RootWithoutName {
            root: root.to_path_buf(),
        });
    }
    Ok(beside(root, suffix))
}

/// `<parent>/.<name>.staticd-<suffix>`: staticd's own files live beside STATIC_ROOT, never in
/// it, so they are neither served nor swapped away.
pub fn beside(root: &Path, suffix: &str) -> PathBuf {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let parent = root.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{name}.staticd-{suffix}"))
}

impl Stage {
    /// Takes the collect lock of `root` (two collects never interleave) and starts an empty
    /// stage, removing what a killed run left behind.
    pub fn begin(root: &Path) -> Result<Stage> {
        Self::begin_with(root, false)
    }

    /// Like [`Stage::begin`], but with `reuse` a stage left at the stage path (the tree the
    /// last swap took out, or what a failed run left) is kept: `commit` makes it mirror the
    /// current tree, and after the swap the tree taken out stays there for the next run.
    pub fn begin_with(root: &Path, reuse: bool) -> Result<Stage> {
        let root = absolute(root)?;
        let parent = root.parent().unwrap_or(Path::new("/")).to_path_buf();
        fs::create_dir_all(&parent).map_err(|e| Error::io("create", &parent, e))?;
        let lock = lock(&root)?;
        let dir = sibling(&root, "stage")?;
        let kept = reuse && fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
        if !kept {
            if fs::symlink_metadata(&dir).is_ok() {
                fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io("remove leftover stage", &dir, e))?;
            }
            fs::create_dir(&dir).map_err(|e| Error::io("create stage", &dir, e))?;
        }
        if let Ok(meta) = fs::metadata(&root) {
            let _ = fs::set_permissions(&dir, meta.permissions());
        }
        remove_trash(&root);
        Ok(Stage {
            root,
            dir,
            reuse,
            _lock: lock,
            written: Mutex::new(Vec::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn staged(&self, rel: &str) -> Result<PathBuf> {
        let path = self.dir.join(safe_rel(rel)?);
        if let Some(p) = path.parent() {
            fs::create_dir_all(p).map_err(|e| Error::io("create", p, e))?;
        }
        Ok(path)
    }

    fn record(&self, rel: &str) {
        self.written
            .lock()
            .expect("stage list")
            .push(rel.to_string());
    }

    /// Stages `bytes` at `rel`, linking the old tree's file when it holds the same bytes.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<Written> {
        let dest = self.staged(rel)?;
        let old = self.root.join(safe_rel(rel)?);
        self.record(rel);
        if let Ok(meta) = fs::symlink_metadata(&old) {
            if meta.is_file()
                && meta.len() == bytes.len() as u64
                && fs::read(&old).map(|b| b == bytes).unwrap_or(false)
            {
                // A reused stage may hold this very file already.
                let linked = fs::symlink_metadata(&dest)
                    .is_ok_and(|d| (d.dev(), d.ino()) == (meta.dev(), meta.ino()));
                if linked || {
                    let _ = fs::remove_file(&dest);
                    fs::hard_link(&old, &dest).is_ok()
                } {
                    return Ok(Written::Unchanged);
                }
            }
        }
        let _ = fs::remove_file(&dest);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&dest)
            .map_err(|e| Error::io("write", &dest, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &dest, e))?;
        Ok(Written::New)
    }

    /// Stages `rel` as another name for the already staged `existing` (same bytes).
    pub fn link(&self, rel: &str, existing: &str) -> Result<()> {
        let dest = self.staged(rel)?;
        let src = self.dir.join(safe_rel(existing)?);
        self.record(rel);
        let _ = fs::remove_file(&dest);
        if fs::hard_link(&src, &dest).is_err() {
            fs::copy(&src, &dest).map_err(|e| Error::io("write", &dest, e))?;
        }
        Ok(())
    }

    /// Stages a symlink (`--link`) to an absolute source.
    pub fn symlink(&self, rel: &str, target: &Path) -> Result<Written> {
        let dest = self.staged(rel)?;
        self.record(rel);
        let old = self.root.join(safe_rel(rel)?);
        let unchanged = fs::read_link(&old).map(|t| t == target).unwrap_or(false);
        let _ = fs::remove_file(&dest);
        std::os::unix::fs::symlink(target, &dest).map_err(|e| Error::io("link", &dest, e))?;
        Ok(if unchanged {
            Written::Unchanged
        } else {
            Written::New
        })
    }

    /// Publishes the stage. `manifest` is written last; `clear` drops the old tree's files.
    pub fn commit(mut self, manifest: Option<(&str, &[u8])>, clear: bool) -> Result<Committed> {
        let written: HashSet<String> = self.written.lock().expect("stage list").drain(..).collect();
        let mut committed = Committed::default();
        let root_exists = fs::symlink_metadata(&self.root).is_ok();
        if root_exists {
            committed.deleted = carry_over(&self.root, &self.dir, &written, clear)?;
        }
        if let Some((name, bytes)) = manifest {
            let dest = self.staged(name)?;
            let tmp = dest.with_extension("staticd-tmp");
            fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
            fs::rename(&tmp, &dest).map_err(|e| Error::io("rename", &tmp, e))?;
        }
        sync_dir(&self.dir);
        if !root_exists {
            fs::rename(&self.dir, &self.root).map_err(|err| Error::Publish {
                path: self.root.clone(),
                err,
            })?;
            committed.swapped = true;
            return Ok(committed);
        }
        match exchange(&self.dir, &self.root) {
            Ok(()) => {
                committed.swapped = true;
                // The stage path now holds the previous tree; every file of it that is still
                // wanted is linked from the new one. Kept for reuse, or removed.
                if self.reuse {
                    self.reuse = false;
                    self.dir = PathBuf::new();
                } else {
                    let _ = fs::remove_dir_all(&self.dir);
                }
            }
            Err(e) if fallback_ok(&e) => {
                tracing::warn!(
                    "cannot swap {} atomically ({e}); renaming files into place, manifest last",
                    self.root.display()
                );
                in_place(
                    &self.dir,
                    &self.root,
                    &written,
                    manifest.map(|m| m.0),
                    clear,
                )?;
                let _ = fs::remove_dir_all(&self.dir);
            }
            Err(err) => {
                return Err(Error::Publish {
                    path: self.root.clone(),
                    err,
                })
            }
        }
        Ok(committed)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // After a failure the stage goes; the old tree was never touched.
        if !self.dir.as_os_str().is_empty() && self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes previous trees that an earlier version's background cleanup did not finish.
fn remove_trash(root: &Path) {
    let prefix = beside(root, "trash-");
    let (Some(parent), Some(prefix)) = (prefix.parent(), prefix.file_name()) else {
        return;
    };
    let prefix = prefix.to_string_lossy().to_string();
    if let Ok(entries) = fs::read_dir(parent) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Rejects a relative path that could leave STATIC_ROOT.
fn safe_rel(rel: &str) -> Result<&Path> {
    let p = Path::new(rel);
    if rel.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::UnsafeOutputPath {
            rel: rel.to_string(),
        });
    }
    Ok(p)
}

/// Makes the stage mirror the old tree around what was staged anew (`written`): every other
/// old file is hard-linked in (so it keeps its inode), and a stage file the old tree lacks is
/// removed (the stage may be a previous tree being reused). With `clear` only the
/// directories are carried. Returns how many old files were dropped.
fn carry_over(root: &Path, stage: &Path, written: &HashSet<String>, clear: bool) -> Result<usize> {
    use walkdir::DirEntryExt;
    let rel_of = |base: &Path, p: &Path| p.strip_prefix(base).expect("below base").to_path_buf();
    // What the stage holds besides the new outputs: inode, and symlink or not.
    let mut have: HashMap<PathBuf, (u64, bool)> = HashMap::new();
    let mut have_dirs: Vec<PathBuf> = Vec::new();
    for entry in walkdir::WalkDir::new(stage).min_depth(1) {
        let entry = entry.map_err(|e| walk_error(stage, e))?;
        let rel = rel_of(stage, entry.path());
        if entry.file_type().is_dir() {
            have_dirs.push(rel);
        } else if !written.contains(rel.to_string_lossy().as_ref()) {
            have.insert(rel, (entry.ino(), entry.file_type().is_symlink()));
        }
    }
    let have_dir: HashSet<&Path> = have_dirs.iter().map(PathBuf::as_path).collect();
    // Directories first (in walk order, so parents exist), then the files, linked in parallel:
    // thousands of links are most of a small re-collect on a fresh stage.
    let mut files = Vec::new();
    let mut old_dirs: HashSet<PathBuf> = HashSet::new();
    // Every file of the old tree: what Django's `clear_dir` deletes and counts, rewritten
    // ones included.
    let mut old_files = 0;
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        let rel = rel_of(root, entry.path());
        old_files += usize::from(!entry.file_type().is_dir());
        if entry.file_type().is_dir() {
            let dest = stage.join(&rel);
            if !have_dir.contains(rel.as_path()) {
                if have.remove(&rel).is_some() {
                    fs::remove_file(&dest).map_err(|e| Error::io("remove", &dest, e))?;
                }
                fs::create_dir_all(&dest).map_err(|e| Error::io("create", &dest, e))?;
            }
            if let Ok(meta) = entry.metadata() {
                let same = fs::symlink_metadata(&dest)
                    .is_ok_and(|m| m.permissions() == meta.permissions());
                if !same {
                    let _ = fs::set_permissions(&dest, meta.permissions());
                }
            }
            old_dirs.insert(rel);
        } else if !written.contains(rel.to_string_lossy().as_ref()) {
            let symlink = entry.file_type().is_symlink();
            if have_dir.contains(rel.as_path()) {
                let dir = stage.join(&rel);
                fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
            }
            let staged = have.remove(&rel);
            let current = !clear
                && match staged {
                    // A hard link of the very file: nothing to do.
                    Some((ino, false)) if !symlink => ino == entry.ino(),
                    Some((_, true)) if symlink => {
                        fs::read_link(entry.path()).ok() == fs::read_link(stage.join(&rel)).ok()
                    }
                    _ => false,
                };
            if !current {
                files.push((rel, symlink, staged.is_some()));
            }
        }
    }
    // The stage's own files that the old tree no longer has (pruned meanwhile, say).
    for rel in have.keys() {
        let path = stage.join(rel);
        fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
    }
    for rel in have_dirs.iter().rev() {
        if !old_dirs.contains(rel) {
            // Only empty ones: new outputs may live there.
            let _ = fs::remove_dir(stage.join(rel));
        }
    }
    if clear {
        for (rel, _, staged) in &files {
            if *staged {
                let path = stage.join(rel);
                fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            }
        }
        return Ok(old_files);
    }
    files
        .par_iter()
        .try_for_each(|(rel, symlink, staged)| -> Result<()> {
            let (src, dest) = (root.join(rel), stage.join(rel));
            if *staged {
                fs::remove_file(&dest).map_err(|e| Error::io("replace", &dest, e))?;
            }
            if *symlink {
                let target = fs::read_link(&src).map_err(|e| Error::io("read link", &src, e))?;
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(|e| Error::io("link", &dest, e))?;
            } else if fs::hard_link(&src, &dest).is_err() {
                fs::copy(&src, &dest).map_err(|e| Error::io("copy", &src, e))?;
            }
            Ok(())
        })?;
    Ok(0)
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: both paths swap inodes in one step.
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: valid NUL-terminated paths; AT_FDCWD.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn fallback_ok(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EBUSY
                | libc::EXDEV
                | libc::EINVAL
                | libc::ENOSYS
                | libc::EOPNOTSUPP
                | libc::EPERM
        )
    )
}

/// Per-file publish: hashed and other outputs first, the manifest last.
fn in_place(
    stage: &Path,
    root: &Path,
    written: &HashSet<String>,
    manifest: Option<&str>,
    clear: bool,
) -> Result<()> {
    let mut rels: Vec<&String> = written.iter().collect();
    rels.sort();
    for rel in rels {
        let dest = root.join(rel);
        if let Some(p) = dest.parent() {
            fs::create_dir_all(p).map_err(|e| Error::io("create", p, e))?;
        }
        fs::rename(stage.join(rel), &dest).map_err(|err| Error::Publish { path: dest, err })?;
    }
    if clear {
        for entry in walkdir::WalkDir::new(root).min_depth(1) {
            let entry = entry.map_err(|e| walk_error(root, e))?;
            let rel = entry.path().strip_prefix(root).expect("below root");
            let rel_s = rel.to_string_lossy();
            if !entry.file_type().is_dir()
                && !written.contains(rel_s.as_ref())
                && Some(rel_s.as_ref()) != manifest
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    if let Some(name) = manifest {
        fs::rename(stage.join(name), root.join(name)).map_err(|err| Error::Publish {
            path: root.join(name),
            err,
        })?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    // Resolve a symlinked STATIC_ROOT so the swap replaces the directory it points at.
    if let Ok(real) = fs::canonicalize(p) {
        return Ok(real);
    }
    std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))
}

/// A failure to walk a tree staticd writes: an I/O error naming the path.
fn walk_error(base: &Path, e: walkdir::Error) -> Error {
    let path = e.path().unwrap_or(base).to_path_buf();
    let err = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("cannot walk"));
    Error::Io {
        action: "read",
        path,
        err,
    }
}

/// Device and inode of a path, for "is this a mount point" style checks in tests.
pub fn dev_ino(p: &Path) -> Option<(u64, u64)> {
    fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap()
    }

    #[test]
    fn new_root_then_swap_keeps_old_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        let s = Stage::begin(&root).unwrap();
        assert_eq!(s.write("css/a.css", b"A1").unwrap(), Written::New);
        s.link("css/a.111.css", "css/a.css").unwrap();
        s.commit(Some(("staticfiles.json", b"{1}")), false).unwrap();
        assert_eq!(read(&root.join("css/a.111.css")), "A1");

        let before = dev_ino(&root).unwrap();
        let s = Stage::begin(&root).unwrap();
        assert_eq!(s.write("css/a.css", b"A2").unwrap(), Written::New);
        assert_eq!(s.write("css/a.111.css", b"A1").unwrap(), Written::Unchanged);
        s.write("css/a.222.css", b"A2").unwrap();
        let c = s.commit(Some(("staticfiles.json", b"{2}")), false).unwrap();
        assert!(c.swapped);
        assert_ne!(dev_ino(&root).unwrap(), before, "a new directory inode");
        assert_eq!(read(&root.join("css/a.css")), "A2");
        assert_eq!(
            read(&root.join("css/a.111.css")),
            "A1",
            "old hashed file kept"
        );
        assert_eq!(read(&root.join("staticfiles.json")), "{2}");
        assert!(!sibling(&root, "stage").unwrap().exists());
    }

    fn files(dir: &Path) -> Vec<(String, String)> {
        let mut v: Vec<_> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(dir).unwrap();
                (rel.to_string_lossy().to_string(), read(e.path()))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn reused_stage_mirrors_the_current_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        let stage = sibling(&root, "stage").unwrap();
        let s = Stage::begin_with(&root, true).unwrap();
        s.write("a.css", b"A1").unwrap();
        s.write("a.1.css", b"A1").unwrap();
        s.write("gone/x.txt", b"x").unwrap();
        s.commit(Some(("m.json", b"{1}")), false).unwrap();
        let s = Stage::begin_with(&root, true).unwrap();
        s.write("a.css", b"A2").unwrap();
        s.write("a.2.css", b"A2").unwrap();
        s.commit(Some(("m.json", b"{2}")), false).unwrap();
        assert!(
            stage.is_dir(),
            "the tree swapped out stays as the next stage"
        );

        // Between runs: a prune deletes from the tree, another tool adds to it.
        fs::remove_file(root.join("a.1.css")).unwrap();
        fs::remove_file(root.join("gone/x.txt")).unwrap();
        fs::remove_dir(root.join("gone")).unwrap();
        fs::write(root.join("extra.txt"), "e").unwrap();
        let before = files(&root);

        let s = Stage::begin_with(&root, true).unwrap();
        assert_eq!(s.write("a.2.css", b"A2").unwrap(), Written::Unchanged);
        s.write("a.css", b"A3").unwrap();
        s.write("a.3.css", b"A3").unwrap();
        s.commit(Some(("m.json", b"{3}")), false).unwrap();
        let mut want: Vec<_> = before
            .into_iter()
            .filter(|(r, _)| r != "a.css" && r != "m.json")
            .collect();
        want.extend([
            ("a.3.css".into(), "A3".into()),
            ("a.css".into(), "A3".into()),
            ("m.json".into(), "{3}".into()),
        ]);
        want.sort();
        assert_eq!(files(&root), want);
        assert!(!root.join("gone").exists(), "emptied directories go too");
        // Carried files are the old inodes, not copies.
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&root.join("extra.txt")), ino(&stage.join("extra.txt")));
    }

    #[test]
    fn failure_leaves_old_tree_untouched() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("keep.txt"), "old").unwrap();
        {
            let s = Stage::begin(&root).unwrap();
            s.write("keep.txt", b"new").unwrap();
            // dropped without commit
        }
        assert_eq!(read(&root.join("keep.txt")), "old");
        assert!(!sibling(&root, "stage").unwrap().exists());
    }

    #[test]
    fn clear_drops_files_keeps_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("static");
        fs::create_dir_all(root.join("old/dir")).unwrap();
        fs::write(root.join("old/dir/x.txt"), "x").unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        let s = Stage::begin(&root).unwrap();
        s.write("a.txt", b"a").unwrap();
        let c = s.commit(None, true).unwrap();
        // Django's clear_dir deletes (and counts) every file, the one written again too.
        assert_eq!(c.deleted, 2);
        assert_eq!(read(&root.join("a.txt")), "a");
        assert!(root.join("old/dir").is_dir());
        assert!(!root.join("old/dir/x.txt").exists());
    }

    #[test]
    fn rejects_escaping_paths() {
        let t = tempfile::tempdir().unwrap();
        let s = Stage::begin(&t.path().join("static")).unwrap();
        assert!(s.write("../x", b"").is_err());
        assert!(s.write("/etc/x", b"").is_err());
    }
}
