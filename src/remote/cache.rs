//! `--cache s3://bucket/prefix`: the variant cache's second level on the store, shared by every
//! CI runner. Entries are the disk cache's own checksummed bytes under
//! `PREFIX/variants-v1/<2 hex>/<key>` (key = content digest + encoder settings), so a fresh
//! runner compresses only what no runner compressed before.
//!
//! The prefix is listed once, on the first lookup: a key it does not hold is a miss without a
//! request, so a cold cache costs one listing, not a GET per content. Failures only cost
//! compressions: the first is reported (as a warning) and the store is left alone for the
//! rest of the run.
use super::config::PublishConfig;
use super::error::RemoteError;
use super::store::{Headers, Store};
use super::target::Target;
use crate::collect::cache::RemoteLevel;
use object_store::PutMode;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

pub struct RemoteCache {
    store: Store,
    rt: tokio::runtime::Runtime,
    /// Keys present at the first lookup (`None`: the listing failed).
    present: OnceLock<Option<HashSet<String>>>,
    broken: AtomicBool,
}

impl std::fmt::Debug for RemoteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteCache({})", self.store.target)
    }
}

fn rel(key: &str) -> String {
    format!("variants-v1/{}/{key}", &key[..2.min(key.len())])
}

impl RemoteCache {
    pub fn new(url: &str, cfg: &PublishConfig) -> Result<RemoteCache, RemoteError> {
        let store = Store::new(Target::parse(url)?, cfg)?;
        // Several threads (rayon's compressors) call in at once: a runtime of its own, with
        // its own worker so that their `block_on`s do not take turns driving it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Other(format!("cannot start the I/O runtime: {e}")))?;
        Ok(RemoteCache {
            store,
            rt,
            present: OnceLock::new(),
            broken: AtomicBool::new(false),
        })
    }

    fn fail(&self, e: RemoteError) {
        if !self.broken.swap(true, Ordering::Relaxed) {
            tracing::warn!("remote variant cache disabled for this run: {e}");
        }
    }

    fn present(&self) -> Option<&HashSet<String>> {
        self.present
            .get_or_init(|| match self.rt.block_on(self.store.list()) {
                Ok(listing) => Some(listing.into_keys().collect()),
                Err(e) => {
                    self.fail(e);
                    None
                }
            })
            .as_ref()
    }
}

impl RemoteLevel for RemoteCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        if self.broken.load(Ordering::Relaxed) || !self.present()?.contains(&rel(key)) {
            return None;
        }
        match self.rt.block_on(self.store.get(&rel(key))) {
            Ok(found) => found.map(|(bytes, _)| bytes.to_vec()),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let headers = Headers {
            content_type: "application/octet-stream".into(),
            cache_control: "no-cache".into(),
            encoding: None,
        };
        // Overwrite: the same key always means the same bytes, and a damaged entry must go.
        let rel = rel(key);
        let put = self
            .store
            .put(&rel, bytes.to_vec().into(), &headers, PutMode::Overwrite);
        if let Err(e) = self.rt.block_on(put) {
            self.fail(e);
        }
    }
}
