//! The stages of one collect, in the order [`collect`](super::collect) calls them. Each works
//! on the [`Entry`] records of the planned files; what a run shares (the project, the options,
//! the summary being filled, the `-v 3` timings) is a [`Run`].
use super::deltas::Finder;
use super::entry::{Entry, Layout};
use super::publish::{self, Committed, Stage};
use super::report::{Log, Phases, Progress, Summary};
use super::state::{self, State};
use super::variants::{Compressed, Compressor};
use super::write::{self, Staged};
use super::{
    bundler, compress_settings, generations, ignore, parity, plan, process, CollectOptions, Error,
};
use crate::django::Discovery;
use crate::manifest::Manifest;
use rayon::prelude::*;
use std::sync::Arc;

type Result<T, E = Error> = std::result::Result<T, E>;

/// One collect under way.
pub struct Run<'a> {
    pub d: &'a Discovery,
    pub opts: &'a CollectOptions,
    log: &'a Log,
    phases: Phases<'a>,
    progress: Progress,
    pub summary: Summary,
    started: std::time::Instant,
    /// Digest of every setting that changes output (see `settings_key`).
    settings_key: String,
    /// Compressing in the background from the read on (when variants are made at all).
    compressor: Option<Compressor>,
}

impl<'a> Run<'a> {
    pub fn new(d: &'a Discovery, opts: &'a CollectOptions, log: &'a Log) -> Self {
        Run {
            d,
            opts,
            log,
            phases: Phases::new(log),
            progress: Progress::new(opts.progress && opts.verbosity >= 1),
            summary: Summary::new(&d.static_root, opts),
            started: std::time::Instant::now(),
            settings_key: super::settings_key(d, opts),
            compressor: None,
        }
    }

    /// The summary, with the run's duration.
    pub fn finish(mut self) -> Summary {
        self.summary.finish(self.started);
        self.summary
    }

    /// Stage "walk": the files to collect, in Django's order (and the ones that lost to an
    /// earlier source with the same path, logged as Django does).
    pub fn walk(&mut self) -> Result<plan::Plan> {
        let d = self.d;
        let ignore = ignore::IgnoreRules::new(&d.ignore_patterns);
        plan::check_root(&d.sources, &d.static_root)?;
        let plan = plan::plan(&d.sources, &ignore)?;
        self.phases.lap(
            "walk sources",
            format!(
                "{} files from {} finder sources",
                plan.files.len(),
                d.sources.len()
            ),
        );
        for c in &plan.conflicts {
            self.log.line(2, format!("Found another file with the destination path '{}'. It will be ignored since only the first encountered file is collected. If this is not what you want, make sure every static file has a unique path.", c.rel));
        }
        self.summary.skipped = plan.conflicts.len();
        Ok(plan)
    }

    /// `--dry-run`: Django's lines and counts, nothing read or written.
    pub fn pretend(&mut self, plan: &plan::Plan) {
        let verb = if self.opts.link { "link" } else { "copy" };
        for f in &plan.files {
            self.log
                .line(1, format!("Pretending to {verb} '{}'", f.abs.display()));
        }
        self.summary.copied = plan.files.len();
    }

    /// Stage "stat": one entry per planned file, with its stat.
    pub fn stat<'p>(&mut self, files: &'p [plan::SourceFile]) -> Vec<Entry<'p>> {
        let mut entries: Vec<Entry> = files.iter().map(Entry::new).collect();
        entries
            .par_iter_mut()
            .for_each(|e| e.stat = state::Stat::of(&e.src.abs));
        self.phases
            .lap("stat sources", format!("{} files", files.len()));
        entries
    }

    /// Stage "bundler manifests" (post-processing runs only): marks the entries a front-end
    /// bundler already named by content ([`bundler::mark`]), so that they keep their names
    /// and bytes. Before "compare": a file whose status flipped is not unchanged.
    pub fn mark_bundled(&mut self, entries: &mut [Entry]) -> Result<()> {
        let (d, opts) = (self.d, self.opts);
        if !self.post_processes() {
            return Ok(());
        }
        let marked = bundler::mark(&d.sources, entries, &opts.bundled, &d.static_url)?;
        for w in &marked.warnings {
            self.log.warn(w.to_string());
        }
        self.phases.lap(
            "bundler manifests",
            format!(
                "{} files keep their bundler names; {} manifests read",
                marked.bundled,
                marked.manifests.len()
            ),
        );
        Ok(())
    }

    /// Manifest storage post-processes (hashed names, rewriting, bundler names).
    fn post_processes(&self) -> bool {
        self.d.storage.manifest && !self.opts.no_post_process
    }

    /// The previous run's state of this STATIC_ROOT, if it applies: same settings, and the
    /// tree is still the one that run published (another writer changes its inode).
    pub fn previous_state(&mut self) -> Option<State> {
        let root = &self.d.static_root;
        let prev = if self.opts.clear {
            State::remove(root);
            None
        } else {
            State::load(root, &self.settings_key)
                .filter(|p| p.root_id.is_some() && p.root_id == publish::dev_ino(root))
        };
        self.phases.lap(
            "previous state",
            match &prev {
                Some(p) => format!("{} files recorded", p.files.len()),
                None => "none usable".to_string(),
            },
        );
        prev
    }

    /// Stage "compare": gives each entry the previous run's record of its path. True when
    /// nothing changed (the same files, each provably unchanged): the summary is then
    /// complete, with no reading, hashing, rewriting, compressing or publishing.
    pub fn compare<'p>(&mut self, entries: &mut [Entry<'p>], prev: Option<&'p State>) -> bool {
        let Some(prev) = prev else {
            self.phases.lap("compare", "sources or outputs changed");
            return false;
        };
        for e in entries.iter_mut() {
            e.prev = prev.files.get(&e.src.rel);
        }
        let same =
            prev.files.len() == entries.len() && entries.iter().all(|e| e.unchanged().is_some());
        if !same {
            self.phases.lap("compare", "sources or outputs changed");
            return false;
        }
        self.unchanged_summary(entries, prev);
        self.phases.lap(
            "compare",
            "nothing changed: no reading, hashing or compressing",
        );
        self.phases.lap(
            "publish",
            "skipped: the tree and its manifest are left as they are",
        );
        true
    }

    /// Django's counts for a re-run with nothing to do.
    fn unchanged_summary(&mut self, entries: &[Entry], prev: &State) {
        let (d, opts) = (self.d, self.opts);
        self.summary.unmodified = entries.len();
        if self.layout(true).keep_only_hashed {
            // WhiteNoise deleted the originals after the last run: Django copies each again
            // (a bundled file's name is its original's, and it is still there).
            let copied = entries.iter().filter(|e| !e.bundled).count();
            self.summary.copied = copied;
            self.summary.unmodified = entries.len() - copied;
        }
        // The references left unchanged last time still are: report them again.
        let mut rels: Vec<&String> = prev.files.keys().collect();
        rels.sort();
        self.summary.record_missing(
            rels.into_iter()
                .flat_map(|r| prev.files[r].missing.iter().cloned()),
            &opts.missing,
        );
        // What Django would report: each CSS/JS file post-processed again, no other file (its
        // hashed copy exists), and under WhiteNoise every variant re-made.
        self.summary.post_processed_django = parity::post_processed(d, opts, entries, |_| false)
            + parity::whitenoise_variants(d, opts, entries, |e| {
                e.prev.expect("every file unchanged").name.as_str()
            });
    }

    /// Where outputs go, and which the previous tree may already hold.
    pub fn layout(&self, has_prev: bool) -> Layout<'a> {
        let d = self.d;
        let post_process = self.post_processes();
        Layout {
            static_root: &d.static_root,
            has_prev,
            post_process,
            keep_only_hashed: post_process && d.whitenoise.keep_only_hashed_files,
            keep_only_hashed_files: d.whitenoise.keep_only_hashed_files,
            link: self.opts.link,
        }
    }

    /// Stage "read" (with "name" for a file that is not rewritten): the bytes of every source
    /// that needs reading, and the digest of each. An entry whose outputs are final then (all
    /// but the hashed copies of CSS/JS) has them planned and their contents handed to the
    /// compressor, which starts on them while the rest of the collect runs.
    pub fn read(&mut self, entries: &mut [Entry], layout: &Layout) -> Result<()> {
        self.progress.stage("reading", entries.len());
        let settings = compress_settings(self.d, self.opts);
        // WhiteNoise compresses inside post-processing, so `--no-post-process` skips it too.
        if !self.opts.no_post_process && settings.enabled() {
            let cache = self.opts.cache.clone();
            let deltas = (self.opts.deltas.as_ref()).map(|o| Finder::new(&self.d.static_root, o));
            self.compressor =
                Some(Compressor::start(settings, cache, &self.progress).with_deltas(deltas));
        }
        let (algo, compressor) = (self.opts.hash, self.compressor.as_ref());
        in_order(
            entries
                .par_iter_mut()
                .map(|e| {
                    e.read(layout)?;
                    if layout.post_process {
                        e.name_by_content(algo);
                    }
                    ready(e, layout, compressor)
                })
                .collect(),
        )?;
        let read: Vec<&Arc<[u8]>> = entries.iter().filter_map(|e| e.bytes.as_ref()).collect();
        self.summary.bytes_in = read.iter().map(|b| b.len() as u64).sum();
        self.phases.lap(
            "read",
            format!(
                "{} files, {} bytes; {} unchanged left unread{}",
                read.len(),
                self.summary.bytes_in,
                entries.len() - read.len(),
                self.compressing()
            ),
        );
        Ok(())
    }

    /// `; N contents handed to the compressor`, for the timing lines of the stages it overlaps.
    fn compressing(&self) -> String {
        match &self.compressor {
            Some(c) => format!("; {} contents handed to the compressor", c.handed_in()),
            None => String::new(),
        }
    }

    /// Stage "rewrite" (manifest storage): CSS/JS named once rewritten, each handed to the
    /// compressor as soon as it is; the counts of the hashing.
    pub fn rewrite(
        &mut self,
        entries: &mut [Entry],
        files: &[plan::SourceFile],
        prev: Option<&State>,
        layout: &Layout,
    ) -> Result<()> {
        let (d, opts) = (self.d, self.opts);
        self.progress.stage("hashing and rewriting", entries.len());
        let compressor = self.compressor.as_ref();
        process::process(entries, files, prev, d, opts, &|e| {
            ready(e, layout, compressor)
        })?;
        let s = &mut self.summary;
        s.rewritten = entries.iter().filter(|e| e.rewrote).count();
        // Fingerprinted this time: rewritten CSS/JS, and other files not known unchanged (a
        // bundled file keeps its name: not hashed).
        s.hashed = s.rewritten
            + entries
                .iter()
                .filter(|e| e.kind.is_none() && !e.bundled && e.unchanged().is_none())
                .count();
        s.record_missing(
            entries.iter().flat_map(|e| e.missing.iter().cloned()),
            &opts.missing,
        );
        // Django's count: each CSS/JS file, and each other file whose hashed copy is new.
        s.post_processed_django = parity::post_processed(d, opts, entries, |e| {
            opts.clear
                || !d
                    .static_root
                    .join(e.name.as_ref().expect("named"))
                    .is_file()
        });
        let what = format!("{} hashed, {} rewritten", s.hashed, s.rewritten);
        self.phases
            .lap("hash and rewrite", format!("{what}{}", self.compressing()));
        Ok(())
    }

    /// Stage "outputs": every entry's outputs planned, with the bytes they need, and every
    /// content to compress handed in (all were as they became final; this makes sure).
    pub fn plan_outputs(&mut self, entries: &mut [Entry], layout: &Layout) -> Result<()> {
        let compressor = self.compressor.as_ref();
        in_order(
            entries
                .par_iter_mut()
                .map(|e| {
                    ready(e, layout, compressor)?;
                    e.check_carried()
                })
                .collect(),
        )
    }

    /// Stage "compress": waits for the variants of every content handed in. Most were made
    /// while the earlier stages ran; the timing line is the wait for the rest.
    pub fn compress(&mut self) -> Option<Compressed> {
        let compressed = self.compressor.take()?.finish();
        let stats = compressed.stats;
        self.summary.compressions = stats.compressions;
        self.summary.cache_hits = stats.cache_hits;
        self.summary.cache_corrupt = stats.cache_corrupt;
        self.summary.deltas = stats.deltas;
        if let Some(cache) = &self.opts.cache {
            cache.evict();
        }
        self.phases.lap(
            "compress",
            format!(
                "{} contents: {} compressed, {} from the cache; the wait for what the \
                 earlier stages left running",
                stats.contents, stats.compressions, stats.cache_hits
            ),
        );
        Some(compressed)
    }

    /// Stages "write" and "publish": every output into a stage beside STATIC_ROOT, then one
    /// swap (the manifest of a post-processing run written last).
    pub fn write_and_publish(
        &mut self,
        entries: &[Entry],
        compressed: Option<&Compressed>,
        manifest: Option<&Manifest>,
    ) -> Result<(Staged, Committed)> {
        let (d, opts) = (self.d, self.opts);
        let stage = Stage::begin_with(&d.static_root, opts.reuse_stage && !opts.clear)?;
        let staged = write::stage_all(
            entries,
            &stage,
            compressed,
            opts.link,
            self.log,
            &self.progress,
        )?;
        self.phases
            .lap("stage", format!("{} outputs", staged.outputs));
        let manifest_bytes = manifest.map(|m| m.to_bytes());
        let committed = stage.commit(
            manifest_bytes
                .as_deref()
                .map(|b| (d.storage.manifest_name.as_str(), b)),
            opts.clear,
        )?;
        self.phases.lap(
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
        self.progress.finish();
        Ok((staged, committed))
    }

    /// Stage "record", after a publish only (a failed run leaves the previous state
    /// describing the tree): the generation, and what the next run may trust.
    pub fn record(&mut self, entries: &[Entry], manifest: Option<&Manifest>) {
        let (root, log) = (&self.d.static_root, self.log);
        if let Some(m) = manifest {
            let mut history = generations::History::load(root);
            history.record(&m.hash, m.paths.values().cloned().collect());
            if let Err(e) = history.save(root) {
                log.warn(format!("warning: cannot record the generation: {e}"));
            }
            let state = State {
                settings: self.settings_key.clone(),
                root_id: publish::dev_ino(root),
                files: entries.iter().filter_map(file_state).collect(),
            };
            if let Err(e) = state.save(root) {
                log.warn(format!("warning: cannot record collect state: {e}"));
            }
        }
        self.phases.lap("record", "generation and state saved");
    }

    /// The summary's counts of the outputs, once published.
    pub fn count_outputs(
        &mut self,
        entries: &[Entry],
        layout: &Layout,
        staged: &Staged,
        committed: &Committed,
    ) {
        let (d, opts, s) = (self.d, self.opts, &mut self.summary);
        s.deleted = committed.deleted;
        s.copied = staged.copied;
        if layout.keep_only_hashed {
            // Originals were never staged; the summary still counts them as collected (a
            // bundled file's was, and is counted already).
            s.copied += entries.iter().filter(|e| !e.bundled).count();
        }
        let reused_originals = entries
            .iter()
            .filter(|e| e.original.as_ref().is_some_and(|o| o.reused))
            .count();
        s.unmodified = staged.unmodified + reused_originals;
        if opts.clear {
            // Django deleted the whole tree first: each file it collects is a copy, none is
            // unmodified, even where staticd could keep the old tree's file (same bytes).
            s.copied += s.unmodified;
            s.unmodified = 0;
        }
        s.compressed = staged.variants;
        s.post_processed = staged.post_processed
            + if d.storage.compress {
                staged.variants
            } else {
                0
            };
        s.bytes_out = staged.bytes_out;
        if layout.post_process {
            s.post_processed_django += parity::whitenoise_variants(d, opts, entries, |e| {
                e.name.as_deref().expect("named")
            });
        }
    }
}

/// The manifest of a post-processing run: every collected path and its hashed name.
pub fn manifest_of(entries: &[Entry]) -> Manifest {
    Manifest::new(
        entries
            .iter()
            .map(|e| (e.src.rel.clone(), e.name.clone().expect("named")))
            .collect(),
    )
}

/// An entry whose outputs' contents are final (all but a CSS/JS file's hashed copy before it
/// is rewritten): plan them, read the bytes they need, hand what is to be compressed to the
/// compressor.
fn ready(e: &mut Entry, layout: &Layout, compressor: Option<&Compressor>) -> Result<()> {
    e.plan_outputs(layout);
    e.load_sources()?;
    if let Some(c) = compressor {
        c.want(e);
    }
    Ok(())
}

/// What the next run may trust about an entry (nothing if it could not be stat'ed).
fn file_state(e: &Entry) -> Option<(String, state::FileState)> {
    Some((
        e.src.rel.clone(),
        state::FileState {
            abs: e.src.abs.clone(),
            stat: e.stat?,
            fingerprint: e.fingerprint.clone().expect("fingerprinted"),
            name: e.name.clone().expect("named"),
            targets: e.targets.clone(),
            missing: e.missing.clone(),
        },
    ))
}

/// The first error in the files' order, so that a run with several bad files always names
/// the same one.
pub fn in_order<E>(results: Vec<std::result::Result<(), E>>) -> std::result::Result<(), E> {
    results.into_iter().collect()
}
