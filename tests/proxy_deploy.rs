//! The Dockerfile and docker-compose.yml cannot be built here (no container engine): check
//! that they parse the way an engine reads them and that every repository path they name
//! exists (and is not hidden by .dockerignore); that every service restarts and waits for
//! healthy dependencies; that the web command collects (its cache on a volume), prunes and
//! starts gunicorn with flags that exist, and that Django's settings and staticd agree on
//! the static and media volumes and URLs. What can run without an engine runs: the web
//! command's staticd steps and the web healthcheck, against sample_project and gunicorn.

use crate::common::{help_flags, repo_root};
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
    let known = help_flags("serve");
    for flag in y["services.staticd.command"]
        .iter()
        .filter(|a| a.starts_with("--"))
    {
        assert!(known.contains(flag), "staticd serve has no {flag}");
    }
}

/// Each service's build stage, as `instructions` of the Dockerfile between its FROM and the
/// next.
fn stage(name: &str) -> Vec<(String, String)> {
    instructions(&read("Dockerfile"))
        .into_iter()
        .skip_while(|(op, r)| !(op == "FROM" && r.ends_with(&format!(" AS {name}"))))
        .skip(1)
        .take_while(|(op, _)| op != "FROM")
        .collect()
}

/// The web stage's command: `sh -c SCRIPT`, the script's `&&` steps as words (the script
/// uses no quotes, so whitespace is the shell's own splitting).
fn web_steps() -> Vec<Vec<String>> {
    let web = stage("web");
    let cmd = web
        .iter()
        .rev()
        .find(|(op, _)| op == "CMD")
        .expect("the web stage has a CMD");
    let argv: Vec<String> = serde_json::from_str(&cmd.1).expect("CMD in exec form");
    assert_eq!(argv[..2], ["sh", "-c"]);
    assert!(!argv[2].contains(['"', '\'', ';', '|']), "{}", argv[2]);
    argv[2]
        .split("&&")
        .map(|step| step.split_whitespace().map(String::from).collect())
        .collect()
}

/// `services.NAME.volumes` as (volume, mount point) pairs, options (`:ro`) dropped.
fn mounts(y: &BTreeMap<String, Vec<String>>, service: &str) -> Vec<(String, String)> {
    y.get(&format!("services.{service}.volumes"))
        .into_iter()
        .flatten()
        .map(|v| {
            let mut parts = v.split(':');
            (
                parts.next().unwrap().to_string(),
                parts.next().expect("volume:path").to_string(),
            )
        })
        .collect()
}

/// `path` as (named volume, path inside it) through `service`'s mounts.
fn in_volume(
    y: &BTreeMap<String, Vec<String>>,
    service: &str,
    path: &str,
) -> (String, std::path::PathBuf) {
    let p = std::path::Path::new(path);
    mounts(y, service)
        .into_iter()
        .find_map(|(vol, at)| {
            p.strip_prefix(&at)
                .ok()
                .map(|rest| (vol.clone(), rest.to_path_buf()))
        })
        .unwrap_or_else(|| panic!("{service}: {path} is on no volume"))
}

/// Every service restarts unless stopped; every dependency has a condition, and one on a
/// service's health names a service that has a healthcheck (its own in the compose file,
/// or its image's HEALTHCHECK); staticd waits for a healthy web, web for a healthy db.
#[test]
fn compose_restarts_and_waits_for_healthy_services() {
    let y = yaml_paths(&read("docker-compose.yml"));
    let services: Vec<String> = y
        .keys()
        .filter_map(|k| k.strip_prefix("services."))
        .filter(|k| !k.contains('.'))
        .map(String::from)
        .collect();
    assert_eq!(services, ["db", "staticd", "web"]);
    let healthchecked = |s: &str| {
        y.contains_key(&format!("services.{s}.healthcheck.test"))
            || y.get(&format!("services.{s}.build.target"))
                .is_some_and(|t| stage(&t[0]).iter().any(|(op, _)| op == "HEALTHCHECK"))
    };
    let mut waits = Vec::new();
    for s in &services {
        assert_eq!(
            y.get(&format!("services.{s}.restart")).map(Vec::as_slice),
            Some(&["unless-stopped".to_string()][..]),
            "{s}: restart policy"
        );
        if let Some(list) = y.get(&format!("services.{s}.depends_on")) {
            assert!(
                list.is_empty(),
                "{s}: depends_on as a list has no condition"
            );
        }
        let prefix = format!("services.{s}.depends_on.");
        for (k, v) in y.range(prefix.clone()..) {
            let Some(rest) = k.strip_prefix(&prefix) else {
                break;
            };
            let Some(dep) = rest.strip_suffix(".condition") else {
                assert!(!rest.contains('.'), "{k}");
                assert!(
                    y.contains_key(&format!("{prefix}{rest}.condition")),
                    "{s}: depends on {rest} without a condition"
                );
                continue;
            };
            assert!(services.iter().any(|x| x == dep), "{s}: unknown {dep}");
            let cond = v[0].as_str();
            assert!(
                [
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully"
                ]
                .contains(&cond),
                "{s} → {dep}: {cond}"
            );
            if cond == "service_healthy" {
                assert!(
                    healthchecked(dep),
                    "{s} waits for {dep}, which has no healthcheck"
                );
            }
            waits.push((s.clone(), dep.to_string(), cond.to_string()));
        }
    }
    waits.sort();
    let healthy = |a: &str, b: &str| (a.to_string(), b.to_string(), "service_healthy".to_string());
    assert_eq!(waits, [healthy("staticd", "web"), healthy("web", "db")]);

    // staticd's healthcheck is its image's: it must ask the port staticd listens on and
    // the health path it answers.
    assert!(!y.contains_key("services.staticd.healthcheck"));
    let cmd = &y["services.staticd.command"];
    assert!(!cmd.iter().any(|a| a == "--health-path"), "{cmd:?}");
    let bind = cmd[cmd.iter().position(|a| a == "--bind").unwrap() + 1].clone();
    let port = bind.rsplit(':').next().unwrap();
    let check = stage("runtime")
        .into_iter()
        .find(|(op, _)| op == "HEALTHCHECK")
        .unwrap()
        .1;
    assert!(
        check.contains(&format!("/dev/tcp/127.0.0.1/{port} "))
            && check.contains("/.staticd/health "),
        "{check}"
    );
}

/// The web command collects with the compression cache on a volume of its own, then
/// prunes the same project, then starts gunicorn; every flag exists, and the image makes
/// each volume's mount point the app user's (an empty named volume takes its ownership).
#[test]
fn web_command_collects_with_its_cache_then_prunes() {
    let steps = web_steps();
    let at = |prefix: &[&str]| {
        steps
            .iter()
            .position(|s| s.len() >= prefix.len() && s[..prefix.len()] == *prefix)
            .unwrap_or_else(|| panic!("no step {prefix:?} in {steps:?}"))
    };
    let (collect, prune) = (at(&["staticd", "collect"]), at(&["staticd", "prune"]));
    let gunicorn = at(&["exec", "gunicorn"]);
    assert!(collect < prune && prune < gunicorn, "{steps:?}");
    for i in [collect, prune] {
        let sub = &steps[i][1];
        let known = help_flags(sub);
        for flag in steps[i].iter().filter(|w| w.starts_with("--")) {
            assert!(known.contains(flag), "staticd {sub} has no {flag}");
        }
    }
    // The same project (the word after the subcommand) and interpreter.
    assert_eq!(steps[collect][2], steps[prune][2]);
    let opt = |step: &[String], flag: &str| {
        step.iter()
            .position(|w| w == flag)
            .map(|i| step[i + 1].clone())
    };
    assert_eq!(
        opt(&steps[collect], "--python"),
        opt(&steps[prune], "--python")
    );
    assert!(opt(&steps[prune], "--keep-generations").is_some());

    let y = yaml_paths(&read("docker-compose.yml"));
    let cache = opt(&steps[collect], "--cache-dir").expect("collect --cache-dir");
    let (vol, inside) = in_volume(&y, "web", &cache);
    assert!(y.contains_key(&format!("volumes.{vol}")), "{vol}");
    assert_eq!(inside, std::path::Path::new(""), "the volume is the cache");
    assert!(
        !mounts(&y, "staticd").iter().any(|(v, _)| *v == vol),
        "staticd needs no cache"
    );
    // The app user owns every mount point of the web service.
    let web = stage("web");
    let run = web
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, r)| r.as_str())
        .find(|r| r.contains("chown app"))
        .expect("a RUN that chowns to app");
    let chowned: Vec<&str> = run
        .split("chown app")
        .nth(1)
        .unwrap()
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    for (_, at) in mounts(&y, "web") {
        assert!(chowned.contains(&at.as_str()), "{at} not chowned: {run}");
    }
}

/// STATIC_ROOT and MEDIA_ROOT as sample_project's settings compute them from the web
/// service's environment lie on the volumes staticd serves from, at the same places, and
/// under the URLs staticd serves them at.
#[test]
fn django_and_staticd_agree_on_static_and_media() {
    let y = yaml_paths(&read("docker-compose.yml"));
    let env_prefix = "services.web.environment.";
    let env: Vec<(String, String)> = y
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(env_prefix)
                .map(|name| (name.to_string(), v[0].clone()))
        })
        .collect();
    let code = "import json; from django.conf import settings; \
                print(json.dumps({k: str(getattr(settings, k)) for k in \
                ['STATIC_ROOT', 'STATIC_URL', 'MEDIA_ROOT', 'MEDIA_URL']}))";
    let out = std::process::Command::new(crate::common::venv_python())
        .args(["-c", code])
        .current_dir(crate::common::sample_project())
        .env("DJANGO_SETTINGS_MODULE", "toyproject.settings")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    let cmd = &y["services.staticd.command"];
    let opt = |flag: &str| cmd[cmd.iter().position(|a| a == flag).unwrap() + 1].clone();
    for (root, url, flag_root, flag_url) in [
        ("STATIC_ROOT", "STATIC_URL", "--root", "--static-url"),
        ("MEDIA_ROOT", "MEDIA_URL", "--media-root", "--media-url"),
    ] {
        assert_eq!(
            in_volume(&y, "web", &s[root]),
            in_volume(&y, "staticd", &opt(flag_root)),
            "{root} {} and staticd's {flag_root}",
            s[root]
        );
        // Django prefixes a relative URL with SCRIPT_NAME, `/` here.
        let django_url = if s[url].starts_with('/') {
            s[url].clone()
        } else {
            format!("/{}", s[url])
        };
        assert_eq!(django_url, opt(flag_url), "{url} and staticd's {flag_url}");
    }
    // The settings read both variables (not only their defaults).
    let web_env = |k: &str| y[&format!("{env_prefix}{k}")][0].clone();
    assert_eq!(s["MEDIA_ROOT"], web_env("DJANGO_MEDIA_ROOT"));
    assert_eq!(s["MEDIA_URL"], web_env("DJANGO_MEDIA_URL"));
    // staticd only reads the volumes.
    for (vol, _) in mounts(&y, "staticd") {
        assert!(
            y["services.staticd.volumes"].contains(&format!(
                "{vol}:{}:ro",
                mounts(&y, "staticd")
                    .iter()
                    .find(|(v, _)| *v == vol)
                    .unwrap()
                    .1
            )),
            "{vol} is writable for staticd"
        );
    }
}

/// The web service's steps run for real on a copy of sample_project, with the image's
/// paths mapped to temporary ones: collect fills the cache, prune runs, and the compose
/// healthcheck (run as Docker would, its port mapped to gunicorn's) is healthy against
/// gunicorn and unhealthy once gunicorn is gone.
#[test]
fn web_steps_and_healthcheck_run_on_sample_project() {
    use crate::common::django::{django_env, Gunicorn, SampleProject};
    use crate::common::{free_port, venv_python};
    let project = SampleProject::new();
    let cache = tempfile::tempdir().unwrap();
    let py = venv_python();
    for step in web_steps().into_iter().filter(|s| s[0] == "staticd") {
        let args: Vec<String> = step[1..]
            .iter()
            .map(|w| match w.as_str() {
                "/app" => project.path().display().to_string(),
                "python" => py.display().to_string(),
                "/var/cache/staticd" => cache.path().display().to_string(),
                w => w.to_string(),
            })
            .collect();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_staticd"))
            .args(&args)
            .envs(django_env())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "staticd {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_some(),
        "collect left its cache empty"
    );
    assert!(project.path().join("static/staticfiles.json").is_file());

    let y = yaml_paths(&read("docker-compose.yml"));
    let test: Vec<String> = serde_json::from_str(&y["services.web.healthcheck.test"][0]).unwrap();
    assert_eq!(test[..3], ["CMD", "python", "-c"]);
    let port = free_port();
    let code = test[3].replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    assert_ne!(code, test[3], "the check asks gunicorn's port");
    let healthy = || {
        std::process::Command::new(&py)
            .args(["-c", &code])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let mut g = Gunicorn::start(&project, port);
    assert!(healthy(), "unhealthy against gunicorn");
    g.kill();
    assert!(!healthy(), "healthy with gunicorn gone");
}
