//! `staticd publish`: the current generation of STATIC_ROOT to the store, manifest last.
//!
//! 1. Read the published manifest (and its version), then list the prefix once.
//! 2. Upload what the listing lacks or holds with other bytes, `jobs` at a time; large files
//!    in parts. Nothing the old manifest names is ever overwritten: those are fingerprinted
//!    names with the same bytes, or unhashed originals.
//! 3. Write the manifest with `If-Match` the version read in step 1 (`If-None-Match: *` when
//!    there was none): only now does Django see the new generation, and every object it
//!    names is already there. If another publish wrote the manifest in between, this one
//!    stops with [`RemoteError::Conflict`] and the winner's manifest stays, whole.
//! 4. Add the generation to the record beside the manifest.
//!
//! A publish that fails anywhere before step 3 leaves the previous manifest, and everything
//! it names, as it was; running it again sends only what is still missing.
use super::config::PublishConfig;
use super::error::RemoteError;
use super::objects::{self, Action, LocalObject};
use super::record;
use super::store::{Headers, Put, Store};
use super::target::Target;
use crate::collect::report::Log;
use futures_util::{StreamExt, TryStreamExt};
use object_store::PutMode;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What one publish did; `--format json` prints it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishSummary {
    pub target: String,
    /// Objects of this generation (hashed files, originals, variants).
    pub objects: usize,
    /// Objects sent this time.
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Already in the store with the same bytes.
    pub unchanged: usize,
    /// Listed with other bytes and sent again (an original that changed, a damaged object).
    pub replaced: usize,
    /// Written by a concurrent publish between the listing and this one's write.
    pub raced: usize,
    /// `written`, `unchanged` or `none` (a storage without a manifest).
    pub manifest: &'static str,
    /// The generation's id in the record beside the manifest.
    pub generation: Option<u64>,
    pub duration_ms: u128,
}

/// Where and how.
pub struct PublishOptions {
    pub target: Target,
    pub config: PublishConfig,
    /// A progress bar on a terminal.
    pub progress: bool,
}

/// Publishes STATIC_ROOT `root` (whose manifest is `manifest_name`, required when
/// `manifest_storage`).
pub fn publish(
    root: &Path,
    manifest_name: &str,
    manifest_storage: bool,
    opts: &PublishOptions,
    log: &Log,
) -> Result<PublishSummary, RemoteError> {
    let started = std::time::Instant::now();
    let cfg = &opts.config;
    let sel = objects::select(
        root,
        manifest_name,
        manifest_storage,
        cfg.max_age,
        cfg.multipart_threshold(),
        cfg.part_size(),
    )?;
    let store = Store::new(opts.target.clone(), cfg)?;
    let rt = super::store::runtime()?;
    let mut summary = rt.block_on(run(&store, manifest_name, sel, opts, log))?;
    summary.duration_ms = started.elapsed().as_millis();
    Ok(summary)
}

async fn run(
    store: &Store,
    manifest_name: &str,
    sel: objects::Selection,
    opts: &PublishOptions,
    log: &Log,
) -> Result<PublishSummary, RemoteError> {
    let cfg = &opts.config;
    let mut summary = PublishSummary {
        target: store.target.to_string(),
        objects: sel.objects.len(),
        ..Default::default()
    };
    // Read before listing: the version the manifest write will be conditional on.
    let before = match &sel.manifest {
        Some(_) => store.get(manifest_name).await?,
        None => None,
    };
    let listing = store.list().await?;
    let mut todo: Vec<(&LocalObject, Action)> = Vec::new();
    for o in &sel.objects {
        match objects::decide(o, listing.get(&o.rel)) {
            Action::Skip => summary.unchanged += 1,
            a => todo.push((o, a)),
        }
    }
    summary.replaced = todo.iter().filter(|t| t.1 == Action::Overwrite).count();
    // Fingerprinted names first, unhashed originals last: the originals are the only objects
    // that change under a name, so the time they are newer than the manifest stays short.
    todo.sort_by_key(|(o, _)| !o.immutable);
    log.line(
        2,
        format!(
            "{}: {} objects listed; {} of {} to send",
            store.target,
            listing.len(),
            todo.len(),
            sel.objects.len()
        ),
    );

    let bar = crate::collect::report::Progress::new(opts.progress);
    bar.stage("uploading", todo.len());
    let uploaded = AtomicUsize::new(0);
    let raced = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    // The first failure ends the run (the uploads in flight are dropped): a store that went
    // away fails the publish once, not once per object left.
    let result: Result<(), RemoteError> = futures_util::stream::iter(todo.iter())
        .map(|(o, action)| {
            let (uploaded, raced, bytes, bar) = (&uploaded, &raced, &bytes, &bar);
            async move {
                let headers = Headers {
                    content_type: o.content_type.clone(),
                    cache_control: o.cache_control.clone(),
                    encoding: o.encoding,
                };
                if o.size > cfg.multipart_threshold() {
                    store
                        .put_file_multipart(&o.rel, &o.abs, &headers, cfg.part_size())
                        .await?;
                } else {
                    let data = std::fs::read(&o.abs).map_err(|source| RemoteError::Local {
                        path: o.abs.clone(),
                        source,
                    })?;
                    if data.len() as u64 != o.size {
                        return Err(RemoteError::Other(format!(
                            "{} changed while being published; run again",
                            o.abs.display()
                        )));
                    }
                    let mode = match action {
                        Action::Create => PutMode::Create,
                        _ => PutMode::Overwrite,
                    };
                    if store.put(&o.rel, data.into(), &headers, mode).await? == Put::AlreadyExists {
                        // Another publish wrote this content-addressed key since the listing.
                        raced.fetch_add(1, Ordering::Relaxed);
                        bar.inc();
                        return Ok(());
                    }
                }
                uploaded.fetch_add(1, Ordering::Relaxed);
                bytes.fetch_add(o.size, Ordering::Relaxed);
                log.line(2, format!("Uploaded '{}'", o.rel));
                bar.inc();
                Ok(())
            }
        })
        .buffer_unordered(cfg.jobs)
        .try_collect()
        .await;
    bar.finish();
    summary.uploaded = uploaded.into_inner();
    summary.raced = raced.into_inner();
    summary.uploaded_bytes = bytes.into_inner();
    // The manifest is not written.
    result?;

    let Some((manifest, bytes)) = &sel.manifest else {
        summary.manifest = "none";
        return Ok(summary);
    };
    match &before {
        Some((old, _)) if old.as_ref() == bytes.as_slice() => summary.manifest = "unchanged",
        _ => {
            let mode = match &before {
                Some((_, v)) => PutMode::Update(v.clone()),
                None => PutMode::Create,
            };
            let headers = record::json_headers();
            match store
                .put(manifest_name, bytes.clone().into(), &headers, mode)
                .await?
            {
                Put::Written(_) => summary.manifest = "written",
                Put::AlreadyExists | Put::Changed => {
                    return Err(RemoteError::Conflict {
                        bucket: store.target.bucket.clone(),
                        key: store.target.key(manifest_name),
                    })
                }
            }
        }
    }
    let files = manifest.paths.values().cloned().collect();
    summary.generation = Some(record::add(store, manifest_name, &manifest.hash, files).await?);
    Ok(summary)
}

/// Reads a `[publish]` config and a target into options (the CLI's glue).
pub fn options(url: &str, project: &Path, progress: bool) -> Result<PublishOptions, RemoteError> {
    Ok(PublishOptions {
        target: Target::parse(url)?,
        config: PublishConfig::load(project)?,
        progress,
    })
}
