//! Issue 14, points 1 and 2: `staticd.toml` for serve, `STATICD_*` variables and flags in
//! that order of precedence (flag > environment > file), every problem of the file or the
//! environment reported with its place, and `staticd check`.

use crate::common::project::Project;
use crate::common::staticd::Staticd;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn staticd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_staticd"));
    // A variable of the developer's shell must not decide a test.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STATICD_") {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run staticd")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A project directory with `public/app.css` and the given staticd.toml.
fn project(toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/app.css"), "body{}").unwrap();
    std::fs::write(dir.path().join("staticd.toml"), toml).unwrap();
    dir
}

const SERVE: &str = r#"
[serve]
bind = "127.0.0.1:0"
workers = 1

[static]
root = "public"          # relative to this file
url = "/assets/"
max_age = 100
no_cors = true

[log]
format = "json"
"#;

fn max_age(s: &Staticd) -> String {
    let r = s.get("/assets/app.css", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("cache-control").unwrap_or_default().to_string()
}

/// The file's values apply; a variable beats the file, a flag beats both; the project
/// defaults to the current directory, and the file's relative root is relative to it.
#[test]
fn flag_over_environment_over_file() {
    let p = project(SERVE);
    let elsewhere = tempfile::tempdir().unwrap();

    // `staticd serve` in the project: its staticd.toml, nothing else.
    let mut c = staticd();
    c.arg("serve").current_dir(p.path());
    let s = Staticd::start(c);
    assert_eq!(max_age(&s), "max-age=100");
    let r = s.get("/assets/app.css", &[]);
    assert!(
        !r.has("access-control-allow-origin"),
        "no_cors from the file"
    );
    s.wait_status("/assets/app.css", 200); // [log] format = "json"
    drop(s);

    // The environment over the file (the project given, from another directory).
    let mut c = staticd();
    c.arg("serve")
        .arg(p.path())
        .current_dir(elsewhere.path())
        .env("STATICD_MAX_AGE", "200");
    let s = Staticd::start(c);
    assert_eq!(max_age(&s), "max-age=200");
    drop(s);

    // A flag over both; and a flag that conflicts with a file value wins over it.
    let mut c = staticd();
    c.arg("serve")
        .arg(p.path())
        .args(["--max-age", "300", "--cors-origin", "https://a.example"])
        .current_dir(elsewhere.path())
        .env("STATICD_MAX_AGE", "200");
    let s = Staticd::start(c);
    assert_eq!(max_age(&s), "max-age=300");
    let r = s.get("/assets/app.css", &[]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://a.example")
    );
}

/// `--config FILE` (or `STATICD_CONFIG`) names the file; one that is missing is an error.
#[test]
fn config_flag_and_variable() {
    let p = project(SERVE);
    let other = p.path().join("other.toml");
    std::fs::write(&other, SERVE.replace("max_age = 100", "max_age = 7")).unwrap();
    let mut c = staticd();
    c.arg("serve").arg(p.path()).env("STATICD_CONFIG", &other);
    let s = Staticd::start(c);
    assert_eq!(max_age(&s), "max-age=7");
    drop(s);

    let missing = p.path().join("missing.toml");
    let mut c = staticd();
    c.args(["serve", "--config"]).arg(&missing);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!("error: {}: cannot read: ", missing.display())),
        "{e}"
    );
}

const BAD: &str = r#"[serve]
bind = "127.0.0.1:0"
workers = "four"

[static]
max_age = "a minute"
no_cors = "yes"
colour = "blue"

[statik]
root = "x"

[[upstream]]
address = "web"
"#;

/// Every bad value and unknown key is reported, each with file:line:column and its key,
/// with the bad environment variables, and nothing is served.
#[test]
fn every_problem_named_with_file_line_and_key() {
    let p = project(BAD);
    let f = p.path().join("staticd.toml");
    let f = f.display();
    for cmd in ["serve", "check"] {
        let mut c = staticd();
        c.arg(cmd)
            .arg(p.path())
            .env("STATICD_BALANCE", "random")
            .env("STATICD_BIND", "localhost");
        let o = run(c);
        assert_eq!(o.status.code(), Some(1), "{cmd}");
        assert!(
            o.stdout.is_empty(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let lines: Vec<String> = stderr(&o).lines().map(String::from).collect();
        assert_eq!(
            lines,
            [
                format!("error: {f}:3:11: serve.workers: \"four\": invalid digit found in string"),
                format!("error: {f}:6:11: static.max_age: \"a minute\": invalid digit found in string"),
                format!("error: {f}:7:11: static.no_cors: expected true or false, not a string"),
                format!("error: {f}:8:1: static.colour: unknown key; [static] has root, url, max_age, manifest_name, mem_file_max, mem_total_max, cors_origin, no_cors, no_dictionaries"),
                format!("error: {f}:10:2: statik: unknown section; the sections are [serve], [django], [static], [origin], [media], [[upstream]], [proxy], [[internal]], [log], [headers], [tls], [acme], [compress] (and collect's keys static_root, static_url, ignore, sources, storage, whitenoise, collect, publish)"),
                format!("error: {f}:14:11: upstream[1].address: \"web\": expected HOST:PORT or unix:/path.sock"),
                "error: environment variable STATICD_BIND: \"localhost\": expected HOST:PORT, :PORT, [IPv6]:PORT or unix:/path".to_string(),
                "error: environment variable STATICD_BALANCE: \"random\" is not one of round-robin, least-conn".to_string(),
            ],
            "{cmd}"
        );
    }
}

/// A syntax error is reported where it is; a flag's own error is clap's (exit 2).
#[test]
fn syntax_errors_and_flag_errors() {
    let p = project("[serve\nbind = 1\n");
    let mut c = staticd();
    c.arg("serve").arg(p.path());
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    let f = p.path().join("staticd.toml");
    assert!(
        e.starts_with(&format!("error: {}:1:7: ", f.display())),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");

    let mut c = staticd();
    c.args(["serve", "--max-age", "x"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'--max-age <SECONDS>'"),
        "{}",
        stderr(&o)
    );
}

fn check(project: &Path, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut c = staticd();
    c.arg("check").arg(project);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = run(c);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr(&o),
    )
}

/// `staticd check PROJECT` on a staticd.toml project: discovery (from the file's Django
/// facts), STATIC_ROOT and its manifest, the mounts; exit 0 and one line when all is well.
#[test]
fn check_discovery_and_static_root() {
    let p = Project::new().files(&[("app.css", b"body{}"), ("app.js", b"1")]);
    let toml = p.dir.join("staticd.toml");
    let facts = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!(
            "{facts}\n[serve]\nbind = [\"127.0.0.1:8080\", \"unix:run/staticd.sock\"]\n\
             [media]\nroot = \"media\"\n[[upstream]]\naddress = \"127.0.0.1:8000\"\n\
             [[internal]]\nurl = \"/protected/\"\nroot = \"protected\"\n\
             [log]\naccess_log = \"logs/access.log\"\n"
        ),
    )
    .unwrap();

    // Before any collect: every problem, each naming its path.
    let (code, out, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    let root = p.dir.join("static");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert!(
        lines[0].starts_with(&format!("error: STATIC_ROOT {}: ", root.display())),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "error: media root {}: ",
            p.dir.join("media").display()
        )),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "error: internal mount /protected/ {}: ",
            p.dir.join("protected").display()
        )),
        "{err}"
    );
    assert!(
        lines[3].starts_with(&format!(
            "error: directory of unix:{} {}: ",
            p.dir.join("run/staticd.sock").display(),
            p.dir.join("run").display()
        )),
        "{err}"
    );
    let access_log = p.dir.join("logs/access.log");
    assert_eq!(
        lines[4],
        format!(
            "error: access log {}: directory {}: No such file or directory (os error 2)",
            access_log.display(),
            p.dir.join("logs").display()
        )
    );

    // Collected, with the directories there: one line on stdout.
    p.run_collect(&[]);
    for d in ["media", "protected", "run", "logs"] {
        std::fs::create_dir(p.dir.join(d)).unwrap();
    }
    let (code, out, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out,
        format!(
            "staticd check: {}: OK: listen on 127.0.0.1:8080, unix:{}; STATIC_ROOT {} under /static/ (2 manifest entries); upstream 127.0.0.1:8000\n",
            toml.display(),
            p.dir.join("run/staticd.sock").display(),
            root.display()
        )
    );

    // The access log is one serve could open (it would create it), and check made none.
    assert!(!access_log.exists(), "check created the access log");
    // An existing one is opened for appending, never truncated; a directory is refused.
    std::fs::write(&access_log, "a line\n").unwrap();
    let (code, out, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(std::fs::read_to_string(&access_log).unwrap(), "a line\n");
    let logs = p.dir.join("logs");
    let (code, _, err) = check(&p.dir, &[("STATICD_ACCESS_LOG", logs.to_str().unwrap())]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "error: access log {}: Is a directory (os error 21)\n",
            logs.display()
        )
    );

    // A manifest that does not parse.
    std::fs::write(root.join("staticfiles.json"), "{").unwrap();
    let (code, _, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!(
            "error: Couldn't load manifest '{}'",
            root.join("staticfiles.json").display()
        )),
        "{err}"
    );

    // The environment is checked as serve would read it.
    let (code, _, err) = check(&p.dir, &[("STATICD_ROOT", "/nonexistent/static")]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("error: STATIC_ROOT /nonexistent/static: "),
        "{err}"
    );
}

/// collect reads the same file: a section no one knows (a typo of `[collect]`) fails it
/// too, where it is, instead of being ignored.
#[test]
fn collect_refuses_an_unknown_section() {
    let p = Project::new().files(&[("app.css", b"body{}")]);
    let toml = p.dir.join("staticd.toml");
    let facts = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{facts}[colect]\nmissing = []\n")).unwrap();
    let line = facts.lines().count() + 1;
    let o = p.collect(&[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "{}:{line}:2: colect: unknown section; ",
            toml.display()
        )),
        "{e}"
    );
}

/// The HTTPS sections: `staticd check` loads every certificate pair as serve would and
/// checks the HTTPS options hold together, naming the file or the option.
#[test]
fn check_https_sections() {
    let p = Project::new().files(&[("app.css", b"body{}")]);
    p.run_collect(&[]);
    let toml = p.dir.join("staticd.toml");
    let facts = std::fs::read_to_string(&toml).unwrap();
    let ca = crate::common::tls::TestCa::new("check CA");
    let other = ca.leaf(&["other.test"]);
    let pair = ca.leaf(&["site.test"]).write(&p.dir, "site");
    let write = |tls: &str| {
        std::fs::write(
            &toml,
            format!("{facts}\n[serve]\nhttps_bind = \"127.0.0.1:8443\"\n{tls}"),
        )
        .unwrap()
    };

    // A good pair: one line, exit 0.
    write("[tls]\ncert = \"site.crt\"\nkey = \"site.key\"\n");
    let (code, out, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("staticd check: "), "{out}");

    // The key of another certificate: refused, naming the files.
    std::fs::write(p.dir.join("other.key"), &other.key_pem).unwrap();
    write("[tls]\ncert = \"site.crt\"\nkey = \"other.key\"\n");
    let (code, out, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&pair.cert.display().to_string()), "{err}");

    // A file that is not there.
    write("[tls]\ncert = \"missing.crt\"\nkey = \"site.key\"\n");
    let (code, _, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&p.dir.join("missing.crt").display().to_string()),
        "{err}"
    );

    // Options that need others, from the file as from flags.
    write("[tls]\ncert = \"site.crt\"\nkey = \"site.key\"\nhsts_preload = true\n");
    let (code, _, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--hsts-preload needs --hsts"), "{err}");
    write("[tls]\ncert = \"site.crt\"\nkey = \"site.key\"\n[acme]\nemail = \"ops@site.test\"\n");
    let (code, _, err) = check(&p.dir, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--acme-email needs --acme-domain"), "{err}");
}
