//! Loading one certificate (PEM, full chain) and its private key, and refusing the ones no
//! client should get: unparseable, a key that is not the certificate's, expired, or naming
//! no host. The same check guards the first load, every reload and every ACME certificate,
//! so a bad new file never replaces a good certificate in use.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One `--tls-cert`/`--tls-key` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// PEM: the server's certificate first, then the intermediates (a "full chain").
    pub cert: PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key; may be the same file as `cert`.
    pub key: PathBuf,
}

/// A certificate that passed the checks, ready for rustls.
#[derive(Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// subjectAltName DNS names (lower-cased, `*.` wildcards kept) then IP addresses. The
    /// subject's CN is ignored, as browsers do (RFC 6125 §6.4.4).
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Serial number in upper-case hex, whole bytes, without leading zero bytes (as `openssl
    /// x509 -serial` prints it).
    pub serial: String,
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("names", &self.names)
            .field("serial", &self.serial)
            .field("not_after", &httpdate::fmt_http_date(self.not_after))
            .finish()
    }
}

/// Why a certificate or key file was refused. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no PEM \"CERTIFICATE\" in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no PEM private key in it", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable private key: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{}: not a valid X.509 certificate: {reason}", path.display())]
    X509 { path: PathBuf, reason: String },
    #[error("{}: this private key does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{}: the certificate expired on {}", path.display(), httpdate::fmt_http_date(*not_after))]
    Expired {
        path: PathBuf,
        not_after: SystemTime,
    },
    #[error("{}: the certificate names no host (no DNS name or IP address in its subjectAltName)", path.display())]
    NoName { path: PathBuf },
}

impl CertError {
    /// The file at fault.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::Pem { path, .. }
            | Self::NoCertificate { path }
            | Self::NoKey { path }
            | Self::Key { path, .. }
            | Self::X509 { path, .. }
            | Self::Expired { path, .. }
            | Self::NoName { path } => path,
            Self::KeyMismatch { key, .. } => key,
        }
    }
}

/// Reads and checks a pair from disk (see [`from_pem`]).
pub fn load_pair(pair: &CertPair, now: SystemTime) -> Result<Loaded, CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    from_pem(
        &read(&pair.cert)?,
        &pair.cert,
        &read(&pair.key)?,
        &pair.key,
        now,
    )
}

fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "PEM section has no closing {:?} line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "malformed PEM BEGIN line {:?}",
            String::from_utf8_lossy(line)
        ),
        pem::Error::Base64Decode(e) => format!("PEM section is not valid base64: {e}"),
        other => format!("cannot read PEM: {other}"),
    }
}

/// Checks a certificate chain and key given as PEM; the paths only name them in errors.
/// `now` decides expiry (a parameter so tests can move the clock).
pub fn from_pem(
    cert_pem: &[u8],
    cert_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
    now: SystemTime,
) -> Result<Loaded, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            path: cert_path.to_path_buf(),
            reason: pem_reason(&e),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => CertError::NoKey {
            path: key_path.to_path_buf(),
        },
        e => CertError::Pem {
            path: key_path.to_path_buf(),
            reason: pem_reason(&e),
        },
    })?;
    certified(chain, key_der, cert_path, key_path, now)
}

/// The checks on parsed DER, shared with ACME (which has the PEM in memory).
pub fn certified(
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
    now: SystemTime,
) -> Result<Loaded, CertError> {
    let info = leaf_info(&chain[0]).map_err(|reason| CertError::X509 {
        path: cert_path.to_path_buf(),
        reason,
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| CertError::Key {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let key = CertifiedKey::new(chain, signing_key);
    match key.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(CertError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })
        }
        // Unknown: the provider cannot tell a key's public half; the handshake will.
        Err(rustls::Error::InconsistentKeys(_)) => {}
        Err(e) => {
            return Err(CertError::X509 {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    }
    if info.not_after < now {
        return Err(CertError::Expired {
            path: cert_path.to_path_buf(),
            not_after: info.not_after,
        });
    }
    if info.names.is_empty() {
        return Err(CertError::NoName {
            path: cert_path.to_path_buf(),
        });
    }
    if info.not_before > now {
        // Not refused: a CA's clock a little ahead of ours must not block a renewal, and the
        // certificate becomes good by itself.
        tracing::warn!(
            "{}: certificate not valid before {}",
            cert_path.display(),
            httpdate::fmt_http_date(info.not_before)
        );
    }
    Ok(Loaded {
        key: Arc::new(key),
        names: info.names,
        not_before: info.not_before,
        not_after: info.not_after,
        serial: info.serial,
    })
}

/// What the leaf certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafInfo {
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial: String,
}

/// Names, validity and serial of a DER certificate.
pub fn leaf_info(der: &[u8]) -> Result<LeafInfo, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    let mut ips = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => {
                    if let Some(n) = super::names::normalize(n) {
                        names.push(n);
                    }
                }
                GeneralName::IPAddress(b) => {
                    if let Ok(a) = <[u8; 4]>::try_from(*b) {
                        ips.push(std::net::Ipv4Addr::from(a).to_string());
                    } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                        ips.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    names.extend(ips);
    let time = |t: i64| {
        if t >= 0 {
            UNIX_EPOCH + Duration::from_secs(t as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(t.unsigned_abs())
        }
    };
    let validity = cert.validity();
    let serial = cert
        .raw_serial()
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02X}"))
        .collect::<String>();
    Ok(LeafInfo {
        names,
        not_before: time(validity.not_before.timestamp()),
        not_after: time(validity.not_after.timestamp()),
        serial: if serial.is_empty() {
            "0".into()
        } else {
            serial
        },
    })
}

/// The crypto provider of every TLS object staticd makes (see the module docs for why
/// aws-lc-rs), with the cipher suites and key exchange groups of [`super::config`].
pub fn provider() -> Arc<CryptoProvider> {
    static P: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    P.get_or_init(|| Arc::new(super::config::crypto_provider()))
        .clone()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Certificates made on the spot for unit tests.
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    pub struct Made {
        pub cert_pem: String,
        pub key_pem: String,
    }

    /// A client's verifier that accepts any certificate, for unit tests whose point is what
    /// the server chose or sent, not chain validation (the integration tests do that).
    #[derive(Debug)]
    pub struct AcceptAnything;
    impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            crate::tls::certs::provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// A self-signed certificate for `names` (none: a CN only), valid between the two years.
    pub fn self_signed(names: &[&str], from: i32, until: i32) -> Made {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("cn.test"),
        );
        params.subject_alt_names = names
            .iter()
            .map(|n| SanType::DnsName((*n).try_into().unwrap()))
            .collect();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        Made {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::self_signed;
    use super::*;

    fn check(cert: &str, key: &str) -> Result<Loaded, CertError> {
        from_pem(
            cert.as_bytes(),
            Path::new("/etc/x/cert.pem"),
            key.as_bytes(),
            Path::new("/etc/x/key.pem"),
            SystemTime::now(),
        )
    }

    #[test]
    fn a_good_pair_loads_with_its_names_and_dates() {
        let m = self_signed(&["A.test", "*.wild.test"], 2020, 2090);
        let l = check(&m.cert_pem, &m.key_pem).unwrap();
        assert_eq!(l.names, ["a.test", "*.wild.test"]);
        assert!(l.not_before < SystemTime::now() && l.not_after > SystemTime::now());
        assert!(
            l.serial.len().is_multiple_of(2) && !l.serial.starts_with("00"),
            "{}",
            l.serial
        );
        assert!(l
            .serial
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
    }

    #[test]
    fn the_key_may_share_the_certificate_file() {
        let m = self_signed(&["a.test"], 2020, 2090);
        let both = format!("{}{}", m.cert_pem, m.key_pem);
        check(&both, &both).unwrap();
    }

    #[test]
    fn garbage_is_refused_naming_the_file() {
        let m = self_signed(&["a.test"], 2020, 2090);
        let e = check("not a certificate\n", &m.key_pem).unwrap_err();
        assert!(matches!(e, CertError::NoCertificate { .. }), "{e}");
        assert_eq!(e.path(), Path::new("/etc/x/cert.pem"));
        assert!(e.to_string().starts_with("/etc/x/cert.pem: "), "{e}");

        let truncated = &m.cert_pem[..m.cert_pem.len() - 30];
        let e = check(truncated, &m.key_pem).unwrap_err();
        assert!(matches!(e, CertError::Pem { .. }), "{e}");

        let e = check(&m.cert_pem, &m.cert_pem).unwrap_err();
        assert!(matches!(e, CertError::NoKey { .. }), "{e}");
        assert_eq!(e.path(), Path::new("/etc/x/key.pem"));

        let bad_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = check(bad_der, &m.key_pem).unwrap_err();
        assert!(matches!(e, CertError::X509 { .. }), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = self_signed(&["a.test"], 2020, 2090);
        let b = self_signed(&["a.test"], 2020, 2090);
        let e = check(&a.cert_pem, &b.key_pem).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "/etc/x/key.pem: this private key does not belong to the certificate in /etc/x/cert.pem"
        );
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let m = self_signed(&["a.test"], 2001, 2002);
        let e = check(&m.cert_pem, &m.key_pem).unwrap_err();
        assert!(matches!(e, CertError::Expired { .. }), "{e}");
        assert!(e.to_string().contains("expired on Tue, 01 Jan 2002"), "{e}");
    }

    #[test]
    fn a_certificate_without_names_is_refused() {
        let m = self_signed(&[], 2020, 2090);
        let e = check(&m.cert_pem, &m.key_pem).unwrap_err();
        assert!(matches!(e, CertError::NoName { .. }), "{e}");
    }
}
