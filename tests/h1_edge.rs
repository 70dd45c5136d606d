//! HTTP/1 at the edge (issue 12): staticd's own loop serves every HTTP/1 connection for its
//! whole life. Black-box over raw sockets, against a scripted upstream that records the
//! exact bytes it receives, so each test can say what reached the upstream: a body whole and
//! re-framed, no underscored field names, never a refused or smuggled request.
//!
//! Each failure the attacker-style probe found behind real gunicorn has a test here: desync
//! of pipelined answers after a body, requests that got no answer (CONNECT, stray upgrades,
//! a stalled body), heads not cut off after the first request, Host and absolute-form,
//! `100 Continue` before a 413, underscored names, over-sized heads.

use crate::common::echo::Upstream;
use crate::common::http::{self, raw_bytes, Conn, Expect, Response};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::wait_until;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const GET: Expect = Expect { head: false };
const HEAD: Expect = Expect { head: true };

fn proxy(up: &Upstream, extra: &[&str]) -> Staticd {
    let mut args = vec!["--upstream", &up.addr];
    args.extend_from_slice(extra);
    Staticd::proxy(&args)
}

/// Sends `bytes` from a thread of its own while the response is read (the server may
/// answer, and close, before it has read them all); the one response, then the close.
fn send_all(s: &Staticd, bytes: Vec<u8>, expect: Expect) -> Response {
    let mut c = s.conn();
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // A failed write is the server having closed: its answer is what counts.
        let _ = w.write_all(&bytes);
    });
    let r = c.response(expect);
    c.expect_closed();
    let _ = writer.join();
    r
}

/// A refused request: `status`, `Connection: close`, and nothing after it.
fn refused(s: &Staticd, bytes: &[u8], status: u16) -> Response {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
    let all = raw_bytes(s.addr, bytes);
    let (r, used) = http::parse(&all, GET, true)
        .unwrap_or_else(|e| panic!("{shown:?}: bad response: {e}"))
        .unwrap_or_else(|| panic!("{shown:?}: no response"));
    assert_eq!(r.status, status, "{shown:?}: {}", r.text());
    assert_eq!(r.header("connection"), Some("close"), "{shown:?}");
    assert_eq!(used, all.len(), "{shown:?}: bytes after the response");
    r
}

/// The probe's desync: after a request with a body, every pipelined answer came framed for
/// the wrong request (a HEAD's length with no body on the POST's answer, `HTTP/1.0` on it,
/// `connection: close` then another answer). Each answer is now framed for its own request,
/// in order, and nothing after a `Connection: close` is read.
#[test]
fn pipelined_mix_is_answered_in_order_each_framed_for_its_own_request() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let mut c = s.conn();
    c.send(
        b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          HEAD /page HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/app.css HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
          HEAD /static/app.css HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
          GET /never HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let post = c.response(GET);
    assert!(
        post.raw.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        post.raw
    );
    assert_eq!(post.text(), "POST /form 5");
    assert_eq!(post.header("connection"), None);
    let head = c.response(HEAD);
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("12"), "HEAD /page 0");
    assert_eq!(c.response(GET).body, b"body{}");
    assert_eq!(c.response(GET).text(), "POST /chunked 3");
    let old = c.response(GET);
    assert_eq!(old.text(), "GET /old 0");
    assert_eq!(old.header("connection"), Some("keep-alive"));
    assert_eq!(old.framing, http::Framing::Length(10));
    let head = c.response(HEAD);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("6"))
    );
    let last = c.response(GET);
    assert_eq!(last.text(), "GET /last 0");
    assert_eq!(last.header("connection"), Some("close"));
    c.expect_closed();
    // Every request reached the upstream once, in order, with its body; /never did not.
    let seen = up.seen();
    let targets: Vec<_> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/form", "/page", "/chunked", "/old", "/last"]);
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[2].body, b"abc");
    assert_eq!(seen[2].header("content-length"), Some("3"));
    assert_eq!(seen[3].header("host"), Some(s.addr.to_string().as_str()));
}

/// A streamed answer (unknown length) is chunked for an HTTP/1.1 request and delimited by
/// the close for an HTTP/1.0 one, whatever came before it on the connection.
#[test]
fn streams_are_framed_for_each_request_version() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let mut c = s.conn();
    c.send(
        b"POST /stream/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\
          HEAD /stream/2 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /stream/3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
          GET /never HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let one = c.response(GET);
    assert_eq!(
        (one.framing, one.text().as_str()),
        (http::Framing::Chunked, "firstsecond")
    );
    // HEAD of a stream: GET's framing header, no length, no body.
    let two = c.response(HEAD);
    assert_eq!((two.status, two.body.len()), (200, 0));
    assert_eq!(two.header("transfer-encoding"), Some("chunked"));
    assert_eq!(two.header("content-length"), None);
    let three = c.response(GET);
    assert!(three.raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        (three.framing, three.text().as_str()),
        (http::Framing::Close, "firstsecond")
    );
    assert_eq!(three.header("connection"), Some("close"));
    assert!(!up.targets().contains(&"/never".to_string()));
}

/// A chunked body with extensions and trailers arrives at the upstream whole, de-chunked,
/// with a Content-Length (the body is buffered first, as nginx's `proxy_request_buffering`).
#[test]
fn a_chunked_body_reaches_the_upstream_whole() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let r = http::raw(
        s.addr,
        b"PUT /doc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          4;name=\"v a\"\r\nWiki\r\n0005\r\npedia\r\n0;last\r\nX-Trailer: t\r\n\r\n",
        GET,
    );
    assert_eq!(r.text(), "PUT /doc 9");
    let seen = &up.seen()[0];
    assert_eq!(seen.body, b"Wikipedia");
    assert_eq!(seen.header("content-length"), Some("9"));
    assert!(seen.all("transfer-encoding").is_empty() && seen.all("x-trailer").is_empty());
    assert!(seen.raw.ends_with(b"\r\n\r\nWikipedia"));
}

/// `staticd serve` in front of `up` with `TMPDIR` set, as a systemd unit would set it; its
/// (empty) root goes with it.
fn proxy_with_tmpdir(up: &Upstream, tmpdir: &std::path::Path) -> (Staticd, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_staticd"));
    cmd.arg("serve")
        .arg("--root")
        .arg(root.path())
        .args(["--upstream", &up.addr, "--bind", "127.0.0.1:0"])
        .env("TMPDIR", tmpdir);
    (Staticd::start(cmd), root)
}

/// A body over 64 KiB is kept in a nameless temporary file in `$TMPDIR` (nginx's
/// `client_body_temp_path`), not in memory: it reaches the upstream whole, by
/// Content-Length or chunked. The file is what carries it: with `$TMPDIR` unusable such a
/// body is a 500 and never forwarded, while a small body (kept in memory) still goes through.
#[test]
fn large_bodies_go_through_a_temporary_file_and_reach_the_upstream_whole() {
    let up = Upstream::start();
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let tmp = tempfile::tempdir().unwrap();
    let (s, _root) = proxy_with_tmpdir(&up, tmp.path());
    let sized = http::request_bytes("POST", "/sized", &[], &body);
    assert_eq!(send_all(&s, sized, GET).text(), "POST /sized 300000");
    let mut chunked =
        b"PUT /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for piece in body.chunks(70_000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(send_all(&s, chunked, GET).text(), "PUT /chunked 300000");
    let seen = up.wait_for("/chunked");
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert!(r.body == body, "{}: the body changed on the way", r.target);
        assert_eq!(r.header("content-length"), Some("300000"));
        assert!(r.all("transfer-encoding").is_empty());
    }
    // Nothing left behind in TMPDIR: the files had no name.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    let gone = tmp.path().join("missing");
    let (s, _root) = proxy_with_tmpdir(&up, &gone);
    let big = http::request_bytes("POST", "/big", &[], &body);
    assert_eq!(send_all(&s, big, GET).status, 500);
    let small =
        b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(http::raw(s.addr, small, GET).text(), "POST /small 5");
    assert!(
        !up.targets().iter().any(|t| t == "/big"),
        "{:?}",
        up.targets()
    );
    s.stderr.wait("the temporary file's error", |l| {
        l.contains("temporary file") && l.contains(&gone.display().to_string())
    });
}

/// An upstream that answers a large upload without reading it, then closes (Django's 403
/// for a missing CSRF token), resets the connection under staticd's write: its answer is
/// relayed, as nginx relays it, not a 502.
#[test]
fn an_answer_before_the_upload_is_taken_is_relayed() {
    let addr = crate::common::upstream::answer_and_close(
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden",
    );
    let s = Staticd::proxy(&["--upstream", &addr, "--max-body", "64M"]);
    const LEN: usize = 8 << 20;
    let req = http::request_bytes("POST", "/upload", &[], &vec![b'x'; LEN]);
    let r = send_all(&s, req, GET);
    assert_eq!((r.status, r.text().as_str()), (403, "forbidden"));
}

/// A large body goes to a slow upstream under `--read-timeout` per write (nginx's
/// `proxy_send_timeout`), not for the whole upload: an upstream that takes 16 MiB at 10 MiB/s
/// gets all of it through a 1 s limit, and answers.
#[test]
fn a_large_upload_to_a_slow_upstream_is_timed_per_write() {
    const LEN: usize = 16 << 20;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let head_end = loop {
            let n = c.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let mut body = got.len() - head_end;
        while body < LEN {
            // 1 MiB per 100 ms at most: the upload takes over 1.5 s, each write waits
            // about 100 ms.
            std::thread::sleep(Duration::from_millis(100));
            let mut taken = 0;
            while taken < (1 << 20) && body < LEN {
                let n = c.read(&mut buf[..(1 << 20) - taken]).unwrap();
                assert!(n > 0, "staticd closed after {body} bytes");
                taken += n;
                body += n;
            }
        }
        c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .unwrap();
    });
    let s = Staticd::proxy(&[
        "--upstream",
        &addr,
        "--read-timeout",
        "1s",
        "--max-body",
        "64M",
    ]);
    let req = http::request_bytes("PUT", "/big", &[], &vec![b'x'; LEN]);
    let started = Instant::now();
    let r = send_all(&s, req, GET);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the upload took less than --read-timeout"
    );
}

/// A client that does not read does not hold the upstream: a 32 MiB answer (more than the
/// sockets' buffers on both sides hold) is taken from the upstream whole while the client
/// reads nothing (nginx's `proxy_buffering`), then reaches the client whole and in order.
#[test]
fn a_slow_client_does_not_hold_the_upstream() {
    const LEN: usize = 32 << 20;
    let (addr, done) = crate::common::upstream::large_answer(LEN);
    let s = Staticd::proxy(&["--upstream", &addr]);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&s.addr.into()).unwrap();
    let mut c: std::net::TcpStream = sock.into();
    c.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    wait_until("the upstream to have written all of it", WAIT, || {
        done.load(Ordering::SeqCst).then_some(())
    });
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &all[body_at..];
    assert!(
        body == crate::common::upstream::pattern(LEN),
        "bytes lost or out of order"
    );
}

/// Smuggling forms are 400 (501 for a coding staticd does not implement) and close the
/// connection; neither they nor the request hidden in them reach the upstream.
#[test]
fn smuggling_forms_are_refused_and_never_forwarded() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let hidden = "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n";
    let post = |fields: &str, body: &str| {
        format!("POST /s HTTP/1.1\r\nHost: t\r\n{fields}\r\n{body}{hidden}")
    };
    let chunked = |body: &str| post("Transfer-Encoding: chunked\r\n", body);
    let cases: Vec<(String, u16)> = vec![
        (
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        (
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        (post("Transfer-Encoding: gzip\r\n", "0\r\n\r\n"), 400),
        (
            post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"),
            400,
        ),
        (
            post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"),
            501,
        ),
        (
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            400,
        ),
        (post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400),
        (post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400),
        (
            post("Transfer-Encoding: chunked\r\n\tgzip\r\n", "0\r\n\r\n"),
            400,
        ),
        (
            format!("POST /s HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"),
            400,
        ),
        (post("Content-Length: +5\r\n", "hello"), 400),
        (post("Content-Length: -1\r\n", ""), 400),
        (post("Content-Length: 5, 5\r\n", "hello"), 400),
        (
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            400,
        ),
        (
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            400,
        ),
        (post("Content-Length: 0x5\r\n", "hello"), 400),
        (post("Content-Length: 5\r\n 0\r\n", "hello"), 400),
        (post("Bad Name: x\r\nContent-Length: 0\r\n", ""), 400),
        (post("X: y\nContent-Length: 5\r\n", "hello"), 400),
        (
            format!("POST /s HTTP/1.1\nHost: t\nContent-Length: 5\n\nhello{hidden}"),
            400,
        ),
        (chunked("0x5\r\nhello\r\n0\r\n\r\n"), 400),
        (chunked("+5\r\nhello\r\n0\r\n\r\n"), 400),
        (chunked("5\nhello\r\n0\r\n\r\n"), 400),
        (chunked("5;a\nb\r\nhello\r\n0\r\n\r\n"), 400),
        (chunked("5\r\nhelloXX0\r\n\r\n"), 400),
        (chunked("5\r\nhello\r\n0\r\n\n"), 400),
        (chunked("10000000000000000\r\n"), 400),
        (chunked("5 x\r\nhello\r\n0\r\n\r\n"), 400),
    ];
    for (bytes, status) in &cases {
        refused(&s, bytes.as_bytes(), *status);
    }
    assert_eq!(
        up.targets_before_marker(&s, "/marker"),
        Vec::<String>::new()
    );
}

/// Host per RFC 9112 §3.2: missing on HTTP/1.1, repeated or not `host[:port]` is 400 and
/// never forwarded; HTTP/1.0 may omit it (the address the client reached is sent).
#[test]
fn host_is_required_single_and_valid() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    refused(&s, b"GET /h HTTP/1.1\r\n\r\n", 400);
    refused(&s, b"GET /h HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    refused(&s, b"GET /h HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    for bad in ["a b", "x/path", "u@x", "x:80:80", "", "[::1", "a%zz"] {
        let req = format!("GET /h HTTP/1.1\r\nHost: {bad}\r\nConnection: close\r\n\r\n");
        refused(&s, req.as_bytes(), 400);
    }
    // Static files are no exception.
    refused(&s, b"GET /static/app.css HTTP/1.1\r\n\r\n", 400);
    assert_eq!(
        up.targets_before_marker(&s, "/marker"),
        Vec::<String>::new()
    );
    let r = http::raw(s.addr, b"GET /ten HTTP/1.0\r\n\r\n", GET);
    assert_eq!(r.text(), "GET /ten 0");
    let seen = up.wait_for("/ten");
    assert_eq!(
        seen.last().unwrap().header("host"),
        Some(s.addr.to_string().as_str())
    );
    for ok in ["[::1]:8000", "example.com:8080", "127.0.0.1"] {
        let r = s.get("/ok", &[("Host", ok)]);
        assert_eq!(r.status, 200, "{ok}");
    }
}

/// An absolute-form target's authority wins over Host (RFC 9112 §3.2.2); the upstream gets
/// the origin form with that Host.
#[test]
fn absolute_form_targets_win_over_host() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let r = http::raw(
        s.addr,
        b"GET http://a.example/x?y=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        GET,
    );
    assert_eq!(r.text(), "GET /x?y=1 0");
    let seen = up.seen()[0].clone();
    assert!(seen.raw.starts_with(b"GET /x?y=1 HTTP/1.1\r\n"));
    assert_eq!(seen.header("host"), Some("a.example"));
    // Host already says it: no X-Forwarded-Host repeats it.
    assert_eq!(seen.header("x-forwarded-host"), None);
    let r = http::raw(
        s.addr,
        b"GET HTTP://a.example?q HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        GET,
    );
    assert_eq!(r.text(), "GET /?q 0");
    let r = http::raw(
        s.addr,
        b"GET http://a.example/static/app.css HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        GET,
    );
    assert_eq!(r.body, b"body{}");
    refused(
        &s,
        b"GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    );
    refused(
        &s,
        b"GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    );
    refused(
        &s,
        b"GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
    );
    refused(&s, b"GET * HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
}

/// Field names with underscores are dropped before forwarding (nginx's
/// `underscores_in_headers off`): `X_Forwarded_For` cannot pose as `X-Forwarded-For` to a
/// WSGI server that maps both to `HTTP_X_FORWARDED_FOR`.
#[test]
fn underscored_field_names_are_dropped() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let r = s.get(
        "/u",
        &[
            ("X_Forwarded_For", "6.6.6.6"),
            ("X_Custom", "1"),
            ("X-Custom", "2"),
        ],
    );
    assert_eq!(r.status, 200);
    let seen = &up.seen()[0];
    assert!(
        seen.headers.iter().all(|(n, _)| !n.contains('_')),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-custom"), Some("2"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
}

/// `Expect: 100-continue`: the 100 only when the body will be read, a 413 without it when
/// the declared length is over `--max-body`, 417 for any other expectation (ignored on
/// HTTP/1.0), no 100 for a request without a body.
#[test]
fn expect_100_continue() {
    let up = Upstream::start();
    let s = proxy(&up, &["--max-body", "1k"]);
    let mut c = s.conn();
    c.send(b"POST /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let mut interim = [0u8; 25];
    c.stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(up.seen().is_empty(), "forwarded before the body came");
    c.send(b"hello");
    let r = c.response(GET);
    assert_eq!((r.status, r.text().as_str()), (200, "POST /e 5"));
    assert!(r.interim.is_empty());
    // A body already on its way gets no 100 either.
    c.send(b"POST /e2 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    let r = c.response(GET);
    assert_eq!((r.text().as_str(), r.interim.len()), ("POST /e2 2", 0));
    c.send(b"GET /e3 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n");
    let r = c.response(GET);
    assert_eq!((r.text().as_str(), r.interim.len()), ("GET /e3 0", 0));

    let r = refused(
        &s,
        b"POST /big HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2048\r\n\r\n",
        413,
    );
    assert!(r.interim.is_empty() && r.raw.starts_with(b"HTTP/1.1 413"));
    refused(
        &s,
        b"POST /tea HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\nhi",
        417,
    );
    let r = http::raw(
        s.addr,
        b"POST /old HTTP/1.0\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\nhi",
        GET,
    );
    assert_eq!(r.text(), "POST /old 2");
    assert_eq!(
        up.targets_before_marker(&s, "/marker"),
        ["/e", "/e2", "/e3", "/old"]
    );
}

/// RFC 9110 §10.1.1: a final status the head decides (a static file, the static tier's
/// 405 and 404, TRACE, `OPTIONS *`, the media mount) goes without `100 Continue`, as nginx answers them; the
/// body is then never read, so the answer says `Connection: close` and the connection
/// closes. The probe saw `100 Continue` then a 405.
#[test]
fn expect_100_continue_is_skipped_when_the_answer_needs_no_body() {
    let up = Upstream::start();
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("m.txt"), "media").unwrap();
    let dir = media.path().to_str().unwrap();
    let s = proxy(&up, &["--media-root", dir, "--media-url", "/media/"]);
    for (line, status) in [
        ("POST /static/app.css", 405),
        ("PUT /static/app.css", 405),
        ("POST /static/nope.css", 404),
        ("GET /static/app.css", 200),
        ("HEAD /static/app.css", 200),
        ("TRACE /x", 405),
        ("OPTIONS *", 200),
        ("PUT /media/m.txt", 405),
        ("GET /media/m.txt", 200),
    ] {
        let mut c = s.conn();
        c.send(
            format!(
                "{line} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            .as_bytes(),
        );
        let method = line.split(' ').next().unwrap();
        let r = c.response(Expect::for_method(method));
        assert_eq!(r.status, status, "{line}");
        assert!(r.interim.is_empty(), "{line}: {:?}", r.interim);
        assert_eq!(r.header("connection"), Some("close"), "{line}");
        // The body the client sends anyway is read and dropped before the close.
        let _ = c.stream.write_all(b"hello");
        c.expect_closed();
    }
    // The upstream's answer needs the body: 100 first.
    let mut c = s.conn();
    c.send(b"PUT /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let mut interim = [0u8; 25];
    c.stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"hello");
    assert_eq!(c.response(GET).text(), "PUT /up 5");
    assert_eq!(up.targets_before_marker(&s, "/marker"), ["/up"]);
}

/// Request-line and field-line forms an attacker or a conformance suite sends (RFC 9112
/// §2–§5), each on a connection of its own: the status, and whether the connection goes
/// on (then a follow-up request on it is answered in step) or closes with nothing after
/// the answer. None reaches the upstream.
#[test]
fn request_line_and_field_line_probes() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    const A: &str = "/static/app.css";
    let rows: Vec<(String, u16, bool)> = vec![
        // §2.2: empty lines before the request line are ignored; bare LF ends a line.
        (
            format!("\r\n\r\nGET {A} HTTP/1.1\r\nHost: t\r\n\r\n"),
            200,
            true,
        ),
        (format!("GET {A} HTTP/1.1\nHost: t\n\n"), 200, true),
        // Methods are case-sensitive tokens: `get` is an unknown method (405 on a file).
        (format!("get {A} HTTP/1.1\r\nHost: t\r\n\r\n"), 405, true),
        (format!("TRACE {A} HTTP/1.1\r\nHost: t\r\n\r\n"), 405, true),
        (format!("GET {A} HTTP/1.9\r\nHost: t\r\n\r\n"), 200, true),
        (format!("GET {A} HTTP/3.0\r\nHost: t\r\n\r\n"), 505, false),
        (format!("GET {A} http/1.1\r\nHost: t\r\n\r\n"), 400, false),
        (format!("GET {A}\r\nHost: t\r\n\r\n"), 400, false),
        (format!("GET  {A} HTTP/1.1\r\nHost: t\r\n\r\n"), 400, false),
        (format!("GET {A} HTTP/1.1 \r\nHost: t\r\n\r\n"), 400, false),
        (format!("GET\t{A}\tHTTP/1.1\r\nHost: t\r\n\r\n"), 400, false),
        (format!(" GET {A} HTTP/1.1\r\nHost: t\r\n\r\n"), 400, false),
        (format!("GET {A} HTTP/1.1\rHost: t\r\n\r\n"), 400, false),
        ("GET /a\0b HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400, false),
        ("GET /a b HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400, false),
        ("GET t:80 HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400, false),
        ("HEAD * HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400, false),
        (
            "GET http:///x HTTP/1.1\r\nHost: t\r\n\r\n".into(),
            400,
            false,
        ),
        // §5: no whitespace before the colon, names are tokens, values have no CTLs.
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nX\t: y\r\n\r\n"),
            400,
            false,
        ),
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nX(y): z\r\n\r\n"),
            400,
            false,
        ),
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nXy\r\n\r\n"),
            400,
            false,
        ),
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nX: a\u{1}b\r\n\r\n"),
            400,
            false,
        ),
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nX: a\u{7f}b\r\n\r\n"),
            400,
            false,
        ),
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n"),
            400,
            false,
        ),
        (format!("GET {A} HTTP/1.1\r\n Host: t\r\n\r\n"), 400, false),
        // OWS around a value is not part of it; an empty value is a value.
        (
            format!("GET {A} HTTP/1.1\r\nHost:\t t \t\r\nX:\r\n\r\n"),
            200,
            true,
        ),
        (
            format!("GET {A} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue, x\r\n\r\n"),
            417,
            false,
        ),
    ];
    for (req, status, keeps) in &rows {
        let mut c = s.conn();
        c.send(req.as_bytes());
        let method = req.trim_start().split(' ').next().unwrap();
        let r = c.response(Expect::for_method(method));
        assert_eq!(r.status, *status, "{req:?}: {}", r.text());
        if *keeps {
            c.send(format!("GET {A} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
            assert_eq!(c.response(GET).text(), "body{}", "{req:?}");
        } else {
            assert_eq!(r.header("connection"), Some("close"), "{req:?}");
        }
        c.expect_closed();
    }
    // A head of high-bit bytes in the target.
    refused(&s, b"GET /static/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    assert!(up.targets_before_marker(&s, "/marker").is_empty());
}

/// A fragment in a request target (no part of one, RFC 9112 §3.2) is cut off, as nginx and
/// gunicorn do: the static tier found no `app.css#top` (404) while the upstream saw the
/// path without it.
#[test]
fn fragments_are_cut_off_before_routing_and_forwarding() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let mut c = s.conn();
    c.send(b"GET /static/app.css#top HTTP/1.1\r\nHost: t\r\n\r\nGET /up?q=1#frag HTTP/1.1\r\nHost: t\r\n\r\nGET http://t/abs#f?x HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(GET);
    assert_eq!((r.status, r.text().as_str()), (200, "body{}"));
    assert_eq!(c.response(GET).text(), "GET /up?q=1 0");
    assert_eq!(c.response(GET).text(), "GET /abs 0");
    assert_eq!(up.targets_before_marker(&s, "/marker"), ["/up?q=1", "/abs"]);
}

/// RFC 9110 §2.5: HTTP/1.x with x above 1 is served as HTTP/1.1 (nginx does), answered
/// `HTTP/1.1` and kept alive; another major version is 505 (RFC 9110 §15.6.6, nginx); a
/// request line over the head limit is 414 (RFC 9112 §3), where it was 431.
#[test]
fn newer_minor_versions_other_majors_and_long_request_lines() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let mut c = s.conn();
    c.send(b"GET /v12 HTTP/1.2\r\nHost: t\r\n\r\nGET /static/app.css HTTP/1.9\r\nHost: t\r\n\r\n");
    let r = c.response(GET);
    assert!(r.raw.starts_with(b"HTTP/1.1 200 "), "{}", r.text());
    assert_eq!(
        (r.text().as_str(), r.header("connection")),
        ("GET /v12 0", None)
    );
    let r = c.response(GET);
    assert_eq!((r.status, r.text().as_str()), (200, "body{}"));
    // The version in a packet of its own, after the rest of the line.
    c.send(b"GET /split HTTP/1.");
    c.stream.flush().unwrap();
    c.send(b"3\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(GET).text(), "GET /split 0");
    for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/9.1"] {
        refused(
            &s,
            format!("GET /v2 {v}\r\nHost: t\r\n\r\n").as_bytes(),
            505,
        );
    }
    for kib in [17, 64] {
        let req = format!(
            "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n",
            "a".repeat(kib * 1024)
        );
        let r = send_all(&s, req.into_bytes(), GET);
        assert_eq!(
            (r.status, r.header("connection")),
            (414, Some("close")),
            "{kib} KiB"
        );
    }
    // A method longer than any registered one (RFC 9112 §3): 501, never forwarded.
    for n in [33, 9000] {
        refused(
            &s,
            format!("{} /long HTTP/1.1\r\nHost: t\r\n\r\n", "A".repeat(n)).as_bytes(),
            501,
        );
    }
    assert_eq!(up.targets_before_marker(&s, "/marker"), ["/v12", "/split"]);
}

/// Over `--max-body` is 413 and close, by declared length or by counting chunks; nothing
/// reaches the upstream.
#[test]
fn bodies_over_max_body_are_413_and_never_forwarded() {
    let up = Upstream::start();
    let s = proxy(&up, &["--max-body", "1k"]);
    let body = vec![b'x'; 64 * 1024];
    let mut req = format!(
        "POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    assert_eq!(send_all(&s, req, GET).status, 413);
    let mut req = b"POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(700) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = send_all(&s, req, GET);
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    // At the limit is fine.
    let r = s.request("POST", "/fits", &[], &vec![b'y'; 1024]);
    assert_eq!(r.text(), "POST /fits 1024");
    assert_eq!(up.targets_before_marker(&s, "/marker"), ["/fits"]);
}

/// Heads over 16 KiB (the probe got 20–120 KiB through) and over 128 field lines are 431;
/// malformed ones 400. None reaches the upstream.
#[test]
fn oversized_and_malformed_heads_are_refused() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    for kib in [17, 20, 120] {
        let req = format!(
            "GET /big HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "a".repeat(kib * 1024)
        );
        assert_eq!(send_all(&s, req.into_bytes(), GET).status, 431, "{kib} KiB");
    }
    let many: String = (0..130).map(|i| format!("X-{i}: y\r\n")).collect();
    refused(
        &s,
        format!("GET /many HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
        431,
    );
    // 100 lines are fine.
    let fine: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = http::raw(
        s.addr,
        format!("GET /fine HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{fine}\r\n").as_bytes(),
        GET,
    );
    assert_eq!(r.text(), "GET /fine 0");
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /x HTTP/0.9\r\nHost: t\r\n\r\n",
        b"GET /x HTTP/1.10\r\nHost: t\r\n\r\n",
        b"GET /x\r\nHost: t\r\n\r\n",
        b"GET  /x HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: t\r\n: empty\r\n\r\n",
    ] {
        refused(&s, bad, 400);
    }
    assert_eq!(up.targets_before_marker(&s, "/marker"), ["/fine"]);
}

/// CONNECT is 405 and closes (this is no forward proxy; the probe's CONNECT got no answer),
/// TRACE 405, `OPTIONS *` 200 with `Allow`. None reaches the upstream.
#[test]
fn connect_trace_and_options_asterisk() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let r = refused(
        &s,
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        405,
    );
    assert!(r.header("allow").unwrap().contains("GET"));
    let mut c = s.conn();
    c.send(b"TRACE /t HTTP/1.1\r\nHost: t\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(GET);
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("POST"));
    let r = c.response(GET);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
    );
    // A file's methods are GET and HEAD (RFC 9110 §15.5.6: Allow lists the target's).
    c.send(b"TRACE /static/app.css HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(GET);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    // `OPTIONS http://host` with an empty path is `OPTIONS *` (RFC 9112 §3.2.4); with a
    // path it is a plain request for it.
    c.send(b"OPTIONS http://t:80 HTTP/1.1\r\nHost: t\r\n\r\nOPTIONS http://t/o HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(GET);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert!(r.header("allow").unwrap().contains("OPTIONS"));
    assert_eq!(c.response(GET).text(), "OPTIONS /o 0");
    // The connection goes on.
    c.send(b"GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response(GET).text(), "GET /after 0");
    assert_eq!(up.targets_before_marker(&s, "/marker"), ["/o", "/after"]);
}

/// The response head that opens a tunnel, read byte by byte: what the tunnel carries after
/// it must not be read into the harness's buffer.
fn switch_head(c: &mut Conn) -> Response {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.stream.read(&mut byte).unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    http::parse(&head, GET, false).unwrap().unwrap().0
}

/// An upgrade (HTTP/1.1, `Connection: upgrade` and `Upgrade`) is tunnelled once the
/// upstream answers 101; any other answer is a plain response and the connection goes on.
/// A stray Upgrade (no `Connection: upgrade`, or on HTTP/1.0), or one offering h2c, is a
/// plain request: the probe's got no answer at all.
#[test]
fn upgrades_are_tunnelled_and_stray_ones_are_plain_requests() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let mut c = s.conn();
    c.send(b"GET /ws/chat HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\nUpgrade: testproto\r\n\r\nearly");
    let r = switch_head(&mut c);
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("testproto"));
    assert_eq!(r.header("connection"), Some("upgrade"));
    let mut echo = [0u8; 5];
    c.stream.read_exact(&mut echo).unwrap();
    assert_eq!(
        &echo, b"early",
        "bytes sent with the head go through the tunnel"
    );
    for msg in [&b"ping"[..], b"second"] {
        c.send(msg);
        let mut got = vec![0u8; msg.len()];
        c.stream.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
    let seen = up.wait_for("/ws/chat");
    assert_eq!(seen[0].header("upgrade"), Some("testproto"));
    assert_eq!(seen[0].header("connection"), Some("upgrade"));
    // The client closes: so does the tunnel, on both sides.
    drop(c);
    wait_until("the upstream side of the tunnel to close", WAIT, || {
        (up.closed.load(Ordering::SeqCst) >= 1).then_some(())
    });

    // A switch to a protocol the request did not offer (RFC 9110 §7.8): 502, no tunnel.
    let mut c = s.conn();
    c.send(
        b"GET /ws-unasked HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: testproto\r\n\r\n",
    );
    let r = c.response(GET);
    assert_eq!((r.status, r.header("upgrade")), (502, None));

    // Refused by the upstream (200): a plain answer, then the next request.
    let mut c = s.conn();
    c.send(b"GET /no-ws HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: testproto\r\n\r\n");
    assert_eq!(c.response(GET).text(), "GET /no-ws 0");
    c.send(b"GET /next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response(GET).text(), "GET /next 0");
    c.expect_closed();

    // Stray: no `Connection: upgrade`, and HTTP/1.0.
    let r = http::raw(
        s.addr,
        b"GET /ws/stray HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
        GET,
    );
    assert_eq!(r.text(), "GET /ws/stray 0");
    let r = http::raw(
        s.addr,
        b"GET /ws/old HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        GET,
    );
    assert_eq!(r.text(), "GET /ws/old 0");
    // h2c is never tunnelled (h2c smuggling): the request is served as HTTP/1.1, and the
    // upstream, which would switch to anything asked, is not asked.
    let r = http::raw(
        s.addr,
        b"GET /ws/h2c HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        GET,
    );
    assert_eq!((r.status, r.text().as_str()), (200, "GET /ws/h2c 0"));
    let seen = up.wait_for("/ws/h2c");
    for req in seen.iter().filter(|r| {
        r.target.starts_with("/ws/stray") || r.target == "/ws/old" || r.target == "/ws/h2c"
    }) {
        assert!(req.all("upgrade").is_empty(), "{req:?}");
        assert!(req.all("http2-settings").is_empty(), "{req:?}");
        assert!(req.all("connection").is_empty(), "{req:?}");
    }
    // On a static route an upgrade is ignored.
    let r = http::raw(
        s.addr,
        b"GET /static/app.css HTTP/1.1\r\nHost: t\r\nConnection: upgrade, close\r\nUpgrade: websocket\r\n\r\n",
        GET,
    );
    assert_eq!(r.body, b"body{}");
}

/// A graceful shutdown closes an open tunnel: the server exits without waiting for
/// `--shutdown-timeout` or `--ws-idle-timeout`, both far longer than the wait for the exit.
#[test]
fn an_open_tunnel_is_closed_on_graceful_shutdown() {
    let up = Upstream::start();
    let mut s = proxy(
        &up,
        &["--shutdown-timeout", "600s", "--ws-idle-timeout", "600s"],
    );
    let mut c = s.conn();
    c.send(
        b"GET /ws/live HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    let r = switch_head(&mut c);
    assert_eq!(r.status, 101);
    c.send(b"ping");
    let mut echo = [0u8; 4];
    c.stream.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping", "the tunnel is open");

    s.signal(libc::SIGTERM);
    c.expect_closed();
    wait_until("the upstream side of the tunnel to close", WAIT, || {
        (up.closed.load(Ordering::SeqCst) >= 1).then_some(())
    });
    let status = s.wait_exit(WAIT);
    assert!(status.success(), "{status:?}");
}

/// A body that stalls longer than `--body-timeout` is 408 and closes (the probe's
/// `Content-Length: 100` then silence stayed open for ever); the upstream never sees it.
#[test]
fn a_stalled_body_is_408() {
    let up = Upstream::start();
    let s = proxy(&up, &["--body-timeout", "1s"]);
    for req in [
        &b"POST /stall HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b"[..],
        b"POST /stall HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ] {
        let t0 = Instant::now();
        let mut c = s.conn();
        c.send(req);
        let r = c.response(GET);
        assert_eq!((r.status, r.header("connection")), (408, Some("close")));
        c.expect_closed();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
    s.wait_status("/stall", 408);
    assert_eq!(
        up.targets_before_marker(&s, "/marker"),
        Vec::<String>::new()
    );
}

/// Every head must arrive whole within `--header-timeout`, not only the first (the probe's
/// second head, trickled, lived 75 s), also after a request with a body; an idle
/// connection between requests lives `--keep-alive`, not the header timeout.
#[test]
fn every_head_is_timed_and_idle_connections_are_not() {
    let up = Upstream::start();
    let s = proxy(&up, &["--header-timeout", "1s"]);
    let mut c = s.conn();
    c.stream.set_nodelay(true).unwrap();
    c.send(b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(c.response(GET).text(), "POST /body 2");
    // Idle for longer than the header timeout (the behaviour under test), then a request.
    std::thread::sleep(Duration::from_millis(1500));
    c.send(b"GET /after-idle HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(GET).text(), "GET /after-idle 0");
    let t0 = Instant::now();
    for pair in b"GET /trickle HTTP/1.1\r\nHost: t\r\nX-Slow: "
        .chunks(2)
        .cycle()
    {
        // Fails once the server has closed (the first write after the close is answered
        // by a reset).
        if c.stream.write_all(pair).is_err() {
            break;
        }
        // The trickle is the behaviour under test: 2 bytes every 200 ms, never a whole head.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "connection still open after {:?}",
            t0.elapsed()
        );
    }
    assert!(!up.targets().contains(&"/trickle".to_string()));
}

/// A client that leaves while the upstream works on a request with a body is logged as
/// 499 and the upstream request is cancelled (its connection closed).
#[test]
fn a_client_leaving_during_a_post_is_499() {
    let up = Upstream::start();
    let s = proxy(&up, &[]);
    let mut c = s.conn();
    c.send(b"POST /hang HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndata");
    let seen = up.wait_for("/hang");
    assert_eq!(seen[0].body, b"data");
    drop(c);
    let entry = s.wait_status("/hang", 499);
    assert_eq!(entry["method"], "POST");
    wait_until("the upstream connection to be closed", WAIT, || {
        (up.closed.load(Ordering::SeqCst) >= 1).then_some(())
    });
}

/// A body on a request staticd answers itself (static route, no upstream) is read and
/// dropped, and the connection goes on.
#[test]
fn bodies_on_local_routes_are_read_and_dropped() {
    let s = Staticd::proxy(&[]);
    let mut c: Conn = s.conn();
    c.send(
        b"POST /static/app.css HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc\
          PUT /app/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n\
          GET /static/app.css HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(c.response(GET).status, 405);
    assert_eq!(c.response(GET).status, 404);
    assert_eq!(c.response(GET).body, b"body{}");

    // The answer does not wait for the body (as nginx discards one): it comes while the
    // body is still held back, and the body is read and dropped after it.
    let mut c: Conn = s.conn();
    c.send(b"GET /static/app.css HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf");
    let r = c.response(GET);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}"[..]));
    assert_eq!(r.header("connection"), None);
    c.send(b"-body!GET /static/app.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response(GET).body, b"body{}");
    c.expect_closed();
    // A body that never comes, on a request that closes: answered, then closed.
    let mut c: Conn = s.conn();
    c.send(b"GET /static/app.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
    assert_eq!(c.response(GET).body, b"body{}");
    c.expect_closed();
}

/// `--upstream NAME:PORT`, as compose files name their services: resolved (and kept a few
/// seconds per worker) rather than refused, for a run of new connections.
#[test]
fn an_upstream_given_by_host_name_is_resolved() {
    let up = Upstream::start();
    let port = up.addr.rsplit(':').next().unwrap();
    let name = format!("localhost:{port}");
    let s = Staticd::proxy(&["--upstream", &name]);
    for i in 0..5 {
        let r = s.get(&format!("/named/{i}"), &[("Connection", "close")]);
        assert_eq!(r.status, 200, "request {i}");
    }
    let targets = up.targets();
    for i in 0..5 {
        assert!(targets.contains(&format!("/named/{i}")), "{targets:?}");
    }
}

/// A listener whose accept queue is full (backlog 0 and one connection nobody accepted):
/// the kernel drops further SYNs, so a new connection stays in SYN-SENT until the queue
/// has room and the client's SYN is retransmitted (about 1 s later).
struct Unaccepting {
    listener: std::net::TcpListener,
    _filler: std::net::TcpStream,
    port: u16,
}

impl Unaccepting {
    fn start() -> Unaccepting {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.listen(0).unwrap();
        let listener: std::net::TcpListener = s.into();
        let addr = listener.local_addr().unwrap();
        let filler = std::net::TcpStream::connect(addr).unwrap();
        Unaccepting {
            listener,
            _filler: filler,
            port: addr.port(),
        }
    }

    /// Whether a connection to this listener is in SYN-SENT (`/proc/net/tcp` state 02).
    fn has_syn_sent(&self) -> bool {
        let port = format!(":{:04X}", self.port);
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap()
            .lines()
            .skip(1)
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[2].ends_with(&port) && f[3] == "02"
            })
    }
}

/// The request goes out as the connection opens when the handshake is already done (it
/// is, on loopback); when it is not, staticd waits for it under `--connect-timeout` and
/// then writes the request: it reaches the upstream whole, or the client gets 504.
#[test]
fn an_upstream_connection_still_in_its_handshake_gets_the_request_or_a_504() {
    // Never accepted in time: 504 once --connect-timeout has passed.
    let up = Unaccepting::start();
    let s = Staticd::proxy(&[
        "--upstream",
        &format!("127.0.0.1:{}", up.port),
        "--connect-timeout",
        "500ms",
    ]);
    let r = s.get("/never", &[("Connection", "close")]);
    assert_eq!(r.status, 504, "{r:?}");

    // Accepted after staticd's first SYN was dropped: the request arrives whole.
    let up = Unaccepting::start();
    let s = Staticd::proxy(&["--upstream", &format!("127.0.0.1:{}", up.port)]);
    let addr = s.addr;
    let client = std::thread::spawn(move || {
        http::get(
            addr,
            "/late?x=1",
            &[("Connection", "close"), ("X-Probe", "late")],
        )
    });
    wait_until("staticd's connection waits in SYN-SENT", WAIT, || {
        up.has_syn_sent().then_some(())
    });
    // Make room: take the filler off the queue; staticd's retransmitted SYN is accepted next.
    let (_filler, _) = up.listener.accept().unwrap();
    let (mut c, _) = up.listener.accept().unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "upstream connection closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("get /late?x=1 http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nx-probe: late\r\n"), "{head}");
    c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlate")
        .unwrap();
    let r = client.join().unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"late"[..]), "{r:?}");
}
