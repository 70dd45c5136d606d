//! Post-processing: fingerprint every file, rewrite CSS/JS in dependency order.
use super::naming::hashed_name;
use super::plan::SourceFile;
use super::report::Log;
use super::rewrite::{self, Kind, Resolved};
use super::state::{Stat, State};
use super::{graph, CollectOptions};
use crate::django::Discovery;
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Result of post-processing, indexed like the planned files.
pub struct Processed {
    /// Final hashed name of every file.
    pub names: Vec<String>,
    /// New bytes of CSS/JS files whose references changed; `None` = the original bytes.
    pub rewritten_content: Vec<Option<Vec<u8>>>,
    /// CSS/JS files run through the rewriter this time.
    pub rewritten: usize,
    /// Files fingerprinted this time (the rest reused the previous run's digest).
    pub hashed: usize,
    /// Digest of each source's bytes, and each CSS/JS file's reference targets, for the state.
    pub fingerprints: Vec<String>,
    pub targets: Vec<Vec<String>>,
    /// Files whose hashed output exists only in the old tree (bytes never loaded).
    pub carried: Vec<bool>,
}

/// (file index, hashed name, new bytes if they differ from the original, rewritten this run).
type Rewritten = (usize, String, Option<Vec<u8>>, bool);

/// The collected tree as references see it (Django asks `hashed_files`, then whether STATIC_ROOT
/// has the path): the collected files, and every directory that holds one.
struct Tree<'a> {
    files: HashMap<&'a str, usize>,
    /// Directories of the collected files, `""` (STATIC_ROOT itself) included.
    dirs: HashSet<&'a str>,
}

/// What a reference's lookup key names in a [`Tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Located {
    File(usize),
    Directory,
    Missing,
}

impl<'a> Tree<'a> {
    fn new(rels: impl Iterator<Item = &'a str>) -> Self {
        let mut files = HashMap::new();
        let mut dirs = HashSet::from([""]);
        for (i, rel) in rels.enumerate() {
            files.insert(rel, i);
            let mut at = rel.len();
            while let Some(slash) = rel[..at].rfind('/') {
                if !dirs.insert(&rel[..slash]) {
                    break;
                }
                at = slash;
            }
        }
        Tree { files, dirs }
    }

    fn locate(&self, key: &str) -> Located {
        match self.files.get(key) {
            Some(&i) => Located::File(i),
            None if self.dirs.contains(rewrite::directory_of(key).as_str()) => Located::Directory,
            None => Located::Missing,
        }
    }
}

/// An unchanged CSS/JS file whose targets all resolve as they did last time (files to the same
/// names, directories still there, missing ones still missing) keeps its output: its name from
/// the last run, its file in STATIC_ROOT (carried over, never read).
fn reuse(
    node: &Node,
    unchanged: Option<&super::state::FileState>,
    resolve: &dyn Fn(&str) -> Resolved,
    before: Option<&dyn Fn(&str) -> Resolved>,
    d: &Discovery,
) -> Option<Rewritten> {
    let p = unchanged?;
    let before = before?;
    for t in &node.targets {
        if resolve(t) != before(t) {
            return None;
        }
    }
    // The hashed file is carried over from the old tree; its bytes are not needed.
    d.static_root
        .join(&p.name)
        .is_file()
        .then(|| (node.file, p.name.clone(), None, false))
}

/// An adjustable (CSS/JS) file and what it points at.
struct Node {
    file: usize,
    kind: Kind,
    /// `None` when the file is unchanged since the last run and was not scanned.
    text: Option<String>,
    refs: Vec<rewrite::Reference>,
    targets: Vec<String>,
}

pub fn process(
    files: &[SourceFile],
    contents: &[Arc<[u8]>],
    stats: &[Option<Stat>],
    prev: Option<&State>,
    d: &Discovery,
    opts: &CollectOptions,
    log: &Log,
) -> Result<Processed> {
    // The previous run's record of a file, if its source is provably unchanged.
    let unchanged: Vec<Option<&super::state::FileState>> = files
        .iter()
        .zip(stats)
        .map(|(f, st)| {
            let p = prev?.files.get(&f.rel)?;
            (p.abs == f.abs && Some(p.stat) == *st).then_some(p)
        })
        .collect();
    let tree = Tree::new(files.iter().map(|f| f.rel.as_str()));
    // The previous run's tree, to tell whether an unchanged file's targets resolve as before.
    let prev_rels: Vec<&str> = prev
        .map(|p| p.files.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let prev_tree = Tree::new(prev_rels.iter().copied());
    let resolve_before = |key: &str| match prev_tree.locate(key) {
        Located::File(i) => Resolved::File(
            prev.expect("a previous tree").files[prev_rels[i]]
                .name
                .clone(),
        ),
        Located::Directory => Resolved::Directory,
        Located::Missing => Resolved::Missing,
    };
    let ropts = rewrite::Options {
        static_url: &d.static_url,
        js_modules: d.storage.js_modules || opts.js_modules,
    };
    let algo = opts.hash;

    // Non-adjustable files: hashed from their bytes. Adjustable ones: decoded and scanned.
    let scanned: Vec<Result<Option<Node>>> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let Some(kind) = rewrite::kind_of(&f.rel) else {
                return Ok(None);
            };
            // An unchanged file is not scanned again, unless a target of it is missing now:
            // that needs its lines for the report.
            if let Some(p) = unchanged[i] {
                if p.targets.iter().all(|t| tree.locate(t) != Located::Missing) {
                    return Ok(Some(Node {
                        file: i,
                        kind,
                        text: None,
                        refs: Vec::new(),
                        targets: p.targets.clone(),
                    }));
                }
            }
            // Unchanged sources were not read.
            let read;
            let bytes = match unchanged[i].is_some() && contents[i].is_empty() {
                true => {
                    read = std::fs::read(&f.abs)
                        .with_context(|| format!("cannot read {}", f.abs.display()))?;
                    &read[..]
                }
                false => &contents[i][..],
            };
            let text = match std::str::from_utf8(bytes) {
                Ok(t) => t.to_string(),
                Err(e) => bail!(
                    "Post-processing '{}' failed! {} is not valid UTF-8 (invalid byte at offset {}); \
                     Django reads CSS and JS files as UTF-8: re-save it as UTF-8 or ignore it with -i",
                    f.rel,
                    f.abs.display(),
                    e.valid_up_to()
                ),
            };
            let refs = rewrite::references(&f.rel, kind, &text, &ropts)
                .map_err(|e| anyhow::anyhow!("Post-processing '{}' failed! {e}", f.rel))?;
            Ok(Some(Node {
                file: i,
                kind,
                text: Some(text),
                targets: refs.iter().map(|r| r.target.clone()).collect(),
                refs,
            }))
        })
        .collect();
    let mut nodes = Vec::new();
    let mut node_of = vec![usize::MAX; files.len()];
    for r in scanned {
        if let Some(n) = r? {
            node_of[n.file] = nodes.len();
            nodes.push(n);
        }
    }

    // Every target must be a collected file (Django: "could not be found").
    let mut missing = Vec::new();
    for n in &nodes {
        for r in &n.refs {
            if tree.locate(&r.target) == Located::Missing {
                missing.push(format!(
                    "{}:{}: {} references '{}', which is not a collected static file\n    {}",
                    files[n.file].rel,
                    r.line,
                    r.matched,
                    r.target,
                    r.line_text.trim()
                ));
            }
        }
    }
    if !missing.is_empty() {
        if d.storage.manifest_strict {
            bail!(
                "{} missing reference{}:\n{}\n(fix the reference, collect the file, or set manifest_strict = False to leave such references unchanged)",
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join("\n")
            );
        }
        for m in &missing {
            log.warn(format!(
                "warning: left unchanged (manifest_strict is False): {m}"
            ));
        }
    }

    // Names of everything that is not CSS/JS are final now.
    // Unchanged sources keep their digest: no hashing beyond a stat.
    let fingerprints: Vec<String> = (0..files.len())
        .into_par_iter()
        .map(|i| match unchanged[i] {
            Some(p) => p.fingerprint.clone(),
            None => algo.fingerprint(&contents[i]),
        })
        .collect();
    let mut hashed = (0..files.len())
        .filter(|&i| node_of[i] == usize::MAX && unchanged[i].is_none())
        .count();
    let mut names: Vec<Option<String>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (node_of[i] == usize::MAX).then(|| hashed_name(&f.rel, &fingerprints[i])))
        .collect();

    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.targets
                .iter()
                .filter_map(|t| match tree.locate(t) {
                    Located::File(t) if node_of[t] != usize::MAX => Some(node_of[t]),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let levels = graph::levels(&deps).map_err(|cycles| {
        let described: Vec<String> = cycles
            .iter()
            .map(|c| {
                let mut rels: Vec<&str> = c.iter().map(|&n| files[nodes[n].file].rel.as_str()).collect();
                rels.sort();
                format!("Post-processing '{}' failed! These files reference each other in a cycle, so none of them can get a stable hashed name.", rels.join(", "))
            })
            .collect();
        anyhow::anyhow!("{}", described.join("\n"))
    })?;

    let mut rewritten_content: Vec<Option<Vec<u8>>> = vec![None; files.len()];
    let mut carried = vec![false; files.len()];
    let mut rewritten = 0;
    for level in levels {
        let results: Vec<Result<Rewritten>> = level
            .par_iter()
            .map(|&n| {
                let node = &nodes[n];
                let f = &files[node.file];
                let resolve = |target: &str| match tree.locate(target) {
                    Located::File(t) => Resolved::File(
                        names[t]
                            .clone()
                            .expect("targets are named before the files that reference them"),
                    ),
                    Located::Directory => Resolved::Directory,
                    Located::Missing => Resolved::Missing,
                };
                let before = prev.map(|_| &resolve_before as &dyn Fn(&str) -> Resolved);
                if let Some(reused) = reuse(node, unchanged[node.file], &resolve, before, d) {
                    return Ok(reused);
                }
                // Unchanged sources were not read; one whose targets were renamed is read now.
                let lazily_read = node.text.is_none() && contents[node.file].is_empty();
                let source: std::borrow::Cow<[u8]> = if lazily_read {
                    std::fs::read(&f.abs)
                        .with_context(|| format!("cannot read {}", f.abs.display()))?
                        .into()
                } else {
                    (&contents[node.file][..]).into()
                };
                let text = match &node.text {
                    Some(t) => t.clone(),
                    None => String::from_utf8(source.to_vec())?,
                };
                let out = rewrite::rewrite(&f.rel, node.kind, &text, &ropts, &resolve)
                    .map_err(|e| anyhow::anyhow!("Post-processing '{}' failed! {e}", f.rel))?;
                let bytes = out.into_bytes();
                let name = hashed_name(&f.rel, &algo.fingerprint(&bytes));
                let changed = lazily_read || bytes[..] != source[..];
                Ok((node.file, name, changed.then_some(bytes), true))
            })
            .collect();
        for r in results {
            let (file, name, bytes, did_rewrite) = r?;
            carried[file] = !did_rewrite;
            names[file] = Some(name);
            if did_rewrite {
                rewritten += 1;
                hashed += 1;
            }
            rewritten_content[file] = bytes;
        }
    }
    Ok(Processed {
        names: names
            .into_iter()
            .map(|n| n.expect("every file named"))
            .collect(),
        rewritten_content,
        rewritten,
        hashed,
        carried,
        fingerprints,
        targets: {
            let mut t = vec![Vec::new(); files.len()];
            for n in nodes {
                t[n.file] = n.targets;
            }
            t
        },
    })
}
