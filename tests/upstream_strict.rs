//! Issue 12, "HTTP/1 that holds at the edge", against a scripted upstream that writes exact
//! bytes and records each of its connections (the requests read on it, and whether staticd
//! closed it): every response nginx would refuse is a 502 on a connection staticd then
//! closes; framing found bad mid-body cuts the client off without a terminating chunk;
//! one Date, no upstream Server; HEAD declares GET's framing; a range of everything is a
//! 200; the media and internal mounts never serve a file outside their root, whatever
//! symlinks sit inside.

use crate::common::http::{self, Expect, Framing};
use crate::common::staticd::Staticd;
use crate::common::upstream::{bytes, Answer, Gate, Upstream};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

const GET: Expect = Expect { head: false };
const HEAD: Expect = Expect { head: true };

/// staticd in front of `up`, one worker (so one idle list: reuse is deterministic).
fn staticd(up: &Upstream, extra: &[&str]) -> Staticd {
    let addr = up.addr.to_string();
    let mut args = vec!["--upstream", addr.as_str(), "--workers", "1"];
    args.extend_from_slice(extra);
    Staticd::proxy(&args)
}

/// `GET path` is answered 502 after one attempt on one new upstream connection, which
/// staticd closes (never reused, never retried).
fn refused(up: &Upstream, s: &Staticd, path: &str) {
    let before = up.seen().len();
    let r = s.get(path, &[]);
    assert_eq!(r.status, 502, "{path}: {}", r.text());
    // Any retry would have been answered before the client's 502: the count is final.
    assert_eq!(up.seen().len(), before + 1, "{path}: retried");
    let c = up.wait_closed(before);
    assert_eq!(c.requests, [format!("GET {path}")], "{path}");
}

/// A response that is fine keeps its connection: the harness can tell reuse from a close.
#[test]
fn a_good_response_keeps_its_connection() {
    let up = Upstream::start(vec![(
        "/ok",
        bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    )]);
    let s = staticd(&up, &[]);
    for _ in 0..3 {
        let r = s.get("/ok", &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].requests.len(), 3);
    assert!(!seen[0].closed);
}

#[test]
fn content_length_with_transfer_encoding_is_502() {
    let up = Upstream::start(vec![
        (
            "/cl-te",
            bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "/te-cl",
            bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 16\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
    ]);
    let s = staticd(&up, &[]);
    refused(&up, &s, "/cl-te");
    refused(&up, &s, "/te-cl");
}

/// nginx's rule, stricter than RFC 9112 §6.3 (see `client::framing`): only `chunked`.
#[test]
fn transfer_encoding_other_than_chunked_is_502() {
    let up = Upstream::start(vec![
        (
            "/gzip-chunked",
            bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "/gzip",
            bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nhello"),
        ),
        (
            "/twice",
            bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "/http10",
            bytes("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "/fine",
            bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        ),
    ]);
    let s = staticd(&up, &[]);
    for p in ["/gzip-chunked", "/gzip", "/twice", "/http10"] {
        refused(&up, &s, p);
    }
    let r = s.get("/fine", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn signed_listed_or_repeated_content_length_is_502() {
    let mut routes = Vec::new();
    let cases = [
        ("/plus", "Content-Length: +5\r\n"),
        ("/minus", "Content-Length: -5\r\n"),
        ("/list", "Content-Length: 5, 5\r\n"),
        ("/hex", "Content-Length: 0x5\r\n"),
        ("/differ", "Content-Length: 5\r\nContent-Length: 6\r\n"),
        ("/same", "Content-Length: 5\r\nContent-Length: 5\r\n"),
        ("/huge", "Content-Length: 99999999999999999999\r\n"),
    ];
    for (p, fields) in cases {
        routes.push((p, bytes(&format!("HTTP/1.1 200 OK\r\n{fields}\r\nhello"))));
    }
    let up = Upstream::start(routes);
    let s = staticd(&up, &[]);
    for (p, _) in cases {
        refused(&up, &s, p);
    }
}

#[test]
fn invalid_chunk_sizes_are_502() {
    let mut routes = Vec::new();
    let cases = [
        ("/plus", "+5"),
        ("/0x", "0x5"),
        ("/nonhex", "zz"),
        ("/space", " 5"),
        ("/overflow", "10000000000000000"),
        ("/trailing-junk", "5z"),
    ];
    for (p, size) in cases {
        routes.push((
            p,
            bytes(&format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nhello\r\n0\r\n\r\n"
            )),
        ));
    }
    let up = Upstream::start(routes);
    let s = staticd(&up, &[]);
    for (p, _) in cases {
        refused(&up, &s, p);
    }
}

#[test]
fn a_101_nobody_asked_for_is_502() {
    let up = Upstream::start(vec![(
        "/switch",
        bytes(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ),
    )]);
    let s = staticd(&up, &[]);
    refused(&up, &s, "/switch");
}

#[test]
fn a_head_over_64_kib_is_502() {
    let pad = |n: usize| "x".repeat(n);
    let up = Upstream::start(vec![
        (
            "/big",
            bytes(&format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 2\r\n\r\nok",
                pad(70_000)
            )),
        ),
        (
            "/fits",
            bytes(&format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\nContent-Length: 2\r\n\r\nok",
                pad(60_000)
            )),
        ),
    ]);
    let s = staticd(&up, &[]);
    refused(&up, &s, "/big");
    let r = s.get("/fits", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("x-pad").map(str::len), Some(60_000));
}

/// Reads from `c` until `needle` has arrived; all bytes so far.
fn read_until(c: &mut TcpStream, buf: &mut Vec<u8>, needle: &[u8]) {
    let mut chunk = [0u8; 4096];
    while !buf.windows(needle.len()).any(|w| w == needle) {
        let n = c.read(&mut chunk).expect("read");
        assert!(
            n > 0,
            "closed before {:?}: {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A small body is read with its head (one write to the client), so one that never comes
/// is the head's timeout: a 504 with nothing of the upstream's answer sent, and the
/// upstream connection closed. A body over 64 KiB, or one the upstream marks
/// `X-Accel-Buffering: no`, still has its head relayed at once.
#[test]
fn small_bodies_are_awaited_whole_unless_long_or_unbuffered() {
    let stall = Gate::default();
    let large = Gate::default();
    let unbuffered = Gate::default();
    let up = Upstream::start(vec![
        (
            "/stall",
            Answer::Gated(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf".to_vec(),
                stall.clone(),
                b"never".to_vec(),
            ),
        ),
        (
            "/large",
            Answer::Gated(
                b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n".to_vec(),
                large.clone(),
                vec![b'x'; 70000],
            ),
        ),
        (
            "/unbuffered",
            Answer::Gated(
                b"HTTP/1.1 200 OK\r\nX-Accel-Buffering: no\r\nContent-Length: 10\r\n\r\nhalf"
                    .to_vec(),
                unbuffered.clone(),
                b"-later".to_vec(),
            ),
        ),
    ]);
    let s = staticd(&up, &["--read-timeout", "1s"]);
    let r = s.get("/stall", &[]);
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(!r.text().contains("half"), "{}", r.text());
    // The upstream sees the close once it is past its gate.
    stall.open();
    let c = up.wait_closed(0);
    assert_eq!(c.requests, ["GET /stall"]);
    // Over the limit, or unbuffered: the head (and what came with it) arrives while the
    // upstream still holds the rest of the body.
    for (path, gate, seen) in [
        ("/large", &large, &b"\r\n\r\n"[..]),
        ("/unbuffered", &unbuffered, b"\r\n\r\nhalf"),
    ] {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(http::READ_TIMEOUT)).unwrap();
        c.write_all(&http::request_bytes("GET", path, &[], b""))
            .unwrap();
        let mut buf = Vec::new();
        read_until(&mut c, &mut buf, seen);
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"), "{path}: {buf:?}");
        let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        assert!(!head.contains("x-accel-buffering"), "{path}: {head}");
        gate.open();
    }
}

/// An upstream that closes before a small body is whole: nothing of its answer has gone out
/// yet (such a body is awaited with its head), so the client gets a 502, as for any other
/// broken response, rather than a head promising bytes that never follow.
#[test]
fn a_small_body_cut_short_is_502() {
    // Closed six bytes short.
    let addr = crate::common::upstream::answer_and_close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
    );
    let s = Staticd::proxy(&["--upstream", &addr, "--workers", "1"]);
    let r = s.get("/cut", &[]);
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("half"), "{}", r.text());
    s.stderr.wait("the cause in the log", |l| {
        l.contains("closed") && l.contains("6 bytes")
    });
}

/// A bad chunk size after the head and a first chunk were relayed: the client's connection
/// is closed without the terminating chunk (its body is visibly truncated, never complete),
/// and the upstream connection is dropped. On the fast path (GET) and on actix (POST).
#[test]
fn bad_framing_mid_body_cuts_the_client_off() {
    let gate_get = Gate::default();
    let gate_post = Gate::default();
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec();
    let bad = b"+6\r\n world\r\n0\r\n\r\n".to_vec();
    let up = Upstream::start(vec![
        (
            "GET /mid",
            Answer::Gated(head.clone(), gate_get.clone(), bad.clone()),
        ),
        ("POST /mid", Answer::Gated(head, gate_post.clone(), bad)),
    ]);
    let s = staticd(&up, &[]);
    for (method, gate, body) in [("GET", &gate_get, &b""[..]), ("POST", &gate_post, b"x=1")] {
        let before = up.seen().len();
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(http::READ_TIMEOUT)).unwrap();
        c.write_all(&http::request_bytes(
            method,
            "/mid",
            &[("Connection", "keep-alive")],
            body,
        ))
        .unwrap();
        let mut buf = Vec::new();
        read_until(&mut c, &mut buf, b"hello");
        gate.open();
        // Everything until staticd closes the connection.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest)
            .expect("staticd closes the connection");
        buf.extend_from_slice(&rest);
        let text = String::from_utf8_lossy(&buf).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{method}: {text}");
        assert!(!text.contains("world"), "{method}: {text}");
        assert!(!text.ends_with("0\r\n\r\n"), "{method}: terminated: {text}");
        match http::parse(&buf, GET, true) {
            Err(http::Error::Truncated {
                framing: Framing::Chunked,
                ..
            }) => {}
            other => panic!("{method}: not a truncated chunked body: {other:?}\n{text}"),
        }
        let seen = up.wait_closed(before);
        assert_eq!(seen.requests, [format!("{method} /mid")]);
    }
}

/// Exactly one Date (staticd's, as nginx hides the upstream's) and no upstream Server, on
/// the fast path (GET) and on actix (POST).
#[test]
fn one_date_and_no_upstream_server() {
    let answer = "HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nServer: scripted/1.0\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok";
    let up = Upstream::start(vec![("/dated", bytes(answer))]);
    let s = staticd(&up, &[]);
    for method in ["GET", "POST"] {
        let r = s.request(method, "/dated", &[], b"");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]), "{method}");
        let date = r.header("date").expect("a Date");
        assert!(
            !date.contains("2001"),
            "{method}: the upstream's Date: {date}"
        );
        assert!(httpdate::parse_http_date(date).is_ok(), "{method}: {date}");
        assert!(!r.has("server"), "{method}: {:?}", r.all("server"));
        assert_eq!(r.header("x-app"), Some("1"));
    }
}

/// HEAD declares what GET's answer declares: the upstream's length, or (for a stream of
/// unknown length) chunked; never a `Content-Length: 0` nobody sent. Fast path and actix.
#[test]
fn head_mirrors_get_framing() {
    let gate = Gate::default();
    let up = Upstream::start(vec![
        (
            "GET /stream",
            Answer::Gated(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".to_vec(),
                gate.clone(),
                b"0\r\n\r\n".to_vec(),
            ),
        ),
        // What gunicorn answers to HEAD of a streamed response: no length, no coding.
        (
            "HEAD /stream",
            bytes("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
        ),
        (
            "HEAD /chunked",
            bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        ),
        (
            "HEAD /sized",
            bytes("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        ),
        ("POST /form", bytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")),
    ]);
    let s = staticd(&up, &[]);
    // GET of a body still being produced goes out chunked.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(http::READ_TIMEOUT)).unwrap();
    c.write_all(&http::request_bytes("GET", "/stream", &[], b""))
        .unwrap();
    let mut buf = Vec::new();
    read_until(&mut c, &mut buf, b"hello");
    gate.open();
    c.read_to_end(&mut buf).unwrap();
    let (get, _) = http::parse(&buf, GET, true).unwrap().unwrap();
    assert_eq!(
        (get.framing, get.body.as_slice()),
        (Framing::Chunked, &b"hello"[..])
    );
    let check = |r: &http::Response, path: &str| match path {
        "/sized" => {
            assert_eq!(r.header("content-length"), Some("5"), "{path}: {r:?}");
            assert!(!r.has("transfer-encoding"), "{path}: {r:?}");
        }
        _ => {
            assert!(!r.has("content-length"), "{path}: {r:?}");
            assert_eq!(
                r.header("transfer-encoding"),
                Some("chunked"),
                "{path}: {r:?}"
            );
        }
    };
    for path in ["/stream", "/chunked", "/sized"] {
        let r = s.request("HEAD", path, &[], b"");
        assert_eq!(r.status, 200);
        check(&r, path);
    }
    // On actix: a request with a body hands the connection over; the HEADs after it are
    // answered there.
    let mut c = s.conn();
    let keep = [("Connection", "keep-alive")];
    c.send(&http::request_bytes("POST", "/form", &keep, b"a=1"));
    assert_eq!(c.response(GET).status, 200);
    for path in ["/stream", "/sized"] {
        c.send(&http::request_bytes("HEAD", path, &keep, b""));
        let r = c.response(HEAD);
        assert_eq!(r.status, 200);
        check(&r, path);
    }
}

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-MOUNT";

/// A mount directory with real files, symlinks that stay inside, and symlinks (to a file,
/// to a directory, absolute and relative, chained) that lead out to `outside/`.
fn mount_tree(base: &Path, name: &str) -> std::path::PathBuf {
    let dir = base.join(name);
    let out = base.join("outside");
    std::fs::create_dir_all(dir.join("up")).unwrap();
    std::fs::create_dir_all(out.join("private")).unwrap();
    std::fs::write(out.join("secret.txt"), SECRET).unwrap();
    std::fs::write(out.join("private/secret.txt"), SECRET).unwrap();
    std::fs::write(dir.join("up/a.txt"), "inside\n").unwrap();
    let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, dir.join(at)).unwrap();
    link(&out.join("private"), "linkdir"); // absolute, to a directory
    link(Path::new("../outside/private"), "rel-linkdir");
    link(Path::new("linkdir"), "chain");
    link(&out.join("secret.txt"), "link.txt"); // absolute, to a file
    link(Path::new("../outside/secret.txt"), "up/rel-link.txt");
    link(Path::new("up/a.txt"), "inside.txt");
    link(Path::new("up"), "insidedir");
    dir
}

const ESCAPES: &[&str] = &[
    "linkdir/secret.txt",
    "rel-linkdir/secret.txt",
    "chain/secret.txt",
    "link.txt",
    "up/rel-link.txt",
    "insidedir/rel-link.txt",
];

#[test]
fn media_mount_never_leaves_its_root() {
    let t = tempfile::tempdir().unwrap();
    let media = mount_tree(t.path(), "media");
    let s = Staticd::proxy(&[
        "--media-root",
        media.to_str().unwrap(),
        "--media-url",
        "/media/",
    ]);
    for p in ["up/a.txt", "inside.txt", "insidedir/a.txt"] {
        let r = s.get(&format!("/media/{p}"), &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"inside\n"[..]),
            "{p}"
        );
    }
    for p in ESCAPES {
        for method in ["GET", "HEAD"] {
            let r = s.request(method, &format!("/media/{p}"), &[], b"");
            assert_eq!(r.status, 404, "{method} {p}");
            assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET), "{p}");
        }
    }
}

#[test]
fn internal_mount_never_leaves_its_root() {
    let t = tempfile::tempdir().unwrap();
    let protected = mount_tree(t.path(), "protected");
    // `/dl/<p>` answers with X-Accel-Redirect to `/protected/<p>`.
    let routes: Vec<(String, Answer)> = ["up/a.txt", "inside.txt", "insidedir/a.txt"]
        .iter()
        .chain(ESCAPES)
        .map(|p| {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/{p}\r\nContent-Length: 0\r\n\r\n"
            );
            (format!("/dl/{p}"), bytes(&answer))
        })
        .collect();
    let up = Upstream::start(routes);
    let mount = format!("/protected/={}", protected.display());
    let s = staticd(&up, &["--internal", &mount]);
    for p in ["up/a.txt", "inside.txt", "insidedir/a.txt"] {
        let r = s.get(&format!("/dl/{p}"), &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"inside\n"[..]),
            "{p}"
        );
    }
    for p in ESCAPES {
        let r = s.get(&format!("/dl/{p}"), &[]);
        assert_eq!(r.status, 404, "{p}");
        assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET), "{p}");
    }
}

/// `bytes=0-` and `bytes=0-78` of a 79-byte file are a 200 with all of it, in STATIC_ROOT,
/// the media mount and an internal mount alike; one byte short is still a 206.
#[test]
fn a_range_of_everything_is_200() {
    let data: Vec<u8> = (0..79u8).map(|i| b'a' + i % 26).collect();
    let t = tempfile::tempdir().unwrap();
    for d in ["static", "media", "protected"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
        std::fs::write(t.path().join(d).join("r.txt"), &data).unwrap();
    }
    let up = Upstream::start(vec![(
        "/dl",
        bytes("HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/r.txt\r\nContent-Length: 0\r\n\r\n"),
    )]);
    let (media, protected) = (t.path().join("media"), t.path().join("protected"));
    let mount = format!("/protected/={}", protected.display());
    let s = Staticd::serve(
        &t.path().join("static"),
        &[
            "--upstream",
            &up.addr.to_string(),
            "--media-root",
            media.to_str().unwrap(),
            "--media-url",
            "/media/",
            "--internal",
            &mount,
        ],
    );
    for url in ["/static/r.txt", "/media/r.txt", "/dl"] {
        for range in [
            "bytes=0-",
            "bytes=0-78",
            "bytes=0-1000",
            "bytes=-79",
            "bytes=0-9,10-",
        ] {
            let r = s.get(url, &[("Range", range)]);
            assert_eq!(r.status, 200, "{url} {range}");
            assert_eq!(r.body, data, "{url} {range}");
            assert!(!r.has("content-range"), "{url} {range}");
            assert_eq!(r.header("accept-ranges"), Some("bytes"), "{url} {range}");
        }
        let r = s.get(url, &[("Range", "bytes=0-77")]);
        assert_eq!(r.status, 206, "{url}");
        assert_eq!(r.header("content-range"), Some("bytes 0-77/79"), "{url}");
        assert_eq!(r.body, &data[..78], "{url}");
    }
}
