//! `staticd.toml`: the facts of [`Discovery`] for projects without an importable Django.
//!
//! ```toml
//! static_root = "static"        # relative to the project
//! static_url = "/static/"
//! ignore = ["CVS", ".*", "*~"]  # optional; default Django's
//! [[sources]]
//! root = "assets"
//! prefix = ""                   # optional
//! [storage]                     # optional
//! manifest = true
//! compress = true
//! [whitenoise]                  # optional
//! keep_only_hashed_files = false
//! [collect]                     # optional: staticd's own collect options, not Django facts
//! missing = ["warn:*.map"]      # missing-reference rules (validated by `collect::missing`)
//! bundled = ["dist/assets/*"]   # files a bundler already named by content (`collect::bundler`)
//! ```
//!
//! The same file holds `staticd serve`'s sections (`[serve]`, `[static]`, `[[upstream]]`…),
//! read by `serve::config_file`: here a top-level table or array of tables that is not one
//! of [`KEYS`] is left to it, while any other unknown key is an error. `static_root` is
//! needed only when the facts come from this file (no importable Django).
use super::{
    normalize_ignore_patterns, Discovery, Source, Storage, WhiteNoise, DEFAULT_IGNORE_PATTERNS,
};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "staticd.toml";

/// The top-level keys read here (every field of [`Config`]); the tables of the rest of the
/// file are `staticd serve`'s.
pub const KEYS: [&str; 8] = [
    "static_root",
    "static_url",
    "ignore",
    "sources",
    "storage",
    "whitenoise",
    "collect",
    // `remote::config`'s, not serve's.
    "publish",
];

/// The finder a `[[sources]]` entry stands for (it is a STATICFILES_DIRS entry).
pub const TOML_FINDER: &str = "django.contrib.staticfiles.finders.FileSystemFinder";

/// A `staticd.toml` example, for error messages.
pub const EXAMPLE: &str = r#"static_root = "static"        # where files are collected, relative to the project
static_url = "/static/"
ignore = ["CVS", ".*", "*~"]  # optional; these are Django's defaults

[[sources]]                   # one per directory, searched in order (first match wins)
root = "assets"
prefix = ""                   # optional

[storage]                     # optional
manifest = true               # hashed names + staticfiles.json (ManifestStaticFilesStorage)
compress = true               # .gz/.br variants (WhiteNoise)"#;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Config {
    /// Required when the facts come from this file ([`Config::to_discovery`]).
    pub static_root: Option<PathBuf>,
    #[serde(default = "default_static_url")]
    pub static_url: String,
    /// Replaces Django's default ignore patterns when given.
    pub ignore: Option<Vec<String>>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub whitenoise: WhiteNoiseConfig,
    #[serde(default)]
    pub collect: CollectConfig,
    /// `[publish]`: how to reach an object store; validated by `remote::config`, which reads
    /// it for Django projects too.
    #[serde(default)]
    pub publish: Option<toml::Table>,
}

fn default_static_url() -> String {
    "/static/".to_string()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub root: PathBuf,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Dotted class path reported in [`Storage::class`]; derived from the flags when absent.
    pub class: Option<String>,
    pub manifest: bool,
    pub manifest_name: String,
    pub manifest_strict: bool,
    pub js_modules: bool,
    pub compress: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            class: None,
            manifest: false,
            manifest_name: "staticfiles.json".to_string(),
            manifest_strict: true,
            js_modules: false,
            compress: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WhiteNoiseConfig {
    pub keep_only_hashed_files: bool,
    pub skip_compress_extensions: Option<Vec<String>>,
    pub manifest_strict: Option<bool>,
}

/// `[collect]`: options of `staticd collect` itself. They are not facts about the project, so
/// they are not part of [`Discovery`]; the collect command reads them from here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// Missing-reference rules, `ACTION:PATTERN` (checked by `collect::missing::Policy::new`).
    pub missing: Vec<String>,
    /// Globs of files already named by content by a bundler (`collect::bundler::Globs`).
    pub bundled: Vec<String>,
}

/// Parse and validate `staticd.toml` text. `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
    let cfg = parse_facts(text, path)?;
    // Unknown top-level keys are not denied by serde (serve's sections are not fields here,
    // and `flatten` would cost the other errors their line numbers): checked here.
    let top: toml::Table = text.parse().unwrap_or_default();
    for (k, v) in top.iter().filter(|(k, _)| !KEYS.contains(&k.as_str())) {
        let table = match v {
            toml::Value::Table(_) => true,
            toml::Value::Array(a) => !a.is_empty() && a.iter().all(toml::Value::is_table),
            _ => false,
        };
        if !table {
            anyhow::bail!(
                "invalid {}: unknown field `{k}`, expected one of {}\nExample:\n{}",
                path.display(),
                KEYS.map(|k| format!("`{k}`")).join(", "),
                EXAMPLE
            );
        }
    }
    Ok(cfg)
}

/// [`parse`] without the check of unknown top-level keys (`serve::config_file` checks the
/// whole file's keys itself).
pub fn parse_facts(text: &str, path: &Path) -> anyhow::Result<Config> {
    let cfg: Config = toml::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "invalid {}: {}\nExample:\n{}",
            path.display(),
            e.to_string().trim_end(),
            EXAMPLE
        )
    })?;
    if cfg
        .static_root
        .as_ref()
        .is_some_and(|r| r.as_os_str().is_empty())
    {
        anyhow::bail!("invalid {}: static_root must not be empty", path.display());
    }
    if cfg.static_url.is_empty() || !cfg.static_url.ends_with('/') {
        anyhow::bail!(
            "invalid {}: static_url must end with a slash (got {:?}), e.g. static_url = \"/static/\"",
            path.display(),
            cfg.static_url
        );
    }
    for s in &cfg.sources {
        if s.prefix.ends_with('/') {
            // Django's staticfiles.E003
            anyhow::bail!(
                "invalid {}: the prefix {:?} of source {:?} must not end with a slash",
                path.display(),
                s.prefix,
                s.root.display()
            );
        }
    }
    Ok(cfg)
}

/// Read `PROJECT/staticd.toml` if it exists.
pub fn load(project: &Path) -> anyhow::Result<Option<Config>> {
    let path = project.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// `"static/"` → `"/static/"`: what Django's script-prefix handling does with a relative STATIC_URL.
fn script_prefixed(url: &str) -> String {
    if url.starts_with('/') || url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("/{url}")
    }
}

impl Config {
    /// The discovery this configuration describes, for a project at `project` (absolute);
    /// an error when the file has no `static_root`.
    pub fn to_discovery(
        &self,
        project: &Path,
        extra_ignore: &[String],
        no_default_ignore: bool,
    ) -> anyhow::Result<Discovery> {
        let Some(static_root) = &self.static_root else {
            anyhow::bail!(
                "invalid {}: missing field `static_root` (needed when Django cannot be asked)\nExample:\n{}",
                project.join(FILE_NAME).display(),
                EXAMPLE
            );
        };
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                project.join(p)
            }
        };
        let mut patterns: Vec<String> = extra_ignore.to_vec();
        if !no_default_ignore {
            match &self.ignore {
                Some(v) => patterns.extend(v.iter().cloned()),
                None => patterns.extend(DEFAULT_IGNORE_PATTERNS.iter().map(|s| s.to_string())),
            }
        }
        let mut sources: Vec<Source> = Vec::new();
        for s in &self.sources {
            let root = abs(&s.root);
            if !root.is_dir() {
                tracing::warn!(
                    "staticd.toml: source directory {} does not exist; skipped",
                    root.display()
                );
                continue;
            }
            let dup = sources.iter().any(|x| matches!(x, Source::Dir { prefix, root: r, .. } if *prefix == s.prefix && *r == root));
            if !dup {
                sources.push(Source::Dir {
                    finder: TOML_FINDER.to_string(),
                    prefix: s.prefix.clone(),
                    root,
                });
            }
        }
        let st = &self.storage;
        let class = st.class.clone().unwrap_or_else(|| {
            match (st.manifest, st.compress) {
                (true, true) => "whitenoise.storage.CompressedManifestStaticFilesStorage",
                (true, false) => "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
                (false, true) => "whitenoise.storage.CompressedStaticFilesStorage",
                (false, false) => "django.contrib.staticfiles.storage.StaticFilesStorage",
            }
            .to_string()
        });
        // WhiteNoise's manifest storage takes WHITENOISE_MANIFEST_STRICT over the storage's own value.
        let manifest_strict = match (st.compress && st.manifest, self.whitenoise.manifest_strict) {
            (true, Some(v)) => v,
            _ => st.manifest_strict,
        };
        Ok(Discovery {
            django_version: None,
            static_root: abs(static_root),
            static_url: script_prefixed(&self.static_url),
            sources,
            ignore_patterns: normalize_ignore_patterns(patterns),
            storage: Storage {
                class,
                manifest: st.manifest,
                manifest_name: st.manifest_name.clone(),
                manifest_strict,
                js_modules: st.js_modules,
                rules: None,
                compress: st.compress,
            },
            whitenoise: WhiteNoise {
                keep_only_hashed_files: self.whitenoise.keep_only_hashed_files,
                skip_compress_extensions: self.whitenoise.skip_compress_extensions.clone(),
                manifest_strict: self.whitenoise.manifest_strict,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/proj/staticd.toml")
    }

    #[test]
    fn parses_full_example() {
        let cfg = parse(EXAMPLE, p()).unwrap();
        assert_eq!(cfg.static_root, Some(PathBuf::from("static")));
        assert_eq!(cfg.static_url, "/static/");
        assert_eq!(
            cfg.ignore,
            Some(vec!["CVS".into(), ".*".into(), "*~".into()])
        );
        assert_eq!(
            cfg.sources,
            vec![SourceConfig {
                root: "assets".into(),
                prefix: String::new()
            }]
        );
        assert!(cfg.storage.manifest && cfg.storage.compress);
        assert_eq!(cfg.storage.manifest_name, "staticfiles.json");
        assert!(cfg.storage.manifest_strict);
        assert!(!cfg.storage.js_modules);
    }

    #[test]
    fn minimal_defaults() {
        let cfg = parse("static_root = \"/srv/static\"\n", p()).unwrap();
        assert_eq!(cfg.static_url, "/static/");
        assert_eq!(cfg.ignore, None);
        assert!(cfg.sources.is_empty());
        assert_eq!(cfg.storage, StorageConfig::default());
        assert_eq!(cfg.whitenoise, WhiteNoiseConfig::default());
        let d = cfg.to_discovery(Path::new("/proj"), &[], false).unwrap();
        assert_eq!(d.static_root, PathBuf::from("/srv/static"));
        assert_eq!(d.ignore_patterns, vec!["*~", ".*", "CVS"]);
        assert_eq!(
            d.storage.class,
            "django.contrib.staticfiles.storage.StaticFilesStorage"
        );
        assert!(!d.storage.manifest && !d.storage.compress);
        assert_eq!(d.django_version, None);
    }

    #[test]
    fn to_discovery_resolves_and_normalises() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("assets")).unwrap();
        std::fs::create_dir_all(dir.path().join("vendor")).unwrap();
        let text = r#"
static_root = "out"
static_url = "assets/"
ignore = ["*.scss", "a//b/../c", "*.scss"]
[[sources]]
root = "assets"
[[sources]]
root = "vendor"
prefix = "lib"
[[sources]]
root = "assets"
[[sources]]
root = "missing"
[storage]
manifest = true
compress = true
manifest_strict = true
[whitenoise]
manifest_strict = false
keep_only_hashed_files = true
skip_compress_extensions = []
"#;
        let cfg = parse(text, p()).unwrap();
        let d = cfg
            .to_discovery(dir.path(), &["extra/*.js".to_string()], false)
            .unwrap();
        assert_eq!(d.static_root, dir.path().join("out"));
        assert_eq!(d.static_url, "/assets/");
        assert_eq!(d.ignore_patterns, vec!["*.scss", "a/c", "extra/*.js"]);
        assert_eq!(d.sources.len(), 2);
        match &d.sources[1] {
            Source::Dir {
                finder,
                prefix,
                root,
            } => {
                assert_eq!(finder, TOML_FINDER);
                assert_eq!(prefix, "lib");
                assert_eq!(root, &dir.path().join("vendor"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            d.storage.class,
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
        );
        assert!(
            !d.storage.manifest_strict,
            "WHITENOISE_MANIFEST_STRICT wins for WhiteNoise's storage"
        );
        assert!(d.whitenoise.keep_only_hashed_files);
        assert_eq!(d.whitenoise.skip_compress_extensions, Some(vec![]));
        assert_eq!(d.whitenoise.manifest_strict, Some(false));

        let d = cfg
            .to_discovery(dir.path(), &["x".to_string()], true)
            .unwrap();
        assert_eq!(d.ignore_patterns, vec!["x"]);
    }

    #[test]
    fn errors_are_clear() {
        // Without static_root the file is valid (serve's sections alone), but it cannot
        // stand in for Django.
        let cfg = parse("static_url = \"/s/\"\n[serve]\nworkers = 2\n", p()).unwrap();
        let e = cfg
            .to_discovery(Path::new("/proj"), &[], false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid /proj/staticd.toml: "), "{e}");
        assert!(e.contains("missing field `static_root`"), "{e}");
        assert!(e.contains("[[sources]]"), "the example is shown: {e}");

        let e = parse("static_root = \"s\"\nstatic_rot = 1\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `static_rot`"), "{e}");

        let e = parse("static_root = \"s\"\nstatic_url = \"/static\"\n", p())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid /proj/staticd.toml: static_url must end with a slash (got \"/static\"), e.g. static_url = \"/static/\""
        );

        let e = parse(
            "static_root = \"s\"\n[[sources]]\nroot = \"a\"\nprefix = \"p/\"\n",
            p(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "invalid /proj/staticd.toml: the prefix \"p/\" of source \"a\" must not end with a slash");

        let e = parse("static_root = \"s\"\n[storage]\nmanifest = \"yes\"\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn collect_section() {
        let cfg = parse(
            "static_root = \"s\"\n[collect]\nmissing = [\"warn:*.map\", \"ignore:vendor/*\"]\n\
             bundled = [\"dist/*\"]\n",
            p(),
        )
        .unwrap();
        assert_eq!(cfg.collect.missing, ["warn:*.map", "ignore:vendor/*"]);
        assert_eq!(cfg.collect.bundled, ["dist/*"]);
        assert_eq!(
            parse("static_root = \"s\"\n", p()).unwrap().collect,
            CollectConfig::default()
        );
        let e = parse("static_root = \"s\"\n[collect]\nmising = []\n", p())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid /proj/staticd.toml: ") && e.contains("unknown field `mising`"),
            "{e}"
        );
        let e = parse(
            "static_root = \"s\"\n[collect]\nmissing = \"warn:*.map\"\n",
            p(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("missing = \"warn:*.map\"") && e.contains("invalid type"),
            "{e}"
        );
    }
}
