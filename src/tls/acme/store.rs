//! The ACME store on disk: account key and certificates, private to the server's user, shared
//! safely between replicas.
//!
//! Layout (one subdirectory per ACME directory URL, so staging and production accounts and
//! certificates never mix, as in Caddy's `certificates/<issuer>/`):
//!
//! ```text
//! <store>/                                   0700
//!   <directory key>/                         0700   e.g. acme-v02.api.letsencrypt.org-directory
//!     account.json    account.lock           0600   instant-acme's AccountCredentials
//!     <domain>/                              0700
//!       cert.pem  key.pem  lock              0600
//! ```
//!
//! Files are written to a temporary name created 0600 (never readable by others, whatever
//! the umask), synced, then renamed into place. Locks are `flock(2)` on the `*.lock`/`lock`
//! files: advisory, released by the kernel when the process dies, and honoured across
//! processes and containers sharing the directory (on local filesystems and NFSv4). Lock files
//! are never deleted (deleting a flock file races with a waiter).

use instant_acme::AccountCredentials;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::super::certs::CertPair;

/// Where the store goes without `--acme-store`, first match wins:
/// `$STATE_DIRECTORY/acme` (systemd's `StateDirectory=`), `$XDG_DATA_HOME/staticd/acme`,
/// `$HOME/.local/share/staticd/acme` (Caddy's choice, per user), `/var/lib/staticd/acme`.
/// Never inside the Django project: it is deployed and committed, and this holds private keys.
pub fn default_store() -> PathBuf {
    default_store_from(|k| std::env::var_os(k))
}

fn default_store_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd passes one directory per StateDirectory= entry, colon-separated.
        let first = d
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return PathBuf::from(first).join("acme");
    }
    if let Some(d) = var("XDG_DATA_HOME") {
        return d.join("staticd").join("acme");
    }
    if let Some(h) = var("HOME") {
        return h.join(".local/share/staticd/acme");
    }
    PathBuf::from("/var/lib/staticd/acme")
}

/// A failed store operation, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: cannot {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("{}: not an ACME account file: {source}", path.display())]
    Account {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// The directory part of the store for one ACME directory URL: its host and path with
/// everything but `[A-Za-z0-9.-]` turned into `-`.
pub fn directory_key(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let key: String = rest
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if key.is_empty() || key.chars().all(|c| c == '.') {
        "directory".into()
    } else {
        key
    }
}

/// The store of one ACME directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Creates `dir` (and missing parents) and makes it 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir, "create the directory"))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(dir, "make the directory private (0700)"))
}

impl Store {
    /// Opens (creating) `<base>/<directory key>/`, both 0700.
    pub fn open(base: &Path, directory_url: &str) -> Result<Self, StoreError> {
        private_dir(base)?;
        let root = base.join(directory_key(directory_url));
        private_dir(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn account_path(&self) -> PathBuf {
        self.root.join("account.json")
    }

    /// The stored account, if any.
    pub fn read_account(&self) -> Result<Option<AccountCredentials>, StoreError> {
        let path = self.account_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Account { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, "read")(e)),
        }
    }

    pub fn write_account(&self, creds: &AccountCredentials) -> Result<(), StoreError> {
        let path = self.account_path();
        let json = serde_json::to_vec_pretty(creds).map_err(|source| StoreError::Account {
            path: path.clone(),
            source,
        })?;
        write_private(&path, &json)
    }

    /// Forgets the account (the CA no longer knows it, e.g. a test CA was reset).
    pub fn remove_account(&self) -> Result<(), StoreError> {
        let path = self.account_path();
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path, "remove")(e)),
            _ => Ok(()),
        }
    }

    fn domain_dir(&self, domain: &str) -> PathBuf {
        self.root.join(domain)
    }

    /// Where `domain`'s certificate chain and key are kept.
    pub fn cert_pair(&self, domain: &str) -> CertPair {
        let dir = self.domain_dir(domain);
        CertPair {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Stores a new certificate: the key first, so a reader that (wrongly, without the lock)
    /// catches the moment in between sees a mismatched pair and refuses it.
    pub fn write_cert(
        &self,
        domain: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(), StoreError> {
        private_dir(&self.domain_dir(domain))?;
        let pair = self.cert_pair(domain);
        write_private(&pair.key, key_pem.as_bytes())?;
        write_private(&pair.cert, chain_pem.as_bytes())
    }

    /// Waits for the exclusive lock on `name` (`"account"`, or a domain) across processes.
    pub async fn lock(&self, name: &str) -> Result<FileLock, StoreError> {
        let path = if name == "account" {
            self.root.join("account.lock")
        } else {
            let dir = self.domain_dir(name);
            private_dir(&dir)?;
            dir.join("lock")
        };
        tokio::task::spawn_blocking(move || FileLock::acquire(&path))
            .await
            .map_err(|e| StoreError::Io {
                path: PathBuf::new(),
                what: "wait for a lock",
                source: io::Error::other(e),
            })?
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path, "write")(e)
    })
}

/// An exclusive `flock` held until dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Blocks until the lock is ours.
    pub fn acquire(path: &Path) -> Result<Self, StoreError> {
        Self::lock(path, libc::LOCK_EX).map(|l| l.expect("blocking flock returned"))
    }

    /// Takes the lock if free right now.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, StoreError> {
        Self::lock(path, libc::LOCK_EX | libc::LOCK_NB)
    }

    fn lock(path: &Path, op: libc::c_int) -> Result<Option<Self>, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err(path, "open the lock file"))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
                return Ok(Some(Self { file }));
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(None),
                _ => return Err(io_err(path, "lock")(e)),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock too; unlocking first says so explicitly.
        // SAFETY: as above.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directory_keys_are_plain_names() {
        assert_eq!(
            directory_key("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(
            directory_key("https://127.0.0.1:14000/dir"),
            "127.0.0.1-14000-dir"
        );
        assert_eq!(directory_key("https://../"), "directory");
        assert!(!directory_key("https://x/../../etc").contains('/'));
    }

    #[test]
    fn everything_in_the_store_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("a/store");
        let store = Store::open(&base, "https://ca.test/dir").unwrap();
        store.write_cert("x.test", "CHAIN", "KEY").unwrap();
        assert_eq!(mode(&base), 0o700);
        assert_eq!(mode(store.root()), 0o700);
        assert_eq!(mode(&store.root().join("x.test")), 0o700);
        let pair = store.cert_pair("x.test");
        assert_eq!(mode(&pair.cert), 0o600);
        assert_eq!(mode(&pair.key), 0o600);
        assert_eq!(fs::read_to_string(&pair.cert).unwrap(), "CHAIN");

        // A loose directory left by someone else is tightened on open.
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        Store::open(&base, "https://ca.test/dir").unwrap();
        assert_eq!(mode(&base), 0o700);
        // Rewriting keeps 0600 and leaves no temporary file behind.
        store.write_cert("x.test", "CHAIN2", "KEY2").unwrap();
        assert_eq!(mode(&pair.key), 0o600);
        let names: Vec<_> = fs::read_dir(store.root().join("x.test"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn a_held_lock_excludes_others_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("lock");
        let held = FileLock::acquire(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        // A second open file description, as another replica would have.
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn the_default_store_follows_systemd_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        static ALL: [(&str, &str); 3] = [
            ("STATE_DIRECTORY", "/var/lib/staticd:/var/lib/other"),
            ("XDG_DATA_HOME", "/home/u/.data"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(
            default_store_from(env(&ALL)),
            Path::new("/var/lib/staticd/acme")
        );
        assert_eq!(
            default_store_from(env(&ALL[1..])),
            Path::new("/home/u/.data/staticd/acme")
        );
        assert_eq!(
            default_store_from(env(&[("XDG_DATA_HOME", ""), ("HOME", "/home/u")])),
            Path::new("/home/u/.local/share/staticd/acme")
        );
        assert_eq!(
            default_store_from(env(&[])),
            Path::new("/var/lib/staticd/acme")
        );
    }
}
