//! The proxy's HTTP/1.1 client against a scripted keep-alive upstream (gunicorn's sync
//! workers close every connection, so `proxy_gunicorn` never exercises reuse): connections
//! are reused, an idle connection the upstream closed is replaced without an error, and
//! every framing of a response body (length, chunked across reads, until close, none for
//! HEAD) reaches the client intact.

use crate::common::http::{self, Expect, Framing};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::wait_until;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const GET: Expect = Expect { head: false };
const HEAD: Expect = Expect { head: true };

/// How often an idle upstream connection looks at [`Upstream::close_idle`].
const IDLE_POLL: Duration = Duration::from_millis(20);

struct Upstream {
    addr: SocketAddr,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    /// Connections still open on the upstream's side.
    open: Arc<AtomicUsize>,
    /// Set: idle connections close (as gunicorn's keepalive timeout would), at the moment
    /// the test chooses rather than after a time a loaded machine may exceed mid-test.
    close_idle: Arc<AtomicBool>,
}

fn upstream() -> Upstream {
    upstream_with(true)
}

/// `healthy` is what `/health` says (200 or 503); `/who` names it either way.
fn upstream_with(healthy: bool) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let close_idle = Arc::new(AtomicBool::new(false));
    let (count, live, idle) = (accepted.clone(), open.clone(), close_idle.clone());
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            count.fetch_add(1, Ordering::SeqCst);
            live.fetch_add(1, Ordering::SeqCst);
            let (live, idle) = (live.clone(), idle.clone());
            std::thread::spawn(move || {
                serve(s, healthy, &idle);
                // `serve` owned both handles of the socket: it is closed now.
                live.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Upstream {
        addr,
        accepted,
        open,
        close_idle,
    }
}

/// The next request line; `None` when the client closed, or when the connection is idle
/// (nothing of a request read yet) and `close_idle` is set.
fn request_line(r: &mut BufReader<TcpStream>, close_idle: &AtomicBool) -> Option<String> {
    r.get_ref().set_read_timeout(Some(IDLE_POLL)).unwrap();
    let mut line = String::new();
    let got = loop {
        match r.read_line(&mut line) {
            Ok(0) => break None,
            Ok(_) => break Some(line),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if line.is_empty() && close_idle.load(Ordering::SeqCst) {
                    break None;
                }
            }
            Err(_) => break None,
        }
    };
    // The rest of a request is read without a deadline.
    r.get_ref().set_read_timeout(None).unwrap();
    got
}

/// One connection: requests until the client closes, or until it is idle once
/// `close_idle` is set.
fn serve(s: TcpStream, healthy: bool, close_idle: &AtomicBool) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let Some(line) = request_line(&mut r, close_idle) else {
            return;
        };
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).unwrap();
        let head = method == "HEAD";
        match path.as_str() {
            "/len" => {
                let b = if head { "" } else { "hello" };
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Conn: 1\r\n\r\n{b}"
                )
                .unwrap();
            }
            "/echo" => {
                write!(
                    w,
                    "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .unwrap();
                w.write_all(&body).unwrap();
            }
            "/chunked" => {
                // The last chunk comes in a later read than the head.
                w.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n",
                )
                .unwrap();
                w.flush().unwrap();
                // The pause is the point: staticd must read the body across two reads.
                std::thread::sleep(Duration::from_millis(50));
                w.write_all(b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
                    .unwrap();
            }
            "/until-close" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length, ")
                    .unwrap();
                w.flush().unwrap();
                // The pause is the point: the body arrives in two reads and only the close
                // ends it.
                std::thread::sleep(Duration::from_millis(50));
                w.write_all(b"ends at close").unwrap();
                return;
            }
            "/204" => w
                .write_all(b"HTTP/1.1 204 No Content\r\nX-Done: 1\r\n\r\n")
                .unwrap(),
            "/304" => w
                .write_all(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n")
                .unwrap(),
            "/health" => {
                let status = if healthy {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                write!(w, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
            "/who" => {
                let b = if healthy { "healthy" } else { "sick" };
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                )
                .unwrap();
            }
            _ => w
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .unwrap(),
        }
    }
}

fn start() -> (Upstream, Staticd) {
    let up = upstream();
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);
    (up, s)
}

#[test]
fn connections_reused_and_stale_ones_replaced() {
    let (up, s) = start();
    for _ in 0..20 {
        let r = s.get("/len", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
    // Two workers, each with its own idle list: at most one connection each.
    let n = up.accepted.load(Ordering::SeqCst);
    assert!(n <= 2, "20 requests opened {n} upstream connections");
    // The upstream closes the idle connections (as gunicorn's keepalive timeout does); the
    // next requests must not see it.
    up.close_idle.store(true, Ordering::SeqCst);
    wait_until("the upstream to close its idle connections", WAIT, || {
        (up.open.load(Ordering::SeqCst) == 0).then_some(())
    });
    for _ in 0..4 {
        let r = s.get("/len", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
    assert!(
        up.accepted.load(Ordering::SeqCst) > n,
        "a new connection replaced the closed one"
    );
}

#[test]
fn every_body_framing_arrives_intact() {
    let (_up, s) = start();
    let r = s.get("/chunked", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    assert!(!r.has("x-trailer"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // An HTTP/1.0 client cannot take chunked: the body ends when the connection does.
    let r = http::raw(s.addr, b"GET /chunked HTTP/1.0\r\nHost: t\r\n\r\n", GET);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    assert!(!r.has("transfer-encoding") && !r.has("content-length"));
    assert_eq!(r.framing, Framing::Close);
    // Two streamed responses on one kept-alive connection: each chunked body ends cleanly.
    let mut c = s.conn();
    c.send(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\nGET /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    for _ in 0..2 {
        let r = c.response(GET);
        let text = String::from_utf8_lossy(&r.raw).into_owned();
        assert_eq!(
            (r.version, r.status, r.reason.as_str()),
            (1, 200, "OK"),
            "{text}"
        );
        assert_eq!(r.framing, Framing::Chunked, "{text}");
        assert_eq!(r.body, b"hello world", "{text}");
        assert!(r.raw.ends_with(b"\r\n0\r\n\r\n"), "{text}");
    }
    c.expect_closed();
    let r = s.get("/until-close", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"no length, ends at close");
    let r = s.request("HEAD", "/len", &[], b"");
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    // After a HEAD (no body on the wire) the connection still frames the next response.
    let r = s.get("/len", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    // 204 and 304 carry no body and no length: the next response on the same connection
    // must still be framed right.
    let mut c = s.conn();
    c.send(
        b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /len HTTP/1.1\r\nHost: t\r\n\r\nGET /len HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let no_content = c.response(GET);
    let not_modified = c.response(GET);
    let head = c.response(HEAD);
    let last = c.response(GET);
    c.expect_closed();
    assert_eq!(no_content.status, 204, "{no_content:?}");
    assert_eq!(no_content.header("x-done"), Some("1"), "{no_content:?}");
    assert_eq!(not_modified.status, 304, "{not_modified:?}");
    assert_eq!(
        not_modified.header("etag"),
        Some("\"v1\""),
        "{not_modified:?}"
    );
    for r in [&no_content, &not_modified] {
        assert!(
            !r.has("content-length") && !r.has("transfer-encoding"),
            "{r:?}"
        );
    }
    assert_eq!(
        (head.status, head.header("content-length"), head.body.len()),
        (200, Some("5"), 0),
        "{head:?}"
    );
    assert_eq!(
        (last.status, last.body.as_slice(), last.framing),
        (200, &b"hello"[..], Framing::Length(5)),
        "{last:?}"
    );
    let body = "x".repeat(100_000);
    let r = s.request("POST", "/echo", &[], body.as_bytes());
    assert_eq!(r.status, 201);
    assert_eq!(r.body, body.as_bytes());
}

#[test]
fn active_health_check_takes_a_failing_upstream_out() {
    let (good, sick) = (upstream_with(true), upstream_with(false));
    let s = Staticd::proxy(&[
        "--upstream",
        &good.addr.to_string(),
        "--upstream",
        &sick.addr.to_string(),
        "--health-check",
        "/health",
        "--health-interval",
        "100ms",
    ]);
    // Its /who answers 200, so only the active check can tell it apart. Round-robin
    // alternates while both are in rotation: ten healthy answers in a row mean the sick
    // one is out.
    let mut served = Vec::new();
    wait_until(
        "ten answers in a row from the healthy upstream (the sick one kept receiving requests)",
        WAIT,
        || {
            let r = s.get("/who", &[]);
            assert_eq!(r.status, 200);
            served.push(String::from_utf8(r.body).unwrap());
            let n = served.len();
            (n >= 10 && served[n - 10..].iter().all(|w| w == "healthy")).then_some(())
        },
    );
}
