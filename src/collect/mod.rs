//! `staticd collect`: plan → fingerprint → rewrite → compress → publish.
//!
//! Every stage is pure or parallel: sources are walked per finder location, read and hashed
//! on rayon, CSS/JS rewritten level by level of the reference graph, each distinct content
//! compressed once, and the result published as one atomic swap of STATIC_ROOT.
pub mod bundler;
pub mod cache;
pub mod compress;
pub mod generations;
pub mod graph;
pub mod ignore;
pub mod missing;
pub mod naming;
pub mod plan;
pub mod process;
pub mod publish;
pub mod report;
pub mod rewrite;
pub mod schedule;
pub mod state;
pub mod watch;

use crate::django::Discovery;
use crate::manifest::Manifest;
use anyhow::{bail, Context, Result};
use naming::HashAlgo;
use publish::{Stage, Written};
use rayon::prelude::*;
use report::{Log, Phases, Summary};
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
            bundled: bundler::Globs::default(),
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
    let mut phases = Phases::new(log);
    let ignore = ignore::IgnoreRules::new(&d.ignore_patterns);
    plan::check_root(&d.sources, &d.static_root)?;
    let mut plan = plan::plan(&d.sources, &ignore)?;
    phases.lap(
        "walk sources",
        format!(
            "{} files from {} finder sources",
            plan.files.len(),
            d.sources.len()
        ),
    );
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

    // Files a bundler already named by content keep their names and bytes (bundler.rs).
    if d.storage.manifest && !opts.no_post_process {
        let marked = bundler::mark(&d.sources, &mut plan.files, &opts.bundled, &d.static_url)?;
        for w in &marked.warnings {
            log.warn(w.to_string());
        }
        phases.lap(
            "bundler manifests",
            format!(
                "{} files keep their bundler names; {} manifests read",
                marked.bundled,
                marked.manifests.len()
            ),
        );
    }

    // Nothing changed since the last publish: no reading, hashing, rewriting or compressing.
    let settings_key = settings_key(d, opts);
    let stats: Vec<Option<state::Stat>> = plan
        .files
        .par_iter()
        .map(|f| state::Stat::of(&f.abs))
        .collect();
    phases.lap("stat sources", format!("{} files", plan.files.len()));
    let prev = if opts.clear {
        state::State::remove(&d.static_root);
        None
    } else {
        state::State::load(&d.static_root, &settings_key)
            .filter(|p| p.root_id.is_some() && p.root_id == publish::dev_ino(&d.static_root))
    };
    phases.lap(
        "previous state",
        match &prev {
            Some(p) => format!("{} files recorded", p.files.len()),
            None => "none usable".to_string(),
        },
    );
    if let Some(p) = &prev {
        let same = p.files.len() == plan.files.len()
            && plan
                .files
                .iter()
                .zip(&stats)
                .all(|(f, st)| p.files.get(&f.rel).is_some_and(|s| s.describes(f, *st)));
        if same {
            summary.unmodified = plan.files.len();
            // The references left unchanged last time still are: report them again.
            let mut rels: Vec<&String> = p.files.keys().collect();
            rels.sort();
            summary.record_missing(
                rels.into_iter()
                    .flat_map(|r| p.files[r].missing.iter().cloned()),
                &opts.missing,
            );
            // What Django would report: each CSS/JS file post-processed again, no other
            // file (its hashed copy exists), and under WhiteNoise every variant re-made.
            let names: Vec<&str> = plan
                .files
                .iter()
                .map(|f| p.files[&f.rel].name.as_str())
                .collect();
            summary.post_processed_django = django_post_processed(d, opts, &plan.files, |_| false)
                + whitenoise_variants(d, opts, &plan.files, &names);
            phases.lap(
                "compare",
                "nothing changed: no reading, hashing or compressing",
            );
            phases.lap(
                "publish",
                "skipped: the tree and its manifest are left as they are",
            );
            summary.finish(started);
            return Ok(summary);
        }
    }
    phases.lap("compare", "sources or outputs changed");

    let progress = report::Progress::new(opts.progress && opts.verbosity >= 1);
    progress.stage("reading", plan.files.len());
    // A source unchanged since the last run whose outputs are still in the tree is not even
    // read: its outputs are carried over (CSS/JS whose targets were renamed are read later).
    let skip_read: Vec<bool> = plan
        .files
        .iter()
        .zip(&stats)
        .map(|(f, st)| {
            let Some(p) = prev.as_ref().and_then(|p| p.files.get(&f.rel)) else {
                return false;
            };
            p.describes(f, *st)
                && d.static_root.join(&p.name).is_file()
                && (d.whitenoise.keep_only_hashed_files || d.static_root.join(&f.rel).is_file())
        })
        .collect();
    let sources = plan::read_some(&plan.files, &skip_read)?;
    summary.bytes_in = sources.iter().map(|s| s.len() as u64).sum();
    phases.lap(
        "read",
        format!(
            "{} files, {} bytes; {} unchanged left unread",
            skip_read.iter().filter(|s| !**s).count(),
            summary.bytes_in,
            skip_read.iter().filter(|s| **s).count()
        ),
    );

    let post_process = d.storage.manifest && !opts.no_post_process;
    let keep_only_hashed = post_process && d.whitenoise.keep_only_hashed_files;
    // Content table: originals first (index = file index), then rewritten CSS/JS.
    let mut contents: Vec<Arc<[u8]>> = sources.into_iter().map(Arc::from).collect();
    let mut outputs = Vec::new();
    let mut manifest = None;
    let mut new_state = None;
    let mut carried: Vec<bool> = Vec::new();
    if post_process {
        progress.stage("hashing and rewriting", plan.files.len());
        let mut processed =
            process::process(&plan.files, &contents, &stats, prev.as_ref(), d, opts)?;
        summary.hashed = processed.hashed;
        summary.record_missing(processed.missing.iter().flatten().cloned(), &opts.missing);
        new_state = Some(state::State {
            settings: settings_key.clone(),
            root_id: None,
            files: plan
                .files
                .iter()
                .enumerate()
                .filter_map(|(i, f)| {
                    Some((
                        f.rel.clone(),
                        state::FileState {
                            abs: f.abs.clone(),
                            stat: stats[i]?,
                            fingerprint: processed.fingerprints[i].clone(),
                            name: processed.names[i].clone(),
                            targets: std::mem::take(&mut processed.targets[i]),
                            missing: std::mem::take(&mut processed.missing[i]),
                        },
                    ))
                })
                .collect(),
        });
        summary.rewritten = processed.rewritten;
        carried = processed.carried.clone();
        for (i, name) in processed.names.iter().enumerate() {
            // A bundled file's name is its own: it is written once, as an original below.
            if plan.files[i].bundled {
                continue;
            }
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
        // Django's count: each CSS/JS file, and each other file whose hashed copy is new.
        summary.post_processed_django = django_post_processed(d, opts, &plan.files, |i| {
            opts.clear || !d.static_root.join(&processed.names[i]).is_file()
        });
        phases.lap(
            "hash and rewrite",
            format!(
                "{} hashed, {} rewritten",
                processed.hashed, processed.rewritten
            ),
        );
    }
    for (i, f) in plan.files.iter().enumerate() {
        if !keep_only_hashed || f.bundled {
            outputs.push(Output {
                rel: f.rel.clone(),
                // A bundled file is the published copy, as a hashed one is: real bytes.
                symlink: opts.link && !f.bundled,
                content: i,
                source: i,
                hashed: false,
            });
        }
    }

    // Outputs the previous tree already holds with the right bytes are left to be carried
    // over (with their variants): a hashed name pins its content, and an original is the
    // same when its source is unchanged since the last run.
    let reused: Vec<bool> = outputs
        .iter()
        .map(|o| {
            let Some(p) = &prev else { return false };
            if o.symlink || !d.static_root.join(&o.rel).is_file() {
                return false;
            }
            o.hashed
                || p.files.get(&plan.files[o.source].rel).is_some_and(|s| {
                    s.abs == plan.files[o.source].abs && Some(s.stat) == stats[o.source]
                })
        })
        .collect();
    let reused_originals = outputs
        .iter()
        .zip(&reused)
        .filter(|(o, r)| **r && !o.hashed)
        .count();
    let outputs: Vec<Output> = outputs
        .into_iter()
        .zip(&reused)
        .filter(|(_, r)| !**r)
        .map(|(o, _)| o)
        .collect();
    // An output that must be written after all (its old copy vanished meanwhile) needs the
    // bytes that were skipped.
    for o in &outputs {
        if o.hashed && carried.get(o.source).copied().unwrap_or(false) {
            bail!(
                "{} vanished from STATIC_ROOT during the collect; run it again",
                o.rel
            );
        }
        if o.content == o.source && skip_read[o.source] {
            let f = &plan.files[o.source];
            let bytes = std::fs::read(&f.abs)
                .with_context(|| format!("cannot read {}", f.abs.display()))?;
            contents[o.content] = Arc::from(bytes);
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
        progress.stage("compressing", wanted.len());
        let (v, stats) = compress_all(
            &wanted,
            &contents,
            &settings,
            opts.cache.as_ref(),
            &progress,
        );
        variants = v;
        summary.compressions = stats.compressions;
        summary.cache_hits = stats.cache_hits;
        summary.cache_corrupt = stats.cache_corrupt;
        if let Some(cache) = &opts.cache {
            cache.evict();
        }
        phases.lap(
            "compress",
            format!(
                "{} contents: {} compressed, {} from the cache",
                wanted.len(),
                stats.compressions,
                stats.cache_hits
            ),
        );
    }

    // Stage everything, then swap.
    progress.stage("writing", outputs.len());
    let stage = Stage::begin_with(&d.static_root, opts.reuse_stage && !opts.clear)?;
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
        let unstaged = plan.files.iter().filter(|f| !f.bundled).count();
        copied.fetch_add(unstaged, Ordering::Relaxed);
    }
    phases.lap("stage", format!("{} outputs", outputs.len()));
    let manifest_bytes = manifest.as_ref().map(|m| m.to_bytes());
    let committed = stage
        .commit(
            manifest_bytes
                .as_deref()
                .map(|b| (d.storage.manifest_name.as_str(), b)),
            opts.clear,
        )
        .with_context(|| format!("publishing {}", d.static_root.display()))?;
    phases.lap(
        "publish",
        if manifest_bytes.is_some() {
            "manifest written, tree swapped"
        } else {
            "tree swapped"
        },
    );
    if let Some(hook) = &opts.on_publish {
        (hook.0)();
    }
    progress.finish();
    if let Some(m) = &manifest {
        let mut history = generations::History::load(&d.static_root);
        history.record(&m.hash, m.paths.values().cloned().collect());
        if let Err(e) = history.save(&d.static_root) {
            log.warn(format!("warning: cannot record the generation: {e}"));
        }
    }
    // Recorded only after a publish: a failed run leaves the previous state describing the tree.
    if let Some(mut st) = new_state {
        st.root_id = publish::dev_ino(&d.static_root);
        if let Err(e) = st.save(&d.static_root) {
            log.warn(format!("warning: cannot record collect state: {e}"));
        }
    }
    phases.lap("record", "generation and state saved");

    summary.deleted = committed.deleted;
    summary.copied = copied.into_inner();
    summary.unmodified = unmodified.into_inner() + reused_originals;
    summary.compressed = variants_written.load(Ordering::Relaxed);
    summary.post_processed = post_processed.into_inner()
        + if d.storage.compress {
            variants_written.into_inner()
        } else {
            0
        };
    summary.bytes_out = bytes_out.into_inner();
    if let Some(m) = &manifest {
        let names: Vec<&str> = plan
            .files
            .iter()
            .map(|f| m.paths[&f.rel].as_str())
            .collect();
        summary.post_processed_django += whitenoise_variants(d, opts, &plan.files, &names);
    }
    summary.finish(started);
    Ok(summary)
}

/// `HashedFilesMixin.post_process` yields every file matching its patterns (`*.css`, `*.js`,
/// matched like `fnmatchcase` against the whole path) as processed, whether or not anything
/// was substituted, and any other file only when its hashed copy did not exist yet.
fn django_post_processed(
    d: &Discovery,
    opts: &CollectOptions,
    files: &[plan::SourceFile],
    hashed_is_new: impl Fn(usize) -> bool,
) -> usize {
    if !d.storage.manifest || opts.no_post_process {
        return 0;
    }
    files
        .iter()
        .enumerate()
        .filter(|(i, f)| !f.bundled && (adjustable(&f.rel) || hashed_is_new(*i)))
        .count()
}

/// Paths Django's manifest storage rewrites.
fn adjustable(rel: &str) -> bool {
    rel.ends_with(".css") || rel.ends_with(".js")
}

/// WhiteNoise's storage compresses every original and hashed file again on every run and
/// yields each variant it keeps as post-processed: the variants now in STATIC_ROOT.
fn whitenoise_variants(
    d: &Discovery,
    opts: &CollectOptions,
    files: &[plan::SourceFile],
    hashed: &[&str],
) -> usize {
    if !d.storage.compress || opts.no_post_process || !d.storage.manifest {
        return 0;
    }
    let settings = compress_settings(d, opts);
    let mut names: Vec<&str> = hashed.to_vec();
    // A bundled file's name is its original's: counted once.
    if !d.whitenoise.keep_only_hashed_files {
        names.extend(files.iter().filter(|f| !f.bundled).map(|f| f.rel.as_str()));
    }
    let suffixes: Vec<&str> = [(settings.brotli, ".br"), (settings.gzip, ".gz")]
        .into_iter()
        .filter_map(|(on, s)| on.then_some(s))
        .collect();
    names
        .par_iter()
        .map(|n| {
            suffixes
                .iter()
                .filter(|s| d.static_root.join(format!("{n}{s}")).is_file())
                .count()
        })
        .sum()
}

/// Digest of every input that changes output besides the files themselves.
fn settings_key(d: &Discovery, opts: &CollectOptions) -> String {
    let key = format!(
        "{} {:?} {:?} {:?} {:?} {:?} {:?} {} {} {} {} {:?} {:?}",
        env!("CARGO_PKG_VERSION"),
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

#[derive(Default)]
struct CompressStats {
    compressions: usize,
    cache_hits: usize,
    cache_corrupt: usize,
}

/// Variants for each wanted content: each distinct byte string is looked up in the cache or
/// compressed once. Every encoder of every missed content is a job of its own, and the jobs
/// run longest first across the pool ([`schedule::longest_first`]): the two cores stay busy
/// to the end, and one big file's brotli and gzip run side by side.
fn compress_all(
    wanted: &[usize],
    contents: &[Arc<[u8]>],
    settings: &compress::Settings,
    cache: Option<&cache::Cache>,
    progress: &report::Progress,
) -> (HashMap<usize, compress::Variants>, CompressStats) {
    let keys: Vec<(usize, String)> = wanted
        .par_iter()
        .map(|&c| (c, cache::Cache::key(&contents[c], settings)))
        .collect();
    let mut rep_of_key: HashMap<&str, usize> = HashMap::new();
    for (c, k) in &keys {
        rep_of_key.entry(k.as_str()).or_insert(*c);
    }
    let distinct: Vec<(&str, usize)> = rep_of_key.iter().map(|(k, c)| (*k, *c)).collect();
    let corrupt = AtomicUsize::new(0);
    let found: Vec<Option<compress::Variants>> = distinct
        .par_iter()
        .map(|&(key, _)| match cache.map(|cache| cache.get(key)) {
            Some(cache::Lookup::Hit(v)) => {
                progress.inc();
                Some(v)
            }
            Some(cache::Lookup::Corrupt) => {
                corrupt.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => None,
        })
        .collect();
    let missed: Vec<usize> = (0..distinct.len())
        .filter(|&i| found[i].is_none())
        .collect();
    let jobs: Vec<(usize, compress::Encoder)> = missed
        .iter()
        .flat_map(|&i| {
            let data = &contents[distinct[i].1];
            settings.encoders(data).into_iter().map(move |e| (i, e))
        })
        .collect();
    let left: Vec<AtomicUsize> = distinct.iter().map(|_| AtomicUsize::new(0)).collect();
    for &(i, _) in &jobs {
        left[i].fetch_add(1, Ordering::Relaxed);
    }
    // Empty contents have no encoder to run: done already.
    for &i in &missed {
        if left[i].load(Ordering::Relaxed) == 0 {
            progress.inc();
        }
    }
    let encoded = schedule::longest_first(
        &jobs,
        |&(i, e)| e.cost(contents[distinct[i].1].len()),
        |&(i, e)| {
            let out = e.run(&contents[distinct[i].1]);
            if left[i].fetch_sub(1, Ordering::Relaxed) == 1 {
                progress.inc();
            }
            out
        },
    );
    let mut results: Vec<Vec<(compress::Encoder, Option<Vec<u8>>)>> =
        distinct.iter().map(|_| Vec::new()).collect();
    for (&(i, e), out) in jobs.iter().zip(encoded) {
        results[i].push((e, out));
    }
    let computed: HashMap<&str, compress::Variants> = found
        .into_par_iter()
        .zip(results)
        .zip(&distinct)
        .map(|((f, results), &(key, _))| {
            let v = f.unwrap_or_else(|| {
                let v = settings.assemble(results);
                if let Some(cache) = cache {
                    cache.put(key, &v);
                }
                v
            });
            (key, v)
        })
        .collect();
    let stats = CompressStats {
        compressions: missed.len(),
        cache_hits: distinct.len() - missed.len(),
        cache_corrupt: corrupt.into_inner(),
    };
    let variants = keys
        .iter()
        .map(|(c, k)| (*c, computed[k.as_str()].clone()))
        .collect();
    (variants, stats)
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
