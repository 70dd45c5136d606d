//! `staticd collect`: plan → fingerprint → rewrite → compress → publish.
//!
//! Every stage is pure or parallel: sources are walked per finder location, read and hashed
//! on rayon, CSS/JS rewritten level by level of the reference graph, each distinct content
//! compressed once, and the result published as one atomic swap of STATIC_ROOT. The stages
//! ([`run`]) work on one record per file ([`entry::Entry`]); [`collect`] is their sequence.
pub mod bundler;
pub mod cache;
pub mod compress;
pub mod deltas;
pub mod entry;
pub mod error;
pub mod generations;
pub mod google_brotli;
pub mod graph;
pub mod ignore;
pub mod missing;
pub mod naming;
pub mod parity;
pub mod plan;
pub mod process;
pub mod publish;
pub mod report;
pub mod rewrite;
pub mod run;
pub mod schedule;
pub mod state;
pub mod variants;
pub mod watch;
pub mod write;

use crate::django::Discovery;
use crate::manifest::Manifest;
use anyhow::{Context, Result};
pub use error::Error;
use naming::HashAlgo;
use report::{Log, Summary};
use run::Run;
use std::sync::Arc;

/// collectstatic's flags plus staticd's own.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub clear: bool,
    pub dry_run: bool,
    pub no_post_process: bool,
    pub link: bool,
    pub verbosity: u8,
    pub hash: HashAlgo,
    /// Force ES-module import rewriting on even when the storage does not enable it.
    pub js_modules: bool,
    /// `--no-compress` turns this off.
    pub compress: bool,
    pub zstd: bool,
    /// The shared variant cache (`None` with `--no-cache`).
    pub cache: Option<cache::Cache>,
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
    /// Keep the tree each publish swaps out as the next run's stage (watch mode): the next
    /// publish then links only what changed instead of every file.
    pub reuse_stage: bool,
    /// Called right after each publish, before the bookkeeping that follows it.
    pub on_publish: Option<OnPublish>,
    /// What a reference to a missing file does (`--missing`, `[collect] missing`).
    pub missing: missing::Policy,
    /// Delta deploys (RFC 9842): `None` with `--no-dictionaries`.
    pub deltas: Option<crate::delta::Options>,
    /// Files to treat as named by a bundler (`--bundled`, `[collect] bundled`).
    pub bundled: bundler::Globs,
}

/// A hook run when a generation has just been published (`staticd dev` wakes its server).
#[derive(Clone)]
pub struct OnPublish(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for OnPublish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnPublish")
    }
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            clear: false,
            dry_run: false,
            no_post_process: false,
            link: false,
            verbosity: 1,
            hash: HashAlgo::Blake3,
            js_modules: false,
            compress: true,
            zstd: false,
            cache: None,
            progress: false,
            reuse_stage: false,
            on_publish: None,
            missing: missing::Policy::default(),
            deltas: Some(crate::delta::Options::default()),
            bundled: bundler::Globs::default(),
        }
    }
}

/// Runs a collect for `d`, logging Django's lines to `log`: walk the sources, stat them, mark
/// the files a bundler already named by content, compare with the previous run (and stop there if nothing changed), read and name, rewrite
/// CSS/JS, plan the outputs, compress, write them into a stage, publish it, record what was
/// done. Compression runs in the background from the read on: each content as soon as its
/// bytes are final (see [`variants`]).
pub fn collect(d: &Discovery, opts: &CollectOptions, log: &Log) -> Result<Summary, Error> {
    let mut run = Run::new(d, opts, log);
    let plan = run.walk()?;
    if opts.dry_run {
        run.pretend(&plan);
        return Ok(run.finish());
    }
    let mut entries = run.stat(&plan.files);
    run.mark_bundled(&mut entries)?;
    let prev = run.previous_state();
    if run.compare(&mut entries, prev.as_ref()) {
        return Ok(run.finish());
    }
    let layout = run.layout(prev.is_some());
    run.read(&mut entries, &layout)?;
    if layout.post_process {
        run.rewrite(&mut entries, &plan.files, prev.as_ref(), &layout)?;
    }
    run.plan_outputs(&mut entries, &layout)?;
    let compressed = run.compress();
    let manifest = layout.post_process.then(|| run::manifest_of(&entries));
    let (staged, committed) =
        run.write_and_publish(&entries, compressed.as_ref(), manifest.as_ref())?;
    run.record(&entries, manifest.as_ref());
    run.count_outputs(&entries, &layout, &staged, &committed);
    Ok(run.finish())
}

/// Digest of every input that changes output besides the files themselves.
fn settings_key(d: &Discovery, opts: &CollectOptions) -> String {
    let key = format!(
        "{} {} {:?} {:?} {:?} {:?} {:?} {:?} {} {} {} {} {:?} {:?}",
        env!("CARGO_PKG_VERSION"),
        compress::ENCODERS,
        d.static_url,
        d.ignore_patterns,
        d.storage,
        d.whitenoise,
        opts.hash,
        compress_settings(d, opts),
        opts.js_modules,
        opts.link,
        opts.no_post_process,
        d.django_version.as_deref().unwrap_or(""),
        opts.missing.key(),
        opts.bundled.key()
    );
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

/// Compression settings from the project (WhiteNoise's skip list) and the flags.
fn compress_settings(d: &Discovery, opts: &CollectOptions) -> compress::Settings {
    let mut s = compress::Settings {
        zstd: opts.zstd,
        ..Default::default()
    };
    if let Some(skip) = &d.whitenoise.skip_compress_extensions {
        s.skip_extensions = skip
            .iter()
            .map(|e| e.trim_start_matches('.').to_string())
            .collect();
    }
    if !opts.compress {
        s.brotli = false;
        s.gzip = false;
        s.zstd = false;
    }
    s
}

/// What `staticd prune` removed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Pruned {
    pub files: usize,
    pub bytes: u64,
    pub kept_generations: usize,
}

/// Deletes hashed files (and their variants) that only generations older than the last `keep`
/// named. Files staticd did not write are never touched.
pub fn prune(d: &Discovery, keep: usize, dry_run: bool, log: &Log) -> Result<Pruned> {
    let _lock = publish::lock(&d.static_root)?;
    let history = generations::History::load(&d.static_root);
    // The current names, and the current originals: an old generation may have published an
    // original's path as a bundler name (collect/bundler.rs), which is no longer one now.
    let current = Manifest::read(&d.static_root.join(&d.storage.manifest_name))?
        .map(|m| m.paths.into_iter().flat_map(|(k, v)| [k, v]).collect())
        .unwrap_or_default();
    let (doomed, kept) = history.plan_prune(keep, &current);
    let doomed = generations::with_deltas(&d.static_root, doomed);
    let mut pruned = Pruned {
        kept_generations: kept.generations.len(),
        ..Default::default()
    };
    for rel in doomed {
        let path = d.static_root.join(&rel);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if dry_run {
            log.line(1, format!("Pretending to delete '{rel}'"));
        } else {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
            log.line(2, format!("Deleting '{rel}'"));
        }
        pruned.files += 1;
        pruned.bytes += meta.len();
    }
    if !dry_run {
        kept.save(&d.static_root)?;
    }
    Ok(pruned)
}
