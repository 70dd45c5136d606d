//! Delta deploys (RFC 9842) proven in a real browser: Debian's headless chromium, driven by
//! playwright-core (`tests/support/browser_delta.js`, installed by `.ci/chromium`), loads a
//! page whose bundle is version 1, the project is collected again with one function of the
//! bundle changed, and a reload gets version 2 as a delta against version 1: chromium's
//! network log shows `content-encoding: dcb` or `dcz`, the page runs the new code, and the
//! bytes on the wire are a small fraction of the br variant's.
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

/// A bundle of many small functions whose `answer()` says which version it is; version 2
/// changes one other function too.
fn bundle(version: u32) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..4000 {
        if version == 2 && i == 2024 {
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
    let first = report("first", &mut at);
    assert_eq!(first["title"], "v1", "{first}");
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["contentEncoding"], "br", "{first}");
    assert!(first["useAsDictionary"].as_str().is_some(), "{first}");
    assert!(first["availableDictionary"].is_null(), "{first}");

    // Deploy version 2 and wait until the server answers with its manifest.
    p.write("js/bundle.js", &bundle(2));
    let summary = p.run_collect(&[]);
    assert!(
        summary["deltas"]["written"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    let v2 = p.hashed("js/bundle.js");
    wait_until(
        "the server to serve version 2's manifest",
        Duration::from_secs(30),
        || {
            let m = s.get("/static/staticfiles.json", &[]);
            (m.status == 200 && m.json()["paths"]["js/bundle.js"] == v2.as_str()).then_some(())
        },
    );
    let br_len = std::fs::metadata(p.root().join(format!("{v2}.br")))
        .unwrap()
        .len();

    writeln!(node.stdin.as_mut().unwrap(), "reload").unwrap();
    let second = report("second", &mut at);
    assert_eq!(
        second["title"], "v2",
        "the page runs the new code: {second}"
    );
    assert!(second["url"].as_str().unwrap().ends_with(&v2), "{second}");
    let encoding = second["contentEncoding"].as_str().unwrap_or_default();
    assert!(
        encoding == "dcb" || encoding == "dcz",
        "{second}\n{}",
        err.text()
    );
    let ae = second["acceptEncoding"].as_str().unwrap();
    assert!(ae.contains("dcb") || ae.contains("dcz"), "{second}");
    assert!(second["availableDictionary"].as_str().is_some(), "{second}");
    let wire = second["bodyBytes"].as_u64().unwrap();
    assert!(
        wire * 10 < br_len,
        "{wire} bytes on the wire, br is {br_len}: {second}"
    );
    eprintln!("browser: {encoding}, {wire} bytes on the wire against {br_len} for br");
}
