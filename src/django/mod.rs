//! Discovery: what Django would collect, asked of Django itself.
//!
//! An embedded Python program (`discover.py`) runs with the project's interpreter and prints
//! one JSON document ([`Discovery`]). Rust does all walking and work afterwards. Without an
//! importable Django, `staticd.toml` in the project gives the same facts.
use serde::Deserialize;
use std::path::PathBuf;

/// Everything collect needs to know about a project.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
pub struct ListedFile {
    /// The collected (prefixed) relative path, with `/` separators.
    pub path: String,
    /// Absolute path of the source file.
    pub abs: PathBuf,
}

/// The `STORAGES["staticfiles"]` backend and the settings of it that change output.
#[derive(Debug, Clone, Deserialize)]
pub struct Storage {
    /// Dotted class path, e.g. `django.contrib.staticfiles.storage.ManifestStaticFilesStorage`.
    pub class: String,
    /// Subclass of `ManifestFilesMixin`: hashed names and a manifest are produced.
    pub manifest: bool,
    pub manifest_name: String,
    pub manifest_strict: bool,
    /// `support_js_module_import_aggregation`.
    pub js_modules: bool,
    /// A WhiteNoise compressed storage: `.br`/`.gz` variants are expected.
    pub compress: bool,
}

/// `WHITENOISE_*` settings that change collect's output.
#[derive(Debug, Clone, Default, Deserialize)]
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
}

/// TEMP stub so `serve` builds on its branch; the real discovery lands from the discovery branch.
pub fn discover(_: &DiscoverOptions) -> anyhow::Result<Discovery> {
    anyhow::bail!("project discovery is not available in this build; pass --root and --static-url")
}
