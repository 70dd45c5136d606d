//! The work a collect skips, proven with the counters of `--format json`, not with timings.
mod common;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const STATICD: &str = env!("CARGO_BIN_EXE_staticd");

struct Project {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
}

impl Project {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("proj");
        let cache = tmp.path().join("cache");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("staticd.toml"),
            "static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\n",
        )
        .unwrap();
        let p = Project {
            _tmp: tmp,
            dir,
            cache,
        };
        let rule = |sel: &str| {
            format!("{sel} {{ margin: 0 auto; padding: 1em; color: #333; }}\n").repeat(40)
        };
        p.write("img/logo.png", b"\x89PNG logo v1");
        p.write(
            "css/a.css",
            format!("h1 {{ background: url(../img/logo.png); }}\n{}", rule("h1")).as_bytes(),
        );
        p.write(
            "css/b.css",
            format!("@import \"a.css\";\n{}", rule("p")).as_bytes(),
        );
        p.write("css/c.css", rule("div").as_bytes());
        p.write("js/app.js", "console.log('hello');\n".repeat(50).as_bytes());
        p
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let path = self.dir.join("assets").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.dir.join("static")
    }

    fn collect_into(&self, project: &Path, cache: &Path) -> Value {
        let out = Command::new(STATICD)
            .arg("collect")
            .arg(project)
            .args(["--format", "json", "--cache-dir"])
            .arg(cache)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn collect(&self) -> Value {
        self.collect_into(&self.dir, &self.cache)
    }
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn unchanged_recollect_does_nothing_and_dependants_propagate() {
    let p = Project::new();
    let first = p.collect();
    assert_eq!(n(&first, "hashed"), 5);
    assert!(n(&first, "compressions") > 0);
    let digest = common::tree_digest(&p.root());

    let again = p.collect();
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
    assert_eq!(
        common::tree_digest(&p.root()),
        digest,
        "byte-identical tree"
    );

    // A new image: the image, a.css (references it) and b.css (imports a.css) are re-hashed;
    // c.css and app.js are not touched.
    p.write("img/logo.png", b"\x89PNG logo v2");
    let changed = p.collect();
    assert_eq!(n(&changed, "hashed"), 3, "{changed}");
    assert_eq!(n(&changed, "rewritten"), 2, "{changed}");
    // Only the new contents were compressed: a.css and b.css, original and rewritten each
    // (the image is on the skip list).
    assert!(n(&changed, "compressions") <= 4, "{changed}");
    let man: Value =
        serde_json::from_slice(&fs::read(p.root().join("staticfiles.json")).unwrap()).unwrap();
    let b = fs::read_to_string(p.root().join(man["paths"]["css/b.css"].as_str().unwrap())).unwrap();
    let a_name = man["paths"]["css/a.css"].as_str().unwrap();
    assert!(
        b.contains(a_name.rsplit('/').next().unwrap()),
        "b.css imports the new a.css"
    );
}

#[test]
fn fresh_root_with_warm_cache_compresses_nothing_and_corruption_is_recomputed() {
    let p = Project::new();
    let first = p.collect();
    let compressed = n(&first, "compressions");
    assert!(compressed > 0);
    let digest = common::tree_digest(&p.root());

    // A new container: no STATIC_ROOT, no state, same cache.
    fs::remove_dir_all(p.root()).unwrap();
    let fresh = p.collect();
    assert_eq!(n(&fresh, "compressions"), 0, "{fresh}");
    assert_eq!(n(&fresh, "cache_hits"), compressed, "{fresh}");
    assert_eq!(common::tree_digest(&p.root()), digest);

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
    let repaired = p.collect();
    assert_eq!(n(&repaired, "cache_corrupt"), 1, "{repaired}");
    assert_eq!(n(&repaired, "compressions"), 1, "{repaired}");
    assert_eq!(common::tree_digest(&p.root()), digest);
}

#[test]
fn concurrent_collects_share_one_cache() {
    let p = Project::new();
    let reference = {
        let other = tempfile::tempdir().unwrap();
        p.collect_into(&p.dir, &other.path().join("c"));
        common::tree_digest(&p.root())
    };
    let copies: Vec<tempfile::TempDir> = (0..2)
        .map(|_| {
            let t = tempfile::tempdir().unwrap();
            common::copy_tree(&p.dir, &t.path().join("proj"));
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
                Command::new(STATICD)
                    .arg("collect")
                    .arg(&proj)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .output()
                    .unwrap()
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
        assert_eq!(
            common::tree_digest(&t.path().join("proj/static")),
            reference
        );
    }
}

#[test]
fn prune_deletes_only_old_generations_staticd_wrote() {
    let p = Project::new();
    let mut css = Vec::new();
    for v in 1..=3 {
        p.write(
            "css/c.css",
            format!("div {{ color: #{v}{v}{v}; }}\n")
                .repeat(60)
                .as_bytes(),
        );
        p.collect();
        let man: Value =
            serde_json::from_slice(&fs::read(p.root().join("staticfiles.json")).unwrap()).unwrap();
        css.push(man["paths"]["css/c.css"].as_str().unwrap().to_string());
    }
    let image = {
        let man: Value =
            serde_json::from_slice(&fs::read(p.root().join("staticfiles.json")).unwrap()).unwrap();
        man["paths"]["img/logo.png"].as_str().unwrap().to_string()
    };
    fs::write(p.root().join("css/foreign.0123456789ab.css"), "not ours").unwrap();
    assert!(p.root().join(format!("{}.br", css[0])).exists());

    let out = Command::new(STATICD)
        .arg("prune")
        .arg(&p.dir)
        .args(["--keep-generations", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    let again = Command::new(STATICD)
        .arg("prune")
        .arg(&p.dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("0 files"));
}
