//! The certificate chooser rustls calls during every handshake.
//!
//! Certificates come from sources (each `--tls-cert` pair, each ACME domain); a source's
//! certificate is replaced as a whole when it reloads or renews. After each change the name
//! table ([`super::names`]) is rebuilt and swapped in with one atomic store, so a handshake
//! sees either the old table or the new one, and connections already established keep the
//! certificate they were handed. A TLS-ALPN-01 validation handshake (ALPN `acme-tls/1`, RFC
//! 8737) gets the challenge certificate for its SNI name instead, and nothing else.

use super::acme::challenge::TlsAlpnChallenges;
use super::certs::Loaded;
use super::config::ALPN_ACME_TLS;
use super::names::NameTable;
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Where a certificate comes from; its identity across reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The n-th `--tls-cert`/`--tls-key` pair (from 0, command-line order).
    File(usize),
    /// The ACME-managed certificate of this domain.
    Acme(String),
}

/// Chooses the certificate for each handshake by SNI; see [`super::names`] for the rules.
pub struct SniResolver {
    table: ArcSwap<NameTable<Arc<CertifiedKey>>>,
    /// In the order sources were first installed: that order decides precedence and the
    /// default certificate.
    sources: Mutex<Vec<(Source, Loaded)>>,
    challenges: Arc<TlsAlpnChallenges>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources = self.sources.lock().unwrap();
        f.debug_struct("SniResolver")
            .field("sources", &*sources)
            .finish()
    }
}

impl SniResolver {
    /// An empty resolver (every handshake fails until a certificate is installed).
    /// `challenges` is where ACME puts TLS-ALPN-01 certificates.
    pub fn new(challenges: Arc<TlsAlpnChallenges>) -> Arc<Self> {
        Arc::new(Self {
            table: ArcSwap::from_pointee(NameTable::new()),
            sources: Mutex::new(Vec::new()),
            challenges,
        })
    }

    /// Installs or replaces `source`'s certificate; new handshakes use it at once.
    pub fn set(&self, source: Source, loaded: Loaded) {
        let mut sources = self.sources.lock().unwrap();
        match sources.iter_mut().find(|(s, _)| *s == source) {
            Some(slot) => slot.1 = loaded,
            None => sources.push((source, loaded)),
        }
        let mut table = NameTable::new();
        for (_, l) in sources.iter() {
            table.insert(l.names.iter().map(String::as_str), l.key.clone());
        }
        self.table.store(Arc::new(table));
    }

    /// The certificate `source` has installed, if any.
    pub fn get(&self, source: &Source) -> Option<Loaded> {
        let sources = self.sources.lock().unwrap();
        sources
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, l)| l.clone())
    }

    /// The certificate a handshake with this SNI (or none) gets, outside ACME validation.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.load().lookup(sni).cloned()
    }

    /// Whether some certificate names `sni` itself (not only as the default).
    pub fn covers(&self, sni: &str) -> bool {
        self.table.load().lookup_name(Some(sni)).is_some()
    }

    pub fn challenges(&self) -> &Arc<TlsAlpnChallenges> {
        &self.challenges
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == ALPN_ACME_TLS));
        if acme {
            // RFC 8737 §3: a validation handshake names one domain and gets only its
            // challenge certificate; no challenge pending means no handshake.
            return self.challenges.get(hello.server_name()?);
        }
        self.lookup(hello.server_name())
    }
}
