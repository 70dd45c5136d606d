//! What to collect: every finder source walked in Django's order, ignore rules applied,
//! first match wins (spec §1.1–§1.2).
use super::ignore::IgnoreRules;
use super::Error;
use crate::django::Source;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One file that will be collected.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Collected (prefixed) path with `/` separators: the manifest key.
    pub rel: String,
    /// Where it is read from.
    pub abs: PathBuf,
}

/// A file that lost to an earlier one with the same collected path.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub rel: String,
    pub abs: PathBuf,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<SourceFile>,
    pub conflicts: Vec<Conflict>,
}

/// Walks all sources in parallel (one task per source) and merges them in finder order.
pub fn plan(sources: &[Source], ignore: &IgnoreRules) -> Result<Plan, Error> {
    let listed: Vec<Vec<SourceFile>> = sources
        .par_iter()
        .map(|s| match s {
            Source::Dir { prefix, root, .. } => walk(prefix, root, ignore),
            Source::Files { files, .. } => Ok(files
                .iter()
                .map(|f| SourceFile {
                    rel: f.path.replace('\\', "/"),
                    abs: f.abs.clone(),
                })
                .collect()),
        })
        .collect::<Result<_, Error>>()?;
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut plan = Plan::default();
    for file in listed.into_iter().flatten() {
        if seen.insert(file.rel.clone(), ()).is_some() {
            plan.conflicts.push(Conflict {
                rel: file.rel,
                abs: file.abs,
            });
        } else {
            plan.files.push(file);
        }
    }
    Ok(plan)
}

/// `get_files(storage, ignore_patterns)`: files before subdirectories, symlinked directories
/// followed (a loop is an error), directories pruned by basename.
fn walk(prefix: &str, root: &Path, ignore: &IgnoreRules) -> Result<Vec<SourceFile>, Error> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by(|a, b| {
            (a.file_type().is_dir(), a.file_name()).cmp(&(b.file_type().is_dir(), b.file_name()))
        })
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !e.file_type().is_dir()
                || !ignore.ignores_dir(&e.file_name().to_string_lossy())
        });
    for entry in walker {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let rel_path = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir stays below root");
        let rel = rel_path.to_str().ok_or_else(|| Error::FileNameNotUtf8 {
            path: entry.path().to_path_buf(),
        })?;
        if ignore.ignores_file(rel) {
            continue;
        }
        let rel = if prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{prefix}/{rel}")
        };
        out.push(SourceFile {
            rel,
            abs: entry.path().to_path_buf(),
        });
    }
    Ok(out)
}

fn walk_error(root: &Path, e: walkdir::Error) -> Error {
    let path = e.path().unwrap_or(root).to_path_buf();
    if let Some(ancestor) = e.loop_ancestor() {
        return Error::SymlinkLoop {
            ancestor: ancestor.to_path_buf(),
            path,
        };
    }
    let err = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("cannot walk"));
    Error::Walk { path, err }
}

/// Refuses a STATIC_ROOT that is also a source (Django's staticfiles.E002, extended to
/// nesting: collecting into a source tree would collect its own output next time).
pub fn check_root(sources: &[Source], static_root: &Path) -> Result<(), Error> {
    let root = normalize(static_root);
    for s in sources {
        if let Source::Dir { root: src, .. } = s {
            let src = normalize(src);
            if root == src || root.starts_with(&src) {
                return Err(Error::RootInsideSource {
                    root: static_root.to_path_buf(),
                    source_dir: src,
                });
            }
        }
    }
    Ok(())
}

fn normalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn src(prefix: &str, root: &Path) -> Source {
        Source::Dir {
            finder: "x".into(),
            prefix: prefix.into(),
            root: root.into(),
        }
    }

    #[test]
    fn first_wins_prefix_and_ignores() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        for (p, c) in [
            ("a/test/file.txt", "A"),
            ("a/test/backup~", "x"),
            ("a/CVS/x.txt", "x"),
            ("a/.git/x.txt", "x"),
            ("a/vendor/m.js", "x"),
            ("b/test/file.txt", "B"),
            ("b/test/vendor/m.js", "x"),
            ("b/other.txt", "x"),
        ] {
            let path = t.path().join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, c).unwrap();
        }
        let ignore = IgnoreRules::new(&["CVS", ".*", "*~", "*/vendor/*.js"]);
        let plan = plan(&[src("", &a), src("", &b), src("pre", &b)], &ignore).unwrap();
        let rels: Vec<_> = plan.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rels,
            vec![
                "test/file.txt",
                "vendor/m.js",
                "other.txt",
                "pre/other.txt",
                "pre/test/file.txt"
            ]
        );
        assert_eq!(plan.files[0].abs, a.join("test/file.txt"));
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0].abs, b.join("test/file.txt"));
    }

    #[test]
    fn symlink_loop_is_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a/sub");
        fs::create_dir_all(&a).unwrap();
        std::os::unix::fs::symlink(t.path().join("a"), a.join("loop")).unwrap();
        let err = plan(&[src("", &t.path().join("a"))], &IgnoreRules::default()).unwrap_err();
        assert!(err.to_string().contains("symlink loop"), "{err}");
    }

    #[test]
    fn missing_root_is_skipped_and_nested_root_refused() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(&[src("", &t.path().join("nope"))], &IgnoreRules::default()).unwrap();
        assert!(p.files.is_empty());
        assert!(check_root(&[src("", t.path())], &t.path().join("static")).is_err());
        assert!(check_root(&[src("", &t.path().join("a"))], &t.path().join("static")).is_ok());
    }
}
