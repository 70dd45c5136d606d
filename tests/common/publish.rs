//! What the publish tests share, whatever the store (SeaweedFS in `publish`, moto in
//! `publish_moto`): staticd runs with a clean AWS environment, their JSON summaries, projects
//! whose `[publish]` points at a store, and the keys a published generation consists of.
use super::project::{manifest_paths, Project};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// `staticd ARGS` with `env` and no AWS_* variable from the machine running the tests.
pub fn staticd_cmd(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_staticd"));
    c.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c
}

pub fn run(args: &[&str], env: &[(&str, String)]) -> Output {
    staticd_cmd(args, env).output().expect("run staticd")
}

/// A run that must succeed: its stdout as JSON.
pub fn json(args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    let out = run(args, env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "staticd {args:?} failed ({}):\n{}\n{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

pub fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// A `staticd.toml` project whose `[publish]` table is `publish_toml`, and the environment
/// of its runs: `credentials` (the AWS variables) and a cache of its own.
pub fn project(
    publish_toml: &str,
    credentials: Vec<(&'static str, String)>,
    storage: &str,
) -> (Project, Vec<(&'static str, String)>) {
    let p = Project::with_storage(storage);
    let toml = p.dir.join("staticd.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(publish_toml);
    std::fs::write(&toml, text).unwrap();
    let mut env = credentials;
    env.push(("XDG_CACHE_HOME", p.cache.display().to_string()));
    (p, env)
}

pub fn publish(p: &Project, url: &str, env: &[(&str, String)]) -> serde_json::Value {
    json(
        &["publish", url, p.dir.to_str().unwrap(), "--format", "json"],
        env,
    )
}

/// The RFC 9842 deltas collect wrote for `hashed` (paths under `root`, `HASHED.<hex>.dcb` and
/// `.dcz`), read from the directory itself.
pub fn local_deltas(root: &Path, hashed: &str) -> Vec<String> {
    let (dir, file) = hashed.rsplit_once('/').unwrap_or(("", hashed));
    let mut out: Vec<String> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .filter(|n| {
            n.strip_prefix(file)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| {
                    rest.len() == 20 && (rest.ends_with(".dcb") || rest.ends_with(".dcz"))
                })
        })
        .map(|n| {
            if dir.is_empty() {
                n
            } else {
                format!("{dir}/{n}")
            }
        })
        .collect();
    out.sort();
    out
}

/// Keys under `prefix` that a generation of `root` consists of: every file the manifest
/// names (hashed and original) and their variants, the hashed names' deltas, the variant
/// keys staticd fills for the names a CDN negotiates, plus the manifest and the record.
pub fn expected_keys(root: &Path, prefix: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut bases = BTreeSet::new();
    for (orig, hashed) in manifest_paths(root) {
        if orig != hashed {
            for d in local_deltas(root, &hashed) {
                keys.insert(format!("{prefix}/{d}"));
            }
        }
        for name in [orig, hashed] {
            if root.join(&name).is_file() {
                bases.insert(name.clone());
            }
            for suffix in ["", ".br", ".gz", ".zst"] {
                let rel = format!("{name}{suffix}");
                if root.join(&rel).is_file() {
                    keys.insert(format!("{prefix}/{rel}"));
                }
            }
        }
    }
    for suffix in [".br", ".gz", ".zst"] {
        if !keys.iter().any(|k| {
            k.ends_with(suffix) && bases.contains(&k[prefix.len() + 1..k.len() - suffix.len()])
        }) {
            continue;
        }
        for b in &bases {
            let ext = b.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            if ext.is_some_and(|e| staticd::remote::objects::NEGOTIATED.contains(&e.as_str())) {
                keys.insert(format!("{prefix}/{b}{suffix}"));
            }
        }
    }
    keys.insert(format!("{prefix}/staticfiles.json"));
    keys.insert(format!("{prefix}/.staticd-generations.json"));
    keys
}

/// Many small files, so a publish with one upload in flight is slow enough to catch.
pub fn many_files(p: &Project, tag: &str, count: usize) {
    for i in 0..count {
        p.write(
            &format!("many/{tag}-{i}.txt"),
            format!("{tag} {i}\n").as_bytes(),
        );
    }
}

pub fn spawn_publish(p: &Project, url: &str, env: &[(&str, String)]) -> Child {
    staticd_cmd(
        &["publish", url, p.dir.to_str().unwrap(), "--format", "json"],
        env,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}
