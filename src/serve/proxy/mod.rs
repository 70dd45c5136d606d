//! `--upstream`: the reverse proxy to the WSGI/ASGI backend, plus the file mounts that only
//! make sense next to it (`--internal` for X-Accel-Redirect, `--media-root`).
//!
//! - `client`: the HTTP/1.1 client (per-worker keep-alive connections, framing).
//! - `upstream`: addresses, TCP/Unix streams, balancing, health.
//! - `forward`: header rewriting both ways.
//! - `files`: internal and media mounts (ETag, Range, conditionals).
//! - `tunnel`: WebSocket/Upgrade.
//!
//! Request bodies are buffered (bounded by `--max-body`) before an upstream is contacted, so
//! a slow client never holds a gunicorn sync worker; responses are streamed as produced.

pub mod abort;
pub mod client;
pub mod files;
pub mod forward;
pub mod tunnel;
pub mod upstream;

use crate::serve::respond::not_found;
use actix_web::dev::Payload;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use client::{BodyState, Conn, Piece};
use files::Mount;
use futures_util::StreamExt;
use ipnet::IpNet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use upstream::{Active, Addr, Balance, Pool};

/// Everything the proxy needs, from the command line.
/// The local address of a client connection, kept in its connection data.
#[derive(Clone, Copy)]
pub struct LocalAddr(pub std::net::SocketAddr);

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

    /// Every request outside STATIC_URL.
    pub async fn handle(&self, req: &HttpRequest, payload: Payload) -> HttpResponse {
        let path = req.uri().path();
        // Internal mounts are never reachable directly (nginx `internal;`).
        if self.opts.internal.iter().any(|m| m.key(path).is_some()) {
            return not_found();
        }
        if let Some(m) = &self.opts.media {
            if let Some(key) = m.key(path) {
                let head = match *req.method() {
                    Method::GET => false,
                    Method::HEAD => true,
                    _ => {
                        return HttpResponse::MethodNotAllowed()
                            .insert_header((ax::ALLOW, "GET, HEAD"))
                            .finish()
                    }
                };
                let Some(key) = key else { return not_found() };
                return files::serve(req.headers(), head, &m.dir, &key, &[], Some(&self.media_cc));
            }
        }
        if !self.has_upstreams() {
            return not_found();
        }
        if let Some(up) = forward::upgrade_of(req.headers()) {
            if req.version() == actix_web::http::Version::HTTP_11 {
                let up = up.to_vec();
                return tunnel::run(self, req, payload, &up).await;
            }
        }
        let mut watch = Watch::new(req);
        let body = match read_body(req, payload, self.opts.max_body).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                watch.done();
                tracing::info!(path = %req.uri(), "request body over --max-body ({} bytes): 413", self.opts.max_body);
                return page(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
            }
            Err(BodyError::Client(e)) => {
                watch.done();
                tracing::info!(path = %req.uri(), "reading the request body failed: {e}");
                return page(StatusCode::BAD_REQUEST, "Bad Request");
            }
        };
        let res = abort::unless_client_leaves(req, self.forward(req, &body)).await;
        watch.done();
        res.unwrap_or_else(|| {
            tracing::info!(status = 499, method = %req.method(), uri = %req.uri(), "client closed the connection before the upstream answered; upstream request cancelled");
            client_closed()
        })
    }

    /// The upstream request's bytes: the same for every upstream, so built once.
    fn encode(&self, req: &HttpRequest, body: &[u8], upgrade: Option<&[u8]>) -> Bytes {
        let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let peer = req.peer_addr().map(|a| a.ip());
        let fallback;
        let host = match req
            .headers()
            .get(ax::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
        {
            Some(h) => h,
            // HTTP/1.0 without Host: the address the client reached, as actix-web's
            // ConnectionInfo would give it (the listening socket's).
            None => {
                fallback = req.conn_data::<LocalAddr>().map_or_else(
                    || req.connection_info().host().to_string(),
                    |a| a.0.to_string(),
                );
                &fallback
            }
        };
        let inbound = forward::Inbound {
            headers: req.headers(),
            peer,
            trusted: forward::trusted(peer, &self.opts.trusted),
            host: Some(host),
            scheme: "http",
            upgrade,
        };
        let method = req.method().as_str();
        let mut out = client::start_request(method, pq, body.len());
        forward::write_request_headers(&inbound, &mut out);
        client::end_request(&mut out, method, body);
        out.freeze()
    }

    /// Sends with retries; returns the connection with the response head read, or the
    /// final failure.
    pub(crate) async fn send(
        &self,
        req: &HttpRequest,
        body: &[u8],
        upgrade: Option<&[u8]>,
    ) -> Result<(Conn, client::Head, Active), Failure> {
        let idempotent = matches!(
            *req.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        ) && upgrade.is_none();
        let head_request = *req.method() == Method::HEAD;
        let request = self.encode(req, body, upgrade);
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
                    tracing::warn!(upstream = %addr, method = %req.method(), uri = %req.uri(), %cause, "cannot connect to the upstream");
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
                client::exchange(&mut conn, &request, head_request),
            )
            .await
            {
                Ok(Ok(head)) => {
                    self.pool.succeeded(i);
                    return Ok((conn, head, active));
                }
                Err(_) => {
                    tracing::warn!(upstream = %addr, method = %req.method(), uri = %req.uri(), "upstream timed out reading the response head (--read-timeout {:?}): 504", self.opts.read_timeout);
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
                        tracing::warn!(upstream = %addr, method = %req.method(), uri = %req.uri(), cause = %e, "upstream request failed");
                        self.pool.failed(i);
                    }
                    last = Failure::Broken;
                    if !idempotent {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    async fn forward(&self, req: &HttpRequest, body: &[u8]) -> HttpResponse {
        match self.send(req, body, None).await {
            Ok((conn, head, active)) => self.relay(req, conn, head, active),
            Err(f) => failure_page(f),
        }
    }

    /// The upstream's answer: whole when it arrived with its head, else streamed.
    pub(crate) fn relay(
        &self,
        req: &HttpRequest,
        mut conn: Conn,
        head: client::Head,
        active: Active,
    ) -> HttpResponse {
        let mut state = BodyState::new(head.framing);
        if let Some(target) = head.get("x-accel-redirect") {
            if state.complete(&mut conn.buf).is_some() && head.keep_alive {
                client::put_idle(conn);
            }
            return self.accel_redirect(req, target.as_bytes(), &head.headers);
        }
        let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut b = HttpResponse::build(status);
        for (k, v) in forward::response_headers(&head.headers, false) {
            b.append_header((k.clone(), v.clone()));
        }
        let no_body = *req.method() == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if no_body {
            let length = head
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if head.framing == client::Framing::Empty && head.keep_alive {
                client::put_idle(conn);
            }
            return match length {
                Some(n) if *req.method() == Method::HEAD => {
                    b.body(crate::serve::body::SegmentBody::head(n))
                }
                _ => b.finish(),
            };
        }
        if let Some(whole) = state.complete(&mut conn.buf) {
            if head.keep_alive {
                client::put_idle(conn);
            }
            return b.body(whole);
        }
        let stream = UpBody {
            conn: Some(conn),
            state,
            eof: false,
            keep_alive: head.keep_alive,
            read_timeout: self.opts.read_timeout,
            last_read: Instant::now(),
            sleep: None,
            watch: Watch::new(req),
            active,
        };
        match head.framing {
            client::Framing::Length(n) => b.body(actix_web::body::SizedStream::new(n, stream)),
            _ => b.streaming(stream),
        }
    }

    /// nginx X-Accel-Redirect: drop the upstream body, serve the named internal file with
    /// GET semantics, carrying over only the headers nginx carries over.
    fn accel_redirect(
        &self,
        req: &HttpRequest,
        target: &[u8],
        up: &[(ax::HeaderName, HeaderValue)],
    ) -> HttpResponse {
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
        let head = *req.method() == Method::HEAD;
        let mounts = self.opts.internal.iter().chain(self.opts.media.iter());
        for m in mounts {
            if let Some(key) = m.key(path) {
                let Some(key) = key else { return not_found() };
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
                return files::serve(req.headers(), head, &m.dir, &key, &extra, cc);
            }
        }
        tracing::warn!(target = %target, "X-Accel-Redirect to a path under no --internal mount: 404");
        not_found()
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
                    client::exchange(&mut c, &request, false).await.ok()
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

/// Reads the whole request body, refusing more than `max` bytes (by Content-Length up front,
/// by counting for chunked bodies). Nothing reaches the upstream until this is done.
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

pub(crate) fn failure_page(f: Failure) -> HttpResponse {
    match f {
        Failure::ConnectTimeout | Failure::ReadTimeout => {
            page(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        Failure::ConnectRefused | Failure::Broken => page(StatusCode::BAD_GATEWAY, "Bad Gateway"),
    }
}

/// What is logged when the client left first (nginx's non-standard 499); nothing reaches
/// the client, whose socket is closed.
fn client_closed() -> HttpResponse {
    let status = StatusCode::from_u16(499).expect("499 is a valid status code");
    HttpResponse::build(status).force_close().finish()
}

/// A short HTML error page.
pub fn page(status: StatusCode, title: &str) -> HttpResponse {
    let code = status.as_u16();
    HttpResponse::build(status)
        .insert_header((ax::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((ax::CACHE_CONTROL, "no-store"))
        .body(format!(
            "<!doctype html>\n<html><head><title>{code} {title}</title></head>\n<body><h1>{code} {title}</h1><hr><p>staticd</p></body></html>\n"
        ))
}

/// Logs a 499 when dropped before [`Watch::done`]: the client went away first.
struct Watch {
    req: Option<HttpRequest>,
}

impl Watch {
    fn new(req: &HttpRequest) -> Watch {
        Watch {
            req: Some(req.clone()),
        }
    }
    fn done(&mut self) {
        self.req = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(r) = self.req.take() {
            tracing::info!(status = 499, "client closed the connection before the response was complete: {} {}; upstream request dropped", r.method(), r.uri());
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
