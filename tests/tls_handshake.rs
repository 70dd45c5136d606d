//! TLS as clients see it, with certificates from files: protocol versions, cipher suites,
//! ALPN, the choice of certificate by SNI, session resumption, and certificates replaced on
//! disk while connections are open. The server is staticd's TLS library
//! (`common::tls::TlsServer`); the clients are `openssl s_client` and `curl`.

use crate::common::tls::{curl, open_tls, s_client, TestCa, TlsServer};
use crate::common::wait_until;
use staticd::tls::{CertError, CertPair, FileCerts, Source};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    tmp: tempfile::TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    pairs: Vec<CertPair>,
    files: Arc<FileCerts>,
    server: TlsServer,
}

/// Three certificates: `a.test` + `www.a.test` (first, so the default), `*.wild.test`, and
/// `b.test`.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let ca = TestCa::new("staticd test CA");
    let ca_file = ca.write(tmp.path());
    let pairs = vec![
        ca.leaf(&["a.test", "www.a.test"]).write(tmp.path(), "a"),
        ca.leaf(&["*.wild.test"]).write(tmp.path(), "wild"),
        ca.leaf(&["b.test"]).write(tmp.path(), "b"),
    ];
    let server = TlsServer::start(false);
    let files = FileCerts::load(pairs.clone(), server.resolver.clone()).unwrap();
    Setup {
        tmp,
        ca,
        ca_file,
        pairs,
        files,
        server,
    }
}

impl Setup {
    fn port(&self) -> u16 {
        self.server.tls_port
    }

    /// The serial of the certificate a new handshake for `name` gets.
    fn serial_for(&self, name: &str) -> String {
        let c = s_client(self.port(), &["-servername", name]);
        c.serial()
            .unwrap_or_else(|| panic!("no certificate:\n{}", c.text))
    }

    fn installed_serial(&self, i: usize) -> String {
        self.server.resolver.get(&Source::File(i)).unwrap().serial
    }
}

#[test]
fn tls_1_0_and_1_1_are_refused_1_2_and_1_3_accepted() {
    let s = setup();
    for flag in ["-tls1", "-tls1_1"] {
        // SECLEVEL=0: OpenSSL 3 would otherwise refuse to send a TLS 1.0/1.1 hello at all,
        // and the test would pass on the client's refusal instead of the server's.
        let c = s_client(
            s.port(),
            &[
                flag,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-servername",
                "a.test",
            ],
        );
        assert!(!c.ok, "{flag} was accepted:\n{}", c.text);
        // The hello went out and the server answered it with a fatal alert (rustls sends
        // handshake_failure when the hello offers no version it speaks). OpenSSL prints
        // "SSL alert number" only for an alert it received.
        assert!(
            c.text.contains("SSL alert number") && c.text.contains("Cipher is (NONE)"),
            "{flag}: not refused by the server:\n{}",
            c.text
        );
    }
    for (flag, version, cipher) in [
        ("-tls1_2", "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("-tls1_3", "TLSv1.3", "TLS_AES_256_GCM_SHA384"),
    ] {
        let c = s_client(
            s.port(),
            &[
                flag,
                "-servername",
                "a.test",
                "-CAfile",
                s.ca_file.to_str().unwrap(),
            ],
        );
        assert!(c.ok, "{flag}:\n{}", c.text);
        assert_eq!(c.protocol().as_deref(), Some(version), "{}", c.text);
        assert!(
            c.text.contains(&format!("Cipher is {cipher}")),
            "{}",
            c.text
        );
        assert!(c.verified(), "{}", c.text);
        assert!(c.text.contains("proto=http/1.1 sni=a.test"), "{}", c.text);
    }
    // TLS 1.2 without forward secrecy or with CBC: no such suite on offer.
    for weak in [
        "AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
    ] {
        let c = s_client(
            s.port(),
            &["-tls1_2", "-cipher", weak, "-servername", "a.test"],
        );
        assert!(
            !c.ok && c.text.contains("Cipher is (NONE)"),
            "{weak} accepted:\n{}",
            c.text
        );
        assert!(
            c.text.contains("alert handshake failure"),
            "{weak}:\n{}",
            c.text
        );
    }
    // curl agrees, both ways.
    let url = format!("https://a.test:{}/", s.port());
    let resolve = format!("a.test:{}:127.0.0.1", s.port());
    let ca = s.ca_file.to_str().unwrap();
    let (ok, body, err) = curl(&[
        "--http1.1",
        "--tls-max",
        "1.2",
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        &url,
    ]);
    assert!(ok, "{err}");
    assert_eq!(body, "proto=http/1.1 sni=a.test\n");
    let (ok, _, err) = curl(&[
        "--http1.1",
        "--tls-max",
        "1.1",
        "--cacert",
        ca,
        "--resolve",
        &resolve,
        &url,
    ]);
    assert!(!ok, "curl with TLS ≤ 1.1 got through");
    assert!(err.contains("alert"), "{err}");
}

#[test]
fn alpn_prefers_h2_then_http_1_1_and_refuses_other_protocols() {
    let s = setup();
    let c = s_client(s.port(), &["-alpn", "http/1.1,h2", "-servername", "a.test"]);
    assert_eq!(c.alpn().as_deref(), Some("h2"), "{}", c.text);
    let c = s_client(s.port(), &["-alpn", "http/1.1", "-servername", "a.test"]);
    assert_eq!(c.alpn().as_deref(), Some("http/1.1"), "{}", c.text);
    assert!(c.text.contains("proto=http/1.1"), "{}", c.text);
    let c = s_client(s.port(), &["-servername", "a.test"]);
    assert!(c.text.contains("No ALPN negotiated"), "{}", c.text);
    assert!(
        c.text.contains("proto=http/1.1"),
        "no ALPN is HTTP/1.1:\n{}",
        c.text
    );
    // RFC 7301 §3.2: no protocol in common is a fatal no_application_protocol alert.
    let c = s_client(s.port(), &["-alpn", "spdy/3", "-servername", "a.test"]);
    assert!(!c.ok, "{}", c.text);
    assert!(
        c.text.contains("alert no application protocol"),
        "{}",
        c.text
    );
    // acme-tls/1 is not offered unless ACME's TLS-ALPN-01 is on.
    let c = s_client(s.port(), &["-alpn", "acme-tls/1", "-servername", "a.test"]);
    assert!(!c.ok, "{}", c.text);
    // curl negotiates h2 by itself.
    let (_, _, err) = curl(&[
        "-v",
        "--http2",
        "--cacert",
        s.ca_file.to_str().unwrap(),
        "--resolve",
        &format!("a.test:{}:127.0.0.1", s.port()),
        &format!("https://a.test:{}/", s.port()),
    ]);
    assert!(err.contains("ALPN: server accepted h2"), "{err}");
}

#[test]
fn sni_chooses_the_certificate_and_no_or_an_unknown_name_gets_the_first() {
    let s = setup();
    let ca = s.ca_file.to_str().unwrap();
    for (sni, san) in [
        ("a.test", "DNS:a.test, DNS:www.a.test"),
        ("WWW.A.TEST", "DNS:a.test, DNS:www.a.test"),
        ("x.wild.test", "DNS:*.wild.test"),
        ("b.test", "DNS:b.test"),
        ("unknown.test", "DNS:a.test, DNS:www.a.test"),
    ] {
        let c = s_client(s.port(), &["-servername", sni, "-CAfile", ca]);
        let (_, got) = c.leaf().unwrap_or_else(|| panic!("{sni}:\n{}", c.text));
        assert_eq!(got, san, "certificate for {sni}");
    }
    let c = s_client(s.port(), &["-noservername"]);
    assert_eq!(
        c.leaf().unwrap().1,
        "DNS:a.test, DNS:www.a.test",
        "{}",
        c.text
    );
    assert!(c.text.contains("sni=-"), "{}", c.text);
    // A wildcard covers one label only: y.x.wild.test gets the default, which curl refuses.
    let c = s_client(s.port(), &["-servername", "y.x.wild.test"]);
    assert_eq!(c.leaf().unwrap().1, "DNS:a.test, DNS:www.a.test");
    let port = s.port();
    let get = |name: &str| {
        curl(&[
            "--http1.1",
            "--cacert",
            ca,
            "--resolve",
            &format!("{name}:{port}:127.0.0.1"),
            &format!("https://{name}:{port}/"),
        ])
    };
    let (ok, body, err) = get("x.wild.test");
    assert!(ok, "{err}");
    assert_eq!(body, "proto=http/1.1 sni=x.wild.test\n");
    let (ok, _, err) = get("y.x.wild.test");
    assert!(!ok);
    assert!(
        err.contains("no alternative certificate subject name matches"),
        "{err}"
    );
}

#[test]
fn sessions_resume_by_ticket_and_by_session_id() {
    let s = setup();
    for (what, args) in [
        ("TLS 1.3 ticket", &["-tls1_3"][..]),
        ("TLS 1.2 ticket", &["-tls1_2"][..]),
        ("TLS 1.2 session ID", &["-tls1_2", "-no_ticket"][..]),
    ] {
        let sess = s.tmp.path().join("session.pem");
        let _ = std::fs::remove_file(&sess);
        let sess = sess.to_str().unwrap();
        let mut first: Vec<&str> = vec!["-servername", "a.test", "-sess_out", sess];
        first.extend_from_slice(args);
        let c = s_client(s.port(), &first);
        assert!(c.ok && !c.reused(), "{what}, first:\n{}", c.text);
        let mut again: Vec<&str> = vec!["-servername", "a.test", "-sess_in", sess];
        again.extend_from_slice(args);
        let c = s_client(s.port(), &again);
        assert!(c.reused(), "{what}: not resumed:\n{}", c.text);
        assert!(c.text.contains("proto=http/1.1 sni=a.test"), "{}", c.text);
    }
}

#[test]
fn new_files_reach_new_handshakes_open_connections_go_on_and_bad_files_are_refused() {
    use std::io::{Read, Write};
    let s = setup();
    let _watch = s.files.watch().unwrap();
    let old = s.serial_for("a.test");
    assert_eq!(old, s.installed_serial(0));
    let (mut open, open_serial) = open_tls(&s.ca.cert_pem, s.port(), "a.test", &[b"http/1.1"]);
    assert_eq!(open_serial, old);

    // Replace a.test's files (key first, as `certbot` and our store do).
    let new = s.ca.leaf(&["a.test", "www.a.test"]);
    std::fs::write(&s.pairs[0].key, &new.key_pem).unwrap();
    std::fs::write(&s.pairs[0].cert, &new.cert_pem).unwrap();
    let new_serial = wait_until(
        "the watcher to load the new a.test",
        Duration::from_secs(20),
        || {
            let now = s.installed_serial(0);
            (now != old).then_some(now)
        },
    );
    assert_eq!(s.serial_for("a.test"), new_serial);
    assert_ne!(new_serial, old);
    // Other certificates untouched.
    assert!(s.serial_for("b.test") == s.installed_serial(2));

    // The connection opened before goes on, with its old certificate.
    open.write_all(crate::common::tls::REQUEST.as_bytes())
        .unwrap();
    let mut reply = String::new();
    let _ = open.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with("proto=http/1.1 sni=a.test\n"), "{reply}");

    // Garbage, then a certificate without its key: refused, naming the file; the
    // certificate in use stays (a SIGHUP's reload and the watcher run the same check).
    std::fs::write(
        &s.pairs[0].cert,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    let report = s.files.reload();
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].path(), s.pairs[0].cert);
    assert!(matches!(report.refused[0], CertError::Pem { .. }));
    let other = s.ca.leaf(&["a.test"]);
    std::fs::write(&s.pairs[0].cert, &other.cert_pem).unwrap();
    let report = s.files.reload();
    assert!(
        matches!(report.refused[..], [CertError::KeyMismatch { .. }]),
        "{report:?}"
    );
    assert_eq!(
        report.refused[0].to_string(),
        format!(
            "{}: this private key does not belong to the certificate in {}",
            s.pairs[0].key.display(),
            s.pairs[0].cert.display()
        )
    );
    assert_eq!(s.serial_for("a.test"), new_serial);
    assert_eq!(s.installed_serial(0), new_serial);
}
