//! The TLS handshake on an accepted connection, and what the connection is for afterwards.
//!
//! The listener calls [`TlsAcceptor::accept`] once per TCP connection and gets either an HTTP
//! stream with the protocol ALPN settled on (`h2` → the HTTP/2 server, `http/1.1` or no ALPN
//! → the HTTP/1 loop), or [`Accepted::AcmeValidation`]: a TLS-ALPN-01 validation handshake,
//! already finished and closed as RFC 8737 §3 asks ("the ACME server MUST close the
//! connection" once the handshake is done; it carries no application data).

use super::config::{ALPN_ACME_TLS, ALPN_H2, ALPN_HTTP11};
use rustls::ServerConfig;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::server::TlsStream;

/// The application protocol of a TLS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    H2,
    Http1,
    /// ALPN `acme-tls/1`: an ACME validation handshake.
    AcmeTls,
}

/// ALPN result → protocol. No ALPN means HTTP/1.1: clients that send none (`openssl
/// s_client`, older tools) speak HTTP/1.x. rustls only negotiates a protocol we offered.
pub fn protocol_of(alpn: Option<&[u8]>) -> Protocol {
    match alpn {
        Some(p) if p == ALPN_H2 => Protocol::H2,
        Some(p) if p == ALPN_ACME_TLS => Protocol::AcmeTls,
        Some(p) if p == ALPN_HTTP11 => Protocol::Http1,
        _ => Protocol::Http1,
    }
}

/// A connection after its handshake.
pub enum Accepted<IO> {
    /// Serve HTTP on `stream` with `protocol` ([`Protocol::H2`] or [`Protocol::Http1`]).
    Http {
        stream: Box<TlsStream<IO>>,
        protocol: Protocol,
        /// The SNI name the client sent (lower-case), for logs and `Host` checks.
        sni: Option<String>,
    },
    /// A TLS-ALPN-01 validation handshake, done and closed: nothing to serve.
    AcmeValidation,
}

/// Runs handshakes with one [`ServerConfig`].
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
}

/// A client gets this long to finish its handshake (nginx's `ssl_handshake_timeout`
/// default is 60 s; 10 s is ample for a real client and frees the slot of a stalled one).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsAcceptor {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            inner: tokio_rustls::TlsAcceptor::from(config),
            handshake_timeout: HANDSHAKE_TIMEOUT,
        }
    }

    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Runs the handshake. Errors are the client's (bad hello, no common protocol version or
    /// ALPN, no certificate for an ACME validation name, timeout): log at debug and drop.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<Accepted<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut stream = tokio::time::timeout(self.handshake_timeout, self.inner.accept(io))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let conn = stream.get_ref().1;
        let protocol = protocol_of(conn.alpn_protocol());
        if protocol == Protocol::AcmeTls {
            let _ = stream.shutdown().await;
            return Ok(Accepted::AcmeValidation);
        }
        let sni = conn.server_name().map(str::to_string);
        Ok(Accepted::Http {
            stream: Box::new(stream),
            protocol,
            sni,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::acme::TlsAlpnChallenges;
    use crate::tls::certs::{from_pem, testing::self_signed, testing::AcceptAnything};
    use crate::tls::config::{server_config, Options};
    use crate::tls::resolver::{SniResolver, Source};
    use rustls::pki_types::ServerName;
    use std::path::Path;

    #[test]
    fn alpn_chooses_the_server() {
        assert_eq!(protocol_of(Some(b"h2")), Protocol::H2);
        assert_eq!(protocol_of(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(protocol_of(None), Protocol::Http1);
        assert_eq!(protocol_of(Some(b"acme-tls/1")), Protocol::AcmeTls);
    }

    /// Handshakes `alpn`/`sni` against `acceptor` in memory: the server's outcome and the
    /// names in the certificate the client received.
    async fn handshake(
        acceptor: &TlsAcceptor,
        alpn: &[&[u8]],
        sni: &str,
    ) -> (
        io::Result<Accepted<tokio::io::DuplexStream>>,
        Option<Vec<String>>,
    ) {
        let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::certs::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything))
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(sni.to_string()).unwrap();
        // The client stream is kept until the server is done too (it still writes tickets).
        let (server, client) = tokio::join!(acceptor.accept(server_io), async {
            let s = connector.connect(name, client_io).await.ok()?;
            let leaf = s.get_ref().1.peer_certificates()?[0].clone();
            Some((s, crate::tls::certs::leaf_info(&leaf).unwrap().names))
        });
        (server, client.map(|(_, names)| names))
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_handshake_yields_the_protocol_and_sni_and_acme_tls_gets_only_its_challenge() {
        let challenges = TlsAlpnChallenges::new();
        let resolver = SniResolver::new(challenges.clone());
        let m = self_signed(&["a.test"], 2020, 2090);
        let l = from_pem(
            m.cert_pem.as_bytes(),
            Path::new("a.crt"),
            m.key_pem.as_bytes(),
            Path::new("a.key"),
            std::time::SystemTime::now(),
        )
        .unwrap();
        resolver.set(Source::File(0), l);
        let config = server_config(
            resolver,
            Options {
                acme_tls_alpn: true,
            },
        )
        .unwrap();
        let acceptor = TlsAcceptor::new(config);
        runtime().block_on(async {
            let (server, names) = handshake(&acceptor, &[b"h2", b"http/1.1"], "A.test").await;
            let (protocol, sni) = match server {
                Ok(Accepted::Http { protocol, sni, .. }) => (protocol, sni),
                Ok(Accepted::AcmeValidation) => panic!("an ACME validation"),
                Err(e) => panic!("{e}"),
            };
            assert_eq!((protocol, sni.as_deref()), (Protocol::H2, Some("a.test")));
            assert_eq!(names.unwrap(), ["a.test"]);

            let (server, _) = handshake(&acceptor, &[b"http/1.1"], "a.test").await;
            assert!(matches!(
                server,
                Ok(Accepted::Http {
                    protocol: Protocol::Http1,
                    ..
                })
            ));

            // No challenge pending: an acme-tls/1 handshake fails, even for a served name.
            let (server, names) = handshake(&acceptor, &[b"acme-tls/1"], "a.test").await;
            assert!(server.is_err() && names.is_none());

            let pending = challenges.insert("a.test", "tok.thumb").unwrap();
            let (server, names) = handshake(&acceptor, &[b"acme-tls/1"], "a.test").await;
            assert!(matches!(server, Ok(Accepted::AcmeValidation)));
            assert_eq!(names.unwrap(), ["a.test"]);
            drop(pending);
        });
    }

    #[test]
    fn a_silent_client_is_dropped_after_the_handshake_timeout() {
        let resolver = SniResolver::new(TlsAlpnChallenges::new());
        let config = server_config(resolver, Options::default()).unwrap();
        let acceptor = TlsAcceptor::new(config).with_handshake_timeout(Duration::from_millis(50));
        runtime().block_on(async {
            let (_client, server_io) = tokio::io::duplex(1024);
            let e = acceptor.accept(server_io).await.err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        });
    }
}
