//! The work a collect skips, proven with the counters of `--format json`, not with timings.

use crate::common::project::{collect_output, run_collect, Project};
use crate::common::{copy_tree, tree_digest};
use serde_json::Value;
use std::fs;

/// An image, three stylesheets (a.css references the image, b.css imports a.css) and a
/// script: enough for a change to propagate along references and leave the rest alone.
fn project() -> Project {
    let rule =
        |sel: &str| format!("{sel} {{ margin: 0 auto; padding: 1em; color: #333; }}\n").repeat(40);
    let a = format!("h1 {{ background: url(../img/logo.png); }}\n{}", rule("h1"));
    let b = format!("@import \"a.css\";\n{}", rule("p"));
    Project::new().files(&[
        ("img/logo.png", b"\x89PNG logo v1"),
        ("css/a.css", a.as_bytes()),
        ("css/b.css", b.as_bytes()),
        ("css/c.css", rule("div").as_bytes()),
        ("js/app.js", "console.log('hello');\n".repeat(50).as_bytes()),
    ])
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn unchanged_recollect_does_nothing_and_dependants_propagate() {
    let p = project();
    let first = p.run_collect(&[]);
    assert_eq!(n(&first, "hashed"), 5);
    assert!(n(&first, "compressions") > 0);
    let digest = tree_digest(&p.root());

    let again = p.run_collect(&[]);
    assert_eq!(n(&again, "unmodified"), 5, "{again}");
    for k in [
        "hashed",
        "rewritten",
        "compressions",
        "copied",
        "bytes_in",
        "bytes_out",
    ] {
        assert_eq!(n(&again, k), 0, "{k}: {again}");
    }
    assert_eq!(tree_digest(&p.root()), digest, "byte-identical tree");

    // A new image: the image, a.css (references it) and b.css (imports a.css) are re-hashed;
    // c.css and app.js are not touched.
    p.write("img/logo.png", b"\x89PNG logo v2");
    let changed = p.run_collect(&[]);
    assert_eq!(n(&changed, "hashed"), 3, "{changed}");
    assert_eq!(n(&changed, "rewritten"), 2, "{changed}");
    // Only the new contents were compressed: a.css and b.css, original and rewritten each
    // (the image is on the skip list).
    assert!(n(&changed, "compressions") <= 4, "{changed}");
    let b = fs::read_to_string(p.root().join(p.hashed("css/b.css"))).unwrap();
    let a_name = p.hashed("css/a.css");
    assert!(
        b.contains(a_name.rsplit('/').next().unwrap()),
        "b.css imports the new a.css"
    );
}

#[test]
fn fresh_root_with_warm_cache_compresses_nothing_and_corruption_is_recomputed() {
    let p = project();
    let first = p.run_collect(&[]);
    let compressed = n(&first, "compressions");
    assert!(compressed > 0);
    let digest = tree_digest(&p.root());

    // A new container: no STATIC_ROOT, no state, same cache.
    fs::remove_dir_all(p.root()).unwrap();
    let fresh = p.run_collect(&[]);
    assert_eq!(n(&fresh, "compressions"), 0, "{fresh}");
    assert_eq!(n(&fresh, "cache_hits"), compressed, "{fresh}");
    assert_eq!(tree_digest(&p.root()), digest);

    // Damage one entry: it is detected, recomputed, and the output is still right.
    let entry = walkdir::WalkDir::new(&p.cache)
        .into_iter()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().is_file())
        .unwrap();
    let mut bytes = fs::read(entry.path()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(entry.path(), bytes).unwrap();
    fs::remove_dir_all(p.root()).unwrap();
    let repaired = p.run_collect(&[]);
    assert_eq!(n(&repaired, "cache_corrupt"), 1, "{repaired}");
    assert_eq!(n(&repaired, "compressions"), 1, "{repaired}");
    assert_eq!(tree_digest(&p.root()), digest);
}

#[test]
fn concurrent_collects_share_one_cache() {
    let p = project();
    let reference = {
        let other = tempfile::tempdir().unwrap();
        let cache = other.path().join("c");
        run_collect(&p.dir, &["--cache-dir", cache.to_str().unwrap()]);
        tree_digest(&p.root())
    };
    let copies: Vec<tempfile::TempDir> = (0..2)
        .map(|_| {
            let t = tempfile::tempdir().unwrap();
            copy_tree(&p.dir, &t.path().join("proj"));
            let _ = fs::remove_dir_all(t.path().join("proj/static"));
            t
        })
        .collect();
    let cache = p.cache.clone();
    let handles: Vec<_> = copies
        .iter()
        .map(|t| {
            let proj = t.path().join("proj");
            let cache = cache.clone();
            std::thread::spawn(move || {
                collect_output(&proj, &["--cache-dir", cache.to_str().unwrap()], &[])
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for t in &copies {
        assert_eq!(tree_digest(&t.path().join("proj/static")), reference);
    }
}

#[test]
fn prune_deletes_only_old_generations_staticd_wrote() {
    let p = project();
    let mut css = Vec::new();
    for v in 1..=3 {
        p.write(
            "css/c.css",
            format!("div {{ color: #{v}{v}{v}; }}\n")
                .repeat(60)
                .as_bytes(),
        );
        p.run_collect(&[]);
        css.push(p.hashed("css/c.css"));
    }
    let image = p.hashed("img/logo.png");
    fs::write(p.root().join("css/foreign.0123456789ab.css"), "not ours").unwrap();
    assert!(p.root().join(format!("{}.br", css[0])).exists());

    p.prune(&["--keep-generations", "2"]);
    assert!(!p.root().join(&css[0]).exists(), "generation 1 pruned");
    assert!(
        !p.root().join(format!("{}.br", css[0])).exists(),
        "with its variants"
    );
    assert!(!p.root().join(format!("{}.gz", css[0])).exists());
    for kept in [&css[1], &css[2], &image] {
        assert!(p.root().join(kept).exists(), "{kept} kept");
    }
    assert!(
        p.root().join("css/c.css").exists(),
        "originals are never pruned"
    );
    assert!(
        p.root().join("css/foreign.0123456789ab.css").exists(),
        "not staticd's file"
    );
    // Nothing left to prune.
    assert!(p.prune(&[]).starts_with("0 files"));
}

/// An unchanged stylesheet is not re-read, but what its references point at is checked again:
/// deleting the image it references fails the next collect exactly as a fresh collect would
/// (it used to succeed, leaving `url(../img/logo.png)` unrewritten and dangling), and a
/// directory it references stays resolved only while it holds a collected file.
#[test]
fn deleted_targets_of_unchanged_files_are_missing() {
    let p = project();
    p.write("css/d.css", b"a { background: url(../img); }\n");
    p.run_collect(&[]);
    let before = tree_digest(&p.root());
    fs::remove_file(p.dir.join("assets/img/logo.png")).unwrap();
    let out = p.collect(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for e in [
        "css/a.css:1:",
        "url(../img/logo.png)",
        "css/d.css:1:",
        "url(../img)",
    ] {
        assert!(stderr.contains(e), "expected {e:?} in {stderr}");
    }
    assert_eq!(tree_digest(&p.root()), before, "nothing published");
    // Another file in img/ makes the directory reference good again.
    p.write("img/other.png", b"\x89PNG other");
    p.write("css/a.css", b"h1 { color: red; }\n");
    let fixed = p.run_collect(&[]);
    assert_eq!(
        n(&fixed, "rewritten"),
        2,
        "a.css changed, b.css imports it: {fixed}"
    );
    let d = fs::read_to_string(p.root().join(p.hashed("css/d.css"))).unwrap();
    assert_eq!(d, "a { background: url(\"../img\"); }\n");
}

/// `-v 3` says where a collect's time goes, one `timing: PHASE: MS ms (WHAT)` line per phase:
/// a full collect reads, hashes, compresses, stages and publishes; a collect with nothing to
/// do only stats the sources and compares them with the record.
#[test]
fn verbosity_3_times_each_phase() {
    let p = project();
    let phases = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["-v", "3"];
        all.extend_from_slice(args);
        let out = p.collect(&all);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let re = fancy_regex::Regex::new(r"^timing: ([a-z ]+): \d+\.\d ms \((.+)\)$").unwrap();
        stdout
            .lines()
            .filter(|l| l.starts_with("timing: "))
            .map(|l| {
                let c = re
                    .captures(l)
                    .unwrap()
                    .unwrap_or_else(|| panic!("malformed: {l}"));
                (c[1].to_string(), c[2].to_string())
            })
            .collect()
    };
    let names = |v: &[(String, String)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    let first = phases(&[]);
    assert_eq!(
        names(&first),
        [
            "discovery",
            "walk sources",
            "stat sources",
            "bundler manifests",
            "previous state",
            "compare",
            "read",
            "hash and rewrite",
            "compress",
            "stage",
            "publish",
            "record",
            "total"
        ],
        "{first:?}"
    );
    assert_eq!(first[0].1, "staticd.toml");
    let idle = phases(&[]);
    assert_eq!(
        names(&idle),
        [
            "discovery",
            "walk sources",
            "stat sources",
            "bundler manifests",
            "previous state",
            "compare",
            "publish",
            "total"
        ],
        "{idle:?}"
    );
    assert_eq!(idle[2].1, "5 files");
    assert_eq!(
        idle[3].1,
        "0 files keep their bundler names; 0 manifests read"
    );
    assert!(idle[5].1.starts_with("nothing changed"), "{idle:?}");
    assert!(idle[6].1.starts_with("skipped"), "{idle:?}");
}
