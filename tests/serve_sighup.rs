//! Issue 14, point 2: SIGHUP reloads staticd.toml without dropping a connection. A long
//! download and a slow upstream request started before the reload finish on the old
//! configuration while new requests get the new upstream, media mount, STATIC_ROOT and
//! STATIC_URL and log format; options of `[serve]` are logged as needing a restart; a
//! broken configuration is refused, with its problems, and the old one keeps serving.

use crate::common::fixture::noise;
use crate::common::http::{self, Expect};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::upstream::Gate;
use crate::common::wait_until;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// An upstream that answers its name; `/slow` only once its gate opens.
struct Upstream {
    addr: SocketAddr,
    gate: Gate,
    /// Paths requested so far.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start(name: &'static str) -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let gate = Gate::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (g, log) = (gate.clone(), seen.clone());
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let (g, log) = (g.clone(), log.clone());
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                        // The rest of the head (GETs only: no body).
                        while !line.ends_with("\r\n\r\n") {
                            if matches!(r.read_line(&mut line), Ok(0) | Err(_)) {
                                return;
                            }
                        }
                        log.lock().unwrap().push(path.clone());
                        let body = if path == "/slow" {
                            g.wait();
                            format!("slow from {name}")
                        } else {
                            name.to_string()
                        };
                        let _ = write!(
                            w,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                    }
                });
            }
        });
        Upstream { addr, gate, seen }
    }

    fn wait_seen(&self, path: &str) {
        wait_until(&format!("{path} to reach the upstream"), WAIT, || {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .any(|p| p == path)
                .then_some(())
        });
    }
}

fn write_config(path: &Path, root: &Path, url: &str, media: &Path, up: SocketAddr, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[serve]\nbind = \"127.0.0.1:0\"\nworkers = 2\n\n[static]\nroot = {root:?}\nurl = {url:?}\n\n\
             [media]\nroot = {media:?}\n\n[[upstream]]\naddress = \"{up}\"\n\n{extra}\n"
        ),
    )
    .unwrap();
}

fn serve(config: &Path) -> Staticd {
    let mut c = Command::new(env!("CARGO_BIN_EXE_staticd"));
    c.args(["serve", "--config"]).arg(config);
    Staticd::start(c)
}

fn text(s: &Staticd, path: &str) -> String {
    let r = s.get(path, &[]);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.text()
}

fn dir_with(file: &str, content: &[u8]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(file), content).unwrap();
    d
}

#[test]
fn reload_applies_new_settings_and_keeps_every_connection() {
    let big = noise(16 << 20, 14);
    let root1 = dir_with("big.bin", &big);
    std::fs::write(root1.path().join("app.css"), "one{}").unwrap();
    let root2 = dir_with("other.css", b"two{}");
    let (media1, media2) = (
        dir_with("a.txt", b"media one"),
        dir_with("a.txt", b"media two"),
    );
    let (a, b) = (Upstream::start("A"), Upstream::start("B"));
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("staticd.toml");
    write_config(
        &cfg,
        root1.path(),
        "/static/",
        media1.path(),
        a.addr,
        "[log]\nformat = \"json\"",
    );
    let s = serve(&cfg);
    assert_eq!(text(&s, "/page"), "A");
    assert_eq!(text(&s, "/media/a.txt"), "media one");
    assert_eq!(text(&s, "/static/app.css"), "one{}");

    // A download the client reads slowly, and an upstream request that waits.
    let mut download = s.conn();
    download.send(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let mut first = [0u8; 4096];
    let n = download.stream.read(&mut first).unwrap();
    assert!(n > 0);
    let addr = s.addr;
    let slow = std::thread::spawn(move || http::get(addr, "/slow", &[]));
    a.wait_seen("/slow");

    // Everything changes: upstream, media, root and prefix, log format, and a listener
    // option that needs a restart.
    write_config(
        &cfg,
        root2.path(),
        "/assets/",
        media2.path(),
        b.addr,
        "[log]\nformat = \"combined\"",
    );
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, cfg_text.replace("workers = 2", "workers = 3")).unwrap();
    s.signal(libc::SIGHUP);
    let mut from = 0;
    let restart = s
        .stderr
        .wait_from(&mut from, "the restart notice", WAIT, |l| {
            l.contains("reload: [serve] workers changed: needs a restart; kept as it is")
        });
    assert!(restart.contains("WARN"), "{restart}");
    let done = s.stderr.wait_from(&mut from, "the reload", WAIT, |l| {
        l.contains(&format!("configuration reloaded from {}: ", cfg.display()))
    });
    for key in [
        "[static] root",
        "[static] url",
        "[media] root",
        "[[upstream]] address",
        "[log] format",
    ] {
        assert!(done.contains(key), "{key} not applied: {done}");
    }
    assert!(!done.contains("workers"), "{done}");
    // The table of the new root is built by the reloader, on its own thread: its line may
    // come before the reload's.
    s.stderr.wait("the new table", |l| {
        l.contains(&format!("reloaded {}", root2.path().display()))
    });

    assert_eq!(text(&s, "/page"), "B");
    assert_eq!(text(&s, "/media/a.txt"), "media two");
    assert_eq!(text(&s, "/assets/other.css"), "two{}");
    assert_eq!(
        text(&s, "/static/app.css"),
        "B",
        "the old prefix goes upstream now"
    );
    s.stdout.wait("a combined access line", |l| {
        l.starts_with("127.0.0.1 - - [") && l.contains("\"GET /assets/other.css HTTP/1.1\" 200 5")
    });

    // The requests begun before the reload end as they began.
    a.gate.open();
    let r = slow.join().unwrap();
    assert_eq!((r.status, r.text()), (200, "slow from A".to_string()));
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&download.rest());
    let (r, used) = http::parse(&all, Expect::default(), true)
        .unwrap()
        .expect("the whole download");
    assert_eq!(used, all.len());
    assert_eq!(r.status, 200);
    assert!(
        r.body == big,
        "the download changed or was cut ({} bytes)",
        r.body.len()
    );
}

#[test]
fn a_broken_configuration_is_refused_and_the_old_one_serves() {
    let root = dir_with("app.css", b"x{}");
    let media = dir_with("a.txt", b"m");
    let (a, b) = (Upstream::start("A"), Upstream::start("B"));
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("staticd.toml");
    write_config(&cfg, root.path(), "/static/", media.path(), a.addr, "");
    let s = serve(&cfg);
    assert_eq!(text(&s, "/page"), "A");

    // Every problem in one line, the file and place of each.
    write_config(
        &cfg,
        root.path(),
        "/static/",
        media.path(),
        b.addr,
        "[proxy]\nread_timeout = \"soon\"\nretries = 3",
    );
    s.signal(libc::SIGHUP);
    let mut from = 0;
    let refused = s.stderr.wait_from(&mut from, "the refusal", WAIT, |l| {
        l.contains("reload refused, the running configuration stays: ")
    });
    let f = cfg.display();
    assert!(
        refused.contains(&format!(
            "{f}:16:16: proxy.read_timeout: \"soon\" is not a duration (e.g. 5s, 500ms)"
        )),
        "{refused}"
    );
    assert!(
        refused.contains(&format!(
            "{f}:17:1: proxy.retries: unknown key; [proxy] has "
        )),
        "{refused}"
    );
    assert_eq!(text(&s, "/page"), "A", "the old upstream serves on");

    // A configuration that parses but cannot be used is refused too.
    write_config(&cfg, root.path(), "/static/", media.path(), b.addr, "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    let bad = good.replace(
        "url = \"/static/\"",
        "url = \"/static/\"\ncors_origin = \"a\\u0001b\"",
    );
    assert_ne!(bad, good);
    std::fs::write(&cfg, bad).unwrap();
    s.signal(libc::SIGHUP);
    let refused = s
        .stderr
        .wait_from(&mut from, "the second refusal", WAIT, |l| {
            l.contains("reload refused, the running configuration stays: ")
        });
    assert!(refused.contains("is not a valid header value"), "{refused}");
    assert_eq!(text(&s, "/page"), "A");

    // Fixed: the next SIGHUP applies it.
    write_config(&cfg, root.path(), "/static/", media.path(), b.addr, "");
    s.signal(libc::SIGHUP);
    s.stderr.wait_from(&mut from, "the reload", WAIT, |l| {
        l.contains("configuration reloaded from") && l.contains("[[upstream]] address applied")
    });
    assert_eq!(text(&s, "/page"), "B");
}

/// The active health check follows a reload: the new upstreams are probed, and the old
/// proxy's loop stops (at most the probe it had begun when it was retired still lands).
#[test]
fn health_checks_follow_the_reloaded_upstreams() {
    let root = dir_with("app.css", b"x{}");
    let media = dir_with("a.txt", b"m");
    let (a, b) = (Upstream::start("A"), Upstream::start("B"));
    let probes = |u: &Upstream| {
        u.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == "/health")
            .count()
    };
    let health = "[proxy]\nhealth_check = \"/health\"\nhealth_interval = \"50ms\"";
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("staticd.toml");
    write_config(&cfg, root.path(), "/static/", media.path(), a.addr, health);
    let s = serve(&cfg);
    a.wait_seen("/health");

    write_config(&cfg, root.path(), "/static/", media.path(), b.addr, health);
    s.signal(libc::SIGHUP);
    s.stderr.wait("the reload", |l| {
        l.contains("configuration reloaded from") && l.contains("[[upstream]] address applied")
    });
    let a_then = probes(&a);
    wait_until("three probes of the new upstream", WAIT, || {
        (probes(&b) >= 3).then_some(())
    });
    assert!(
        probes(&a) <= a_then + 1,
        "the old proxy kept probing: {} then {}",
        a_then,
        probes(&a)
    );
    assert_eq!(text(&s, "/page"), "B");
}

/// `[headers]` and `[log] access_log` are applied by a reload: the next answer carries the
/// new header rules and its access line goes to the new file.
#[test]
fn header_rules_and_access_log_follow_a_reload() {
    let root = dir_with("app.css", b"x{}");
    let media = dir_with("a.txt", b"m");
    let a = Upstream::start("A");
    let logs = tempfile::tempdir().unwrap();
    let (one, two) = (logs.path().join("one.log"), logs.path().join("two.log"));
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("staticd.toml");
    let extra = |value: &str, log: &Path| {
        format!("[headers]\nset = [\"static:X-Rule: {value}\"]\n\n[log]\naccess_log = {log:?}")
    };
    write_config(
        &cfg,
        root.path(),
        "/static/",
        media.path(),
        a.addr,
        &extra("one", &one),
    );
    let s = serve(&cfg);
    let r = s.get("/static/app.css", &[]);
    assert_eq!((r.status, r.header("x-rule")), (200, Some("one")));
    let logged = |file: &Path| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .contains("/static/app.css")
    };
    wait_until("the access line in one.log", WAIT, || {
        logged(&one).then_some(())
    });

    write_config(
        &cfg,
        root.path(),
        "/static/",
        media.path(),
        a.addr,
        &extra("two", &two),
    );
    s.signal(libc::SIGHUP);
    let mut from = 0;
    let line = s.stderr.wait_from(&mut from, "the reload", WAIT, |l| {
        l.contains("configuration reloaded from")
    });
    assert!(line.contains("[headers] set"), "{line}");
    assert!(line.contains("[log] access_log"), "{line}");
    let r = s.get("/static/app.css", &[]);
    assert_eq!((r.status, r.header("x-rule")), (200, Some("two")));
    wait_until("the access line in two.log", WAIT, || {
        logged(&two).then_some(())
    });
}
