//! Certificates from `--tls-cert`/`--tls-key` files, reloaded without a restart.
//!
//! At startup every pair must load, or staticd does not start. Afterwards a pair is re-read
//! when its files change (inotify through `notify` on the files' directories, which also sees
//! certbot's and Kubernetes' symlink swaps, plus a 2 s poll of the files' contents for what
//! inotify misses) or on [`FileCerts::reload`] (SIGHUP). A new pair that fails the checks of
//! [`super::certs`] is refused with a log line naming the file and the reason, and the
//! certificate in use stays. Handshakes already done keep their certificate: only new
//! handshakes see a new one.
//!
//! Replace the key and the certificate together (write both, or rename both into place):
//! between the two writes the pair does not match, that state is refused (and logged), and
//! the second write loads the new pair.

use super::certs::{self, CertError, CertPair, Loaded};
use super::resolver::{SniResolver, Source};
use notify::{RecursiveMode, Watcher as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const POLL: Duration = Duration::from_secs(2);
/// A certbot deploy or `cp cert key` is a burst of events: reload once after it settles.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What a file holds now (a hash: metadata would miss two writes of the same size within
/// one tick of the filesystem clock); `None` when unreadable. Certificates are small, so
/// reading them every poll costs nothing.
type FileStamp = Option<[u8; 32]>;

fn stamp(path: &Path) -> FileStamp {
    std::fs::read(path)
        .ok()
        .map(|b| *blake3::hash(&b).as_bytes())
}

/// What one reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Pairs whose new certificate is now in use: certificate path and serial.
    pub loaded: Vec<(PathBuf, String)>,
    /// Pairs whose new files were refused (the previous certificate stays).
    pub refused: Vec<CertError>,
}

/// The file-based certificates and their reloading.
#[derive(Debug)]
pub struct FileCerts {
    pairs: Vec<CertPair>,
    resolver: Arc<SniResolver>,
    /// The stamps of each pair's files when last read.
    seen: Mutex<Vec<(FileStamp, FileStamp)>>,
}

impl FileCerts {
    /// Loads every pair into `resolver` as [`Source::File`]`(i)`, in order (the first is the
    /// default certificate). Fails on the first bad pair.
    pub fn load(pairs: Vec<CertPair>, resolver: Arc<SniResolver>) -> Result<Arc<Self>, CertError> {
        let mut seen = Vec::with_capacity(pairs.len());
        for (i, pair) in pairs.iter().enumerate() {
            let stamps = (stamp(&pair.cert), stamp(&pair.key));
            let loaded = certs::load_pair(pair, SystemTime::now())?;
            log_loaded("loaded", pair, &loaded);
            resolver.set(Source::File(i), loaded);
            seen.push(stamps);
        }
        Ok(Arc::new(Self {
            pairs,
            resolver,
            seen: Mutex::new(seen),
        }))
    }

    pub fn pairs(&self) -> &[CertPair] {
        &self.pairs
    }

    /// Re-reads every pair (SIGHUP).
    pub fn reload(&self) -> ReloadReport {
        self.reload_where(|_, _| true)
    }

    /// Re-reads the pairs whose files changed since they were last read.
    pub fn reload_changed(&self) -> ReloadReport {
        self.reload_where(|old, new| old != new)
    }

    fn reload_where(
        &self,
        pick: impl Fn(&(FileStamp, FileStamp), &(FileStamp, FileStamp)) -> bool,
    ) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut seen = self.seen.lock().unwrap();
        for (i, pair) in self.pairs.iter().enumerate() {
            let now = (stamp(&pair.cert), stamp(&pair.key));
            if !pick(&seen[i], &now) {
                continue;
            }
            seen[i] = now;
            let source = Source::File(i);
            let current = self.resolver.get(&source);
            match certs::load_pair(pair, SystemTime::now()) {
                Ok(loaded) => {
                    let same = current
                        .as_ref()
                        .is_some_and(|c| c.serial == loaded.serial && c.names == loaded.names);
                    if !same {
                        log_loaded("reloaded", pair, &loaded);
                        report
                            .loaded
                            .push((pair.cert.clone(), loaded.serial.clone()));
                    }
                    self.resolver.set(source, loaded);
                }
                Err(e) => {
                    let keeping = current
                        .map(|c| format!("still serving serial {}", c.serial))
                        .unwrap_or_else(|| "no certificate for it".into());
                    tracing::error!("refused the new certificate: {e}; {keeping}");
                    report.refused.push(e);
                }
            }
        }
        report
    }

    /// Starts watching the files (a thread); stops when the returned handle is dropped.
    pub fn watch(self: &Arc<Self>) -> std::io::Result<FileWatch> {
        let (tx, rx) = channel::<()>();
        let events = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
                let _ = events.send(());
            })
            .map_err(|e| {
                tracing::warn!("file watching unavailable, polling certificates only: {e}")
            })
            .ok();
        if let Some(w) = watcher.as_mut() {
            let mut dirs: Vec<PathBuf> = Vec::new();
            for p in &self.pairs {
                for f in [&p.cert, &p.key] {
                    let dir = f
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(Path::new("."))
                        .to_path_buf();
                    if !dirs.contains(&dir) {
                        if let Err(e) = w.watch(&dir, RecursiveMode::NonRecursive) {
                            tracing::warn!("cannot watch {}: {e}; polling it", dir.display());
                        }
                        dirs.push(dir);
                    }
                }
            }
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("staticd-tls-reload".into())
            .spawn(move || loop {
                match rx.recv_timeout(POLL) {
                    Ok(()) => {
                        // Let the burst settle.
                        std::thread::sleep(DEBOUNCE);
                        while rx.try_recv().is_ok() {}
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                me.reload_changed();
            })?;
        Ok(FileWatch {
            _watcher: watcher,
            _stop: tx,
        })
    }
}

fn log_loaded(what: &str, pair: &CertPair, l: &Loaded) {
    tracing::info!(
        "{what} certificate {} for {} (serial {}, expires {})",
        pair.cert.display(),
        l.names.join(", "),
        l.serial,
        httpdate::fmt_http_date(l.not_after)
    );
}

/// Keeps the watching thread alive; dropping it stops the thread.
pub struct FileWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    _stop: Sender<()>,
}

#[cfg(test)]
mod tests {
    use super::super::acme::TlsAlpnChallenges;
    use super::super::certs::testing::self_signed;
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_bad_new_pair_is_refused_and_the_old_certificate_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let a = self_signed(&["a.test"], 2020, 2090);
        let b = self_signed(&["b.test"], 2020, 2090);
        let pair = CertPair {
            cert: write(tmp.path(), "a.crt", &a.cert_pem),
            key: write(tmp.path(), "a.key", &a.key_pem),
        };
        let other = CertPair {
            cert: write(tmp.path(), "b.crt", &b.cert_pem),
            key: write(tmp.path(), "b.key", &b.key_pem),
        };
        let resolver = SniResolver::new(TlsAlpnChallenges::new());
        let files = FileCerts::load(vec![pair.clone(), other], resolver.clone()).unwrap();
        let serial = |r: &SniResolver| r.get(&Source::File(0)).unwrap().serial;
        let first = serial(&resolver);
        assert!(resolver.covers("a.test") && resolver.covers("b.test"));

        // Nothing changed: nothing re-read.
        let r = files.reload_changed();
        assert!(r.loaded.is_empty() && r.refused.is_empty());

        // Garbage: refused, naming the file.
        write(tmp.path(), "a.crt", "garbage\n");
        let r = files.reload_changed();
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].path(), pair.cert);
        assert_eq!(serial(&resolver), first);

        // A certificate whose key is elsewhere (the old key stays): refused.
        let c = self_signed(&["a.test"], 2020, 2090);
        write(tmp.path(), "a.crt", &c.cert_pem);
        let r = files.reload();
        assert!(
            matches!(r.refused[..], [CertError::KeyMismatch { .. }]),
            "{:?}",
            r.refused
        );
        assert_eq!(serial(&resolver), first);

        // The matching key arrives: loaded, and the other pair untouched.
        write(tmp.path(), "a.key", &c.key_pem);
        let r = files.reload_changed();
        assert!(r.refused.is_empty(), "{:?}", r.refused);
        assert_eq!(r.loaded.len(), 1);
        assert_ne!(serial(&resolver), first);
        assert!(resolver.covers("b.test"));
    }

    #[test]
    fn startup_refuses_a_bad_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let a = self_signed(&["a.test"], 2001, 2002);
        let pair = CertPair {
            cert: write(tmp.path(), "a.crt", &a.cert_pem),
            key: write(tmp.path(), "a.key", &a.key_pem),
        };
        let e =
            FileCerts::load(vec![pair], SniResolver::new(TlsAlpnChallenges::new())).unwrap_err();
        assert!(matches!(e, CertError::Expired { .. }), "{e}");
    }
}
