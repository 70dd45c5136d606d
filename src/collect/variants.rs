//! The compressed variants of what a collect writes, made while the collect runs.
//!
//! A content is handed in as soon as its bytes are final, which for most files (images,
//! fonts, source maps: whatever is not rewritten) is right after it is read, and for
//! rewritten CSS/JS when its level of the reference graph is done. Each distinct content is
//! looked up in the variant cache or compressed once, whichever outputs share it; every
//! encoder of every missed content is a job of the [`Pool`], which runs the most expensive
//! queued job first, so the largest compressions start early and the cores stay busy to the
//! end.
//!
//! Only what an output to be written wants is handed in, as without the overlap; the one
//! exception is a collect that then fails (a missing reference found after the images were
//! read): what was compressed by then is wasted, though it lands in the cache for the next
//! run.
//!
//! With a delta [`Finder`] (see `deltas`), a changed hashed file of a delta-eligible type
//! also gets a dcb and a dcz job per earlier version, in the same pool and cache.
use super::cache::{Cache, Lookup};
use super::compress::{self, Encoder, Variants};
use super::deltas::{self, Finder};
use super::entry::{Content, Entry};
use super::report::Progress;
use super::schedule::Pool;
use crate::delta::{format, Coding};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A content handed to the [`Compressor`]; names its variants in [`Compressed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(usize);

/// Compresses the contents handed in, in the background.
pub struct Compressor {
    settings: compress::Settings,
    cache: Option<Cache>,
    table: Arc<Table>,
    pool: Pool<Job>,
    progress: Progress,
    deltas: Option<Finder>,
}

/// What each encoder of a content gave (`None`: not effective).
type Results = Vec<(Encoder, Option<Vec<u8>>)>;

/// One encoder over one distinct content, or one delta of a content against a dictionary
/// (`id` is then the pair's index).
struct Job {
    id: usize,
    work: Work,
    data: Arc<[u8]>,
}

enum Work {
    Encode(Encoder),
    Delta { coding: Coding, dict: Arc<[u8]> },
}

/// Every distinct content handed in, by id (= its [`Ticket`]).
#[derive(Default)]
struct Table {
    slots: Mutex<Slots>,
    /// Contents handed in, with repeats.
    handed_in: AtomicUsize,
    hits: AtomicUsize,
    misses: AtomicUsize,
    corrupt: AtomicUsize,
    /// Distinct contents done (found or compressed), for the progress bar.
    done: AtomicUsize,
    /// The progress bar shows the compressions (once the other stages are over).
    shown: AtomicBool,
    /// Every (hashed output, dictionary) pair handed in, by index.
    pairs: Mutex<Vec<Pair>>,
    /// Hashed outputs whose deltas were handed in (an entry is offered several times).
    delta_targets: Mutex<HashSet<String>>,
    delta_counts: Mutex<deltas::Counts>,
    delta_cpu_us: AtomicU64,
}

/// The deltas of one hashed output against one dictionary.
struct Pair {
    target: String,
    /// The ordinary variants of the same bytes, to compare with.
    ticket: usize,
    identity_len: usize,
    dict: [u8; 32],
    key: String,
    made: [Option<Vec<u8>>; 2],
    /// Encoders still running.
    left: usize,
}

#[derive(Default)]
struct Slots {
    id_of: HashMap<String, usize>,
    slots: Vec<Slot>,
}

enum Slot {
    /// Being looked up in the cache.
    Looking,
    /// Encoders running: the cache key, how many are left, what the others gave.
    Encoding {
        key: String,
        left: usize,
        results: Results,
    },
    Done(Arc<Variants>),
}

/// Counts of one compression run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Contents handed in (several outputs may share one).
    pub contents: usize,
    /// Distinct contents run through the encoders.
    pub compressions: usize,
    /// Distinct contents whose variants came from the cache.
    pub cache_hits: usize,
    /// Damaged cache entries found (and recomputed).
    pub cache_corrupt: usize,
    /// Delta making (`--format json`'s `deltas`).
    pub deltas: deltas::Counts,
}

/// The variants of every content handed in.
#[derive(Debug, Default)]
pub struct Compressed {
    variants: Vec<Arc<Variants>>,
    /// Kept deltas by hashed output: `(file name, bytes)` each.
    deltas: HashMap<String, Vec<(String, Vec<u8>)>>,
    pub stats: Stats,
}

impl Compressed {
    pub fn get(&self, t: Ticket) -> &Variants {
        &self.variants[t.0]
    }

    /// The deltas kept for the hashed output `rel`.
    pub fn deltas_of(&self, rel: &str) -> &[(String, Vec<u8>)] {
        self.deltas.get(rel).map_or(&[], Vec::as_slice)
    }
}

impl Compressor {
    /// Starts one worker per thread of rayon's pool (`RAYON_NUM_THREADS` applies).
    pub fn start(settings: compress::Settings, cache: Option<Cache>, progress: &Progress) -> Self {
        let table = Arc::new(Table::default());
        let worker = {
            let (table, settings, cache) = (table.clone(), settings.clone(), cache.clone());
            let progress = progress.clone();
            move |job: Job| {
                let encoder = match job.work {
                    Work::Encode(e) => e,
                    Work::Delta { coding, dict } => {
                        let t = std::time::Instant::now();
                        let out = format::encode(coding, &job.data, &dict);
                        let us = t.elapsed().as_micros() as u64;
                        table.delta_cpu_us.fetch_add(us, Ordering::Relaxed);
                        table.delta_made(job.id, coding, out, cache.as_ref());
                        return;
                    }
                };
                let out = encoder.run(&job.data);
                if let Some((key, results)) = table.encoded(job.id, encoder, out) {
                    let v = settings.assemble(results);
                    if let Some(cache) = &cache {
                        cache.put(&key, &v);
                    }
                    table.finish(job.id, v, &progress);
                }
            }
        };
        Compressor {
            settings,
            cache,
            table,
            pool: Pool::new("staticd-compress", rayon::current_num_threads(), worker),
            progress: progress.clone(),
            deltas: None,
        }
    }

    /// Also makes deltas of the changed hashed files `finder` has earlier versions of.
    pub fn with_deltas(mut self, finder: Option<Finder>) -> Self {
        self.deltas = finder;
        self
    }

    /// Hands in each content of `e` that an output to be written wants compressed (not a
    /// symlink, not of a type WhiteNoise skips) and that is final: its source bytes once
    /// read, its rewritten bytes once rewritten. Each content once; outputs sharing it share
    /// its variants.
    pub fn want(&self, e: &mut Entry) {
        let wanted: Vec<Content> = e
            .to_write()
            .filter(|o| !o.symlink && !self.settings.skips(&o.rel))
            .map(|o| o.content)
            .collect();
        for content in wanted {
            if e.ticket(content).is_some() {
                continue;
            }
            if let Some(bytes) = e.content(content).cloned() {
                e.set_ticket(content, self.hand_in(bytes));
            }
        }
        if self.deltas.is_some() {
            self.want_deltas(e);
        }
    }

    /// Hands in the deltas of `e`'s hashed output, when it is written anew (a changed file),
    /// final, of a delta-eligible type, and has earlier versions.
    fn want_deltas(&self, e: &Entry) {
        let Some(finder) = &self.deltas else { return };
        let Some(o) = e.hashed.as_ref().filter(|o| !o.reused && !o.symlink) else {
            return;
        };
        let (Some(bytes), Some(ticket)) = (e.content(o.content), e.ticket(o.content)) else {
            return;
        };
        if !finder.eligible(&o.rel)
            || !self
                .table
                .delta_targets
                .lock()
                .expect("delta targets")
                .insert(o.rel.clone())
        {
            return;
        }
        let dicts = finder.dictionaries(&e.src.rel, &o.rel, bytes);
        if dicts.is_empty() {
            return;
        }
        self.table.delta_counts.lock().expect("delta counts").files += 1;
        let codings = finder.codings();
        for dict in dicts {
            self.hand_in_pair(o.rel.clone(), ticket, bytes.clone(), dict, &codings);
        }
    }

    fn hand_in_pair(
        &self,
        target: String,
        ticket: Ticket,
        data: Arc<[u8]>,
        d: deltas::Dictionary,
        codings: &[Coding],
    ) {
        let t = &self.table;
        let key = deltas::cache_key(&data, &d.bytes, codings);
        let cached = deltas::lookup(self.cache.as_ref(), &key);
        let id = {
            let mut pairs = t.pairs.lock().expect("delta pairs");
            pairs.push(Pair {
                target,
                ticket: ticket.0,
                identity_len: data.len(),
                dict: d.sha,
                key,
                made: cached.clone().unwrap_or_default(),
                left: if cached.is_some() { 0 } else { codings.len() },
            });
            pairs.len() - 1
        };
        let mut counts = t.delta_counts.lock().expect("delta counts");
        if cached.is_some() {
            counts.cache_hits += 1;
            return;
        }
        counts.made += 1;
        drop(counts);
        for &coding in codings {
            let cost = Encoder::Brotli.cost(data.len() + d.bytes.len());
            let work = Work::Delta {
                coding,
                dict: d.bytes.clone(),
            };
            self.pool.push(
                cost,
                Job {
                    id,
                    work,
                    data: data.clone(),
                },
            );
        }
    }

    fn hand_in(&self, data: Arc<[u8]>) -> Ticket {
        let t = &self.table;
        t.handed_in.fetch_add(1, Ordering::Relaxed);
        let key = Cache::key(&data, &self.settings);
        let id = {
            let mut s = t.slots.lock().expect("variant table");
            if let Some(&id) = s.id_of.get(&key) {
                return Ticket(id);
            }
            let id = s.slots.len();
            s.slots.push(Slot::Looking);
            s.id_of.insert(key.clone(), id);
            id
        };
        match self.cache.as_ref().map(|c| c.get(&key)) {
            Some(Lookup::Hit(v)) => {
                t.hits.fetch_add(1, Ordering::Relaxed);
                t.finish(id, v, &self.progress);
                return Ticket(id);
            }
            Some(Lookup::Corrupt) => {
                t.corrupt.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        t.misses.fetch_add(1, Ordering::Relaxed);
        let encoders = self.settings.encoders(&data);
        if encoders.is_empty() {
            // Empty content: nothing to run, nothing kept.
            let v = self.settings.assemble(Vec::new());
            if let Some(cache) = &self.cache {
                cache.put(&key, &v);
            }
            t.finish(id, v, &self.progress);
            return Ticket(id);
        }
        t.slots.lock().expect("variant table").slots[id] = Slot::Encoding {
            key,
            left: encoders.len(),
            results: Vec::new(),
        };
        for e in encoders {
            let job = Job {
                id,
                work: Work::Encode(e),
                data: data.clone(),
            };
            self.pool.push(e.cost(data.len()), job);
        }
        Ticket(id)
    }

    /// How many contents were handed in so far.
    pub fn handed_in(&self) -> usize {
        self.table.handed_in.load(Ordering::Relaxed)
    }

    /// Waits for every compression, with a progress bar of them from now on.
    pub fn finish(self) -> Compressed {
        let t = self.table.clone();
        let distinct = t.slots.lock().expect("variant table").slots.len();
        self.progress.stage("compressing", distinct);
        t.shown.store(true, Ordering::Relaxed);
        self.progress.set(t.done.load(Ordering::Relaxed));
        self.pool.finish();
        let slots = std::mem::take(&mut t.slots.lock().expect("variant table").slots);
        let variants: Vec<Arc<Variants>> = slots
            .into_iter()
            .map(|s| match s {
                Slot::Done(v) => v,
                _ => unreachable!("every job has run"),
            })
            .collect();
        let mut counts = *t.delta_counts.lock().expect("delta counts");
        counts.cpu_ms = t.delta_cpu_us.load(Ordering::Relaxed) / 1000;
        let mut kept: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
        for p in std::mem::take(&mut *t.pairs.lock().expect("delta pairs")) {
            let made = p.made.iter().filter(|m| m.is_some()).count();
            let keep = deltas::keep(
                &p.target,
                &p.dict,
                &p.made,
                p.identity_len,
                &variants[p.ticket],
            );
            counts.written += keep.len();
            counts.dropped += made - keep.len();
            kept.entry(p.target).or_default().extend(keep);
        }
        Compressed {
            variants,
            deltas: kept,
            stats: Stats {
                contents: t.handed_in.load(Ordering::Relaxed),
                compressions: t.misses.load(Ordering::Relaxed),
                cache_hits: t.hits.load(Ordering::Relaxed),
                cache_corrupt: t.corrupt.load(Ordering::Relaxed),
                deltas: counts,
            },
        }
    }
}

impl Table {
    /// Records one delta; the pair's last goes into the cache.
    fn delta_made(&self, id: usize, coding: Coding, out: Option<Vec<u8>>, cache: Option<&Cache>) {
        let mut pairs = self.pairs.lock().expect("delta pairs");
        let p = &mut pairs[id];
        p.made[coding.index()] = out;
        p.left -= 1;
        if p.left == 0 {
            if let Some(cache) = cache {
                let [dcb, dcz] = p.made.clone();
                let (key, v) = (p.key.clone(), deltas::to_cached(dcb, dcz));
                drop(pairs);
                cache.put(&key, &v);
            }
        }
    }

    /// Records one encoder's output; when it was the content's last, its key and results.
    fn encoded(
        &self,
        id: usize,
        encoder: Encoder,
        out: Option<Vec<u8>>,
    ) -> Option<(String, Results)> {
        let mut s = self.slots.lock().expect("variant table");
        let Slot::Encoding { key, left, results } = &mut s.slots[id] else {
            unreachable!("an encoder runs only for a content being encoded");
        };
        results.push((encoder, out));
        *left -= 1;
        (*left == 0).then(|| (std::mem::take(key), std::mem::take(results)))
    }

    fn finish(&self, id: usize, v: Variants, progress: &Progress) {
        self.slots.lock().expect("variant table").slots[id] = Slot::Done(Arc::new(v));
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if self.shown.load(Ordering::Relaxed) {
            progress.set(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::entry::Output;
    use crate::collect::plan::SourceFile;

    /// An entry of `bytes` with a hashed output and an original (`(rel, reused)` each).
    fn entry<'a>(src: &'a SourceFile, bytes: &[u8], outputs: &[(&str, bool)]) -> Entry<'a> {
        let mut e = Entry::new(src);
        e.bytes = Some(Arc::from(bytes));
        let out = |hashed: bool, &(rel, reused): &(&str, bool)| Output {
            rel: rel.to_string(),
            hashed,
            symlink: false,
            content: Content::Source,
            reused,
        };
        e.hashed = outputs.first().map(|o| out(true, o));
        e.original = outputs.get(1).map(|o| out(false, o));
        e
    }

    #[test]
    fn each_distinct_content_is_compressed_once_and_cached() {
        let t = tempfile::tempdir().unwrap();
        let cache = Cache::new(Some(t.path().to_path_buf()), u64::MAX);
        let text = "body { margin: 0; }\n".repeat(200);
        let files: Vec<SourceFile> = ["a.css", "b.css", "c.css", "d.png", "e.css"]
            .iter()
            .map(|rel| SourceFile {
                rel: rel.to_string(),
                abs: format!("/src/{rel}").into(),
            })
            .collect();
        let progress = Progress::new(false);
        let run = || {
            let c = Compressor::start(compress::Settings::default(), cache.clone(), &progress);
            let text = text.as_bytes();
            let mut a = entry(&files[0], text, &[("a.1.css", false), ("a.css", false)]);
            // The same bytes under another name, a reused output, a skipped type, empty.
            let mut b = entry(&files[1], text, &[("b.1.css", false)]);
            let mut reused = entry(&files[2], b"other", &[("c.1.css", true)]);
            let mut png = entry(&files[3], text, &[("d.1.png", false)]);
            let mut empty = entry(&files[4], b"", &[("e.1.css", false)]);
            for e in [&mut a, &mut b, &mut reused, &mut png, &mut empty] {
                c.want(e);
                c.want(e);
            }
            assert_eq!(c.handed_in(), 3);
            assert!(reused.ticket(Content::Source).is_none());
            assert!(png.ticket(Content::Source).is_none());
            let done = c.finish();
            let v = done.get(a.ticket(Content::Source).unwrap());
            assert_eq!(v, done.get(b.ticket(Content::Source).unwrap()));
            assert_eq!(v, &compress::Settings::default().compress(text));
            assert!(v.br.is_some() && v.gz.is_some());
            assert_eq!(done.get(empty.ticket(Content::Source).unwrap()).count(), 0);
            done.stats
        };
        let cold = run();
        assert_eq!(
            (cold.contents, cold.compressions, cold.cache_hits),
            (3, 2, 0)
        );
        let warm = run();
        assert_eq!(
            (warm.contents, warm.compressions, warm.cache_hits),
            (3, 0, 2)
        );
    }
}
