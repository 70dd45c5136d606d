//! `staticd prune --remote`: deletes the hashed objects (and their variants and deltas) that only
//! generations older than the last N named, as `staticd prune` does in STATIC_ROOT. Objects
//! the current manifest names, unhashed originals and anything staticd did not record are
//! never deleted.
//!
//! The trimmed record is written (conditionally) before anything is deleted, so a prune that
//! fails half-way leaves objects no record names rather than a record naming deleted ones.
//! Run it after the publish, not beside one: a publish that listed an old object just before
//! this prune deleted it would name a missing object.
use super::config::PublishConfig;
use super::error::RemoteError;
use super::record;
use super::store::Store;
use super::target::Target;
use crate::collect::report::Log;
use crate::collect::Pruned;
use crate::manifest::Manifest;
use std::collections::BTreeSet;

pub fn prune(
    target: Target,
    cfg: &PublishConfig,
    keep: usize,
    dry_run: bool,
    log: &Log,
) -> Result<Pruned, RemoteError> {
    let store = Store::new(target, cfg)?;
    super::store::runtime()?.block_on(async {
        let (rec, version) = record::load(&store).await?;
        let manifest_name = if rec.manifest.is_empty() {
            crate::manifest::DEFAULT_NAME.to_string()
        } else {
            rec.manifest.clone()
        };
        let current: BTreeSet<String> = match store.get(&manifest_name).await? {
            Some((bytes, _)) => Manifest::parse(&bytes, &store.target.url(&manifest_name))
                .map_err(|e| RemoteError::Corrupt {
                    bucket: store.target.bucket.clone(),
                    key: store.target.key(&manifest_name),
                    detail: e.to_string(),
                })?
                .paths
                .into_values()
                .collect(),
            None => BTreeSet::new(),
        };
        let (doomed, kept) = rec.history.plan_prune(keep, &current);
        let listing = store.list().await?;
        // A hashed name's deltas go with it (as in STATIC_ROOT, `generations::with_deltas`).
        let targets: BTreeSet<&str> = doomed.iter().map(String::as_str).collect();
        let deltas =
            crate::delta::deltas_of(listing.keys().map(String::as_str), |t| targets.contains(t));
        let mut doomed: Vec<String> = doomed
            .iter()
            .filter(|r| listing.contains_key(*r))
            .cloned()
            .chain(deltas.into_iter().map(|(rel, _, _)| rel.to_string()))
            .collect();
        doomed.sort();
        doomed.dedup();
        let mut pruned = Pruned {
            files: doomed.len(),
            bytes: doomed.iter().map(|r| listing[r].size).sum(),
            kept_generations: kept.generations.len(),
        };
        for r in &doomed {
            let verb = if dry_run {
                "Pretending to delete"
            } else {
                "Deleting"
            };
            log.line(
                if dry_run { 1 } else { 2 },
                format!("{verb} '{}'", store.target.url(r)),
            );
        }
        if dry_run {
            return Ok(pruned);
        }
        let trimmed = record::Record {
            manifest: manifest_name,
            history: kept,
        };
        if rec.history.generations.len() != trimmed.history.generations.len()
            && !record::save(&store, &trimmed, version).await?
        {
            return Err(RemoteError::Conflict {
                bucket: store.target.bucket.clone(),
                key: store.target.key(record::NAME),
            });
        }
        pruned.files = store.delete(&doomed).await?;
        Ok(pruned)
    })
}
