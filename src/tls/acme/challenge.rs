//! The answers ACME validation expects while an order is pending, shared with the listeners.
//!
//! - HTTP-01 (RFC 8555 §8.3): `GET /.well-known/acme-challenge/<token>` on port 80 answers
//!   the key authorization. [`Http01Tokens::answer`] is what the plain-HTTP listener calls.
//! - TLS-ALPN-01 (RFC 8737): a handshake on port 443 with ALPN `acme-tls/1` and SNI the
//!   domain gets a self-signed certificate for the domain carrying the critical
//!   `acmeIdentifier` extension (SHA-256 of the key authorization). [`TlsAlpnChallenges`] is
//!   read by [`crate::tls::resolver::SniResolver`].
//!
//! Entries live only while their order is being validated ([`Pending`] removes them).
//!
//! Replicas behind one load balancer: the CA's validation request may reach any replica,
//! not the one that placed the order. So once [`Acme::start`](super::Acme::start) has opened
//! the store, answers are also written there (`challenges/http-01/<token>`,
//! `challenges/tls-alpn-01/<domain>`: the key authorization, 0600) and a replica that has
//! no answer in memory looks there, as Caddy's shared storage does. A file left by a crashed
//! process answers a token the CA has forgotten: harmless.

use super::store::{write_private, StoreError};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The URL path prefix of HTTP-01 challenges.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Whether `key` (a token or a domain) is safe as a file name: base64url and DNS characters,
/// not starting with a dot.
fn safe_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Key authorizations by key, in memory and, once shared, in a store directory.
#[derive(Debug, Default)]
struct Answers {
    map: RwLock<HashMap<String, String>>,
    shared: RwLock<Option<PathBuf>>,
}

impl Answers {
    fn get(&self, key: &str) -> Option<String> {
        if let Some(v) = self.map.read().unwrap().get(key) {
            return Some(v.clone());
        }
        let dir = self.shared.read().unwrap().clone()?;
        if !safe_key(key) {
            return None;
        }
        std::fs::read_to_string(dir.join(key)).ok()
    }

    fn put(&self, key: &str, key_authorization: &str) -> Result<(), StoreError> {
        if let Some(dir) = self.shared.read().unwrap().as_ref() {
            if safe_key(key) {
                write_private(&dir.join(key), key_authorization.as_bytes())?;
            }
        }
        self.map
            .write()
            .unwrap()
            .insert(key.to_string(), key_authorization.to_string());
        Ok(())
    }

    fn remove(&self, key: &str) {
        self.map.write().unwrap().remove(key);
        if let Some(dir) = self.shared.read().unwrap().as_ref() {
            if safe_key(key) {
                let _ = std::fs::remove_file(dir.join(key));
            }
        }
    }

    fn share(&self, dir: PathBuf) -> Result<(), StoreError> {
        super::store::private_dir(&dir)?;
        *self.shared.write().unwrap() = Some(dir);
        Ok(())
    }
}

/// Pending HTTP-01 tokens and their key authorizations.
#[derive(Debug, Default)]
pub struct Http01Tokens {
    answers: Answers,
}

impl Http01Tokens {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The body to answer for a request path (no query), or `None` if the path is not a
    /// pending challenge (the listener then does whatever it does with other paths). The
    /// answer is `200`, `Content-Type: application/octet-stream`, this body, nothing else.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        // RFC 8555 §8.1: tokens are base64url, so a '/', '%' or '.' is never one.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        self.answers.get(token)
    }

    /// Whether `path` is under the challenge prefix at all: the HTTP→HTTPS redirect must not
    /// touch these even when no token is pending (RFC 8555 §8.3 validation follows redirects,
    /// but a 404 is clearer than a redirect to a certificate that does not exist yet).
    pub fn is_challenge_path(path: &str) -> bool {
        path.starts_with(HTTP01_PREFIX)
    }

    /// Also keep answers in `dir` (in the store), and look there for other replicas'.
    pub fn share_through(&self, dir: PathBuf) -> Result<(), StoreError> {
        self.answers.share(dir)
    }

    pub(crate) fn insert(
        self: &Arc<Self>,
        token: &str,
        key_authorization: &str,
    ) -> Result<Pending, StoreError> {
        self.answers.put(token, key_authorization)?;
        Ok(Pending::Http01(self.clone(), token.to_string()))
    }
}

/// Pending TLS-ALPN-01 challenges by domain, and their certificates.
#[derive(Default)]
pub struct TlsAlpnChallenges {
    answers: Answers,
    /// Certificates made so far, with the key authorization each was made for.
    certs: RwLock<HashMap<String, (String, Arc<CertifiedKey>)>>,
}

impl std::fmt::Debug for TlsAlpnChallenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAlpnChallenges")
            .field("answers", &self.answers)
            .finish()
    }
}

impl TlsAlpnChallenges {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Also keep answers in `dir` (in the store), and look there for other replicas'.
    pub fn share_through(&self, dir: PathBuf) -> Result<(), StoreError> {
        self.answers.share(dir)
    }

    /// The challenge certificate for an SNI name, made on first use (a P-256 key and a
    /// signature: about a millisecond, once per pending challenge).
    pub fn get(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let name = super::super::names::normalize(sni)?;
        let ka = self.answers.get(&name)?;
        if let Some((made_for, cert)) = self.certs.read().unwrap().get(&name) {
            if *made_for == ka {
                return Some(cert.clone());
            }
        }
        let cert = Arc::new(challenge_certificate(&name, &ka).ok()?);
        self.certs.write().unwrap().insert(name, (ka, cert.clone()));
        Some(cert)
    }

    pub(crate) fn insert(
        self: &Arc<Self>,
        domain: &str,
        key_authorization: &str,
    ) -> Result<Pending, StoreError> {
        let name = super::super::names::normalize(domain).unwrap_or_default();
        self.answers.put(&name, key_authorization)?;
        Ok(Pending::TlsAlpn01(self.clone(), name))
    }
}

/// RFC 8737 §3: self-signed, subjectAltName the one domain, critical acmeIdentifier holding
/// SHA-256(key authorization). A fresh P-256 key each time; nothing trusts it.
pub fn challenge_certificate(
    domain: &str,
    key_authorization: &str,
) -> Result<CertifiedKey, rcgen::Error> {
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest.as_ref()));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = crate::tls::certs::provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|_| rcgen::Error::CouldNotParseKeyPair)?;
    Ok(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing,
    ))
}

/// A pending challenge answer; dropping it withdraws the answer.
#[must_use]
pub(crate) enum Pending {
    Http01(Arc<Http01Tokens>, String),
    TlsAlpn01(Arc<TlsAlpnChallenges>, String),
}

impl Drop for Pending {
    fn drop(&mut self) {
        match self {
            Self::Http01(t, token) => t.answers.remove(token),
            Self::TlsAlpn01(c, name) => {
                c.answers.remove(name);
                c.certs.write().unwrap().remove(name.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_pending_tokens_at_the_exact_path() {
        let t = Http01Tokens::new();
        let pending = t.insert("tok_EN-1", "tok_EN-1.thumb").unwrap();
        assert_eq!(
            t.answer("/.well-known/acme-challenge/tok_EN-1").as_deref(),
            Some("tok_EN-1.thumb")
        );
        assert_eq!(t.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(t.answer("/.well-known/acme-challenge/tok_EN-1/"), None);
        assert_eq!(t.answer("/.well-known/acme-challenge/"), None);
        assert_eq!(t.answer("/x/.well-known/acme-challenge/tok_EN-1"), None);
        assert!(Http01Tokens::is_challenge_path(
            "/.well-known/acme-challenge/x"
        ));
        assert!(!Http01Tokens::is_challenge_path("/.well-known/other"));
        drop(pending);
        assert_eq!(t.answer("/.well-known/acme-challenge/tok_EN-1"), None);
    }

    #[test]
    fn the_tls_alpn_certificate_carries_the_critical_acme_identifier() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let ka = "token.thumbprint";
        // (Not `keys_match()`: webpki refuses to parse a certificate with an unknown critical
        // extension, which is the point of this one. Pebble checks it for real.)
        let ck = challenge_certificate("a.test", ka).unwrap();
        let (_, cert) = X509Certificate::from_der(&ck.cert[0]).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ka.as_bytes());
        // DER OCTET STRING (0x04, length 32) around the digest.
        assert_eq!(ext.value[..2], [0x04, 32]);
        assert_eq!(&ext.value[2..], digest.as_ref());
        let info = crate::tls::certs::leaf_info(&ck.cert[0]).unwrap();
        assert_eq!(info.names, ["a.test"]);

        let c = TlsAlpnChallenges::new();
        let pending = c.insert("A.Test", ka).unwrap();
        assert!(c.get("a.test").is_some());
        assert!(c.get("b.test").is_none());
        drop(pending);
        assert!(c.get("a.test").is_none());
    }

    #[test]
    fn replicas_sharing_a_directory_answer_each_others_challenges() {
        let tmp = tempfile::tempdir().unwrap();
        let (one, other) = (Http01Tokens::new(), Http01Tokens::new());
        one.share_through(tmp.path().join("http-01")).unwrap();
        other.share_through(tmp.path().join("http-01")).unwrap();
        let pending = one.insert("tok", "tok.thumb").unwrap();
        let path = "/.well-known/acme-challenge/tok";
        assert_eq!(other.answer(path).as_deref(), Some("tok.thumb"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join("http-01/tok"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(pending);
        assert_eq!(other.answer(path), None);

        let (one, other) = (TlsAlpnChallenges::new(), TlsAlpnChallenges::new());
        one.share_through(tmp.path().join("tls-alpn-01")).unwrap();
        other.share_through(tmp.path().join("tls-alpn-01")).unwrap();
        let pending = one.insert("a.test", "t.thumb").unwrap();
        let cert = other.get("a.test").expect("answered through the directory");
        let info = crate::tls::certs::leaf_info(&cert.cert[0]).unwrap();
        assert_eq!(info.names, ["a.test"]);
        // A name that is no file name never reaches the filesystem.
        assert!(other.get("../http-01/tok").is_none());
        drop(pending);
        assert!(other.get("a.test").is_none());
    }
}
