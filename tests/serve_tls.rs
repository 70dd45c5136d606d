//! `staticd serve` over HTTPS with certificates from files (issue 13): the `--https-bind`
//! listener as independent clients see it. `openssl s_client` for protocol versions, ALPN,
//! the certificate chosen by SNI and resumption; curl (HTTP/1.1 and HTTP/2) and nghttp
//! (HTTP/2 only) for the answers, which must be the same whatever the protocol; the plain
//! listener's 308 redirect and HSTS; a scripted upstream and real Django for what reaches
//! the upstream (bodies, `X-Forwarded-Proto: https`); certificates replaced on disk and on
//! SIGHUP while a connection stays open.

use crate::common::django::{SampleProject, Stack};
use crate::common::echo::Upstream;
use crate::common::fixture::{br, noise, text, StaticRoot};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::tls::{fetch, nghttp, open_tls, s_client, Fetched, TestCa, REQUEST};
use crate::common::wait_until;
use std::io::{Read, Write};
use std::path::PathBuf;

const CSS: &str = "css/app.0123456789ab.css";
const BIG: &str = "big.bin";
const A: &str = "a.staticd.test";
const B: &str = "b.staticd.test";

/// A test CA, two certificates (`a.staticd.test`, the first so the default, and
/// `b.staticd.test`) and a STATIC_ROOT: a small CSS with its br/gzip/zstd variants (held in
/// memory) and a 300 KB file (above `--mem-file-max`: read from disk at each request).
struct Site {
    _tmp: tempfile::TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    certs: Vec<staticd::tls::CertPair>,
    fx: StaticRoot,
    css: Vec<u8>,
    big: Vec<u8>,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new("staticd test CA");
    let ca_file = ca.write(tmp.path());
    let certs = vec![
        ca.leaf(&[A, "localhost"]).write(tmp.path(), "a"),
        ca.leaf(&[B]).write(tmp.path(), "b"),
    ];
    let fx = StaticRoot::new();
    let css = text(3000, "tls");
    let big = noise(300_000, 13);
    fx.write_with_variants(CSS, &css);
    fx.write(BIG, &big);
    fx.manifest(&[("css/app.css", CSS)]);
    Site {
        _tmp: tmp,
        ca,
        ca_file,
        certs,
        fx,
        css,
        big,
    }
}

impl Site {
    /// The TLS flags for both certificates.
    fn tls_args(&self) -> Vec<String> {
        let mut args = vec!["--https-bind".to_string(), "127.0.0.1:0".to_string()];
        for p in &self.certs {
            args.push("--tls-cert".into());
            args.push(p.cert.display().to_string());
            args.push("--tls-key".into());
            args.push(p.key.display().to_string());
        }
        args
    }

    fn serve(&self, extra: &[&str]) -> Staticd {
        let mut args = self.tls_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Staticd::serve(&self.fx.root, &args)
    }

    fn ca(&self) -> &str {
        self.ca_file.to_str().unwrap()
    }

    /// curl over HTTPS to `name` (resolved to the listener), trusting only the test CA.
    fn curl(&self, s: &Staticd, http: &str, name: &str, path: &str, extra: &[&str]) -> Fetched {
        let port = https_port(s);
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}{path}");
        let mut args = vec![http, "--cacert", self.ca(), "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        fetch(&args)
    }
}

fn https_port(s: &Staticd) -> u16 {
    s.https_addr.expect("an HTTPS listener").port()
}

fn static_url(rel: &str) -> String {
    format!("/static/{rel}")
}

#[test]
fn tls_versions_alpn_sni_and_resumption_on_the_https_listener() {
    let site = site();
    let s = site.serve(&[]);
    let port = https_port(&s);
    // TLS 1.0 and 1.1: refused by the server (SECLEVEL=0 so the client offers them at all).
    for flag in ["-tls1", "-tls1_1"] {
        let c = s_client(
            port,
            &[flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", A],
        );
        assert!(
            !c.ok && c.text.contains("SSL alert number"),
            "{flag}:\n{}",
            c.text
        );
    }
    // TLS 1.2 and 1.3, verified against the test CA; without ALPN the HTTP/1 loop answers
    // s_client's `GET /` (no upstream: 404).
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let c = s_client(
            port,
            &[
                flag,
                "-servername",
                A,
                "-CAfile",
                site.ca(),
                "-verify_hostname",
                A,
            ],
        );
        assert!(c.ok && c.verified(), "{flag}:\n{}", c.text);
        assert_eq!(c.protocol().as_deref(), Some(version), "{}", c.text);
        assert_eq!(c.alpn(), None);
        assert!(c.text.contains("HTTP/1.1 404 Not Found"), "{}", c.text);
    }
    // ALPN: h2 when offered, else http/1.1 (served by the HTTP/1 loop).
    let c = s_client(port, &["-servername", A, "-alpn", "h2,http/1.1"]);
    assert_eq!(c.alpn().as_deref(), Some("h2"), "{}", c.text);
    let c = s_client(port, &["-servername", A, "-alpn", "http/1.1"]);
    assert_eq!(c.alpn().as_deref(), Some("http/1.1"), "{}", c.text);
    assert!(c.text.contains("HTTP/1.1 404 Not Found"), "{}", c.text);
    let c = s_client(port, &["-servername", A, "-alpn", "spdy/3"]);
    assert!(!c.ok && c.alpn().is_none(), "{}", c.text);

    // SNI picks the certificate; an unknown or missing name gets the first.
    let san = |args: &[&str]| s_client(port, args).leaf().unwrap().1;
    assert_eq!(san(&["-servername", B]), format!("DNS:{B}"));
    assert_eq!(san(&["-servername", A]), format!("DNS:{A}, DNS:localhost"));
    assert_eq!(
        san(&["-servername", "other.test"]),
        format!("DNS:{A}, DNS:localhost")
    );
    assert_eq!(san(&["-noservername"]), format!("DNS:{A}, DNS:localhost"));
    // curl checks the name against the certificate it gets for each.
    for name in [A, B] {
        let r = site.curl(&s, "--http1.1", name, &static_url(CSS), &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, site.css.as_slice()));
    }

    // Resumption: TLS 1.3 and 1.2 tickets, TLS 1.2 session IDs.
    let dir = tempfile::tempdir().unwrap();
    let sess = dir.path().join("session.pem");
    let sess = sess.to_str().unwrap();
    for (what, args) in [
        ("TLS 1.3 ticket", &["-tls1_3"][..]),
        ("TLS 1.2 ticket", &["-tls1_2"][..]),
        ("TLS 1.2 session ID", &["-tls1_2", "-no_ticket"][..]),
    ] {
        let _ = std::fs::remove_file(sess);
        let mut first = vec!["-servername", A, "-sess_out", sess];
        first.extend_from_slice(args);
        let c = s_client(port, &first);
        assert!(c.ok && !c.reused(), "{what}, first:\n{}", c.text);
        let mut again = vec!["-servername", A, "-sess_in", sess];
        again.extend_from_slice(args);
        let c = s_client(port, &again);
        assert!(c.reused(), "{what}: not resumed:\n{}", c.text);
        assert!(c.text.contains("HTTP/1.1 404 Not Found"), "{}", c.text);
    }
}

/// What must be the same whatever the protocol: status, coding, length, validators, range.
fn essentials(r: &Fetched) -> Vec<(String, Option<String>)> {
    let mut v = vec![("status".to_string(), Some(r.status.to_string()))];
    for h in [
        "content-encoding",
        "content-length",
        "content-type",
        "content-range",
        "etag",
        "vary",
        "cache-control",
        "strict-transport-security",
    ] {
        v.push((h.to_string(), r.header(h).map(str::to_string)));
    }
    v
}

#[test]
fn http2_over_tls_answers_as_https_1_1_does() {
    let site = site();
    let s = site.serve(&["--hsts", "600"]);
    let port = https_port(&s);
    let css = static_url(CSS);
    let big = static_url(BIG);
    let etag = site
        .curl(&s, "--http1.1", A, &css, &["-H", "Accept-Encoding: br"])
        .header("etag")
        .unwrap()
        .to_string();
    let inm = format!("If-None-Match: {etag}");
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "br negotiated",
            &css,
            vec!["Accept-Encoding: gzip, br".into()],
        ),
        ("identity", &css, vec![]),
        (
            "not modified",
            &css,
            vec!["Accept-Encoding: br".into(), inm],
        ),
        ("a file read from disk", &big, vec![]),
        ("a range of it", &big, vec!["Range: bytes=1000-2999".into()]),
        ("a suffix range", &big, vec!["Range: bytes=-100".into()]),
        ("not found", "/static/missing.css", vec![]),
    ];
    // Every client says what it accepts (nghttp asks for gzip unless told otherwise).
    for (what, path, mut headers) in cases {
        if !headers.iter().any(|h| h.starts_with("Accept-Encoding")) {
            headers.push("Accept-Encoding: identity".into());
        }
        let mut curl_args: Vec<&str> = Vec::new();
        for h in &headers {
            curl_args.extend(["-H", h.as_str()]);
        }
        let h1 = site.curl(&s, "--http1.1", A, path, &curl_args);
        let h2 = site.curl(&s, "--http2", A, path, &curl_args);
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|h| {
                let (k, v) = h.split_once(": ").unwrap();
                (k, v)
            })
            .collect();
        let ng = nghttp(&format!("https://127.0.0.1:{port}{path}"), &pairs, None);
        assert_eq!(h1.version, "1.1", "{what}");
        assert_eq!(h2.version, "2", "{what}");
        assert_eq!(essentials(&h1), essentials(&h2), "{what}: curl h1 vs h2");
        assert_eq!(
            essentials(&h1),
            essentials(&ng),
            "{what}: curl h1 vs nghttp"
        );
        assert_eq!(h1.body, h2.body, "{what}: body, curl h1 vs h2");
        assert_eq!(h1.body, ng.body, "{what}: body, curl h1 vs nghttp");
        assert_eq!(h1.header("strict-transport-security"), Some("max-age=600"));
    }
    // And the answers are the right ones.
    let r = site.curl(&s, "--http2", A, &css, &["-H", "Accept-Encoding: br"]);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.body, br(&site.css));
    let r = site.curl(&s, "--http2", A, &big, &["-H", "Range: bytes=1000-2999"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-2999/300000"));
    assert_eq!(r.body, &site.big[1000..3000]);
    let r = site.curl(&s, "--http1.1", A, &big, &[]);
    assert_eq!(r.body, site.big);
    let inm = format!("If-None-Match: {etag}");
    let r = site.curl(
        &s,
        "--http2",
        A,
        &css,
        &["-H", "Accept-Encoding: br", "-H", &inm],
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("content-length"), None);
    // Several ranges (multipart) over HTTPS/1.1: file pieces between memory parts.
    let r = site.curl(
        &s,
        "--http1.1",
        A,
        &big,
        &["-H", "Range: bytes=0-9,200000-200009"],
    );
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_string();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let parts = crate::common::http::multipart(&r.body, boundary);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].1, &site.big[..10]);
    assert_eq!(parts[1].1, &site.big[200_000..200_010]);
}

#[test]
fn the_plain_listener_redirects_with_308_and_hsts_goes_only_over_tls() {
    let site = site();
    let s = site.serve(&["--hsts", "31536000", "--hsts-include-subdomains"]);
    let port = https_port(&s);
    let plain = s.addr.port();
    let sts = "max-age=31536000; includeSubDomains";
    // Path and query kept, the host without its port, the HTTPS port added (not 443).
    for method in ["GET", "POST", "HEAD"] {
        let r = s.request(
            method,
            "/static/x/y.css?a=1&b=%20",
            &[("Host", &format!("{A}:{plain}"))],
            b"",
        );
        assert_eq!(r.status, 308, "{method}");
        assert_eq!(
            r.header("location"),
            Some(format!("https://{A}:{port}/static/x/y.css?a=1&b=%20").as_str()),
            "{method}"
        );
        assert!(!r.has("strict-transport-security"), "HSTS over plain HTTP");
    }
    // h2c on the plain listener (prior knowledge, as nghttp speaks to http://) too.
    let r = nghttp(
        &format!("http://127.0.0.1:{plain}/static/x?a=1"),
        &[(":authority", &format!("{A}:{plain}"))],
        None,
    );
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{A}:{port}/static/x?a=1").as_str())
    );
    assert_eq!(r.header("strict-transport-security"), None);
    // CONNECT and `OPTIONS *` name no path: answered as without HTTPS, not redirected.
    for (req, status) in [
        (
            format!("CONNECT {A}:443 HTTP/1.1\r\nHost: {A}:443\r\n\r\n"),
            405,
        ),
        (format!("OPTIONS * HTTP/1.1\r\nHost: {A}\r\n\r\n"), 200),
    ] {
        let mut c = s.conn();
        c.send(req.as_bytes());
        let r = c.response(crate::common::http::Expect { head: false });
        assert_eq!(r.status, status, "{req}");
    }
    // curl follows it to HTTPS (the same method and body: 308).
    let url = format!("http://{A}:{plain}{}", static_url(CSS));
    let resolve_plain = format!("{A}:{plain}:127.0.0.1");
    let resolve_tls = format!("{A}:{port}:127.0.0.1");
    let r = fetch(&[
        "-L",
        "--cacert",
        site.ca(),
        "--resolve",
        &resolve_plain,
        "--resolve",
        &resolve_tls,
        &url,
    ]);
    assert_eq!((r.status, r.body.as_slice()), (200, site.css.as_slice()));
    assert_eq!(r.header("strict-transport-security"), Some(sts));
    // HSTS on every HTTPS answer, errors included, over both protocols.
    for http in ["--http1.1", "--http2"] {
        let r = site.curl(&s, http, A, "/static/missing.css", &[]);
        assert_eq!(r.status, 404);
        assert_eq!(r.header("strict-transport-security"), Some(sts), "{http}");
    }

    // --no-redirect-http: the plain listener serves; no HSTS there. Without --hsts: none.
    let s = site.serve(&["--no-redirect-http"]);
    let r = s.get(&static_url(CSS), &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, site.css.as_slice()));
    assert!(!r.has("strict-transport-security"));
    let r = site.curl(&s, "--http2", A, &static_url(CSS), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);
}

#[test]
fn proxied_requests_over_tls_carry_their_bodies_and_x_forwarded_proto_https() {
    let site = site();
    let up = Upstream::start();
    let s = site.serve(&["--upstream", &up.addr, "--no-redirect-http"]);
    let port = https_port(&s);
    let dir = tempfile::tempdir().unwrap();
    let body = noise(100_000, 5);
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let data = format!("@{}", file.display());
    let spoof = "X-Forwarded-Proto: http";
    for (i, http) in ["--http1.1", "--http2"].into_iter().enumerate() {
        let path = format!("/form/{i}?q=1");
        let r = site.curl(
            &s,
            http,
            A,
            &path,
            &[
                "--data-binary",
                &data,
                "-H",
                spoof,
                "-H",
                "Content-Type: x/y",
            ],
        );
        assert_eq!(r.status, 200, "{http}");
        assert_eq!(r.body, format!("POST {path} 100000").as_bytes(), "{http}");
        let seen = up.wait_for(&path);
        let seen = seen.iter().find(|x| x.target == path).unwrap();
        assert_eq!(
            seen.body, body,
            "{http}: the body reached the upstream whole"
        );
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"), "{http}");
        assert_eq!(seen.header("host"), Some(format!("{A}:{port}").as_str()));
        assert_eq!(seen.header("content-type"), Some("x/y"));
    }
    let path = "/form/nghttp";
    let r = nghttp(
        &format!("https://127.0.0.1:{port}{path}"),
        &[("x-forwarded-proto", "http")],
        Some(&file),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, format!("POST {path} 100000").as_bytes());
    let seen = up.wait_for(path);
    let seen = seen.iter().find(|x| x.target == path).unwrap();
    assert_eq!(seen.body, body);
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    // The plain listener's requests stay `http`.
    let r = s.request("POST", "/form/plain", &[], b"abc");
    assert_eq!(r.text(), "POST /form/plain 3");
    let seen = up.wait_for("/form/plain");
    let seen = seen.iter().find(|x| x.target == "/form/plain").unwrap();
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    // A WebSocket-style tunnel over TLS: the HTTP/1 loop splices the TLS client with the
    // upstream (reads and writes of one TLS connection interleaved).
    let (mut tls, _) = open_tls(&site.ca.cert_pem, port, A, &[b"http/1.1"]);
    tls.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.staticd.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let want_head = b"\r\n\r\n";
    wait_until("the 101 and the early bytes' echo", WAIT, || {
        let n = tls.read(&mut chunk).ok()?;
        got.extend_from_slice(&chunk[..n]);
        let end = got.windows(4).position(|w| w == want_head)?;
        (got[end + 4..] == *b"early").then_some(())
    });
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    for msg in [&b"ping"[..], &noise(50_000, 9)[..]] {
        tls.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        tls.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }
}

#[test]
fn django_sees_requests_over_tls_as_secure() {
    let site = site();
    let mut args = site.tls_args();
    args.push("--no-redirect-http".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let st = Stack::on(SampleProject::new(), &args);
    let s = &st.staticd;
    // sample_project sets SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https").
    for http in ["--http1.1", "--http2"] {
        let r = site.curl(s, http, A, "/echo/", &["-H", "X-Forwarded-Proto: http"]);
        assert_eq!(r.status, 200, "{http}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["is_secure"], true, "{http}: {v}");
        assert_eq!(v["scheme"], "https", "{http}: {v}");
        assert_eq!(v["headers"]["X-Forwarded-Proto"], "https", "{http}: {v}");
    }
    let v = st.get("/echo/").json();
    assert_eq!(v["is_secure"], false, "{v}");
    // A POST with a body, through Django REST framework, over HTTP/2.
    let r = site.curl(
        s,
        "--http2",
        A,
        "/api/notes/",
        &[
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"title": "over h2", "body": "sent over TLS"}"#,
        ],
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let note: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (&note["title"], &note["body"]),
        (&"over h2".into(), &"sent over TLS".into())
    );
}

#[test]
fn certificates_change_on_disk_and_on_sighup_without_dropping_open_connections() {
    let site = site();
    let s = site.serve(&[]);
    let port = https_port(&s);
    let serial = |name: &str| {
        let c = s_client(port, &["-servername", name]);
        c.serial()
            .unwrap_or_else(|| panic!("no certificate:\n{}", c.text))
    };
    let old = serial(A);
    let b_serial = serial(B);
    // A keep-alive HTTPS/1.1 connection, open across the change.
    let (mut open, open_serial) = open_tls(&site.ca.cert_pem, port, A, &[b"http/1.1"]);
    assert_eq!(open_serial, old);
    let get = format!("GET {} HTTP/1.1\r\nHost: {A}\r\n\r\n", static_url(CSS));
    let read_answer = |open: &mut rustls::StreamOwned<_, _>| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = open.read(&mut chunk).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            if buf.ends_with(&site.css) {
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
    };
    open.write_all(get.as_bytes()).unwrap();
    assert!(read_answer(&mut open).starts_with("HTTP/1.1 200 OK"));

    // New files (key first, then the certificate): new handshakes get them.
    let new = site.ca.leaf(&[A, "localhost"]);
    std::fs::write(&site.certs[0].key, &new.key_pem).unwrap();
    std::fs::write(&site.certs[0].cert, &new.cert_pem).unwrap();
    let new_serial = wait_until("new handshakes to get the new certificate", WAIT, || {
        let now = serial(A);
        (now != old).then_some(now)
    });
    assert_eq!(serial(B), b_serial);
    s.stderr.wait("the reload's log line", |l| {
        l.contains("reloaded certificate") && l.contains(&new_serial)
    });
    // The connection opened before goes on.
    open.write_all(get.as_bytes()).unwrap();
    assert!(read_answer(&mut open).starts_with("HTTP/1.1 200 OK"));

    // A broken certificate: refused with a log line naming the file; the new one stays.
    std::fs::write(
        &site.certs[0].cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    let cert_path = site.certs[0].cert.display().to_string();
    let mut from = 0;
    s.stderr.wait_from(&mut from, "the refusal", WAIT, |l| {
        l.contains("refused the new certificate") && l.contains(&cert_path)
    });
    assert_eq!(serial(A), new_serial);

    // SIGHUP re-reads every pair: the broken file is refused again, and nothing stops.
    s.signal(libc::SIGHUP);
    s.stderr
        .wait_from(&mut from, "SIGHUP's re-read", WAIT, |l| {
            l.contains("certificates re-read: 0 replaced, 1 refused, 1 unchanged")
        });
    assert_eq!(serial(A), new_serial);
    // A good pair back in place, then SIGHUP: loaded (by whichever comes first, the
    // watcher or the signal; both run the same check).
    let third = site.ca.leaf(&[A, "localhost"]);
    std::fs::write(&site.certs[0].key, &third.key_pem).unwrap();
    std::fs::write(&site.certs[0].cert, &third.cert_pem).unwrap();
    s.signal(libc::SIGHUP);
    let third_serial = wait_until("the third certificate", WAIT, || {
        let now = serial(A);
        (now != new_serial).then_some(now)
    });
    open.write_all(get.as_bytes()).unwrap();
    assert!(read_answer(&mut open).starts_with("HTTP/1.1 200 OK"));
    let r = site.curl(&s, "--http2", A, &static_url(CSS), &[]);
    assert_eq!(r.status, 200);
    assert_ne!(third_serial, old);
}

#[test]
fn impossible_https_setups_are_refused_at_startup_naming_the_flag_or_file() {
    let site = site();
    let bin = env!("CARGO_BIN_EXE_staticd");
    let root = site.fx.root.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(["serve", "--root", root, "--bind", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let (a, b) = (&site.certs[0], &site.certs[1]);
    let (a_cert, a_key) = (a.cert.to_str().unwrap(), a.key.to_str().unwrap());
    let e = run(&["--tls-cert", a_cert, "--tls-key", a_key]);
    assert!(e.contains("--https-bind is needed with --tls-cert"), "{e}");
    // A certificate with another's key: refused, naming both files.
    let e = run(&[
        "--https-bind",
        "127.0.0.1:0",
        "--tls-cert",
        a_cert,
        "--tls-key",
        b.key.to_str().unwrap(),
    ]);
    assert!(
        e.contains(b.key.to_str().unwrap()) && e.contains("does not belong to the certificate"),
        "{e}"
    );
    let e = run(&[
        "--https-bind",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/x.crt",
        "--tls-key",
        a_key,
    ]);
    assert!(e.contains("/nonexistent/x.crt: cannot read"), "{e}");
    let e = run(&["--hsts", "300"]);
    assert!(e.contains("--hsts needs HTTPS"), "{e}");
    // The request line answered on the TLS port by a client speaking plain HTTP: refused by
    // the handshake, not served.
    let s = site.serve(&[]);
    let mut c = std::net::TcpStream::connect(s.https_addr.unwrap()).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(REQUEST.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A reset is as good an end as a close here.
    let _ = c.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    // TLS records only: an alert (content type 21) if anything.
    assert!(raw.is_empty() || raw[0] == 21, "{raw:?}");
}
