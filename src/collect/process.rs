//! Post-processing of CSS/JS: scan references, check them, order the files by them, and
//! rewrite and name each once its targets are named.
use super::entry::{read_source, Entry};
use super::missing::{self, Action, MissingReference};
use super::naming::{hashed_name, HashAlgo};
use super::plan::SourceFile;
use super::rewrite::{self, Resolved};
use super::run::in_order;
use super::state::State;
use super::{graph, CollectOptions, Error};
use crate::django::Discovery;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

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

/// The previous run's tree: whether an unchanged file's targets resolve as they did then.
struct Before<'p> {
    state: &'p State,
    rels: Vec<&'p str>,
    tree: Tree<'p>,
}

impl<'p> Before<'p> {
    fn new(state: &'p State) -> Self {
        let rels: Vec<&str> = state.files.keys().map(String::as_str).collect();
        let tree = Tree::new(rels.iter().copied());
        Before { state, rels, tree }
    }

    fn resolve(&self, key: &str) -> Resolved {
        match self.tree.locate(key) {
            Located::File(i) => Resolved::File(self.state.files[self.rels[i]].name.clone()),
            Located::Directory => Resolved::Directory,
            Located::Missing => Resolved::Missing,
        }
    }
}

/// What post-processing needs besides the files.
struct Context<'a> {
    tree: Tree<'a>,
    before: Option<Before<'a>>,
    ropts: rewrite::Options<'a>,
    algo: HashAlgo,
    static_root: &'a Path,
}

/// What is done with a CSS/JS file as soon as it is named (its outputs planned, its bytes
/// handed to the compressor), while the next level is rewritten.
pub type Ready<'r> = dyn Fn(&mut Entry) -> Result<(), Error> + Sync + 'r;

/// Post-processing of the CSS/JS files among `entries` (indexed like `files`, the plan): scan
/// their references, check that each names a collected file or directory, order them by
/// their references, and rewrite and name them level by level, each level's files handed to
/// `ready` once named. Every other file is named by its bytes already
/// ([`Entry::name_by_content`]).
pub fn process(
    entries: &mut [Entry],
    files: &[SourceFile],
    prev: Option<&State>,
    d: &Discovery,
    opts: &CollectOptions,
    ready: &Ready,
) -> Result<(), Error> {
    let cx = Context {
        tree: Tree::new(files.iter().map(|f| f.rel.as_str())),
        before: prev.map(Before::new),
        ropts: rewrite::Options {
            static_url: &d.static_url,
            js_modules: d.storage.js_modules || opts.js_modules,
            rules: d.storage.rules,
        },
        algo: opts.hash,
        static_root: &d.static_root,
    };
    in_order(entries.par_iter_mut().map(|e| scan(e, &cx)).collect())?;
    check_missing(entries, &cx.tree, &opts.missing)?;
    for level in order(entries, &cx.tree)? {
        rewrite_level(entries, &level, &cx)?;
        let mut in_level = vec![false; entries.len()];
        for &i in &level {
            in_level[i] = true;
        }
        in_order(
            entries
                .par_iter_mut()
                .enumerate()
                .filter(|(i, _)| in_level[*i])
                .map(|(_, e)| ready(e))
                .collect(),
        )?;
    }
    Ok(())
}

/// Stage "scan": the references of a CSS/JS file. An unchanged file is not scanned again,
/// unless a target of it is missing now: that needs its lines for the report.
fn scan(e: &mut Entry, cx: &Context) -> Result<(), Error> {
    let Some(kind) = e.kind else {
        return Ok(());
    };
    if let Some(p) = e.unchanged() {
        if p.targets
            .iter()
            .all(|t| cx.tree.locate(t) != Located::Missing)
        {
            e.targets = p.targets.clone();
            return Ok(());
        }
    }
    // Unchanged sources were not read.
    let bytes = e.source_bytes()?;
    let text = decode(e.src, &bytes)?;
    e.refs =
        rewrite::references(&e.src.rel, kind, text, &cx.ropts).map_err(|error| Error::Rewrite {
            path: e.src.rel.clone(),
            error: Box::new(error),
        })?;
    e.targets = e.refs.iter().map(|r| r.target.clone()).collect();
    Ok(())
}

/// A CSS/JS file's text: Django reads them as UTF-8.
fn decode<'b>(src: &SourceFile, bytes: &'b [u8]) -> Result<&'b str, Error> {
    std::str::from_utf8(bytes).map_err(|e| Error::NotUtf8 {
        path: src.rel.clone(),
        abs: src.abs.clone(),
        offset: e.valid_up_to(),
    })
}

/// Stage "check": every target must be a collected file or a directory holding one (Django:
/// "could not be found"), unless a rule of the policy lets it through (kept in the entry).
fn check_missing(
    entries: &mut [Entry],
    tree: &Tree,
    policy: &missing::Policy,
) -> Result<(), Error> {
    let mut errors = Vec::new();
    for e in entries.iter_mut() {
        for r in &e.refs {
            if tree.locate(&r.target) != Located::Missing {
                continue;
            }
            let m = MissingReference {
                path: e.src.rel.clone(),
                line: r.line,
                reference: r.matched.clone(),
                target: r.target.clone(),
                line_text: r.line_text.clone(),
            };
            match policy.action(&r.target) {
                Action::Error => errors.push(m),
                Action::Warn | Action::Ignore => e.missing.push(m),
            }
        }
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        return Err(Error::MissingReferences(errors));
    }
    Ok(())
}

/// Stage "order": the CSS/JS files (entry indices) in levels, each file after every file it
/// references; a cycle has no order (Django: "Max post-process passes exceeded").
fn order(entries: &[Entry], tree: &Tree) -> Result<Vec<Vec<usize>>, Error> {
    let nodes: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].kind.is_some())
        .collect();
    let mut node_of = vec![usize::MAX; entries.len()];
    for (n, &i) in nodes.iter().enumerate() {
        node_of[i] = n;
    }
    let deps: Vec<Vec<usize>> = nodes
        .iter()
        .map(|&i| {
            entries[i]
                .targets
                .iter()
                .filter_map(|t| match tree.locate(t) {
                    Located::File(t) if node_of[t] != usize::MAX => Some(node_of[t]),
                    _ => None,
                })
                .collect()
        })
        .collect();
    match graph::levels(&deps) {
        Ok(levels) => Ok(levels
            .into_iter()
            .map(|level| level.into_iter().map(|n| nodes[n]).collect())
            .collect()),
        Err(cycles) => Err(Error::Cycles(
            cycles
                .iter()
                .map(|c| {
                    let mut rels: Vec<String> = c
                        .iter()
                        .map(|&n| entries[nodes[n]].src.rel.clone())
                        .collect();
                    rels.sort();
                    rels
                })
                .collect(),
        )),
    }
}

/// A CSS/JS file's name and bytes once its targets are named.
struct Named {
    name: String,
    /// The rewritten bytes, when they differ from the source's.
    rewritten: Option<Vec<u8>>,
    /// The source bytes, when they had to be read for this.
    read: Option<Arc<[u8]>>,
    /// Run through the rewriter (not carried over).
    rewrote: bool,
}

/// Stage "rewrite" for one level of the order: its files in parallel (every target of each is
/// named already), then their names recorded for the next level.
fn rewrite_level(entries: &mut [Entry], level: &[usize], cx: &Context) -> Result<(), Error> {
    let results: Vec<Result<Named, Error>> = level
        .par_iter()
        .map(|&i| rewrite_one(&entries[i], entries, cx))
        .collect();
    for (&i, r) in level.iter().zip(results) {
        let named = r?;
        let e = &mut entries[i];
        e.name = Some(named.name);
        e.rewrote = named.rewrote;
        e.carried = !named.rewrote;
        e.rewritten = named.rewritten.map(Arc::from);
        if named.read.is_some() {
            e.bytes = named.read;
        }
    }
    Ok(())
}

fn rewrite_one(e: &Entry, entries: &[Entry], cx: &Context) -> Result<Named, Error> {
    let resolve = |target: &str| match cx.tree.locate(target) {
        Located::File(t) => Resolved::File(
            entries[t]
                .name
                .clone()
                .expect("targets are named before the files that reference them"),
        ),
        Located::Directory => Resolved::Directory,
        Located::Missing => Resolved::Missing,
    };
    if let Some(name) = carry(e, &resolve, cx) {
        return Ok(Named {
            name,
            rewritten: None,
            read: None,
            rewrote: false,
        });
    }
    // Unchanged sources were not read; one whose targets were renamed is read now.
    let (source, read) = match &e.bytes {
        Some(b) => (b.clone(), None),
        None => {
            let b: Arc<[u8]> = read_source(&e.src.abs)?.into();
            (b.clone(), Some(b))
        }
    };
    let kind = e.kind.expect("only CSS/JS is rewritten");
    let out = rewrite::rewrite(
        &e.src.rel,
        kind,
        decode(e.src, &source)?,
        &cx.ropts,
        &resolve,
    )
    .map_err(|error| Error::Rewrite {
        path: e.src.rel.clone(),
        error: Box::new(error),
    })?;
    let bytes = out.into_bytes();
    let name = hashed_name(&e.src.rel, &cx.algo.fingerprint(&bytes));
    let changed = bytes[..] != source[..];
    Ok(Named {
        name,
        rewritten: changed.then_some(bytes),
        read,
        rewrote: true,
    })
}

/// An unchanged CSS/JS file whose targets all resolve as they did last time (files to the same
/// names, directories still there, missing ones still missing) keeps its output: its name from
/// the last run, its file in STATIC_ROOT (carried over, never read).
fn carry(e: &Entry, resolve: &dyn Fn(&str) -> Resolved, cx: &Context) -> Option<String> {
    let p = e.unchanged()?;
    let before = cx.before.as_ref()?;
    if e.targets.iter().any(|t| resolve(t) != before.resolve(t)) {
        return None;
    }
    cx.static_root
        .join(&p.name)
        .is_file()
        .then(|| p.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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

    /// Entries for `files` with the bytes `texts` (as many as given), scanned.
    fn scanned<'a>(files: &'a [SourceFile], texts: &[&str]) -> Vec<Entry<'a>> {
        let cx = Context {
            tree: Tree::new(files.iter().map(|f| f.rel.as_str())),
            before: None,
            ropts: rewrite::Options {
                static_url: "/static/",
                js_modules: false,
                rules: None,
            },
            algo: HashAlgo::Md5,
            static_root: Path::new("/nonexistent"),
        };
        let mut entries: Vec<Entry> = files.iter().map(Entry::new).collect();
        for (e, t) in entries.iter_mut().zip(texts) {
            e.bytes = Some(Arc::from(t.as_bytes()));
            scan(e, &cx).unwrap();
        }
        entries
    }

    fn sources(rels: &[&str]) -> Vec<SourceFile> {
        rels.iter()
            .map(|r| SourceFile {
                rel: r.to_string(),
                abs: PathBuf::from("/src").join(r),
            })
            .collect()
    }

    #[test]
    fn missing_targets_fail_or_pass_by_the_policy() {
        let files = sources(&["css/a.css", "css/b.css", "img/x.png"]);
        let tree = Tree::new(files.iter().map(|f| f.rel.as_str()));
        let texts = [
            "a { background: url(../img/x.png); }\n/*# sourceMappingURL=a.css.map */",
            "b { background: url(nope.png); }",
            "",
        ];
        let mut entries = scanned(&files, &texts);
        assert_eq!(entries[0].targets, ["img/x.png", "css/a.css.map"]);
        let err = check_missing(&mut entries, &tree, &missing::Policy::default()).unwrap_err();
        let Error::MissingReferences(refs) = err else {
            panic!("{err}");
        };
        let got: Vec<_> = refs.iter().map(|m| (m.path.as_str(), m.line)).collect();
        assert_eq!(got, [("css/a.css", 2), ("css/b.css", 1)]);
        let policy =
            missing::Policy::new(None, vec![missing::Rule::new(Action::Warn, "*.map")]).unwrap();
        let mut entries = scanned(&files, &texts);
        assert!(check_missing(&mut entries, &tree, &policy).is_err());
        let mut entries = scanned(&files, &texts[..1]);
        check_missing(&mut entries, &tree, &policy).unwrap();
        assert_eq!(entries[0].missing.len(), 1);
        assert_eq!(entries[0].missing[0].target, "css/a.css.map");
    }

    #[test]
    fn files_are_ordered_after_their_targets_and_cycles_named() {
        let files = sources(&["css/a.css", "css/b.css", "css/c.css", "img/x.png"]);
        let tree = Tree::new(files.iter().map(|f| f.rel.as_str()));
        let entries = scanned(
            &files,
            &[
                "@import url(b.css);",
                "@import url(c.css); p { background: url(../img/x.png); }",
                "",
                "",
            ],
        );
        assert_eq!(order(&entries, &tree).unwrap(), [vec![2], vec![1], vec![0]]);
        let entries = scanned(
            &files,
            &["@import url(b.css);", "@import url(a.css);", "", ""],
        );
        let err = order(&entries, &tree).unwrap_err();
        let Error::Cycles(cycles) = err else {
            panic!("{err}");
        };
        assert_eq!(cycles, [vec!["css/a.css".to_string(), "css/b.css".into()]]);
    }
}
