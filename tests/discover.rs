//! Discovery against real Django (the test virtualenv), `staticd.toml`, and the error messages.

use crate::common;
use staticd::django::{
    discover, DiscoverError, DiscoverOptions, Discovery, InterpreterSource, Source,
};
use std::path::{Path, PathBuf};

const FS: &str = "django.contrib.staticfiles.finders.FileSystemFinder";
const APPS: &str = "django.contrib.staticfiles.finders.AppDirectoriesFinder";
const DEFAULT_STORAGE: &str = "django.contrib.staticfiles.finders.DefaultStorageFinder";

fn opts(project: &Path) -> DiscoverOptions {
    DiscoverOptions {
        project: project.to_path_buf(),
        python: Some(common::venv_python()),
        ..Default::default()
    }
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(dir.path()).unwrap();
    (dir, path)
}

/// `(finder, prefix, root)` of every `Dir` source, in order.
fn dirs(d: &Discovery) -> Vec<(String, String, PathBuf)> {
    d.sources
        .iter()
        .filter_map(|s| match s {
            Source::Dir {
                finder,
                prefix,
                root,
            } => Some((finder.clone(), prefix.clone(), root.clone())),
            Source::Files { .. } => None,
        })
        .collect()
}

fn dir(finder: &str, prefix: &str, root: impl Into<PathBuf>) -> (String, String, PathBuf) {
    (finder.to_string(), prefix.to_string(), root.into())
}

fn discover_err(o: &DiscoverOptions) -> DiscoverError {
    match discover(o) {
        Ok(d) => panic!("expected an error, got {d:?}"),
        Err(e) => e
            .downcast::<DiscoverError>()
            .unwrap_or_else(|e| panic!("not a DiscoverError: {e:#}")),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn sample_project() {
    let (_t, root) = tmp();
    let project = root.join("sample_project");
    common::copy_tree(&common::sample_project(), &project);
    let site = PathBuf::from(common::python_eval(
        "import os, django; print(os.path.dirname(os.path.dirname(django.__file__)))",
    ));

    let d = discover(&opts(&project)).unwrap();
    assert_eq!(
        d.django_version.as_deref(),
        Some(common::django_version().as_str())
    );
    assert_eq!(d.static_root, project.join("static"));
    assert_eq!(d.static_url, "/static/");
    assert_eq!(
        dirs(&d),
        vec![
            dir(APPS, "", site.join("django/contrib/admin/static")),
            dir(APPS, "", site.join("rest_framework/static")),
            dir(APPS, "", project.join("notes/static")),
        ]
    );
    assert_eq!(d.sources.len(), 3);
    assert_eq!(d.ignore_patterns, vec!["*~", ".*", "CVS"]);
    assert_eq!(
        d.storage.class,
        "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
    );
    assert!(d.storage.manifest);
    assert_eq!(d.storage.manifest_name, "staticfiles.json");
    assert!(d.storage.manifest_strict);
    assert!(!d.storage.js_modules);
    assert!(!d.storage.compress);
    assert!(!d.whitenoise.keep_only_hashed_files);
    assert_eq!(d.whitenoise.skip_compress_extensions, None);
    assert_eq!(d.whitenoise.manifest_strict, None);

    // collectstatic's -i and --no-default-ignore, normalised like os.path.normpath.
    let mut o = opts(&project);
    o.extra_ignore = vec!["*.map".into(), "vendor//x/../*.js".into(), "*.map".into()];
    let d = discover(&o).unwrap();
    assert_eq!(
        d.ignore_patterns,
        vec!["*.map", "*~", ".*", "CVS", "vendor/*.js"]
    );
    o.no_default_ignore = true;
    let d = discover(&o).unwrap();
    assert_eq!(d.ignore_patterns, vec!["*.map", "vendor/*.js"]);

    // Discovery leaves the project alone (no __pycache__ written).
    assert!(!project.join("toyproject/__pycache__").exists());
}

/// A project laid out like Django's own `tests/staticfiles_tests` (its fixture files and apps).
fn fixture_project(extra_settings: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (t, root) = tmp();
    let tests = root.join("staticfiles_tests");
    common::copy_tree(&common::django_tests_dir(), &tests);
    write(
        &root.join("fixture_settings.py"),
        &format!(
            "from staticfiles_tests.settings import TEST_SETTINGS\n\
             globals().update(TEST_SETTINGS)\n\
             SECRET_KEY = 'x'\n\
             print('settings modules may print')\n\
             {extra_settings}\n"
        ),
    );
    (t, root, tests)
}

fn fixture_opts(root: &Path) -> DiscoverOptions {
    DiscoverOptions {
        settings: Some("fixture_settings".into()),
        extra_ignore: vec!["*.ignoreme".into()],
        ..opts(root)
    }
}

#[test]
fn django_staticfiles_tests_settings() {
    // Also: an exact duplicate entry (dropped by Django) and a missing directory (skipped, W004).
    let (_t, root, tests) = fixture_project(
        "STATICFILES_DIRS = STATICFILES_DIRS + [STATICFILES_DIRS[0], '/nonexistent/staticd-dir']",
    );
    let d = discover(&fixture_opts(&root)).unwrap();
    let project = tests.join("project");
    assert_eq!(d.static_root, project.join("site_media/static"));
    assert_eq!(d.static_url, "/static/");
    assert_eq!(
        dirs(&d),
        vec![
            dir(FS, "", project.join("documents")),
            dir(FS, "prefix", project.join("prefixed")),
            dir(FS, "", project.join("pathlib")),
            dir(APPS, "", tests.join("apps/test/static")),
            dir(APPS, "", tests.join("apps/no_label/static")),
        ]
    );
    assert_eq!(d.sources.len(), 6);
    match &d.sources[5] {
        Source::Files { finder, files } => {
            assert_eq!(finder, DEFAULT_STORAGE);
            let got: Vec<(&str, &Path)> = files
                .iter()
                .map(|f| (f.path.as_str(), f.abs.as_path()))
                .collect();
            let media = project.join("site_media/media/media-file.txt");
            assert_eq!(got, vec![("media-file.txt", media.as_path())]);
        }
        other => panic!("expected DefaultStorageFinder's files, got {other:?}"),
    }
    assert_eq!(d.ignore_patterns, vec!["*.ignoreme", "*~", ".*", "CVS"]);
    assert_eq!(
        d.storage.class,
        "django.contrib.staticfiles.storage.StaticFilesStorage"
    );
    assert!(!d.storage.manifest && !d.storage.compress);
}

#[test]
fn custom_staticfiles_config_ignore_patterns() {
    let (_t, root, _tests) = fixture_project(
        "INSTALLED_APPS = ['staticfiles_tests.apps.staticfiles_config.IgnorePatternsAppConfig'] + INSTALLED_APPS[1:]",
    );
    let d = discover(&fixture_opts(&root)).unwrap();
    assert_eq!(
        d.ignore_patterns,
        vec!["*.css", "*.ignoreme", "*/vendor/*.js"]
    );
    let mut o = fixture_opts(&root);
    o.no_default_ignore = true;
    assert_eq!(discover(&o).unwrap().ignore_patterns, vec!["*.ignoreme"]);
}

/// A minimal settings module in a temp project with a `manage.py`.
fn mini_project(settings: &str) -> (tempfile::TempDir, PathBuf) {
    let (t, root) = tmp();
    write(
        &root.join("manage.py"),
        "import os, sys\n\nif __name__ == \"__main__\":\n    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mini.settings\")\n",
    );
    write(&root.join("mini/__init__.py"), "");
    write(
        &root.join("mini/settings.py"),
        &format!(
            "from pathlib import Path\nBASE_DIR = Path(__file__).resolve().parent.parent\nSECRET_KEY = 'x'\n\
             INSTALLED_APPS = ['django.contrib.staticfiles']\n{settings}\n"
        ),
    );
    (t, root)
}

#[test]
fn whitenoise_storage_and_script_prefix() {
    let (_t, root) = mini_project(
        "STATIC_URL = 'assets/'\nFORCE_SCRIPT_NAME = '/app/'\nSTATIC_ROOT = BASE_DIR / 'out'\n\
         STORAGES = {'default': {'BACKEND': 'django.core.files.storage.FileSystemStorage'},\n\
                     'staticfiles': {'BACKEND': 'mini.storage.Custom'}}\n\
         WHITENOISE_KEEP_ONLY_HASHED_FILES = True\nWHITENOISE_MANIFEST_STRICT = False\n\
         WHITENOISE_SKIP_COMPRESS_EXTENSIONS = ['jpg', 'woff2']\n",
    );
    write(
        &root.join("mini/storage.py"),
        "from whitenoise.storage import CompressedManifestStaticFilesStorage\n\n\
         class Custom(CompressedManifestStaticFilesStorage):\n    manifest_name = 'assets.json'\n    \
         support_js_module_import_aggregation = True\n",
    );
    let d = discover(&opts(&root)).unwrap();
    assert_eq!(d.static_root, root.join("out"));
    assert_eq!(d.static_url, "/app/assets/");
    assert!(d.sources.is_empty(), "{:?}", d.sources);
    assert_eq!(d.storage.class, "mini.storage.Custom");
    assert!(d.storage.manifest && d.storage.compress && d.storage.js_modules);
    assert_eq!(d.storage.manifest_name, "assets.json");
    assert!(
        !d.storage.manifest_strict,
        "WHITENOISE_MANIFEST_STRICT applies to WhiteNoise's storage"
    );
    assert!(d.whitenoise.keep_only_hashed_files);
    assert_eq!(
        d.whitenoise.skip_compress_extensions,
        Some(vec!["jpg".to_string(), "woff2".to_string()])
    );
    assert_eq!(d.whitenoise.manifest_strict, Some(false));
}

#[test]
fn staticd_toml_fallback_without_manage_py() {
    let (_t, root) = tmp();
    write(&root.join("assets/app.css"), "body{}");
    write(&root.join("third/lib.js"), "1");
    write(
        &root.join("staticd.toml"),
        "static_root = \"public/static\"\nstatic_url = \"static/\"\n\
         [[sources]]\nroot = \"assets\"\n[[sources]]\nroot = \"third\"\nprefix = \"vendor\"\n\
         [storage]\nmanifest = true\n",
    );
    // No interpreter is needed: a nonexistent one is never run.
    let o = DiscoverOptions {
        python: Some("/nonexistent/python".into()),
        ..opts(&root)
    };
    let d = discover(&o).unwrap();
    assert_eq!(d.django_version, None);
    assert_eq!(d.static_root, root.join("public/static"));
    assert_eq!(d.static_url, "/static/");
    assert_eq!(
        dirs(&d),
        vec![
            dir(FS, "", root.join("assets")),
            dir(FS, "vendor", root.join("third"))
        ]
    );
    assert_eq!(d.ignore_patterns, vec!["*~", ".*", "CVS"]);
    assert_eq!(
        d.storage.class,
        "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
    );
    assert!(d.storage.manifest && !d.storage.compress);
}

/// A virtualenv without Django.
fn bare_venv(root: &Path) -> PathBuf {
    let venv = root.join("bare-venv");
    let st = std::process::Command::new(common::venv_python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(st.success());
    venv.join("bin/python")
}

#[test]
fn error_django_not_importable_then_toml_fallback() {
    let (_t, root) = mini_project("STATIC_ROOT = BASE_DIR / 'static'\nSTATIC_URL = '/static/'");
    let py = bare_venv(&root);
    let o = DiscoverOptions {
        python: Some(py.clone()),
        ..opts(&root)
    };
    let e = discover_err(&o);
    let msg = e.to_string();
    match &e {
        DiscoverError::DjangoNotImportable {
            python,
            source,
            error,
            ..
        } => {
            assert_eq!(python, &py);
            assert_eq!(*source, InterpreterSource::Flag);
            assert_eq!(error, "ModuleNotFoundError: No module named 'django'");
        }
        other => panic!("wrong error: {other:?}"),
    }
    assert!(
        msg.starts_with(&format!(
            "Django is not importable with the Python interpreter {} (given with --python): \
             ModuleNotFoundError: No module named 'django'\nFix one of:\n",
            py.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("--python /path/to/venv/bin/python"), "{msg}");
    assert!(
        msg.contains(&format!("{}/staticd.toml", root.display())),
        "{msg}"
    );

    // With a staticd.toml, it stands in for Django.
    write(&root.join("staticd.toml"), "static_root = \"collected\"\n");
    let d = discover(&o).unwrap();
    assert_eq!(d.django_version, None);
    assert_eq!(d.static_root, root.join("collected"));
}

#[test]
fn error_interpreter_missing() {
    let (_t, root) = mini_project("STATIC_ROOT = 'x'");
    let o = DiscoverOptions {
        python: Some("/nonexistent/bin/python".into()),
        ..opts(&root)
    };
    let e = discover_err(&o);
    assert!(matches!(e, DiscoverError::PythonNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "cannot run the Python interpreter /nonexistent/bin/python (given with --python): "
        ),
        "{msg}"
    );
    assert!(msg.contains("--python /path/to/venv/bin/python"), "{msg}");
}

#[test]
fn error_no_manage_py_no_toml() {
    let (_t, root) = tmp();
    let e = discover_err(&opts(&root));
    assert!(
        matches!(&e, DiscoverError::NoProject { project } if project == &root),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "no manage.py and no staticd.toml in {}.\n",
            root.display()
        )),
        "{msg}"
    );
    assert!(msg.contains("--python"), "{msg}");
    assert!(msg.contains("static_root = \"static\""), "{msg}");
    assert!(msg.contains("[[sources]]"), "{msg}");
}

#[test]
fn error_broken_settings() {
    let (_t, root) = mini_project("import staticd_no_such_module  # broken on purpose");
    let e = discover_err(&opts(&root));
    match &e {
        DiscoverError::Settings {
            settings,
            error,
            traceback,
            ..
        } => {
            assert_eq!(settings, "mini.settings");
            assert_eq!(
                error,
                "ModuleNotFoundError: No module named 'staticd_no_such_module'"
            );
            assert!(
                traceback.contains("mini/settings.py\", line 5"),
                "{traceback}"
            );
        }
        other => panic!("wrong error: {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot load the Django settings module 'mini.settings' with "),
        "{msg}"
    );
    assert!(
        msg.contains("ModuleNotFoundError: No module named 'staticd_no_such_module'\n"),
        "{msg}"
    );
    assert!(
        msg.contains("import staticd_no_such_module"),
        "the offending line is shown: {msg}"
    );
    assert!(
        !msg.contains("<frozen"),
        "importlib frames are left out: {msg}"
    );

    // --settings names a module that doesn't exist.
    let o = DiscoverOptions {
        settings: Some("mini.nope".into()),
        ..opts(&root)
    };
    match discover_err(&o) {
        DiscoverError::Settings {
            settings, error, ..
        } => {
            assert_eq!(settings, "mini.nope");
            assert_eq!(error, "ModuleNotFoundError: No module named 'mini.nope'");
        }
        other => panic!("wrong error: {other:?}"),
    }
}

#[test]
fn error_static_root_unset() {
    let (_t, root) = mini_project("STATIC_URL = 'static/'");
    let e = discover_err(&opts(&root));
    assert_eq!(
        e.to_string(),
        "ImproperlyConfigured (settings module 'mini.settings'): You're using the staticfiles app without \
         having set the STATIC_ROOT setting to a filesystem path."
    );
}

#[test]
fn error_system_checks() {
    let (_t, root) = mini_project(
        "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 's'\nSTATICFILES_DIRS = 'assets'",
    );
    let e = discover_err(&opts(&root));
    assert!(matches!(e, DiscoverError::Checks { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "SystemCheckError: Django's staticfiles checks failed (settings module 'mini.settings'):\n\
         ?: (staticfiles.E001) The STATICFILES_DIRS setting is not a tuple or list.\n\
         \tHINT: Perhaps you forgot a trailing comma?"
    );

    let (_t2, root) = mini_project(
        "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 's'\nSTATICFILES_DIRS = [('pre/', BASE_DIR / 'a'), BASE_DIR / 's']",
    );
    let msg = discover_err(&opts(&root)).to_string();
    assert!(msg.contains("(staticfiles.E002) The STATICFILES_DIRS setting should not contain the STATIC_ROOT setting."), "{msg}");
    assert!(msg.contains("(staticfiles.E003) The prefix 'pre/' in the STATICFILES_DIRS setting must not end with a slash."), "{msg}");
}
