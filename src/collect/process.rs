//! Post-processing: fingerprint every file, rewrite CSS/JS in dependency order.
use super::missing::{self, Action, MissingReference};
use super::naming::hashed_name;
use super::plan::SourceFile;
use super::rewrite::{self, Kind, Resolved};
use super::state::{Stat, State};
use super::{graph, CollectOptions};
use crate::django::Discovery;
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

/// Why post-processing failed (inside the `anyhow::Error` collect returns; downcast to tell).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// References whose target is missing and whose rule is `error` (the default), all of them.
    #[error("{}", missing_message(.0))]
    MissingReferences(Vec<MissingReference>),
    /// CSS/JS files that reference each other in a cycle: no fixed point, so no stable names
    /// (Django: "Max post-process passes exceeded"). Each cycle's collected paths, sorted.
    #[error("{}", cycles_message(.0))]
    Cycles(Vec<Vec<String>>),
    /// A CSS/JS file that is not UTF-8 (Django: UnicodeDecodeError).
    #[error(
        "Post-processing '{path}' failed! {} is not valid UTF-8 (invalid byte at offset {offset}); \
         Django reads CSS and JS files as UTF-8: re-save it as UTF-8 or ignore it with -i",
        abs.display()
    )]
    NotUtf8 {
        path: String,
        abs: PathBuf,
        offset: usize,
    },
    /// A reference the rewriter refuses (outside STATIC_ROOT); not subject to the policy.
    #[error("Post-processing '{path}' failed! {error}")]
    Rewrite { path: String, error: rewrite::Error },
}

fn missing_message(refs: &[MissingReference]) -> String {
    let list: Vec<String> = refs
        .iter()
        .map(|m| format!("{m}\n    {}", m.line_text.trim()))
        .collect();
    format!(
        "{} missing reference{}:\n{}\n{}",
        refs.len(),
        if refs.len() == 1 { "" } else { "s" },
        list.join("\n"),
        missing::hint(refs)
    )
}

fn cycles_message(cycles: &[Vec<String>]) -> String {
    let described: Vec<String> = cycles
        .iter()
        .map(|c| {
            format!(
                "Post-processing '{}' failed! These files reference each other in a cycle, so \
                 none of them can get a stable hashed name.",
                c.join(", ")
            )
        })
        .collect();
    described.join("\n")
}

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
    /// Missing references a `warn` or `ignore` rule let through (left unchanged), per file.
    pub missing: Vec<Vec<MissingReference>>,
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
) -> Result<Processed> {
    // The previous run's record of a file, if its source is provably unchanged.
    let unchanged: Vec<Option<&super::state::FileState>> = files
        .iter()
        .zip(stats)
        .map(|(f, st)| {
            let p = prev?.files.get(&f.rel)?;
            p.describes(f, *st).then_some(p)
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
            // A bundled file is never rewritten (bundler.rs says why).
            let Some(kind) = rewrite::kind_of(&f.rel).filter(|_| !f.bundled) else {
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
                Err(e) => {
                    return Err(Error::NotUtf8 {
                        path: f.rel.clone(),
                        abs: f.abs.clone(),
                        offset: e.valid_up_to(),
                    }
                    .into())
                }
            };
            let refs = rewrite::references(&f.rel, kind, &text, &ropts).map_err(|error| {
                Error::Rewrite {
                    path: f.rel.clone(),
                    error,
                }
            })?;
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

    // Every target must be a collected file or a directory holding one (Django: "could not be
    // found"), unless a rule of the policy lets it through.
    let mut errors = Vec::new();
    let mut let_through = vec![Vec::new(); files.len()];
    for n in &nodes {
        for r in &n.refs {
            if tree.locate(&r.target) != Located::Missing {
                continue;
            }
            let m = MissingReference {
                path: files[n.file].rel.clone(),
                line: r.line,
                reference: r.matched.clone(),
                target: r.target.clone(),
                line_text: r.line_text.clone(),
            };
            match opts.missing.action(&r.target) {
                Action::Error => errors.push(m),
                Action::Warn | Action::Ignore => let_through[n.file].push(m),
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        return Err(Error::MissingReferences(errors).into());
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
        .filter(|&i| node_of[i] == usize::MAX && unchanged[i].is_none() && !files[i].bundled)
        .count();
    let mut names: Vec<Option<String>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (node_of[i] == usize::MAX).then(|| match f.bundled {
                true => f.rel.clone(),
                false => hashed_name(&f.rel, &fingerprints[i]),
            })
        })
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
        Error::Cycles(
            cycles
                .iter()
                .map(|c| {
                    let mut rels: Vec<String> = c
                        .iter()
                        .map(|&n| files[nodes[n].file].rel.clone())
                        .collect();
                    rels.sort();
                    rels
                })
                .collect(),
        )
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
                let out = rewrite::rewrite(&f.rel, node.kind, &text, &ropts, &resolve).map_err(
                    |error| Error::Rewrite {
                        path: f.rel.clone(),
                        error,
                    },
                )?;
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
        missing: let_through,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_knows_files_and_the_directories_holding_them() {
        let rels = ["css/app.css", "img/icons/a.png", "robots.txt"];
        let tree = Tree::new(rels.iter().copied());
        assert_eq!(tree.locate("css/app.css"), Located::File(0));
        assert_eq!(tree.locate("robots.txt"), Located::File(2));
        for dir in [
            "img",
            "img/icons",
            "img/icons/",
            "css/",
            "css/.",
            "",
            ".",
            "img/x/..",
        ] {
            assert_eq!(tree.locate(dir), Located::Directory, "{dir:?}");
        }
        for missing in [
            "img/a.png",
            "icons",
            "img/icon",
            "cs",
            "css/app.css/x",
            "nodir/",
        ] {
            assert_eq!(tree.locate(missing), Located::Missing, "{missing:?}");
        }
    }

    #[test]
    fn errors_keep_their_messages() {
        let m = MissingReference {
            path: "css/a.css".into(),
            line: 2,
            reference: "url(../img/nope.png)".into(),
            target: "img/nope.png".into(),
            line_text: "  h1 { background: url(../img/nope.png); }".into(),
        };
        let e = Error::MissingReferences(vec![m]).to_string();
        assert!(
            e.starts_with(
                "1 missing reference:\ncss/a.css:2: url(../img/nope.png) references 'img/nope.png', \
                 which is not a collected static file\n    h1 { background: url(../img/nope.png); }\n\
                 (fix the reference or collect the file;"
            ),
            "{e}"
        );
        assert!(e.contains("--missing warn:'*.png'"), "{e}");
        let e = Error::Cycles(vec![vec!["bar.css".into(), "foo.css".into()]]).to_string();
        assert!(e.starts_with("Post-processing 'bar.css, foo.css' failed! These files reference each other in a cycle"), "{e}");
    }
}
