//! Issue 14 point 7, compression of upstream responses: a real Django page decodes to the
//! same bytes in br, zstd and gzip (and its weak ETag still revalidates against Django); a
//! scripted upstream pins the exact behaviour: Vary merged, strong ETags made weak,
//! Content-Length dropped, and every response that must pass untouched (no-transform,
//! already encoded, HEAD, 304, ranges, short, excluded types and paths, HTTP/1.0, off);
//! a page the upstream writes in two halves is decodable half by half, the first before the
//! upstream writes the second; HTTP/2 behaves as HTTP/1.1.

use crate::common::django::Stack;
use crate::common::fixture::{gz, text, unbr, ungz};
use crate::common::http::{self, Expect, Framing, Response};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::upstream::{bytes, Answer, Gate, Upstream};
use crate::common::wait_until;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn unzstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(data).expect("a whole zstd frame")
}

/// A whole body's decoder.
type Decode = fn(&[u8]) -> Vec<u8>;

/// Each coding with its decoder.
const CODINGS: [(&str, Decode); 3] = [("br", unbr), ("zstd", unzstd), ("gzip", ungz)];

/// What a browser sends.
const BROWSER: &str = "gzip, deflate, br, zstd";

/// The Vary values as one lower-case list.
fn vary(r: &Response) -> Vec<String> {
    r.all("vary")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

fn varies_by_encoding_once(r: &Response) -> bool {
    vary(r).iter().filter(|t| *t == "accept-encoding").count() == 1
}

#[test]
fn a_django_page_decodes_to_the_same_bytes_in_every_coding() {
    let stack = Stack::start(&[]);
    let plain = stack.staticd.get("/page/", &[]);
    assert_eq!(plain.status, 200, "{}", plain.text());
    assert!(plain.body.len() > 20_000, "{}", plain.body.len());
    assert_eq!(plain.header("content-encoding"), None);
    assert!(varies_by_encoding_once(&plain), "{:?}", plain.headers);
    let etag = plain.header("etag").expect("the page's ETag").to_string();
    assert!(etag.starts_with('"'), "{etag}");

    for (coding, decode) in CODINGS {
        let r = stack.staticd.get("/page/", &[("Accept-Encoding", coding)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert!(varies_by_encoding_once(&r), "{coding}: {:?}", r.headers);
        assert_eq!(r.header("etag"), Some(format!("W/{etag}").as_str()));
        assert!(
            r.body.len() < plain.body.len() / 3,
            "{coding}: {}",
            r.body.len()
        );
        assert_eq!(decode(&r.body), plain.body, "{coding}");
    }
    // A browser that takes all three gets zstd (as few bytes as br 2, less CPU); one
    // without zstd gets br.
    let r = stack.staticd.get("/page/", &[("Accept-Encoding", BROWSER)]);
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    let r = stack
        .staticd
        .get("/page/", &[("Accept-Encoding", "gzip, deflate, br")]);
    assert_eq!(r.header("content-encoding"), Some("br"));

    // The weak tag a client holds revalidates (Django compares weakly): the 304 passes
    // through as Django sent it.
    let weak = format!("W/{etag}");
    let r = stack.staticd.get(
        "/page/",
        &[("Accept-Encoding", "br"), ("If-None-Match", &weak)],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.framing, Framing::None);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
}

/// A 200 with `fields` (CRLF-terminated lines) and `body` declared by Content-Length.
fn answer(fields: &str, body: &[u8]) -> Answer {
    let mut b = format!(
        "HTTP/1.1 200 OK\r\n{fields}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    b.extend_from_slice(body);
    Answer::Bytes(b)
}

const HTML: &str = "Content-Type: text/html; charset=utf-8\r\n";

/// The scripted upstream's routes shared by the HTTP/1.1 and HTTP/2 tests.
fn routes(page: &[u8]) -> Vec<(&'static str, Answer)> {
    let encoded = gz(page);
    vec![
        (
            "/page",
            answer(&format!("{HTML}ETag: \"v1\"\r\nVary: Cookie\r\n"), page),
        ),
        (
            "/no-transform",
            answer(
                &format!("{HTML}ETag: \"v1\"\r\nCache-Control: max-age=60, no-transform\r\n"),
                page,
            ),
        ),
        (
            "/encoded",
            answer(
                &format!("{HTML}Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"),
                &encoded,
            ),
        ),
        (
            "/not-modified",
            bytes("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n"),
        ),
        ("/short", answer(HTML, &page[..511])),
        ("/long-enough", answer(HTML, &page[..512])),
        ("/image", answer("Content-Type: image/png\r\n", page)),
        (
            "/events",
            answer("Content-Type: text/event-stream\r\n", page),
        ),
        (
            "/json",
            answer("Content-Type: application/problem+json\r\n", page),
        ),
    ]
}

fn page() -> Vec<u8> {
    text(20_000, "compress")
}

#[test]
fn compressed_responses_carry_vary_a_weak_etag_and_no_upstream_length() {
    let page = page();
    let up = Upstream::start(routes(&page));
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);
    for (coding, decode) in CODINGS {
        let r = s.get("/page", &[("Accept-Encoding", coding)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding));
        assert_eq!(r.all("vary"), ["Cookie, Accept-Encoding"]);
        assert_eq!(r.header("etag"), Some("W/\"v1\""));
        // Framed by the compressed length (the whole body came with the head) or chunked:
        // never the upstream's 20000, which the strict client would have caught.
        assert_ne!(r.framing, Framing::Length(page.len()));
        assert_eq!(decode(&r.body), page, "{coding}");
    }
    let r = s.get("/json", &[("Accept-Encoding", "zstd")]);
    assert_eq!(r.header("content-encoding"), Some("zstd"));
    assert_eq!(unzstd(&r.body), page);
    let r = s.get("/page", &[("Accept-Encoding", "br;q=0.5, gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));

    // Not accepted: identity, but the Vary that tells caches it depends.
    for ae in [None, Some("identity"), Some("deflate"), Some("gzip;q=0")] {
        let h: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let r = s.get("/page", &h);
        assert_eq!(r.header("content-encoding"), None, "{ae:?}");
        assert_eq!(r.all("vary"), ["Cookie, Accept-Encoding"], "{ae:?}");
        assert_eq!(r.header("etag"), Some("\"v1\""), "{ae:?}");
        assert_eq!(
            (r.framing, r.body.as_slice()),
            (Framing::Length(page.len()), page.as_slice())
        );
    }
}

/// The request asks for gzip and gets the upstream's answer byte for byte, its headers
/// untouched (no Content-Encoding, no Vary added, the strong ETag, the upstream's length).
fn untouched(s: &Staticd, method: &str, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut h = vec![("Accept-Encoding", "gzip, br, zstd")];
    h.extend_from_slice(extra);
    let r = s.request(method, path, &h, b"");
    assert_eq!(r.header("content-encoding"), None, "{method} {path}");
    assert!(
        !vary(&r).contains(&"accept-encoding".to_string()),
        "{method} {path}: {:?}",
        r.headers
    );
    r
}

#[test]
fn responses_that_must_not_change_pass_untouched() {
    let page = page();
    let up = Upstream::start(routes(&page));
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);

    let r = untouched(&s, "GET", "/no-transform", &[]);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(
        (r.framing, r.body.as_slice()),
        (Framing::Length(page.len()), page.as_slice())
    );

    let r = s.get("/encoded", &[("Accept-Encoding", "br, gzip")]);
    assert_eq!(r.all("content-encoding"), ["gzip"]);
    assert_eq!(r.all("vary"), ["Accept-Encoding"]);
    assert_eq!(r.body, gz(&page));

    let r = untouched(&s, "GET", "/not-modified", &[]);
    assert_eq!((r.status, r.framing), (304, Framing::None));
    assert_eq!(r.header("etag"), Some("\"v1\""));

    let r = untouched(&s, "GET", "/short", &[]);
    assert_eq!(r.body, &page[..511]);
    let r = s.get("/long-enough", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(ungz(&r.body), &page[..512]);

    for path in ["/image", "/events"] {
        let r = untouched(&s, "GET", path, &[]);
        assert_eq!(r.body, page, "{path}");
    }

    // HEAD carries the fields GET's answer does (RFC 9110 §9.3.2): the coding, Vary and the
    // weak ETag; no Content-Length, which only the compressed body would tell (never the
    // upstream's 20000, which no GET gets).
    let head = s.request("HEAD", "/page", &[("Accept-Encoding", "gzip")], b"");
    let get = s.get("/page", &[("Accept-Encoding", "gzip")]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for name in ["content-encoding", "etag", "content-type"] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    assert_eq!(head.header("etag"), Some("W/\"v1\""));
    assert_eq!(head.header("content-length"), None);
    assert!(varies_by_encoding_once(&head), "{:?}", head.headers);
    // Without an acceptable coding, HEAD and GET are the upstream's, length and all.
    let head = s.request("HEAD", "/page", &[], b"");
    assert_eq!(
        (
            head.header("content-encoding"),
            head.header("content-length")
        ),
        (None, Some("20000"))
    );
}

/// A Range request, and the 206 that answers it, are the upstream's business: its bytes.
#[test]
fn ranges_pass_through_untouched() {
    let page = page();
    let partial = format!(
        "HTTP/1.1 206 Partial Content\r\n{HTML}Content-Range: bytes 0-9/{}\r\nContent-Length: 10\r\n\r\n{}",
        page.len(),
        String::from_utf8_lossy(&page[..10])
    );
    let mut routes = routes(&page);
    routes.push(("/ranged", bytes(&partial)));
    let up = Upstream::start(routes);
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);
    let r = untouched(&s, "GET", "/ranged", &[("Range", "bytes=0-9")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/20000"));
    assert_eq!(r.body, &page[..10]);
    // An upstream that ignores Range answers 200 with everything: still not compressed,
    // so a client's If-Range and Range keep meaning the upstream's bytes.
    let r = untouched(&s, "GET", "/page", &[("Range", "bytes=0-9")]);
    assert_eq!((r.status, r.body.as_slice()), (200, page.as_slice()));
    assert_eq!(r.header("etag"), Some("\"v1\""));
}

#[test]
fn http_1_0_clients_get_the_upstream_bytes() {
    let page = page();
    let up = Upstream::start(routes(&page));
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);
    let r = http::raw(
        s.addr,
        b"GET /page HTTP/1.0\r\nAccept-Encoding: gzip, br, zstd\r\n\r\n",
        Expect::default(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(
        (r.framing, r.body.as_slice()),
        (Framing::Length(page.len()), page.as_slice())
    );
    assert_eq!(r.all("vary"), ["Cookie, Accept-Encoding"]);
    // Kept alive when asked: nothing was traded for compression.
    let mut c = s.conn();
    for _ in 0..2 {
        c.send(b"GET /page HTTP/1.0\r\nConnection: keep-alive\r\nAccept-Encoding: gzip\r\n\r\n");
        let r = c.response(Expect::default());
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(r.body, page);
    }
}

#[test]
fn options_exclude_types_and_paths_and_turn_it_off() {
    let page = page();
    let mut routes = routes(&page);
    routes.push(("/account/keys", answer(HTML, &page)));
    routes.push(("/%61ccount/keys", answer(HTML, &page)));
    routes.push(("/accounts", answer(HTML, &page)));
    routes.push(("/data.csv", answer("Content-Type: text/csv\r\n", &page)));
    routes.push((
        "/custom",
        answer("Content-Type: application/x-custom\r\n", &page),
    ));
    routes.push(("/ten-k", answer(HTML, &page[..10_000])));
    let up = Upstream::start(routes);
    let addr = up.addr.to_string();
    let s = Staticd::proxy(&[
        "--upstream",
        &addr,
        "--no-proxy-compress-path",
        "/account/",
        "--no-proxy-compress-type",
        "text/csv",
        "--proxy-compress-type",
        "application/x-custom",
        "--proxy-compress-type",
        "text/event-stream",
        "--proxy-compress-min-length",
        "10k",
    ]);
    for path in ["/account/keys", "/%61ccount/keys", "/data.csv"] {
        let r = untouched(&s, "GET", path, &[]);
        assert_eq!(r.body, page, "{path}");
    }
    assert_eq!(untouched(&s, "GET", "/ten-k", &[]).body, &page[..10_000]);
    for path in ["/accounts", "/custom", "/events", "/page"] {
        let r = s.get(path, &[("Accept-Encoding", "gzip")]);
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(ungz(&r.body), page, "{path}");
    }

    let off = Staticd::proxy(&["--upstream", &addr, "--no-proxy-compress"]);
    for path in ["/page", "/json", "/long-enough"] {
        untouched(&off, "GET", path, &[]);
    }

    let e = std::process::Command::new(env!("CARGO_BIN_EXE_staticd"))
        .args(["serve", "--root", ".", "--proxy-compress-type", "html"])
        .output()
        .unwrap();
    assert!(!e.status.success());
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        err.contains("--proxy-compress-type") && err.contains("\"html\" is not a media type"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Streaming: the first half must be decodable before the upstream writes the second.

/// The complete chunks of a chunked body read so far (and whether the last one came).
fn dechunk_prefix(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            return (out, true);
        }
        let start = eol + 2;
        if b.len() < start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
}

/// What a streaming decoder makes of `data` so far (the stream need not be complete).
fn decode_prefix(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut read = |r: &mut dyn Read| {
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
    };
    match coding {
        "br" => read(&mut brotli::Decompressor::new(data, 4096)),
        "zstd" => read(&mut zstd::stream::read::Decoder::new(data).unwrap()),
        "gzip" => read(&mut flate2::read::GzDecoder::new(data)),
        other => panic!("{other}"),
    }
    out
}

/// A response read from a raw socket as it arrives: its head, then its chunks.
struct Arriving {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Arriving {
    fn get(s: &Staticd, path: &str, coding: &str) -> Arriving {
        let mut sock = TcpStream::connect(s.addr).unwrap();
        sock.write_all(&http::request_bytes(
            "GET",
            path,
            &[("Accept-Encoding", coding)],
            b"",
        ))
        .unwrap();
        // Short reads, so the deadline loop below notices progress; not a wait.
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Arriving {
            sock,
            buf: Vec::new(),
        }
    }

    /// Reads what is there (nothing is fine).
    fn pump(&mut self) -> bool {
        let mut b = [0u8; 16384];
        match self.sock.read(&mut b) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn head(&self) -> Option<String> {
        let end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        Some(String::from_utf8_lossy(&self.buf[..end + 4]).into_owned())
    }

    /// The compressed bytes of the complete chunks so far, and whether the body ended.
    fn body(&self) -> (Vec<u8>, bool) {
        let head = self.head().map_or(0, |h| h.len());
        dechunk_prefix(&self.buf[head..])
    }

    /// Waits (with a deadline) until the decoded body so far is `want`.
    fn wait_decoded(&mut self, coding: &str, want: &[u8], what: &str) {
        wait_until(what, WAIT, || {
            self.pump();
            (decode_prefix(coding, &self.body().0) == want).then_some(())
        });
    }
}

#[test]
fn a_page_written_in_halves_is_decodable_half_by_half() {
    let page = page();
    let (first, second) = page.split_at(page.len() / 2);
    let events = [
        b"id: 1\nevent: tick\ndata: {\"n\": 1}\n\n".as_slice(),
        b"id: 2\nevent: tick\ndata: {\"n\": 2}\n\n",
    ];
    let chunk = |b: &[u8]| [format!("{:x}\r\n", b.len()).as_bytes(), b, b"\r\n"].concat();
    let mut routes = Vec::new();
    let mut gates = Vec::new();
    for (coding, _) in CODINGS {
        // Chunked, as Django's StreamingHttpResponse under gunicorn.
        let gate = Gate::default();
        let head = format!("HTTP/1.1 200 OK\r\n{HTML}Transfer-Encoding: chunked\r\n\r\n");
        let rest = [chunk(second), b"0\r\n\r\n".to_vec()].concat();
        let path: &'static str = Box::leak(format!("/slow-{coding}").into_boxed_str());
        routes.push((
            path,
            Answer::Gated(
                [head.as_bytes(), &chunk(first)].concat(),
                gate.clone(),
                rest,
            ),
        ));
        gates.push((coding, path, gate, page.clone(), first.to_vec()));
    }
    // A declared length over the 64 KiB staticd awaits whole, written slowly, and an
    // opted-in event stream.
    let big = text(100_000, "compress");
    let (big_first, big_second) = big.split_at(big.len() / 2);
    let gate = Gate::default();
    let head = format!(
        "HTTP/1.1 200 OK\r\n{HTML}Content-Length: {}\r\n\r\n",
        big.len()
    );
    routes.push((
        "/slow-sized",
        Answer::Gated(
            [head.as_bytes(), big_first].concat(),
            gate.clone(),
            big_second.to_vec(),
        ),
    ));
    gates.push(("gzip", "/slow-sized", gate, big.clone(), big_first.to_vec()));
    let gate = Gate::default();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    routes.push((
        "/sse",
        Answer::Gated(
            [head.as_bytes(), &chunk(events[0])].concat(),
            gate.clone(),
            [chunk(events[1]), b"0\r\n\r\n".to_vec()].concat(),
        ),
    ));
    gates.push(("br", "/sse", gate, events.concat(), events[0].to_vec()));

    let up = Upstream::start(routes);
    let s = Staticd::proxy(&[
        "--upstream",
        &up.addr.to_string(),
        "--proxy-compress-type",
        "text/event-stream",
    ]);
    for (coding, path, gate, whole, first) in gates {
        let mut a = Arriving::get(&s, path, coding);
        a.wait_decoded(
            coding,
            &first,
            &format!("{path}: the first part, decodable"),
        );
        let head = a.head().unwrap().to_ascii_lowercase();
        assert!(
            head.contains(&format!("\r\ncontent-encoding: {coding}\r\n")),
            "{head}"
        );
        assert!(
            head.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{head}"
        );
        assert!(!head.contains("content-length"), "{head}");
        assert!(!a.body().1, "{path}: ended before the upstream finished");
        gate.open();
        wait_until(&format!("{path}: the end"), WAIT, || {
            let more = a.pump();
            (a.body().1 || !more).then_some(())
        });
        let (body, ended) = a.body();
        assert!(ended, "{path}: no last chunk");
        let decode = CODINGS.iter().find(|(c, _)| *c == coding).unwrap().1;
        assert_eq!(
            decode(&body),
            whole,
            "{path}: the whole stream, with its trailer"
        );
    }
}

/// A declared length of up to 64 KiB whose body comes after its head (gunicorn writes them
/// apart) is awaited, as nginx buffers it: the client gets head and body together, the
/// body compressed whole and framed by its compressed length, not chunked.
#[test]
fn a_small_sized_body_written_after_its_head_is_compressed_whole() {
    let page = page();
    let gate = Gate::default();
    let head = format!(
        "HTTP/1.1 200 OK\r\n{HTML}Content-Length: {}\r\n\r\n",
        page.len()
    );
    let up = Upstream::start(vec![(
        "/late-body",
        Answer::Gated(head.into_bytes(), gate.clone(), page.clone()),
    )]);
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);
    let mut a = Arriving::get(&s, "/late-body", "gzip");
    // The upstream has the request (and writes the head before it waits on the gate).
    wait_until("the upstream to read the request", WAIT, || {
        up.seen()
            .iter()
            .any(|c| c.requests.iter().any(|r| r == "GET /late-body"))
            .then_some(())
    });
    gate.open();
    let r = wait_until("the whole answer", WAIT, || {
        a.pump();
        let got = http::parse(&a.buf, Expect { head: false }, false);
        got.expect("a well-formed answer").map(|(r, _)| r)
    });
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.framing, Framing::Length(r.body.len()));
    assert_eq!(ungz(&r.body), page);
}

// ---------------------------------------------------------------------------------------
// HTTP/2 (h2c prior knowledge): the actix front end, the same answers.

#[test]
fn http2_answers_as_http1_does() {
    let page = page();
    let gate = Gate::default();
    let (first, second) = page.split_at(page.len() / 2);
    let mut routes = routes(&page);
    let chunk = |b: &[u8]| [format!("{:x}\r\n", b.len()).as_bytes(), b, b"\r\n"].concat();
    routes.push((
        "/slow",
        Answer::Gated(
            [
                format!("HTTP/1.1 200 OK\r\n{HTML}Transfer-Encoding: chunked\r\n\r\n").as_bytes(),
                &chunk(first),
            ]
            .concat(),
            gate.clone(),
            [chunk(second), b"0\r\n\r\n".to_vec()].concat(),
        ),
    ));
    let up = Upstream::start(routes);
    let s = Staticd::proxy(&["--upstream", &up.addr.to_string()]);
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let get = |path: &str, ae: &str| {
        let r = client
            .get(s.url(path))
            .header("Accept-Encoding", ae)
            .send()
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        r
    };
    let values = |r: &reqwest::blocking::Response, name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    for (coding, decode) in CODINGS {
        let r = get("/page", coding);
        assert_eq!(r.status(), 200);
        assert_eq!(values(&r, "content-encoding"), [coding]);
        assert_eq!(values(&r, "vary"), ["Cookie, Accept-Encoding"]);
        assert_eq!(values(&r, "etag"), ["W/\"v1\""]);
        assert_ne!(values(&r, "content-length"), ["20000"]);
        assert_eq!(decode(&r.bytes().unwrap()), page, "{coding}");
    }
    for path in ["/no-transform", "/short", "/image"] {
        let r = get(path, "gzip, br, zstd");
        assert_eq!(
            values(&r, "content-encoding"),
            Vec::<String>::new(),
            "{path}"
        );
        assert_eq!(values(&r, "vary"), Vec::<String>::new(), "{path}");
    }
    let r = get("/encoded", "br, gzip");
    assert_eq!(values(&r, "content-encoding"), ["gzip"]);
    assert_eq!(values(&r, "vary"), ["Accept-Encoding"]);
    assert_eq!(r.bytes().unwrap(), gz(&page));
    let r = client
        .head(s.url("/page"))
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(values(&r, "content-encoding"), ["gzip"]);
    assert_eq!(values(&r, "content-length"), Vec::<String>::new());
    let r = client
        .get(s.url("/page"))
        .header("Accept-Encoding", "gzip")
        .header("Range", "bytes=0-9")
        .send()
        .unwrap();
    assert_eq!(values(&r, "content-encoding"), Vec::<String>::new());
    assert_eq!(r.bytes().unwrap(), page);

    // Streaming: the first half's DATA arrives and decodes before the upstream goes on (a
    // read that never returns fails at the client's timeout).
    let mut r = get("/slow", "zstd");
    assert_eq!(values(&r, "content-encoding"), ["zstd"]);
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    while decode_prefix("zstd", &got) != first {
        let n = r
            .read(&mut buf)
            .expect("the first half, before the upstream goes on");
        assert!(n > 0, "the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    gate.open();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(unzstd(&got), page);
}
