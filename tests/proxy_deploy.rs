//! The Dockerfile and docker-compose.yml cannot be built here (no container engine): check
//! that they parse the way an engine reads them and that every repository path they name
//! exists (and is not hidden by .dockerignore).

use crate::common::repo_root;
use std::collections::BTreeMap;

fn read(name: &str) -> String {
    std::fs::read_to_string(repo_root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Dockerfile instructions with continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, rest) = cur.split_once(' ').unwrap_or((&cur, ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    assert!(cur.is_empty(), "dangling continuation");
    out
}

fn ignored(path: &str) -> bool {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains('*'))
        .any(|pat| path == pat || path.starts_with(&format!("{pat}/")))
}

#[test]
fn dockerfile_is_well_formed_and_its_sources_exist() {
    let ins = instructions(&read("Dockerfile"));
    const KNOWN: &[&str] = &[
        "FROM",
        "WORKDIR",
        "COPY",
        "RUN",
        "ENV",
        "USER",
        "EXPOSE",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "ENTRYPOINT",
        "CMD",
    ];
    let mut stages = Vec::new();
    for (op, rest) in &ins {
        assert!(KNOWN.contains(&op.as_str()), "unknown instruction {op}");
        if op == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(
                words.len() == 3 && words[1].eq_ignore_ascii_case("as"),
                "FROM image AS name: {rest}"
            );
            stages.push(words[2].to_string());
        }
        if op == "COPY" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            if let Some(from) = words.iter().find_map(|w| w.strip_prefix("--from=")) {
                assert!(
                    stages.iter().any(|s| s == from),
                    "COPY --from={from} before that stage"
                );
                continue;
            }
            for src in &words[..words.len() - 1] {
                assert!(repo_root().join(src).exists(), "COPY source {src} missing");
                assert!(!ignored(src), "COPY source {src} is in .dockerignore");
            }
        }
    }
    assert_eq!(stages, ["builder", "web", "runtime"]);
    // The runtime stage: only the binary, a non-root user, SIGTERM, a healthcheck.
    let runtime: Vec<_> = ins
        .iter()
        .skip_while(|(op, r)| !(op == "FROM" && r.ends_with("runtime")))
        .collect();
    let has = |op: &str, needle: &str| runtime.iter().any(|(o, r)| o == op && r.contains(needle));
    assert!(has("USER", "staticd"));
    assert!(has("STOPSIGNAL", "SIGTERM"));
    assert!(has("HEALTHCHECK", "CMD"));
    assert!(has("COPY", "--from=builder /src/target/release/staticd"));
    assert_eq!(
        runtime.iter().filter(|(o, _)| o == "COPY").count(),
        1,
        "runtime copies only the binary"
    );
}

/// Cargo refuses a manifest whose declared targets are missing (`[[bench]]` without its
/// file fails `cargo build --bin staticd` too), so the builder stage must copy every path
/// Cargo.toml declares, not just `src`.
#[test]
fn builder_stage_copies_every_declared_cargo_target() {
    let ins = instructions(&read("Dockerfile"));
    let copied: Vec<String> = ins
        .iter()
        .skip_while(|(op, r)| !(op == "FROM" && r.ends_with("builder")))
        .skip(1)
        .take_while(|(op, _)| op != "FROM")
        .filter(|(op, r)| op == "COPY" && !r.contains("--from="))
        .flat_map(|(_, r)| {
            let words: Vec<&str> = r.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    let default_dir = [
        ("bin", "src/bin"),
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ];
    for (kind, dir) in default_dir {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let path = match (t.get("path"), t.get("name")) {
                (Some(p), _) => p.as_str().unwrap().to_string(),
                (None, Some(n)) if kind == "bin" && n.as_str() == Some("staticd") => {
                    "src/main.rs".to_string()
                }
                (None, Some(n)) => format!("{dir}/{}.rs", n.as_str().unwrap()),
                (None, None) => panic!("[[{kind}]] without name or path"),
            };
            needed.push(path);
        }
    }
    if let Some(p) = manifest.get("lib").and_then(|l| l.get("path")) {
        needed.push(p.as_str().unwrap().to_string());
    }
    for path in &needed {
        assert!(
            repo_root().join(path).exists(),
            "Cargo.toml names {path}, which is missing"
        );
        assert!(
            copied
                .iter()
                .any(|c| path == c || path.starts_with(&format!("{c}/"))),
            "the builder stage does not COPY {path} (Cargo.toml declares it): {copied:?}"
        );
    }
}

/// A small reader for the YAML subset the compose file uses: maps by indentation, `- item`
/// lists, scalars. Returns `path → values` with paths like `services.web.build.target`.
fn yaml_paths(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t.trim().is_empty() || t.trim_start().starts_with('#') {
            continue;
        }
        assert!(!t.contains('\t'), "line {}: tab", n + 1);
        let indent = t.len() - t.trim_start().len();
        let body = t.trim_start();
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        let parent: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        let parent = parent.join(".");
        if let Some(item) = body.strip_prefix("- ") {
            out.entry(parent)
                .or_default()
                .push(item.trim().trim_matches('"').to_string());
            continue;
        }
        let (key, value) = body
            .split_once(':')
            .unwrap_or_else(|| panic!("line {}: not `key: value`: {t}", n + 1));
        let path = if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        };
        let value = value.trim();
        if value.is_empty() {
            stack.push((indent, key.to_string()));
            out.entry(path).or_default();
        } else {
            out.entry(path)
                .or_default()
                .push(value.trim_matches('"').to_string());
        }
    }
    out
}

#[test]
fn compose_reproduces_the_seed_stack() {
    let y = yaml_paths(&read("docker-compose.yml"));
    for s in ["web", "db", "staticd"] {
        assert!(y.contains_key(&format!("services.{s}")), "service {s}");
    }
    for s in ["web", "staticd"] {
        let ctx = &y[&format!("services.{s}.build.context")][0];
        assert!(repo_root().join(ctx).is_dir(), "{s}: build context {ctx}");
        let df = &y[&format!("services.{s}.build.dockerfile")][0];
        assert!(repo_root().join(ctx).join(df).is_file(), "{s}: {df}");
        let target = &y[&format!("services.{s}.build.target")][0];
        assert!(
            read(df).contains(&format!(" AS {target}")),
            "{s}: no stage {target}"
        );
    }
    let cmd = y["services.staticd.command"].join(" ");
    assert!(
        cmd.starts_with("serve ") && cmd.contains("--upstream web:8000"),
        "{cmd}"
    );
    assert_eq!(y["services.staticd.ports"], ["80:8080"]);
    assert!(y["services.staticd.volumes"].contains(&"static:/srv/public:ro".to_string()));
    assert!(y["services.web.volumes"].contains(&"static:/app/public".to_string()));
    assert!(y["services.db.image"][0].starts_with("postgres"));
    assert!(y.contains_key("services.db.environment.POSTGRES_PASSWORD"));
    assert!(y["services.db.volumes"][0].ends_with(":/var/lib/postgresql/data"));
    // Named volumes are declared; bind mounts (`./x:…`) would have to exist.
    for (k, vals) in &y {
        if k.ends_with(".volumes") && k.starts_with("services.") {
            for v in vals {
                let src = v.split(':').next().unwrap();
                if src.starts_with('.') || src.starts_with('/') {
                    assert!(repo_root().join(src).exists(), "bind mount {src}");
                } else {
                    assert!(
                        y.contains_key(&format!("volumes.{src}")),
                        "undeclared volume {src}"
                    );
                }
            }
        }
    }
    // The web service's gunicorn target and the flags staticd is given are real.
    assert!(repo_root()
        .join("sample_project/toyproject/wsgi.py")
        .is_file());
    assert!(read("Dockerfile").contains("gunicorn toyproject.wsgi --bind 0.0.0.0:8000"));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_staticd"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in y["services.staticd.command"]
        .iter()
        .filter(|a| a.starts_with("--"))
    {
        assert!(help.contains(flag.as_str()), "staticd serve has no {flag}");
    }
}
