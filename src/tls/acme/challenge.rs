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

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The URL path prefix of HTTP-01 challenges.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 tokens and their key authorizations.
#[derive(Debug, Default)]
pub struct Http01Tokens {
    map: RwLock<HashMap<String, String>>,
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
        self.map.read().unwrap().get(token).cloned()
    }

    /// Whether `path` is under the challenge prefix at all: the HTTP→HTTPS redirect must not
    /// touch these even when no token is pending (RFC 8555 §8.3 validation follows redirects,
    /// but a 404 is clearer than a redirect to a certificate that does not exist yet).
    pub fn is_challenge_path(path: &str) -> bool {
        path.starts_with(HTTP01_PREFIX)
    }

    pub(crate) fn insert(self: &Arc<Self>, token: &str, key_authorization: &str) -> Pending {
        self.map
            .write()
            .unwrap()
            .insert(token.to_string(), key_authorization.to_string());
        Pending::Http01(self.clone(), token.to_string())
    }
}

/// Pending TLS-ALPN-01 challenge certificates by domain.
#[derive(Default)]
pub struct TlsAlpnChallenges {
    map: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for TlsAlpnChallenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.map.read().unwrap().keys().cloned().collect();
        f.debug_struct("TlsAlpnChallenges")
            .field("pending", &names)
            .finish()
    }
}

impl TlsAlpnChallenges {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// The challenge certificate for an SNI name.
    pub fn get(&self, sni: &str) -> Option<Arc<CertifiedKey>> {
        let name = super::super::names::normalize(sni)?;
        self.map.read().unwrap().get(&name).cloned()
    }

    pub(crate) fn insert(
        self: &Arc<Self>,
        domain: &str,
        key_authorization: &str,
    ) -> Result<Pending, rcgen::Error> {
        let cert = challenge_certificate(domain, key_authorization)?;
        let name = super::super::names::normalize(domain).unwrap_or_default();
        self.map
            .write()
            .unwrap()
            .insert(name.clone(), Arc::new(cert));
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
            Self::Http01(t, token) => {
                t.map.write().unwrap().remove(token);
            }
            Self::TlsAlpn01(c, name) => {
                c.map.write().unwrap().remove(name);
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
        let pending = t.insert("tok_EN-1", "tok_EN-1.thumb");
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
}
