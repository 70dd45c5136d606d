//! Automatic certificates against Pebble (Let's Encrypt's ACME test server) on loopback, with
//! real validation: Pebble fetches the HTTP-01 token from the test's plain-HTTP listener and
//! makes the TLS-ALPN-01 handshake against its TLS listener (`common::tls::TlsServer`, which
//! runs staticd's TLS library). curl and `openssl s_client`, trusting only Pebble's issuing CA,
//! check what is served.

use crate::common::pebble::Pebble;
use crate::common::tls::{curl, s_client, TlsServer};
use staticd::tls::acme::{Backoff, ChallengeKind, DomainStatus};
use staticd::tls::{Acme, AcmeConfig, AcmeHandle, SniResolver, Source};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Long enough for an order under a loaded machine; Pebble itself answers in milliseconds.
const ISSUE: Duration = Duration::from_secs(90);

fn config(pebble: &Pebble, store: &Path, domain: &str, challenges: &[ChallengeKind]) -> AcmeConfig {
    let mut c = AcmeConfig::new(vec![domain.to_string()]);
    c.directory = pebble.directory_url.clone();
    c.ca_root = Some(pebble.api_ca.clone());
    c.store = store.to_path_buf();
    c.email = Some("ops@staticd.test".into());
    c.challenges = challenges.to_vec();
    // Retries in tenths of a second rather than minutes.
    c.backoff = Backoff {
        first: Duration::from_millis(200),
        max: Duration::from_secs(2),
    };
    c
}

fn start(server: &TlsServer, resolver: Arc<SniResolver>, c: AcmeConfig) -> AcmeHandle {
    let _rt = server.runtime().enter();
    Acme::start(c, resolver, server.http01.clone()).unwrap()
}

fn wait_status(
    acme: &AcmeHandle,
    domain: &str,
    what: &str,
    pebble: &Pebble,
    done: impl Fn(&DomainStatus) -> bool,
) -> DomainStatus {
    let deadline = std::time::Instant::now() + ISSUE;
    loop {
        let st = acme.status(domain).unwrap();
        if done(&st) {
            return st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; status {st:?}\npebble log:\n{}",
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// curl to `https://domain:port/`, trusting only `root`: (ok, body, stderr).
fn curl_verified(domain: &str, port: u16, root: &Path) -> (bool, String, String) {
    curl(&[
        "--http1.1",
        "--cacert",
        root.to_str().unwrap(),
        "--resolve",
        &format!("{domain}:{port}:127.0.0.1"),
        &format!("https://{domain}:{port}/"),
    ])
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn http_01_obtains_a_certificate_that_curl_and_openssl_verify_kept_private_in_the_store() {
    let server = TlsServer::start(false);
    let pebble = Pebble::start(server.http_port, server.tls_port, None);
    let store = tempfile::tempdir().unwrap();
    let domain = "http01.staticd.test";
    let acme = start(
        &server,
        server.resolver.clone(),
        config(&pebble, store.path(), domain, &[ChallengeKind::Http01]),
    );
    let st = wait_status(&acme, domain, "a certificate", &pebble, |s| s.issued == 1);
    assert_eq!(st.orders, 1);
    assert_eq!(st.last_challenge, Some(ChallengeKind::Http01));

    let root = pebble.issuer_root();
    let (ok, body, err) = curl_verified(domain, server.tls_port, &root);
    assert!(ok, "{err}");
    assert_eq!(body, format!("proto=http/1.1 sni={domain}\n"));
    let c = s_client(
        server.tls_port,
        &[
            "-servername",
            domain,
            "-CAfile",
            root.to_str().unwrap(),
            "-verify_hostname",
            domain,
        ],
    );
    assert!(c.verified(), "{}", c.text);
    assert_eq!(c.serial(), st.serial);
    // Pebble's chain: the leaf and its intermediate, in that order.
    let c = s_client(server.tls_port, &["-servername", domain, "-showcerts"]);
    assert_eq!(
        c.text.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{}",
        c.text
    );

    // The store: account and certificate, private.
    let dir = acme.store_dir().to_path_buf();
    assert_eq!(mode(store.path()), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("account.json")), 0o600);
    assert_eq!(mode(&dir.join(domain)), 0o700);
    assert_eq!(mode(&dir.join(domain).join("cert.pem")), 0o600);
    assert_eq!(mode(&dir.join(domain).join("key.pem")), 0o600);
    // No challenge answer is left behind once validated.
    assert!(server
        .http01
        .answer("/.well-known/acme-challenge/x")
        .is_none());
    let left: Vec<_> = std::fs::read_dir(dir.join("challenges/http-01"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A restart finds the certificate in the store and orders nothing.
    drop(acme);
    let resolver = SniResolver::new(staticd::tls::TlsAlpnChallenges::new());
    let again = start(
        &server,
        resolver.clone(),
        config(&pebble, store.path(), domain, &[ChallengeKind::Http01]),
    );
    let st2 = again.status(domain).unwrap();
    assert_eq!((st2.loaded, st2.orders), (1, 0));
    assert_eq!(st2.serial, st.serial);
    assert_eq!(
        resolver.get(&Source::Acme(domain.into())).unwrap().serial,
        st.serial.unwrap()
    );
}

#[test]
fn tls_alpn_01_obtains_a_certificate_on_the_https_port() {
    let server = TlsServer::start(true);
    let pebble = Pebble::start(server.http_port, server.tls_port, None);
    let store = tempfile::tempdir().unwrap();
    let domain = "alpn.staticd.test";
    // No challenge pending: an acme-tls/1 handshake gets no certificate.
    let c = s_client(
        server.tls_port,
        &["-alpn", "acme-tls/1", "-servername", domain],
    );
    assert!(!c.ok && c.text.contains("Cipher is (NONE)"), "{}", c.text);

    let acme = start(
        &server,
        server.resolver.clone(),
        config(&pebble, store.path(), domain, &[ChallengeKind::TlsAlpn01]),
    );
    let st = wait_status(&acme, domain, "a certificate", &pebble, |s| s.issued == 1);
    assert_eq!(st.last_challenge, Some(ChallengeKind::TlsAlpn01));
    let root = pebble.issuer_root();
    let (ok, body, err) = curl_verified(domain, server.tls_port, &root);
    assert!(ok, "{err}");
    assert_eq!(body, format!("proto=http/1.1 sni={domain}\n"));
    let c = s_client(
        server.tls_port,
        &[
            "-servername",
            domain,
            "-CAfile",
            root.to_str().unwrap(),
            "-verify_hostname",
            domain,
        ],
    );
    assert!(c.verified(), "{}", c.text);
    assert_eq!(c.serial(), st.serial);
}

#[test]
fn a_challenge_nobody_answers_fails_for_real_and_the_next_attempt_uses_the_other_type() {
    // The listener does not offer acme-tls/1, so Pebble's TLS-ALPN-01 handshake fails; the
    // retry answers HTTP-01.
    let server = TlsServer::start(false);
    let pebble = Pebble::start(server.http_port, server.tls_port, None);
    let store = tempfile::tempdir().unwrap();
    let domain = "fallback.staticd.test";
    let acme = start(
        &server,
        server.resolver.clone(),
        config(
            &pebble,
            store.path(),
            domain,
            &[ChallengeKind::TlsAlpn01, ChallengeKind::Http01],
        ),
    );
    let failed = wait_status(&acme, domain, "the tls-alpn-01 failure", &pebble, |s| {
        s.failures >= 1 || s.issued > 0
    });
    assert_eq!(failed.issued, 0, "{failed:?}");
    let err = failed.last_error.unwrap();
    assert!(
        err.contains(domain) && err.contains("tls-alpn-01 validation failed"),
        "{err}"
    );
    assert!(server.resolver.get(&Source::Acme(domain.into())).is_none());
    let st = wait_status(&acme, domain, "the http-01 certificate", &pebble, |s| {
        s.issued == 1
    });
    assert_eq!(st.orders, 2);
    assert_eq!(st.last_challenge, Some(ChallengeKind::Http01));
    assert_eq!((st.failures, st.last_error), (0, None));
}

#[test]
fn forced_renewal_replaces_the_certificate_and_a_dead_ca_never_takes_it_away() {
    let server = TlsServer::start(false);
    let mut pebble = Pebble::start(server.http_port, server.tls_port, None);
    let store = tempfile::tempdir().unwrap();
    let domain = "renew.staticd.test";
    let acme = start(
        &server,
        server.resolver.clone(),
        config(&pebble, store.path(), domain, &[ChallengeKind::Http01]),
    );
    let first = wait_status(&acme, domain, "a certificate", &pebble, |s| s.issued == 1);
    let served = |name: &str| s_client(server.tls_port, &["-servername", name]).serial();

    assert!(acme.renew_now(domain));
    let second = wait_status(&acme, domain, "the forced renewal", &pebble, |s| {
        s.issued == 2
    });
    assert_ne!(second.serial, first.serial);
    assert_eq!(served(domain), second.serial);
    let cert_file = acme.store_dir().join(domain).join("cert.pem");
    let stored = std::fs::read(&cert_file).unwrap();

    // The CA goes away: renewal fails, is retried with backoff, and the certificate stays.
    pebble.stop();
    assert!(acme.renew_now(domain));
    let failing = wait_status(&acme, domain, "failed renewals", &pebble, |s| {
        s.failures >= 2
    });
    assert_eq!(failing.issued, 2);
    assert_eq!(failing.serial, second.serial);
    assert!(failing.last_error.is_some());
    assert_eq!(served(domain), second.serial);
    assert_eq!(std::fs::read(&cert_file).unwrap(), stored);

    // The CA is back (a new CA that has forgotten our account): a retry renews.
    pebble.restart(server.http_port, server.tls_port, None);
    let third = wait_status(
        &acme,
        domain,
        "renewal after the CA's return",
        &pebble,
        |s| s.issued == 3,
    );
    assert_eq!((third.failures, third.last_error.as_deref()), (0, None));
    assert_ne!(third.serial, second.serial);
    let root = pebble.issuer_root();
    let (ok, _, err) = curl_verified(domain, server.tls_port, &root);
    assert!(ok, "the renewed certificate does not verify: {err}");
}

#[test]
fn renewal_happens_by_itself_at_two_thirds_of_the_lifetime() {
    let server = TlsServer::start(false);
    // Pebble issues 12-second certificates: renewal is due 8 s after notBefore.
    let pebble = Pebble::start(
        server.http_port,
        server.tls_port,
        Some(Duration::from_secs(12)),
    );
    let store = tempfile::tempdir().unwrap();
    let domain = "auto.staticd.test";
    let acme = start(
        &server,
        server.resolver.clone(),
        config(&pebble, store.path(), domain, &[ChallengeKind::Http01]),
    );
    let first = wait_status(&acme, domain, "a certificate", &pebble, |s| s.issued == 1);
    let loaded = server.resolver.get(&Source::Acme(domain.into())).unwrap();
    let life = loaded.not_after.duration_since(loaded.not_before).unwrap();
    assert_eq!(first.renew_at, Some(loaded.not_before + life * 2 / 3));
    let second = wait_status(&acme, domain, "the scheduled renewal", &pebble, |s| {
        s.issued == 2
    });
    // Not before it was due (the order is placed at renew_at or later, never earlier).
    let renewed = server.resolver.get(&Source::Acme(domain.into())).unwrap();
    assert!(renewed.not_before >= first.renew_at.unwrap() - Duration::from_secs(1));
    assert_ne!(second.serial, first.serial);
    assert!(SystemTime::now() >= first.renew_at.unwrap());
}

#[test]
fn replicas_sharing_a_store_place_one_order_and_serve_the_same_certificate() {
    // Two replicas: each with its own resolver and challenge answers; Pebble reaches only the
    // first's listeners (as a load balancer might send it to either), so the shared store is
    // also what lets the first answer the second's challenge.
    let server = TlsServer::start(false);
    let pebble = Pebble::start(server.http_port, server.tls_port, None);
    let store = tempfile::tempdir().unwrap();
    let domain = "replicas.staticd.test";
    let other_resolver = SniResolver::new(staticd::tls::TlsAlpnChallenges::new());
    let (a, b) = {
        let _rt = server.runtime().enter();
        let c = config(&pebble, store.path(), domain, &[ChallengeKind::Http01]);
        let a = Acme::start(c.clone(), server.resolver.clone(), server.http01.clone()).unwrap();
        let b = Acme::start(c, other_resolver.clone(), staticd::tls::Http01Tokens::new()).unwrap();
        (a, b)
    };
    let done = |s: &DomainStatus| s.issued + s.loaded >= 1;
    let sa = wait_status(&a, domain, "replica a's certificate", &pebble, done);
    let sb = wait_status(&b, domain, "replica b's certificate", &pebble, done);
    assert_eq!(sa.orders + sb.orders, 1, "a: {sa:?}\nb: {sb:?}");
    assert_eq!(sa.issued + sb.issued, 1);
    assert_eq!(sa.loaded + sb.loaded, 1);
    assert_eq!(sa.serial, sb.serial);
    assert_eq!(
        other_resolver
            .get(&Source::Acme(domain.into()))
            .unwrap()
            .serial,
        server
            .resolver
            .get(&Source::Acme(domain.into()))
            .unwrap()
            .serial
    );

    // The second replica alone orders another name: its answers are in no listener's
    // memory, so Pebble's validation can only succeed through the first replica reading
    // them from the shared store.
    let lone = "lone.staticd.test";
    let c = config(&pebble, store.path(), lone, &[ChallengeKind::Http01]);
    let b2 = {
        let _rt = server.runtime().enter();
        Acme::start(c, other_resolver.clone(), staticd::tls::Http01Tokens::new()).unwrap()
    };
    let st = wait_status(&b2, lone, "the lone replica's certificate", &pebble, |s| {
        s.issued == 1
    });
    assert_eq!(st.orders, 1);
    assert!(server.resolver.get(&Source::Acme(lone.into())).is_none());
}
