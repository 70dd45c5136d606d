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

    #[test]
    fn alpn_chooses_the_server() {
        assert_eq!(protocol_of(Some(b"h2")), Protocol::H2);
        assert_eq!(protocol_of(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(protocol_of(None), Protocol::Http1);
        assert_eq!(protocol_of(Some(b"acme-tls/1")), Protocol::AcmeTls);
    }
}
