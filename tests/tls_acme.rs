//! Automatic certificates against Pebble (Let's Encrypt's ACME test server) on loopback, with
//! real validation: Pebble fetches the HTTP-01 token from the test's plain-HTTP listener and
//! makes the TLS-ALPN-01 handshake against its TLS listener (`common::tls::TlsServer`, which
//! runs staticd's TLS library). curl and `openssl s_client`, trusting only Pebble's issuing CA,
//! check what is served.

use crate::common::pebble::Pebble;
use crate::common::tls::{curl, s_client, TlsServer};
use staticd::tls::acme::{Backoff, ChallengeKind, DomainStatus};
use staticd::tls::{Acme, AcmeConfig, AcmeHandle, Http01Tokens, SniResolver, Source};
use staticd::tls::{CertError, TlsAlpnChallenges};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Long enough for an order under a loaded machine; Pebble itself answers in milliseconds.
const ISSUE: Duration = Duration::from_secs(90);

/// A TLS server, a Pebble validating against its ports, and a store.
struct Case {
    server: TlsServer,
    pebble: Pebble,
    store: tempfile::TempDir,
}

impl Case {
    /// `acme_tls`: the server offers `acme-tls/1`. `validity`: of Pebble's certificates.
    fn new(acme_tls: bool, validity: Option<Duration>) -> Case {
        let server = TlsServer::start(acme_tls);
        let pebble = Pebble::start(server.http_port, server.tls_port, validity);
        Case {
            server,
            pebble,
            store: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, domain: &str, challenges: &[ChallengeKind]) -> AcmeConfig {
        let mut c = AcmeConfig::new(vec![domain.to_string()]);
        c.directory = self.pebble.directory_url.clone();
        c.ca_root = Some(self.pebble.api_ca.clone());
        c.store = self.store.path().to_path_buf();
        c.email = Some("ops@staticd.test".into());
        c.challenges = challenges.to_vec();
        // Retries in tenths of a second rather than minutes.
        c.backoff = Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(2),
        };
        c
    }

    /// Starts ACME for `domain` on the server's runtime, into `resolver` and `http01`.
    fn start_into(
        &self,
        domain: &str,
        challenges: &[ChallengeKind],
        resolver: Arc<SniResolver>,
        http01: Arc<Http01Tokens>,
    ) -> AcmeHandle {
        let _rt = self.server.runtime().enter();
        Acme::start(self.config(domain, challenges), resolver, http01).unwrap()
    }

    /// Starts ACME for `domain` feeding the test server itself.
    fn start(&self, domain: &str, challenges: &[ChallengeKind]) -> AcmeHandle {
        let (r, h) = (self.server.resolver.clone(), self.server.http01.clone());
        self.start_into(domain, challenges, r, h)
    }

    fn wait(
        &self,
        acme: &AcmeHandle,
        domain: &str,
        what: &str,
        done: impl Fn(&DomainStatus) -> bool,
    ) -> DomainStatus {
        let deadline = Instant::now() + ISSUE;
        loop {
            let st = acme.status(domain).unwrap();
            if done(&st) {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status {st:?}\npebble log:\n{}",
                self.pebble.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The serial a new handshake for `domain` gets (not verified).
    fn served(&self, domain: &str) -> Option<String> {
        s_client(self.server.tls_port, &["-servername", domain]).serial()
    }

    /// curl and `openssl s_client`, trusting only Pebble's current issuing root, accept the
    /// certificate served for `domain`; its serial.
    fn verified(&self, domain: &str) -> String {
        let root = self.pebble.issuer_root();
        let port = self.server.tls_port;
        let (ok, body, err) = curl(&[
            "--http1.1",
            "--cacert",
            root.to_str().unwrap(),
            "--resolve",
            &format!("{domain}:{port}:127.0.0.1"),
            &format!("https://{domain}:{port}/"),
        ]);
        assert!(ok, "curl refused the certificate for {domain}: {err}");
        assert_eq!(body, format!("proto=http/1.1 sni={domain}\n"));
        let c = s_client(
            port,
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
        c.serial().unwrap()
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn http_01_obtains_a_certificate_that_curl_and_openssl_verify_kept_private_in_the_store() {
    let case = Case::new(false, None);
    let domain = "http01.staticd.test";
    let acme = case.start(domain, &[ChallengeKind::Http01]);
    let st = case.wait(&acme, domain, "a certificate", |s| s.issued == 1);
    assert_eq!(st.orders, 1);
    assert_eq!(st.last_challenge, Some(ChallengeKind::Http01));
    assert_eq!(Some(case.verified(domain)), st.serial);
    // Pebble's chain: the leaf and its intermediate.
    let c = s_client(case.server.tls_port, &["-servername", domain, "-showcerts"]);
    assert_eq!(
        c.text.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{}",
        c.text
    );

    // The store: account and certificate, private.
    let dir = acme.store_dir().to_path_buf();
    assert_eq!(mode(case.store.path()), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("account.json")), 0o600);
    assert_eq!(mode(&dir.join(domain)), 0o700);
    assert_eq!(mode(&dir.join(domain).join("cert.pem")), 0o600);
    assert_eq!(mode(&dir.join(domain).join("key.pem")), 0o600);
    // No challenge answer is left behind once validated.
    let left: Vec<_> = std::fs::read_dir(dir.join("challenges/http-01"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A restart finds the certificate in the store and orders nothing.
    drop(acme);
    let resolver = SniResolver::new(TlsAlpnChallenges::new());
    let again = case.start_into(
        domain,
        &[ChallengeKind::Http01],
        resolver.clone(),
        Http01Tokens::new(),
    );
    let st2 = again.status(domain).unwrap();
    assert_eq!((st2.loaded, st2.orders), (1, 0));
    assert_eq!(st2.serial, st.serial);
    assert_eq!(
        Some(resolver.get(&Source::Acme(domain.into())).unwrap().serial),
        st.serial
    );
}

#[test]
fn tls_alpn_01_obtains_a_certificate_on_the_https_port() {
    let case = Case::new(true, None);
    let domain = "alpn.staticd.test";
    // No challenge pending: an acme-tls/1 handshake gets no certificate.
    let c = s_client(
        case.server.tls_port,
        &["-alpn", "acme-tls/1", "-servername", domain],
    );
    assert!(!c.ok && c.text.contains("Cipher is (NONE)"), "{}", c.text);

    let acme = case.start(domain, &[ChallengeKind::TlsAlpn01]);
    let st = case.wait(&acme, domain, "a certificate", |s| s.issued == 1);
    assert_eq!(st.last_challenge, Some(ChallengeKind::TlsAlpn01));
    assert_eq!(Some(case.verified(domain)), st.serial);
}

#[test]
fn a_challenge_nobody_answers_fails_for_real_and_the_next_attempt_uses_the_other_type() {
    // The listener does not offer acme-tls/1, so Pebble's TLS-ALPN-01 handshake fails; the
    // retry answers HTTP-01.
    let case = Case::new(false, None);
    let domain = "fallback.staticd.test";
    let acme = case.start(domain, &[ChallengeKind::TlsAlpn01, ChallengeKind::Http01]);
    let failed = case.wait(&acme, domain, "the tls-alpn-01 failure", |s| {
        s.failures >= 1 || s.issued > 0
    });
    assert_eq!(failed.issued, 0, "{failed:?}");
    let err = failed.last_error.unwrap();
    assert!(
        err.contains(domain) && err.contains("tls-alpn-01 validation failed"),
        "{err}"
    );
    assert!(case
        .server
        .resolver
        .get(&Source::Acme(domain.into()))
        .is_none());
    let st = case.wait(&acme, domain, "the http-01 certificate", |s| s.issued == 1);
    assert_eq!(st.orders, 2);
    assert_eq!(st.last_challenge, Some(ChallengeKind::Http01));
    assert_eq!((st.failures, st.last_error), (0, None));
}

#[test]
fn forced_renewal_replaces_the_certificate_and_a_dead_ca_never_takes_it_away() {
    let mut case = Case::new(false, None);
    let domain = "renew.staticd.test";
    let acme = case.start(domain, &[ChallengeKind::Http01]);
    let first = case.wait(&acme, domain, "a certificate", |s| s.issued == 1);

    assert!(acme.renew_now(domain));
    let second = case.wait(&acme, domain, "the forced renewal", |s| s.issued == 2);
    assert_ne!(second.serial, first.serial);
    assert_eq!(case.served(domain), second.serial);
    let cert_file = acme.store_dir().join(domain).join("cert.pem");
    let stored = std::fs::read(&cert_file).unwrap();

    // The CA goes away: renewal fails, is retried with backoff, and the certificate stays.
    case.pebble.stop();
    assert!(acme.renew_now(domain));
    let failing = case.wait(&acme, domain, "failed renewals", |s| s.failures >= 2);
    assert_eq!(failing.issued, 2);
    assert_eq!(failing.serial, second.serial);
    assert!(failing.last_error.is_some());
    assert_eq!(case.served(domain), second.serial);
    assert_eq!(std::fs::read(&cert_file).unwrap(), stored);

    // The CA is back (a new CA that has forgotten our account): a retry renews.
    let (http, tls) = (case.server.http_port, case.server.tls_port);
    case.pebble.restart(http, tls, None);
    let third = case.wait(&acme, domain, "renewal after the CA's return", |s| {
        s.issued == 3
    });
    assert_eq!((third.failures, third.last_error.as_deref()), (0, None));
    assert_ne!(third.serial, second.serial);
    assert_eq!(Some(case.verified(domain)), third.serial);
}

#[test]
fn renewal_happens_by_itself_at_two_thirds_of_the_lifetime() {
    // Pebble issues 12-second certificates: renewal is due 8 s after notBefore.
    let case = Case::new(false, Some(Duration::from_secs(12)));
    let domain = "auto.staticd.test";
    let acme = case.start(domain, &[ChallengeKind::Http01]);
    let first = case.wait(&acme, domain, "a certificate", |s| s.issued == 1);
    let source = Source::Acme(domain.into());
    let loaded = case.server.resolver.get(&source).unwrap();
    let life = loaded.not_after.duration_since(loaded.not_before).unwrap();
    assert_eq!(first.renew_at, Some(loaded.not_before + life * 2 / 3));
    let second = case.wait(&acme, domain, "the scheduled renewal", |s| s.issued == 2);
    assert_ne!(second.serial, first.serial);
    assert_eq!(case.served(domain), second.serial);
    // Ordered when due, not before (Pebble's notBefore is the issuing second).
    let renewed = case.server.resolver.get(&source).unwrap();
    assert!(renewed.not_before >= first.renew_at.unwrap() - Duration::from_secs(1));
    assert!(SystemTime::now() >= first.renew_at.unwrap());
}

#[test]
fn replicas_sharing_a_store_place_one_order_and_serve_the_same_certificate() {
    // Two replicas, each with its own resolver and challenge answers; Pebble reaches only
    // the first one's listeners (a load balancer may send it to either).
    let case = Case::new(false, None);
    let domain = "replicas.staticd.test";
    let http01 = [ChallengeKind::Http01];
    let other = SniResolver::new(TlsAlpnChallenges::new());
    let a = case.start(domain, &http01);
    let b = case.start_into(domain, &http01, other.clone(), Http01Tokens::new());
    let done = |s: &DomainStatus| s.issued + s.loaded >= 1;
    let sa = case.wait(&a, domain, "replica a's certificate", done);
    let sb = case.wait(&b, domain, "replica b's certificate", done);
    assert_eq!(sa.orders + sb.orders, 1, "a: {sa:?}\nb: {sb:?}");
    assert_eq!(sa.issued + sb.issued, 1);
    assert_eq!(sa.loaded + sb.loaded, 1);
    assert_eq!(sa.serial, sb.serial);
    let source = Source::Acme(domain.into());
    assert_eq!(
        other.get(&source).unwrap().serial,
        case.server.resolver.get(&source).unwrap().serial
    );

    // The second replica alone orders another name: its answers are in no listener's
    // memory, so Pebble's validation can only succeed through the first replica reading
    // them from the shared store.
    let lone = "lone.staticd.test";
    let b2 = case.start_into(lone, &http01, other.clone(), Http01Tokens::new());
    let st = case.wait(&b2, lone, "the lone replica's certificate", |s| {
        s.issued == 1
    });
    assert_eq!(st.orders, 1);
    assert!(case
        .server
        .resolver
        .get(&Source::Acme(lone.into()))
        .is_none());
}

#[test]
fn an_unusable_stored_certificate_is_replaced_and_the_store_is_refused_when_unwritable() {
    let case = Case::new(false, None);
    let domain = "corrupt.staticd.test";
    // Someone left garbage in the store: it is reported and a new certificate ordered.
    let acme = case.start(domain, &[ChallengeKind::Http01]);
    let st = case.wait(&acme, domain, "a certificate", |s| s.issued == 1);
    let pair = acme.store_dir().join(domain);
    drop(acme);
    std::fs::write(pair.join("cert.pem"), "garbage").unwrap();
    let e = staticd::tls::certs::load_pair(
        &staticd::tls::CertPair {
            cert: pair.join("cert.pem"),
            key: pair.join("key.pem"),
        },
        SystemTime::now(),
    )
    .unwrap_err();
    assert!(matches!(e, CertError::NoCertificate { .. }), "{e}");
    let acme = case.start(domain, &[ChallengeKind::Http01]);
    let again = case.wait(&acme, domain, "a new certificate", |s| s.issued == 1);
    assert_eq!(again.loaded, 0);
    assert_ne!(again.serial, st.serial);
    assert_eq!(Some(case.verified(domain)), again.serial);

    // A store path that cannot be a directory: Acme::start says which and why.
    let file = case.store.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let mut c = case.config(domain, &[ChallengeKind::Http01]);
    c.store = file.join("store");
    let _rt = case.server.runtime().enter();
    let e = Acme::start(
        c,
        SniResolver::new(TlsAlpnChallenges::new()),
        Http01Tokens::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot create the directory",
            file.join("store").display()
        )),
        "{e}"
    );
}
