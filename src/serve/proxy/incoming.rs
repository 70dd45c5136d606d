//! The request as the proxy sees it, from either front end: the HTTP/1 loop builds an
//! [`Incoming`] from its parsed head, the HTTP/2 server (`h2`) from a stream's head; both
//! read the body first.

use crate::serve::fields::Fields;
use crate::serve::socket::Peer;

/// A request as the proxy sees it, from the HTTP/1 loop or the HTTP/2 server.
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
    /// HTTP/2 stream is watched for its RST_STREAM by the `h2` server).
    pub client_fd: Option<std::os::unix::io::RawFd>,
    /// Came over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
    /// The answer will be logged or counted: the upstream's address and header time are
    /// wanted (a clock read and a string otherwise saved).
    pub timed: bool,
}
