//! Watch mode keeps the tree each publish swaps out as the next stage and tells its server
//! right after the swap. Neither may change what is published or what `--format json` counts:
//! a run of edits is collected twice, once the watch way and once the plain way, and the
//! trees and counters must agree at every step.

use crate::common::project::Project;
use crate::common::tree_digest;
use staticd::collect::{collect, CollectOptions, OnPublish};
use staticd::django::{discover, DiscoverOptions};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn project() -> Project {
    Project::new().files(&[
        ("img/logo.png", b"\x89PNG v1"),
        ("css/app.css", b"h1 { background: url(../img/logo.png); }\n"),
    ])
}

/// The counters of a run, without its timing and root.
fn counters(s: &staticd::collect::report::Summary) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("duration_ms");
    o.remove("static_root");
    v
}

#[test]
fn reused_stage_publishes_what_a_fresh_one_does() {
    let (watch, plain) = (project(), project());
    let (watch_dir, plain_dir) = (&watch.dir, &plain.dir);
    let disc = |dir: &Path| {
        discover(&DiscoverOptions {
            project: dir.to_path_buf(),
            ..Default::default()
        })
        .unwrap()
    };
    let (dw, dp) = (disc(watch_dir), disc(plain_dir));
    let published = Arc::new(AtomicUsize::new(0));
    let count = published.clone();
    let watch_opts = CollectOptions {
        compress: false,
        reuse_stage: true,
        on_publish: Some(OnPublish(Arc::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        }))),
        ..Default::default()
    };
    let plain_opts = CollectOptions {
        compress: false,
        ..Default::default()
    };
    let log = staticd::collect::report::Log::new(0, true);
    let edits: [&dyn Fn(&Path); 5] = [
        &|_| {},
        &|d| fs::write(d.join("assets/img/logo.png"), b"\x89PNG v2").unwrap(),
        &|d| fs::write(d.join("assets/css/new.css"), "p { color: red; }\n").unwrap(),
        // Between two runs another tool drops a file into STATIC_ROOT: it is carried.
        &|d| fs::write(d.join("static/extra.txt"), "x").unwrap(),
        &|d| fs::remove_file(d.join("assets/css/new.css")).unwrap(),
    ];
    let mut want_published = 0;
    for (i, edit) in edits.iter().enumerate() {
        edit(watch_dir);
        edit(plain_dir);
        let w = collect(&dw, &watch_opts, &log).unwrap();
        let p = collect(&dp, &plain_opts, &log).unwrap();
        assert_eq!(counters(&w), counters(&p), "edit {i}");
        assert_eq!(
            tree_digest(&dw.static_root),
            tree_digest(&dp.static_root),
            "edit {i}"
        );
        // Every edit but the foreign file publishes a generation.
        if i != 3 {
            want_published += 1;
        }
        assert_eq!(published.load(Ordering::SeqCst), want_published, "edit {i}");
    }
    let stage = staticd::collect::publish::beside(&dw.static_root, "stage");
    assert!(stage.is_dir(), "watch keeps the swapped-out tree");
    let plain_stage = staticd::collect::publish::beside(&dp.static_root, "stage");
    assert!(!plain_stage.exists(), "a plain collect leaves no stage");
}
