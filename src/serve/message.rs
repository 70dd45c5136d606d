//! The request and the response as every part of `serve` passes them around, whatever
//! protocol carries them: [`Verb`] and [`Request`] (what the static tier and the file mounts
//! read of a request), [`Reply`] and its [`Body`] (a complete answer).
//!
//! The HTTP/1 loop (`h1`) writes a [`Reply`] straight to the socket, the HTTP/2 server
//! (`h2::write`) onto a stream. Nothing here knows either side, so the static
//! tier (`respond`), the proxy and both front ends share these types without depending on
//! one another.

use super::body::Segment;
use super::conditional::Conditions;
use super::fields::Fields;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use std::borrow::Cow;

/// A response's headers, in order. Values are borrowed from the table where they can be:
/// the HTTP/1 loop writes them without copying or touching a refcount.
pub type Headers<'a> = Vec<(HeaderName, Cow<'a, HeaderValue>)>;

/// The request method, as far as the static tier cares.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Head,
    #[default]
    Other,
}

/// The parts of a request the static tier reads (raw header bytes; `None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Request<'a> {
    pub accept_encoding: Option<&'a [u8]>,
    pub conditions: Conditions<'a>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
    /// RFC 9842: the dictionary the client has, and what decides whether it may be used.
    pub available_dictionary: Option<&'a [u8]>,
    pub sec_fetch_site: Option<&'a [u8]>,
    pub sec_fetch_mode: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    /// The request carried `Authorization`: the one case where `public` changes what a
    /// shared cache may do with the answer (see [`Request::cache_control`]).
    pub authorization: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// From any header source (first value of each field, as actix's `get`).
    pub fn from_fields(h: &'a dyn Fields) -> Self {
        let mut r = Request::default();
        h.each(&mut |name, value| {
            let slot = match name.len() {
                5 if name.eq_ignore_ascii_case("range") => &mut r.range,
                6 if name.eq_ignore_ascii_case("origin") => &mut r.origin,
                13 if name.eq_ignore_ascii_case("authorization") => &mut r.authorization,
                14 if name.eq_ignore_ascii_case("sec-fetch-site") => &mut r.sec_fetch_site,
                14 if name.eq_ignore_ascii_case("sec-fetch-mode") => &mut r.sec_fetch_mode,
                20 if name.eq_ignore_ascii_case("available-dictionary") => {
                    &mut r.available_dictionary
                }
                8 if name.eq_ignore_ascii_case("if-match") => &mut r.conditions.if_match,
                8 if name.eq_ignore_ascii_case("if-range") => &mut r.if_range,
                13 if name.eq_ignore_ascii_case("if-none-match") => &mut r.conditions.if_none_match,
                15 if name.eq_ignore_ascii_case("accept-encoding") => &mut r.accept_encoding,
                17 if name.eq_ignore_ascii_case("if-modified-since") => {
                    &mut r.conditions.if_modified_since
                }
                19 if name.eq_ignore_ascii_case("if-unmodified-since") => {
                    &mut r.conditions.if_unmodified_since
                }
                _ => return,
            };
            slot.get_or_insert(value);
        });
        r
    }

    /// The `Cache-Control` of a file answer to this request, from the file's own (which
    /// never says `public`): `public, ` in front when the request carried `Authorization`,
    /// since a shared cache may store an answer to such a request only if it says so (RFC
    /// 9111 §3.5: a staging site behind basic auth keeps its CDN); on any other request
    /// `public` changes nothing, and REDbot calls it unnecessary. nginx's `expires` sends
    /// none either.
    pub fn cache_control<'v>(&self, own: &'v HeaderValue) -> Cow<'v, HeaderValue> {
        if self.authorization.is_none() {
            return Cow::Borrowed(own);
        }
        let mut v = b"public, ".to_vec();
        v.extend_from_slice(own.as_bytes());
        Cow::Owned(HeaderValue::from_bytes(&v).expect("a valid value after a valid prefix"))
    }
}

impl Verb {
    pub fn of(m: &Method) -> Verb {
        match *m {
            Method::GET => Verb::Get,
            Method::HEAD => Verb::Head,
            _ => Verb::Other,
        }
    }
}

/// Bytes still arriving (a proxied response streamed as the upstream produces it).
pub type Stream = std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Bytes>>>>;

/// A response body.
pub enum Body {
    Empty,
    Mem(Bytes),
    /// File ranges and memory pieces (part headers of `multipart/byteranges`), in order.
    Parts {
        segments: Vec<Segment>,
        /// Shared: the table keeps the files it serves open (`Variant::kept`).
        file: Option<std::sync::Arc<std::fs::File>>,
    },
    /// The answer to HEAD when the bytes are not at hand: the length GET would send.
    Omitted(u64),
    /// Streamed; `len` when declared (Content-Length), else chunked (or until close for
    /// HTTP/1.0).
    Stream {
        len: Option<u64>,
        stream: Stream,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Stream { len, .. } => write!(f, "Stream({len:?})"),
            other => write!(f, "Body({:?})", other.size()),
        }
    }
}

impl Body {
    /// The length, when known before sending (`None`: a stream of undeclared length).
    pub fn known_size(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Mem(b) => Some(b.len() as u64),
            Body::Parts { segments, .. } => Some(segments.iter().map(Segment::size).sum()),
            Body::Omitted(n) => Some(*n),
            Body::Stream { len, .. } => *len,
        }
    }

    pub fn size(&self) -> u64 {
        self.known_size().unwrap_or(0)
    }
}

/// A complete answer, independent of the HTTP implementation that writes it.
#[derive(Debug)]
pub struct Reply<'a> {
    pub status: StatusCode,
    pub headers: Headers<'a>,
    pub body: Body,
    /// A file vanished or changed under the table: the caller asks for a reload.
    pub stale: bool,
    /// Write nothing and close the connection (the client already left: nginx's 499).
    pub close: bool,
    /// The upstream that answered, for the access log (`None` when none did).
    pub upstream: Option<Upstream>,
    /// A streamed body is not read ahead of a slow client (the upstream said
    /// `X-Accel-Buffering: no`, nginx's per-response `proxy_buffering off`).
    pub unbuffered: bool,
}

/// The upstream that answered a proxied request: nginx's `$upstream_addr` and
/// `$upstream_header_time`. Carried into HTTP/2 responses as an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub addr: std::sync::Arc<str>,
    /// From the start of the attempt that answered (connect included) to its response head.
    pub header_time: std::time::Duration,
}

impl<'a> Reply<'a> {
    pub fn new(status: StatusCode) -> Self {
        Reply {
            status,
            // Room for the most a response carries (a 206 of a coded asset: 10) and a few
            // header rules (`header_rules`), so the list does not grow.
            headers: Headers::with_capacity(14),
            body: Body::Empty,
            stale: false,
            close: false,
            upstream: None,
            unbuffered: false,
        }
    }

    /// Marks the answer as coming from a table that no longer matches the disk: the
    /// reloader is woken.
    pub fn stale(mut self) -> Self {
        self.stale = true;
        self
    }

    /// 404 for anything not in the table: no body worth caching, no hint of what exists.
    pub fn not_found() -> Self {
        let mut r = Reply::new(StatusCode::NOT_FOUND);
        r.headers.push((
            header::CONTENT_TYPE,
            Cow::Owned(HeaderValue::from_static("text/plain; charset=utf-8")),
        ));
        r.body = Body::Mem(Bytes::from_static(b"404 Not Found\n"));
        r
    }

    /// Its `Content-Encoding`, for the metrics' bytes-by-coding.
    pub fn content_coding(&self) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == header::CONTENT_ENCODING)
            .map(|(_, v)| v.as_bytes())
    }
}

/// A short HTML error page titled `title`.
pub fn page(status: StatusCode, title: &str) -> Reply<'static> {
    let code = status.as_u16();
    let mut r = Reply::new(status);
    r.headers.push((
        header::CONTENT_TYPE,
        Cow::Owned(HeaderValue::from_static("text/html; charset=utf-8")),
    ));
    r.headers.push((
        header::CACHE_CONTROL,
        Cow::Owned(HeaderValue::from_static("no-store")),
    ));
    r.body = Body::Mem(Bytes::from(format!(
        "<!doctype html>\n<html><head><title>{code} {title}</title></head>\n<body><h1>{code} {title}</h1><hr><p>staticd</p></body></html>\n"
    )));
    r
}

/// [`page`] titled with the status's reason phrase.
pub fn error_page(status: StatusCode) -> Reply<'static> {
    page(status, status.canonical_reason().unwrap_or("Error"))
}
