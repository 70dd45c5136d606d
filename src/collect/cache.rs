//! A content-addressed cache of compressed variants, shared by every collect on the machine.
//!
//! brotli 11 is most of a collect's CPU; its output depends only on the bytes and the encoder
//! settings, so one entry per (content, settings) lets a fresh STATIC_ROOT (CI, a new
//! container) be built without compressing anything already seen. Entries are written to a
//! temporary name and renamed (two collects can share the cache), carry a blake3 checksum (a
//! corrupt entry is recomputed, never used), and are evicted least-recently-used first.
//!
//! A second level can stand behind the disk ([`RemoteLevel`], e.g. an object store shared by
//! every CI runner): a disk miss asks it, a hit there is kept on disk too, and every new entry
//! goes to both. Its entries are the same checksummed bytes, so a damaged one is found and
//! recomputed like a damaged file.
use super::compress::{Settings, Variants};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const MAGIC: &[u8; 4] = b"SDC1";

/// The cache directory and its size bound.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    remote: Option<std::sync::Arc<dyn RemoteLevel>>,
}

/// A slower level behind the disk, shared between machines. Errors are its own to report:
/// a cache that cannot be reached costs compressions, never a failed collect.
pub trait RemoteLevel: std::fmt::Debug + Send + Sync {
    /// The stored bytes of `key`, if there are any.
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn put(&self, key: &str, bytes: &[u8]);
}

/// What a lookup found.
pub enum Lookup {
    Hit(Variants),
    Miss,
    /// The entry was damaged; it will be overwritten.
    Corrupt,
}

impl Cache {
    /// `dir` = `--cache-dir`, else `$XDG_CACHE_HOME/staticd`, else `~/.cache/staticd`.
    pub fn new(dir: Option<PathBuf>, max_bytes: u64) -> Option<Cache> {
        let dir = dir.or_else(default_dir)?;
        Some(Cache {
            dir: dir.join("variants-v1"),
            max_bytes,
            remote: None,
        })
    }

    /// The same cache with `remote` behind the disk.
    pub fn with_remote(mut self, remote: std::sync::Arc<dyn RemoteLevel>) -> Cache {
        self.remote = Some(remote);
        self
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(key)
    }

    /// The entry key: content digest plus everything that changes the encoders' output.
    pub fn key(content: &[u8], settings: &Settings) -> String {
        let mut h = blake3::Hasher::new();
        h.update(content);
        h.update(
            format!(
                "{} br:{} gz:{} zst:{}",
                super::compress::ENCODERS,
                settings.brotli,
                settings.gzip,
                settings.zstd
            )
            .as_bytes(),
        );
        h.finalize().to_hex().to_string()
    }

    pub fn get(&self, key: &str) -> Lookup {
        let path = self.path(key);
        let local = match fs::read(&path) {
            Ok(bytes) => match decode(&bytes) {
                Some(v) => {
                    // Reading is a use: bump the mtime that eviction sorts by.
                    let _ = fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_modified(SystemTime::now()));
                    return Lookup::Hit(v);
                }
                None => Lookup::Corrupt,
            },
            Err(_) => Lookup::Miss,
        };
        let Some(remote) = &self.remote else {
            return local;
        };
        match remote.get(key) {
            Some(bytes) => match decode(&bytes) {
                Some(v) => {
                    self.put_local(key, &bytes);
                    Lookup::Hit(v)
                }
                None => Lookup::Corrupt,
            },
            None => local,
        }
    }

    /// Stores an entry (atomically on disk, and in the remote level); errors only cost a
    /// future recompute, so they are ignored.
    pub fn put(&self, key: &str, v: &Variants) {
        let bytes = encode(v);
        self.put_local(key, &bytes);
        if let Some(remote) = &self.remote {
            remote.put(key, &bytes);
        }
    }

    fn put_local(&self, key: &str, bytes: &[u8]) {
        let path = self.path(key);
        let Some(parent) = path.parent() else { return };
        if fs::create_dir_all(parent).is_err() {
            return;
        }
        let tmp = parent.join(format!(
            ".tmp-{}-{}-{key}",
            std::process::id(),
            rand_suffix()
        ));
        let ok = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes))
            .is_ok();
        if !ok || fs::rename(&tmp, &path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Deletes least-recently-used entries until the cache is below its bound.
    pub fn evict(&self) -> usize {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = walkdir::WalkDir::new(&self.dir)
            .min_depth(2)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.into_path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return 0;
        }
        entries.sort();
        let mut removed = 0;
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total -= len;
                removed += 1;
            }
        }
        removed
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn default_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("staticd"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/staticd"))
}

/// Unique within the process (a counter) and across processes (pid and clock in the name).
fn rand_suffix() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t.wrapping_add(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 40)
}

/// `SDC1`, then per encoding (br, gz, zst) a presence byte, a u64 length and the bytes, then
/// the blake3 of everything before it.
fn encode(v: &Variants) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for part in [&v.br, &v.gz, &v.zst] {
        match part {
            Some(b) => {
                out.push(1);
                out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                out.extend_from_slice(b);
            }
            None => out.push(0),
        }
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Variants> {
    if bytes.len() < MAGIC.len() + 3 + 32 || &bytes[..4] != MAGIC {
        return None;
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut pos = 4;
    let mut parts: [Option<Vec<u8>>; 3] = [None, None, None];
    for part in parts.iter_mut() {
        let flag = *body.get(pos)?;
        pos += 1;
        if flag == 1 {
            let len = u64::from_le_bytes(body.get(pos..pos + 8)?.try_into().ok()?) as usize;
            pos += 8;
            *part = Some(body.get(pos..pos.checked_add(len)?)?.to_vec());
            pos += len;
        }
    }
    let [br, gz, zst] = parts;
    (pos == body.len()).then_some(Variants { br, gz, zst })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Variants {
        Variants {
            br: Some(b"brotli".to_vec()),
            gz: None,
            zst: Some(vec![]),
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let enc = encode(&sample());
        assert_eq!(decode(&enc), Some(sample()));
        for i in [0, 5, enc.len() / 2, enc.len() - 1] {
            let mut bad = enc.clone();
            bad[i] ^= 1;
            assert_eq!(decode(&bad), None, "flip at {i}");
        }
        assert_eq!(decode(&enc[..enc.len() - 1]), None);
    }

    #[test]
    fn put_get_evict() {
        let t = tempfile::tempdir().unwrap();
        let c = Cache::new(Some(t.path().into()), 1).unwrap();
        let k = Cache::key(b"x", &Settings::default());
        assert!(matches!(c.get(&k), Lookup::Miss));
        c.put(&k, &sample());
        assert!(matches!(c.get(&k), Lookup::Hit(v) if v == sample()));
        fs::write(c.path(&k), b"garbage").unwrap();
        assert!(matches!(c.get(&k), Lookup::Corrupt));
        c.put(&k, &sample());
        assert_eq!(c.evict(), 1, "over the 1-byte bound");
        assert!(matches!(c.get(&k), Lookup::Miss));
    }

    /// A remote level in memory, to check the two-level logic without a store.
    #[derive(Debug, Default)]
    struct Shared(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>);

    impl RemoteLevel for Shared {
        fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.0.lock().unwrap().get(key).cloned()
        }
        fn put(&self, key: &str, bytes: &[u8]) {
            self.0.lock().unwrap().insert(key.into(), bytes.to_vec());
        }
    }

    #[test]
    fn second_level_fills_the_first_and_catches_damage() {
        let shared = std::sync::Arc::new(Shared::default());
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let runner_a = Cache::new(Some(a.path().into()), 1 << 20)
            .unwrap()
            .with_remote(shared.clone());
        let runner_b = Cache::new(Some(b.path().into()), 1 << 20)
            .unwrap()
            .with_remote(shared.clone());
        let k = Cache::key(b"x", &Settings::default());
        runner_a.put(&k, &sample());
        assert!(matches!(runner_b.get(&k), Lookup::Hit(v) if v == sample()));
        assert!(runner_b.path(&k).is_file(), "a remote hit is kept on disk");
        let k2 = Cache::key(b"y", &Settings::default());
        shared.put(&k2, b"garbage");
        assert!(matches!(runner_b.get(&k2), Lookup::Corrupt));
        runner_b.put(&k2, &sample());
        assert_eq!(
            shared.get(&k2),
            Some(encode(&sample())),
            "recomputed and replaced"
        );
    }

    #[test]
    fn key_depends_on_settings() {
        let s = Settings::default();
        let z = Settings {
            zstd: true,
            ..Settings::default()
        };
        assert_ne!(Cache::key(b"a", &s), Cache::key(b"a", &z));
        assert_ne!(Cache::key(b"a", &s), Cache::key(b"b", &s));
    }
}
