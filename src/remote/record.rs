//! The generation record kept beside the published manifest (`.staticd-generations.json`
//! under the prefix): which hashed names each publish named, so `prune --remote` deletes only
//! what no kept generation names. The same record as STATIC_ROOT's
//! ([`crate::collect::generations::History`]), plus the manifest's name.
use super::error::RemoteError;
use super::store::{Headers, Put, Store};
use crate::collect::generations::History;
use object_store::{PutMode, UpdateVersion};
use serde::{Deserialize, Serialize};

/// The record's name under the prefix. Fixed, so `prune --remote` needs no project.
pub const NAME: &str = ".staticd-generations.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The manifest's name under the prefix (`staticfiles.json` unless the storage says else).
    pub manifest: String,
    #[serde(flatten)]
    pub history: History,
}

/// Headers of staticd's own small JSON objects: read through the S3 API, never cached.
pub fn json_headers() -> Headers {
    Headers {
        content_type: "application/json".into(),
        cache_control: "no-cache".into(),
        encoding: None,
    }
}

/// The record and its version (`None` when there is none yet).
pub async fn load(store: &Store) -> Result<(Record, Option<UpdateVersion>), RemoteError> {
    match store.get(NAME).await? {
        None => Ok((Record::default(), None)),
        Some((bytes, v)) => {
            let r = serde_json::from_slice(&bytes).map_err(|e| RemoteError::Corrupt {
                bucket: store.target.bucket.clone(),
                key: store.target.key(NAME),
                detail: format!("not a generation record: {e}"),
            })?;
            Ok((r, Some(v)))
        }
    }
}

/// Writes `record` if the stored one is still `version`; `false` when it changed meanwhile.
pub async fn save(
    store: &Store,
    record: &Record,
    version: Option<UpdateVersion>,
) -> Result<bool, RemoteError> {
    let bytes = serde_json::to_vec(record).map_err(|e| RemoteError::Other(e.to_string()))?;
    let mode = version.map_or(PutMode::Create, PutMode::Update);
    Ok(matches!(
        store.put(NAME, bytes.into(), &json_headers(), mode).await?,
        Put::Written(_)
    ))
}

/// Adds a generation (unless the last one is this manifest already), retrying when another
/// writer got in between: read, add, conditional write.
pub async fn add(
    store: &Store,
    manifest_name: &str,
    manifest_hash: &str,
    files: Vec<String>,
) -> Result<u64, RemoteError> {
    for _ in 0..8 {
        let (mut r, version) = load(store).await?;
        let last = r
            .history
            .generations
            .last()
            .map(|g| g.manifest_hash.clone());
        if last.as_deref() == Some(manifest_hash) {
            return Ok(r.history.generations.last().map_or(0, |g| g.id));
        }
        r.manifest = manifest_name.to_string();
        r.history.record(manifest_hash, files.clone());
        let id = r.history.generations.last().map_or(0, |g| g.id);
        if save(store, &r, version).await? {
            return Ok(id);
        }
    }
    Err(RemoteError::Conflict {
        bucket: store.target.bucket.clone(),
        key: store.target.key(NAME),
    })
}
