//! Issue 14, points 4–6 and the root files of 8: what an operator runs staticd with. The
//! health path (answered by staticd on every protocol, never forwarded; readiness follows
//! the table and the upstreams), Prometheus metrics scraped and parsed by Python's
//! `prometheus_client` parsers (counters move by exactly the requests made), the access log
//! reopened under load with no line lost, header rules per route kind on HTTP/1 and h2c,
//! X-Real-IP at the upstream, and root files (served through the static tier, traversal
//! and hidden names refused).

use crate::common::fixture::{br, StaticRoot};
use crate::common::http::{self, Expect};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::{ci_installed, free_port, wait_until, write_file};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        let all: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
        all.first().copied()
    }
}

/// A keep-alive upstream that records every request head before answering it:
/// - `/up` (the active health check): 200 while `healthy`, else 503;
/// - `/csp`: 200 with its own `Content-Security-Policy`;
/// - anything else: 200, `Server: recorder`, `X-Powered-By: test`, body `upstream TARGET`.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    healthy: Arc<AtomicBool>,
}

impl Recorder {
    fn start() -> Recorder {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn on(l: TcpListener) -> Recorder {
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let healthy = Arc::new(AtomicBool::new(true));
        let (s2, h2) = (seen.clone(), healthy.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().map_while(Result::ok) {
                let (seen, healthy) = (s2.clone(), h2.clone());
                std::thread::spawn(move || answer_upstream(conn, &seen, &healthy));
            }
        });
        Recorder {
            addr,
            seen,
            healthy,
        }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }
}

fn answer_upstream(mut s: TcpStream, seen: &Mutex<Vec<Seen>>, healthy: &AtomicBool) {
    let mut buf = Vec::new();
    loop {
        let (len, target, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut slots);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let headers = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (n, req.path.unwrap_or("").to_string(), headers);
            }
            let mut chunk = [0u8; 8192];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        buf.drain(..len);
        seen.lock().unwrap().push(Seen {
            target: target.clone(),
            headers,
        });
        let answer = match target.as_str() {
            "/up" if healthy.load(Ordering::SeqCst) => {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string()
            }
            "/up" => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_string(),
            "/csp" => "HTTP/1.1 200 OK\r\nContent-Security-Policy: img-src *\r\nContent-Length: 3\r\n\r\ncsp"
                .to_string(),
            t => {
                let body = format!("upstream {t}");
                format!(
                    "HTTP/1.1 200 OK\r\nServer: recorder\r\nX-Powered-By: test\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
        };
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

const HEALTH: &str = "/.staticd/health";

/// Runs `staticd ARGS`, which must refuse to start; its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_staticd"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
const READY: &str = "/.staticd/health/ready";

fn h2c() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

#[test]
fn health_is_answered_by_staticd_and_never_forwarded() {
    let up = Recorder::start();
    let s = Staticd::proxy(&["--upstream", &up.addr()]);
    let r = s.get(HEALTH, &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = s.get(READY, &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ready\n"),
        "{}",
        r.text()
    );
    let r = s.request("HEAD", READY, &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("6"));
    let r = s.request("POST", HEALTH, &[], b"x");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    // A query does not change the answer; a path below it is not the health path.
    assert_eq!(s.get(&format!("{HEALTH}?full=1"), &[]).status, 200);
    // Over h2c alike.
    let c = h2c();
    let r = c.get(s.url(READY)).send().unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(
        (r.status().as_u16(), r.text().unwrap()),
        (200, "ready\n".into())
    );
    let r = c.get(s.url(HEALTH)).send().unwrap();
    assert_eq!(r.status(), 200);
    // Everything else still goes upstream; the health requests never did.
    assert_eq!(s.get("/marker", &[]).text(), "upstream /marker");
    assert_eq!(
        s.get(&format!("{HEALTH}/other"), &[]).text(),
        format!("upstream {HEALTH}/other")
    );
    let targets = up.targets();
    assert_eq!(targets, ["/marker".to_string(), format!("{HEALTH}/other")]);
    // Logged as staticd's own answers.
    let line = s.wait_access("the readiness request", |v| v["uri"] == READY);
    assert_eq!(line["route"], "internal");
}

#[test]
fn a_configured_health_path() {
    let up = Recorder::start();
    let s = Staticd::proxy(&["--upstream", &up.addr(), "--health-path", "/healthz"]);
    assert_eq!(s.get("/healthz", &[]).text(), "ok\n");
    assert_eq!(s.get("/healthz/ready", &[]).text(), "ready\n");
    // The default one is the upstream's now.
    assert_eq!(s.get(HEALTH, &[]).text(), format!("upstream {HEALTH}"));
    assert_eq!(up.targets(), [HEALTH]);
    let err = refused(&["serve", "--root", ".", "--health-path", "/"]);
    assert!(
        err.contains("--health-path") && err.contains("not /"),
        "{err}"
    );
}

#[test]
fn readiness_waits_for_a_connectable_upstream() {
    let port = free_port();
    let s = Staticd::proxy(&["--upstream", &format!("127.0.0.1:{port}")]);
    // Alive, not ready: the only upstream refuses connections.
    assert_eq!(s.get(HEALTH, &[]).status, 200);
    let r = s.get(READY, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains(&format!("upstream 127.0.0.1:{port}")),
        "{}",
        r.text()
    );
    let up = Recorder::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    wait_until("readiness once the upstream listens", WAIT, || {
        (s.get(READY, &[]).status == 200).then_some(())
    });
    assert!(up.targets().is_empty(), "{:?}", up.targets());
}

#[test]
fn readiness_follows_the_active_health_check() {
    let up = Recorder::start();
    up.healthy.store(false, Ordering::SeqCst);
    let s = Staticd::proxy(&[
        "--upstream",
        &up.addr(),
        "--health-check",
        "/up",
        "--health-interval",
        "100ms",
    ]);
    // Not ready until a check passed: first none has run, then they fail.
    wait_until("a failed health check", WAIT, || {
        up.targets().iter().any(|t| t == "/up").then_some(())
    });
    let r = s.get(READY, &[]);
    assert_eq!(r.status, 503);
    assert!(
        r.text().contains("health check failed") || r.text().contains("marked down"),
        "{}",
        r.text()
    );
    up.healthy.store(true, Ordering::SeqCst);
    wait_until("readiness after a passing health check", WAIT, || {
        (s.get(READY, &[]).status == 200).then_some(())
    });
    // Only the checks reached the upstream.
    assert!(
        up.targets().iter().all(|t| t == "/up"),
        "{:?}",
        up.targets()
    );
}

#[test]
fn readiness_waits_for_the_asset_table() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("static");
    let s = Staticd::serve(&root, &[]);
    let r = s.get(READY, &[]);
    assert_eq!(r.status, 503);
    assert!(r.text().contains("no asset table"), "{}", r.text());
    assert_eq!(s.get(HEALTH, &[]).status, 200);
    write_file(&root, "a.txt", b"a");
    wait_until("readiness once STATIC_ROOT exists", WAIT, || {
        (s.get(READY, &[]).status == 200).then_some(())
    });
}

/// One sample of a scrape: name, labels, value.
type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

/// The python of a small venv with `prometheus_client` (`.ci/promparse`).
fn promparse() -> std::path::PathBuf {
    static PY: OnceLock<std::path::PathBuf> = OnceLock::new();
    PY.get_or_init(|| ci_installed("promparse", "to parse the metrics exposition"))
        .clone()
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families as text
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
parse = om if sys.argv[1] == "openmetrics" else text
print(json.dumps([[s.name, s.labels, s.value] for f in parse(sys.stdin.read()) for s in f.samples]))
"#;

/// Scrapes `/metrics` and parses it with Python's parser for the format asked for.
fn scrape(metrics: SocketAddr, openmetrics: bool) -> Samples {
    let accept = if openmetrics {
        "application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"
    } else {
        "text/plain"
    };
    let r = http::get(metrics, "/metrics", &[("Accept", accept)]);
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").unwrap().to_string();
    assert_eq!(
        ct.starts_with("application/openmetrics-text"),
        openmetrics,
        "{ct}"
    );
    let mut child = Command::new(promparse())
        .args([
            "-c",
            PARSE,
            if openmetrics { "openmetrics" } else { "text" },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.text()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels` (exactly one must match).
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{name} {labels:?}: {} samples match in {samples:?}",
        hits.len()
    );
    hits[0]
}

fn metrics_addr(s: &Staticd) -> SocketAddr {
    let line = s.stderr.wait("the metrics address", |l| {
        l.starts_with("staticd serve: metrics on http://")
    });
    line["staticd serve: metrics on http://".len()..]
        .trim_end_matches("/metrics")
        .parse()
        .unwrap()
}

#[test]
fn metrics_count_exactly_the_requests_made() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let css = crate::common::fixture::text(4000, "metrics");
    fx.write_with_variants("app.css", &css);
    let media = tempfile::tempdir().unwrap();
    write_file(media.path(), "photo.txt", b"not really a photo");
    let up = Recorder::start();
    let dead = format!("127.0.0.1:{}", free_port());
    let s = Staticd::serve(
        &fx.root,
        &[
            "--metrics-bind",
            "127.0.0.1:0",
            // The dead one first: the first proxied request fails on it, then goes on.
            "--upstream",
            &dead,
            "--upstream",
            &up.addr(),
            "--fail-timeout",
            "1h",
            "--media-root",
            media.path().to_str().unwrap(),
        ],
    );
    let m = metrics_addr(&s);
    let loaded = s.stderr.wait("the table's size", |l| l.contains(" URLs ("));
    let before = scrape(m, true);

    // Bytes received per content-coding, to compare with the counter.
    let mut bytes: BTreeMap<String, f64> = BTreeMap::new();
    let mut got = |r: http::Response| {
        let coding = r
            .header("content-encoding")
            .unwrap_or("identity")
            .to_string();
        *bytes.entry(coding).or_default() += r.body.len() as f64;
        r.status
    };
    for _ in 0..3 {
        assert_eq!(got(s.get("/static/a.txt", &[])), 200);
    }
    assert_eq!(got(s.get("/static/missing.txt", &[])), 404);
    assert_eq!(
        got(s.get("/static/app.css", &[("Accept-Encoding", "br")])),
        200
    );
    for i in 0..4 {
        assert_eq!(got(s.get(&format!("/app/{i}"), &[])), 200);
    }
    assert_eq!(got(s.get("/media/photo.txt", &[])), 200);
    assert_eq!(got(s.get(HEALTH, &[])), 200);
    let bad = http::raw(s.addr, b"GET / HTTP/1.1\r\n\r\n", Expect::default());
    assert_eq!(got(bad), 400);
    assert!(bytes.contains_key("br"), "{bytes:?}");
    // HTTP/2 answers are counted alike.
    let r = h2c().get(s.url("/static/a.txt")).send().unwrap();
    assert_eq!(r.status(), 200);
    *bytes.entry("identity".into()).or_default() += r.bytes().unwrap().len() as f64;

    let after = scrape(m, false);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let requests = "staticd_http_requests_total";
    let expected = [
        ("static", "2xx", 5.0),
        ("static", "4xx", 1.0),
        ("proxy", "2xx", 4.0),
        ("media", "2xx", 1.0),
        ("internal", "2xx", 1.0),
        ("internal", "4xx", 1.0),
        ("proxy", "5xx", 0.0),
        ("static", "3xx", 0.0),
    ];
    for (route, class, n) in expected {
        let labels = [("route", route), ("status_class", class)];
        assert_eq!(delta(requests, &labels), n, "{route} {class}");
    }
    for (route, n) in [
        ("static", 6.0),
        ("proxy", 4.0),
        ("media", 1.0),
        ("internal", 2.0),
    ] {
        let name = "staticd_http_request_duration_seconds_count";
        assert_eq!(delta(name, &[("route", route)]), n, "{route}");
        let inf = [("route", route), ("le", "+Inf")];
        assert_eq!(
            delta("staticd_http_request_duration_seconds_bucket", &inf),
            n
        );
    }
    for coding in ["identity", "br", "gzip", "zstd", "other"] {
        let sent = bytes.get(coding).copied().unwrap_or(0.0);
        let name = "staticd_http_response_bytes_total";
        assert_eq!(delta(name, &[("coding", coding)]), sent, "{coding}");
    }
    assert_eq!(
        delta("staticd_upstream_header_duration_seconds_count", &[]),
        4.0
    );
    let failures = "staticd_upstream_failures_total";
    assert_eq!(value(&after, failures, &[("upstream", &dead)]), 1.0);
    assert_eq!(value(&after, failures, &[("upstream", &up.addr())]), 0.0);
    assert_eq!(
        value(&after, "staticd_upstream_up", &[("upstream", &dead)]),
        0.0
    );
    assert_eq!(
        value(&after, "staticd_upstream_up", &[("upstream", &up.addr())]),
        1.0
    );
    let static_table = [("table", "static")];
    assert_eq!(
        value(&after, "staticd_table_generation", &static_table),
        1.0
    );
    let urls: f64 = loaded
        .split(": ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{loaded}"));
    assert_eq!(value(&after, "staticd_table_assets", &static_table), urls);
    // Every file of this root is small enough to be held in memory.
    let on_disk: u64 = std::fs::read_dir(&fx.root)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(
        value(&after, "staticd_memory_cache_bytes", &static_table),
        on_disk as f64
    );

    // One connection held open is counted until it closes.
    let mut c = s.conn();
    c.send(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(Expect::default()).status, 200);
    wait_until("one open connection", WAIT, || {
        (value(&scrape(m, true), "staticd_open_connections", &[]) == 1.0).then_some(())
    });
    drop(c);
    wait_until("no open connection", WAIT, || {
        (value(&scrape(m, false), "staticd_open_connections", &[]) == 0.0).then_some(())
    });

    // A new file in the root is a new generation.
    fx.write("new.txt", b"new");
    let reloaded = wait_until("the reload counted", WAIT, || {
        let now = scrape(m, true);
        (value(&now, "staticd_table_generation", &static_table) == 2.0).then_some(now)
    });
    let ok = [("table", "static"), ("result", "ok")];
    assert_eq!(value(&reloaded, "staticd_table_reloads_total", &ok), 1.0);
    assert_eq!(
        value(&reloaded, "staticd_table_assets", &static_table),
        urls + 1.0
    );
    assert_eq!(s.get("/static/new.txt", &[]).text(), "new");
}

/// Clients on a Unix socket (`--bind unix:PATH`, a front proxy on the same host): the
/// health path is staticd's own 200 there too, never forwarded, and their requests and
/// connections are counted in the metrics like any other listener's.
#[test]
fn health_and_metrics_over_a_unix_listener() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"a");
    let up = Recorder::start();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("staticd.sock");
    let bind = format!("unix:{}", sock.display());
    let s = Staticd::serve(
        &fx.root,
        &[
            "--bind",
            &bind,
            "--upstream",
            &up.addr(),
            "--metrics-bind",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(s.listening(1), [bind]);
    let m = metrics_addr(&s);
    let before = scrape(m, false);

    let r = http::unix_get(&sock, HEALTH, &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = http::unix_get(&sock, READY, &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ready\n"),
        "{}",
        r.text()
    );
    let r = http::unix_request(&sock, "HEAD", HEALTH, &[]);
    assert_eq!((r.status, r.body.len()), (200, 0));
    // The same socket serves files and proxies; only the proxied request went upstream.
    assert_eq!(http::unix_get(&sock, "/static/a.txt", &[]).text(), "a");
    let r = http::unix_get(&sock, "/marker", &[]);
    assert_eq!(r.text(), "upstream /marker");
    assert_eq!(up.targets(), ["/marker"]);
    let line = s.wait_access("the readiness request", |v| v["uri"] == READY);
    assert_eq!(
        (line["route"].as_str(), line["remote"].as_str()),
        (Some("internal"), Some("unix:"))
    );

    let after = scrape(m, false);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    for (route, class, n) in [
        ("internal", "2xx", 3.0),
        ("static", "2xx", 1.0),
        ("proxy", "2xx", 1.0),
        ("internal", "4xx", 0.0),
    ] {
        let labels = [("route", route), ("status_class", class)];
        assert_eq!(
            delta("staticd_http_requests_total", &labels),
            n,
            "{route} {class}"
        );
    }

    // A connection held open on the socket is counted until it closes.
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    c.write_all(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    wait_until("one open connection", WAIT, || {
        (value(&scrape(m, false), "staticd_open_connections", &[]) == 1.0).then_some(())
    });
    drop(c);
    wait_until("no open connection", WAIT, || {
        (value(&scrape(m, false), "staticd_open_connections", &[]) == 0.0).then_some(())
    });
}

#[test]
fn metrics_listener_answers_health_and_nothing_else() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"a");
    let s = Staticd::serve(&fx.root, &["--metrics-bind", "127.0.0.1:0"]);
    let m = metrics_addr(&s);
    assert_eq!(http::get(m, READY, &[]).text(), "ready\n");
    assert_eq!(http::get(m, "/static/a.txt", &[]).status, 404);
    let r = http::request(m, "HEAD", "/metrics", &[], b"");
    assert_eq!((r.status, r.body.len()), (200, 0));
    // Without --metrics-bind there is no such listener, and /metrics is nobody's.
    let plain = Staticd::serve(&fx.root, &[]);
    assert_eq!(plain.get("/metrics", &[]).status, 404);
    assert!(!plain.stderr.text().contains("metrics on"));
}

#[test]
fn access_log_reopened_under_load_loses_no_line() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let logs = tempfile::tempdir().unwrap();
    let path = logs.path().join("access.log");
    let rotated = logs.path().join("access.log.1");
    let s = Staticd::serve(
        &fx.root,
        &[
            "--access-log",
            path.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    );
    assert!(s.stdout.snapshot().is_empty());
    let lines = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    };

    // A client loop, bounded in count, that runs until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, sent, addr) = (stop.clone(), sent.clone(), s.addr);
        std::thread::spawn(move || -> Result<(), String> {
            let mut c = http::Conn::try_open(addr).map_err(|e| e.to_string())?;
            for n in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                c.send(format!("GET /static/a.txt?n={n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                let r = c
                    .try_response(Expect::default())
                    .map_err(|e| format!("request {n}: {e}"))?;
                if r.status != 200 {
                    return Err(format!("request {n}: status {}", r.status));
                }
                sent.store(n + 1, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    wait_until("lines in the first file", WAIT, || {
        (lines(&path).len() >= 50).then_some(())
    });
    std::fs::rename(&path, &rotated).unwrap();
    s.signal(libc::SIGUSR1);
    s.stderr
        .wait("the reopen", |l| l.contains("reopened the access log"));
    wait_until("lines in the new file", WAIT, || {
        (lines(&path).len() >= 50).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    client.join().unwrap().unwrap();
    let total = sent.load(Ordering::SeqCst);

    // Each line was written before its response: all are in by now.
    let (old, new) = (lines(&rotated), lines(&path));
    assert!(!old.is_empty() && !new.is_empty());
    let mut seen = vec![0u32; total];
    for line in old.iter().chain(&new) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let uri = v["uri"].as_str().unwrap();
        let n: usize = uri
            .strip_prefix("/static/a.txt?n=")
            .unwrap()
            .parse()
            .unwrap();
        seen[n] += 1;
        assert_eq!(
            (v["status"].as_u64(), v["route"].as_str()),
            (Some(200), Some("static"))
        );
    }
    let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c != 1).collect();
    assert!(
        wrong.is_empty(),
        "{total} requests; not logged exactly once: {wrong:?}"
    );
    // The old file ends where the new one starts.
    let last_old: usize = serde_json::from_str::<serde_json::Value>(old.last().unwrap()).unwrap()
        ["uri"]
        .as_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(old.len(), last_old + 1);
}

#[test]
fn access_log_errors_and_json_fields() {
    let err = refused(&[
        "serve",
        "--root",
        ".",
        "--access-log",
        "/nonexistent-dir/access.log",
    ]);
    assert!(err.contains("/nonexistent-dir/access.log"), "{err}");

    let up = Recorder::start();
    let s = Staticd::proxy(&[
        "--upstream",
        &up.addr(),
        "--log-level",
        "warn",
        "--error-log-format",
        "json",
    ]);
    assert_eq!(s.get("/page", &[]).status, 200);
    let v = s.wait_status("/page", 200);
    assert_eq!(v["route"], "proxy");
    assert_eq!(v["upstream_addr"], up.addr());
    let t = v["upstream_time"].as_f64().unwrap();
    assert!(t >= 0.0 && t <= v["request_time"].as_f64().unwrap(), "{v}");
    for field in [
        "remote",
        "method",
        "uri",
        "protocol",
        "status",
        "bytes",
        "request_time",
    ] {
        assert!(!v[field].is_null(), "{field} missing: {v}");
    }
    // The same over h2c (the upstream rides in the response's extensions there).
    let r = h2c().get(s.url("/page2")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v = s.wait_status("/page2", 200);
    assert_eq!(
        (v["route"].as_str(), v["protocol"].as_str()),
        (Some("proxy"), Some("HTTP/2.0"))
    );
    assert_eq!(v["upstream_addr"], up.addr());
    assert!(v["upstream_time"].as_f64().is_some(), "{v}");
    s.get("/static/app.css", &[]);
    let v = s.wait_status("/static/app.css", 200);
    assert_eq!(v["route"], "static");
    assert!(v.get("upstream_addr").is_none(), "{v}");
    // Diagnostics at warn, as JSON: the info lines of the start are gone.
    let dead = format!("127.0.0.1:{}", free_port());
    let s2 = Staticd::proxy(&[
        "--upstream",
        &dead,
        "--log-level",
        "warn",
        "--error-log-format",
        "json",
    ]);
    assert_eq!(s2.get("/x", &[]).status, 502);
    let line = s2
        .stderr
        .wait("a JSON warning", |l| l.contains("cannot connect"));
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN");
    assert!(
        !s2.stderr.text().contains("proxying everything outside"),
        "{}",
        s2.stderr.text()
    );
}

/// The headers of one answer over HTTP/1 and over h2c, lowercased.
fn both(s: &Staticd, path: &str) -> [(u16, BTreeMap<String, String>); 2] {
    let r = s.get(path, &[]);
    let h1: BTreeMap<String, String> = r
        .headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("date") && !k.eq_ignore_ascii_case("connection"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let r2 = h2c().get(s.url(path)).send().unwrap();
    let h2: BTreeMap<String, String> = r2
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    [(r.status, h1), (r2.status().as_u16(), h2)]
}

#[test]
fn header_rules_apply_per_route_kind_on_http1_and_h2c() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let media = tempfile::tempdir().unwrap();
    write_file(media.path(), "photo.txt", b"photo");
    let up = Recorder::start();
    let s = Staticd::serve(
        &fx.root,
        &[
            "--upstream",
            &up.addr(),
            "--media-root",
            media.path().to_str().unwrap(),
            "--header",
            "all:Strict-Transport-Security: max-age=600",
            "--header",
            "static:Content-Security-Policy: default-src 'none'",
            "--header",
            "proxy:?Content-Security-Policy: default-src 'self'",
            "--remove-header",
            "proxy:X-Powered-By",
            "--remove-header",
            "media:X-Content-Type-Options",
        ],
    );
    let get = |h: &BTreeMap<String, String>, n: &str| h.get(n).cloned();
    for (status, h) in both(&s, "/static/a.txt") {
        assert_eq!(status, 200);
        assert_eq!(
            get(&h, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            get(&h, "content-security-policy").as_deref(),
            Some("default-src 'none'")
        );
        assert_eq!(
            get(&h, "strict-transport-security").as_deref(),
            Some("max-age=600")
        );
    }
    // Error answers too (nginx's `always`).
    for (status, h) in both(&s, "/static/missing.txt") {
        assert_eq!(status, 404);
        assert_eq!(
            get(&h, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            get(&h, "strict-transport-security").as_deref(),
            Some("max-age=600")
        );
    }
    for (status, h) in both(&s, "/media/photo.txt") {
        assert_eq!(status, 200);
        assert_eq!(get(&h, "x-content-type-options"), None);
        assert_eq!(get(&h, "content-security-policy"), None);
        assert_eq!(
            get(&h, "strict-transport-security").as_deref(),
            Some("max-age=600")
        );
    }
    for (status, h) in both(&s, "/page") {
        assert_eq!(status, 200);
        assert_eq!(get(&h, "x-powered-by"), None, "{h:?}");
        assert_eq!(get(&h, "content-type").as_deref(), Some("text/plain"));
        assert_eq!(
            get(&h, "content-security-policy").as_deref(),
            Some("default-src 'self'")
        );
        assert_eq!(get(&h, "x-content-type-options"), None);
        assert_eq!(
            get(&h, "strict-transport-security").as_deref(),
            Some("max-age=600")
        );
    }
    // `?Name`: the upstream's own value stays.
    for (_, h) in both(&s, "/csp") {
        assert_eq!(
            get(&h, "content-security-policy").as_deref(),
            Some("img-src *")
        );
    }
    for (status, h) in both(&s, HEALTH) {
        assert_eq!(status, 200);
        assert_eq!(
            get(&h, "strict-transport-security").as_deref(),
            Some("max-age=600")
        );
        assert_eq!(get(&h, "content-security-policy"), None);
    }
    // A bad rule is refused at the start, naming it.
    let err = refused(&["serve", "--root", ".", "--header", "statics:X-A: 1"]);
    assert!(
        err.contains("statics:X-A: 1") && err.contains("unknown route kind"),
        "{err}"
    );
}

#[test]
fn x_real_ip_reaches_the_upstream_when_asked() {
    let up = Recorder::start();
    // Not asked: nothing, and a client's own claim is dropped.
    let off = Staticd::proxy(&["--upstream", &up.addr()]);
    off.get("/off", &[("X-Real-IP", "6.6.6.6")]);
    let s = Staticd::proxy(&["--upstream", &up.addr(), "--x-real-ip"]);
    s.get(
        "/untrusted",
        &[("X-Real-IP", "6.6.6.6"), ("X-Forwarded-For", "7.7.7.7")],
    );
    let trusted = Staticd::proxy(&[
        "--upstream",
        &up.addr(),
        "--trusted-proxy",
        "127.0.0.0/8",
        "--x-real-ip",
    ]);
    trusted.get("/chain", &[("X-Forwarded-For", "203.0.113.5, 127.0.0.9")]);
    trusted.get("/given", &[("X-Real-IP", "198.51.100.2")]);
    h2c()
        .get(s.url("/h2"))
        .header("X-Real-IP", "6.6.6.6")
        .send()
        .unwrap();
    let seen = up.seen();
    let ip = |t: &str| {
        seen.iter()
            .find(|s| s.target == t)
            .unwrap_or_else(|| panic!("{t} not forwarded: {seen:?}"))
            .header("x-real-ip")
            .map(str::to_string)
    };
    assert_eq!(ip("/off"), None);
    assert_eq!(ip("/untrusted").as_deref(), Some("127.0.0.1"));
    assert_eq!(ip("/chain").as_deref(), Some("203.0.113.5"));
    assert_eq!(ip("/given").as_deref(), Some("198.51.100.2"));
    assert_eq!(ip("/h2").as_deref(), Some("127.0.0.1"));
}

/// A client cannot pose as HTTPS (or as another address) through the headers WSGI servers
/// and apps believe from their proxy: `X-Forwarded-Ssl`, `X-Forwarded-Protocol` (gunicorn's
/// `secure_scheme_headers`), `Front-End-Https`, `X-Url-Scheme`, `True-Client-IP`; over
/// HTTP/1.1 and h2c alike. A trusted proxy's pass on.
#[test]
fn scheme_and_address_claims_only_from_trusted_proxies() {
    let claims = [
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Protocol", "ssl"),
        ("Front-End-Https", "on"),
        ("X-Url-Scheme", "https"),
        ("True-Client-IP", "6.6.6.6"),
    ];
    let up = Recorder::start();
    let s = Staticd::proxy(&["--upstream", &up.addr()]);
    s.get("/h1", &claims);
    let mut h2 = h2c().get(s.url("/h2"));
    for (n, v) in claims {
        h2 = h2.header(n, v);
    }
    h2.send().unwrap();
    let trusted = Staticd::proxy(&["--upstream", &up.addr(), "--trusted-proxy", "127.0.0.0/8"]);
    trusted.get("/trusted", &claims);
    let seen = up.seen();
    let at = |t: &str| {
        seen.iter()
            .find(|s| s.target == t)
            .unwrap_or_else(|| panic!("{t} not forwarded: {seen:?}"))
    };
    for t in ["/h1", "/h2"] {
        for (n, _) in claims {
            assert_eq!(at(t).header(n), None, "{t}: {n}");
        }
        assert_eq!(at(t).header("x-forwarded-proto"), Some("http"), "{t}");
    }
    for (n, v) in claims {
        assert_eq!(at("/trusted").header(n), Some(v), "{n}");
    }
}

#[test]
fn root_files_are_served_through_the_static_tier() {
    let site = tempfile::tempdir().unwrap();
    let dir = site.path().join("root");
    let robots = b"User-agent: *\nDisallow: /admin/\n".repeat(40);
    write_file(&dir, "robots.txt", &robots);
    write_file(&dir, "robots.txt.br", &br(&robots));
    write_file(&dir, "favicon.ico", b"\x00\x00\x01\x00icon");
    write_file(&dir, "sub/humans.txt", b"humans");
    write_file(&dir, ".env", b"SECRET=root");
    write_file(site.path(), "outside.txt", b"SECRET=outside");
    std::os::unix::fs::symlink(site.path().join("outside.txt"), dir.join("escape.txt")).unwrap();
    let up = Recorder::start();
    let s = Staticd::proxy(&[
        "--upstream",
        &up.addr(),
        "--root-files",
        dir.to_str().unwrap(),
    ]);

    let r = s.get("/robots.txt", &[]);
    assert_eq!((r.status, &r.body), (200, &robots));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("cache-control").unwrap().contains("max-age"));
    let etag = r.header("etag").unwrap().to_string();
    assert_eq!(
        s.get("/robots.txt", &[("If-None-Match", &etag)]).status,
        304
    );
    let r = s.get("/robots.txt", &[("Range", "bytes=0-9")]);
    assert_eq!((r.status, &r.body[..]), (206, &robots[..10]));
    let r = s.get("/robots.txt", &[("Accept-Encoding", "br")]);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(crate::common::fixture::unbr(&r.body), robots);
    assert_eq!(s.get("/favicon.ico", &[]).body, b"\x00\x00\x01\x00icon");
    assert_eq!(s.get("/sub/humans.txt", &[]).body, b"humans");
    let r = s.request("HEAD", "/favicon.ico", &[], b"");
    assert_eq!((r.status, r.header("content-length")), (200, Some("8")));
    assert!(up.targets().is_empty(), "{:?}", up.targets());

    // Hidden names, traversal, a symlink leading out, a directory: never from DIR; they
    // go on to the upstream, which answers them.
    for path in [
        "/.env",
        "/%2eenv",
        "/sub/../.env",
        "/sub/%2e%2e/.env",
        "/%2e%2e/outside.txt",
        "/escape.txt",
        "/sub",
        "/sub/",
    ] {
        let r = s.get(path, &[]);
        assert!(!r.text().contains("SECRET"), "{path} leaked: {}", r.text());
        assert!(
            r.status == 200 && r.text().starts_with("upstream "),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    // A file added later is served once the table reloads.
    write_file(&dir, "ads.txt", b"ads");
    wait_until("the new root file", WAIT, || {
        (s.get("/ads.txt", &[]).text() == "ads").then_some(())
    });
    // Over h2c alike.
    let r = h2c().get(s.url("/favicon.ico")).send().unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(&r.bytes().unwrap()[..], b"\x00\x00\x01\x00icon");
    let line = s.wait_access("the robots.txt line", |v| v["uri"] == "/robots.txt");
    assert_eq!(line["route"], "static");

    // A missing directory is refused at the start.
    let err = refused(&[
        "serve",
        "--root",
        ".",
        "--root-files",
        "/nonexistent-root-files",
    ]);
    assert!(err.contains("/nonexistent-root-files"), "{err}");
}

/// The runtime image's HEALTHCHECK command, run as Docker would (bash, its port mapped to the
/// test's): healthy against staticd, unhealthy when its path does not answer 200.
#[test]
fn docker_healthcheck_asks_the_liveness_path() {
    let dockerfile =
        std::fs::read_to_string(crate::common::repo_root().join("Dockerfile")).unwrap();
    let mut lines = dockerfile
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"));
    lines.next().expect("a HEALTHCHECK");
    let cmd = lines.next().unwrap().trim();
    let json = cmd
        .strip_prefix("CMD ")
        .expect("CMD [...] on the line after HEALTHCHECK");
    let argv: Vec<String> = serde_json::from_str(json).unwrap();
    assert_eq!(&argv[..2], ["bash", "-c"]);
    assert!(argv[2].contains("/.staticd/health "), "{}", argv[2]);
    let run = |addr: SocketAddr| {
        let script = argv[2].replace("127.0.0.1/8080", &format!("127.0.0.1/{}", addr.port()));
        Command::new("bash")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    };
    let fx = StaticRoot::new();
    fx.write("a.txt", b"a");
    let s = Staticd::serve(&fx.root, &[]);
    assert!(run(s.addr), "healthy against staticd");
    // The path moved away: the old one is a 404, which is not healthy.
    let moved = Staticd::serve(&fx.root, &["--health-path", "/elsewhere"]);
    assert_eq!(moved.get(HEALTH, &[]).status, 404);
    assert!(!run(moved.addr), "a 404 counted as healthy");
}
