//! The rustls `ServerConfig` every TLS listener shares.
//!
//! - **Versions**: TLS 1.3 and 1.2 only. rustls implements nothing older: a ClientHello that
//!   offers only TLS 1.0/1.1 is answered with a fatal `handshake_failure` alert (seen with
//!   `openssl s_client -tls1`; tests/tls_handshake.rs).
//! - **Cipher suites** (aws-lc-rs's defaults, which are Mozilla's "intermediate" list minus
//!   the DHE ones): TLS 1.3 AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305; TLS 1.2 ECDHE with
//!   ECDSA or RSA and the same three AEADs. No CBC, no RSA key exchange, no SHA-1 MAC: all
//!   forward-secret and authenticated. The client's order is honoured (`ignore_client_order`
//!   stays false), as Mozilla recommends when every suite offered is strong: a phone without
//!   AES instructions picks ChaCha20.
//! - **Key exchange**: X25519MLKEM768 (post-quantum hybrid, what current browsers offer),
//!   X25519, P-256, P-384.
//! - **Resumption**: stateless tickets from rustls's rotating ticketer (AES-256 + HMAC, key
//!   rotated every 6 h, tickets live 12 h) for TLS 1.3 and 1.2, plus an in-memory session-ID
//!   cache for TLS 1.2 clients without ticket support. Ticket keys are per process: a client
//!   that moves to another replica does one full handshake.
//! - **0-RTT** stays off: early data can be replayed, and nothing here needs it.
//! - **ALPN**: `h2`, then `http/1.1` (the server's order decides in rustls: h2 when the client
//!   offers both), plus `acme-tls/1` when ACME's TLS-ALPN-01 challenge is on. A client that
//!   sends ALPN without any of these gets `no_application_protocol` (RFC 7301 §3.2); one that
//!   sends no ALPN speaks HTTP/1.1.

use super::resolver::SniResolver;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;
use std::sync::Arc;

pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// RFC 8737: the ALPN protocol of TLS-ALPN-01 validation handshakes.
pub const ALPN_ACME_TLS: &[u8] = b"acme-tls/1";

/// TLS 1.2 sessions remembered by ID (nginx's `ssl_session_cache shared:SSL:10m` keeps about
/// 40 000; one entry here is a few hundred bytes).
pub const SESSION_CACHE_SIZE: usize = 10_000;

/// The provider: aws-lc-rs with rustls's default suites and groups (listed above).
pub fn crypto_provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// What the listener offers beyond the fixed policy above.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Offer `acme-tls/1` (ACME with the TLS-ALPN-01 challenge is on).
    pub acme_tls_alpn: bool,
}

/// The server configuration: policy above, certificates from `resolver`.
pub fn server_config(
    resolver: Arc<SniResolver>,
    opts: Options,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(super::certs::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    if opts.acme_tls_alpn {
        config.alpn_protocols.push(ALPN_ACME_TLS.to_vec());
    }
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}
