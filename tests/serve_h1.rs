//! The HTTP/1 fast path (src/serve/h1) and its hand-over to actix-web: pipelining, one
//! connection mixing static and non-static requests, HTTP/1.0 keep-alive, large files sent
//! with `sendfile` to a slow reader, heads split across packets, idle connections on shutdown.

mod serve_support;

use serve_support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One response read off a persistent connection (Content-Length framing, as staticd uses).
fn next(r: &mut BufReader<TcpStream>, head: bool) -> Response {
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; if head || status == 304 { 0 } else { len }];
    r.read_exact(&mut body).unwrap();
    Response {
        status,
        headers,
        body,
    }
}

fn connect(s: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = BufReader::new(c.try_clone().unwrap());
    (c, r)
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let fx = Fixture::new();
    fx.write("a.txt", b"first");
    fx.write("b.txt", b"second");
    let s = Server::start(&fx.root, &[]);
    let (mut c, mut r) = connect(&s);
    c.write_all(
        b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /static/b.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/missing.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/b.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let a = next(&mut r, false);
    assert_eq!((a.status, &a.body[..]), (200, &b"first"[..]));
    let b = next(&mut r, true);
    assert_eq!((b.status, b.header("content-length")), (200, Some("6")));
    let m = next(&mut r, false);
    assert_eq!(m.status, 404);
    let b = next(&mut r, false);
    assert_eq!((b.status, &b.body[..]), (200, &b"second"[..]));
}

/// A non-static request hands the connection to actix-web with the bytes already read
/// (including a pipelined request after it); everything after it is answered there.
#[test]
fn one_connection_mixing_static_and_other_routes() {
    let fx = Fixture::new();
    fx.write("a.txt", b"static bytes");
    let s = Server::start(&fx.root, &[]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(next(&mut r, false).body, b"static bytes");
    c.write_all(
        b"GET /app/page/ HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=7-11\r\n\r\n",
    )
    .unwrap();
    // No upstream: routes outside STATIC_URL are 404, answered by actix.
    assert_eq!(next(&mut r, false).status, 404);
    let part = next(&mut r, false);
    assert_eq!((part.status, &part.body[..]), (206, &b"bytes"[..]));
    assert_eq!(part.header("content-range"), Some("bytes 7-11/12"));
    // A request with a body under STATIC_URL is actix's too: 405, and the body is consumed.
    c.write_all(
        b"POST /static/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let post = next(&mut r, false);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(next(&mut r, false).body, b"static bytes");
}

#[test]
fn a_body_on_the_first_request_goes_to_actix_too() {
    let fx = Fixture::new();
    fx.write("a.txt", b"x");
    let s = Server::start(&fx.root, &[]);
    let (mut c, mut r) = connect(&s);
    c.write_all(
        b"DELETE /static/a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(next(&mut r, false).status, 405);
    assert_eq!(next(&mut r, false).body, b"x");
}

#[test]
fn http_1_0_keep_alive_is_confirmed_and_plain_1_0_closes() {
    let fx = Fixture::new();
    fx.write("a.txt", b"hello");
    let s = Server::start(&fx.root, &[]);
    let (mut c, mut r) = connect(&s);
    for _ in 0..2 {
        c.write_all(b"GET /static/a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let res = next(&mut r, false);
        assert_eq!(res.body, b"hello");
        assert_eq!(res.header("connection"), Some("keep-alive"));
    }
    c.write_all(b"GET /static/a.txt HTTP/1.0\r\n\r\n").unwrap();
    let res = next(&mut r, false);
    assert_eq!(res.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );
}

/// A file larger than the socket buffers, read slowly: sendfile hits EAGAIN and waits for
/// the socket again, many times; the bytes must still be exact, ranges included.
#[test]
fn large_files_to_a_slow_reader_are_byte_exact() {
    let fx = Fixture::new();
    let big = noise(6 << 20, 42);
    fx.write("big.bin", &big);
    let s = Server::start(&fx.root, &[]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    let mut got = Vec::with_capacity(big.len());
    let mut chunk = vec![0; 256 * 1024];
    while got.len() < big.len() {
        let n = r
            .read(&mut chunk[..(big.len() - got.len()).min(256 * 1024)])
            .unwrap();
        assert!(n > 0, "connection closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(got == big, "body differs from the file");
    // Same connection: a range in the middle and a multipart range across it.
    c.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=3000000-3000099\r\n\r\n")
        .unwrap();
    let part = next(&mut r, false);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &big[3_000_000..3_000_100]);
    c.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,-2\r\n\r\n")
        .unwrap();
    let multi = next(&mut r, false);
    assert_eq!(multi.status, 206);
    let ct = multi.header("content-type").unwrap().to_string();
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let parts = multipart(&multi.body, boundary);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1, &big[..2]);
    assert_eq!(parts[1].1, &big[big.len() - 2..]);
}

#[test]
fn a_head_split_across_packets() {
    let fx = Fixture::new();
    fx.write("a.txt", b"pieces");
    let s = Server::start(&fx.root, &[]);
    let (mut c, mut r) = connect(&s);
    c.set_nodelay(true).unwrap();
    for piece in [
        &b"GET /stat"[..],
        b"ic/a.txt HTTP/1.1\r\nHo",
        b"st: t\r\n",
        b"\r\n",
    ] {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(next(&mut r, false).body, b"pieces");
}

/// An idle keep-alive connection must not hold a graceful shutdown for its whole timeout.
#[test]
fn idle_connections_close_on_shutdown() {
    let fx = Fixture::new();
    fx.write("a.txt", b"x");
    let mut s = Server::start(&fx.root, &["--shutdown-timeout", "30"]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(next(&mut r, false).status, 200);
    let t0 = Instant::now();
    s.signal(libc::SIGTERM);
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
    let status = s.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "waited {:?} for an idle connection",
        t0.elapsed()
    );
}

/// A file not in the page cache is read in on the blocking pool before `sendfile` (the
/// worker never waits for the disk); the bytes are the file's.
#[test]
fn a_file_evicted_from_the_page_cache_is_served_whole() {
    use std::os::unix::io::AsRawFd;
    let fx = Fixture::new();
    let big = noise(3 << 20, 7);
    let path = fx.write("cold.bin", &big);
    let s = Server::start(&fx.root, &[]);
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a valid descriptor; DONTNEED only drops clean cached pages.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /static/cold.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let res = next(&mut r, false);
    assert_eq!(res.status, 200);
    assert!(res.body == big, "body differs from the file");
}

/// A client trickling its request head byte by byte is cut off when the head's 5 s are up:
/// each byte does not buy it more time (slowloris).
#[test]
fn a_trickled_head_is_cut_off() {
    let fx = Fixture::new();
    fx.write("a.txt", b"x");
    let s = Server::start(&fx.root, &[]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    let t0 = Instant::now();
    let mut closed = false;
    for b in b"GET /static/a.txt HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        if c.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        if t0.elapsed() > Duration::from_secs(12) {
            break;
        }
    }
    if !closed {
        // The write side may not have noticed yet: the read side says EOF (or reset).
        c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut rest = Vec::new();
        closed = match c.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
    }
    assert!(closed, "connection still open after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(12));
}

/// Every piece of a file response reaches the client at once, the last one included: a
/// multipart answer ends with a part boundary held in memory, and an empty file on disk has
/// no file bytes to push the head out. (Sent with MSG_MORE, either would sit in the kernel
/// for about 200 ms per response.)
#[test]
fn file_responses_end_without_a_held_back_tail() {
    let fx = Fixture::new();
    let data = noise(5000, 3);
    fx.write("r.bin", &data);
    fx.write("empty.txt", b"");
    let s = Server::start(&fx.root, &["--mem-file-max", "0"]);
    let (mut c, mut r) = connect(&s);
    let t0 = Instant::now();
    for _ in 0..10 {
        c.write_all(b"GET /static/r.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,-2\r\n\r\n")
            .unwrap();
        let multi = next(&mut r, false);
        assert_eq!(multi.status, 206);
        assert!(multi.body.ends_with(b"--\r\n"), "closing boundary missing");
        c.write_all(b"GET /static/empty.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let empty = next(&mut r, false);
        assert_eq!((empty.status, empty.body.len()), (200, 0));
    }
    // Ten multipart answers took about 2 s when the tail was held back; milliseconds otherwise.
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "20 responses took {:?}",
        t0.elapsed()
    );
}
