//! Operations: h2c, access logs, graceful shutdown, HTTP/1.0 and keep-alive.

mod serve_support;

use serve_support::*;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn h2c_prior_knowledge() {
    let fx = Fixture::new();
    let css = text(3000, "h2");
    fx.write_with_variants("app.css", &css);
    let s = Server::start(&fx.root, &[]);
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = client
        .get(s.url("/static/app.css"))
        .header("Accept-Encoding", "br")
        .send()
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "br");
    assert_eq!(r.headers().get_all("vary").iter().count(), 1);
    assert_eq!(unbr(&r.bytes().unwrap()), css);
    let r = client.head(s.url("/static/app.css")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "3000");
    let r = client
        .get(s.url("/static/app.css"))
        .header("Range", "bytes=0-9")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().unwrap()[..], &css[..10]);
    // HTTP/1.1 still works on the same port.
    assert_eq!(s.get("/static/app.css", &[]).status, 200);
}

#[test]
fn keep_alive_and_http_1_0() {
    let fx = Fixture::new();
    fx.write("a.txt", b"hello");
    let s = Server::start(&fx.root, &[]);
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..3 {
        c.write_all(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).unwrap();
        let resp = String::from_utf8_lossy(&buf[..n]);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("hello"), "{resp}");
    }
    let r = raw(s.addr, b"GET /static/a.txt HTTP/1.0\r\n\r\n", false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
}

#[test]
fn combined_access_log() {
    let fx = Fixture::new();
    fx.write("a.txt", b"hello");
    let s = Server::start_with(&fx.root, &[], true);
    s.get(
        "/static/a.txt?x=1",
        &[("User-Agent", "probe/1.0"), ("Referer", "http://r/")],
    );
    s.request("HEAD", "/static/a.txt", &[]);
    s.get("/static/nope\"quoted", &[]);
    let log = s.stop_and_stdout();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    let l = lines[0];
    assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
    assert!(
        l.ends_with("] \"GET /static/a.txt?x=1 HTTP/1.1\" 200 5 \"http://r/\" \"probe/1.0\""),
        "{l}"
    );
    assert!(
        lines[1].contains("\"HEAD /static/a.txt HTTP/1.1\" 200 0 \"-\" \"-\""),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("\" 404 "), "{}", lines[2]);
    assert!(
        !lines[2].contains("nope\"quoted"),
        "quotes are escaped: {}",
        lines[2]
    );
}

#[test]
fn json_access_log() {
    let fx = Fixture::new();
    fx.write("a.txt", b"hello");
    let s = Server::start_with(&fx.root, &["--log-format", "json"], true);
    s.get("/static/a.txt", &[("User-Agent", "probe/1.0")]);
    let log = s.stop_and_stdout();
    let line = log
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no log: {log:?}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["uri"], "/static/a.txt");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 5);
    assert_eq!(v["user_agent"], "probe/1.0");
    assert_eq!(v["remote"], "127.0.0.1");
    assert!(v["request_time"].as_f64().unwrap() >= 0.0);
}

/// SIGTERM and SIGINT both drain: a response in flight completes, then the process exits 0.
#[test]
fn graceful_shutdown_drains_in_flight_requests() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let fx = Fixture::new();
        let big = noise(16 << 20, 9);
        fx.write("big.bin", &big);
        let mut s = Server::start(&fx.root, &["--shutdown-timeout", "10"]);
        let mut c = std::net::TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Small receive buffer so the server cannot push everything before the signal.
        c.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 4096];
        let n = c.read(&mut first).unwrap();
        assert!(n > 0);
        s.signal(sig);
        std::thread::sleep(Duration::from_millis(300));
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        let mut all = first[..n].to_vec();
        all.extend_from_slice(&rest);
        let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(
            all.len() - head_end,
            big.len(),
            "signal {sig}: body cut short"
        );
        let status = s.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "signal {sig}: {status:?}");
        // New connections are refused once stopped.
        assert!(std::net::TcpStream::connect(s.addr).is_err());
    }
}
