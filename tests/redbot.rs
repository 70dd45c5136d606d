//! REDbot ("lint for HTTP", `.ci/redbot`) against `staticd serve` in front of gunicorn +
//! sample_project, serving the project's collected STATIC_ROOT: a hashed and an unhashed
//! static file, a static 404, Django pages (HTML, streamed, a 404) through the proxy. REDbot
//! sends each URL several requests of its own (conditional, ranged, gzip-negotiated, HEAD)
//! and grades what it sees; no answer may earn a BAD note, and the only WARN notes are the
//! ones README "HTTP lint (REDbot)" keeps, each for the reason written there.

use crate::common::ci_installed;
use crate::common::django::{Gunicorn, SampleProject};
use crate::common::free_port;
use crate::common::staticd::Staticd;
use std::process::Command;

/// WARN notes kept on purpose (README "HTTP lint (REDbot)"): heuristic freshness on
/// proxied pages Django sent without caching headers (the application's decision; nginx
/// adds none either).
const KEPT_WARNINGS: &[&str] = &["FRESHNESS_HEURISTIC"];

/// Kept on `/stream/` only: 40 bytes in five pieces 100 ms apart, each piece compressed
/// and flushed as it arrives (so no byte waits on the next), cost more in gzip framing
/// than they save. A streamed body of any size is compressed that way.
const KEPT_ON_STREAM: &str = "CONNEG_GZIP_BAD";

/// REDbot's notes on `url` above INFO level: `(level, note id, summary)`.
fn notes(redbot: &std::path::Path, url: &str) -> Vec<(String, String, String)> {
    let out = Command::new(redbot)
        .args(["-o", "har", url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", redbot.display()));
    assert!(
        out.status.success(),
        "redbot {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let har: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("redbot {url}: not HAR ({e})"));
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    assert!(!entries.is_empty(), "redbot {url}: no entry");
    let mut found = Vec::new();
    for e in entries {
        assert!(
            e["response"]["status"].as_i64().is_some_and(|s| s > 0),
            "redbot {url}: no response in {e}"
        );
        for n in e["_red_messages"].as_array().into_iter().flatten() {
            let level = n["level"].as_str().unwrap_or("").to_string();
            if matches!(level.as_str(), "BAD" | "WARN") {
                found.push((
                    level,
                    n["note_id"].as_str().unwrap_or("").to_string(),
                    n["summary"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    found
}

#[test]
fn redbot_finds_nothing_bad_on_static_404_and_proxied_answers() {
    let redbot = ci_installed("redbot", "to lint staticd's answers with REDbot");
    let project = SampleProject::new();
    project.collect();
    let port = free_port();
    let _gunicorn = Gunicorn::start(&project, port);
    let root = project.path().join("static");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("staticfiles.json")).unwrap()).unwrap();
    let hashed = manifest["paths"]["admin/css/base.css"]
        .as_str()
        .expect("admin/css/base.css in the manifest")
        .to_string();
    let up = format!("127.0.0.1:{port}");
    let s = Staticd::serve(&root, &["--upstream", &up]);
    let base = format!("http://{}", s.addr);
    let mut kept = Vec::new();
    for path in [
        format!("/static/{hashed}"),
        "/static/admin/css/base.css".to_string(),
        "/static/admin/css/no-such-file.css".to_string(),
        "/".to_string(),
        "/stream/".to_string(),
        "/no-such-page/".to_string(),
    ] {
        let url = format!("{base}{path}");
        for (level, id, summary) in notes(&redbot, &url) {
            let kept_here = KEPT_WARNINGS.contains(&id.as_str())
                || (path == "/stream/" && id == KEPT_ON_STREAM);
            assert!(
                level == "WARN" && kept_here,
                "REDbot on {path}: {level} {id}: {summary}"
            );
            kept.push((path.clone(), id));
        }
    }
    // The kept warnings are where README says they are, so the list above stays honest.
    assert!(
        kept.iter()
            .any(|(p, id)| p == "/" && id == "FRESHNESS_HEURISTIC"),
        "{kept:?}"
    );
}
