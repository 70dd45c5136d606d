//! `staticd serve --origin s3://bucket/prefix`: replicas that share nothing but the store.
//!
//! At startup the published manifest is read and the prefix listed once ([`table`] makes
//! the URL table from those two); a store that cannot be reached, or holds no manifest,
//! stops staticd with an error naming the bucket and key. Then the manifest is polled every
//! `--origin-poll` with `If-None-Match` (an unchanged generation costs one 304); a new one
//! is listed and its table swapped in whole, as `reload` swaps a new STATIC_ROOT. A poll that
//! fails keeps the table already loaded, logs, and tries again later, backing off
//! ([`next_delay`]).
//!
//! Objects are fetched on first request into the disk cache (`remote::fetch`,
//! `remote::object_cache`) and answered from there like local files. Everything the answer
//! says comes from the listing, so replicas send identical bytes, ETags, Last-Modified and
//! Cache-Control.
//!
//! During a switch: names of older generations stay in the listing while the store keeps
//! them (as old hashed files stay in STATIC_ROOT), so a page rendered against the previous
//! manifest keeps working; a name this replica has not listed yet (a page rendered by a web
//! server that read the new manifest first) makes it poll at once and look again
//! ([`Origin::refresh`]), rather than answer 404 until the next poll. Such forced polls are
//! one per [`MISS_INTERVAL`] at most, however many names are missing: a flood of requests
//! for names that do not exist costs the store one conditional GET a second.
//!
//! Downloads and polls run on a runtime of their own (two threads), never on the HTTP
//! workers' event loops.
//!
//! Two S3 dialects are tested (tests/serve_origin.rs): SeaweedFS and moto's server. Neither
//! needs a case of its own here, because this module relies only on what both do: an ETag
//! per object, the same in the listing and on GET (so it labels the bytes `If-Match`
//! fetches), `304` to `If-None-Match` with the manifest's ETag (quoted as the store gave it),
//! `412` to a GET whose `If-Match` names another version, and a LastModified in the listing.
//! Where they differ, the difference is absorbed: moto's listing gives LastModified with
//! `.000Z` milliseconds, which is cut to the whole seconds HTTP dates have; and an ETag that
//! is not a plain MD5 (multipart `…-N`, or a store's opaque one) leaves the fetch's check
//! to the size and `If-Match` (`remote::fetch::verify`). A store that gives no ETag at all
//! still works: the identity is then the key and the time stored (`table::object_id`).
pub mod table;

use crate::manifest::Manifest;
use crate::remote::fetch::Fetcher;
use crate::remote::object_cache::ObjectCache;
use crate::remote::store::{Changed, Entry, Store};
use crate::remote::{PublishConfig, RemoteError, Target};
use crate::serve::table::{BuildOptions, Table};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Forced polls (a name not in the table) at most this often.
pub const MISS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a request for a name not in the table waits for the forced poll.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// The longest pause between polls while the store fails.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Pure: the pause before the next poll after `failures` failed polls in a row: the
/// interval, doubled per failure, up to [`MAX_BACKOFF`] (or the interval, if longer).
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    let cap = MAX_BACKOFF.max(interval);
    interval
        .checked_mul(1u32 << failures.min(16))
        .map_or(cap, |d| d.min(cap))
}

/// What `--origin` and its options say.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Target,
    /// `[publish]` of staticd.toml (endpoint, region, …); the AWS variables go over it.
    pub store: PublishConfig,
    pub poll: Duration,
    pub cache_dir: PathBuf,
    pub cache_max: u64,
}

/// The origin of one server: the store, the fetcher, the poll's state.
pub struct Origin {
    pub fetcher: Arc<Fetcher>,
    store: Arc<Store>,
    rt: tokio::runtime::Handle,
    interval: Duration,
    kick: tokio::sync::Notify,
    /// Forced polls asked for (numbered from 1).
    kicks: AtomicU64,
    /// The highest kick number a finished poll started after.
    covered: tokio::sync::watch::Sender<u64>,
    /// When the last forced poll was asked for, and its number.
    forced: Mutex<Option<(Instant, u64)>>,
    /// The manifest's ETag at startup, for the poller's first `If-None-Match`.
    first_etag: Mutex<Option<String>>,
    /// The next poll lists the prefix even if the manifest did not change.
    relist: std::sync::atomic::AtomicBool,
}

/// A generation as read from the store.
struct Generation {
    manifest: Manifest,
    listing: HashMap<String, Entry>,
    etag: Option<String>,
}

/// The manifest unless it still has `etag`, and the listing that goes with it.
async fn load(
    store: &Store,
    manifest_name: &str,
    etag: Option<&str>,
) -> Result<Option<Generation>, RemoteError> {
    let (bytes, etag) = match store.get_if_changed(manifest_name, etag).await? {
        Changed::NotModified => return Ok(None),
        Changed::Missing => {
            return Err(RemoteError::Other(format!(
                "no manifest at s3://{}/{}: publish a generation there first (staticd publish)",
                store.target.bucket,
                store.target.key(manifest_name)
            )))
        }
        Changed::Got(bytes, etag) => (bytes, etag),
    };
    let key = format!(
        "s3://{}/{}",
        store.target.bucket,
        store.target.key(manifest_name)
    );
    let manifest = Manifest::parse(&bytes, &key).map_err(|e| RemoteError::Corrupt {
        bucket: store.target.bucket.clone(),
        key: store.target.key(manifest_name),
        detail: e.to_string(),
    })?;
    let listing = store.list_entries().await?;
    Ok(Some(Generation {
        manifest,
        listing,
        etag,
    }))
}

impl Origin {
    /// Connects, reads the manifest, lists the prefix: the origin and its first table.
    /// Also what stops staticd when the store cannot be reached.
    pub fn start(s: &Settings, opts: &BuildOptions) -> anyhow::Result<(Arc<Origin>, Table)> {
        let rt = runtime()?;
        // A server must not wait minutes on a store that is down: fewer, shorter retries
        // than a publish (which has nothing better to do than wait).
        let cfg = PublishConfig {
            retries: s.store.retries.min(4),
            retry_timeout_secs: s.store.retry_timeout_secs.min(15),
            ..s.store.clone()
        };
        let store = Arc::new(Store::new(s.target.clone(), &cfg)?);
        let cache = ObjectCache::open(&s.cache_dir, s.cache_max)?;
        tracing::info!(
            "origin {}: cache {} ({} KiB held, at most {} KiB)",
            s.target,
            s.cache_dir.display(),
            cache.total() / 1024,
            s.cache_max / 1024
        );
        let g = rt
            .block_on(load(&store, &opts.manifest_name, None))?
            .ok_or_else(|| anyhow::anyhow!("the store answered 304 to an unconditional GET"))?;
        let t = table::build(&g.manifest, &g.listing, opts);
        tracing::info!(
            "loaded {}: {} URLs ({} manifest entries) from {} objects listed",
            s.target,
            t.assets.len(),
            t.manifest_entries,
            g.listing.len()
        );
        let origin = Arc::new(Origin {
            fetcher: Arc::new(Fetcher::new(store.clone(), cache, rt.clone())),
            store,
            rt,
            interval: s.poll,
            kick: tokio::sync::Notify::new(),
            kicks: AtomicU64::new(0),
            covered: tokio::sync::watch::Sender::new(0),
            forced: Mutex::new(None),
            first_etag: Mutex::new(g.etag),
            relist: std::sync::atomic::AtomicBool::new(false),
        });
        Ok((origin, t))
    }

    /// Starts polling: each new generation's table goes into `slot`, built with the
    /// options `opts` holds then (a configuration reload may replace them; that rebuilds
    /// at the next poll).
    pub fn spawn_poller<S: AsRef<ArcSwap<Table>> + Send + Sync + 'static>(
        self: &Arc<Self>,
        slot: Arc<S>,
        opts: Arc<ArcSwap<BuildOptions>>,
    ) {
        let me = self.clone();
        let etag = self
            .first_etag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.rt
            .spawn(async move { me.poll_loop(slot, opts, etag).await });
    }

    async fn poll_loop<S: AsRef<ArcSwap<Table>>>(
        self: Arc<Self>,
        slot: Arc<S>,
        shared: Arc<ArcSwap<BuildOptions>>,
        mut etag: Option<String>,
    ) {
        let mut failures = 0u32;
        let mut built_with = shared.load_full();
        loop {
            let delay = next_delay(self.interval, failures);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.kick.notified() => {}
            }
            let kick = self.kicks.load(Ordering::SeqCst);
            let opts = shared.load_full();
            // New options (SIGHUP), or an object that changed under its key: rebuild even
            // if the manifest did not change.
            let relist = self.relist.swap(false, Ordering::SeqCst);
            let since = if Arc::ptr_eq(&opts, &built_with) && !relist {
                etag.as_deref()
            } else {
                None
            };
            match load(&self.store, &opts.manifest_name, since).await {
                Ok(None) => failures = 0,
                Ok(Some(g)) => {
                    let started = Instant::now();
                    let t = table::build(&g.manifest, &g.listing, &opts);
                    let n = t.assets.len();
                    (*slot).as_ref().store(Arc::new(t));
                    super::metrics::table_built("static", true, true);
                    tracing::info!(
                        "reloaded {}: {n} URLs from {} objects listed, {:?}",
                        self.store.target,
                        g.listing.len(),
                        started.elapsed()
                    );
                    etag = g.etag;
                    built_with = opts;
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    super::metrics::table_built("static", true, false);
                    tracing::warn!(
                        "polling {} failed ({failures} in a row), serving the generation \
                         already loaded; next try in {:?}: {e}",
                        self.store.target,
                        next_delay(self.interval, failures)
                    );
                }
            }
            self.covered.send_modify(|c| *c = (*c).max(kick));
        }
    }

    /// Polls now (a request found no such name): waits, bounded, for a poll that started
    /// after this call. Within [`MISS_INTERVAL`] of the last forced poll, waits for that
    /// one instead of asking for another.
    pub async fn refresh(&self) {
        let want = {
            let mut forced = self.forced.lock().unwrap_or_else(|e| e.into_inner());
            match *forced {
                Some((at, n)) if at.elapsed() < MISS_INTERVAL => n,
                _ => {
                    let n = self.kicks.fetch_add(1, Ordering::SeqCst) + 1;
                    *forced = Some((Instant::now(), n));
                    self.kick.notify_one();
                    n
                }
            }
        };
        let mut rx = self.covered.subscribe();
        let _ = tokio::time::timeout(REFRESH_WAIT, rx.wait_for(|c| *c >= want)).await;
    }

    /// Asks for a poll soon.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Asks for a poll that lists the prefix again whatever the manifest says: an object
    /// changed under its key since the listing (an unhashed original written by a publish
    /// that has not written its manifest yet, or that died before it could). The original
    /// is then answered with its new bytes, as from a local root.
    pub fn relist(&self) {
        self.relist.store(true, Ordering::SeqCst);
        self.kick.notify_one();
    }
}

/// The origin's runtime: two threads for downloads and polls, kept for the process's life.
fn runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("staticd-origin")
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("staticd-origin".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_while_the_store_fails() {
        let s = Duration::from_secs;
        assert_eq!(next_delay(s(10), 0), s(10));
        assert_eq!(next_delay(s(10), 1), s(20));
        assert_eq!(next_delay(s(10), 3), s(80));
        assert_eq!(next_delay(s(10), 10), s(300));
        assert_eq!(next_delay(s(10), 1000), s(300));
        assert_eq!(next_delay(s(600), 2), s(600), "never below the interval");
    }
}
