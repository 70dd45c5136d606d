//! Bad input gives a clear message, exit status 1, and leaves STATIC_ROOT exactly as it was;
//! with `--format json` the error is also on stdout with a stable `kind`. Projects here use
//! `staticd.toml`, so no Python is needed.

use crate::common::project::{collect_output, Project};
use crate::common::{copy_tree, tree_digest};
use std::fs;
use std::process::Command;

const STATICD: &str = env!("CARGO_BIN_EXE_staticd");

/// A project of these files, with compression on (the failures must hold with it).
fn project(files: &[(&str, &[u8])]) -> Project {
    Project::with_storage("compress = true\n").files(files)
}

const GOOD: &[(&str, &[u8])] = &[
    ("css/app.css", b"body { background: url(../img/a.png); }\n"),
    ("img/a.png", b"\x89PNG fake"),
];

/// Collects a good tree, breaks the sources with `breakage`, collects again: exit 1, stderr
/// contains every `expect`ed part, the tree is unchanged. Then the same with `--format json`:
/// the JSON error on stdout, returned, has `kind` and the same message.
fn fails_cleanly(breakage: &[(&str, &[u8])], kind: &str, expect: &[&str]) -> serde_json::Value {
    let p = project(GOOD);
    p.run_collect(&[]);
    let before = tree_digest(&p.root());
    for (rel, bytes) in breakage {
        p.write(rel, bytes);
    }
    let out = p.collect(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in: {stderr}");
    }
    assert_eq!(tree_digest(&p.root()), before, "STATIC_ROOT changed");
    let error = json_error(&p.collect(&["--format", "json"]), kind);
    let message = error["message"].as_str().unwrap();
    assert!(stderr.contains(message), "{message:?} not in: {stderr}");
    assert_eq!(tree_digest(&p.root()), before, "STATIC_ROOT changed");
    error
}

/// The `error` object of a failed `--format json` collect, which must be of `kind`.
fn json_error(out: &std::process::Output, kind: &str) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON error ({e}): {stdout}\n{stderr}"));
    assert_eq!(v["error"]["kind"], kind, "{v}");
    v["error"].clone()
}

#[test]
fn missing_reference_names_file_line_and_reference() {
    let e = fails_cleanly(
        &[(
            "css/app.css",
            b"/* ok */\nh1 { background: url('../img/nope.png'); }\n",
        )],
        "missing_reference",
        &["css/app.css:2:", "url('../img/nope.png')", "img/nope.png"],
    );
    let refs = e["references"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{e}");
    assert_eq!(refs[0]["path"], "css/app.css");
    assert_eq!(refs[0]["line"], 2);
    assert_eq!(refs[0]["reference"], "url('../img/nope.png')");
    assert_eq!(refs[0]["target"], "img/nope.png");
}

#[test]
fn cycle_names_its_files() {
    let e = fails_cleanly(
        &[
            ("css/a.css", b"@import url(\"b.css\");"),
            ("css/b.css", b"@import url(\"a.css\");"),
        ],
        "cycle",
        &["css/a.css, css/b.css", "cycle"],
    );
    assert_eq!(e["cycles"], serde_json::json!([["css/a.css", "css/b.css"]]));
}

#[test]
fn non_utf8_css_is_named() {
    let e = fails_cleanly(
        &[("css/latin.css", b"body { content: \"caf\xe9\"; }")],
        "not_utf8",
        &["css/latin.css", "not valid UTF-8"],
    );
    assert_eq!(e["path"], "css/latin.css");
}

#[test]
fn reference_outside_static_root_is_refused_with_its_line() {
    let e = fails_cleanly(
        &[(
            "css/app.css",
            b"/* ok */\nh1 { background: url(../../../x.png); }\n",
        )],
        "rewrite_refused",
        &["css/app.css:2:", "outside STATIC_ROOT"],
    );
    assert_eq!(
        (e["path"].as_str(), e["line"].as_u64()),
        (Some("css/app.css"), Some(2))
    );
}

/// A FIFO among the sources (root reads anything, but not this): Django's collectstatic
/// would wait for a writer forever; staticd names it and stops.
#[test]
fn fifo_source_is_an_unreadable_source() {
    let p = project(GOOD);
    p.run_collect(&[]);
    let before = tree_digest(&p.root());
    let fifo = p.dir.join("assets/img/pipe.png");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = p.collect(&["--format", "json"]);
    let e = json_error(&out, "unreadable_source");
    assert_eq!(e["path"], fifo.display().to_string());
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("not a regular file"), "{message}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(message));
    assert_eq!(tree_digest(&p.root()), before);
}

/// STATIC_ROOT below a regular file cannot be created: an I/O error naming the path.
#[test]
fn static_root_below_a_file_is_an_io_error() {
    let p = project(GOOD);
    fs::write(p.dir.join("blocker"), b"a file, not a directory").unwrap();
    let toml = fs::read_to_string(p.dir.join("staticd.toml")).unwrap();
    fs::write(
        p.dir.join("staticd.toml"),
        toml.replace(
            "static_root = \"static\"",
            "static_root = \"blocker/static\"",
        ),
    )
    .unwrap();
    let e = json_error(&p.collect(&["--format", "json"]), "io");
    assert_eq!(
        e["path"],
        p.dir.join("blocker").display().to_string(),
        "{e}"
    );
    assert!(!p.dir.join("static").exists());
}

#[test]
fn symlink_loop_is_named() {
    let p = project(GOOD);
    p.run_collect(&[]);
    let before = tree_digest(&p.root());
    std::os::unix::fs::symlink(p.dir.join("assets"), p.dir.join("assets/css/loop")).unwrap();
    let out = p.collect(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("symlink loop") && stderr.contains("loop"),
        "{stderr}"
    );
    assert_eq!(tree_digest(&p.root()), before);
}

#[test]
fn unreadable_file_is_named() {
    let p = project(GOOD);
    p.run_collect(&[]);
    let before = tree_digest(&p.root());
    p.write("img/secret.png", b"x");
    let secret = p.dir.join("assets/img/secret.png");
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // root reads anything: run as nobody then (the tree must be usable by nobody).
    let out = if unsafe { libc::geteuid() } == 0 {
        for e in walkdir::WalkDir::new(p.dir.parent().unwrap()) {
            let e = e.unwrap();
            if e.path() != secret {
                let mode = if e.file_type().is_dir() { 0o777 } else { 0o666 };
                fs::set_permissions(e.path(), std::os::unix::fs::PermissionsExt::from_mode(mode))
                    .unwrap();
            }
        }
        Command::new("setpriv")
            .env("XDG_CACHE_HOME", &p.cache)
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                STATICD,
                "collect",
            ])
            .arg(&p.dir)
            .output()
            .unwrap()
    } else {
        p.collect(&[])
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("secret.png"), "{stderr}");
    assert_eq!(tree_digest(&p.root()), before);
}

#[test]
fn no_project_facts_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = collect_output(tmp.path(), &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("staticd.toml") && stderr.contains("manage.py"),
        "{stderr}"
    );
}

/// A bigger tree so that a collect takes a while; kill -9 at several moments. Each time the
/// tree is either exactly the old one or exactly the finished new one, never a mix.
#[test]
fn kill_during_collect_leaves_old_or_new_tree() {
    let p = project(GOOD);
    p.run_collect(&[]);
    let old = tree_digest(&p.root());
    // Compressible, distinct files: brotli 11 keeps the collect busy for a second or so
    // (`--no-cache` below, so no run is shortened by a cache another one warmed).
    for i in 0..100 {
        let body: String = (0..200)
            .map(|j| format!(".c{i}-{j} {{ margin: {j}px; content: \"{}\"; }}\n", i * j))
            .collect();
        p.write(&format!("css/gen/f{i}.css"), body.as_bytes());
    }
    // What a finished collect produces, computed on a copy.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&p.dir, &copy.path().join("proj"));
    crate::common::project::run_collect(&copy.path().join("proj"), &["--no-cache"]);
    let new = tree_digest(&copy.path().join("proj/static"));
    assert_ne!(old, new);

    let mut saw_old = false;
    for delay_ms in [5u64, 30, 100, 250, 500, 800] {
        let mut child = Command::new(STATICD)
            .arg("collect")
            .arg(&p.dir)
            .arg("--no-cache")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The sleep is the test's input (when the kill lands), not a wait for an outcome.
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let now = tree_digest(&p.root());
        assert!(
            now == old || now == new,
            "killed after {delay_ms} ms: a mixed tree"
        );
        if now == old {
            saw_old = true;
        } else {
            break;
        }
    }
    assert!(
        saw_old,
        "no kill landed before the publish; the test proved nothing"
    );
    // The next run cleans up what the killed one left and publishes.
    p.run_collect(&["--no-cache"]);
    assert_eq!(tree_digest(&p.root()), new);
    let leftovers: Vec<_> = fs::read_dir(&p.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains("staticd-stage"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
