//! Delta deploys (RFC 9842) proven in a real browser: Debian's headless chromium, driven by
//! playwright-core (`tests/support/browser_delta.js`, installed by `.ci/chromium`), loads a
//! page whose bundle is version 1, the project is collected again with one more function of
//! the bundle changed, and a reload gets the new version as a delta against the one the
//! browser holds: chromium's network log shows `content-encoding: dcb` or `dcz`, the page
//! runs the new code, and the bytes on the wire are a small fraction of the br variant's.
//! Three deploys: both codings (the server picks the smaller), then dcb alone, then dcz
//! alone (`collect --delta-codings`), so each is seen decoded by chromium.
//!
//! Same origin over http://127.0.0.1 (a secure context for Chromium, like localhost).

use crate::common::ci_installed;
use crate::common::project::Project;
use crate::common::repo_root;
use crate::common::staticd::{Lines, Staticd};
use crate::common::{wait_until, ChildGuard};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAGE: &str = r#"<!doctype html>
<title>loading</title>
<script>
  // The page learns the bundle's current name from the manifest, as a Django template's
  // {% static %} would; no-store so a reload sees a new deploy at once.
  fetch("/static/staticfiles.json", { cache: "no-store" })
    .then((r) => r.json())
    .then((m) => {
      const s = document.createElement("script");
      s.src = "/static/" + m.paths["js/bundle.js"];
      s.onload = () => { document.title = answer(); };
      document.head.append(s);
    });
</script>
"#;

/// A bundle of many small functions whose `answer()` says which version it is; each later
/// version changes one more function too.
fn bundle(version: u32) -> Vec<u8> {
    let changed = [2024, 100, 3000];
    let mut s = String::new();
    for i in 0..4000 {
        if changed[..version.saturating_sub(1) as usize].contains(&i) {
            s.push_str(&format!(
                "function f{i}(a, b) {{ return (a - {i}) / (b || 1); }}\n"
            ));
        } else {
            s.push_str(&format!("function f{i}(a, b) {{ return a * {i} + b; }}\n"));
        }
    }
    s.push_str(&format!("function answer() {{ return \"v{version}\"; }}\n"));
    s.into_bytes()
}

/// The deploys after version 1: the version, collect's extra arguments, and the coding the
/// reload must get. With both codings the server sends the smaller delta (dcb, as a rule);
/// each coding alone proves that chromium decodes it.
const DEPLOYS: [(u32, &[&str], &[&str]); 3] = [
    (2, &[], &["dcb", "dcz"]),
    (3, &["--delta-codings", "dcb"], &["dcb"]),
    (4, &["--delta-codings", "dcz"], &["dcz"]),
];

#[test]
fn chromium_reloads_a_changed_bundle_as_a_delta() {
    let playwright = ci_installed("chromium", "to drive chromium for the delta-deploy test");
    let p = Project::new().files(&[("page.html", PAGE.as_bytes()), ("js/bundle.js", &bundle(1))]);
    p.run_collect(&[]);
    let s = Staticd::serve(&p.root(), &[]);
    let mut node = ChildGuard::new(
        Command::new("node")
            .arg(repo_root().join("tests/support/browser_delta.js"))
            .arg(s.url("/static/page.html"))
            .env("PLAYWRIGHT_CORE", &playwright)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node"),
    );
    let out = Lines::drain(node.stdout.take().unwrap(), "browser");
    let err = Lines::drain(node.stderr.take().unwrap(), "browser stderr");
    let report = |phase: &str, from: &mut usize| -> serde_json::Value {
        let line = out.wait_from(from, phase, Duration::from_secs(120), |l| {
            l.contains(&format!("\"phase\":\"{phase}\""))
        });
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}\n{}", err.text()))
    };
    let mut at = 0;
    let first = report("v1", &mut at);
    assert_eq!(first["title"], "v1", "{first}");
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["contentEncoding"], "br", "{first}");
    assert!(first["useAsDictionary"].as_str().is_some(), "{first}");
    assert!(first["availableDictionary"].is_null(), "{first}");

    let mut seen = Vec::new();
    for (version, args, codings) in DEPLOYS {
        // Deploy this version and wait until the server answers with its manifest.
        p.write("js/bundle.js", &bundle(version));
        let summary = p.run_collect(args);
        assert!(
            summary["deltas"]["written"].as_u64().unwrap() >= 1,
            "v{version}: {summary}"
        );
        let name = p.hashed("js/bundle.js");
        wait_until(
            &format!("the server to serve version {version}'s manifest"),
            Duration::from_secs(30),
            || {
                let m = s.get("/static/staticfiles.json", &[]);
                (m.status == 200 && m.json()["paths"]["js/bundle.js"] == name.as_str())
                    .then_some(())
            },
        );
        let br_len = std::fs::metadata(p.root().join(format!("{name}.br")))
            .unwrap()
            .len();

        writeln!(node.stdin.as_mut().unwrap(), "reload {version}").unwrap();
        let phase = format!("v{version}");
        let r = report(&phase, &mut at);
        assert_eq!(r["title"], phase, "the page runs the new code: {r}");
        assert!(r["url"].as_str().unwrap().ends_with(&name), "{r}");
        let encoding = r["contentEncoding"].as_str().unwrap_or_default();
        assert!(
            codings.contains(&encoding),
            "v{version}: {encoding:?}, not one of {codings:?}: {r}\n{}",
            err.text()
        );
        let ae = r["acceptEncoding"].as_str().unwrap();
        assert!(ae.contains("dcb") && ae.contains("dcz"), "{r}");
        assert!(r["availableDictionary"].as_str().is_some(), "{r}");
        let wire = r["bodyBytes"].as_u64().unwrap();
        assert!(
            wire * 10 < br_len,
            "{wire} bytes on the wire, br is {br_len}: {r}"
        );
        eprintln!(
            "browser v{version}: {encoding}, {wire} bytes on the wire against {br_len} for br"
        );
        seen.push(encoding.to_string());
    }
    assert!(
        seen.iter().any(|e| e == "dcb") && seen.iter().any(|e| e == "dcz"),
        "both codings decoded by chromium: {seen:?}"
    );
}
