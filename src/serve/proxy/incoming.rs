//! The request as the proxy sees it, from either front end: the HTTP/1 loop builds an
//! [`Incoming`] from its parsed head; actix-web's HTTP/2 requests come in through
//! [`Proxy::handle`], which builds one and reads the body first.

use super::relay::Watch;
use super::Proxy;
use crate::serve::fields::Fields;
use crate::serve::https::Front;
use crate::serve::message::page;
use crate::serve::socket::Peer;
use actix_web::dev::Payload;
use actix_web::http::header as ax;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// The local address of a client connection, kept in its connection data.
#[derive(Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

/// A request as the proxy sees it, from the HTTP/1 loop or from actix-web (HTTP/2).
pub struct Incoming<'a> {
    pub method: &'a str,
    /// Path and query in origin form (an absolute-form target's authority is `host`).
    pub target: &'a str,
    /// The target's path, still percent-encoded.
    pub path: &'a str,
    pub headers: &'a dyn Fields,
    /// The request's host: Host, an absolute-form target's authority, or HTTP/2's
    /// `:authority`; `None` for HTTP/1.0 without one.
    pub host: Option<&'a str>,
    pub peer: Option<Peer>,
    pub local: Option<std::net::SocketAddr>,
    /// An HTTP/1.0 request (no chunked coding for an answer of unknown length).
    pub http10: bool,
    /// The client's socket, watched for a close while the upstream works (HTTP/1 only: an
    /// HTTP/2 stream's task may outlive its connection's descriptor).
    pub client_fd: Option<std::os::unix::io::RawFd>,
    /// Came over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
}

impl<'a> Incoming<'a> {
    pub fn from_actix(req: &'a HttpRequest) -> Self {
        let host = req
            .headers()
            .get(ax::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        Incoming {
            method: req.method().as_str(),
            target: req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
            path: req.uri().path(),
            headers: req.headers(),
            host,
            peer: peer(req),
            local: req.conn_data::<LocalAddr>().map(|a| a.0),
            http10: req.version() < actix_web::http::Version::HTTP_11,
            // HTTP/2 streams run as tasks of their own that may outlive the socket.
            client_fd: None,
            https: req
                .conn_data::<std::sync::Arc<Front>>()
                .is_some_and(|f| f.secure),
        }
    }
}

/// The peer of an HTTP/2 request: actix knows a TCP peer's address; a Unix-socket
/// connection's [`Peer`] is in its connection data (see the `h1` factory).
pub fn peer(req: &HttpRequest) -> Option<Peer> {
    req.conn_data::<Peer>()
        .copied()
        .or_else(|| req.peer_addr().map(|a| Peer::ip(a.ip())))
}

impl Proxy {
    /// Every HTTP/2 request outside STATIC_URL (actix-web serves HTTP/2 only; HTTP/1 is
    /// the `h1` loop's, which calls [`Proxy::local`] and [`Proxy::forward`] itself).
    pub async fn handle(&self, req: &HttpRequest, payload: Payload) -> HttpResponse {
        let inc = Incoming::from_actix(req);
        let head = *req.method() == Method::HEAD;
        if let Some(r) = self.local(&inc) {
            return r.into_actix(head);
        }
        let mut watch = Watch::new(&inc);
        let body = match read_body(req, payload, self.opts.max_body).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                watch.done();
                tracing::info!(path = %req.uri(), "request body over --max-body ({} bytes): 413", self.opts.max_body);
                return page(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
                    .into_actix(head);
            }
            Err(BodyError::Client(e)) => {
                watch.done();
                tracing::info!(path = %req.uri(), "reading the request body failed: {e}");
                return page(StatusCode::BAD_REQUEST, "Bad Request").into_actix(head);
            }
        };
        let reply = self.forward(&inc, &body).await;
        watch.done();
        reply.into_actix(head)
    }
}

/// Why an HTTP/2 request body was not read.
enum BodyError {
    /// Over `--max-body`.
    TooLarge,
    /// The stream failed (reset, or a protocol error).
    Client(actix_web::error::PayloadError),
}

/// Reads the whole body of an HTTP/2 request, refusing more than `max` bytes (by
/// Content-Length up front, then by counting). Nothing reaches the upstream until this is
/// done. (HTTP/1 bodies are read by the `h1` loop.)
async fn read_body(req: &HttpRequest, mut payload: Payload, max: u64) -> Result<Bytes, BodyError> {
    let declared = req
        .headers()
        .get(ax::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if max > 0 && declared.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(1 << 20) as usize);
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(BodyError::Client)?;
        if max > 0 && (buf.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
