//! The "post-processed" count Django's collectstatic prints for the run staticd just did, so
//! the text summary reads as Django's would (issue 11, point 7).
use super::entry::Entry;
use super::{compress_settings, CollectOptions};
use crate::django::Discovery;
use rayon::prelude::*;

/// `HashedFilesMixin.post_process` yields every file matching its patterns (`*.css`, `*.js`,
/// matched like `fnmatchcase` against the whole path) as processed, whether or not anything
/// was substituted, and any other file only when its hashed copy did not exist yet. A bundled
/// file is not post-processed: it has no hashed copy.
pub fn post_processed(
    d: &Discovery,
    opts: &CollectOptions,
    entries: &[Entry],
    hashed_is_new: impl Fn(&Entry) -> bool,
) -> usize {
    if !d.storage.manifest || opts.no_post_process {
        return 0;
    }
    entries
        .iter()
        .filter(|e| !e.bundled && (adjustable(&e.src.rel, d) || hashed_is_new(e)))
        .count()
}

/// Paths Django's manifest storage rewrites: those of a group with patterns (`*.css`, `*.js`,
/// unless the storage's own `patterns` left a group empty).
fn adjustable(rel: &str, d: &Discovery) -> bool {
    match (super::rewrite::kind_of(rel), d.storage.rules) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(kind), Some(rules)) => rules.adjusts(kind),
    }
}

/// WhiteNoise's storage compresses every original and hashed file again on every run and
/// yields each variant it keeps as post-processed: the variants now in STATIC_ROOT.
pub fn whitenoise_variants<'e>(
    d: &Discovery,
    opts: &CollectOptions,
    entries: &'e [Entry],
    hashed: impl Fn(&'e Entry) -> &'e str,
) -> usize {
    if !d.storage.compress || opts.no_post_process || !d.storage.manifest {
        return 0;
    }
    let settings = compress_settings(d, opts);
    let mut names: Vec<&str> = entries.iter().map(hashed).collect();
    // A bundled file's name is its original's: counted once.
    if !d.whitenoise.keep_only_hashed_files {
        names.extend(
            entries
                .iter()
                .filter(|e| !e.bundled)
                .map(|e| e.src.rel.as_str()),
        );
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
