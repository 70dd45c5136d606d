//! `staticd collect`: plan → fingerprint → rewrite → compress → publish.
//!
//! Every stage is pure or parallel: sources are walked per finder location, read and hashed
//! on rayon, CSS/JS rewritten level by level of the reference graph, each distinct content
//! compressed once, and the result published as one atomic swap of STATIC_ROOT.
pub mod compress;
pub mod graph;
pub mod ignore;
pub mod naming;
pub mod plan;
pub mod process;
pub mod publish;
pub mod report;
pub mod rewrite;

use crate::django::Discovery;
use crate::manifest::Manifest;
use anyhow::{Context, Result};
use naming::HashAlgo;
use publish::{Stage, Written};
use rayon::prelude::*;
use report::{Log, Summary};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Show a progress bar (only when stderr is a terminal).
    pub progress: bool,
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
            progress: false,
        }
    }
}

/// One file to be placed in STATIC_ROOT.
struct Output {
    rel: String,
    /// An unhashed original under `--link`: a symlink to the source, no bytes of its own.
    symlink: bool,
    /// Index into the content table.
    content: usize,
    /// The collected file it came from.
    source: usize,
    hashed: bool,
}

/// Runs a collect for `d`, logging Django's lines to `log`.
pub fn collect(d: &Discovery, opts: &CollectOptions, log: &Log) -> Result<Summary> {
    let started = std::time::Instant::now();
    let ignore = ignore::IgnoreRules::new(&d.ignore_patterns);
    plan::check_root(&d.sources, &d.static_root)?;
    let plan = plan::plan(&d.sources, &ignore)?;
    let mut summary = Summary::new(&d.static_root, opts);
    summary.skipped = plan.conflicts.len();
    for c in &plan.conflicts {
        log.line(2, format!("Found another file with the destination path '{}'. It will be ignored since only the first encountered file is collected. If this is not what you want, make sure every static file has a unique path.", c.rel));
    }
    if opts.dry_run {
        let verb = if opts.link { "link" } else { "copy" };
        for f in &plan.files {
            log.line(1, format!("Pretending to {verb} '{}'", f.abs.display()));
        }
        summary.copied = plan.files.len();
        summary.finish(started);
        return Ok(summary);
    }

    let progress = report::Progress::new(opts.progress && opts.verbosity >= 1);
    progress.stage("reading", plan.files.len());
    let sources = plan::read_all(&plan.files)?;
    summary.bytes_in = sources.iter().map(|s| s.len() as u64).sum();

    let post_process = d.storage.manifest && !opts.no_post_process;
    let keep_only_hashed = post_process && d.whitenoise.keep_only_hashed_files;
    // Content table: originals first (index = file index), then rewritten CSS/JS.
    let mut contents: Vec<Arc<[u8]>> = sources.into_iter().map(Arc::from).collect();
    let mut outputs = Vec::new();
    let mut manifest = None;
    if post_process {
        progress.stage("hashing and rewriting", plan.files.len());
        let mut processed = process::process(&plan.files, &contents, d, opts, log)?;
        summary.hashed = processed.names.len();
        summary.rewritten = processed.rewritten;
        for (i, name) in processed.names.iter().enumerate() {
            let content = match processed.rewritten_content[i].take() {
                Some(bytes) => {
                    contents.push(Arc::from(bytes));
                    contents.len() - 1
                }
                None => i,
            };
            outputs.push(Output {
                rel: name.clone(),
                symlink: false,
                content,
                source: i,
                hashed: true,
            });
        }
        manifest = Some(Manifest::new(
            plan.files
                .iter()
                .zip(&processed.names)
                .map(|(f, h)| (f.rel.clone(), h.clone()))
                .collect(),
        ));
    }
    if !keep_only_hashed {
        for (i, f) in plan.files.iter().enumerate() {
            outputs.push(Output {
                rel: f.rel.clone(),
                symlink: opts.link,
                content: i,
                source: i,
                hashed: false,
            });
        }
    }

    // Compress each distinct content once, biggest first so the pool stays busy.
    let settings = compress_settings(d, opts);
    // WhiteNoise compresses inside post-processing, so `--no-post-process` skips it too.
    let compress_now = !opts.no_post_process && settings.enabled();
    let mut variants: HashMap<usize, compress::Variants> = HashMap::new();
    if compress_now {
        let mut wanted: Vec<usize> = outputs
            .iter()
            .filter(|o| !o.symlink && !settings.skips(&o.rel))
            .map(|o| o.content)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let by_hash = dedup_contents(&wanted, &contents);
        let mut jobs: Vec<usize> = by_hash.values().copied().collect();
        jobs.sort_by_key(|&c| std::cmp::Reverse(contents[c].len()));
        progress.stage("compressing", jobs.len());
        let done: Vec<(usize, compress::Variants)> = jobs
            .par_iter()
            .map(|&c| {
                let v = settings.compress(&contents[c]);
                progress.inc();
                (c, v)
            })
            .collect();
        let computed: HashMap<usize, compress::Variants> = done.into_iter().collect();
        for c in wanted {
            let rep = by_hash[&blake3::hash(&contents[c])];
            variants.insert(c, computed[&rep].clone());
        }
    }

    // Stage everything, then swap.
    progress.stage("writing", outputs.len());
    let stage = Stage::begin(&d.static_root)?;
    let copied = AtomicUsize::new(0);
    let unmodified = AtomicUsize::new(0);
    let post_processed = AtomicUsize::new(0);
    let variants_written = AtomicUsize::new(0);
    let bytes_out = AtomicU64::new(0);
    // Several outputs can share one content (an original and its hashed copy): the first
    // writer of a content writes, the others link to it.
    let first_of: HashMap<usize, usize> = {
        let mut m = HashMap::new();
        for (i, o) in outputs.iter().enumerate() {
            if !o.symlink {
                m.entry(o.content).or_insert(i);
            }
        }
        m
    };
    // Writers of a content go first so that linkers find the file.
    let (primary, secondary): (Vec<usize>, Vec<usize>) =
        (0..outputs.len()).partition(|i| first_of.get(&outputs[*i].content) == Some(i));
    for batch in [primary, secondary] {
        batch.par_iter().try_for_each(|&i| -> Result<()> {
            let o = &outputs[i];
            let src = &plan.files[o.source];
            let result = if o.symlink {
                stage.symlink(&o.rel, &src.abs)?
            } else if first_of[&o.content] == i {
                let r = stage.write(&o.rel, &contents[o.content])?;
                if r == Written::New {
                    bytes_out.fetch_add(contents[o.content].len() as u64, Ordering::Relaxed);
                }
                r
            } else {
                stage.link(&o.rel, &outputs[first_of[&o.content]].rel)?;
                Written::New
            };
            if o.hashed {
                // Django counts a non-CSS/JS hashed file only when it did not exist yet.
                if result == Written::New || o.content != o.source {
                    post_processed.fetch_add(1, Ordering::Relaxed);
                }
                log.line(2, format!("Post-processed '{}' as '{}'", src.rel, o.rel));
            } else if result == Written::Unchanged {
                unmodified.fetch_add(1, Ordering::Relaxed);
                log.line(2, format!("Skipping '{}' (not modified)", src.rel));
            } else {
                copied.fetch_add(1, Ordering::Relaxed);
                let verb = if opts.link { "Linking" } else { "Copying" };
                log.line(2, format!("{verb} '{}'", src.abs.display()));
            }
            if let Some(v) = variants.get(&o.content) {
                for (suffix, bytes) in v.iter() {
                    let name = format!("{}{suffix}", o.rel);
                    if first_of[&o.content] == i {
                        stage.write(&name, bytes)?;
                        bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    } else {
                        stage.link(
                            &name,
                            &format!("{}{suffix}", outputs[first_of[&o.content]].rel),
                        )?;
                    }
                    variants_written.fetch_add(1, Ordering::Relaxed);
                }
            }
            progress.inc();
            Ok(())
        })?;
    }
    if keep_only_hashed {
        // Originals were never staged; the summary still counts them as collected.
        copied.fetch_add(plan.files.len(), Ordering::Relaxed);
    }
    let manifest_bytes = manifest.as_ref().map(|m| m.to_bytes());
    let committed = stage
        .commit(
            manifest_bytes
                .as_deref()
                .map(|b| (d.storage.manifest_name.as_str(), b)),
            opts.clear,
        )
        .with_context(|| format!("publishing {}", d.static_root.display()))?;
    progress.finish();

    summary.deleted = committed.deleted;
    summary.copied = copied.into_inner();
    summary.unmodified = unmodified.into_inner();
    summary.compressed = variants_written.load(Ordering::Relaxed);
    summary.post_processed = post_processed.into_inner()
        + if d.storage.compress {
            variants_written.into_inner()
        } else {
            0
        };
    summary.bytes_out = bytes_out.into_inner();
    summary.distinct_compressed = variants
        .values()
        .filter(|v| v.count() > 0)
        .count()
        .min(summary.compressed);
    summary.finish(started);
    Ok(summary)
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

/// One representative content index per distinct byte string.
fn dedup_contents(wanted: &[usize], contents: &[Arc<[u8]>]) -> HashMap<blake3::Hash, usize> {
    let hashes: Vec<(blake3::Hash, usize)> = wanted
        .par_iter()
        .map(|&c| (blake3::hash(&contents[c]), c))
        .collect();
    let mut m = HashMap::new();
    for (h, c) in hashes {
        m.entry(h).or_insert(c);
    }
    m
}
