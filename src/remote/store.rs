//! The store: an `object_store` S3 client for one [`Target`], with every error turned into a
//! [`RemoteError`] that names the bucket and key.
//!
//! object_store retries 5xx answers, 429, connection failures and timeouts of idempotent
//! requests with exponential backoff and jitter ([`PublishConfig::retries`],
//! `retry_timeout_secs`); what still fails after that is reported here. Every write carries
//! `x-amz-checksum-sha256` (and the SigV4 payload hash), so the store verifies the bytes it
//! received before it stores them.
use super::config::PublishConfig;
use super::error::{s3_code, s3_summary, RemoteError};
use super::objects::Listed;
use super::target::Target;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum};
use object_store::path::Path as ObjPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore, PutMode,
    PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use std::collections::HashMap;
use std::time::Duration;

pub struct Store {
    s3: AmazonS3,
    pub target: Target,
    /// Where requests go, for messages.
    pub endpoint: String,
}

/// How a conditional write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    Written(UpdateVersion),
    /// `If-None-Match: *` found the key taken (`PutMode::Create`).
    AlreadyExists,
    /// `If-Match` found another version (`PutMode::Update`).
    Changed,
}

/// One object of a listing, as `staticd serve --origin` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub etag: Option<String>,
    /// When the store stored it, seconds since the epoch: the same for every reader.
    pub modified: i64,
}

/// What [`Store::get_if_changed`] found.
#[derive(Debug)]
pub enum Changed {
    NotModified,
    Missing,
    /// The bytes and their ETag.
    Got(Bytes, Option<String>),
}

/// What [`Store::get_stream`] found.
pub enum Fetch {
    Stream(futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>),
    /// Another version is stored under the key now.
    Changed,
    Missing,
}

/// Headers of an object.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pub content_type: String,
    pub cache_control: String,
    pub encoding: Option<&'static str>,
}

impl Headers {
    fn attributes(&self) -> Attributes {
        let mut a = Attributes::new();
        a.insert(Attribute::ContentType, self.content_type.clone().into());
        a.insert(Attribute::CacheControl, self.cache_control.clone().into());
        if let Some(e) = self.encoding {
            a.insert(Attribute::ContentEncoding, e.into());
        }
        a
    }
}

impl Store {
    /// The client for `target`: `[publish]` first, then the process's AWS variables over it.
    pub fn new(target: Target, cfg: &PublishConfig) -> Result<Store, RemoteError> {
        Self::with_env(target, cfg, std::env::vars())
    }

    /// [`Store::new`] with the `AWS_*` variables taken from `env` instead of the process.
    pub fn with_env(
        target: Target,
        cfg: &PublishConfig,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Store, RemoteError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&target.bucket)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: cfg.retries,
                retry_timeout: cfg.retry_timeout(),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            )
            // After the client options, which would reset it.
            .with_allow_http(cfg.allow_http);
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &cfg.region {
            b = b.with_region(r);
        }
        for (k, v) in env {
            if !k.starts_with("AWS_") || v.is_empty() {
                continue;
            }
            if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                // The bucket is the URL's, never the environment's.
                if key != AmazonS3ConfigKey::Bucket {
                    b = b.with_config(key, v);
                }
            }
        }
        let endpoint = b
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .unwrap_or_else(|| {
                let region = b
                    .get_config_value(&AmazonS3ConfigKey::Region)
                    .unwrap_or_else(|| "us-east-1".into());
                format!("https://s3.{region}.amazonaws.com")
            });
        let s3 = b.build().map_err(|e| {
            RemoteError::Other(format!(
                "cannot set up the S3 client for {target}: {}",
                chain(&e)
            ))
        })?;
        Ok(Store {
            s3,
            target,
            endpoint,
        })
    }

    fn path(&self, rel: &str) -> ObjPath {
        // from() keeps the key as given (percent-encoding is object_store's job on the wire).
        ObjPath::from(self.target.key(rel))
    }

    /// Every object under the prefix: rel → size and ETag. One paginated LIST.
    pub async fn list(&self) -> Result<HashMap<String, Listed>, RemoteError> {
        Ok(self
            .list_entries()
            .await?
            .into_iter()
            .map(|(rel, e)| {
                (
                    rel,
                    Listed {
                        size: e.size,
                        etag: e.etag,
                    },
                )
            })
            .collect())
    }

    /// Every object under the prefix with what a server answers with (size, ETag, time
    /// stored). One paginated LIST.
    pub async fn list_entries(&self) -> Result<HashMap<String, Entry>, RemoteError> {
        let prefix =
            (!self.target.prefix.is_empty()).then(|| ObjPath::from(self.target.prefix.as_str()));
        let mut stream = self.s3.list(prefix.as_ref());
        let mut out = HashMap::new();
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| self.error(e, "listing", ""))?;
            if let Some(rel) = self.target.rel(meta.location.as_ref()) {
                out.insert(
                    rel.to_string(),
                    Entry {
                        size: meta.size,
                        etag: meta.e_tag,
                        modified: meta.last_modified.timestamp(),
                    },
                );
            }
        }
        Ok(out)
    }

    /// The object unless its ETag is still `etag` (`If-None-Match`): what a poll of the
    /// manifest sends, so an unchanged manifest costs a 304 and no body.
    pub async fn get_if_changed(
        &self,
        rel: &str,
        etag: Option<&str>,
    ) -> Result<Changed, RemoteError> {
        let opts = GetOptions {
            if_none_match: etag.map(str::to_string),
            ..Default::default()
        };
        match self.s3.get_opts(&self.path(rel), opts).await {
            Ok(r) => {
                let etag = r.meta.e_tag.clone();
                let bytes = r.bytes().await.map_err(|e| self.error(e, "reading", rel))?;
                Ok(Changed::Got(bytes, etag))
            }
            Err(object_store::Error::NotModified { .. }) => Ok(Changed::NotModified),
            Err(object_store::Error::NotFound { .. }) => Ok(Changed::Missing),
            Err(e) => Err(self.error(e, "reading", rel)),
        }
    }

    /// The object's bytes as they arrive, if its ETag is still `etag` (`If-Match`): an
    /// unhashed original replaced since the listing is [`Fetch::Changed`], never bytes
    /// that the listing's ETag would then label wrongly.
    pub async fn get_stream(&self, rel: &str, etag: Option<&str>) -> Result<Fetch, RemoteError> {
        let opts = GetOptions {
            if_match: etag.map(str::to_string),
            ..Default::default()
        };
        match self.s3.get_opts(&self.path(rel), opts).await {
            Ok(r) => Ok(Fetch::Stream(r.into_stream())),
            Err(object_store::Error::Precondition { .. }) => Ok(Fetch::Changed),
            Err(object_store::Error::NotFound { .. }) => Ok(Fetch::Missing),
            Err(e) => Err(self.error(e, "reading", rel)),
        }
    }

    /// The object's bytes and version; `None` when there is none.
    pub async fn get(&self, rel: &str) -> Result<Option<(Bytes, UpdateVersion)>, RemoteError> {
        let path = self.path(rel);
        match self.s3.get_opts(&path, GetOptions::default()).await {
            Ok(r) => {
                let version = UpdateVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r.bytes().await.map_err(|e| self.error(e, "reading", rel))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => {
                // A missing bucket also answers 404: tell them apart with the listing's answer.
                Ok(None)
            }
            Err(e) => Err(self.error(e, "reading", rel)),
        }
    }

    /// One request: `bytes` at `rel` with `headers`, under `mode`.
    pub async fn put(
        &self,
        rel: &str,
        bytes: Bytes,
        headers: &Headers,
        mode: PutMode,
    ) -> Result<Put, RemoteError> {
        let opts = PutOptions {
            mode,
            attributes: headers.attributes(),
            ..Default::default()
        };
        match self
            .s3
            .put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts)
            .await
        {
            Ok(r) => Ok(Put::Written(r.into())),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::AlreadyExists),
            Err(object_store::Error::Precondition { .. }) => Ok(Put::Changed),
            Err(e) => Err(self.error(e, "writing", rel)),
        }
    }

    /// A large file in parts of `part` bytes, read as it is sent (never whole in memory).
    pub async fn put_file_multipart(
        &self,
        rel: &str,
        file: &std::path::Path,
        headers: &Headers,
        part: u64,
    ) -> Result<(), RemoteError> {
        let opts = object_store::PutMultipartOptions {
            attributes: headers.attributes(),
            ..Default::default()
        };
        let up = self
            .s3
            .put_multipart_opts(&self.path(rel), opts)
            .await
            .map_err(|e| self.error(e, "starting a multipart upload of", rel))?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(up, part as usize);
        let local = |source| RemoteError::Local {
            path: file.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::open(file).map_err(local)?;
        let mut buf = vec![0u8; part as usize];
        let result: Result<(), RemoteError> = async {
            loop {
                let n = super::objects::read_full(&mut f, &mut buf).map_err(local)?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(2)
                    .await
                    .map_err(|e| self.error(e, "uploading a part of", rel))?;
                w.write(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => w
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.error(e, "completing the multipart upload of", rel)),
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// Deletes `rels` (batched by object_store's bulk delete).
    pub async fn delete(&self, rels: &[String]) -> Result<usize, RemoteError> {
        let paths: Vec<object_store::Result<ObjPath>> =
            rels.iter().map(|r| Ok(self.path(r))).collect();
        let mut stream = self
            .s3
            .delete_stream(futures_util::stream::iter(paths).boxed());
        let mut n = 0;
        while let Some(r) = stream.next().await {
            match r {
                Ok(_) => n += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error(e, "deleting", "")),
            }
        }
        Ok(n)
    }

    /// A store error as a [`RemoteError`] naming the bucket and key.
    pub fn error(&self, e: object_store::Error, op: &'static str, rel: &str) -> RemoteError {
        let bucket = self.target.bucket.clone();
        let key = if rel.is_empty() {
            format!("{}/", self.target.prefix)
        } else {
            self.target.key(rel)
        };
        let full = chain(&e);
        let code = s3_code(&full).map(str::to_string);
        // The store's own words when it gave some; the whole chain otherwise.
        let detail = s3_summary(&full).unwrap_or(full);
        match code.as_deref() {
            Some(
                "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "InvalidToken" | "ExpiredToken",
            ) => {
                return RemoteError::Credentials {
                    bucket,
                    key,
                    op,
                    detail,
                }
            }
            Some("NoSuchBucket") => {
                return RemoteError::NoSuchBucket {
                    bucket,
                    key,
                    op,
                    endpoint: self.endpoint.clone(),
                }
            }
            Some("AccessDenied" | "AllAccessDisabled") => {
                return RemoteError::Denied {
                    bucket,
                    key,
                    op,
                    detail,
                }
            }
            _ => {}
        }
        match e {
            object_store::Error::Unauthenticated { .. } => RemoteError::Credentials {
                bucket,
                key,
                op,
                detail,
            },
            object_store::Error::PermissionDenied { .. } => RemoteError::Denied {
                bucket,
                key,
                op,
                detail,
            },
            _ => RemoteError::Store {
                bucket,
                key,
                op,
                detail,
            },
        }
    }
}

/// An error and its sources, one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}

/// The runtime the store's futures run on: one thread is enough, the requests are I/O.
pub fn runtime() -> Result<tokio::runtime::Runtime, RemoteError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RemoteError::Other(format!("cannot start the I/O runtime: {e}")))
}
