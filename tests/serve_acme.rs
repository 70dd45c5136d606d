//! `staticd serve --acme-domain` against Pebble (Let's Encrypt's ACME test server) on
//! loopback: the binary obtains its certificate by itself, answering Pebble's real
//! validation on its own listeners (HTTP-01 on `--bind`, TLS-ALPN-01 on `--https-bind`),
//! serves HTTPS with it to clients that trust only Pebble's issuing CA, renews it, and keeps
//! serving, restarts included, while Pebble is down.
//!
//! Renewal is forced by short-lived certificates (Pebble's `certificateValidityPeriod` of
//! 12 s: renewal due 8 s in) rather than by an admin trigger: it runs the real schedule
//! (two thirds of the lifetime) end to end, and staticd needs no control surface for it.

use crate::common::free_port;
use crate::common::pebble::Pebble;
use crate::common::staticd::Staticd;
use crate::common::tls::{fetch, open_tls, s_client};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Long enough for an order under a loaded machine; Pebble itself answers in milliseconds.
const ISSUE: Duration = Duration::from_secs(90);

/// Pebble validating against two ports chosen here, and a store for staticd.
struct Case {
    pebble: Pebble,
    http_port: u16,
    https_port: u16,
    store: tempfile::TempDir,
}

impl Case {
    fn new(validity: Option<Duration>) -> Case {
        let (http_port, https_port) = (free_port(), free_port());
        Case {
            pebble: Pebble::start(http_port, https_port, validity),
            http_port,
            https_port,
            store: tempfile::tempdir().unwrap(),
        }
    }

    /// `staticd serve` on the two ports, ACME for `domain` answering `challenge`.
    fn serve(&self, domain: &str, challenge: &str) -> Staticd {
        let bind = format!("127.0.0.1:{}", self.http_port);
        let https_bind = format!("127.0.0.1:{}", self.https_port);
        let api_ca = self.pebble.api_ca.to_str().unwrap().to_string();
        Staticd::proxy(&[
            "--bind",
            &bind,
            "--https-bind",
            &https_bind,
            "--acme-domain",
            domain,
            "--acme-directory",
            &self.pebble.directory_url,
            "--acme-ca-root",
            &api_ca,
            "--acme-store",
            self.store.path().to_str().unwrap(),
            "--acme-email",
            "ops@staticd.test",
            "--acme-challenge",
            challenge,
        ])
    }

    /// curl over HTTPS to `domain`, trusting only `root`; the body of `/static/app.css`.
    fn curl(&self, root: &Path, http: &str, domain: &str) -> Vec<u8> {
        let port = self.https_port;
        let resolve = format!("{domain}:{port}:127.0.0.1");
        let url = format!("https://{domain}:{port}/static/app.css");
        let r = fetch(&[
            http,
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &resolve,
            &url,
        ]);
        assert_eq!(r.status, 200, "{http}");
        r.body
    }

    /// The serial of the certificate `openssl s_client`, trusting only `root`, verifies.
    fn verified_serial(&self, root: &Path, domain: &str) -> String {
        let root = root.to_str().unwrap();
        let c = s_client(
            self.https_port,
            &[
                "-servername",
                domain,
                "-CAfile",
                root,
                "-verify_hostname",
                domain,
            ],
        );
        assert!(c.verified(), "{}", c.text);
        c.serial().unwrap()
    }
}

/// Waits (from line `*from` of stderr) for `domain`'s "new certificate" log line; its serial.
fn new_certificate(s: &Staticd, from: &mut usize, domain: &str, pebble: &Pebble) -> String {
    let prefix = format!("{domain}: new certificate (serial ");
    let deadline = std::time::Instant::now() + ISSUE;
    loop {
        let lines = s.stderr.snapshot();
        if let Some(i) = lines[*from..].iter().position(|l| l.contains(&prefix)) {
            let line = &lines[*from + i];
            *from += i + 1;
            let rest = &line[line.find(&prefix).unwrap() + prefix.len()..];
            return rest.split(',').next().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate for {domain} within {ISSUE:?}\nstaticd:\n{}\npebble:\n{}",
            s.stderr.text(),
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_certificate_obtained_by_http_01_serves_https_and_outlives_the_ca() {
    let mut case = Case::new(None);
    let domain = "http01.serve.staticd.test";
    let mut s = case.serve(domain, "http-01");
    let serial = new_certificate(&s, &mut 0, domain, &case.pebble);
    let root = case.pebble.issuer_root();
    assert_eq!(case.verified_serial(&root, domain), serial);
    for http in ["--http1.1", "--http2"] {
        assert_eq!(case.curl(&root, http, domain), b"body{}", "{http}");
    }
    // The plain listener answered Pebble's challenge and redirects everything else; a
    // challenge path with nothing pending is a 404, never a redirect.
    let host = format!("{domain}:{}", case.http_port);
    let r = s.get("/static/app.css?v=1", &[("Host", &host)]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://{domain}:{}/static/app.css?v=1", case.https_port).as_str())
    );
    let r = s.get(
        "/.well-known/acme-challenge/nothing-pending",
        &[("Host", &host)],
    );
    assert_eq!(r.status, 404);

    // The CA goes away: HTTPS goes on, for new handshakes too.
    case.pebble.stop();
    assert_eq!(case.verified_serial(&root, domain), serial);
    assert_eq!(case.curl(&root, "--http2", domain), b"body{}");
    // And a restart finds the certificate in the store: HTTPS at once, no CA needed.
    s.stop();
    let s = case.serve(domain, "http-01");
    s.stderr.wait("the stored certificate", |l| {
        l.contains(&format!(
            "{domain}: using the stored certificate (serial {serial},"
        ))
    });
    assert_eq!(case.verified_serial(&root, domain), serial);
    assert_eq!(case.curl(&root, "--http1.1", domain), b"body{}");
}

#[test]
fn tls_alpn_01_on_the_https_listener_and_renewal_at_two_thirds_of_a_short_lifetime() {
    // 12-second certificates: staticd renews each 8 s after it was issued.
    let case = Case::new(Some(Duration::from_secs(12)));
    let domain = "alpn.serve.staticd.test";
    let s = case.serve(domain, "tls-alpn-01");
    let mut from = 0;
    let first = new_certificate(&s, &mut from, domain, &case.pebble);
    let root = case.pebble.issuer_root();
    assert_eq!(case.verified_serial(&root, domain), first);
    // A keep-alive connection made with the first certificate, kept across the renewal.
    let root_pem = std::fs::read_to_string(&root).unwrap();
    let (mut open, open_serial) = open_tls(&root_pem, case.https_port, domain, &[b"http/1.1"]);
    assert_eq!(open_serial, first);
    let get = format!("GET /static/app.css HTTP/1.1\r\nHost: {domain}\r\n\r\n");
    let answer = |open: &mut rustls::StreamOwned<_, _>| {
        open.write_all(get.as_bytes()).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b"body{}") {
            let n = open.read(&mut chunk).unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        }
        assert!(buf.starts_with(b"HTTP/1.1 200 OK"));
    };
    answer(&mut open);

    let second = new_certificate(&s, &mut from, domain, &case.pebble);
    assert_ne!(second, first);
    assert_eq!(case.verified_serial(&root, domain), second);
    assert_eq!(case.curl(&root, "--http2", domain), b"body{}");
    answer(&mut open);
    // The order answered TLS-ALPN-01 on the HTTPS port (the only type allowed here).
    assert!(
        s.stderr
            .text()
            .contains(&format!("{domain}: ordering a certificate (tls-alpn-01)")),
        "{}",
        s.stderr.text()
    );
}
