//! `--upstream`: the reverse proxy to the WSGI/ASGI backend, plus the file mounts that only
//! make sense next to it (`--internal` for X-Accel-Redirect, `--media-root`).
//!
//! - `client`: the HTTP/1.1 client (per-worker keep-alive connections, framing).
//! - `upstream`: addresses, TCP/Unix streams, balancing, health.
//! - `forward`: header rewriting both ways.
//! - `files`: internal and media mounts (ETag, Range, conditionals).
//! - `tunnel`: WebSocket/Upgrade (HTTP/1.1).
//! - `abort`: noticing a client that leaves while the upstream works (499).
//!
//! Requests come from the HTTP/1 loop (`h1`) and, for HTTP/2, from actix-web ([`Proxy::handle`]).
//! Request bodies are buffered (bounded by `--max-body`) before an upstream is contacted, so
//! a slow client never holds a gunicorn sync worker; responses are streamed as produced.

pub mod abort;
pub mod client;
pub mod files;
pub mod forward;
pub mod tunnel;
pub mod upstream;

use crate::serve::fields::Fields;
use crate::serve::message::{page, Body, Reply, Request};
use actix_web::dev::Payload;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use client::{BodyState, Conn, Piece};
use files::Mount;
use futures_util::StreamExt;
use ipnet::IpNet;
use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use upstream::{Active, Addr, Balance, Pool};

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
    pub peer: Option<IpAddr>,
    pub local: Option<std::net::SocketAddr>,
    /// The client's socket, watched for a close while the upstream works (HTTP/1 only: an
    /// HTTP/2 stream's task may outlive its connection's descriptor).
    pub client_fd: Option<std::os::unix::io::RawFd>,
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
            peer: req.peer_addr().map(|a| a.ip()),
            local: req.conn_data::<LocalAddr>().map(|a| a.0),
            // HTTP/2 streams run as tasks of their own that may outlive the socket.
            client_fd: None,
        }
    }
}

/// Everything the proxy needs, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub upstreams: Vec<Addr>,
    pub trusted: Vec<IpNet>,
    pub max_body: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub balance: Balance,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub health_check: Option<String>,
    pub health_interval: Duration,
    pub internal: Vec<Mount>,
    pub media: Option<Mount>,
    pub media_max_age: u64,
    pub ws_idle_timeout: Duration,
}

pub struct Proxy {
    opts: Options,
    pool: Arc<Pool>,
    media_cc: String,
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    ConnectRefused,
    ConnectTimeout,
    /// Reset, closed early, or an invalid response.
    Broken,
    ReadTimeout,
}

impl Proxy {
    pub fn new(opts: Options) -> Proxy {
        let pool = Arc::new(Pool::new(
            opts.upstreams.clone(),
            opts.balance,
            opts.max_fails,
            opts.fail_timeout,
        ));
        let media_cc = format!("public, max-age={}", opts.media_max_age);
        Proxy {
            opts,
            pool,
            media_cc,
        }
    }

    pub fn has_upstreams(&self) -> bool {
        !self.opts.upstreams.is_empty()
    }

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

    /// What is answered here without an upstream: the internal mounts (never reachable
    /// directly, nginx's `internal;`), the media mount, and 404 when there is no upstream.
    pub fn local(&self, inc: &Incoming<'_>) -> Option<Reply<'static>> {
        if self.opts.internal.iter().any(|m| m.key(inc.path).is_some()) {
            return Some(Reply::not_found());
        }
        if let Some(m) = &self.opts.media {
            if let Some(key) = m.key(inc.path) {
                if !matches!(inc.method, "GET" | "HEAD") {
                    let mut r = Reply::new(StatusCode::METHOD_NOT_ALLOWED);
                    r.headers
                        .push((ax::ALLOW, Cow::Owned(HeaderValue::from_static("GET, HEAD"))));
                    return Some(r);
                }
                let Some(key) = key else {
                    return Some(Reply::not_found());
                };
                let req = Request::from_fields(inc.headers);
                return Some(files::serve(&req, &m.dir, &key, &[], Some(&self.media_cc)));
            }
        }
        (!self.has_upstreams()).then(Reply::not_found)
    }

    /// Sends a request whose body is buffered to an upstream and returns its answer; a
    /// client that leaves while the upstream works cancels the upstream request (499).
    pub async fn forward(&self, inc: &Incoming<'_>, body: &[u8]) -> Reply<'static> {
        let work = async {
            match self.send(inc, body, None).await {
                Ok((conn, head, active)) => self.relay(inc, conn, head, active),
                Err(f) => failure_page(f),
            }
        };
        abort::unless_client_leaves(inc.client_fd, work)
            .await
            .unwrap_or_else(|| {
                tracing::info!(status = 499, method = %inc.method, uri = %inc.target, "client closed the connection before the upstream answered; upstream request cancelled");
                client_closed()
            })
    }

    /// The upstream request's bytes: the same for every upstream, so built once.
    fn encode(&self, inc: &Incoming<'_>, body: &[u8], upgrade: Option<&[u8]>) -> Bytes {
        let fallback;
        let host = match inc.host {
            Some(h) => h,
            // HTTP/1.0 without Host: the address the client reached.
            None => {
                fallback = inc
                    .local
                    .map_or_else(|| "localhost".to_string(), |a| a.to_string());
                &fallback
            }
        };
        let inbound = forward::Inbound {
            headers: inc.headers,
            peer: inc.peer,
            trusted: forward::trusted(inc.peer, &self.opts.trusted),
            host: Some(host),
            scheme: "http",
            upgrade,
        };
        let mut out = client::start_request(inc.method, inc.target, body.len());
        forward::write_request_headers(&inbound, &mut out);
        client::end_request(&mut out, inc.method, body);
        out.freeze()
    }

    /// Sends with retries; returns the connection with the response head read, or the
    /// final failure.
    pub(crate) async fn send(
        &self,
        inc: &Incoming<'_>,
        body: &[u8],
        upgrade: Option<&[u8]>,
    ) -> Result<(Conn, client::Head, Active), Failure> {
        let idempotent = matches!(
            inc.method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        ) && upgrade.is_none();
        let asked = client::Asked {
            head: inc.method == "HEAD",
            upgrade: upgrade.is_some(),
        };
        let request = self.encode(inc, body, upgrade);
        let mut tried: Vec<usize> = Vec::with_capacity(2);
        let mut last = Failure::Broken;
        for attempt in 0..2 {
            // A stale pooled connection is retried on the same upstream over a new
            // connection; a failed connect goes to another one.
            let i = match self.pool.pick(&tried) {
                Some(i) => i,
                None if attempt > 0 => tried[0],
                None => return Err(Failure::ConnectRefused),
            };
            tried.push(i);
            let active = Active::enter(&self.pool, i);
            let addr = active.addr();
            let idle = if attempt == 0 {
                client::take_idle(i)
            } else {
                None
            };
            let connected = match idle {
                Some(c) => Ok(c),
                None => {
                    match tokio::time::timeout(self.opts.connect_timeout, client::connect(addr, i))
                        .await
                    {
                        Ok(Ok(c)) => Ok(c),
                        Ok(Err(e)) => Err((Failure::ConnectRefused, e.to_string())),
                        Err(_) => Err((
                            Failure::ConnectTimeout,
                            format!(
                                "timed out (--connect-timeout {:?})",
                                self.opts.connect_timeout
                            ),
                        )),
                    }
                }
            };
            let mut conn = match connected {
                Ok(c) => c,
                Err((f, cause)) => {
                    tracing::warn!(upstream = %addr, method = %inc.method, uri = %inc.target, %cause, "cannot connect to the upstream");
                    last = f;
                    self.pool.failed(i);
                    if idempotent && self.pool.upstreams.len() > 1 {
                        continue;
                    }
                    break;
                }
            };
            match tokio::time::timeout(
                self.opts.read_timeout,
                client::exchange(&mut conn, &request, asked),
            )
            .await
            {
                Ok(Ok(head)) => {
                    self.pool.succeeded(i);
                    return Ok((conn, head, active));
                }
                Err(_) => {
                    tracing::warn!(upstream = %addr, method = %inc.method, uri = %inc.target, "upstream timed out reading the response head (--read-timeout {:?}): 504", self.opts.read_timeout);
                    self.pool.failed(i);
                    return Err(Failure::ReadTimeout);
                }
                Ok(Err(e)) => {
                    // A kept-alive connection the upstream closed as we used it says
                    // nothing about the upstream's health.
                    let stale = conn.reused
                        && conn.buf.is_empty()
                        && matches!(e, client::ReadError::ClosedEarly | client::ReadError::Io(_));
                    if stale {
                        tracing::debug!(upstream = %addr, cause = %e, "kept-alive upstream connection was closed");
                    } else {
                        tracing::warn!(upstream = %addr, method = %inc.method, uri = %inc.target, cause = %e, "upstream request failed");
                        self.pool.failed(i);
                    }
                    last = Failure::Broken;
                    // An invalid response is the upstream's answer, not a lost connection:
                    // not retried (nginx's `proxy_next_upstream` leaves out
                    // `invalid_header` by default).
                    if !idempotent || matches!(e, client::ReadError::Invalid(_)) {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// The upstream's answer: whole when it arrived with its head, else streamed.
    pub(crate) fn relay(
        &self,
        inc: &Incoming<'_>,
        mut conn: Conn,
        head: client::Head,
        active: Active,
    ) -> Reply<'static> {
        let mut state = BodyState::new(head.framing);
        // What of the body is already here: the whole of it, or an error in it, or neither.
        let whole = match state.complete(&mut conn.buf) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(upstream = %active.addr(), method = %inc.method, uri = %inc.target, cause = %e, "invalid response body from the upstream: 502");
                return failure_page(Failure::Broken);
            }
        };
        if let Some(target) = head.get("x-accel-redirect") {
            if whole.is_some() && head.keep_alive {
                client::put_idle(conn);
            }
            return self.accel_redirect(inc, target.as_bytes(), &head.headers);
        }
        let Ok(status) = StatusCode::from_u16(head.status) else {
            return failure_page(Failure::Broken); // `take_head` admits only 100-599
        };
        let mut r = Reply::new(status);
        for (k, v) in forward::response_headers(&head.headers, false) {
            r.headers.push((k.clone(), Cow::Owned(v.clone())));
        }
        let is_head = inc.method == "HEAD";
        let no_body = is_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if no_body {
            if head.framing == client::Framing::Empty && head.keep_alive {
                client::put_idle(conn);
            }
            if is_head && status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
                r.body = head_body(&head);
            }
            return r;
        }
        if let Some(whole) = whole {
            if head.keep_alive {
                client::put_idle(conn);
            }
            r.body = Body::Mem(whole);
            return r;
        }
        let len = match head.framing {
            client::Framing::Length(n) => Some(n),
            _ => None,
        };
        let stream = UpBody {
            conn: Some(conn),
            state,
            eof: false,
            keep_alive: head.keep_alive,
            read_timeout: self.opts.read_timeout,
            last_read: Instant::now(),
            sleep: None,
            watch: Watch::new(inc),
            active,
        };
        r.body = Body::Stream {
            len,
            stream: Box::pin(stream),
        };
        r
    }

    /// nginx X-Accel-Redirect: drop the upstream body, serve the named internal file with
    /// GET semantics, carrying over only the headers nginx carries over.
    fn accel_redirect(
        &self,
        inc: &Incoming<'_>,
        target: &[u8],
        up: &[(ax::HeaderName, HeaderValue)],
    ) -> Reply<'static> {
        const CARRIED: &[&str] = &[
            "content-type",
            "set-cookie",
            "content-disposition",
            "cache-control",
            "expires",
            "accept-ranges",
        ];
        let target = String::from_utf8_lossy(target);
        let path = target.split('?').next().unwrap_or("");
        let extra: Vec<_> = up
            .iter()
            .filter(|(k, _)| CARRIED.contains(&k.as_str()))
            .cloned()
            .collect();
        let req = Request::from_fields(inc.headers);
        let mounts = self.opts.internal.iter().chain(self.opts.media.iter());
        for m in mounts {
            if let Some(key) = m.key(path) {
                let Some(key) = key else {
                    return Reply::not_found();
                };
                let cc = if self
                    .opts
                    .media
                    .as_ref()
                    .is_some_and(|mm| std::ptr::eq(mm, m))
                {
                    Some(self.media_cc.as_str())
                } else {
                    None
                };
                return files::serve(&req, &m.dir, &key, &extra, cc);
            }
        }
        tracing::warn!(target = %target, "X-Accel-Redirect to a path under no --internal mount: 404");
        Reply::not_found()
    }

    /// `--health-check PATH`: probes every upstream each interval (runs until shutdown).
    pub async fn health_loop(self: Arc<Self>) {
        let Some(path) = self.opts.health_check.clone() else {
            return;
        };
        let mut request = client::start_request("GET", &path, 0);
        request.extend_from_slice(b"host: localhost\r\nconnection: close\r\n");
        client::end_request(&mut request, "GET", b"");
        let mut tick = tokio::time::interval(self.opts.health_interval);
        loop {
            tick.tick().await;
            for (i, u) in self.pool.upstreams.iter().enumerate() {
                let probe = async {
                    let mut c = client::connect(&u.addr, i).await.ok()?;
                    client::exchange(&mut c, &request, client::Asked::default())
                        .await
                        .ok()
                };
                let ok = matches!(
                    tokio::time::timeout(self.opts.connect_timeout, probe).await,
                    Ok(Some(head)) if head.status < 400
                );
                if !ok {
                    tracing::warn!(upstream = %u.addr, "health check {path} failed");
                }
                self.pool
                    .set_health(i, ok, self.opts.health_interval.max(self.opts.fail_timeout));
            }
        }
    }
}

enum BodyError {
    TooLarge,
    Client(String),
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
        let chunk = chunk.map_err(|e| BodyError::Client(e.to_string()))?;
        if max > 0 && (buf.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

pub(crate) fn failure_page(f: Failure) -> Reply<'static> {
    match f {
        Failure::ConnectTimeout | Failure::ReadTimeout => {
            page(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        Failure::ConnectRefused | Failure::Broken => page(StatusCode::BAD_GATEWAY, "Bad Gateway"),
    }
}

/// The body of the answer to HEAD, declaring what GET's would: the upstream's
/// Content-Length when it sent one (already checked by `client::framing`), else a stream of
/// unknown length, which goes out as `Transfer-Encoding: chunked` to HTTP/1.1 clients, as
/// GET's streamed body does (RFC 9112 §6.1 allows that on HEAD). Never a length of 0 that
/// nobody declared.
fn head_body(head: &client::Head) -> Body {
    let length = head
        .get("content-length")
        .and_then(|v| client::content_length(v.as_bytes()).ok());
    match length {
        Some(n) => Body::Omitted(n),
        None => Body::Stream {
            len: None,
            stream: Box::pin(futures_util::stream::empty()),
        },
    }
}

/// What is logged when the client left first (nginx's non-standard 499); nothing reaches
/// the client, whose socket is closed.
fn client_closed() -> Reply<'static> {
    let mut r = Reply::new(StatusCode::from_u16(499).expect("499 is a valid status code"));
    r.close = true;
    r
}

/// Logs a 499 when dropped before [`Watch::done`]: the client went away first.
struct Watch {
    what: Option<String>,
}

impl Watch {
    fn new(inc: &Incoming<'_>) -> Watch {
        Watch {
            what: Some(format!("{} {}", inc.method, inc.target)),
        }
    }
    fn done(&mut self) {
        self.what = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(what) = self.what.take() {
            tracing::info!(status = 499, "client closed the connection before the response was complete: {what}; upstream request dropped");
        }
    }
}

/// A response body still arriving from the upstream, read by the client's task; the
/// connection goes back to the idle list once the body has been read to its end.
struct UpBody {
    conn: Option<Conn>,
    state: BodyState,
    eof: bool,
    keep_alive: bool,
    read_timeout: Duration,
    last_read: Instant,
    /// Armed on the first wait; re-armed from `last_read` only when it fires.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    watch: Watch,
    active: Active,
}

impl UpBody {
    fn fail(&mut self, why: impl std::fmt::Display) -> Poll<Option<Result<Bytes, std::io::Error>>> {
        self.watch.done();
        self.conn = None;
        tracing::warn!(upstream = %self.active.addr(), "upstream response body failed: {why}");
        Poll::Ready(Some(Err(std::io::Error::other(why.to_string()))))
    }
}

impl futures_util::Stream for UpBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.state.next(&mut conn.buf, this.eof) {
                Ok(Piece::Data(d)) if d.is_empty() => continue,
                Ok(Piece::Data(d)) => return Poll::Ready(Some(Ok(d))),
                Ok(Piece::End) => {
                    this.watch.done();
                    if let Some(c) = this.conn.take().filter(|_| this.keep_alive) {
                        client::put_idle(c);
                    }
                    return Poll::Ready(None);
                }
                Err(why) => return this.fail(why),
                Ok(Piece::NeedMore) => {}
            }
            match client::poll_fill(conn, cx) {
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => this.last_read = Instant::now(),
                Poll::Ready(Err(e)) => return this.fail(e),
                Poll::Pending => {
                    let deadline =
                        tokio::time::Instant::from_std(this.last_read + this.read_timeout);
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        let t = this.read_timeout;
                        return this.fail(format_args!("stalled longer than --read-timeout {t:?}"));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
