//! The command line itself: Django's collectstatic flags accepted, `--pythonpath`, shell
//! completions and manual pages generated from the clap definitions.

use crate::common;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn staticd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_staticd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run staticd")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn bash_completion_is_valid_bash_and_knows_every_command() {
    let script = stdout(&staticd(&["completions", "bash"]));
    for word in [
        "collect",
        "serve",
        "dev",
        "prune",
        "--missing",
        "--upstream",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    // `bash -n` parses without running: a syntax error in the generated script fails here.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("staticd.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn completions_for_other_shells() {
    for (shell, marker) in [
        ("zsh", "#compdef staticd"),
        ("fish", "complete -c staticd"),
        ("elvish", "staticd"),
        ("powershell", "staticd"),
    ] {
        let script = stdout(&staticd(&["completions", shell]));
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        assert!(script.contains("collect"), "{shell}: no collect");
    }
    let bad = staticd(&["completions", "tcsh"]);
    assert!(!bad.status.success());
}

#[test]
fn man_pages_for_staticd_and_each_command() {
    let top = stdout(&staticd(&["man"]));
    assert!(
        top.contains(".TH staticd 1"),
        "{}",
        &top[..top.len().min(300)]
    );
    for cmd in ["collect", "serve", "dev", "prune"] {
        let page = stdout(&staticd(&["man", cmd]));
        assert!(
            page.contains(&format!(".TH staticd-{cmd} 1")),
            "{cmd}: {}",
            &page[..page.len().min(300)]
        );
    }
    // The collect page documents its options, the serve page its own.
    assert!(stdout(&staticd(&["man", "collect"])).contains("missing"));
    assert!(stdout(&staticd(&["man", "serve"])).contains("upstream"));
    let bad = staticd(&["man", "nope"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("collect"));
}

/// `python manage.py collectstatic --noinput --clear -v 0 --skip-checks ...` becomes a staticd
/// command line by changing the program: every flag Django's command accepts is accepted.
#[test]
fn collectstatic_flags_are_accepted() {
    let p = common::project::Project::new().files(&[("app.css", b"body{}")]);
    let summary = p.run_collect(&[
        "--noinput",
        "--no-input",
        "--skip-checks",
        "--traceback",
        "--no-color",
        "--force-color",
        "--clear",
        "-v",
        "0",
    ]);
    assert_eq!(summary["copied"], 1, "{summary}");
    assert!(p.root().join("app.css").is_file());
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Django's `--pythonpath DIR`: the settings import a module found only in DIR.
#[test]
fn pythonpath_reaches_the_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    let extra = tmp.path().join("extra");
    write(
        &extra.join("sharedconf.py"),
        "STATIC_URL = '/assets/'\nINSTALLED_APPS = ['django.contrib.staticfiles']\n",
    );
    write(&project.join("static").join("a.css"), "a{}");
    write(
        &project.join("settings.py"),
        "from sharedconf import *\nSECRET_KEY = 'x'\nSTATIC_ROOT = 'out'\nSTATICFILES_DIRS = ['static']\n",
    );
    let python = common::venv_python();
    let run = |extra_args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_staticd"))
            .arg("collect")
            .arg(&project)
            .arg("--python")
            .arg(&python)
            .args(["--settings", "settings", "--format", "json"])
            .args(extra_args)
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env_remove("PYTHONPATH")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let without = run(&[]);
    assert!(
        !without.status.success(),
        "sharedconf must not be importable"
    );
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("sharedconf"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );
    let with = run(&["--pythonpath", extra.to_str().unwrap()]);
    let out = stdout(&with);
    let summary: serde_json::Value =
        serde_json::from_str(out.lines().rev().find(|l| l.starts_with('{')).unwrap()).unwrap();
    assert_eq!(summary["copied"], 1, "{summary}");
    assert!(project.join("out").join("a.css").is_file());
}
