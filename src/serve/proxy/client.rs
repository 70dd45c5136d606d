//! The HTTP/1.1 client to the upstream, run on the handler's own task.
//!
//! hyper's pooled client runs every upstream connection as a task of its own and passes each
//! request, response head and body chunk across channels; with the proxy on one core that
//! bookkeeping cost more than the proxying (27.7 µs of CPU per request against nginx's
//! 20.9 µs). Here the request is written and the head read by the task that handles the
//! client, over a connection from a per-worker idle list (actix workers are single-threaded,
//! so the list needs no lock). A body of up to 64 KiB (by Content-Length) is read whole
//! before its head is relayed, so head and body go out in one write; anything longer is
//! streamed by the same task.
//!
//! What stays as in hyper: redirects are never followed, repeated header lines stay apart,
//! framing follows RFC 9112 §6 (a response read to EOF is never reused), and a connection is
//! only reused once its response was read to the end.
//!
//! Framing is strict, as nginx's: whatever makes a response's length ambiguous
//! (Content-Length with Transfer-Encoding, a coding other than `chunked`, a signed, listed or
//! repeated Content-Length, a chunk size that is not plain hex, a 101 nobody asked for, a
//! head over 64 KiB) is a [`FramingError`]: a 502 when found in the head, and the end of
//! the client's connection (with no terminating chunk) when found in a body already being
//! relayed. Either way the upstream connection is closed, never reused. The checks are pure
//! functions ([`take_head`], [`framing`], [`content_length`], [`chunk_size`],
//! [`BodyState`]) with their unit tests below.

use super::upstream::{Addr, Stream};
use crate::serve::spool::Spooled;
use crate::serve::ticker::{within, Coarse, Fired};
use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Idle connections older than this are closed instead of reused: below gunicorn's 2 s
/// keepalive, so the upstream does not close a connection as we start writing to it.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Idle connections kept per upstream and worker (nginx's `keepalive 32`).
const MAX_IDLE: usize = 32;
/// A response head larger than this is refused (502), as nginx refuses one larger than
/// its `proxy_buffer_size`.
const MAX_HEAD: usize = 64 * 1024;
const READ_SIZE: usize = 16 * 1024;
/// A response body up to this long is read whole before its head is relayed
/// ([`await_small_body`]).
const AWAIT_BODY: usize = 64 * 1024;
/// Header lines accepted in one response head.
const MAX_HEADERS: usize = 256;
/// Longest chunk-size or trailer line.
const MAX_CHUNK_LINE: usize = 4096;

/// An open connection to upstream `upstream`, with what was read past the last response.
pub struct Conn {
    pub io: Stream,
    pub buf: BytesMut,
    /// Its index in the pool that uses it (for balancing and health).
    pub upstream: usize,
    /// Where it goes: idle connections are kept by address, so a reload that reorders or
    /// replaces the upstreams never hands one to the wrong server.
    pub addr: Addr,
    /// Taken from the idle list: a failure before any response byte means it went stale.
    pub reused: bool,
}

/// One upstream address's idle connections, oldest first, with when each was put back.
type IdleList = (Addr, Vec<(Conn, Coarse)>);

thread_local! {
    /// Idle connections of this worker, per upstream address.
    static IDLE: RefCell<Vec<IdleList>> = const { RefCell::new(Vec::new()) };
}

/// An idle connection to `addr` that still looks open, if this worker has one; it is
/// upstream `i` of the pool taking it.
pub fn take_idle(addr: &Addr, i: usize) -> Option<Conn> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = &mut idle.iter_mut().find(|(a, _)| a == addr)?.1;
        let now = Coarse::now();
        while let Some((mut c, since)) = list.pop() {
            if now.since(since) < IDLE_TIMEOUT && still_open(&c.io) {
                c.reused = true;
                c.upstream = i;
                return Some(c);
            }
        }
        None
    })
}

/// Returns a connection whose last response was read completely.
pub fn put_idle(c: Conn) {
    if !c.buf.is_empty() {
        return; // bytes nobody asked for: the connection's framing is lost
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let at = match idle.iter().position(|(a, _)| *a == c.addr) {
            Some(at) => at,
            None => {
                idle.push((c.addr.clone(), Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[at].1;
        let now = Coarse::now();
        // Oldest first: only the expired prefix goes (one clock read, not one per entry).
        let expired = list
            .iter()
            .take_while(|(_, since)| now.since(*since) >= IDLE_TIMEOUT)
            .count();
        list.drain(..expired);
        if list.len() < MAX_IDLE {
            list.push((c, now));
        }
    });
}

/// `false` when the upstream closed an idle connection (or sent something unasked). tokio
/// knows from the event loop whether the socket became readable, so an idle connection that
/// saw nothing costs no syscall here.
fn still_open(io: &Stream) -> bool {
    let mut b = [0u8; 1];
    let r = match io {
        Stream::Tcp(s) => s.try_read(&mut b),
        Stream::Unix(s) => s.try_read(&mut b),
    };
    matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// How long a host name's addresses are used before it is resolved again (as nginx's
/// `resolver ... valid=`, short: a container that restarts under a compose or Kubernetes
/// name gets a new address). Without it every new upstream connection, one per request
/// to gunicorn's sync workers, paid a `getaddrinfo` on the blocking pool.
const RESOLVED_FOR: Duration = Duration::from_secs(5);

thread_local! {
    /// Per worker: `host:port` → its addresses and when they were resolved.
    static RESOLVED: RefCell<Vec<(Box<str>, Instant, Addrs)>> =
        const { RefCell::new(Vec::new()) };
}

/// A name's addresses, shared between the cache and the connects that use them.
type Addrs = Rc<[std::net::SocketAddr]>;

/// The addresses of a `host:port` with a name: from the worker's cache while it is fresh,
/// else from the resolver. Shared with the cache, not copied.
async fn resolve(hp: &str) -> io::Result<Addrs> {
    let now = Instant::now();
    let cached = RESOLVED.with_borrow(|c| {
        c.iter()
            .find(|(name, at, _)| &**name == hp && now - *at < RESOLVED_FOR)
            .map(|(_, _, addrs)| addrs.clone())
    });
    if let Some(addrs) = cached {
        return Ok(addrs);
    }
    let addrs: Addrs = tokio::net::lookup_host(hp).await?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{hp}: the name has no address"),
        ));
    }
    RESOLVED.with_borrow_mut(|c| {
        c.retain(|(name, _, _)| &**name != hp);
        c.push((hp.into(), now, addrs.clone()));
    });
    Ok(addrs)
}

/// Forgets `host:port`'s addresses: a connect to them failed, the next one resolves again.
fn forget(hp: &str) {
    RESOLVED.with_borrow_mut(|c| c.retain(|(name, _, _)| &**name != hp));
}

/// Requests at least this long are written with `TCP_NODELAY` set. A request goes out in one
/// `write` (head and buffered body together), which never leaves a small segment waiting
/// behind another, so Nagle's algorithm cannot delay it and the `setsockopt` would be one
/// more system call per proxied request (nginx, under `strace` in the proxy bench, sets none
/// on its upstream connections either); a request long enough to take several writes
/// might be. Tunnels set it (`tunnel.rs`).
const NODELAY_FROM: usize = 64 * 1024;

/// Opens a new connection and writes as much of `first` (the request) as the socket takes
/// at once; returns the connection and how much of `first` it wrote. A name's addresses are
/// tried in order, as `getaddrinfo` gives them.
///
/// TCP: on loopback and most local networks the handshake has completed by the time the
/// non-blocking `connect` returns, so the request is written right away, without waiting
/// for the event loop to report the socket writable and asking it for `SO_ERROR` (two system
/// calls and one turn of the loop per request to gunicorn, whose sync workers close every
/// connection). A write that finds the handshake unfinished (`EAGAIN`) falls back to
/// waiting for it, as `TcpStream::connect` does; one that finds it refused fails the
/// address. With an empty `first` (readiness checks) the connect is awaited.
pub async fn connect(addr: &Addr, upstream: usize, first: &[u8]) -> io::Result<(Conn, usize)> {
    let (s, written) = match addr {
        Addr::Ip(a) => connect_tcp(*a, first).await?,
        Addr::Tcp(hp) => {
            let mut last = None;
            let mut connected = None;
            for &a in resolve(hp).await?.iter() {
                match connect_tcp(a, first).await {
                    Ok(c) => {
                        connected = Some(c);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let Some(c) = connected else {
                forget(hp);
                return Err(last.unwrap_or_else(|| io::ErrorKind::NotFound.into()));
            };
            c
        }
        Addr::Unix(p) => {
            let s = UnixStream::connect(p).await?;
            return Ok((Conn::new(Stream::Unix(s), upstream, addr), 0));
        }
    };
    if first.len() >= NODELAY_FROM {
        let _ = s.set_nodelay(true);
    }
    Ok((Conn::new(Stream::Tcp(s), upstream, addr), written))
}

impl Conn {
    fn new(io: Stream, upstream: usize, addr: &Addr) -> Self {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            upstream,
            addr: addr.clone(),
            reused: false,
        }
    }
}

/// One TCP address: a non-blocking connect and an immediate write of `first` (see
/// [`connect`]); the stream and how much of `first` went out.
async fn connect_tcp(a: std::net::SocketAddr, first: &[u8]) -> io::Result<(TcpStream, usize)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(a), Type::STREAM.nonblocking(), None)?;
    match socket.connect(&a.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let written = if first.is_empty() {
        0
    } else {
        // MSG_NOSIGNAL: a reset connection is an error here, not a SIGPIPE.
        match socket.send_with_flags(first, libc::MSG_NOSIGNAL) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        }
    };
    let s = TcpStream::from_std(socket.into())?;
    if written == 0 {
        s.writable().await?;
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
    }
    Ok((s, written))
}

/// Starts a request: the request line. Header lines follow, then [`end_request`].
pub fn start_request(method: &str, target: &str, body_len: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(1024 + body_len);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out
}

/// Ends a request: `Content-Length` when there is a body (or the method normally carries
/// one), the blank line, the body when it is in memory (one in a file follows it, written by
/// [`exchange`]).
pub fn end_request(out: &mut BytesMut, method: &str, body: &Spooled) {
    let bodiless = matches!(
        method,
        "GET" | "HEAD" | "DELETE" | "OPTIONS" | "TRACE" | "CONNECT"
    );
    if !body.is_empty() || !bodiless {
        let _ = write!(out, "content-length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(bytes) = body.in_memory() {
        out.extend_from_slice(bytes);
    }
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// Every header line, in order (repeated names stay separate).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub framing: Framing,
    /// The connection may carry another request after this response's body.
    pub keep_alive: bool,
}

impl Head {
    pub fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }

    /// `X-Accel-Buffering: no` (nginx's per-response `proxy_buffering off`): the upstream
    /// wants its bytes passed on as they come, neither awaited nor read ahead.
    pub fn unbuffered(&self) -> bool {
        self.get("x-accel-buffering")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"no"))
    }
}

/// What the request we sent allows the response to be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    /// A HEAD request: the response has no body, whatever its headers say.
    pub head: bool,
    /// The request asked for an upgrade (`Connection: upgrade`): only then may the answer
    /// be `101 Switching Protocols`.
    pub upgrade: bool,
}

/// Why an upstream response is refused (502 when found in the head; a cut-off client
/// connection when found in a body already being relayed). Each one leaves the upstream
/// connection unusable: it is closed, never reused. The rules are nginx's (which refuses
/// these as "upstream sent invalid header" or "invalid chunked response"), which are
/// stricter than RFC 9112 §6.3 where the RFC lets a recipient choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The head (with any interim 1xx heads before it) is over [`MAX_HEAD`] bytes.
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Not an HTTP/1.x status line and header fields.
    Malformed(httparse::Error),
    /// A status code outside 100..=599 (RFC 9110 §15).
    BadStatus(u16),
    BadHeaderName(String),
    BadHeaderValue(HeaderName),
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    UnaskedSwitch,
    /// Both `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3 item 3: "ought to be
    /// handled as an error").
    LengthAndTransferEncoding,
    /// A `Transfer-Encoding` other than exactly `chunked`.
    UnsupportedTransferEncoding(String),
    /// `Transfer-Encoding` in an HTTP/1.0 response (RFC 9112 §6.1: the framing is faulty).
    TransferEncodingInHttp10,
    /// A `Content-Length` that is not one decimal number of at most 64 bits (a sign, a
    /// list, spaces, hex, an overflow).
    BadContentLength(String),
    /// More than one `Content-Length` line, even with equal values (as nginx).
    DuplicateContentLength,
    /// The upstream closed in the middle of the head.
    TruncatedHead,
    /// A chunk-size that is not 1*HEXDIG (a sign, `0x`, other characters, nothing) or does
    /// not fit 64 bits.
    BadChunkSize(String),
    /// A chunk-size or trailer line over 4 KiB.
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF.
    ChunkWithoutCrlf,
    /// The upstream closed with `missing` bytes of a sized body still to come.
    ClosedInBody {
        missing: u64,
    },
    /// The upstream closed before the last chunk of a chunked body.
    ClosedInChunkedBody,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use FramingError::*;
        match self {
            HeadTooLarge => write!(f, "response head larger than {MAX_HEAD} bytes"),
            TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            Malformed(e) => write!(f, "malformed response head: {e}"),
            BadStatus(s) => write!(f, "status code {s:03} outside 100-599"),
            BadHeaderName(n) => write!(f, "bad header name {n:?}"),
            BadHeaderValue(n) => write!(f, "bad value of header {n}"),
            UnaskedSwitch => f.write_str("101 Switching Protocols to a request without Upgrade"),
            LengthAndTransferEncoding => f.write_str("both Content-Length and Transfer-Encoding"),
            UnsupportedTransferEncoding(te) => {
                write!(f, "Transfer-Encoding {te:?} is not exactly \"chunked\"")
            }
            TransferEncodingInHttp10 => f.write_str("Transfer-Encoding in an HTTP/1.0 response"),
            BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
            DuplicateContentLength => f.write_str("more than one Content-Length"),
            TruncatedHead => f.write_str("connection closed inside the response head"),
            BadChunkSize(line) => write!(f, "bad chunk size line {line:?}"),
            ChunkLineTooLong => f.write_str("chunk size or trailer line too long"),
            ChunkWithoutCrlf => f.write_str("chunk data not followed by CRLF"),
            ClosedInBody { missing } => {
                write!(f, "closed with {missing} bytes of the body missing")
            }
            ClosedInChunkedBody => f.write_str("closed inside a chunked body"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Why a response could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The upstream closed the connection before sending a byte of the response.
    ClosedEarly,
    Invalid(FramingError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::ClosedEarly => f.write_str("connection closed before the response"),
            ReadError::Invalid(why) => write!(f, "invalid response: {why}"),
        }
    }
}

/// Takes one complete head off the front of `buf`: `Ok(None)` when more bytes are needed
/// (nothing consumed). Interim 1xx responses (other than 101) are skipped; they count
/// towards [`MAX_HEAD`]. Header values share the head's memory instead of being copied one
/// by one.
pub fn take_head(buf: &mut BytesMut, asked: Asked) -> Result<Option<Head>, FramingError> {
    let mut start = 0;
    // Few slots first (they are zeroed on every parse), many only for a head that needs them.
    let mut few = [httparse::EMPTY_HEADER; 32];
    let mut many = Vec::new();
    // Positions, not values yet: the values will share `raw`, split off below. Declared out
    // of the loop, so the 1.5 KB array is filled where it lies rather than moved out.
    let mut lines: smallvec::SmallVec<[_; 32]> = smallvec::SmallVec::new();
    let (status, version, end) = loop {
        let slots: &mut [httparse::Header<'_>] = if many.is_empty() { &mut few } else { &mut many };
        let mut r = httparse::Response::new(slots);
        let n = match r.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err(FramingError::HeadTooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) if many.is_empty() => {
                many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
                continue;
            }
            Err(httparse::Error::TooManyHeaders) => return Err(FramingError::TooManyHeaders),
            Err(e) => return Err(FramingError::Malformed(e)),
        };
        // Checked on the complete head too: a head that arrived in one large read is
        // complete before the partial check above ever sees it.
        if start + n > MAX_HEAD {
            return Err(FramingError::HeadTooLarge);
        }
        let status = r.code.unwrap_or(0);
        if !(100..=599).contains(&status) {
            return Err(FramingError::BadStatus(status));
        }
        if status == 101 && !asked.upgrade {
            return Err(FramingError::UnaskedSwitch);
        }
        if (100..200).contains(&status) && status != 101 {
            start += n;
            continue;
        }
        let base = buf.as_ptr() as usize;
        for h in r.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| FramingError::BadHeaderName(h.name.to_string()))?;
            let at = h.value.as_ptr() as usize - base;
            lines.push((name, at..at + h.value.len()));
        }
        break (status, r.version, start + n);
    };
    let raw = buf.split_to(end).freeze();
    let mut headers = Vec::with_capacity(lines.len());
    for (name, range) in lines {
        let value = HeaderValue::from_maybe_shared(raw.slice(range))
            .map_err(|_| FramingError::BadHeaderValue(name.clone()))?;
        headers.push((name, value));
    }
    let framing = framing(status, version == Some(1), asked.head, &headers)?;
    let close = tokens(&headers, "connection").any(|t| t.eq_ignore_ascii_case("close"));
    let keep_alive = version == Some(1) && !close && framing != Framing::Close;
    Ok(Some(Head {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// The comma-separated tokens of every `name` line.
fn tokens<'a>(
    headers: &'a [(HeaderName, HeaderValue)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n.as_str() == name)
        .filter_map(|(_, v)| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// RFC 9112 §6.3 for a response to a request we sent, with nginx's refusals where the RFC
/// leaves a choice: the framing fields are checked on every response (also on those that
/// have no body by rule), and anything ambiguous is an error rather than a guess.
///
/// `Transfer-Encoding` must be exactly `chunked`. RFC 9112 would read `gzip, chunked` as a
/// chunked body still coded with gzip, to be relayed with `Transfer-Encoding: gzip` kept,
/// and any other final coding as a body read until close; neither can be passed on to an
/// HTTP/2 or HTTP/1.0 client, no WSGI/ASGI server sends them, and nginx refuses every
/// coding but `chunked` ("upstream sent unknown Transfer-Encoding"). So does staticd.
pub fn framing(
    status: u16,
    http11: bool,
    head_request: bool,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Framing, FramingError> {
    let mut te: Option<Vec<&[u8]>> = None;
    let mut cl: Option<&HeaderValue> = None;
    for (n, v) in headers {
        if n == actix_web::http::header::TRANSFER_ENCODING {
            te.get_or_insert_with(Vec::new).push(v.as_bytes());
        } else if n == actix_web::http::header::CONTENT_LENGTH {
            if cl.is_some() {
                return Err(FramingError::DuplicateContentLength);
            }
            cl = Some(v);
        }
    }
    if te.is_some() && cl.is_some() {
        return Err(FramingError::LengthAndTransferEncoding);
    }
    if let Some(te) = &te {
        if !http11 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        let joined = te.join(&b", "[..]);
        if !joined.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(FramingError::UnsupportedTransferEncoding(
                String::from_utf8_lossy(&joined).into_owned(),
            ));
        }
    }
    let length = match cl {
        Some(v) => Some(content_length(v.as_bytes())?),
        None => None,
    };
    if head_request || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    Ok(match (te, length) {
        (Some(_), _) => Framing::Chunked,
        (None, Some(0)) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    })
}

/// One `Content-Length` value: 1*DIGIT, fitting 64 bits (no sign, no list, no spaces
/// inside; httparse has already trimmed the field's surrounding whitespace).
pub fn content_length(v: &[u8]) -> Result<u64, FramingError> {
    let bad = || FramingError::BadContentLength(String::from_utf8_lossy(v).into_owned());
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    v.iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .ok_or_else(bad)
}

/// The size on a chunk-size line (RFC 9112 §7.1): 1*HEXDIG fitting 64 bits, then nothing,
/// or whitespace and extensions (`;name=value`, skipped). `+5`, `0x5`, ` 5` and `5z` are
/// errors, as in nginx.
pub fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let bad = || FramingError::BadChunkSize(String::from_utf8_lossy(line).into_owned());
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    if !(rest.is_empty() || rest[0] == b';') {
        return Err(bad());
    }
    line[..digits]
        .iter()
        .try_fold(0u64, |n, &d| {
            let v = (d as char).to_digit(16)?;
            n.checked_mul(16)?.checked_add(u64::from(v))
        })
        .ok_or_else(bad)
}

/// Writes `request` and reads the response head.
pub async fn exchange(c: &mut Conn, request: &[u8], asked: Asked) -> Result<Head, ReadError> {
    let sent = c.io.write_all(request).await;
    answer(c, asked, sent).await
}

/// Reads the response head once the request is written; `sent` says how that went. An
/// upstream that answers before it has taken the whole request and then closes (Django
/// refusing a large upload without reading it: 403 for a missing CSRF token, a redirect to
/// the login page) resets the connection under the write, yet its answer was sent and is
/// still there to read: that answer is the upstream's, and it is relayed (as nginx does),
/// not turned into a 502. The connection is not reused. Any other failed write ends here.
pub async fn answer(c: &mut Conn, asked: Asked, sent: io::Result<()>) -> Result<Head, ReadError> {
    let reset = match sent {
        Ok(()) => None,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            Some(e)
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    // Nothing to parse before the first read (a new connection, or a reused one whose
    // last response was read whole).
    let mut parse = !c.buf.is_empty();
    loop {
        if parse {
            match take_head(&mut c.buf, asked) {
                Ok(Some(mut head)) => {
                    if reset.is_some() {
                        head.keep_alive = false;
                    }
                    await_small_body(c, &head).await?;
                    return Ok(head);
                }
                Ok(None) => {}
                Err(why) => return Err(ReadError::Invalid(why)),
            }
        }
        parse = true;
        c.buf.reserve(READ_SIZE);
        match c.io.read_buf(&mut c.buf).await {
            // Nothing came: the failed write is the cause.
            Ok(0) if c.buf.is_empty() => {
                return Err(reset.map_or(ReadError::ClosedEarly, ReadError::Io));
            }
            Ok(0) => return Err(ReadError::Invalid(FramingError::TruncatedHead)),
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(reset.unwrap_or(e))),
        }
    }
}

/// Writes the rest of a request's head and then its body kept in a file, [`READ_SIZE`]
/// bytes at a time, each write within `each` (nginx's `proxy_send_timeout`: a limit
/// between two writes, not on the whole, so a large upload to a slow upstream is not cut
/// off). `Err(Fired)` when a write timed out. The request is long, so `TCP_NODELAY` is
/// set: its last segment does not wait for an ACK.
pub async fn write_with_file_body(
    c: &mut Conn,
    head: &[u8],
    body: &Spooled,
    each: Duration,
) -> Result<io::Result<()>, Fired> {
    if let Stream::Tcp(s) = &c.io {
        let _ = s.set_nodelay(true);
    }
    let mut buf = vec![0u8; READ_SIZE];
    let (mut at, mut first) = (0, Some(head));
    loop {
        let piece = match first.take() {
            Some(h) => h,
            None => match body.read_at(&mut buf, at) {
                Ok(0) => return Ok(Ok(())),
                Ok(n) => {
                    at += n as u64;
                    &buf[..n]
                }
                Err(e) => return Ok(Err(e)),
            },
        };
        if let Err(e) = within(Coarse::now() + each, c.io.write_all(piece)).await? {
            return Ok(Err(e));
        }
    }
}

/// Reads the rest of a body of at most [`AWAIT_BODY`] bytes that did not arrive with its
/// head, as nginx postpones its output (`postpone_output`) and buffers the upstream's:
/// gunicorn writes head and body apart, and relaying the head at once sent the client two
/// segments where nginx sends one (one more packet, write and ACK per request). A whole
/// body is also compressed at once, with its length. Not with `X-Accel-Buffering: no`
/// ([`Head::unbuffered`]). An upstream that closes before the body is whole has sent a broken
/// response, and nothing of it has gone out yet: that is a 502 (`ClosedInBody`), not a
/// head promising bytes that never follow.
async fn await_small_body(c: &mut Conn, head: &Head) -> Result<(), ReadError> {
    let Framing::Length(n) = head.framing else {
        return Ok(());
    };
    if n > AWAIT_BODY as u64 || head.unbuffered() {
        return Ok(());
    }
    while (c.buf.len() as u64) < n {
        c.buf.reserve(n as usize - c.buf.len());
        match c.io.read_buf(&mut c.buf).await {
            Ok(0) => {
                let missing = n - c.buf.len() as u64;
                return Err(ReadError::Invalid(FramingError::ClosedInBody { missing }));
            }
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    Ok(())
}

/// Decodes `Transfer-Encoding: chunked` incrementally (extensions and trailers skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// One step of the chunked decoder.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Data(Bytes),
    NeedMore,
    End,
}

impl Chunked {
    /// Consumes what it can of `buf`.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Piece, FramingError> {
        loop {
            match *self {
                Chunked::Done => return Ok(Piece::End),
                Chunked::Size | Chunked::Trailers => {
                    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                        if buf.len() > MAX_CHUNK_LINE {
                            return Err(FramingError::ChunkLineTooLong);
                        }
                        return Ok(Piece::NeedMore);
                    };
                    let line = buf.split_to(eol + 2);
                    let line = &line[..eol];
                    if *self == Chunked::Trailers {
                        if line.is_empty() {
                            *self = Chunked::Done;
                        }
                        continue;
                    }
                    let n = chunk_size(line)?;
                    *self = if n == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(n)
                    };
                }
                Chunked::Data(n) => {
                    if buf.is_empty() {
                        return Ok(Piece::NeedMore);
                    }
                    let k = (buf.len() as u64).min(n);
                    let data = buf.split_to(k as usize).freeze();
                    *self = if k == n {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(n - k)
                    };
                    return Ok(Piece::Data(data));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Piece::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(FramingError::ChunkWithoutCrlf);
                    }
                    let _ = buf.split_to(2);
                    *self = Chunked::Size;
                }
            }
        }
    }
}

/// Reading state of a response body after its head.
pub enum BodyState {
    Length(u64),
    Chunked(Chunked),
    Close,
    Done,
}

impl BodyState {
    pub fn new(f: Framing) -> BodyState {
        match f {
            Framing::Empty => BodyState::Done,
            Framing::Length(n) => BodyState::Length(n),
            Framing::Chunked => BodyState::Chunked(Chunked::Size),
            Framing::Close => BodyState::Close,
        }
    }

    /// The next piece decodable from `buf` without reading; `eof` says the upstream closed.
    pub fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Result<Piece, FramingError> {
        match self {
            BodyState::Done => Ok(Piece::End),
            BodyState::Length(n) => {
                if buf.is_empty() {
                    return if eof {
                        Err(FramingError::ClosedInBody { missing: *n })
                    } else {
                        Ok(Piece::NeedMore)
                    };
                }
                let k = (buf.len() as u64).min(*n);
                let data = buf.split_to(k as usize).freeze();
                *n -= k;
                if *n == 0 {
                    *self = BodyState::Done;
                }
                Ok(Piece::Data(data))
            }
            BodyState::Chunked(c) => match c.step(buf)? {
                Piece::End => {
                    *self = BodyState::Done;
                    Ok(Piece::End)
                }
                Piece::NeedMore if eof => Err(FramingError::ClosedInChunkedBody),
                p => Ok(p),
            },
            BodyState::Close => {
                if !buf.is_empty() {
                    Ok(Piece::Data(buf.split().freeze()))
                } else if eof {
                    *self = BodyState::Done;
                    Ok(Piece::End)
                } else {
                    Ok(Piece::NeedMore)
                }
            }
        }
    }

    /// The whole body when it is already in `buf` (the common small response); `Ok(None)`
    /// leaves `buf` untouched. An error in the part of a chunked body already in `buf` is
    /// found here, before anything of the response was relayed.
    pub fn complete(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self {
            BodyState::Done => Ok(Some(Bytes::new())),
            BodyState::Length(n) if buf.len() as u64 >= *n => {
                let b = buf.split_to(*n as usize).freeze();
                *self = BodyState::Done;
                Ok(Some(b))
            }
            BodyState::Chunked(c) => {
                // Decode a copy: if the terminating chunk is not there yet, nothing is consumed.
                let mut probe = buf.clone();
                let mut state = *c;
                let mut out = BytesMut::new();
                loop {
                    match state.step(&mut probe)? {
                        Piece::Data(d) => out.extend_from_slice(&d),
                        Piece::End => {
                            *buf = probe;
                            *self = BodyState::Done;
                            return Ok(Some(out.freeze()));
                        }
                        Piece::NeedMore => return Ok(None),
                    }
                }
            }
            _ => Ok(None),
        }
    }
}

/// Reads more of the connection into its buffer: `Ok(0)` at EOF.
pub fn poll_fill(c: &mut Conn, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
    c.buf.reserve(READ_SIZE);
    let spare = c.buf.spare_capacity_mut();
    let mut rb = ReadBuf::uninit(spare);
    ready!(Pin::new(&mut c.io).poll_read(cx, &mut rb))?;
    let n = rb.filled().len();
    // SAFETY: `poll_read` initialised the first `n` spare bytes.
    unsafe { c.buf.set_len(c.buf.len() + n) };
    Poll::Ready(Ok(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: Asked = Asked {
        head: false,
        upgrade: false,
    };
    const HEAD: Asked = Asked {
        head: true,
        upgrade: false,
    };

    fn parse(raw: &[u8], head_request: bool) -> Result<Option<Head>, FramingError> {
        take_head(
            &mut BytesMut::from(raw),
            if head_request { HEAD } else { GET },
        )
    }

    fn head(raw: &str) -> Head {
        parse(raw.as_bytes(), false).unwrap().unwrap()
    }

    /// The error a complete head gives.
    fn refused(raw: &str) -> FramingError {
        parse(raw.as_bytes(), false).unwrap_err()
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").framing,
            Framing::Length(5)
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));
        let h = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        let h = head("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let h = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            true,
        )
        .unwrap()
        .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    }

    #[test]
    fn ambiguous_lengths_refused() {
        use FramingError::*;
        let r = |fields: &str| refused(&format!("HTTP/1.1 200 OK\r\n{fields}\r\n"));
        assert_eq!(
            r("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            LengthAndTransferEncoding
        );
        assert_eq!(
            r("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
            LengthAndTransferEncoding
        );
        for te in [
            "gzip, chunked",
            "gzip",
            "chunked, chunked",
            "identity",
            "",
            "chunked;q=1",
        ] {
            assert_eq!(
                r(&format!("Transfer-Encoding: {te}\r\n")),
                UnsupportedTransferEncoding(te.into()),
                "{te:?}"
            );
        }
        assert_eq!(
            r("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            UnsupportedTransferEncoding("gzip, chunked".into())
        );
        for cl in [
            "+5",
            "-5",
            "5, 5",
            "5,6",
            "0x5",
            "5 5",
            "",
            "18446744073709551616",
        ] {
            assert_eq!(
                r(&format!("Content-Length: {cl}\r\n")),
                BadContentLength(cl.into()),
                "{cl:?}"
            );
        }
        assert_eq!(
            r("Content-Length: 5\r\nContent-Length: 5\r\n"),
            DuplicateContentLength
        );
        assert_eq!(
            r("Content-Length: 1\r\nContent-Length: 2\r\n"),
            DuplicateContentLength
        );
        assert_eq!(
            refused("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            TransferEncodingInHttp10
        );
        // Checked even where the body is empty by rule.
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", true).unwrap_err(),
            BadContentLength("+1".into())
        );
        assert_eq!(
            refused("HTTP/1.1 304 Not Modified\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            LengthAndTransferEncoding
        );
        assert_eq!(content_length(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(content_length(b"007"), Ok(7));
    }

    #[test]
    fn status_and_switch() {
        use FramingError::*;
        assert_eq!(
            refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
            UnaskedSwitch
        );
        let asked = Asked {
            head: false,
            upgrade: true,
        };
        let mut b = BytesMut::from(&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n"[..]);
        let h = take_head(&mut b, asked).unwrap().unwrap();
        assert_eq!((h.status, h.framing), (101, Framing::Empty));
        assert_eq!(refused("HTTP/1.1 600 Odd\r\n\r\n"), BadStatus(600));
        assert_eq!(refused("HTTP/1.1 099 Odd\r\n\r\n"), BadStatus(99));
        assert!(matches!(refused("HTTP/1.1 2xx OK\r\n\r\n"), Malformed(_)));
    }

    #[test]
    fn head_size_limit() {
        // Complete in one buffer, and still too large.
        let pad = "x".repeat(70_000);
        let raw = format!("HTTP/1.1 200 OK\r\nX-Pad: {pad}\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(refused(&raw), FramingError::HeadTooLarge);
        // Incomplete and already too large.
        let partial = format!("HTTP/1.1 200 OK\r\nX-Pad: {pad}");
        assert_eq!(
            parse(partial.as_bytes(), false).unwrap_err(),
            FramingError::HeadTooLarge
        );
        // Exactly the limit is fine.
        let fixed = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: \r\n\r\n".len();
        let pad = "x".repeat(MAX_HEAD - fixed);
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: {pad}\r\n\r\n");
        assert_eq!(raw.len(), MAX_HEAD);
        assert_eq!(head(&raw).framing, Framing::Empty);
        // Interim heads count towards the limit.
        let hint = format!(
            "HTTP/1.1 103 Early Hints\r\nLink: {}\r\n\r\n",
            "y".repeat(40_000)
        );
        let raw = format!(
            "{hint}HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n",
            "z".repeat(30_000)
        );
        assert_eq!(refused(&raw), FramingError::HeadTooLarge);
    }

    #[test]
    fn chunk_sizes() {
        use FramingError::BadChunkSize;
        for (line, n) in [
            ("5", 5),
            ("a", 10),
            ("FF", 255),
            ("0", 0),
            ("000005", 5),
            ("5;ext=1", 5),
            ("5 ;ext", 5),
            ("5\t; a=\"b\"", 5),
            ("5 ", 5),
            ("ffffffffffffffff", u64::MAX),
        ] {
            assert_eq!(chunk_size(line.as_bytes()), Ok(n), "{line:?}");
        }
        for line in [
            "+5",
            "-5",
            "0x5",
            "0X5",
            " 5",
            "5z",
            "z",
            "",
            ";ext",
            "5 5",
            "10000000000000000",
            "5,6",
        ] {
            assert_eq!(
                chunk_size(line.as_bytes()),
                Err(BadChunkSize(line.into())),
                "{line:?}"
            );
        }
    }

    #[test]
    fn chunked_errors_found_before_relaying() {
        // `complete` reports an error in what is buffered rather than waiting for more.
        for bad in [
            &b"+5\r\nhello\r\n0\r\n\r\n"[..],
            b"0x5\r\nhello\r\n",
            b"5\r\nhelloXX",
        ] {
            let mut st = BodyState::new(Framing::Chunked);
            let mut buf = BytesMut::from(bad);
            assert!(st.complete(&mut buf).is_err(), "{bad:?}");
        }
        // Mid-body: the first chunk comes out, then the error.
        let mut st = BodyState::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"5\r\nhello\r\n"[..]);
        assert_eq!(st.complete(&mut buf), Ok(None));
        assert_eq!(st.next(&mut buf, false), Ok(Piece::Data("hello".into())));
        assert_eq!(st.next(&mut buf, false), Ok(Piece::NeedMore));
        buf.extend_from_slice(b"+6\r\n world\r\n");
        assert_eq!(
            st.next(&mut buf, false),
            Err(FramingError::BadChunkSize("+6".into()))
        );
        let mut st = BodyState::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"5\r\nhel"[..]);
        assert_eq!(st.next(&mut buf, false), Ok(Piece::Data("hel".into())));
        assert_eq!(
            st.next(&mut buf, true),
            Err(FramingError::ClosedInChunkedBody)
        );
        let long = vec![b'1'; MAX_CHUNK_LINE + 1];
        assert_eq!(
            Chunked::Size.step(&mut BytesMut::from(&long[..])),
            Err(FramingError::ChunkLineTooLong)
        );
    }

    #[test]
    fn interim_skipped_repeated_kept() {
        let raw = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 302 Found\r\nLocation: /x/\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\nrest";
        let mut buf = BytesMut::from(&raw[..]);
        let h = take_head(&mut buf, GET).unwrap().unwrap();
        assert_eq!(h.status, 302);
        assert_eq!(&buf[..], b"rest");
        let cookies: Vec<_> = h
            .headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(h.get("location").unwrap(), "/x/");
        let mut partial = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-"[..]);
        assert!(take_head(&mut partial, GET).unwrap().is_none());
        assert_eq!(partial.len(), 25, "nothing consumed");
    }

    #[test]
    fn many_headers() {
        let mut raw = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..100 {
            raw.push_str(&format!("X-H{i}: {i}\r\n"));
        }
        raw.push_str("Content-Length: 0\r\n\r\n");
        let h = head(&raw);
        assert_eq!(h.headers.len(), 101);
        assert_eq!(h.get("x-h99").unwrap(), "99");
        for i in 100..300 {
            raw.insert_str(17, &format!("X-M{i}: {i}\r\n"));
        }
        assert_eq!(
            parse(raw.as_bytes(), false).unwrap_err(),
            FramingError::TooManyHeaders,
            "over {MAX_HEADERS} lines"
        );
    }

    #[test]
    fn chunked_incremental_and_complete() {
        let raw = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        // Fed one byte at a time, the data comes out whole and the end is seen.
        let mut st = BodyState::new(Framing::Chunked);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut ended = false;
        for &b in raw.iter() {
            buf.extend_from_slice(&[b]);
            loop {
                match st.next(&mut buf, false).unwrap() {
                    Piece::Data(d) => out.extend_from_slice(&d),
                    Piece::NeedMore => break,
                    Piece::End => {
                        ended = true;
                        break;
                    }
                }
            }
        }
        assert!(ended);
        assert_eq!(out, b"hello world");
        // All at once: `complete` takes the body and leaves what follows.
        let mut st = BodyState::new(Framing::Chunked);
        let mut buf = BytesMut::from(&raw[..]);
        buf.extend_from_slice(b"NEXT");
        assert_eq!(st.complete(&mut buf).unwrap().unwrap(), &b"hello world"[..]);
        assert_eq!(&buf[..], b"NEXT");
        // Incomplete: nothing consumed.
        let mut st = BodyState::new(Framing::Chunked);
        let mut buf = BytesMut::from(&raw[..20]);
        assert!(st.complete(&mut buf).unwrap().is_none());
        assert_eq!(buf.len(), 20);
        assert!(Chunked::Size
            .step(&mut BytesMut::from(&b"zz\r\n"[..]))
            .is_err());
    }

    #[test]
    fn length_and_close_bodies() {
        let mut st = BodyState::new(Framing::Length(4));
        let mut buf = BytesMut::from(&b"ab"[..]);
        assert!(st.complete(&mut buf).unwrap().is_none());
        assert_eq!(st.next(&mut buf, false).unwrap(), Piece::Data("ab".into()));
        assert_eq!(st.next(&mut buf, false).unwrap(), Piece::NeedMore);
        assert!(st.next(&mut buf, true).is_err(), "EOF inside a sized body");
        let mut st = BodyState::new(Framing::Close);
        let mut buf = BytesMut::from(&b"xyz"[..]);
        assert_eq!(st.next(&mut buf, false).unwrap(), Piece::Data("xyz".into()));
        assert_eq!(st.next(&mut buf, true).unwrap(), Piece::End);
    }

    #[test]
    fn request_encoding() {
        let mut r = start_request("POST", "/api/?a=1", 2);
        r.extend_from_slice(b"host: example.com\r\n");
        end_request(&mut r, "POST", &Spooled::Mem(Bytes::from_static(b"{}")));
        assert_eq!(
            &r[..],
            b"POST /api/?a=1 HTTP/1.1\r\nhost: example.com\r\ncontent-length: 2\r\n\r\n{}"
        );
        let mut r = start_request("GET", "/", 0);
        end_request(&mut r, "GET", &Spooled::empty());
        assert_eq!(&r[..], b"GET / HTTP/1.1\r\n\r\n");
        let mut r = start_request("DELETE", "/x", 0);
        end_request(&mut r, "PUT", &Spooled::empty());
        assert_eq!(&r[..], b"DELETE /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }
}
