//! staticd's HTTP/1 loop (src/serve/h1): pipelining, one connection mixing static and
//! non-static requests and requests with bodies, HTTP/1.0 keep-alive, large files sent
//! with `sendfile` to a slow reader, heads split across packets, idle connections on shutdown.

use crate::common::fixture::{noise, StaticRoot};
use crate::common::http::{self, multipart, Expect};
use crate::common::staticd::Staticd;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const GET: Expect = Expect { head: false };
const HEAD: Expect = Expect { head: true };

#[test]
fn pipelined_requests_are_answered_in_order() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"first");
    fx.write("b.txt", b"second");
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    c.send(
        b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /static/b.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/missing.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/b.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let a = c.response(GET);
    assert_eq!((a.status, &a.body[..]), (200, &b"first"[..]));
    let b = c.response(HEAD);
    assert_eq!((b.status, b.header("content-length")), (200, Some("6")));
    let m = c.response(GET);
    assert_eq!(m.status, 404);
    let b = c.response(GET);
    assert_eq!((b.status, &b.body[..]), (200, &b"second"[..]));
}

/// Static and non-static requests, and requests with bodies, share one connection; the
/// answers come in order (the body of a request answered locally is read and dropped).
#[test]
fn one_connection_mixing_static_and_other_routes() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"static bytes");
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    c.send(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(GET).body, b"static bytes");
    c.send(
        b"GET /app/page/ HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /static/a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=7-11\r\n\r\n",
    );
    // No upstream: routes outside STATIC_URL are 404.
    assert_eq!(c.response(GET).status, 404);
    let part = c.response(GET);
    assert_eq!((part.status, &part.body[..]), (206, &b"bytes"[..]));
    assert_eq!(part.header("content-range"), Some("bytes 7-11/12"));
    // A request with a body under STATIC_URL: 405, and the body is consumed.
    c.send(
        b"POST /static/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let post = c.response(GET);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(c.response(GET).body, b"static bytes");
}

#[test]
fn a_chunked_body_on_the_first_request_is_consumed() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"x");
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    c.send(
        b"DELETE /static/a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(c.response(GET).status, 405);
    assert_eq!(c.response(GET).body, b"x");
}

#[test]
fn http_1_0_keep_alive_is_confirmed_and_plain_1_0_closes() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    for _ in 0..2 {
        c.send(b"GET /static/a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let res = c.response(GET);
        assert_eq!(res.body, b"hello");
        assert_eq!(res.header("connection"), Some("keep-alive"));
    }
    c.send(b"GET /static/a.txt HTTP/1.0\r\n\r\n");
    let res = c.response(GET);
    assert_eq!(res.header("connection"), Some("close"));
    // Closed after the answer, with nothing more sent.
    c.expect_closed();
}

/// A file larger than the socket buffers, read slowly: sendfile hits EAGAIN and waits for
/// the socket again, many times; the bytes must still be exact, ranges included.
#[test]
fn large_files_to_a_slow_reader_are_byte_exact() {
    let fx = StaticRoot::new();
    let big = noise(6 << 20, 42);
    fx.write("big.bin", &big);
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    c.send(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    // Read by hand, slowly, and parsed by the strict client's parser once complete.
    let mut got = Vec::with_capacity(big.len() + 4096);
    let mut chunk = vec![0; 256 * 1024];
    let whole = loop {
        if let Some((r, used)) =
            http::parse(&got, GET, false).unwrap_or_else(|e| panic!("bad response: {e}"))
        {
            assert_eq!(used, got.len(), "bytes after the response");
            break r;
        }
        let n = c.stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
        // The slow reader is the behaviour under test (not a wait for something): the
        // socket buffers fill and sendfile meets EAGAIN again and again.
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!((whole.version, whole.status), (1, 200));
    assert!(whole.body == big, "body differs from the file");
    // Same connection: a range in the middle and a multipart range across it.
    c.send(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=3000000-3000099\r\n\r\n");
    let part = c.response(GET);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &big[3_000_000..3_000_100]);
    c.send(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,-2\r\n\r\n");
    let multi = c.response(GET);
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
    let fx = StaticRoot::new();
    fx.write("a.txt", b"pieces");
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    c.stream.set_nodelay(true).unwrap();
    for piece in [
        &b"GET /stat"[..],
        b"ic/a.txt HTTP/1.1\r\nHo",
        b"st: t\r\n",
        b"\r\n",
    ] {
        c.send(piece);
        // The pause is the behaviour under test: each piece leaves as a packet of its own
        // and the server reads the head in several parts.
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(c.response(GET).body, b"pieces");
}

/// An idle keep-alive connection must not hold a graceful shutdown for its whole timeout.
#[test]
fn idle_connections_close_on_shutdown() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"x");
    let mut s = Staticd::serve(&fx.root, &["--shutdown-timeout", "30"]);
    let mut c = s.conn();
    c.send(b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(GET).status, 200);
    let t0 = Instant::now();
    s.signal(libc::SIGTERM);
    c.expect_closed();
    let status = s.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "waited {:?} for an idle connection",
        t0.elapsed()
    );
}

/// A lingering close (the read after refusing a request whose body was still coming) ends
/// on a graceful shutdown: the server exits while the client is still sending, without
/// waiting for the linger's 30 s or `--shutdown-timeout`.
#[test]
fn a_lingering_close_ends_on_shutdown() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"x");
    let mut s = Staticd::serve(
        &fx.root,
        &["--shutdown-timeout", "600s", "--max-body", "1k"],
    );
    let mut c = s.conn();
    c.send(b"POST /static/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
    assert_eq!(c.response(GET).status, 413);
    // The client goes on sending its body: each piece keeps the linger going (it ends after
    // 5 s without one, or 30 s in all), until the server closes and a write fails.
    let mut w = c.stream.try_clone().unwrap();
    let stop = Instant::now() + Duration::from_secs(60);
    let writer = std::thread::spawn(move || {
        while Instant::now() < stop && w.write_all(&[b'x'; 1024]).is_ok() {
            // The trickled body is the behaviour under test (what keeps the linger going).
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // The server is lingering: it reads what comes.
    s.wait_access("the 413 logged", |v| v["status"] == 413);
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    writer.join().unwrap();
}

/// A file not in the page cache is read in on the blocking pool before `sendfile` (the
/// worker never waits for the disk); the bytes are the file's.
#[test]
fn a_file_evicted_from_the_page_cache_is_served_whole() {
    use std::os::unix::io::AsRawFd;
    let fx = StaticRoot::new();
    let big = noise(3 << 20, 7);
    let path = fx.write("cold.bin", &big);
    let s = Staticd::serve(&fx.root, &[]);
    let f = std::fs::File::open(&path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a valid descriptor; DONTNEED only drops clean cached pages.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let mut c = s.conn();
    c.send(b"GET /static/cold.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let res = c.response(GET);
    assert_eq!(res.status, 200);
    assert!(res.body == big, "body differs from the file");
}

/// A client trickling its request head byte by byte is cut off when the head's 5 s are up:
/// each byte does not buy it more time (slowloris).
#[test]
fn a_trickled_head_is_cut_off() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"x");
    let s = Staticd::serve(&fx.root, &[]);
    let mut c = s.conn();
    let t0 = Instant::now();
    for b in b"GET /static/a.txt HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        // A write fails once the server has closed (the first one after the close is
        // answered by a reset).
        if c.stream.write_all(&[*b]).is_err() {
            break;
        }
        // The trickle is the behaviour under test: one byte every 250 ms, never a whole head.
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "connection still open after {:?}",
            t0.elapsed()
        );
    }
}

/// Every piece of a file response reaches the client at once, the last one included: a
/// multipart answer ends with a part boundary held in memory, and an empty file on disk has
/// no file bytes to push the head out. (Sent with MSG_MORE, either would sit in the kernel
/// for about 200 ms per response.)
#[test]
fn file_responses_end_without_a_held_back_tail() {
    let fx = StaticRoot::new();
    let data = noise(5000, 3);
    fx.write("r.bin", &data);
    fx.write("empty.txt", b"");
    let s = Staticd::serve(&fx.root, &["--mem-file-max", "0"]);
    let mut c = s.conn();
    let t0 = Instant::now();
    for _ in 0..10 {
        c.send(b"GET /static/r.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,-2\r\n\r\n");
        let multi = c.response(GET);
        assert_eq!(multi.status, 206);
        assert!(multi.body.ends_with(b"--\r\n"), "closing boundary missing");
        c.send(b"GET /static/empty.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let empty = c.response(GET);
        assert_eq!((empty.status, empty.body.len()), (200, 0));
    }
    // Ten multipart answers took about 2 s when the tail was held back; milliseconds otherwise.
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "20 responses took {:?}",
        t0.elapsed()
    );
}
