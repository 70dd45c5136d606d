//! Objects fetched from the store on first request (`staticd serve --origin`), into the
//! [`ObjectCache`].
//!
//! One download per object however many requests want it at once (single flight): the
//! first request starts it, the others wait for the same result. Downloads run on the
//! origin's own runtime, so a slow store never holds an HTTP worker's event loop, and are
//! bounded in time ([`DEADLINE`]): a request for an object not cached while the store is
//! unreachable gets an error answer, never a hang.
//!
//! A download is written to a temporary file, checked (the size the listing gave, and the
//! MD5 when the store's ETag is one; `If-Match` with the listing's ETag makes sure these
//! are the bytes the listing described), then renamed into place.
use super::object_cache::{name_of, ObjectCache};
use super::store::{Fetch, Store};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a download may take, retries included, before its requests get 504.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// One object to fetch: its key under the prefix and what the listing said of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub key: String,
    pub size: u64,
    /// The store's ETag (quoted or not), `None` when the store gave none.
    pub etag: Option<String>,
    /// [`super::object_cache::identity`] of the object: its cache name.
    pub id: [u8; 32],
}

/// Why an object could not be had. `Clone`: every request waiting on one download gets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The store could not be reached or answered an error (after the retries).
    #[error("{0}")]
    Store(String),
    #[error("fetching s3://{bucket}/{key} took longer than {secs} s", secs = DEADLINE.as_secs())]
    TimedOut { bucket: String, key: String },
    /// The key holds another version than the listing said (a new generation replaced an
    /// unhashed original): the table is out of date.
    #[error("s3://{bucket}/{key} changed since it was listed")]
    Changed { bucket: String, key: String },
    /// Listed, but gone since (pruned).
    #[error("s3://{bucket}/{key} is listed but no longer stored")]
    Missing { bucket: String, key: String },
    /// The bytes received do not match the listing.
    #[error("s3://{bucket}/{key}: {detail}")]
    Corrupt {
        bucket: String,
        key: String,
        detail: String,
    },
    /// The cache directory.
    #[error("{0}")]
    Local(String),
}

/// Pure: do `size` bytes with MD5 `md5_hex` match what the listing said? The MD5 is
/// compared only when the store's ETag is a plain MD5 (one-request uploads); a multipart
/// or opaque ETag leaves the size (and `If-Match`'s guarantee of the version).
pub fn verify(w: &Wanted, size: u64, md5_hex: &str) -> Result<(), String> {
    if size != w.size {
        return Err(format!("received {size} bytes, listed as {}", w.size));
    }
    if let Some(e) = w.etag.as_deref().map(|e| e.trim_matches('"')) {
        let md5 = e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit());
        if md5 && !e.eq_ignore_ascii_case(md5_hex) {
            return Err(format!("received bytes with MD5 {md5_hex}, listed as {e}"));
        }
    }
    Ok(())
}

type Flight = Shared<BoxFuture<'static, Result<Arc<File>, FetchError>>>;

/// The store, the cache, and the downloads in progress.
pub struct Fetcher {
    store: Arc<Store>,
    cache: ObjectCache,
    rt: tokio::runtime::Handle,
    flights: Mutex<HashMap<String, Flight>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Fetcher({}, {})",
            self.store.target,
            self.cache.dir().display()
        )
    }
}

impl Fetcher {
    /// Downloads run on `rt` (the origin's runtime).
    pub fn new(store: Arc<Store>, cache: ObjectCache, rt: tokio::runtime::Handle) -> Fetcher {
        Fetcher {
            store,
            cache,
            rt,
            flights: Mutex::new(HashMap::new()),
        }
    }

    pub fn cache(&self) -> &ObjectCache {
        &self.cache
    }

    /// The object's bytes as an open file: from the cache, else downloaded (once, however
    /// many callers ask meanwhile). Callable from any runtime.
    pub async fn file(self: &Arc<Self>, w: &Wanted) -> Result<File, FetchError> {
        let name = name_of(&w.id);
        if let Some(f) = self.cache.get(&name) {
            return Ok(f);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights
                .entry(name.clone())
                .or_insert_with(|| {
                    let me = self.clone();
                    let w = w.clone();
                    let task = self.rt.spawn(async move {
                        let r = match tokio::time::timeout(DEADLINE, me.download(&w)).await {
                            Ok(r) => r,
                            Err(_) => Err(FetchError::TimedOut {
                                bucket: me.store.target.bucket.clone(),
                                key: me.store.target.key(&w.key),
                            }),
                        };
                        me.flights
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&name_of(&w.id));
                        r
                    });
                    async move {
                        task.await
                            .unwrap_or_else(|e| Err(FetchError::Local(format!("download: {e}"))))
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        let f = flight.await?;
        f.try_clone()
            .map_err(|e| FetchError::Local(format!("cannot reopen a cached object: {e}")))
    }

    async fn download(&self, w: &Wanted) -> Result<Arc<File>, FetchError> {
        let name = name_of(&w.id);
        // A download that ended just before this one was asked for.
        if let Some(f) = self.cache.get(&name) {
            return Ok(Arc::new(f));
        }
        let keep = self.cache.reserve(w.size);
        let tmp = self.cache.temp_path(&name);
        let local = |e: std::io::Error| FetchError::Local(format!("{}: {e}", tmp.display()));
        let written = self.write_verified(w, &tmp).await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            if keep {
                self.cache.release(w.size);
            }
            return Err(e);
        }
        // Once per object and replica while it stays cached: worth a line.
        tracing::info!(
            "fetched s3://{}/{}: {} bytes{}",
            self.store.target.bucket,
            self.store.target.key(&w.key),
            w.size,
            if keep {
                ""
            } else {
                ", larger than the cache: not kept"
            }
        );
        if keep {
            return self
                .cache
                .commit(&name, &tmp, w.size)
                .map(Arc::new)
                .map_err(local);
        }
        // Larger than the whole cache: served from an unlinked file, never kept.
        let f = File::open(&tmp).map_err(local)?;
        let _ = std::fs::remove_file(&tmp);
        Ok(Arc::new(f))
    }

    async fn write_verified(&self, w: &Wanted, tmp: &Path) -> Result<(), FetchError> {
        let bucket = || self.store.target.bucket.clone();
        let key = || self.store.target.key(&w.key);
        let stream = match self.store.get_stream(&w.key, w.etag.as_deref()).await {
            Ok(Fetch::Stream(s)) => s,
            Ok(Fetch::Changed) => {
                return Err(FetchError::Changed {
                    bucket: bucket(),
                    key: key(),
                })
            }
            Ok(Fetch::Missing) => {
                return Err(FetchError::Missing {
                    bucket: bucket(),
                    key: key(),
                })
            }
            Err(e) => return Err(FetchError::Store(e.to_string())),
        };
        let local = |e: std::io::Error| FetchError::Local(format!("{}: {e}", tmp.display()));
        let mut file = File::create(tmp).map_err(local)?;
        let mut md5 = Md5::new();
        let mut size = 0u64;
        let mut stream = stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                FetchError::Store(self.store.error(e, "reading", &w.key).to_string())
            })?;
            if size + chunk.len() as u64 > w.size {
                return Err(FetchError::Corrupt {
                    bucket: bucket(),
                    key: key(),
                    detail: format!("more than the {} bytes listed", w.size),
                });
            }
            file.write_all(&chunk).map_err(local)?;
            md5.update(&chunk);
            size += chunk.len() as u64;
        }
        let hex: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
        verify(w, size, &hex).map_err(|detail| FetchError::Corrupt {
            bucket: bucket(),
            key: key(),
            detail,
        })?;
        // On disk before the name promises the whole object (a crash after the rename
        // must not leave a short file under it).
        file.sync_data().map_err(local)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_size_and_md5() {
        let md5 = "6f5902ac237024bdd0c176cb93063dc4";
        let w = |etag: Option<&str>| Wanted {
            key: "a.css".into(),
            size: 12,
            etag: etag.map(String::from),
            id: [0; 32],
        };
        assert_eq!(verify(&w(Some(&format!("\"{md5}\""))), 12, md5), Ok(()));
        assert!(verify(&w(Some(md5)), 11, md5)
            .unwrap_err()
            .contains("11 bytes"));
        let other = "00000000000000000000000000000000";
        assert!(verify(&w(Some(other)), 12, md5)
            .unwrap_err()
            .contains("listed as 0000"));
        // A multipart or opaque ETag is no MD5 of the bytes: the size decides.
        assert_eq!(verify(&w(Some(&format!("{other}-3"))), 12, md5), Ok(()));
        assert_eq!(verify(&w(Some("opaque")), 12, md5), Ok(()));
        assert_eq!(verify(&w(None), 12, md5), Ok(()));
    }
}
