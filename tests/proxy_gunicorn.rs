//! `staticd serve --upstream` in front of a real gunicorn running sample_project.

use crate::common::django::{django_env, Gunicorn, SampleProject, Stack};
use crate::common::http::{self, Conn, Expect, Response};
use crate::common::staticd::{has_field, Staticd, WAIT};
use crate::common::{free_port, venv_python, wait_for_port, wait_until, ChildGuard};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const GET: Expect = Expect { head: false };

#[test]
fn no_upstream_is_404_and_static_still_served() {
    let s = Staticd::proxy(&[]);
    assert_eq!(s.get("/api/notes/", &[]).status, 404);
    assert_eq!(s.get("/static/app.css", &[]).status, 200);
}

#[test]
fn drf_list_create_detail() {
    let st = Stack::start(&[]);
    let list = st.get("/api/notes/");
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(list.json(), serde_json::json!([]));
    let created = st.staticd.request(
        "POST",
        "/api/notes/",
        &[("Content-Type", "application/json")],
        br#"{"title": "through staticd", "body": "hello"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_i64().unwrap();
    // DRF sends Location only for serializers with a `url` field; whatever it sends passes.
    let detail = st.get(&format!("/api/notes/{id}/"));
    assert_eq!(detail.status, 200);
    assert_eq!(detail.json()["title"], "through staticd");
    assert_eq!(st.get("/api/notes/").json().as_array().unwrap().len(), 1);
    // Static routes never reach gunicorn.
    assert_eq!(st.get("/static/app.css").status, 200);
    assert!(!st.gunicorn.access_log().contains("/static/app.css"));
}

#[test]
fn admin_login_with_csrf_and_separate_cookies() {
    let project = SampleProject::new();
    project.collect();
    let st = Stack::on(project, &[]);
    st.project.shell(
        "from django.contrib.auth.models import User; User.objects.create_superuser('admin', 'a@example.com', 'pw-123-secret')",
    );
    let host = ("Host", "app.example.com");
    let login = st.staticd.get("/admin/login/?next=/admin/", &[host]);
    assert_eq!(login.status, 200, "{}", login.text());
    let csrf = login
        .cookie("csrftoken")
        .expect("csrftoken cookie")
        .to_string();
    let html = login.text();
    let token = html
        .split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf token in form")
        .to_string();
    let form = format!(
        "csrfmiddlewaretoken={token}&username=admin&password=pw-123-secret&next=%2Fadmin%2F"
    );
    let cookie_line = format!("csrftoken={csrf}");
    let done = st.staticd.request(
        "POST",
        "/admin/login/?next=/admin/",
        &[
            host,
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie_line),
            ("Referer", "http://app.example.com/admin/login/"),
            ("Origin", "http://app.example.com"),
        ],
        form.as_bytes(),
    );
    assert_eq!(done.status, 302, "{}", done.text());
    // Redirect not followed, Location untouched.
    assert_eq!(done.header("location"), Some("/admin/"));
    let set = done.all("set-cookie");
    assert!(set.len() >= 2, "{set:?}");
    assert!(done.cookie("sessionid").is_some(), "{set:?}");
    assert!(done.cookie("csrftoken").is_some(), "{set:?}");
    // The session works through the proxy.
    let session = format!(
        "sessionid={}; csrftoken={}",
        done.cookie("sessionid").unwrap(),
        done.cookie("csrftoken").unwrap()
    );
    let admin = st.staticd.get("/admin/", &[host, ("Cookie", &session)]);
    assert_eq!(admin.status, 200);
    // What Django saw: the client's Host and scheme.
    let echo = st.staticd.get("/echo/", &[host]).json();
    assert_eq!(echo["host"], "app.example.com");
    assert_eq!(echo["scheme"], "http");
    assert_eq!(echo["headers"]["X-Forwarded-Proto"], "http");
    // Host is passed as sent, so staticd adds no X-Forwarded-Host (nor X-Real-IP) by
    // default: gunicorn and Django parse only what nginx's seed config sent.
    assert!(echo["headers"]["X-Forwarded-Host"].is_null(), "{echo}");
    assert!(echo["headers"]["X-Real-Ip"].is_null(), "{echo}");
}

#[test]
fn append_slash_redirect_untouched() {
    let st = Stack::start(&[]);
    let r = st.get("/echo?x=1");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/echo/?x=1"));
}

/// Sends `body` while reading the response (the server may answer before reading it all);
/// the one response, then the server's close with nothing after it.
fn send_big(addr: SocketAddr, head: String, body: Vec<u8>) -> Response {
    let mut c = Conn::open(addr);
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // The server may close before taking it all: a failed write is its answer.
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(&body);
    });
    let r = c.response(GET);
    c.expect_closed();
    let _ = writer.join();
    r
}

#[test]
fn upload_over_max_body_is_413_and_never_reaches_gunicorn() {
    let st = Stack::start(&[]);
    let big = vec![b'x'; 12 << 20];
    let head = format!(
        "POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        big.len()
    );
    let r = send_big(st.staticd.addr, head, big.clone());
    assert_eq!(r.status, 413);
    assert!(r.text().contains("413"));
    // Chunked: counted as it arrives.
    let mut chunked = Vec::new();
    for part in big.chunks(1 << 20) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /echo/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string();
    assert_eq!(send_big(st.staticd.addr, head, chunked).status, 413);
    // A small body goes through (CSRF exempt? /echo/ is a plain view: 403 from CSRF is fine
    // as long as gunicorn answered). Its query marks its line in gunicorn's access log.
    let small = st.staticd.request("POST", "/echo/?small=1", &[], b"x=1");
    assert!(
        small.status == 200 || small.status == 403,
        "{}",
        small.status
    );
    // gunicorn writes its access line after sending the response: wait for the small
    // request's line, which comes after anything the big ones could have caused.
    let log = wait_until("gunicorn to log the small POST", WAIT, || {
        let log = st.gunicorn.access_log();
        log.contains("POST /echo/?small=1 ").then_some(log)
    });
    assert_eq!(log.matches("POST /echo/").count(), 1, "gunicorn saw: {log}");
}

/// The issue-12 probe's desync with real gunicorn: a POST with a body, then pipelined a
/// HEAD, an HTTP/1.0 GET and a GET with `Connection: close`. Each answer is framed for its
/// own request (the POST's had carried the HEAD's framing, or `HTTP/1.0`, or nothing).
#[test]
fn pipelined_requests_after_a_body_through_gunicorn() {
    let st = Stack::start(&[]);
    let mut c = st.staticd.conn();
    c.send(
        b"POST /echo/?p=1 HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nx=1\
          HEAD /echo/?p=2 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /echo/?p=3 HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n\
          GET /echo/?p=4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
          GET /echo/?p=5 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let post = c.response(GET);
    assert!(post.raw.starts_with(b"HTTP/1.1 "), "{:?}", post.raw);
    assert!(post.status == 200 || post.status == 403, "{}", post.status);
    assert_eq!(post.header("connection"), None);
    let head = c.response(Expect { head: true });
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert!(head.has("content-length"));
    let old = c.response(GET);
    assert_eq!(old.json()["query"], "p=3");
    assert_eq!(old.header("connection"), Some("keep-alive"));
    let last = c.response(GET);
    assert_eq!(last.json()["query"], "p=4");
    assert_eq!(last.header("connection"), Some("close"));
    c.expect_closed();
    let log = wait_until("gunicorn to log the fourth request", WAIT, || {
        let log = st.gunicorn.access_log();
        log.contains("/echo/?p=4").then_some(log)
    });
    assert!(
        !log.contains("p=5"),
        "a request after Connection: close was forwarded"
    );
}

/// GETs `path` on a connection of its own, reading until `needle` shows up in the bytes
/// received; returns (time to needle, time to the server's close, the response parsed
/// strictly, with nothing after it).
fn timed(addr: SocketAddr, path: &str, needle: &str) -> (Duration, Duration, Response) {
    let start = Instant::now();
    let mut c = Conn::open(addr);
    c.send(&http::request_bytes("GET", path, &[("Host", "t")], b""));
    let mut buf = Vec::new();
    let mut first = None;
    let mut chunk = [0u8; 4096];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "reading {path}: {e}; read so far: {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
        if first.is_none() && String::from_utf8_lossy(&buf).contains(needle) {
            first = Some(start.elapsed());
        }
    }
    let total = start.elapsed();
    let (r, used) = http::parse(&buf, GET, true)
        .unwrap_or_else(|e| {
            panic!(
                "bad response to {path}: {e}\n{:?}",
                String::from_utf8_lossy(&buf)
            )
        })
        .expect("complete at the close");
    assert_eq!(
        used,
        buf.len(),
        "{}",
        http::Error::Trailing(buf[used..].to_vec())
    );
    (first.expect("needle never arrived"), total, r)
}

#[test]
fn streaming_and_sse_arrive_incrementally() {
    let st = Stack::start(&[]);
    let (first, total, r) = timed(st.staticd.addr, "/stream/", "chunk 0");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("chunk 4"), "{}", r.text());
    assert!(total >= Duration::from_millis(400), "{total:?}");
    assert!(
        first + Duration::from_millis(250) < total,
        "first chunk at {first:?}, end at {total:?}"
    );

    let (first, total, r) = timed(st.staticd.addr, "/events/?n=6", "id: 0");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(
        r.all("x-accel-buffering").is_empty(),
        "X-Accel-Buffering must not reach the client"
    );
    assert!(r.text().contains("id: 5"));
    assert!(
        first + Duration::from_millis(300) < total,
        "first event at {first:?}, end at {total:?}"
    );
}

#[test]
fn slow_view_is_504_after_read_timeout() {
    let st = Stack::start(&["--read-timeout", "1s"]);
    let t = Instant::now();
    let r = st.get("/slow/?s=4");
    assert_eq!(r.status, 504);
    assert!(r.text().contains("504 Gateway Timeout"));
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    st.staticd
        .stderr
        .wait("the --read-timeout warning for /slow/?s=4", |l| {
            has_field(l, "uri", "/slow/?s=4") && l.contains("--read-timeout")
        });
    // Still serving afterwards (gunicorn's other worker; generous under a loaded machine).
    wait_until("a 200 after the 504", WAIT, || {
        (st.get("/slow/?s=0").status == 200).then_some(())
    });
}

#[test]
fn gunicorn_killed_is_502_fast_then_recovers() {
    let mut st = Stack::start(&[]);
    assert_eq!(st.get("/echo/").status, 200);
    st.gunicorn.kill();
    let t = Instant::now();
    let r = st.get("/echo/");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("502 Bad Gateway"));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The diagnostic names the upstream that failed.
    let up = format!("127.0.0.1:{}", st.gunicorn.port);
    st.staticd
        .stderr
        .wait(&format!("a diagnostic naming upstream={up}"), |l| {
            has_field(l, "upstream", &up)
        });
    let g = Gunicorn::start(&st.project, st.gunicorn.port);
    wait_until(
        "a 200 once gunicorn is back",
        Duration::from_secs(10),
        || (st.get("/echo/").status == 200).then_some(()),
    );
    drop(g);
}

#[test]
fn two_gunicorns_one_killed_every_request_200() {
    let project = SampleProject::new();
    let (p1, p2) = (free_port(), free_port());
    let mut g1 = Gunicorn::start(&project, p1);
    let _g2 = Gunicorn::start(&project, p2);
    for balance in ["round-robin", "least-conn"] {
        let (a, b) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
        let s = Staticd::proxy(&["--upstream", &a, "--upstream", &b, "--balance", balance]);
        for _ in 0..6 {
            assert_eq!(s.get("/echo/", &[]).status, 200);
        }
    }
    let (a, b) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let s = Staticd::proxy(&["--upstream", &a, "--upstream", &b]);
    g1.kill();
    for i in 0..20 {
        let r = s.get("/echo/", &[]);
        assert_eq!(r.status, 200, "request {i}");
    }
}

#[test]
fn spoofed_forwarded_for_replaced_unless_trusted() {
    let st = Stack::start(&[]);
    let spoof = [
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
    ];
    let echo = st.staticd.get("/echo/", &spoof).json();
    assert_eq!(echo["headers"]["X-Forwarded-For"], "127.0.0.1");
    assert_eq!(echo["headers"]["X-Forwarded-Proto"], "http");
    assert_eq!(echo["host"], "testserver");
    assert_eq!(echo["is_secure"], false);
    // From a trusted peer the chain is appended and the scheme believed.
    let up = format!("127.0.0.1:{}", st.gunicorn.port);
    let trusted = Staticd::proxy(&["--upstream", &up, "--trusted-proxy", "127.0.0.0/8"]);
    let echo = trusted.get("/echo/", &spoof).json();
    assert_eq!(echo["headers"]["X-Forwarded-For"], "6.6.6.6, 127.0.0.1");
    assert_eq!(echo["headers"]["X-Forwarded-Proto"], "https");
    assert_eq!(echo["is_secure"], true);
}

#[test]
fn x_accel_redirect_download_with_range() {
    let protected = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(protected.path().join("report.bin"), &data).unwrap();
    let mount = format!("/protected/={}", protected.path().display());
    let st = Stack::start(&["--internal", &mount]);
    let r = st.get("/download/report.bin");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, data);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"report.bin\"")
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.all("x-accel-redirect").is_empty());
    let etag = r.header("etag").expect("etag").to_string();
    let part = st
        .staticd
        .get("/download/report.bin", &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[100..200]);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/5000"));
    let cached = st
        .staticd
        .get("/download/report.bin", &[("If-None-Match", &etag)]);
    assert_eq!(cached.status, 304);
    // Never reachable directly; traversal refused.
    assert_eq!(st.get("/protected/report.bin").status, 404);
    assert_eq!(st.get("/download/..%2f..%2fetc%2fpasswd").status, 404);
    assert_eq!(st.get("/download/missing.bin").status, 404);
}

#[test]
fn media_root_served_with_validators() {
    let media = tempfile::tempdir().unwrap();
    std::fs::create_dir(media.path().join("up")).unwrap();
    std::fs::write(media.path().join("up/a.txt"), "hello media\n").unwrap();
    std::fs::write(media.path().join(".secret"), "no").unwrap();
    let root = media.path().to_str().unwrap();
    let s = Staticd::proxy(&["--media-root", root, "--media-url", "/media/"]);
    let r = s.get("/media/up/a.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello media\n");
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    let auth = ("Authorization", "Basic c3RhZ2luZzpwdw==");
    let r = s.get("/media/up/a.txt", &[auth]);
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert!(r.header("etag").is_some());
    let p = s.get("/media/up/a.txt", &[("Range", "bytes=0-4")]);
    assert_eq!((p.status, p.body.as_slice()), (206, &b"hello"[..]));
    for bad in [
        "/media/.secret",
        "/media/up/",
        "/media/up",
        "/media/../etc/passwd",
        "/media/up/%2e%2e/.secret",
    ] {
        assert_eq!(s.get(bad, &[]).status, 404, "{bad}");
    }
}

/// A masked client text frame.
fn ws_frame(text: &str) -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | text.len() as u8, 1, 2, 3, 4];
    f.extend(
        text.bytes()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
    );
    f
}

#[test]
fn websocket_echo_through_uvicorn() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wsapp.py"),
        r#"
async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + (m.get("text") or "")})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"plain http"})
"#,
    )
    .unwrap();
    let port = free_port();
    let uvicorn = venv_python().parent().unwrap().join("uvicorn");
    let child = std::process::Command::new(uvicorn)
        .args([
            "wsapp:app",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--lifespan",
            "off",
            "--log-level",
            "warning",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = ChildGuard::new(child);
    assert!(wait_for_port(port, Duration::from_secs(20)));
    let up = format!("127.0.0.1:{port}");
    let s = Staticd::proxy(&["--upstream", &up]);
    assert_eq!(s.get("/plain", &[]).text(), "plain http");

    let mut c = Conn::open(s.addr);
    c.send(b"GET /ws/ HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    // The head byte by byte, so no frame byte after it is read into a buffer here.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            c.stream.read(&mut byte).unwrap(),
            1,
            "closed during handshake: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let (r, used) = http::parse(&head, GET, false)
        .unwrap_or_else(|e| panic!("bad 101 head: {e}"))
        .expect("a complete head");
    assert_eq!(used, head.len());
    assert_eq!(
        (r.version, r.status),
        (1, 101),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    for msg in ["hello", "second message"] {
        c.send(&ws_frame(msg));
        let mut h = [0u8; 2];
        c.stream.read_exact(&mut h).unwrap();
        assert_eq!(h[0], 0x81);
        let mut payload = vec![0u8; (h[1] & 0x7f) as usize];
        c.stream.read_exact(&mut payload).unwrap();
        assert_eq!(String::from_utf8(payload).unwrap(), format!("echo:{msg}"));
    }
}

#[test]
fn unix_socket_upstream() {
    let project = SampleProject::new();
    let sock = project.path().join("gunicorn.sock");
    let bin = venv_python().parent().unwrap().join("gunicorn");
    let child = std::process::Command::new(bin)
        .args(["toyproject.wsgi", "--workers", "2", "--bind"])
        .arg(format!("unix:{}", sock.display()))
        .current_dir(project.path())
        .envs(django_env())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _g = ChildGuard::new(child);
    // Connectable, not merely present: the file exists from bind(2) on, and a connect
    // before gunicorn's listen(2) is refused (seen as a 502 once under load).
    wait_until("gunicorn's socket", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&sock)
            .ok()
            .map(drop)
    });
    let up = format!("unix:{}", sock.display());
    let s = Staticd::proxy(&["--upstream", &up]);
    let echo = s.get("/echo/", &[]);
    assert_eq!(echo.status, 200, "{}", echo.text());
    assert_eq!(echo.json()["headers"]["X-Forwarded-For"], "127.0.0.1");
}

/// sample_project with a `gunicorn.conf.py` (read from gunicorn's working directory) whose
/// `pre_request` hook appends `METHOD URI` to a file as a worker takes a request up: a test
/// can then see that a view is running instead of guessing with a sleep.
fn project_logging_started_requests() -> (SampleProject, PathBuf) {
    let project = SampleProject::new();
    let started = project.path().join("started-requests.log");
    let path = started.to_str().expect("a UTF-8 temp path");
    std::fs::write(
        project.path().join("gunicorn.conf.py"),
        format!(
            "def pre_request(worker, req):\n    with open({path:?}, 'a') as f:\n        f.write(req.method + ' ' + req.uri + '\\n')\n"
        ),
    )
    .unwrap();
    (project, started)
}

/// A client that leaves while gunicorn is still in a slow view is logged as 499 at once
/// (not when the view finally answers).
#[test]
fn client_abort_before_answer_logged_499() {
    let (project, started) = project_logging_started_requests();
    let st = Stack::on(project, &[]);
    let mut c = st.staticd.conn();
    c.send(b"GET /slow/?s=20 HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_until("a gunicorn worker to start /slow/?s=20", WAIT, || {
        let text = std::fs::read_to_string(&started).ok()?;
        text.lines().any(|l| l == "GET /slow/?s=20").then_some(())
    });
    drop(c);
    // The view sleeps 20 s: a 499 within 10 s was logged when the client left.
    st.staticd.stdout.wait_from(
        &mut 0,
        "/slow/?s=20 logged with status 499",
        Duration::from_secs(10),
        |l| {
            serde_json::from_str(l)
                .is_ok_and(|v: serde_json::Value| v["uri"] == "/slow/?s=20" && v["status"] == 499)
        },
    );
}

/// A client that leaves in the middle of a streamed answer is logged as 499 too.
#[test]
fn client_abort_while_streaming_logged_499() {
    let st = Stack::start(&[]);
    let mut c = st.staticd.conn();
    c.send(b"GET /stream/ HTTP/1.1\r\nHost: t\r\n\r\n");
    // Read until the first chunk has arrived, then leave.
    let mut seen = Vec::new();
    while !seen.windows(7).any(|w| w == b"chunk 0") {
        let mut piece = [0u8; 256];
        let n = c.stream.read(&mut piece).unwrap();
        assert!(n > 0, "closed before the first chunk");
        seen.extend_from_slice(&piece[..n]);
    }
    drop(c);
    // The access line of a stream carries the status it began with (200) and the body
    // bytes it was sent (at least the chunk the client read, never all five); the
    // diagnostic says the client left first.
    let line = st
        .staticd
        .stderr
        .wait("a status=499 diagnostic for GET /stream/", |l| {
            has_field(l, "status", "499") && l.contains("GET /stream/")
        });
    assert!(has_field(&line, "status", "499"), "{line}");
    let entry = st
        .staticd
        .wait_access("the access line of /stream/", |v| v["uri"] == "/stream/");
    let bytes = entry["bytes"].as_u64().unwrap();
    assert!(
        (8..40).contains(&bytes),
        "bytes sent before the client left: {entry}"
    );
}

/// The upstream request is cancelled when the client leaves: its connection is closed, so
/// the upstream sees end-of-file instead of a request still waiting for an answer. (A bare
/// listener stands in for the upstream: gunicorn's sync worker would not show the close.)
#[test]
fn client_abort_cancels_upstream_request() {
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap().to_string();
    let s = Staticd::proxy(&["--upstream", &up_addr]);
    let mut c = s.conn();
    c.send(b"GET /never/ HTTP/1.1\r\nHost: t\r\n\r\n");
    let (mut conn, _) = up.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "upstream connection closed before the request arrived"
        );
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"GET /never/ HTTP/1.1\r\n"));
    let left = Instant::now();
    drop(c);
    // End-of-file (or a reset) on the upstream side, well before the read timeout.
    let closed = match conn.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        closed,
        "upstream connection still open after the client left"
    );
    assert!(
        left.elapsed() < Duration::from_secs(5),
        "{:?}",
        left.elapsed()
    );
    let entry = s.wait_status("/never/", 499);
    assert_eq!(entry["method"], "GET", "{entry}");
}
