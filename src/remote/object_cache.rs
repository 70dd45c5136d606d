//! The disk cache of `staticd serve --origin`: objects fetched from the store, bounded in
//! bytes, evicting the least recently used.
//!
//! Content-addressed: a file's name is the object's identity (see [`name_of`]: the store's
//! ETag and size, which change whenever the bytes do), so a cached file is never stale and
//! needs no revalidation; a new generation only adds names. Files are written under a
//! temporary name and renamed into place once their size and checksum are verified
//! (`fetch`), so a name that exists holds the whole object; temporary files left by a
//! crash are removed at startup, and files already there are kept (a restart starts warm).
//!
//! Eviction unlinks; a response already sending the file keeps its open descriptor, which
//! Linux keeps valid after the unlink, so eviction never cuts an answer short.
use super::error::RemoteError;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Suffix of files still being written.
const TMP: &str = ".part";

/// The cache name of an object: 64 hex digits of BLAKE3 over its size and the store's
/// ETag. Pure, and the same on every replica: also what its HTTP ETag is made from.
pub fn identity(size: u64, store_etag: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"staticd origin object\0");
    h.update(&size.to_le_bytes());
    h.update(store_etag.trim_matches('"').as_bytes());
    *h.finalize().as_bytes()
}

/// The file name for an identity.
pub fn name_of(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// One cached file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    size: u64,
    /// Logical clock of the last use: higher is more recent.
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    /// Bytes of the files in `slots`.
    total: u64,
    /// Bytes promised to downloads in progress.
    reserved: u64,
    clock: u64,
}

/// The cache directory and its index.
#[derive(Debug)]
pub struct ObjectCache {
    dir: PathBuf,
    max: u64,
    inner: Mutex<Inner>,
}

/// Pure: which names to evict, least recently used first, so that `need` more bytes fit
/// under `max` beside `total` + `reserved`. `None` when even evicting everything would not
/// make room.
fn victims(
    slots: &HashMap<String, Slot>,
    total: u64,
    reserved: u64,
    need: u64,
    max: u64,
) -> Option<Vec<String>> {
    if need.saturating_add(reserved) > max {
        return None;
    }
    let mut order: Vec<(&String, &Slot)> = slots.iter().collect();
    order.sort_by_key(|(name, s)| (s.used, name.as_str()));
    let mut out = Vec::new();
    let mut left = total;
    for (name, s) in order {
        if left + reserved + need <= max {
            break;
        }
        left -= s.size;
        out.push(name.clone());
    }
    (left + reserved + need <= max).then_some(out)
}

impl ObjectCache {
    /// Opens (creating) `dir`, indexes the files already there (older modification time =
    /// less recently used), removes unfinished downloads, and evicts down to `max`.
    pub fn open(dir: &Path, max: u64) -> Result<ObjectCache, RemoteError> {
        let local = |source| RemoteError::Local {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(local)?;
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).map_err(local)? {
            let e = e.map_err(local)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(md) = e.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            if name.ends_with(TMP) {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let mtime = md.modified().ok();
            found.push((mtime, name, md.len()));
        }
        found.sort();
        let mut inner = Inner::default();
        for (_, name, size) in found {
            inner.clock += 1;
            inner.total += size;
            inner.slots.insert(
                name,
                Slot {
                    size,
                    used: inner.clock,
                },
            );
        }
        let cache = ObjectCache {
            dir: dir.to_path_buf(),
            max,
            inner: Mutex::new(inner),
        };
        {
            let mut inner = cache.lock();
            let doomed = victims(&inner.slots, inner.total, 0, 0, max).unwrap_or_default();
            cache.evict(&mut inner, &doomed);
        }
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn evict(&self, inner: &mut Inner, names: &[String]) {
        for n in names {
            if let Some(s) = inner.slots.remove(n) {
                inner.total -= s.size;
                if let Err(e) = std::fs::remove_file(self.dir.join(n)) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!("cannot evict {}: {e}", self.dir.join(n).display());
                    }
                }
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached file `name`, opened, and marked as just used; `None` when not cached.
    pub fn get(&self, name: &str) -> Option<File> {
        let mut inner = self.lock();
        inner.slots.get(name)?;
        match File::open(self.dir.join(name)) {
            Ok(f) => {
                inner.clock += 1;
                let now = inner.clock;
                if let Some(s) = inner.slots.get_mut(name) {
                    s.used = now;
                }
                Some(f)
            }
            Err(_) => {
                // Removed behind our back: forget it, it will be fetched again.
                if let Some(s) = inner.slots.remove(name) {
                    inner.total -= s.size;
                }
                None
            }
        }
    }

    /// Makes room for a download of `size` bytes, evicting the least recently used files,
    /// and holds it until [`ObjectCache::commit`] or [`ObjectCache::release`]. `false` when
    /// the object alone is larger than the bound (or downloads in progress hold the rest):
    /// it is then served without being kept.
    pub fn reserve(&self, size: u64) -> bool {
        let mut inner = self.lock();
        match victims(&inner.slots, inner.total, inner.reserved, size, self.max) {
            Some(doomed) => {
                self.evict(&mut inner, &doomed);
                inner.reserved += size;
                true
            }
            None => false,
        }
    }

    /// Gives back a reservation whose download failed.
    pub fn release(&self, size: u64) {
        let mut inner = self.lock();
        inner.reserved = inner.reserved.saturating_sub(size);
    }

    /// Where the download of `name` is written (unique per download).
    pub fn temp_path(&self, name: &str) -> PathBuf {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.dir
            .join(format!("{name}.{}.{n}{TMP}", std::process::id()))
    }

    /// Moves a verified download into place under `name` (its reservation of `size`
    /// becomes the file) and opens it.
    pub fn commit(&self, name: &str, tmp: &Path, size: u64) -> std::io::Result<File> {
        let path = self.dir.join(name);
        let mut inner = self.lock();
        inner.reserved = inner.reserved.saturating_sub(size);
        if let Err(e) = std::fs::rename(tmp, &path) {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        let f = File::open(&path)?;
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.slots.insert(name.to_string(), Slot { size, used }) {
            inner.total -= old.size;
        }
        inner.total += size;
        Ok(f)
    }

    /// Bytes held (files in place).
    pub fn total(&self) -> u64 {
        self.lock().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(v: &[(&str, u64, u64)]) -> HashMap<String, Slot> {
        v.iter()
            .map(|(n, size, used)| {
                (
                    n.to_string(),
                    Slot {
                        size: *size,
                        used: *used,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let s = slots(&[("a", 40, 3), ("b", 40, 1), ("c", 20, 2)]);
        assert_eq!(victims(&s, 100, 0, 0, 100), Some(vec![]));
        assert_eq!(victims(&s, 100, 0, 10, 100), Some(vec!["b".into()]));
        assert_eq!(
            victims(&s, 100, 0, 50, 100),
            Some(vec!["b".into(), "c".into()])
        );
        assert_eq!(
            victims(&s, 100, 30, 50, 100),
            Some(vec!["b".into(), "c".into(), "a".into()])
        );
        assert_eq!(victims(&s, 100, 0, 101, 100), None, "larger than the bound");
        assert_eq!(
            victims(&s, 100, 60, 50, 100),
            None,
            "downloads hold the room"
        );
    }

    #[test]
    fn identity_is_the_etag_and_size() {
        let a = identity(10, "\"6f5902ac237024bdd0c176cb93063dc4\"");
        assert_eq!(a, identity(10, "6f5902ac237024bdd0c176cb93063dc4"));
        assert_ne!(a, identity(11, "6f5902ac237024bdd0c176cb93063dc4"));
        assert_ne!(a, identity(10, "00000000000000000000000000000000"));
        assert_eq!(name_of(&a).len(), 64);
    }

    #[test]
    fn stays_under_its_bound_and_restarts_warm() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let c = ObjectCache::open(&dir, 100).unwrap();
        let put = |c: &ObjectCache, name: &str, size: usize| {
            assert!(c.reserve(size as u64));
            let t = c.temp_path(name);
            std::fs::write(&t, vec![b'x'; size]).unwrap();
            c.commit(name, &t, size as u64).unwrap()
        };
        let a = name_of(&identity(60, "a"));
        let b = name_of(&identity(60, "b"));
        let held = put(&c, &a, 60);
        put(&c, &b, 60);
        assert!(c.get(&a).is_none(), "evicted for b");
        assert!(c.get(&b).is_some());
        assert_eq!(c.total(), 60);
        // The evicted file's open descriptor still reads the whole file.
        assert_eq!(held.metadata().unwrap().len(), 60);
        assert!(!c.reserve(101), "larger than the whole cache");
        std::fs::write(dir.join(format!("{a}.1.2{TMP}")), b"half").unwrap();
        drop(c);
        let c = ObjectCache::open(&dir, 100).unwrap();
        assert!(c.get(&b).is_some(), "kept across a restart");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "the unfinished download is gone");
        let c = ObjectCache::open(&dir, 50).unwrap();
        assert_eq!(c.total(), 0, "a smaller bound evicts at startup");
    }
}
