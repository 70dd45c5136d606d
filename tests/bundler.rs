//! Bundler-aware collect (issue 11, point 6): files a bundler already named by content keep
//! that name, their bytes, and are served immutable. A real Vite build in a real Django
//! project, webpack's manifest and the configured globs in `staticd.toml` projects.

use crate::common::{
    self, http,
    project::{manifest_paths, run_collect_env, Project},
    staticd::Staticd,
    vite,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// A Django project: the Vite page in `frontend/` built into `frontend/dist` (a
/// STATICFILES_DIRS entry), a hand-written `static/` beside it, manifest storage.
const SETTINGS: &str = r#"from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "x"
DEBUG = False
INSTALLED_APPS = ["django.contrib.staticfiles"]
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static_root"
STATICFILES_DIRS = [BASE_DIR / "frontend" / "dist", BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates"}]
"#;

const MANAGE_PY: &str = r#"import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mini.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
"#;

/// What django-vite does for `{% vite_asset 'src/main.js' %}`: read Vite's manifest, and ask
/// the staticfiles storage (`{% static %}`) for the URL of the entry's file and its CSS. Real
/// Django renders it; the last line is the hand-written CSS's URL.
const RENDER: &str = r#"import json, django
django.setup()
from django.template import Context, Template
entry = json.load(open("frontend/dist/.vite/manifest.json"))["src/main.js"]
page = Template(
    "{% load static %}<script type=\"module\" src=\"{% static entry.file %}\"></script>\n"
    "{% for css in entry.css %}<link rel=\"stylesheet\" href=\"{% static css %}\">\n{% endfor %}"
    "{% static 'css/site.css' %}"
)
print(page.render(Context({"entry": entry})))
"#;

fn django_project(dir: &Path) {
    common::write_file(dir, "manage.py", MANAGE_PY.as_bytes());
    common::write_file(dir, "mini/__init__.py", b"");
    common::write_file(dir, "mini/settings.py", SETTINGS.as_bytes());
}

/// `{% static %}` rendered by Django in `project` (see [`RENDER`]).
fn render(project: &Path) -> String {
    let out = Command::new(common::venv_python())
        .args(["-c", RENDER])
        .current_dir(project)
        .env("DJANGO_SETTINGS_MODULE", "mini.settings")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "rendering failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// Every regular file below `root`, as paths relative to it.
fn tree(root: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Each URL answers 200 with `Cache-Control: ... immutable` and the bytes of the file under
/// `source` it names.
fn assert_immutable(server: &Staticd, source: &Path, rels: &BTreeSet<String>) {
    for rel in rels {
        let r = http::get(server.addr, &format!("/static/{rel}"), &[]);
        assert_eq!(r.status, 200, "/static/{rel}");
        let cc = r.header("cache-control").unwrap_or("");
        assert!(
            cc.contains("immutable"),
            "/static/{rel}: cache-control {cc:?}"
        );
        assert_eq!(
            r.body,
            std::fs::read(source.join(rel)).unwrap(),
            "/static/{rel}"
        );
    }
}

#[test]
fn real_vite_build_keeps_its_names_and_is_served_immutable() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    let (frontend, dist, root) = (
        project.join("frontend"),
        project.join("frontend/dist"),
        project.join("static_root"),
    );
    django_project(&project);
    vite::write_page(
        &frontend,
        "/static/",
        "dist",
        "export const more = () => 1\n",
    );
    vite::build(&frontend);
    let vm = vite::manifest(&dist);
    let built: BTreeSet<String> = tree(&dist)
        .into_iter()
        .filter(|f| !f.starts_with(".vite/"))
        .collect();
    let entry = vite::files_of(&vm, "src/main.js");
    assert!(
        entry.len() >= 5,
        "the entry, its CSS, two images and the lazy chunk: {entry:?}"
    );
    assert_eq!(entry, built, "the entry needs every file Vite wrote");
    // A hand-written stylesheet that uses one of Vite's images.
    let logo = vm["src/logo.png"]["file"].as_str().unwrap().to_string();
    common::write_file(
        &project.join("static"),
        "css/site.css",
        format!("h1 {{ background: url(../{logo}); }}\n").as_bytes(),
    );

    let py = common::venv_python();
    let env = [("PYTHONDONTWRITEBYTECODE", "1".to_string())];
    let args = ["--python", py.to_str().unwrap(), "--no-compress"];
    run_collect_env(&project, &args, &env);

    // staticfiles.json maps each of Vite's files to itself, byte for byte, hashed once.
    let paths = manifest_paths(&root);
    for f in &built {
        assert_eq!(paths.get(f), Some(f), "{f} in staticfiles.json");
        assert_eq!(
            std::fs::read(root.join(f)).unwrap(),
            std::fs::read(dist.join(f)).unwrap(),
            "{f} copied as it is"
        );
    }
    let published: BTreeSet<String> = tree(&root)
        .into_iter()
        .filter(|f| f.starts_with("assets/"))
        .collect();
    assert_eq!(published, built, "nothing under assets/ is hashed again");
    assert!(
        !root.join(".vite").exists(),
        "Vite's manifest is read, not published (Django skips .vite/ too)"
    );
    // The hand-written CSS is hashed and rewritten as usual, and names Vite's image by its own
    // name.
    let site = paths["css/site.css"].clone();
    assert_ne!(site, "css/site.css");
    let site_text = std::fs::read_to_string(root.join(&site)).unwrap();
    assert!(site_text.contains(&format!("../{logo}")), "{site_text}");

    // Django's {% static %} resolves the entry (and its CSS) to Vite's names.
    let css: Vec<&str> = vm["src/main.js"]["css"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(css.len(), 1, "{vm}");
    let main = vm["src/main.js"]["file"].as_str().unwrap();
    assert_eq!(
        render(&project),
        format!(
            "<script type=\"module\" src=\"/static/{main}\"></script>\n\
             <link rel=\"stylesheet\" href=\"/static/{}\">\n/static/{site}",
            css[0]
        )
    );

    // Every file the entry imports answers 200 and immutable; originals are not immutable.
    let server = Staticd::serve(&root, &[]);
    assert_immutable(&server, &dist, &entry);
    let r = http::get(server.addr, "/static/css/site.css", &[]);
    assert_eq!(r.status, 200);
    assert!(!r.header("cache-control").unwrap().contains("immutable"));
    assert_immutable(&server, &root, &BTreeSet::from([site]));
    drop(server);

    // A new build (the lazy module changed): the new names are published and mapped to
    // themselves; the old ones leave the manifest.
    vite::write_page(
        &frontend,
        "/static/",
        "dist",
        "export const more = () => 2\n",
    );
    vite::build(&frontend);
    let vm2 = vite::manifest(&dist);
    let entry2 = vite::files_of(&vm2, "src/main.js");
    let lazy2 = vm2["src/lazy.js"]["file"].as_str().unwrap().to_string();
    assert_ne!(lazy2, vm["src/lazy.js"]["file"].as_str().unwrap());
    run_collect_env(&project, &args, &env);
    let paths = manifest_paths(&root);
    for f in &entry2 {
        assert_eq!(paths.get(f), Some(f), "{f} in staticfiles.json");
    }
    for gone in entry.difference(&entry2) {
        assert!(!paths.contains_key(gone), "{gone} left the manifest");
    }
    let server = Staticd::serve(&root, &[]);
    assert_immutable(&server, &dist, &entry2);
}

/// A bundle big enough to be worth compressing, with a reference to a map it does not ship.
const MAIN_JS: &str = "import('./chunk.9f8e7d6c.js');\n\
    console.log('one line of a bundle, long enough to be worth compressing');\n\
    console.log('one line of a bundle, long enough to be worth compressing');\n\
    console.log('one line of a bundle, long enough to be worth compressing');\n\
    //# sourceMappingURL=main.1a2b3c4d.js.map\n";

/// staticd.toml sources with webpack's manifest, a `[collect] bundled` glob and a
/// `--bundled` one.
fn webpack_project() -> Project {
    let p = Project::with_storage("compress = true").files(&[
        (
            "bundles/manifest.json",
            br#"{"main.js": "/static/bundles/main.1a2b3c4d.js",
                 "main.css": "/static/bundles/main.5e6f7a8b.css",
                 "gone.js": "/static/bundles/gone.0a0b0c0d.js"}"#,
        ),
        // Django would fail on both references (the map and the image are not shipped).
        ("bundles/main.1a2b3c4d.js", MAIN_JS.as_bytes()),
        (
            "bundles/main.5e6f7a8b.css",
            b"body { background: url(missing.png); }\n",
        ),
        ("bundles/chunk.9f8e7d6c.js", b"export const x = 1;\n"),
        ("vendor/lib.js", b"window.lib = 1;\n"),
        (
            "css/site.css",
            b"@import url(\"../bundles/main.5e6f7a8b.css\");\n.x { background: url(../vendor/lib.js); }\n",
        ),
    ]);
    p.append_config("[collect]\nbundled = [\"vendor/*\"]\n");
    p
}

#[test]
fn webpack_manifest_and_globs() {
    let p = webpack_project();
    let out = p.collect(&["--bundled", "bundles/chunk.*", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let manifest_json = p.dir.join("assets/bundles/manifest.json");
    assert!(
        stderr.contains(&format!(
            "warning: bundler manifest {} names '/static/bundles/gone.0a0b0c0d.js', which is not \
             a static file collected from its directory; ignored",
            manifest_json.display()
        )),
        "{stderr}"
    );
    let paths = p.manifest();
    for rel in [
        "bundles/main.1a2b3c4d.js",
        "bundles/main.5e6f7a8b.css",
        "bundles/chunk.9f8e7d6c.js",
        "vendor/lib.js",
    ] {
        assert_eq!(paths[rel], rel);
        assert_eq!(
            std::fs::read(p.root().join(rel)).unwrap(),
            std::fs::read(p.dir.join("assets").join(rel)).unwrap(),
            "{rel} copied as it is"
        );
    }
    // webpack's own manifest is no bundler output: hashed as any file.
    assert_ne!(paths["bundles/manifest.json"], "bundles/manifest.json");
    let site = &paths["css/site.css"];
    assert_ne!(site, "css/site.css");
    assert_eq!(
        std::fs::read_to_string(p.root().join(site)).unwrap(),
        "@import url(\"../bundles/main.5e6f7a8b.css\");\n.x { background: url(\"../vendor/lib.js\"); }\n"
    );
    let published = tree(&p.root());
    assert!(
        !published
            .iter()
            .any(|f| f.starts_with("bundles/main.1a2b3c4d.")
                && !f.starts_with("bundles/main.1a2b3c4d.js")),
        "hashed twice: {published:?}"
    );

    let server = Staticd::serve(&p.root(), &[]);
    let bundled = BTreeSet::from([
        "bundles/main.1a2b3c4d.js".to_string(),
        "bundles/chunk.9f8e7d6c.js".to_string(),
        site.clone(),
    ]);
    assert_immutable(&server, &p.root(), &bundled);
    // A glob keeps a name that shows no hash, but such a name promises nothing to a cache.
    let r = http::get(server.addr, "/static/vendor/lib.js", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    let r = http::get(
        server.addr,
        "/static/bundles/main.1a2b3c4d.js",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"), "variants made");
    let r = http::get(server.addr, "/static/bundles/manifest.json", &[]);
    assert!(!r.header("cache-control").unwrap().contains("immutable"));
}

/// A bundled file is the published, cacheable copy, as a hashed one is: it stays under
/// `keep_only_hashed_files` and is a real file (with variants) under `--link`.
#[test]
fn bundled_files_under_keep_only_hashed_files_and_link() {
    let p = webpack_project();
    p.append_config("[whitenoise]\nkeep_only_hashed_files = true\n");
    p.run_collect(&[]);
    let published = tree(&p.root());
    assert!(published.contains("bundles/main.1a2b3c4d.js"));
    assert!(published.contains("vendor/lib.js"));
    assert!(
        !published.contains("css/site.css"),
        "originals are not kept"
    );

    let p = webpack_project();
    p.run_collect(&["--link"]);
    let kind = |rel: &str| {
        std::fs::symlink_metadata(p.root().join(rel))
            .unwrap()
            .file_type()
    };
    assert!(kind("css/site.css").is_symlink(), "originals are linked");
    assert!(kind("bundles/main.1a2b3c4d.js").is_file());
    assert!(p.root().join("bundles/main.1a2b3c4d.js.gz").is_file());
}

/// A file whose status flips while its bytes stay (its manifest starts or stops listing it)
/// is named again, although nothing else about it changed.
#[test]
fn a_file_named_by_a_new_manifest_keeps_its_name_then_loses_it() {
    let vite = |files: &[&str]| {
        let chunks: Vec<String> = files
            .iter()
            .map(|f| format!("\"src/{f}\": {{\"file\": \"assets/{f}\"}}"))
            .collect();
        format!("{{{}}}", chunks.join(", "))
    };
    let p = Project::new().files(&[
        ("dist/assets/a-DxqxU1Uw.js", b"a"),
        ("dist/assets/b-oX-bZsvC.js", b"b"),
    ]);
    p.write(
        "dist/.vite/manifest.json",
        vite(&["a-DxqxU1Uw.js"]).as_bytes(),
    );
    p.run_collect(&[]);
    assert_eq!(
        p.hashed("dist/assets/a-DxqxU1Uw.js"),
        "dist/assets/a-DxqxU1Uw.js"
    );
    let b_hashed = p.hashed("dist/assets/b-oX-bZsvC.js");
    assert_ne!(b_hashed, "dist/assets/b-oX-bZsvC.js");

    p.write(
        "dist/.vite/manifest.json",
        vite(&["a-DxqxU1Uw.js", "b-oX-bZsvC.js"]).as_bytes(),
    );
    p.run_collect(&[]);
    assert_eq!(
        p.hashed("dist/assets/b-oX-bZsvC.js"),
        "dist/assets/b-oX-bZsvC.js"
    );

    p.write(
        "dist/.vite/manifest.json",
        vite(&["a-DxqxU1Uw.js"]).as_bytes(),
    );
    p.run_collect(&[]);
    assert_eq!(p.hashed("dist/assets/b-oX-bZsvC.js"), b_hashed);
    assert_eq!(
        p.hashed("dist/assets/a-DxqxU1Uw.js"),
        "dist/assets/a-DxqxU1Uw.js"
    );
}

#[test]
fn a_malformed_vite_manifest_fails_naming_file_line_and_column() {
    let p = Project::new().files(&[
        ("dist/assets/a-DxqxU1Uw.js", b"a"),
        (
            "dist/.vite/manifest.json",
            br#"{"src/a.js": {"file": "assets/a-DxqxU1Uw.js"}}"#,
        ),
    ]);
    p.run_collect(&[]);
    let before = std::fs::read(p.root().join("staticfiles.json")).unwrap();
    // A build cut short.
    p.write(
        "dist/.vite/manifest.json",
        b"{\n  \"src/a.js\": {\n    \"file\": \"assets/a-Dx",
    );
    let out = p.collect(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let path = p.dir.join("assets/dist/.vite/manifest.json");
    assert!(
        stderr.contains(&format!(
            "error: {}:3:24: not a valid Vite manifest: EOF while parsing a string",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(p.root().join("staticfiles.json")).unwrap(),
        before,
        "the previous generation stays published"
    );
    // --format json: the same error on stdout, of a stable kind, with its place.
    let out = p.collect(&["--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON error ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let e = &v["error"];
    assert_eq!(e["kind"], "bundler_manifest", "{v}");
    assert_eq!(e["path"], path.display().to_string(), "{v}");
    assert_eq!((&e["line"], &e["column"]), (&3.into(), &24.into()), "{v}");
    assert!(
        e["message"].as_str().is_some_and(|m| stderr.contains(m)),
        "{v}"
    );
}

/// `staticd prune` treats a bundler name like a hashed one (an old build's chunks go with
/// their generation), but never deletes a current original, even one that an old generation
/// published as a bundler name.
#[test]
fn prune_deletes_old_bundler_names_but_never_a_current_original() {
    let p = Project::new().files(&[
        ("dist/assets/a-DxqxU1Uw.js", b"a"),
        ("dist/assets/old-oX-bZsvC.js", b"old"),
        (
            "dist/.vite/manifest.json",
            br#"{"a": {"file": "assets/a-DxqxU1Uw.js"}, "o": {"file": "assets/old-oX-bZsvC.js"}}"#,
        ),
    ]);
    p.run_collect(&[]);
    // The next build drops old-*.js from the sources, and no longer lists a-*.js (collected
    // and hashed as a plain file, its original published as Django would).
    std::fs::remove_file(p.dir.join("assets/dist/assets/old-oX-bZsvC.js")).unwrap();
    p.write(
        "dist/.vite/manifest.json",
        b"{\"o\": {\"file\": \"x-oX-bZsvC.js\"}}",
    );
    p.run_collect(&[]);
    let a_hashed = p.hashed("dist/assets/a-DxqxU1Uw.js");
    assert_ne!(a_hashed, "dist/assets/a-DxqxU1Uw.js");
    assert!(p.root().join("dist/assets/old-oX-bZsvC.js").exists());

    p.prune(&["--keep-generations", "1"]);
    assert!(
        !p.root().join("dist/assets/old-oX-bZsvC.js").exists(),
        "generation 1's bundler name pruned"
    );
    for kept in ["dist/assets/a-DxqxU1Uw.js", a_hashed.as_str()] {
        assert!(p.root().join(kept).exists(), "{kept} kept");
    }
}
