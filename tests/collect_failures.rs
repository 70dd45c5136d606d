//! Bad input gives a clear message, exit status 1, and leaves STATIC_ROOT exactly as it was.
//! Projects here use `staticd.toml`, so no Python is needed.

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
/// contains every `expect`ed part, the tree is unchanged.
fn fails_cleanly(breakage: &[(&str, &[u8])], expect: &[&str]) -> Project {
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
    p
}

#[test]
fn missing_reference_names_file_line_and_reference() {
    fails_cleanly(
        &[(
            "css/app.css",
            b"/* ok */\nh1 { background: url('../img/nope.png'); }\n",
        )],
        &["css/app.css:2:", "url('../img/nope.png')", "img/nope.png"],
    );
}

#[test]
fn cycle_names_its_files() {
    fails_cleanly(
        &[
            ("css/a.css", b"@import url(\"b.css\");"),
            ("css/b.css", b"@import url(\"a.css\");"),
        ],
        &["css/a.css, css/b.css", "cycle"],
    );
}

#[test]
fn non_utf8_css_is_named() {
    fails_cleanly(
        &[("css/latin.css", b"body { content: \"caf\xe9\"; }")],
        &["css/latin.css", "not valid UTF-8"],
    );
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
