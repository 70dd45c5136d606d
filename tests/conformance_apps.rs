//! Conformance on real third-party Django packages (the venv `.ci/apps` builds): Django's
//! collectstatic and `staticd collect --hash md5` on the same project must give the same
//! STATIC_ROOT byte for byte, manifest included, and the same summary line; where Django fails,
//! staticd fails too, naming file and line. The packages were chosen for the variety of their
//! CSS and JS (url() with queries and fragments, @import, sourceMappingURL, ES module imports,
//! source maps that are not shipped); .ci/apps says which does what.

use crate::common;
use crate::common::project::collect_output;
use crate::conformance::files_of;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The apps venv's python, built by `.ci/apps` at most once per test process.
fn apps_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| common::ci_installed("apps", "for the third-party-app conformance tests"))
        .clone()
}

const MANIFEST: &str = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage";
const WHITENOISE: &str = "whitenoise.storage.CompressedManifestStaticFilesStorage";
/// The admin and what it needs: the apps below extend or restyle it.
const ADMIN: &str = "django.contrib.admin,django.contrib.auth,django.contrib.contenttypes,\
                     django.contrib.sessions,django.contrib.messages";

const SETTINGS: &str = r#"
import os
SECRET_KEY = "conformance-apps"
USE_TZ = True
STATIC_URL = os.environ.get("TEST_STATIC_URL", "static/")
STATIC_ROOT = os.environ["TEST_STATIC_ROOT"]
INSTALLED_APPS = os.environ["TEST_APPS"].split(",") + ["django.contrib.staticfiles"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": os.environ["TEST_STORAGE"]},
}
WHITENOISE_KEEP_ONLY_HASHED_FILES = os.environ.get("TEST_KEEP_ONLY") == "1"
"#;

/// Storages a project might define. `NoSourceMaps` is what users do about a package that
/// names source maps it does not ship: Django's patterns without the sourceMappingURL ones.
const STORAGES: &str = r#"
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage

class JSModules(ManifestStaticFilesStorage):
    support_js_module_import_aggregation = True

class NoSourceMaps(ManifestStaticFilesStorage):
    patterns = (
        ("*.css", (
            r"""(?P<matched>url\((?P<quote>['"]{0,1})\s*(?P<url>.*?)(?P=quote)\))""",
            (r"""(?P<matched>@import\s*["']\s*(?P<url>.*?)["'])""", """@import url("%(url)s")"""),
        )),
    )

class Forgiving(ManifestStaticFilesStorage):
    def hashed_name(self, name, content=None, filename=None):
        try:
            return super().hashed_name(name, content, filename)
        except ValueError:
            return name

class Reordered(ManifestStaticFilesStorage):
    patterns = (("*.css", tuple(reversed(ManifestStaticFilesStorage.patterns[0][1]))),)

class OwnPattern(ManifestStaticFilesStorage):
    patterns = (("*.css", (r"""(?P<matched>src=(?P<url>[^ ;]+))""", "src=%(url)s")),)
"#;

const MANAGE_PY: &str = r#"import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps_settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
"#;

/// A Django project in a temp dir whose INSTALLED_APPS and storage come from the environment.
struct Apps {
    /// `WHITENOISE_KEEP_ONLY_HASHED_FILES` ("1" or "0").
    keep_only: std::cell::Cell<u8>,
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    project: PathBuf,
}

impl Apps {
    fn new() -> Apps {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let project = dir.join("proj");
        common::write_file(&project, "manage.py", MANAGE_PY.as_bytes());
        common::write_file(&project, "apps_settings.py", SETTINGS.as_bytes());
        common::write_file(&project, "app_storages.py", STORAGES.as_bytes());
        Apps {
            keep_only: std::cell::Cell::new(0),
            _tmp: tmp,
            dir,
            project,
        }
    }

    fn env(&self, root: &Path, apps: &str, storage: &str) -> Vec<(&'static str, String)> {
        vec![
            ("TEST_KEEP_ONLY", self.keep_only.get().to_string()),
            ("TEST_STATIC_ROOT", root.display().to_string()),
            ("TEST_APPS", apps.to_string()),
            ("TEST_STORAGE", storage.to_string()),
            (
                "XDG_CACHE_HOME",
                self.dir.join("cache").display().to_string(),
            ),
        ]
    }

    /// Django's collectstatic (`-v 1`, for the summary line) into `dj-TAG`.
    fn django(&self, tag: &str, apps: &str, storage: &str) -> (PathBuf, Output) {
        self.django_with(tag, apps, storage, &[])
    }

    /// [`Apps::django`] with more collectstatic arguments.
    fn django_with(
        &self,
        tag: &str,
        apps: &str,
        storage: &str,
        args: &[&str],
    ) -> (PathBuf, Output) {
        let root = self.dir.join(format!("dj-{tag}"));
        let out = Command::new(apps_python())
            .args(["manage.py", "collectstatic", "--noinput"])
            .args(args)
            .current_dir(&self.project)
            .envs(self.env(&root, apps, storage))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (root, out)
    }

    /// `staticd collect --hash md5 ARGS` into `sd-TAG`.
    fn staticd(&self, tag: &str, apps: &str, storage: &str, args: &[&str]) -> (PathBuf, Output) {
        let root = self.dir.join(format!("sd-{tag}"));
        let py = apps_python();
        let mut all = vec!["--python", py.to_str().unwrap(), "--hash", "md5"];
        all.extend_from_slice(args);
        let out = collect_output(&self.project, &all, &self.env(&root, apps, storage));
        (root, out)
    }

    /// Both collect `apps` with `storage` and succeed; the trees are byte-identical and the
    /// summary lines the same. Returns staticd's root.
    fn same(&self, tag: &str, apps: &str, storage: &str) -> PathBuf {
        let (dj, d) = self.django(tag, apps, storage);
        ok(&d, "django");
        let (sd, s) = self.staticd(tag, apps, storage, &["--no-compress"]);
        ok(&s, "staticd");
        assert_same_tree(&dj, &sd);
        assert_eq!(summary(&s, &sd), summary(&d, &dj), "summary lines");
        sd
    }
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last non-blank line of stdout with the root replaced.
fn summary(out: &Output, root: &Path) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    line.unwrap_or("")
        .replace(&root.display().to_string(), "ROOT")
}

/// Byte identity, listing the first differences (a real package has thousands of files).
fn assert_same_tree(django: &Path, staticd: &Path) {
    let (a, b) = (files_of(django), files_of(staticd));
    let mut problems: Vec<String> = a
        .iter()
        .filter_map(|(k, v)| match b.get(k) {
            None => Some(format!("only in Django's root: {k}")),
            Some(w) if w != v => Some(format!("differs: {k}")),
            _ => None,
        })
        .collect();
    problems.extend(
        b.keys()
            .filter(|k| !a.contains_key(*k))
            .map(|k| format!("only in staticd's root: {k}")),
    );
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        {
            problems.truncate(40);
            problems.join("\n")
        }
    );
}

/// The file `key` of the manifest under `root`, read.
fn hashed_text(root: &Path, key: &str) -> String {
    let man = common::project::manifest_paths(root);
    let name = man
        .get(key)
        .unwrap_or_else(|| panic!("{key} not in the manifest"));
    std::fs::read_to_string(root.join(name)).unwrap()
}

/// Admin skins and editors with the most varied CSS (jazzmin: @import, url() with `?#iefix`,
/// source maps; grappelli: a whole skin of @import and url(); mdeditor: CodeMirror and KaTeX
/// fonts), ES-module JS left alone by the default storage, and DRF: byte-identical, summary
/// (including "skipped due to conflict": jazzmin and grappelli both ship admin files) the same.
#[test]
fn admin_skins_editors_and_drf_are_byte_identical() {
    let a = Apps::new();
    let apps =
        format!("jazzmin,grappelli,debug_toolbar,nested_admin,mdeditor,rest_framework,{ADMIN}");
    let sd = a.same("all", &apps, MANIFEST);
    // The cases really occur: rewritten @import, url() with a query and fragment, a map.
    let man = common::project::manifest_paths(&sd);
    assert!(man.len() > 1000, "{} files", man.len());
    let jazz = hashed_text(&sd, "vendor/adminlte/css/adminlte.min.css");
    assert!(
        jazz.contains("sourceMappingURL=adminlte.min."),
        "map rewritten"
    );
    let grp = hashed_text(&sd, "grappelli/stylesheets/screen.css");
    assert!(
        grp.contains("url(\"") && grp.contains(".png"),
        "url() rewritten"
    );
}

/// With `support_js_module_import_aggregation`, debug-toolbar's ES modules (`import { $$ }
/// from "./utils.js"`) are rewritten alike. nested-admin's sources import `"./regexquote"`,
/// with no `.js`: Django fails on it, and so does staticd, naming file and line. A re-run
/// with `--clear` reports what Django's does.
#[test]
fn es_modules_of_real_packages_are_byte_identical_or_fail_in_both() {
    let a = Apps::new();
    let sd = a.same(
        "modules",
        &format!("debug_toolbar,{ADMIN}"),
        "app_storages.JSModules",
    );
    let toolbar = hashed_text(&sd, "debug_toolbar/js/toolbar.js");
    let utils = common::project::manifest_paths(&sd)["debug_toolbar/js/utils.js"].clone();
    let utils = utils.rsplit('/').next().unwrap().to_string();
    assert!(
        toolbar.contains(&format!("\"./{utils}\"")),
        "import rewritten"
    );

    // Collected again with --clear: Django deletes every file of the tree (the manifest too)
    // and copies each anew; staticd's summary says so too, and the trees stay identical.
    let (dj, d) = a.django_with(
        "modules",
        &format!("debug_toolbar,{ADMIN}"),
        "app_storages.JSModules",
        &["--clear"],
    );
    ok(&d, "django --clear");
    let (sd, s) = a.staticd(
        "modules",
        &format!("debug_toolbar,{ADMIN}"),
        "app_storages.JSModules",
        &["--no-compress", "--clear"],
    );
    ok(&s, "staticd --clear");
    assert_same_tree(&dj, &sd);
    let line = summary(&s, &sd);
    assert_eq!(line, summary(&d, &dj), "summary lines after --clear");
    let files = files_of(&sd).len();
    assert!(
        line.starts_with(&format!("{files} static files deleted, ")),
        "{line}"
    );

    let (_, d) = a.django("nested", "nested_admin", "app_storages.JSModules");
    let django_err = String::from_utf8_lossy(&d.stderr);
    assert!(
        !d.status.success() && django_err.contains("nested-admin/sortable.js"),
        "{django_err}"
    );
    let (sd, s) = a.staticd("nested", "nested_admin", "app_storages.JSModules", &[]);
    let err = String::from_utf8_lossy(&s.stderr);
    assert_eq!(s.status.code(), Some(1), "{err}");
    let expect =
        r#"nested_admin/src/nested-admin/sortable.js:2: import regexQuote from "./regexquote""#;
    assert!(err.contains(expect), "{err}");
    assert!(!sd.exists(), "a failed collect publishes nothing");
}

/// django-froala-editor's language files end with `//# sourceMappingURL=ru.js.map` and no map
/// is shipped: Django's collectstatic fails, and so does staticd, exit 1, naming file and line
/// (Django names the first it meets, staticd all of them) and publishing nothing. With the
/// sourceMappingURL patterns dropped from the storage, as users do, both succeed, identically.
#[test]
fn missing_source_maps_fail_in_both_and_a_storage_without_them_is_identical() {
    let a = Apps::new();
    let apps = "froala_editor";
    let (_, d) = a.django("froala", apps, MANIFEST);
    assert!(!d.status.success(), "Django fails on froala's maps");
    let django_err = String::from_utf8_lossy(&d.stderr);
    assert!(
        django_err.contains("froala_editor/js/languages/ru.js")
            && django_err.contains("587: //# sourceMappingURL=ru.js.map"),
        "{django_err}"
    );
    let (sd, s) = a.staticd("froala", apps, MANIFEST, &["--no-compress"]);
    let err = String::from_utf8_lossy(&s.stderr);
    assert_eq!(s.status.code(), Some(1), "{err}");
    assert!(
        err.contains("froala_editor/js/languages/ru.js:587: //# sourceMappingURL=ru.js.map"),
        "{err}"
    );
    assert!(!sd.exists(), "a failed collect publishes nothing");

    let sd = a.same("nomaps", apps, "app_storages.NoSourceMaps");
    let ru = hashed_text(&sd, "froala_editor/js/languages/ru.js");
    assert!(
        ru.trim_end().ends_with("//# sourceMappingURL=ru.js.map"),
        "left alone"
    );
}

/// A storage overriding a method that makes the output (here `hashed_name`, the usual way to
/// ignore missing files), with a pattern of its own, or with Django's in another order (which
/// rewrites differently): Django runs that Python, staticd cannot,
/// so it refuses, exit 1, naming the class and what it overrides, instead of collecting
/// something else than Django.
#[test]
fn storages_with_python_of_their_own_are_refused() {
    let a = Apps::new();
    for (storage, expect) in [
        ("app_storages.Forgiving", "overrides hashed_name"),
        ("app_storages.OwnPattern", "not one of Django's"),
        ("app_storages.Reordered", "in another order"),
    ] {
        let (_, d) = a.django("own", "froala_editor", storage);
        ok(&d, storage);
        let (sd, s) = a.staticd("own", "froala_editor", storage, &[]);
        let err = String::from_utf8_lossy(&s.stderr);
        assert_eq!(s.status.code(), Some(1), "{storage}: {err}");
        assert!(
            err.contains(storage) && err.contains(expect) && err.contains("app_storages.py"),
            "{storage}: {err}"
        );
        assert!(!sd.exists(), "{storage}: nothing published");
    }
}

/// WhiteNoise's CompressedManifestStaticFilesStorage on the ES-module packages (no admin:
/// WhiteNoise's brotli at quality 11 is slow): the same files and variants, the same bytes,
/// every .gz and .br byte-identical (both run zlib and Google's brotli alike), and the same
/// summary line, variants counted.
#[test]
fn whitenoise_variants_of_real_packages_are_byte_identical() {
    let a = Apps::new();
    let apps = "debug_toolbar,nested_admin";
    let (dj, d) = a.django("wn", apps, WHITENOISE);
    ok(&d, "django+whitenoise");
    let (sd, s) = a.staticd("wn", apps, WHITENOISE, &[]);
    ok(&s, "staticd");
    assert_same_tree(&dj, &sd);
    assert_eq!(summary(&s, &sd), summary(&d, &dj), "summary lines");
    let files = files_of(&sd);
    let (mut gz, mut br) = (0, 0);
    for (k, v) in &files {
        let mut out = Vec::new();
        if let Some(base) = k.strip_suffix(".gz") {
            flate2::read::GzDecoder::new(&v[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, files[base], "{k} decodes to {base}");
            gz += 1;
        } else if let Some(base) = k.strip_suffix(".br") {
            brotli::BrotliDecompress(&mut &v[..], &mut out).unwrap();
            assert_eq!(out, files[base], "{k} decodes to {base}");
            br += 1;
        }
    }
    assert!(gz > 50 && br > 50, "variants were made: {gz} .gz, {br} .br");
}

/// `WHITENOISE_KEEP_ONLY_HASHED_FILES = True` is WhiteNoise's storage's setting: under Django's
/// own storage (a project that switched storage and kept the line) the originals stay, in
/// Django and in staticd. Under WhiteNoise's they go, and an unchanged re-run copies every
/// original again in Django: staticd's summary says the same, and the trees stay identical.
#[test]
fn keep_only_hashed_files_is_whitenoise_storage_s_alone() {
    let a = Apps::new();
    a.keep_only.set(1);
    let sd = a.same("keep-django", "debug_toolbar", MANIFEST);
    assert!(
        sd.join("debug_toolbar/css/toolbar.css").is_file(),
        "original kept"
    );

    let apps = "debug_toolbar";
    for step in ["first run", "unchanged re-run"] {
        let (dj, d) = a.django("keep-wn", apps, WHITENOISE);
        ok(&d, "django+whitenoise");
        let (sd, s) = a.staticd("keep-wn", apps, WHITENOISE, &["--no-dictionaries"]);
        ok(&s, "staticd");
        assert_same_tree(&dj, &sd);
        assert!(
            !sd.join("debug_toolbar/css/toolbar.css").exists(),
            "{step}: original gone"
        );
        let line = summary(&s, &sd);
        assert_eq!(line, summary(&d, &dj), "{step}: summary lines");
        assert!(!line.contains("unmodified"), "{step}: {line}");
    }
}
