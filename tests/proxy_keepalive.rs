//! The proxy's HTTP/1.1 client against a scripted keep-alive upstream (gunicorn's sync
//! workers close every connection, so `proxy_gunicorn` never exercises reuse): connections
//! are reused, an idle connection the upstream closed is replaced without an error, and
//! every framing of a response body (length, chunked across reads, until close, none for
//! HEAD) reaches the client intact.

mod serve_support;

use serve_support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the upstream keeps an idle connection (well below staticd's 1.5 s).
const UPSTREAM_IDLE: Duration = Duration::from_millis(150);

struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn upstream() -> Upstream {
    upstream_with(true)
}

/// `healthy` is what `/health` says (200 or 503); `/who` names it either way.
fn upstream_with(healthy: bool) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve(s, healthy));
        }
    });
    Upstream { addr, accepted }
}

/// One connection: requests until the client closes or it has been idle for UPSTREAM_IDLE.
fn serve(s: TcpStream, healthy: bool) {
    s.set_read_timeout(Some(UPSTREAM_IDLE)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return; // closed, or idle too long: close like gunicorn's keepalive
        }
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
                std::thread::sleep(Duration::from_millis(50));
                w.write_all(b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
                    .unwrap();
            }
            "/until-close" => {
                w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nno length, ")
                    .unwrap();
                w.flush().unwrap();
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

fn start() -> (Fixture, Upstream, Server) {
    let f = Fixture::new();
    let up = upstream();
    let s = Server::start(&f.root, &["--upstream", &up.addr.to_string()]);
    (f, up, s)
}

#[test]
fn connections_reused_and_stale_ones_replaced() {
    let (_f, up, s) = start();
    for _ in 0..20 {
        let r = s.get("/len", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
    // Two workers, each with its own idle list: at most one connection each.
    let n = up.accepted.load(Ordering::SeqCst);
    assert!(n <= 2, "20 requests opened {n} upstream connections");
    // The upstream closes the idle connections; the next requests must not see it.
    std::thread::sleep(UPSTREAM_IDLE * 3);
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
    let (_f, _up, s) = start();
    let r = s.get("/chunked", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    assert!(!r.has("x-trailer"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // An HTTP/1.0 client cannot take chunked: the body ends when the connection does.
    let r = raw(s.addr, b"GET /chunked HTTP/1.0\r\nHost: t\r\n\r\n", false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    assert!(!r.has("transfer-encoding") && !r.has("content-length"));
    // Two streamed responses on one kept-alive connection: each chunked body ends cleanly.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /chunked HTTP/1.1\r\nHost: t\r\n\r\nGET /chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2, "{text}");
    assert_eq!(text.matches("\r\n0\r\n\r\n").count(), 2, "{text}");
    let r = s.get("/until-close", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"no length, ends at close");
    let r = s.request("HEAD", "/len", &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    // After a HEAD (no body on the wire) the connection still frames the next response.
    let r = s.get("/len", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    // 204 and 304 carry no body and no length: the next response on the same connection
    // must still be framed right.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET /204 HTTP/1.1\r\nHost: t\r\n\r\nGET /304 HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /len HTTP/1.1\r\nHost: t\r\n\r\nGET /len HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    let text = String::from_utf8_lossy(&all);
    let heads: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(heads.len(), 4, "{text}");
    assert!(
        heads[0].starts_with("204") && heads[0].contains("x-done: 1"),
        "{text}"
    );
    assert!(
        heads[1].starts_with("304") && heads[1].contains("etag: \"v1\""),
        "{text}"
    );
    for h in &heads[..2] {
        assert!(
            !h.contains("content-length") && !h.contains("transfer-encoding"),
            "{h}"
        );
    }
    assert!(
        heads[2].starts_with("200") && heads[2].contains("content-length: 5"),
        "{text}"
    );
    assert!(
        heads[3].starts_with("200") && heads[3].ends_with("\r\n\r\nhello"),
        "{text}"
    );
    let body = "x".repeat(100_000);
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = raw(s.addr, req.as_bytes(), false);
    assert_eq!(r.status, 201);
    assert_eq!(r.body, body.as_bytes());
}

#[test]
fn active_health_check_takes_a_failing_upstream_out() {
    let f = Fixture::new();
    let (good, sick) = (upstream_with(true), upstream_with(false));
    let s = Server::start(
        &f.root,
        &[
            "--upstream",
            &good.addr.to_string(),
            "--upstream",
            &sick.addr.to_string(),
            "--health-check",
            "/health",
            "--health-interval",
            "100ms",
        ],
    );
    // Its /who answers 200, so only the active check can tell it apart.
    let mut served = Vec::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let r = s.get("/who", &[]);
        assert_eq!(r.status, 200);
        served.push(String::from_utf8(r.body).unwrap());
        if served.len() >= 10 && served[served.len() - 10..].iter().all(|w| w == "healthy") {
            return;
        }
    }
    panic!("the sick upstream kept receiving requests: {served:?}");
}
