//! Why a collect failed: one error type whose variants carry the path (and line) they are
//! about, in the style of ripgrep's `ignore::Error`, so that callers tell the kinds apart
//! without parsing messages: watch mode retries a collect that raced with a file being
//! replaced, and `--format json` reports a stable [`Error::kind`].
use super::missing::{self, MissingReference};
use super::rewrite;
use serde::Serialize;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// References whose target is missing and whose rule is `error` (the default), all of
    /// them, sorted by file and line.
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
    /// (Boxed: a reference is large, and every `Result` of a collect carries the biggest
    /// variant's size.)
    #[error("Post-processing '{path}' failed! {error}")]
    Rewrite {
        path: String,
        error: Box<rewrite::Error>,
    },
    /// A bundler manifest (collect/bundler.rs) that is not the manifest its name and place say
    /// it is: a `.vite/manifest.json` that is not JSON or has a chunk without a string `file`.
    /// Line and column as serde_json counts them (1-based; column 0 at the end of a line).
    #[error(
        "{}:{line}:{column}: not a valid Vite manifest: {message} (rebuild the front end, or \
         delete the file to collect its directory as plain files)",
        path.display()
    )]
    BundlerManifest {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A source that cannot be read: permissions, not a regular file (a FIFO, a socket, a
    /// device), an I/O error.
    #[error("cannot read {}: {err}", path.display())]
    UnreadableSource { path: PathBuf, err: io::Error },
    /// A source the walk listed that is gone when read (removed or renamed meanwhile, as an
    /// editor's atomic save does with its temporary file).
    #[error(
        "cannot read {}: it vanished during the collect (removed or renamed after the sources \
         were listed); run it again",
        path.display()
    )]
    SourceVanished { path: PathBuf },
    /// A source directory that cannot be walked, or a broken symlink in one.
    #[error("{}", walk_message(path, err))]
    Walk { path: PathBuf, err: io::Error },
    /// A symlinked directory in a source that points back to one of its ancestors.
    #[error(
        "symlink loop: {} points back to its ancestor {}; remove the link or add its directory \
         to the ignore patterns",
        path.display(),
        ancestor.display()
    )]
    SymlinkLoop { path: PathBuf, ancestor: PathBuf },
    /// A source whose name is not UTF-8 (it could not be a manifest key or a URL).
    #[error("{}: file name is not valid UTF-8", path.display())]
    FileNameNotUtf8 { path: PathBuf },
    /// STATIC_ROOT is (inside) a source directory (Django's staticfiles.E002, extended to
    /// nesting: collecting into a source tree would collect its own output next time).
    #[error(
        "STATIC_ROOT {} is inside the static source directory {}; point STATIC_ROOT somewhere \
         else (Django check staticfiles.E002)",
        root.display(),
        source_dir.display()
    )]
    RootInsideSource { root: PathBuf, source_dir: PathBuf },
    /// STATIC_ROOT has no directory name (`/`, `..`): staticd's files beside it need one.
    #[error("STATIC_ROOT {} has no directory name", root.display())]
    RootWithoutName { root: PathBuf },
    /// A hashed file the old tree held (so it was not read) vanished from STATIC_ROOT during
    /// the collect.
    #[error("{rel} vanished from STATIC_ROOT during the collect; run it again")]
    OutputVanished { rel: String },
    /// An output path that would leave STATIC_ROOT.
    #[error("refusing to write {rel:?}: not a plain path below STATIC_ROOT")]
    UnsafeOutputPath { rel: String },
    /// Any other I/O failure (staging, locking, creating STATIC_ROOT's parent): what was
    /// being done, to which path, and why.
    #[error("cannot {action} {}: {err}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// The staged tree could not be put in place; the previous one still is.
    #[error("cannot publish {}: {err}", path.display())]
    Publish { path: PathBuf, err: io::Error },
}

impl Error {
    /// An I/O failure doing `action` to `path`.
    pub fn io(action: &'static str, path: &Path, err: io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            err,
        }
    }

    /// A source that could not be read: [`Error::SourceVanished`] if it is gone.
    pub fn read(path: &Path, err: io::Error) -> Error {
        match err.kind() {
            io::ErrorKind::NotFound => Error::SourceVanished {
                path: path.to_path_buf(),
            },
            _ => Error::UnreadableSource {
                path: path.to_path_buf(),
                err,
            },
        }
    }

    /// A stable snake_case name of the kind, for `--format json` and watch mode.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::MissingReferences(_) => "missing_reference",
            Error::Cycles(_) => "cycle",
            Error::NotUtf8 { .. } => "not_utf8",
            Error::Rewrite { .. } => "rewrite_refused",
            Error::BundlerManifest { .. } => "bundler_manifest",
            Error::UnreadableSource { .. } | Error::Walk { .. } => "unreadable_source",
            Error::SourceVanished { .. } => "source_vanished",
            Error::SymlinkLoop { .. } => "symlink_loop",
            Error::FileNameNotUtf8 { .. } => "file_name_not_utf8",
            Error::RootInsideSource { .. } => "root_inside_source",
            Error::RootWithoutName { .. } => "root_without_name",
            Error::OutputVanished { .. } => "output_vanished",
            Error::UnsafeOutputPath { .. } => "unsafe_output_path",
            Error::Io { .. } => "io",
            Error::Publish { .. } => "publish",
        }
    }

    /// A file changed under the collect: running it again may well succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::SourceVanished { .. } | Error::OutputVanished { .. }
        )
    }

    /// The file the error is about: its collected path (the manifest key, as Django names
    /// it) for a post-processing error, its filesystem path otherwise. `None` for the errors
    /// about several files (missing references, cycles).
    pub fn path(&self) -> Option<String> {
        let fs = |p: &Path| Some(p.display().to_string());
        match self {
            Error::MissingReferences(_) | Error::Cycles(_) => None,
            Error::NotUtf8 { path, .. } | Error::Rewrite { path, .. } => Some(path.clone()),
            Error::OutputVanished { rel } | Error::UnsafeOutputPath { rel } => Some(rel.clone()),
            Error::UnreadableSource { path, .. }
            | Error::SourceVanished { path }
            | Error::Walk { path, .. }
            | Error::BundlerManifest { path, .. }
            | Error::SymlinkLoop { path, .. }
            | Error::FileNameNotUtf8 { path }
            | Error::Io { path, .. }
            | Error::Publish { path, .. } => fs(path),
            Error::RootInsideSource { root, .. } | Error::RootWithoutName { root } => fs(root),
        }
    }

    /// The 1-based line the error is about, where there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::Rewrite { error, .. } => match error.as_ref() {
                rewrite::Error::Escapes { reference, .. } => Some(reference.line),
            },
            Error::BundlerManifest { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// The column on [`Error::line`], where the error has one.
    pub fn column(&self) -> Option<usize> {
        match self {
            Error::BundlerManifest { column, .. } => Some(*column),
            _ => None,
        }
    }

    /// The error as `--format json` reports it.
    pub fn report(&self) -> Report<'_> {
        let (references, cycles): (&[MissingReference], &[Vec<String>]) = match self {
            Error::MissingReferences(refs) => (refs, &[]),
            Error::Cycles(c) => (&[], c),
            _ => (&[], &[]),
        };
        Report {
            kind: self.kind(),
            message: self.to_string(),
            path: self.path(),
            line: self.line(),
            column: self.column(),
            references,
            cycles,
        }
    }
}

/// A failed collect in `--format json`: `{"error": REPORT}` on stdout.
#[derive(Debug, Serialize)]
pub struct Report<'e> {
    /// [`Error::kind`]; `discovery` for a failure to ask Django, `other` for anything else.
    pub kind: &'static str,
    /// The message the text output prints after `error: `.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `bundler_manifest`: the column on `line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// `missing_reference`: each one (file, line, reference, target).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub references: &'e [MissingReference],
    /// `cycle`: the collected paths of each cycle.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub cycles: &'e [Vec<String>],
}

impl Report<'_> {
    /// The report of an error that is not a collect's (discovery, options).
    pub fn other(kind: &'static str, message: String) -> Report<'static> {
        Report {
            kind,
            message,
            path: None,
            line: None,
            column: None,
            references: &[],
            cycles: &[],
        }
    }
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

fn walk_message(path: &Path, err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => format!(
            "{}: broken symlink or file removed during the walk",
            path.display()
        ),
        _ => format!("{}: {err}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> MissingReference {
        MissingReference {
            path: "css/a.css".into(),
            line: 2,
            reference: "url(../img/nope.png)".into(),
            target: "img/nope.png".into(),
            line_text: "  h1 { background: url(../img/nope.png); }".into(),
        }
    }

    #[test]
    fn errors_keep_their_messages() {
        let e = Error::MissingReferences(vec![reference()]).to_string();
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

    #[test]
    fn a_source_gone_when_read_vanished_others_are_unreadable() {
        let p = Path::new("/src/a.css");
        let gone = Error::read(p, io::ErrorKind::NotFound.into());
        assert_eq!(gone.kind(), "source_vanished");
        assert!(gone.is_transient());
        let denied = Error::read(p, io::ErrorKind::PermissionDenied.into());
        assert_eq!(denied.kind(), "unreadable_source");
        assert!(!denied.is_transient());
        assert_eq!(denied.path().as_deref(), Some("/src/a.css"));
        assert!(denied.to_string().starts_with("cannot read /src/a.css: "));
    }

    #[test]
    fn the_json_report_carries_kind_path_line_and_references() {
        let v = serde_json::to_value(Error::MissingReferences(vec![reference()]).report()).unwrap();
        assert_eq!(v["kind"], "missing_reference");
        assert_eq!(v["references"][0]["path"], "css/a.css");
        assert_eq!(v["references"][0]["line"], 2);
        assert_eq!(v["references"][0]["target"], "img/nope.png");
        assert!(v.get("path").is_none() && v.get("cycles").is_none());
        let v = serde_json::to_value(
            Error::NotUtf8 {
                path: "css/l.css".into(),
                abs: "/src/css/l.css".into(),
                offset: 3,
            }
            .report(),
        )
        .unwrap();
        assert_eq!(v["kind"], "not_utf8");
        assert_eq!(v["path"], "css/l.css");
        assert!(v["message"].as_str().unwrap().contains("not valid UTF-8"));
        assert!(v.get("line").is_none() && v.get("column").is_none());
        let v = serde_json::to_value(
            Error::BundlerManifest {
                path: "/p/dist/.vite/manifest.json".into(),
                line: 2,
                column: 17,
                message: "invalid type: integer `3`, expected a string".into(),
            }
            .report(),
        )
        .unwrap();
        assert_eq!(v["kind"], "bundler_manifest");
        assert_eq!(v["path"], "/p/dist/.vite/manifest.json");
        assert_eq!((&v["line"], &v["column"]), (&2.into(), &17.into()));
        assert!(v["message"]
            .as_str()
            .unwrap()
            .starts_with("/p/dist/.vite/manifest.json:2:17: not a valid Vite manifest: "));
    }
}
