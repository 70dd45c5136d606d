//! The remembered discovery (src/django/memo.rs) is reused only while it is provably the
//! same. Settings that read a `.env` file (django-environ's `read_env`, python-decouple's
//! `config`, emulated here with plain `open()`), the file appearing, an app switched on and
//! off by it, STATIC_ROOT moved by it, an environment variable the settings read, the
//! settings module itself: after each change staticd asks Django again (its `-v 3` line says
//! why), and the manifest it publishes is the one Django's own collectstatic makes.

use crate::common;
use crate::common::project::{collect_output, manifest_paths};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the settings module reads `.env`.
#[derive(Clone, Copy, Debug)]
enum Reader {
    /// django-environ style: `read_env(path)` opens the file (a missing one is skipped) and
    /// `os.environ.setdefault`s each line, so a real environment variable wins.
    Environ,
    /// python-decouple style: `os.path.isfile(path)`, then plain `open()`; `config(name)`
    /// prefers the environment, then `.env`, then the default.
    Decouple,
}

const MANAGE_PY: &str = "import os, sys\n\
if __name__ == \"__main__\":\n    \
os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"site_conf.settings\")\n    \
from django.core.management import execute_from_command_line\n    \
execute_from_command_line(sys.argv)\n";

const ENVFILE_PY: &str = r##"import os


def read_env(path):
    try:
        with open(path) as f:
            content = f.read()
    except OSError:
        return
    for line in content.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ.setdefault(key.strip(), value.strip().strip("'\""))
"##;

fn settings_py(reader: Reader) -> String {
    let head = match reader {
        Reader::Environ => {
            "from site_conf import envfile\n\
             envfile.read_env(BASE_DIR / \".env\")\n\
             def config(name, default=\"\"):\n    return os.environ.get(name, default)\n"
        }
        Reader::Decouple => {
            "_dotenv = {}\n\
             _path = os.path.join(BASE_DIR, \".env\")\n\
             if os.path.isfile(_path):\n    \
                 for _line in open(_path):\n        \
                     _line = _line.strip()\n        \
                     if _line and not _line.startswith(\"#\") and \"=\" in _line:\n            \
                         _k, _v = _line.split(\"=\", 1)\n            \
                         _dotenv[_k.strip()] = _v.strip()\n\
             def config(name, default=\"\"):\n    \
                 return os.environ.get(name, _dotenv.get(name, default))\n"
        }
    };
    format!(
        "import os\nfrom pathlib import Path\n\
         BASE_DIR = Path(__file__).resolve().parent.parent\n\
         {head}\
         SECRET_KEY = \"memo\"\n\
         INSTALLED_APPS = [\"django.contrib.staticfiles\", \"core\"] + [a for a in config(\"EXTRA_APPS\").split(\",\") if a]\n\
         STATIC_URL = \"static/\"\n\
         STATIC_ROOT = BASE_DIR / config(\"STATIC_DIR\", \"public/static\")\n\
         STORAGES = {{\n    \
             \"default\": {{\"BACKEND\": \"django.core.files.storage.FileSystemStorage\"}},\n    \
             \"staticfiles\": {{\"BACKEND\": \"django.contrib.staticfiles.storage.ManifestStaticFilesStorage\"}},\n\
         }}\n"
    )
}

/// The project's sources (no `.env`, nothing collected) in `dir`: app `core` always
/// installed, app `shop` (27 files, CSS referencing images and each other) when `.env` or
/// the environment says `EXTRA_APPS=shop`.
fn write_project(dir: &Path, reader: Reader) {
    let w = |rel: &str, text: &str| {
        common::write_file(dir, rel, text.as_bytes());
    };
    w("manage.py", MANAGE_PY);
    w("site_conf/__init__.py", "");
    w("site_conf/settings.py", &settings_py(reader));
    if let Reader::Environ = reader {
        w("site_conf/envfile.py", ENVFILE_PY);
    }
    w("core/__init__.py", "");
    w(
        "core/static/core/app.css",
        "body { background: url(\"img/logo.png\"); }\n",
    );
    w("core/static/core/img/logo.png", "not really a png");
    w("core/static/core/app.js", "console.log('core');\n");
    w("shop/__init__.py", "");
    w(
        "shop/static/shop/shop.css",
        "@import url(\"base.css\");\n.cart { background: url(\"img/p0.png\"); }\n",
    );
    w("shop/static/shop/base.css", "html { color: #333; }\n");
    w("shop/static/shop/cart.js", "export const cart = [];\n");
    for i in 0..24 {
        w(
            &format!("shop/static/shop/img/p{i}.png"),
            &format!("product {i}"),
        );
    }
}

/// A project in a temp dir, its own discovery memo and variant cache.
struct Memo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    project: PathBuf,
    cache: PathBuf,
    reader: Reader,
    djangos: std::cell::Cell<usize>,
}

impl Memo {
    fn new(reader: Reader) -> Memo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(tmp.path()).unwrap();
        let project = dir.join("proj");
        write_project(&project, reader);
        Memo {
            _tmp: tmp,
            cache: dir.join("cache"),
            dir,
            project,
            reader,
            djangos: std::cell::Cell::new(0),
        }
    }

    fn env_file(&self, text: &str) {
        std::fs::write(self.project.join(".env"), text).unwrap();
    }

    /// `staticd collect --hash md5 -v 3 --format json` with `env` added: the summary and the
    /// `-v 3` discovery line.
    fn staticd(&self, env: &[(&str, &str)]) -> (serde_json::Value, String) {
        let py = common::venv_python();
        let mut all: Vec<(&str, String)> =
            vec![("XDG_CACHE_HOME", self.cache.display().to_string())];
        all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        let out = collect_output(
            &self.project,
            &[
                "--python",
                py.to_str().unwrap(),
                "--hash",
                "md5",
                "--no-compress",
                "-v",
                "3",
                "--format",
                "json",
            ],
            &all,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "staticd collect failed:\n{stderr}");
        let summary = serde_json::from_slice(&out.stdout).unwrap();
        let line = stderr
            .lines()
            .find(|l| l.starts_with("timing: discovery: "))
            .unwrap_or_else(|| panic!("no discovery timing line in:\n{stderr}"))
            .to_string();
        (summary, line)
    }

    /// Django's collectstatic on a fresh copy of the sources with the same `.env`, settings
    /// and environment: its manifest's paths.
    fn django(&self, env: &[(&str, &str)], static_dir: &str) -> BTreeMap<String, String> {
        let n = self.djangos.get() + 1;
        self.djangos.set(n);
        let copy = self.dir.join(format!("django-{n}"));
        write_project(&copy, self.reader);
        for edited in [".env", "site_conf/settings.py"] {
            if let Ok(text) = std::fs::read(self.project.join(edited)) {
                std::fs::write(copy.join(edited), text).unwrap();
            }
        }
        let out = Command::new(common::venv_python())
            .args(["manage.py", "collectstatic", "--noinput", "-v", "0"])
            .current_dir(&copy)
            .envs(env.iter().copied())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Django's collectstatic failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        manifest_paths(&copy.join(static_dir))
    }

    /// A collect after a change: staticd asked Django again for `why` (and remembered the
    /// answer), published into `static_dir`, and its manifest is Django's.
    fn changed(&self, env: &[(&str, &str)], why: &str, static_dir: &str) -> usize {
        let (summary, line) = self.staticd(env);
        assert!(
            line.contains(&format!("(Python ran: {why}; remembered, ")),
            "expected a new discovery because {why:?}, got: {line}"
        );
        let root = self.project.join(static_dir);
        assert_eq!(
            summary["static_root"].as_str(),
            Some(root.to_str().unwrap()),
            "published into the STATIC_ROOT Django would use"
        );
        let ours = manifest_paths(&root);
        let theirs = self.django(env, static_dir);
        assert_eq!(ours, theirs, "staticd's manifest differs from Django's");
        self.unchanged(env, static_dir);
        ours.len()
    }

    /// Runs again with nothing changed until the discovery is remembered (a first run right
    /// after the project's files were written, or one that created STATIC_ROOT's parent, is
    /// not), checking that it stays put meanwhile.
    fn unchanged(&self, env: &[(&str, &str)], static_dir: &str) {
        let root = self.project.join(static_dir);
        let before = manifest_paths(&root);
        // Two runs on a filesystem with nanosecond times; more where times are whole
        // seconds (memo::slack).
        for _ in 0..8 {
            let (summary, line) = self.staticd(env);
            assert_eq!(
                summary["static_root"].as_str(),
                Some(root.to_str().unwrap())
            );
            assert_eq!(summary["copied"], 0, "nothing changed: {summary}");
            assert_eq!(manifest_paths(&root), before);
            if line.contains("(remembered; ") {
                return;
            }
        }
        panic!("the discovery was never remembered");
    }
}

fn env_driven(reader: Reader) {
    let m = Memo::new(reader);
    let env_file = m.project.join(".env");
    let e = env_file.display();

    // No .env: core only, once remembered.
    m.staticd(&[]);
    let core_only = manifest_paths(&m.project.join("public/static"));
    assert_eq!(core_only, m.django(&[], "public/static"));
    m.unchanged(&[], "public/static");
    assert!(
        core_only.keys().all(|k| k.starts_with("core/")),
        "{core_only:?}"
    );

    // .env appears and switches the shop on: all of its files are collected.
    m.env_file("EXTRA_APPS=shop\n");
    let n = m.changed(&[], &format!("{e} was absent, is present"), "public/static");
    assert_eq!(n, core_only.len() + 27);

    // Rewritten at once with the same size: only its bytes tell (content, not timestamps).
    m.env_file("#XTRA_APPS=shop\n");
    let n = m.changed(&[], &format!("{e} changed"), "public/static");
    assert_eq!(n, core_only.len(), "shop switched off");

    // STATIC_ROOT moved by .env: published into the new root, the old one left alone.
    m.env_file("EXTRA_APPS=shop\nSTATIC_DIR=elsewhere/static\n");
    m.changed(&[], &format!("{e} changed"), "elsewhere/static");
    assert_eq!(manifest_paths(&m.project.join("public/static")), core_only);

    // An environment variable the settings read beats .env, and its going away is seen too.
    let off = [("EXTRA_APPS", "")];
    let n = m.changed(&off, "the environment changed", "elsewhere/static");
    assert_eq!(n, core_only.len(), "shop switched off by the environment");
    let n = m.changed(&[], "the environment changed", "elsewhere/static");
    assert_eq!(n, core_only.len() + 27);

    // The settings module itself.
    let settings = m.project.join("site_conf/settings.py");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        format!("{text}STATIC_ROOT = BASE_DIR / \"from_settings\"\n"),
    )
    .unwrap();
    let (summary, line) = m.staticd(&[]);
    assert!(
        line.contains(&format!("(Python ran: {} changed", settings.display())),
        "{line}"
    );
    let root = m.project.join("from_settings");
    assert_eq!(
        summary["static_root"].as_str(),
        Some(root.to_str().unwrap())
    );
    assert_eq!(manifest_paths(&root), m.django(&[], "from_settings"));
}

#[test]
fn env_file_read_like_django_environ() {
    env_driven(Reader::Environ);
}

#[test]
fn env_file_read_like_python_decouple() {
    env_driven(Reader::Decouple);
}

/// Settings that start a subprocess depend on something no record covers: their discovery
/// is never reused.
#[test]
fn settings_running_a_subprocess_are_never_remembered() {
    let m = Memo::new(Reader::Environ);
    let settings = m.project.join("site_conf/settings.py");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        format!("import subprocess\nsubprocess.run([\"true\"])\n{text}"),
    )
    .unwrap();
    for _ in 0..2 {
        let (_, line) = m.staticd(&[]);
        assert!(
            line.contains(
                "(Python ran: none remembered; not remembered: the settings started a subprocess)"
            ),
            "{line}"
        );
    }
}

/// Every way a settings module can look at a file leaves a record in `discover.py`: what
/// CPython audits (`open`, `os.listdir`, `os.scandir`) and what it does not (`os.stat`,
/// `os.lstat`, `os.access` and all built on them), on the test venv's Python and on the
/// machine's `python3` when it is another version.
#[test]
fn recorder_sees_every_kind_of_probe() {
    const PROBES: &str = r#"
import glob, json, os, pathlib, sys
g = {"__name__": "probe"}
exec(compile(sys.argv[1], "discover.py", "exec"), g)
deps = g["Depends"]()
deps.install()
os.chdir(sys.argv[2])
P = pathlib.Path
probes = {
    "os.path.exists": lambda: os.path.exists("missing"),
    "os.path.isfile": lambda: os.path.isfile("f.txt"),
    "os.path.isdir": lambda: os.path.isdir("sub"),
    "os.path.islink": lambda: os.path.islink("link"),
    "os.path.getmtime": lambda: os.path.getmtime("f.txt"),
    "os.path.realpath": lambda: os.path.realpath("link"),
    "os.access": lambda: os.access("f.txt", os.R_OK),
    "Path.exists": lambda: P("missing").exists(),
    "Path.is_file": lambda: P("f.txt").is_file(),
    "Path.is_dir": lambda: P("sub").is_dir(),
    "Path.resolve": lambda: P("link").resolve(),
    "Path.read_text": lambda: P("f.txt").read_text(),
    "open": lambda: open("f.txt").read(),
    "open missing": lambda: open(".env"),
    "os.open": lambda: os.close(os.open("f.txt", os.O_RDONLY)),
    "os.listdir": lambda: os.listdir("sub"),
    "Path.iterdir": lambda: list(P("sub").iterdir()),
    "glob.glob": lambda: glob.glob("sub/*"),
    "os.walk": lambda: list(os.walk("sub")),
}
seen = {}
for name, probe in probes.items():
    deps.stat.clear(); deps.listing.clear(); deps.content.clear()
    try:
        probe()
    except OSError:
        pass
    base = os.getcwd() + os.sep
    seen[name] = sorted(
        ["stat" if k[1] else "lstat", k[0][len(base):]] for k in deps.stat
    ) + sorted(["listing", k[len(base):]] for k in deps.listing) + sorted(
        ["content", k[len(base):]] for k in deps.content
    )
# discover.py sends print() to stderr; its own stdout is kept for the result.
g["_real_stdout"].write(json.dumps({"version": sys.version.split()[0], "seen": seen}) + "\n")
"#;
    let t = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(t.path()).unwrap();
    common::write_file(&dir, "f.txt", b"hi");
    common::write_file(&dir, "sub/x.txt", b"x");
    std::os::unix::fs::symlink("f.txt", dir.join("link")).unwrap();
    let expect: &[(&str, &[(&str, &str)])] = &[
        ("os.path.exists", &[("stat", "missing")]),
        ("os.path.isfile", &[("stat", "f.txt")]),
        ("os.path.isdir", &[("stat", "sub")]),
        ("os.path.islink", &[("lstat", "link")]),
        ("os.path.getmtime", &[("stat", "f.txt")]),
        ("os.path.realpath", &[("lstat", "link"), ("lstat", "f.txt")]),
        ("os.access", &[("stat", "f.txt")]),
        ("Path.exists", &[("stat", "missing")]),
        ("Path.is_file", &[("stat", "f.txt")]),
        ("Path.is_dir", &[("stat", "sub")]),
        ("Path.resolve", &[("lstat", "link"), ("lstat", "f.txt")]),
        ("Path.read_text", &[("content", "f.txt")]),
        ("open", &[("content", "f.txt")]),
        ("open missing", &[("stat", ".env")]),
        ("os.open", &[("content", "f.txt")]),
        ("os.listdir", &[("listing", "sub")]),
        ("Path.iterdir", &[("listing", "sub")]),
        ("glob.glob", &[("listing", "sub")]),
        ("os.walk", &[("listing", "sub")]),
    ];
    let venv = common::venv_python();
    let mut versions = Vec::new();
    for python in [venv.as_path(), Path::new("python3")] {
        let Ok(out) = Command::new(python)
            .arg("-c")
            .arg(PROBES)
            .arg(staticd::django::DISCOVER_PY)
            .arg(&dir)
            .output()
        else {
            continue;
        };
        assert!(
            out.status.success(),
            "{}: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let version = v["version"].as_str().unwrap().to_string();
        if versions.contains(&version) {
            continue;
        }
        for (probe, records) in expect {
            let got: Vec<(String, String)> = v["seen"][*probe]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
                .collect();
            for (kind, path) in *records {
                assert!(
                    got.iter().any(|(k, p)| k == kind && p == path),
                    "Python {version}: {probe} left no {kind} record of {path}: {got:?}"
                );
            }
        }
        versions.push(version);
    }
    assert!(!versions.is_empty());
    eprintln!("recorder checked on Python {}", versions.join(", "));
}
