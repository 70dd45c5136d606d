//! The missing-reference policy, black box: `--missing ACTION:PATTERN` and `[collect] missing`
//! in staticd.toml decide what a reference to a file that is not collected does (error by
//! default, as in Django; `warn`; `ignore`), in one-shot collects, re-collects, `--format json`
//! and watch mode (`staticd dev`).

use crate::common::project::Project;
use crate::common::staticd::{Staticd, WAIT};
use crate::common::tree_digest;
use serde_json::Value;
use std::fs;
use std::process::Output;

/// A stylesheet with a good reference and a source map nobody shipped (line 2), a script with
/// the same problem, and the image.
fn project() -> Project {
    Project::new().files(&[
        (
            "css/app.css",
            b"body { background: url(../img/a.png); }\n/*# sourceMappingURL=app.css.map */\n",
        ),
        ("js/app.js", b"run();\n//# sourceMappingURL=app.js.map\n"),
        ("img/a.png", b"\x89PNG a"),
    ])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a collect that must succeed: its JSON summary and its stderr.
fn collect_ok(p: &Project, args: &[&str]) -> (Value, String) {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = p.collect(&all);
    let err = stderr(&out);
    assert!(out.status.success(), "collect {args:?} failed: {err}");
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (summary, err)
}

/// Runs a collect that must fail with status 1: its stderr.
fn collect_fails(p: &Project, args: &[&str]) -> String {
    let out = p.collect(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "collect {args:?} should fail: {err}"
    );
    err
}

/// The published hashed copy of `key`.
fn hashed_text(p: &Project, key: &str) -> String {
    fs::read_to_string(p.root().join(p.hashed(key))).unwrap()
}

fn set_rules(p: &Project, rules: &str) {
    let path = p.dir.join("staticd.toml");
    let toml = fs::read_to_string(&path).unwrap();
    let base = toml.split("[collect]").next().unwrap().to_string();
    fs::write(&path, format!("{base}[collect]\n{rules}\n")).unwrap();
}

#[test]
fn by_default_a_missing_map_fails_and_the_message_suggests_the_policy() {
    let p = project();
    let err = collect_fails(&p, &[]);
    for want in [
        "2 missing references",
        "css/app.css:2: /*# sourceMappingURL=app.css.map */ references 'css/app.css.map'",
        "js/app.js:2: //# sourceMappingURL=app.js.map references 'js/app.js.map'",
        "--missing warn:'*.map'",
        "[collect] missing = [\"warn:*.map\"] in staticd.toml",
    ] {
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
    assert!(!err.contains("manifest_strict"), "{err}");
    assert!(!p.root().exists(), "nothing published");
}

#[test]
fn warn_leaves_the_reference_hashes_and_rewrites_the_rest() {
    let p = project();
    let (summary, err) = collect_ok(&p, &["--missing", "warn:*.map"]);
    // One warning per reference, naming file:line, the reference and the rule.
    assert!(
        err.contains(
            "warning: css/app.css:2: /*# sourceMappingURL=app.css.map */ references \
             'css/app.css.map', which is not a collected static file; left unchanged \
             (--missing warn:*.map)"
        ),
        "{err}"
    );
    assert!(
        err.contains("warning: js/app.js:2: //# sourceMappingURL=app.js.map"),
        "{err}"
    );
    assert_eq!(err.matches("warning:").count(), 2, "{err}");
    // The map reference is kept verbatim; the image reference is rewritten; both are hashed.
    let img = p.hashed("img/a.png");
    let css = hashed_text(&p, "css/app.css");
    assert_eq!(
        css,
        format!("body {{ background: url(\"../{img}\"); }}\n/*# sourceMappingURL=app.css.map */\n")
    );
    assert_ne!(p.hashed("css/app.css"), "css/app.css");
    assert_eq!(
        hashed_text(&p, "js/app.js"),
        "run();\n//# sourceMappingURL=app.js.map\n"
    );
    // The JSON summary counts and lists them.
    assert_eq!(summary["missing_warned"], 2, "{summary}");
    assert_eq!(summary["missing_ignored"], 0, "{summary}");
    let w = &summary["warnings"][0];
    assert_eq!(w["path"], "css/app.css");
    assert_eq!(w["line"], 2);
    assert_eq!(w["reference"], "/*# sourceMappingURL=app.css.map */");
    assert_eq!(w["target"], "css/app.css.map");
    assert_eq!(w["action"], "warn");
    assert_eq!(w["rule"], "warn:*.map");
}

#[test]
fn ignore_is_silent_but_counted_and_the_last_matching_rule_wins() {
    let p = project();
    let (summary, err) = collect_ok(&p, &["--missing", "warn:*.map", "--missing", "ignore:js/*"]);
    assert_eq!(summary["missing_warned"], 1, "{summary}");
    assert_eq!(summary["missing_ignored"], 1, "{summary}");
    assert!(
        err.contains("css/app.css:2:") && !err.contains("js/app.js"),
        "{err}"
    );
    // A rule for other targets leaves these errors.
    let err = collect_fails(&p, &["--missing", "warn:*.png"]);
    assert!(err.contains("2 missing references"), "{err}");
}

/// Patterns see the target (the path the reference resolves to), not the referencing file.
#[test]
fn patterns_match_the_target_path_or_basename() {
    let p = Project::new().files(&[(
        "vendor/lib.js",
        b"x();\n//# sourceMappingURL=/static/maps/lib.js.map\n",
    )]);
    let err = collect_fails(&p, &["--missing", "warn:vendor/*"]);
    assert!(
        err.contains("vendor/lib.js:2:") && err.contains("'maps/lib.js.map'"),
        "{err}"
    );
    collect_ok(&p, &["--missing", "warn:maps/*"]);
    collect_ok(&p, &["--missing", "warn:lib.js.map"]);
}

#[test]
fn staticd_toml_rules_apply_and_the_command_line_wins() {
    let p = project();
    set_rules(&p, "missing = [\"warn:*.map\"]");
    let (summary, err) = collect_ok(&p, &[]);
    assert_eq!(summary["missing_warned"], 2, "{summary}");
    assert!(err.contains("left unchanged (warn:*.map in "), "{err}");
    assert!(err.contains("staticd.toml)"), "{err}");
    let before = tree_digest(&p.root());
    // A flag overrides the file: back to Django's error for one run, nothing published.
    let err = collect_fails(&p, &["--missing", "error:*"]);
    assert!(err.contains("2 missing references"), "{err}");
    assert_eq!(tree_digest(&p.root()), before);
    let (summary, err) = collect_ok(&p, &["--missing", "ignore:*.map"]);
    assert_eq!(summary["missing_ignored"], 2, "{summary}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn bad_rules_are_errors_naming_the_file_and_key() {
    let p = project();
    set_rules(&p, "missing = [\"wrn:*.map\"]");
    let err = collect_fails(&p, &[]);
    assert!(
        err.contains("staticd.toml: [collect] missing: unknown action \"wrn\""),
        "{err}"
    );
    set_rules(&p, "mising = [\"warn:*.map\"]");
    let err = collect_fails(&p, &[]);
    assert!(
        err.contains("staticd.toml") && err.contains("unknown field `mising`"),
        "{err}"
    );
    set_rules(&p, "missing = \"warn:*.map\"");
    let err = collect_fails(&p, &[]);
    assert!(
        err.contains("staticd.toml") && err.contains("missing = \"warn:*.map\""),
        "{err}"
    );
    // On the command line it is a usage error (status 2) naming the flag.
    set_rules(&p, "");
    let out = p.collect(&["--missing", "*.map"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--missing <ACTION:PATTERN>"),
        "{}",
        stderr(&out)
    );
}

/// A re-collect that skips every unchanged file still reports what it left unchanged, and
/// dropping the rule re-processes the files: the reference is an error again, not a leftover.
#[test]
fn re_collects_report_again_and_a_changed_policy_reprocesses() {
    let p = project();
    collect_ok(&p, &["--missing", "warn:*.map"]);
    let (again, err) = collect_ok(&p, &["--missing", "warn:*.map"]);
    assert_eq!(again["unmodified"], 3, "{again}");
    assert_eq!(again["hashed"], 0, "{again}");
    assert_eq!(again["missing_warned"], 2, "{again}");
    assert_eq!(err.matches("warning:").count(), 2, "{err}");
    // An edit elsewhere: the unchanged stylesheet is rescanned for its report, not rewritten.
    p.write("img/b.png", b"\x89PNG b");
    let (edit, _) = collect_ok(&p, &["--missing", "warn:*.map"]);
    assert_eq!(edit["missing_warned"], 2, "{edit}");
    assert_eq!(edit["rewritten"], 0, "{edit}");
    // The map shows up: the reference is rewritten to it.
    p.write("css/app.css.map", b"{}");
    let (fixed, _) = collect_ok(&p, &["--missing", "warn:*.map"]);
    assert_eq!(fixed["missing_warned"], 1, "{fixed}");
    let map = p.hashed("css/app.css.map");
    assert!(
        hashed_text(&p, "css/app.css").contains(&format!(
            "/*# sourceMappingURL={} */",
            map.strip_prefix("css/").unwrap()
        )),
        "rewritten to the map"
    );
    let err = collect_fails(&p, &[]);
    assert!(
        err.contains("1 missing reference:") && err.contains("js/app.js:2:"),
        "{err}"
    );
}

/// `staticd dev` (collect --watch): each warning is printed once, when it appears, and each
/// re-collect's line counts what is left unchanged.
#[test]
fn watch_mode_warns_once_and_counts() {
    let p = project();
    set_rules(&p, "missing = [\"warn:js/*\"]");
    let dev = Staticd::dev(
        &p.dir,
        &[
            "--log-format",
            "off",
            "--workers",
            "1",
            "--missing",
            "warn:css/*.map",
        ],
    );
    let mut at = 0;
    let first = dev.stderr.wait_from(&mut at, "initial collect", WAIT, |l| {
        l.contains("initial collect")
    });
    assert!(
        first.ends_with("(2 missing references left unchanged)"),
        "{first}"
    );
    let text = dev.stderr.text();
    assert!(
        text.contains("css/app.css:2:") && text.contains("(--missing warn:css/*.map)"),
        "{text}"
    );
    assert!(
        text.contains("js/app.js:2:") && text.contains("(warn:js/* in "),
        "{text}"
    );
    // An unrelated edit: no warning again, still counted.
    p.write("img/a.png", b"\x89PNG a2");
    let line = dev
        .stderr
        .wait_from(&mut at, "the re-collect of a.png", WAIT, |l| {
            l.contains("a.png changed")
        });
    assert!(
        line.ends_with("(2 missing references left unchanged)"),
        "{line}"
    );
    // A new missing map: its warning appears, the old ones are not repeated.
    p.write("css/new.css", b"p{}\n/*# sourceMappingURL=new.css.map */\n");
    let line = dev
        .stderr
        .wait_from(&mut at, "the re-collect of new.css", WAIT, |l| {
            l.contains("new.css changed")
        });
    assert!(
        line.ends_with("(3 missing references left unchanged)"),
        "{line}"
    );
    let text = dev.stderr.text();
    assert_eq!(text.matches("warning: css/app.css:2:").count(), 1, "{text}");
    assert_eq!(text.matches("warning: css/new.css:2:").count(), 1, "{text}");
}

/// Through the library, the failure is a typed error: `collect::Error::MissingReferences`,
/// each entry carrying the referencing path, the line, the reference and its target.
#[test]
fn the_library_error_is_typed() {
    use staticd::collect::missing::{Action, Policy, Rule};
    use staticd::collect::Error;
    use staticd::collect::{collect, report::Log, CollectOptions};
    let p = project();
    let d = staticd::django::discover(&staticd::django::DiscoverOptions {
        project: p.dir.clone(),
        ..Default::default()
    })
    .unwrap();
    let log = Log::new(0, true);
    let err = collect(&d, &CollectOptions::default(), &log).unwrap_err();
    let Error::MissingReferences(refs) = &err else {
        panic!("not a MissingReferences error: {err}");
    };
    assert_eq!(err.kind(), "missing_reference");
    let got: Vec<_> = refs
        .iter()
        .map(|m| {
            (
                m.path.as_str(),
                m.line,
                m.reference.as_str(),
                m.target.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "css/app.css",
                2,
                "/*# sourceMappingURL=app.css.map */",
                "css/app.css.map"
            ),
            (
                "js/app.js",
                2,
                "//# sourceMappingURL=app.js.map",
                "js/app.js.map"
            ),
        ]
    );
    // With a warn rule the same run succeeds and hands the warnings back.
    let opts = CollectOptions {
        missing: Policy::new(None, vec![Rule::new(Action::Warn, "*.map")]).unwrap(),
        ..Default::default()
    };
    let summary = collect(&d, &opts, &log).unwrap();
    assert_eq!(summary.missing_warned, 2);
    assert_eq!(summary.warnings[1].reference.path, "js/app.js");
}

/// `manifest_strict` is a request-time setting in Django, whose collectstatic fails on a
/// missing reference either way; it no longer relaxes staticd's collect (the rules do).
#[test]
fn manifest_strict_false_does_not_relax_collect() {
    let p = Project::with_storage("manifest_strict = false\n")
        .files(&[("css/app.css", b"a { background: url(nope.png); }\n")]);
    let err = collect_fails(&p, &[]);
    assert!(
        err.contains("css/app.css:1: url(nope.png) references 'css/nope.png'"),
        "{err}"
    );
    assert!(err.contains("--missing warn:'*.png'"), "{err}");
    let (summary, _) = collect_ok(&p, &["--missing", "warn:css/nope.png"]);
    assert_eq!(summary["missing_warned"], 1, "{summary}");
}
