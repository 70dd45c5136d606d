//! Discovery: what Django would collect, asked of Django itself.
//!
//! An embedded Python program (`discover.py`) runs with the project's interpreter and prints
//! one JSON document ([`Discovery`]). Rust does all walking and work afterwards. Without an
//! importable Django, `staticd.toml` in the project gives the same facts.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything collect needs to know about a project.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Discovery {
    /// `django.get_version()`; `None` when the facts came from `staticd.toml`.
    pub django_version: Option<String>,
    /// Absolute STATIC_ROOT.
    pub static_root: PathBuf,
    /// STATIC_URL as Django uses it when rewriting (script prefix applied: `"static/"` → `"/static/"`).
    pub static_url: String,
    /// Finder sources in Django's order: first match wins.
    pub sources: Vec<Source>,
    /// Effective ignore patterns, normalised and deduplicated exactly as collectstatic does
    /// (app config defaults unless `--no-default-ignore`, plus `-i` patterns).
    pub ignore_patterns: Vec<String>,
    pub storage: Storage,
    pub whitenoise: WhiteNoise,
}

/// One finder location.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A directory walked by Rust (FileSystemFinder, AppDirectoriesFinder).
    Dir {
        /// Dotted path of the finder class.
        finder: String,
        /// `""` or the STATICFILES_DIRS prefix (no trailing slash).
        prefix: String,
        root: PathBuf,
    },
    /// Any other finder: the files its `list(ignore_patterns)` returned, in order.
    Files {
        finder: String,
        files: Vec<ListedFile>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ListedFile {
    /// The collected (prefixed) relative path, with `/` separators.
    pub path: String,
    /// Absolute path of the source file.
    pub abs: PathBuf,
}

/// The `STORAGES["staticfiles"]` backend and the settings of it that change output.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Storage {
    /// Dotted class path, e.g. `django.contrib.staticfiles.storage.ManifestStaticFilesStorage`.
    pub class: String,
    /// Subclass of `ManifestFilesMixin`: hashed names and a manifest are produced.
    pub manifest: bool,
    pub manifest_name: String,
    pub manifest_strict: bool,
    /// `support_js_module_import_aggregation`.
    pub js_modules: bool,
    /// The rewrite patterns of a manifest storage (`HashedFilesMixin._patterns`), named, when
    /// discovery read them: a subset of Django's own that a subclass chose. `None`: Django's
    /// defaults (a `staticd.toml` project, or facts remembered by an older staticd).
    #[serde(default)]
    pub rules: Option<crate::collect::rewrite::Rules>,
    /// A WhiteNoise compressed storage: `.br`/`.gz` variants are expected.
    pub compress: bool,
}

/// `WHITENOISE_*` settings that change collect's output.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct WhiteNoise {
    pub keep_only_hashed_files: bool,
    /// `None` = WhiteNoise's default skip list.
    pub skip_compress_extensions: Option<Vec<String>>,
    pub manifest_strict: Option<bool>,
}

/// How to run discovery.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Directory holding `manage.py` (or `staticd.toml`).
    pub project: PathBuf,
    /// `--python`; else `$VIRTUAL_ENV/bin/python`, else `PROJECT/.venv/bin/python`, else `python3`.
    pub python: Option<PathBuf>,
    /// `--settings`; else the `DJANGO_SETTINGS_MODULE` default found in `manage.py`.
    pub settings: Option<String>,
    /// `-i/--ignore` patterns from the command line.
    pub extra_ignore: Vec<String>,
    /// `--no-default-ignore`.
    pub no_default_ignore: bool,
    /// Reuse the facts of an earlier identical discovery when nothing they depend on changed.
    pub memo: bool,
}

pub mod config;
pub mod interpreter;
pub mod memo;
mod python;

pub use interpreter::InterpreterSource;
pub use python::DiscoverError;

/// `StaticFilesConfig.ignore_patterns` (`django/contrib/staticfiles/apps.py`).
pub const DEFAULT_IGNORE_PATTERNS: [&str; 3] = ["CVS", ".*", "*~"];

/// The embedded discovery program.
pub const DISCOVER_PY: &str = include_str!("discover.py");

/// What Django would collect for `opts.project`.
///
/// With a `manage.py` (or an explicit settings module) Django itself is asked, through the
/// project's interpreter. Without one, or when that interpreter cannot import Django,
/// `PROJECT/staticd.toml` is used. Errors are [`DiscoverError`]s (downcast the `anyhow::Error`)
/// whose messages say what to do.
pub fn discover(opts: &DiscoverOptions) -> anyhow::Result<Discovery> {
    discover_reporting(opts).map(|(d, _)| d)
}

/// How a discovery was made, and what it cost (`collect -v 3`).
#[derive(Debug, Clone)]
pub struct DiscoverReport {
    pub how: How,
    pub elapsed: std::time::Duration,
}

#[derive(Debug, Clone)]
pub enum How {
    /// From `staticd.toml`.
    Toml,
    /// A remembered discovery, `checked` records found unchanged.
    Remembered { checked: usize },
    /// Python ran. `miss`: why no remembered discovery was used (`None` without `memo`);
    /// `stored`: the records remembered, or why it was not remembered.
    Python {
        miss: Option<String>,
        stored: Option<Result<usize, String>>,
    },
}

impl std::fmt::Display for DiscoverReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.elapsed.as_secs_f64() * 1000.0;
        match &self.how {
            How::Toml => write!(f, "discovery: {ms:.1} ms (staticd.toml)"),
            How::Remembered { checked } => write!(
                f,
                "discovery: {ms:.1} ms (remembered; {checked} recorded paths unchanged)"
            ),
            How::Python { miss, stored } => {
                write!(f, "discovery: {ms:.1} ms (Python ran")?;
                if let Some(m) = miss {
                    write!(f, ": {m}")?;
                }
                match stored {
                    Some(Ok(n)) => write!(f, "; remembered, {n} paths recorded)"),
                    Some(Err(why)) => write!(f, "; not remembered: {why})"),
                    None => write!(f, ")"),
                }
            }
        }
    }
}

/// [`discover`], also telling how the facts were obtained.
pub fn discover_reporting(opts: &DiscoverOptions) -> anyhow::Result<(Discovery, DiscoverReport)> {
    let started = std::time::Instant::now();
    let report = |how| DiscoverReport {
        how,
        elapsed: started.elapsed(),
    };
    let run = match python::plan(opts, &|k| std::env::var(k).ok())? {
        python::Plan::Toml(d) => return Ok((d, report(How::Toml))),
        python::Plan::Python(run) => run,
    };
    let inputs = memo::Inputs::new(opts, &run.project, &run.python, &run.settings);
    let miss = if opts.memo {
        match memo::load(&inputs) {
            memo::Lookup::Hit(d, checked) => return Ok((d, report(How::Remembered { checked }))),
            memo::Lookup::Miss(why) => Some(why),
        }
    } else {
        None
    };
    let wall = std::time::SystemTime::now();
    let (d, depends) = python::run_python(&run, opts)?;
    let stored = match (opts.memo, depends) {
        (false, _) => None,
        (true, None) => Some(Err("staticd.toml stood in for Django".to_string())),
        (true, Some(depends)) => Some(memo::store(&inputs, &d, &depends, wall)),
    };
    Ok((d, report(How::Python { miss, stored })))
}

/// Python's `os.path.normpath` (POSIX).
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let initial = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut comps: Vec<&str> = Vec::new();
    for c in path.split('/') {
        if c.is_empty() || c == "." {
            continue;
        }
        if c != ".." || (initial == 0 && comps.is_empty()) || comps.last() == Some(&"..") {
            comps.push(c);
        } else if !comps.is_empty() {
            comps.pop();
        }
    }
    let out = format!("{}{}", "/".repeat(initial), comps.join("/"));
    if out.is_empty() {
        ".".to_string()
    } else {
        out
    }
}

/// collectstatic's `list({os.path.normpath(p) for p in patterns})`, sorted for determinism.
pub fn normalize_ignore_patterns<I: IntoIterator<Item = String>>(patterns: I) -> Vec<String> {
    let set: std::collections::BTreeSet<String> =
        patterns.into_iter().map(|p| normpath(&p)).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normpath_matches_python() {
        for (i, o) in [
            ("", "."),
            (".", "."),
            ("*.css", "*.css"),
            ("a//b", "a/b"),
            ("a/./b/", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("../../a/..", "../.."),
            ("/../a", "/a"),
            ("//a//b", "//a/b"),
            ("///a", "/a"),
            ("*/vendor/*.js", "*/vendor/*.js"),
            (".*", ".*"),
            ("a/..", "."),
        ] {
            assert_eq!(normpath(i), o, "normpath({i:?})");
        }
    }

    #[test]
    fn ignore_patterns_dedup_sorted() {
        let v = normalize_ignore_patterns(["CVS", ".*", "*~", "./CVS", "b//c"].map(String::from));
        assert_eq!(v, vec!["*~", ".*", "CVS", "b/c"]);
    }
}
