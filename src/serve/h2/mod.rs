//! staticd's HTTP/2 server: h2c (prior knowledge, handed over by the `h1` loop with the
//! bytes it read) and TLS with ALPN `h2`. The `h2` crate does the framing, HPACK and flow
//! control; this module owns the connection: one task per connection, no task per stream.
//!
//! Each request stream becomes a future polled in the connection's own task next to the
//! connection itself (a `FuturesUnordered`), so a static file held in memory is answered,
//! its frames queued and flushed with no other task spawned or woken. The answer comes
//! from the same code as HTTP/1: [`dispatch`] routes, the static tier, [`health`],
//! [`Proxy::local`](super::proxy::Proxy::local) and
//! [`Proxy::forward`](super::proxy::Proxy::forward) give a [`Reply`], written here.
//!
//! Why not actix-http's HTTP/2 dispatcher (used until this server replaced it): it spawns a
//! task per stream, builds actix's request and response types and converts its header map
//! to the `http` crate's for every response. With it staticd needed 16.4 µs per small h2
//! request against nginx's 15.9 (`SERVE_BENCH_ONLY=tls cargo bench --bench serve`); with
//! this server 13.3 against 16.1. Most of the gain is the batching in [`serve`]: every
//! request already received is taken before any is answered, so the connection is polled
//! once per batch (README, Benchmarks, "HTTPS").
//!
//! Connection rules (nginx's where HTTP/2 leaves them open):
//! - the preface and SETTINGS must arrive within `--header-timeout`;
//! - at most [`MAX_STREAMS`] streams at once (nginx's `http2_max_concurrent_streams`);
//! - a connection with no stream open for `--keep-alive` is closed with GOAWAY (nginx's
//!   `keepalive_timeout` for HTTP/2; with `--keep-alive 0`, once its streams are done);
//! - a request body may pause at most `--body-timeout` (408) and is bounded by
//!   `--max-body` (413), read whole before the upstream is contacted, as on HTTP/1;
//! - a stream the client resets while the upstream works is dropped, logged as 499;
//! - on a graceful shutdown GOAWAY is sent and the streams in flight finish;
//! - a client that opens no flow-control window for `socket::SEND_TIMEOUT` (60 s, nginx's
//!   `send_timeout`) has the stream reset, and after an idle GOAWAY a connection gets as
//!   long to finish before it is closed, so every stream and connection ends in bounded
//!   time (a shutdown's, in `--shutdown-timeout`).

pub mod write;

use super::conn::Settings;
use super::dispatch::{dispatch, special, Dispatch};
use super::fields::Fields;
use super::health;
use super::https::Asked;
use super::log::{self, LogFormat};
use super::message::{error_page, Reply, Request, Verb};
use super::metrics::{self, Coding, RouteKind};
use super::proxy::Incoming;
use super::socket::{Peer, SEND_TIMEOUT};
use super::spool::{self, Spool, Spooled};
use super::state::{Live, State};
use actix_web::http::header as ax;
use actix_web::http::StatusCode;
use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt as _;
use h2::server::SendResponse;
use h2::RecvStream;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

/// Streams open at once on one connection (nginx's default `http2_max_concurrent_streams`).
pub const MAX_STREAMS: u32 = 128;

/// Largest request head (all fields, HPACK-decoded), as the HTTP/1 loop's.
const MAX_HEADER_LIST: u32 = 64 * 1024;

/// Receive windows: a stream's and the connection's. 1 MiB lets an upload to the proxy go at
/// loopback speed (the 64 KiB default stalls a fast client every window); bodies are
/// bounded by `--max-body` anyway.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 2 << 20;

/// Who is at the other end of a connection, and where it came in.
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub local: Option<SocketAddr>,
    pub peer: Option<Peer>,
}

/// Serves one HTTP/2 connection to its end.
pub async fn serve<T>(io: T, ends: Endpoints, state: &State, settings: &Settings)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_LIST)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    let mut conn = match tokio::time::timeout(
        settings.header_timeout,
        builder.handshake::<_, Bytes>(io),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(peer = ?ends.peer, "HTTP/2 handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = ?ends.peer, "HTTP/2 preface not received within --header-timeout");
            return;
        }
    };
    let mut streams = FuturesUnordered::<Pin<Box<dyn Future<Output = ()> + '_>>>::new();
    let mut stop = std::pin::pin!(settings.shutdown.notified());
    let mut stopping = false;
    // GOAWAY sent for idleness: `idle` now times the close.
    let mut idle_closing = false;
    // `--keep-alive 0` (keep-alive off): the first request has `--header-timeout` to come,
    // and the connection ends once no stream is left.
    let keep_alive = settings.keep_alive;
    let idle = tokio::time::sleep(if keep_alive.is_zero() {
        settings.header_timeout
    } else {
        keep_alive
    });
    let mut idle = std::pin::pin!(idle);
    loop {
        // One poll of the whole connection: every request already received is accepted
        // first, then all of them are answered, and only then does the connection flush
        // (on its next poll: `h2` wakes this task when a stream queues frames). Answers to
        // requests that arrived together so leave in one write, as nginx's do.
        let event = poll_fn(|cx| {
            loop {
                match conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((req, respond)))) => {
                        streams.push(Box::pin(stream(req, respond, ends, state, settings)));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!(peer = ?ends.peer, "HTTP/2 connection ended: {e}");
                        return Poll::Ready(Event::Closed);
                    }
                    Poll::Ready(None) => return Poll::Ready(Event::Closed),
                    Poll::Pending => break,
                }
            }
            let busy = !streams.is_empty();
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
            if busy && streams.is_empty() && !stopping {
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + keep_alive);
            }
            if stopping {
                // After an idle GOAWAY the client has `SEND_TIMEOUT` to take what is queued
                // (a reader that stopped would keep the connection forever), then it is
                // closed. A shutdown's is bounded by `--shutdown-timeout` instead.
                if idle_closing && idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Closed);
                }
                return Poll::Pending;
            }
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Stop);
            }
            if streams.is_empty() && idle.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Idle);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Closed => break,
            // GOAWAY; the streams in flight finish, then the connection closes.
            Event::Stop => {
                conn.graceful_shutdown();
                stopping = true;
            }
            Event::Idle => {
                conn.graceful_shutdown();
                stopping = true;
                idle_closing = true;
                idle.as_mut()
                    .reset(tokio::time::Instant::now() + SEND_TIMEOUT);
            }
        }
    }
}

/// What ends a poll of the connection.
enum Event {
    /// Closed by the client, by an error, or after GOAWAY once its streams are done.
    Closed,
    /// The server shuts down gracefully.
    Stop,
    /// No stream for `--keep-alive`.
    Idle,
}

/// One request stream: routed, answered, written, logged.
async fn stream(
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ends: Endpoints,
    state: &State,
    settings: &Settings,
) {
    let live = state.live.load();
    let start = (live.log_format != LogFormat::Off || metrics::enabled()).then(Instant::now);
    let (parts, body) = req.into_parts();
    if let Err(why) = well_formed(&parts) {
        tracing::info!("malformed HTTP/2 request ({why}): 400");
        let mut reply = error_page(StatusCode::BAD_REQUEST);
        write::reply(&mut respond, &mut reply, false).await;
        return;
    }
    let verb = Verb::of(&parts.method);
    let path = parts.uri.path();
    let path = if path.is_empty() { "/" } else { path };
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    // `:authority` is the Host (RFC 9113 §8.3.1); a Host field only stands in for it.
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(ax::HOST).and_then(|h| h.to_str().ok()));
    let front = &settings.front;
    let early = front.answers_early().then(|| {
        front.early(&Asked {
            path,
            target,
            host,
            local: ends.local,
        })
    });
    let asterisk = parts.method == http::Method::OPTIONS && target == "*";
    let mut route = dispatch(state, &live, path);
    let (mut reply, kind) = if let Some(r) = early.flatten() {
        (r, RouteKind::Internal)
    } else if let Some(r) = special(
        state,
        &live,
        parts.method.as_str().as_bytes(),
        asterisk,
        path,
    ) {
        (r, RouteKind::Internal)
    } else {
        let kind = route.kind();
        let reply = match &mut route {
            Dispatch::Static(st) => {
                let fields: &dyn Fields = &parts.headers;
                st.answer(verb, &Request::from_fields(fields)).await
            }
            Dispatch::Health(probe) => health::answer(state, *probe, verb).await,
            Dispatch::Proxy(_) => {
                let inc = Incoming {
                    method: parts.method.as_str(),
                    target,
                    path,
                    headers: &parts.headers,
                    host,
                    peer: ends.peer,
                    local: ends.local,
                    http10: false,
                    client_fd: None,
                    https: front.secure,
                    timed: start.is_some(),
                };
                match proxied(&live, &inc, body, &mut respond, settings).await {
                    Some(r) => r,
                    // The client reset the stream: nothing to write (499).
                    None => {
                        if let Some(start) = start {
                            let mut r = Reply::new(StatusCode::from_u16(499).unwrap_or_default());
                            r.close = true;
                            account(&live, &parts, ends, &r, kind, 0, start);
                        }
                        return;
                    }
                }
            }
        };
        (reply, kind)
    };
    state
        .observe
        .rules
        .load()
        .apply(kind, reply.status, &mut reply.headers);
    front.add_hsts(&mut reply.headers);
    let sent = if reply.close {
        // Nothing to write (the client already left: 499).
        respond.send_reset(h2::Reason::CANCEL);
        0
    } else {
        write::reply(&mut respond, &mut reply, verb == Verb::Head).await
    };
    if let Some(start) = start {
        account(&live, &parts, ends, &reply, kind, sent, start);
    }
}

/// RFC 9113 §8.1.1, §8.2.1 and §8.3.1 rules the `h2` crate leaves to the server, each
/// making a request malformed (answered 400 here, as §8.1.1 allows): a `:path` that is not
/// origin-form (`*` for OPTIONS aside), a Host field that is not a valid host or differs from
/// `:authority`, content-length values that are not one number, a field value with
/// whitespace at either end. Forwarded as they were, the upstream would read an absolute
/// target against our Host, or a body length we did not frame.
fn well_formed(parts: &http::request::Parts) -> Result<(), &'static str> {
    let target = parts.uri.path_and_query().map_or("", |pq| pq.as_str());
    let asterisk = parts.method == http::Method::OPTIONS && target == "*";
    if parts.method != http::Method::CONNECT && !target.starts_with('/') && !asterisk {
        return Err(":path is not origin-form");
    }
    let mut hosts = parts.headers.get_all(ax::HOST).iter();
    if let Some(h) = hosts.next() {
        if hosts.next().is_some() {
            return Err("more than one Host");
        }
        if super::host::check(h.as_bytes()).is_err() {
            return Err("invalid Host");
        }
        if let Some(a) = parts.uri.authority() {
            if !a.as_str().as_bytes().eq_ignore_ascii_case(h.as_bytes()) {
                return Err("Host differs from :authority");
            }
        }
    }
    let mut lengths = parts.headers.get_all(ax::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let digits = |v: &[u8]| !v.is_empty() && v.iter().all(u8::is_ascii_digit);
        if !digits(first.as_bytes()) || lengths.any(|v| v != first) {
            return Err("content-length is not one number");
        }
    }
    let padded = |v: &[u8]| {
        matches!(v.first(), Some(b' ' | b'\t')) || matches!(v.last(), Some(b' ' | b'\t'))
    };
    if parts.headers.values().any(|v| padded(v.as_bytes())) {
        return Err("a field value starts or ends with whitespace");
    }
    Ok(())
}

/// A request outside STATIC_URL: a local mount or the upstream, with the body read first.
/// `None` when the client reset the stream before the answer was ready.
async fn proxied(
    live: &Live,
    inc: &Incoming<'_>,
    body: RecvStream,
    respond: &mut SendResponse<Bytes>,
    settings: &Settings,
) -> Option<Reply<'static>> {
    let proxy = &live.proxy;
    if let Some(r) = proxy.local(inc) {
        return Some(r);
    }
    let declared = inc
        .headers
        .all("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    let work = async {
        let body = match read_body(body, declared, settings).await {
            Ok(b) => b,
            Err(status) => {
                tracing::info!(path = %inc.target, "HTTP/2 request body refused: {}", status.as_u16());
                return error_page(status);
            }
        };
        proxy.forward(inc, &body).await
    };
    let reset = poll_fn(|cx| respond.poll_reset(cx));
    tokio::select! {
        r = work => Some(r),
        _ = reset => {
            tracing::info!(status = 499, "client reset the stream before the response was complete: {} {}; upstream request dropped", inc.method, inc.target);
            None
        }
    }
}

/// Reads a whole request body: over `--max-body` (declared or counted) is 413, a pause
/// over `--body-timeout` 408, a reset or protocol error 400; past [`spool::IN_MEMORY`] it
/// goes to a temporary file (500 if that cannot be made). The window is given back as the
/// bytes are taken, so the client can go on sending.
async fn read_body(
    mut body: RecvStream,
    declared: Option<u64>,
    settings: &Settings,
) -> Result<Spooled, StatusCode> {
    let max = settings.max_body;
    if max > 0 && declared.is_some_and(|n| n > max) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if body.is_end_stream() {
        return Ok(Spooled::empty());
    }
    let mut spool = Spool::new(declared.unwrap_or(0));
    let spool_failed = |e: spool::SpoolError| {
        tracing::error!("{e}: 500");
        StatusCode::INTERNAL_SERVER_ERROR
    };
    loop {
        let next = tokio::time::timeout(settings.body_timeout, body.data()).await;
        let chunk = match next {
            Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(StatusCode::BAD_REQUEST),
            Ok(Some(Ok(chunk))) => chunk,
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if max > 0 && spool.len() + chunk.len() as u64 > max {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        spool.buf().extend_from_slice(&chunk);
        spool.settle().map_err(spool_failed)?;
    }
    spool.finish().map_err(spool_failed)
}

/// The access-log line and the metrics of one answered request.
fn account(
    live: &Live,
    parts: &http::request::Parts,
    ends: Endpoints,
    reply: &Reply<'_>,
    kind: RouteKind,
    bytes: u64,
    start: Instant,
) {
    let elapsed = start.elapsed();
    metrics::request(
        kind,
        reply.status.as_u16(),
        bytes,
        Coding::of(reply.content_coding()),
        elapsed,
    );
    if live.log_format == LogFormat::Off {
        return;
    }
    let hdr = |n| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    log::access(
        live.log_format,
        &log::Entry {
            remote: ends.peer,
            method: parts.method.as_str(),
            target: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            version: "HTTP/2.0",
            status: reply.status.as_u16(),
            bytes,
            referer: hdr(ax::REFERER),
            user_agent: hdr(ax::USER_AGENT),
            elapsed,
            route: kind.as_str(),
            upstream: reply.upstream.as_ref().map(|u| (&*u.addr, u.header_time)),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, fields: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in fields {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn malformed_requests_are_told_apart() {
        let ok = |m, u, f: &[(&str, &str)]| well_formed(&parts(m, u, f));
        assert_eq!(ok("GET", "https://a.example/x?q", &[]), Ok(()));
        assert_eq!(ok("GET", "/x", &[("host", "a.example:8443")]), Ok(()));
        assert_eq!(
            ok("GET", "https://a.example/x", &[("host", "A.example")]),
            Ok(())
        );
        assert_eq!(ok("OPTIONS", "*", &[]), Ok(()));
        assert_eq!(
            ok(
                "POST",
                "/x",
                &[("content-length", "5"), ("content-length", "5")]
            ),
            Ok(())
        );
        assert_eq!(ok("GET", "/x", &[("x-a", "a b")]), Ok(()));
        // `:path x`, and an absolute URL in `:path`.
        assert!(ok("GET", "x", &[]).is_err());
        assert!(ok("GET", "*", &[]).is_err());
        let mut p = parts("GET", "https://a.example/x", &[]);
        p.uri = http::Uri::from_static("https://a.example/http://evil/x");
        assert_eq!(well_formed(&p), Ok(()), "a path that merely contains a URL");
        assert!(ok("GET", "https://a.example/x", &[("host", "evil.example")]).is_err());
        assert!(ok("GET", "/x", &[("host", "a b")]).is_err());
        assert!(ok("GET", "/x", &[("host", "a"), ("host", "a")]).is_err());
        assert!(ok(
            "POST",
            "/x",
            &[("content-length", "5"), ("content-length", "6")]
        )
        .is_err());
        assert!(ok("POST", "/x", &[("content-length", "+5")]).is_err());
        assert!(ok("GET", "/x", &[("x-a", " v")]).is_err());
        assert!(ok("GET", "/x", &[("x-a", "v\t")]).is_err());
    }
}
