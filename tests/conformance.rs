//! Conformance against real Django: the same project collected by Django's collectstatic and
//! by `staticd collect --hash md5` must give byte-identical STATIC_ROOTs and manifests.
//!
//! Inputs are Django's own `tests/staticfiles_tests` fixtures (extracted from the Django sdist
//! by `.ci/venv`, never committed) and `sample_project`.

use crate::common;
use crate::common::project::collect_output;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A Django project in a temp dir whose settings read the knobs from the environment, so one
/// settings file serves Django's run and staticd's run alike.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    project: PathBuf,
}

const FIXTURE_SETTINGS: &str = r#"
import os, sys
from pathlib import Path
PKGROOT = os.environ["TEST_PKGROOT"]
sys.path.insert(0, PKGROOT)
TEST_ROOT = os.path.join(PKGROOT, "staticfiles_tests")
SECRET_KEY = "conformance"
USE_TZ = True
MEDIA_URL = "media/"
STATIC_URL = os.environ.get("TEST_STATIC_URL", "static/")
STATIC_ROOT = os.environ["TEST_STATIC_ROOT"]
if "TEST_DIRS" in os.environ:
    STATICFILES_DIRS = [os.path.join(TEST_ROOT, "project", d) for d in os.environ["TEST_DIRS"].split(",")]
    INSTALLED_APPS = ["django.contrib.staticfiles"]
else:
    STATICFILES_DIRS = [
        os.path.join(TEST_ROOT, "project", "documents"),
        ("prefix", os.path.join(TEST_ROOT, "project", "prefixed")),
        Path(TEST_ROOT) / "project" / "pathlib",
    ]
    INSTALLED_APPS = [
        "django.contrib.staticfiles",
        "staticfiles_tests",
        "staticfiles_tests.apps.test",
        "staticfiles_tests.apps.no_label",
    ]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": os.environ.get("TEST_STORAGE", "django.contrib.staticfiles.storage.ManifestStaticFilesStorage")},
}
"#;

const EXTRA_STORAGE: &str = r#"
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
class JSModulesStorage(ManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
"#;

const MANAGE_PY: &str = r#"import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fixture_settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
"#;

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let pkgroot = dir.join("pkgroot");
        common::copy_tree(
            &common::django_tests_dir(),
            &pkgroot.join("staticfiles_tests"),
        );
        let project = dir.join("proj");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("manage.py"), MANAGE_PY).unwrap();
        std::fs::write(project.join("fixture_settings.py"), FIXTURE_SETTINGS).unwrap();
        std::fs::write(project.join("conformance_storage.py"), EXTRA_STORAGE).unwrap();
        Fixture {
            _tmp: tmp,
            dir,
            project,
        }
    }

    /// A source directory of our own beside Django's fixtures (select it with `TEST_DIRS`).
    fn add_dir(&self, name: &str, files: &[(&str, &str)]) {
        let dir = self
            .dir
            .join("pkgroot/staticfiles_tests/project")
            .join(name);
        for (rel, text) in files {
            common::write_file(&dir, rel, text.as_bytes());
        }
    }

    fn env(&self, root: &Path, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (
                "TEST_PKGROOT",
                self.dir.join("pkgroot").display().to_string(),
            ),
            ("TEST_STATIC_ROOT", root.display().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        env
    }
}

fn django_collect(project: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let out = Command::new(common::venv_python())
        .arg("manage.py")
        .args(["collectstatic", "--noinput", "-v", "0"])
        .args(args)
        .current_dir(project)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    out
}

fn staticd_collect(project: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let py = common::venv_python();
    let mut all = vec!["--python", py.to_str().unwrap(), "-v", "0"];
    all.extend_from_slice(args);
    collect_output(project, &all, env)
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Relative path → bytes of every regular file below `root`.
pub(crate) fn files_of(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Asserts two trees are byte-identical, listing every difference.
fn assert_same_tree(django: &Path, staticd: &Path) {
    let a = files_of(django);
    let b = files_of(staticd);
    let mut problems = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => problems.push(format!("only in Django's root: {k}")),
            Some(w) if w != v => problems.push(format!(
                "differs: {k}\n  django:  {:?}\n  staticd: {:?}",
                String::from_utf8_lossy(v),
                String::from_utf8_lossy(w)
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        problems.push(format!("only in staticd's root: {k}"));
    }
    assert!(
        a.len() >= 3,
        "Django collected almost nothing: {:?}",
        a.keys()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn manifest_hash(root: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("staticfiles.json")).unwrap()).unwrap();
    v["hash"].as_str().unwrap().to_string()
}

#[test]
fn django_fixtures_are_byte_identical() {
    let f = Fixture::new();
    let (dj, sd) = (f.dir.join("django_root"), f.dir.join("staticd_root"));
    ok(
        &django_collect(&f.project, &f.env(&dj, &[]), &["-i", "*.ignoreme"]),
        "django",
    );
    ok(
        &staticd_collect(
            &f.project,
            &f.env(&sd, &[]),
            &["-i", "*.ignoreme", "--hash", "md5", "--no-compress"],
        ),
        "staticd",
    );
    assert_same_tree(&dj, &sd);
    if common::django_version() == "6.1.3" {
        // The manifest hash observed from Django 6.1.3 on these fixtures (spec §5.2).
        assert_eq!(manifest_hash(&sd), "2875894cb69e");
    }
}

#[test]
fn js_module_imports_and_static_url_slash_are_byte_identical() {
    let f = Fixture::new();
    for (i, extra) in [
        vec![("TEST_STORAGE", "conformance_storage.JSModulesStorage")],
        vec![("TEST_DIRS", "static_url_slash"), ("TEST_STATIC_URL", "/")],
    ]
    .into_iter()
    .enumerate()
    {
        same_in_both(&f, &extra, &i.to_string());
    }
}

/// Django's collectstatic and `staticd collect --hash md5 --no-compress` with the fixture's
/// settings and `extra` environment, into `dj{tag}` and `sd{tag}`: both succeed and the trees
/// are byte-identical. Returns staticd's STATIC_ROOT.
fn same_in_both(f: &Fixture, extra: &[(&'static str, &str)], tag: &str) -> PathBuf {
    let (dj, sd) = (
        f.dir.join(format!("dj{tag}")),
        f.dir.join(format!("sd{tag}")),
    );
    ok(
        &django_collect(&f.project, &f.env(&dj, extra), &[]),
        "django",
    );
    let args = ["--hash", "md5", "--no-compress"];
    ok(
        &staticd_collect(&f.project, &f.env(&sd, extra), &args),
        "staticd",
    );
    assert_same_tree(&dj, &sd);
    sd
}

/// For each `(TEST_DIRS, expected parts of the message)`: Django's collectstatic fails, and
/// so does staticd's, exit 1, with every part in its message and no STATIC_ROOT created.
fn fail_in_both(f: &Fixture, cases: &[(&str, &[&str])]) {
    for &(dirs, expect) in cases {
        let env_extra = [("TEST_DIRS", dirs)];
        let (dj, sd) = (
            f.dir.join(format!("dj-{dirs}")),
            f.dir.join(format!("sd-{dirs}")),
        );
        let d = django_collect(&f.project, &f.env(&dj, &env_extra), &[]);
        assert!(!d.status.success(), "Django should fail on {dirs}");
        let s = staticd_collect(&f.project, &f.env(&sd, &env_extra), &["--hash", "md5"]);
        let stderr = String::from_utf8_lossy(&s.stderr);
        assert_eq!(s.status.code(), Some(1), "{dirs}: {stderr}");
        for e in expect {
            assert!(stderr.contains(e), "{dirs}: expected {e:?} in {stderr}");
        }
        assert!(
            !sd.exists(),
            "{dirs}: a failed collect must not create STATIC_ROOT"
        );
    }
}

/// Where Django fails, staticd fails too, with a message naming the files, and writes nothing.
#[test]
fn django_error_fixtures_fail_in_both() {
    let f = Fixture::new();
    fail_in_both(
        &f,
        &[
            ("loop", &["bar.css, foo.css", "cycle"]),
            ("faulty", &["faulty.css:1:", "missing.css"]),
            ("nonutf8", &["nonutf8.css", "UTF-8"]),
        ],
    );
}

/// References Django 6.1 resolves to a directory of STATIC_ROOT (without a trailing slash, `.`,
/// `..`, `./`, `/static/`) and blank `sourceMappingURL`s (which resolve to the file's own
/// directory): Django succeeds and keeps them unhashed, in its own spelling (`url(.)` in
/// `css/dot.css` becomes `url("css")`, `/*# sourceMappingURL= */` gains a space), and so must
/// staticd, byte for byte. `css/imports.css` makes a file with such references a dependency.
#[test]
fn directory_and_blank_source_map_references_are_byte_identical() {
    let f = Fixture::new();
    f.add_dir(
        "edge",
        &[
            (
                "css/dir.css",
                "a{b:url(../img)}\nc{d:url('../img')}\ne{f:url(../img?v=1#f)}\ng{h:url(../img )}\ni{j:url(img)}\n",
            ),
            (
                "css/dot.css",
                "a{b:url(.)}\nc{d:url(..)}\ne{f:url(./)}\ng{h:url(../img/)}\ni{j:url(/static/img)}\nk{l:url(/static/)}\nm{n:url(../img/..)}\n",
            ),
            ("css/imports.css", "@import 'dot.css';\n@import \"../img\";\n"),
            ("css/map_blank.css", "a{}\n/*# sourceMappingURL= */\n"),
            ("css/map_blank2.css", "a{}\n/*# sourceMappingURL=  */\n"),
            ("css/map_empty.css", "a{}\n/*# sourceMappingURL=*/\n"),
            ("css/map_dot.css", "a{}\n/*# sourceMappingURL=. */\n"),
            ("root.css", "a{b:url(.)}\nc{d:url(./)}\n/*# sourceMappingURL= */\n"),
            ("js/map_empty.js", "x;\n//# sourceMappingURL=\n"),
            ("js/map_blank.js", "x;\n//# sourceMappingURL= \n"),
            ("root.js", "x;\n//# sourceMappingURL= "),
            ("img/a.png", "png"),
            ("css/img/x.png", "png"),
        ],
    );
    let extra = [("TEST_DIRS", "edge")];
    let sd = same_in_both(&f, &extra, "");
    // The cases really are what they claim: Django kept them as (unhashed) directories.
    let man: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sd.join("staticfiles.json")).unwrap()).unwrap();
    let read = |key: &str| {
        let hashed = man["paths"][key].as_str().unwrap();
        std::fs::read_to_string(sd.join(hashed)).unwrap()
    };
    assert!(read("css/dot.css").starts_with("a{b:url(\"css\")}\nc{d:url(\"\")}"));
    assert!(read("css/map_blank.css").ends_with("/*# sourceMappingURL=  */\n"));
}

/// Real broken references stay errors in both: a directory that holds no collected file, and a
/// source map that is not there. staticd names file, line and reference, and writes nothing.
#[test]
fn missing_directory_and_source_map_fail_in_both() {
    let f = Fixture::new();
    f.add_dir(
        "nodir",
        &[
            ("css/s.css", "a{}\nb{c:url(../nodir)}\n"),
            ("img/a.png", "png"),
        ],
    );
    f.add_dir(
        "nomap",
        &[("js/a.js", "x;\n//# sourceMappingURL=a.js.map\n")],
    );
    fail_in_both(
        &f,
        &[
            ("nodir", &["css/s.css:2:", "url(../nodir)"]),
            ("nomap", &["js/a.js:2:", "a.js.map"]),
        ],
    );
}

/// sample_project under a settings module that only moves STATIC_ROOT.
fn sample(tmp: &Path, storage: Option<&str>) -> PathBuf {
    let project = tmp.join("sample");
    common::copy_tree(&common::sample_project(), &project);
    let _ = std::fs::remove_dir_all(project.join("static"));
    let mut settings = String::from(
        "import os\nfrom toyproject.settings import *\nSTATIC_ROOT = os.environ['TEST_STATIC_ROOT']\n",
    );
    if let Some(s) = storage {
        settings += &format!("STORAGES = {{**STORAGES, 'staticfiles': {{'BACKEND': '{s}'}}}}\n");
    }
    std::fs::write(project.join("conformance_settings.py"), settings).unwrap();
    project
}

fn sample_env(root: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("TEST_STATIC_ROOT", root.display().to_string()),
        ("DJANGO_SETTINGS_MODULE", "conformance_settings".into()),
    ]
}

#[test]
fn sample_project_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let project = sample(tmp.path(), None);
    let (dj, sd) = (tmp.path().join("dj"), tmp.path().join("sd"));
    ok(&django_collect(&project, &sample_env(&dj), &[]), "django");
    ok(
        &staticd_collect(
            &project,
            &sample_env(&sd),
            &[
                "--settings",
                "conformance_settings",
                "--hash",
                "md5",
                "--no-compress",
            ],
        ),
        "staticd",
    );
    assert_same_tree(&dj, &sd);
    // The app's CSS really was rewritten (not just copied) by both.
    let man: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sd.join("staticfiles.json")).unwrap()).unwrap();
    assert!(
        man["paths"]["admin/css/base.css"].is_string(),
        "admin collected"
    );
    assert!(
        man["paths"]["rest_framework/css/bootstrap.min.css"].is_string(),
        "DRF collected"
    );
}

/// WhiteNoise's CompressedManifestStaticFilesStorage against staticd's default compression:
/// the same files, the same originals and hashed files, every variant decodes to its file, and
/// every variant is byte-identical to WhiteNoise's (both sides run Google's C brotli and zlib).
#[test]
fn sample_project_matches_whitenoise_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let project = sample(
        tmp.path(),
        Some("whitenoise.storage.CompressedManifestStaticFilesStorage"),
    );
    let (dj, sd) = (tmp.path().join("dj"), tmp.path().join("sd"));
    ok(
        &django_collect(&project, &sample_env(&dj), &[]),
        "django+whitenoise",
    );
    ok(
        &staticd_collect(
            &project,
            &sample_env(&sd),
            &["--settings", "conformance_settings", "--hash", "md5"],
        ),
        "staticd",
    );
    let a = files_of(&dj);
    let b = files_of(&sd);
    let names_a: Vec<_> = a.keys().collect();
    let names_b: Vec<_> = b.keys().collect();
    assert_eq!(names_a, names_b, "same set of files, variants included");
    let (mut gz_identical, mut br_identical) = (0, 0);
    for (k, v) in &b {
        if let Some(base) = k.strip_suffix(".gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&v[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(&out, &b[base], "{k} decodes to {base}");
            gz_identical += usize::from(a[k] == *v);
        } else if let Some(base) = k.strip_suffix(".br") {
            let mut out = Vec::new();
            brotli::BrotliDecompress(&mut &v[..], &mut out).unwrap();
            assert_eq!(&out, &b[base], "{k} decodes to {base}");
            br_identical += usize::from(a[k] == *v);
        } else {
            assert_eq!(a[k], *v, "{k} differs from WhiteNoise's");
        }
    }
    let total = |suffix: &str| b.keys().filter(|k| k.ends_with(suffix)).count();
    // Both sides use zlib at level 9 with mtime 0: gzip bytes are identical.
    assert_eq!(gz_identical, total(".gz"), "gzip variants byte-identical");
    // Both sides use Google's encoder at quality 11, window 22, fed the same way.
    assert_eq!(br_identical, total(".br"), "brotli variants byte-identical");
}

/// Real Django reads a staticd-made manifest (default blake3 names) and `{% static %}` renders
/// a URL whose file exists.
#[test]
fn django_renders_static_from_staticd_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let project = sample(tmp.path(), None);
    let sd = tmp.path().join("sd");
    ok(
        &staticd_collect(
            &project,
            &sample_env(&sd),
            &["--settings", "conformance_settings"],
        ),
        "staticd",
    );
    let out = Command::new(common::venv_python())
        .args([
            "-c",
            "import django; django.setup()\n\
             from django.template import Template, Context\n\
             print(Template(\"{% load static %}{% static 'notes/css/app.css' %}|{% static 'admin/js/core.js' %}\").render(Context()))",
        ])
        .current_dir(&project)
        .envs(sample_env(&sd))
        .output()
        .unwrap();
    ok(&out, "render");
    let rendered = String::from_utf8(out.stdout).unwrap();
    for url in rendered.trim().split('|') {
        let rel = url.strip_prefix("/static/").expect("STATIC_URL prefix");
        let bytes = std::fs::read(sd.join(rel)).unwrap_or_else(|_| panic!("{url} exists"));
        let fp = &blake3::hash(&bytes).to_hex()[..12];
        assert!(
            rel.contains(&format!(".{fp}.")),
            "{url} carries blake3 {fp}"
        );
    }
}

/// Django's collectstatic summary line (the last of its output at `-v 1`), the root replaced.
fn django_summary(project: &Path, env: &[(&str, String)], root: &Path, args: &[&str]) -> String {
    let out = Command::new(common::venv_python())
        .args(["manage.py", "collectstatic", "--noinput"])
        .args(args)
        .current_dir(project)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    ok(&out, "django");
    last_line(&out).replace(&root.display().to_string(), "ROOT")
}

fn staticd_summary(project: &Path, env: &[(&str, String)], root: &Path, args: &[&str]) -> String {
    let py = common::venv_python();
    let mut all = vec!["--python", py.to_str().unwrap(), "--hash", "md5"];
    all.extend_from_slice(args);
    let out = collect_output(project, &all, env);
    ok(&out, "staticd");
    last_line(&out).replace(&root.display().to_string(), "ROOT")
}

fn last_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_string()
}

/// Collects `project` with Django (into `dj`) and staticd (into `sd`) three times: first,
/// unchanged, after `edit` was edited; the summary lines must be the same words and numbers.
fn summaries_match(
    project: &Path,
    (dj, dj_env): (&Path, &[(&str, String)]),
    (sd, sd_env): (&Path, &[(&str, String)]),
    args: (&[&str], &[&str]),
    edit: &Path,
) -> Vec<String> {
    let mut lines = Vec::new();
    for step in ["first run", "unchanged re-run", "one file edited"] {
        if step == "one file edited" {
            let mut text = std::fs::read_to_string(edit).unwrap();
            text.push_str("\n/* edited */\n");
            std::fs::write(edit, text).unwrap();
            // Django compares whole seconds of mtimes: make the edit unmistakably newer.
            let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
            std::fs::File::options()
                .write(true)
                .open(edit)
                .unwrap()
                .set_modified(later)
                .unwrap();
        }
        let django = django_summary(project, dj_env, dj, args.0);
        let ours = staticd_summary(project, sd_env, sd, args.1);
        assert_eq!(ours, django, "{}: {step}", project.display());
        lines.push(ours);
    }
    assert!(
        lines[1].starts_with("0 static files copied to 'ROOT', ")
            && lines[1].contains(" unmodified, ")
            && lines[1].contains(" post-processed"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("1 static file copied to 'ROOT', "),
        "{lines:?}"
    );
    lines
}

/// staticd's text summary says what Django's says, in numbers and words, on sample_project
/// with the manifest storage: on the first run, on an unchanged re-run (every CSS/JS file
/// post-processed again, nothing copied: "0 static files copied to '…', 163 unmodified, 115
/// post-processed."), and after one stylesheet was edited.
#[test]
fn sample_project_summaries_match_django() {
    let tmp = tempfile::tempdir().unwrap();
    let project = sample(tmp.path(), None);
    let (dj, sd) = (tmp.path().join("dj"), tmp.path().join("sd"));
    let mut sd_env = sample_env(&sd);
    sd_env.push((
        "XDG_CACHE_HOME",
        tmp.path().join("cache").display().to_string(),
    ));
    let lines = summaries_match(
        &project,
        (&dj, &sample_env(&dj)),
        (&sd, &sd_env),
        (
            &[],
            &["--settings", "conformance_settings", "--no-compress"],
        ),
        &project.join("notes/static/notes/css/app.css"),
    );
    // The CSS/JS files: what Django post-processes on every run.
    let man = common::project::manifest_paths(&sd);
    let adjustable = man
        .keys()
        .filter(|k| k.ends_with(".css") || k.ends_with(".js"))
        .count();
    assert_eq!(
        lines[1],
        format!(
            "0 static files copied to 'ROOT', {} unmodified, {adjustable} post-processed.",
            man.len()
        )
    );
}

/// The same with WhiteNoise's storage, which also counts every compressed variant, every time
/// (on Django's own fixtures: WhiteNoise compressing sample_project three times takes
/// half a minute).
#[test]
fn whitenoise_summaries_match_django() {
    let f = Fixture::new();
    let (dj, sd) = (f.dir.join("dj"), f.dir.join("sd"));
    let storage = [(
        "TEST_STORAGE",
        "whitenoise.storage.CompressedManifestStaticFilesStorage",
    )];
    let mut sd_env = f.env(&sd, &storage);
    sd_env.push(("XDG_CACHE_HOME", f.dir.join("cache").display().to_string()));
    let edit = f
        .dir
        .join("pkgroot/staticfiles_tests/project/documents/cached/styles.css");
    summaries_match(
        &f.project,
        (&dj, &f.env(&dj, &storage)),
        (&sd, &sd_env),
        (&["-i", "*.ignoreme"], &["-i", "*.ignoreme"]),
        &edit,
    );
}
