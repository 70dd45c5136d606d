//! The compressed variants of what a collect writes: each distinct content is looked up in the
//! variant cache or compressed once, whichever outputs share it.
use super::cache::{self, Cache};
use super::compress::{self, Variants};
use super::entry::Entry;
use super::report::Progress;
use super::schedule;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A content handed to the [`Compressor`]; names its variants in [`Compressed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(usize);

/// Collects the contents whose outputs want variants, then compresses them.
pub struct Compressor<'a> {
    settings: &'a compress::Settings,
    cache: Option<&'a Cache>,
    wanted: Mutex<Vec<Arc<[u8]>>>,
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
}

/// The variants of every content handed in.
#[derive(Debug, Default)]
pub struct Compressed {
    variants: Vec<Arc<Variants>>,
    pub stats: Stats,
}

impl Compressed {
    pub fn get(&self, t: Ticket) -> &Variants {
        &self.variants[t.0]
    }
}

impl<'a> Compressor<'a> {
    pub fn new(settings: &'a compress::Settings, cache: Option<&'a Cache>) -> Self {
        Compressor {
            settings,
            cache,
            wanted: Mutex::new(Vec::new()),
        }
    }

    /// Hands in each content of `e` that an output to be written wants compressed: not a
    /// symlink, and not of a type WhiteNoise skips. Each content once; outputs sharing it
    /// share its variants.
    pub fn want(&self, e: &mut Entry) {
        let wanted: Vec<_> = e
            .to_write()
            .filter(|o| !o.symlink && !self.settings.skips(&o.rel))
            .map(|o| o.content)
            .collect();
        for content in wanted {
            if e.ticket(content).is_none() {
                let bytes = e
                    .content(content)
                    .expect("the bytes of an output to write are loaded")
                    .clone();
                e.set_ticket(content, self.hand_in(bytes));
            }
        }
    }

    fn hand_in(&self, bytes: Arc<[u8]>) -> Ticket {
        let mut wanted = self.wanted.lock().expect("wanted list");
        wanted.push(bytes);
        Ticket(wanted.len() - 1)
    }

    /// Compresses every content handed in.
    pub fn finish(self, progress: &Progress) -> Compressed {
        let contents = self.wanted.into_inner().expect("wanted list");
        progress.stage("compressing", contents.len());
        compress_all(&contents, self.settings, self.cache, progress)
    }
}

/// Variants for each content: each distinct byte string is looked up in the cache or
/// compressed once. Every encoder of every missed content is a job of its own, and the jobs
/// run longest first across the pool ([`schedule::longest_first`]): the two cores stay busy
/// to the end, and one big file's brotli and gzip run side by side.
fn compress_all(
    contents: &[Arc<[u8]>],
    settings: &compress::Settings,
    cache: Option<&Cache>,
    progress: &Progress,
) -> Compressed {
    let keys: Vec<String> = contents
        .par_iter()
        .map(|c| Cache::key(c, settings))
        .collect();
    let mut rep_of_key: HashMap<&str, usize> = HashMap::new();
    for (c, k) in keys.iter().enumerate() {
        rep_of_key.entry(k.as_str()).or_insert(c);
    }
    let distinct: Vec<(&str, usize)> = rep_of_key.iter().map(|(k, c)| (*k, *c)).collect();
    let corrupt = AtomicUsize::new(0);
    let found: Vec<Option<Variants>> = distinct
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
    let computed: HashMap<&str, Arc<Variants>> = found
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
            (key, Arc::new(v))
        })
        .collect();
    Compressed {
        variants: keys.iter().map(|k| computed[k.as_str()].clone()).collect(),
        stats: Stats {
            contents: contents.len(),
            compressions: missed.len(),
            cache_hits: distinct.len() - missed.len(),
            cache_corrupt: corrupt.into_inner(),
        },
    }
}
