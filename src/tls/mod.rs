//! HTTPS without another server in front: TLS for staticd's listeners, certificates from
//! files or obtained and renewed through ACME.
//!
//! At the crate root rather than under `serve`: nothing here knows HTTP. It turns a TCP
//! connection into a TLS stream plus "h2 or HTTP/1.1", keeps certificates current, and
//! holds the answers to ACME challenges; `serve` wires it to its listeners.
//!
//! One module per concern:
//! - [`config`]: the rustls `ServerConfig` (versions, suites, resumption, ALPN) and why.
//! - [`names`]: SNI name → certificate rules (pure).
//! - [`certs`]: loading and checking a PEM chain + key; the refusals (typed, with the path).
//! - [`resolver`]: [`SniResolver`], rustls's certificate chooser, swapped atomically.
//! - [`files`]: `--tls-cert`/`--tls-key` pairs and their reload on change or SIGHUP.
//! - [`accept`]: the handshake and the ALPN outcome for the listener.
//! - [`acme`]: automatic certificates (RFC 8555), the store, the challenges.
//!
//! Crates (see Cargo.toml for the why of each): rustls 0.23 with the aws-lc-rs provider,
//! tokio-rustls for the handshake on actix's tokio runtime, PEM through rustls's pki-types,
//! instant-acme for the ACME protocol, rcgen for CSRs and TLS-ALPN-01 certificates,
//! x509-parser to read names and dates from certificates.
//!
//! # Wiring (what `serve` does)
//! ```text
//! let challenges = TlsAlpnChallenges::new();
//! let resolver   = SniResolver::new(challenges);
//! let files      = FileCerts::load(pairs, resolver.clone())?;   // --tls-cert/--tls-key
//! let _watch     = files.watch()?;                              // SIGHUP: files.reload()
//! let http01     = Http01Tokens::new();
//! let acme       = Acme::start(acme_config, resolver.clone(), http01.clone())?; // on tokio
//! let acceptor   = TlsAcceptor::new(config::server_config(resolver, Options { acme_tls_alpn })?);
//! // per TLS connection:  acceptor.accept(tcp).await → Accepted::Http { stream, protocol, .. }
//! // per plain-HTTP request: http01.answer(path) → Some(body): 200 with that body
//! ```

pub mod accept;
pub mod acme;
pub mod certs;
pub mod config;
pub mod files;
pub mod names;
pub mod resolver;

pub use accept::{Accepted, Protocol, TlsAcceptor};
pub use acme::{Acme, AcmeConfig, AcmeHandle, Http01Tokens, TlsAlpnChallenges};
pub use certs::{CertError, CertPair};
pub use files::FileCerts;
pub use resolver::{SniResolver, Source};
