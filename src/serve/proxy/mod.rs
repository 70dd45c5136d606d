//! `--upstream`: the reverse proxy to the WSGI/ASGI backend, plus the file mounts that only
//! make sense next to it (`--internal` for X-Accel-Redirect, `--media-root`).
//!
//! - `upstream`: addresses, connector (TCP/Unix, connect timeout), balancing, health.
//! - `forward`: header rewriting both ways.
//! - `files`: internal and media mounts (ETag, Range, conditionals).
//! - `tunnel`: WebSocket/Upgrade.
//!
//! Request bodies are buffered (bounded by `--max-body`) before an upstream is contacted, so
//! a slow client never holds a gunicorn sync worker; responses are streamed as produced.

pub mod abort;
pub mod files;
pub mod forward;
pub mod tunnel;
pub mod upstream;

use crate::serve::respond::not_found;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use files::Mount;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ipnet::IpNet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use upstream::{Active, Addr, Balance, Connector, Pool};

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
    client: Client<Connector, Full<Bytes>>,
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
        let connector = Connector {
            pool: pool.clone(),
            timeout: opts.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            // Below gunicorn's 2 s keepalive: a pooled connection is dropped before the
            // upstream closes it (the rest is covered by the retry of idempotent requests).
            .pool_idle_timeout(Duration::from_millis(1500))
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(32)
            .retry_canceled_requests(true)
            .set_host(false)
            .build(connector);
        let media_cc = format!("public, max-age={}", opts.media_max_age);
        Proxy {
            opts,
            pool,
            client,
            media_cc,
        }
    }

    pub fn has_upstreams(&self) -> bool {
        !self.opts.upstreams.is_empty()
    }

    /// Every request outside STATIC_URL.
    pub async fn handle(&self, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
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
        let res = abort::unless_client_leaves(req, self.forward(req, body)).await;
        watch.done();
        res.unwrap_or_else(|| {
            tracing::info!(status = 499, method = %req.method(), uri = %req.uri(), "client closed the connection before the upstream answered; upstream request cancelled");
            client_closed()
        })
    }

    /// Builds the upstream request for upstream `i`.
    fn upstream_request(
        &self,
        req: &HttpRequest,
        i: usize,
        body: Bytes,
        upgrade: Option<&[u8]>,
    ) -> Option<hyper::Request<Full<Bytes>>> {
        let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let uri: http::Uri = format!("http://u{i}{pq}").parse().ok()?;
        let peer = req.peer_addr().map(|a| a.ip());
        let info = req.connection_info();
        let host = req
            .headers()
            .get(ax::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .map(str::to_string)
            .or_else(|| Some(info.host().to_string()));
        let inbound = forward::Inbound {
            headers: req.headers(),
            peer,
            trusted: forward::trusted(peer, &self.opts.trusted),
            host: host.as_deref(),
            scheme: "http",
            upgrade,
        };
        let headers = forward::request_headers(&inbound);
        let method = http::Method::from_bytes(req.method().as_str().as_bytes()).ok()?;
        let mut r = hyper::Request::new(Full::new(body));
        *r.method_mut() = method;
        *r.uri_mut() = uri;
        *r.headers_mut() = headers;
        Some(r)
    }

    /// Sends with retries; returns the response head or the final failure.
    pub(crate) async fn send(
        &self,
        req: &HttpRequest,
        body: Bytes,
        upgrade: Option<&[u8]>,
    ) -> Result<(hyper::Response<Incoming>, usize, Active), Failure> {
        let idempotent = matches!(
            *req.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        ) && upgrade.is_none();
        let mut tried: Vec<usize> = Vec::with_capacity(2);
        let mut last = Failure::Broken;
        for attempt in 0..2 {
            // A stale pooled connection may be retried on the same upstream; a failed connect
            // goes to another one.
            let i = match self.pool.pick(&tried) {
                Some(i) => i,
                None if attempt > 0 => tried[0],
                None => return Err(Failure::ConnectRefused),
            };
            tried.push(i);
            let Some(hreq) = self.upstream_request(req, i, body.clone(), upgrade) else {
                return Err(Failure::Broken);
            };
            let active = Active::enter(&self.pool, i);
            let addr = &self.pool.upstreams[i].addr;
            let failure = match tokio::time::timeout(
                self.opts.read_timeout,
                self.client.request(hreq),
            )
            .await
            {
                Ok(Ok(resp)) => {
                    self.pool.succeeded(i);
                    return Ok((resp, i, active));
                }
                Err(_) => {
                    tracing::warn!(upstream = %addr, method = %req.method(), uri = %req.uri(), "upstream timed out reading the response head (--read-timeout {:?}): 504", self.opts.read_timeout);
                    self.pool.failed(i);
                    return Err(Failure::ReadTimeout);
                }
                Ok(Err(e)) => {
                    let f = classify(&e);
                    tracing::warn!(upstream = %addr, method = %req.method(), uri = %req.uri(), cause = %error_chain(&e), "upstream request failed ({f:?})");
                    f
                }
            };
            self.pool.failed(i);
            last = failure;
            let others = self.pool.upstreams.len() > 1;
            let retry = idempotent
                && match failure {
                    Failure::ConnectRefused | Failure::ConnectTimeout => others,
                    Failure::Broken => true,
                    Failure::ReadTimeout => false,
                };
            if !retry {
                break;
            }
        }
        Err(last)
    }

    async fn forward(&self, req: &HttpRequest, body: Bytes) -> HttpResponse {
        match self.send(req, body, None).await {
            Ok((resp, i, active)) => self.relay(req, resp, i, active),
            Err(f) => failure_page(f),
        }
    }

    /// The upstream's answer, streamed to the client.
    pub(crate) fn relay(
        &self,
        req: &HttpRequest,
        resp: hyper::Response<Incoming>,
        i: usize,
        active: Active,
    ) -> HttpResponse {
        let (parts, incoming) = resp.into_parts();
        if let Some(target) = parts.headers.get("x-accel-redirect") {
            drop(incoming);
            return self.accel_redirect(req, target.as_bytes(), &parts.headers);
        }
        let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut b = HttpResponse::build(status);
        for (k, v) in forward::response_headers(&parts.headers, false) {
            b.append_header((k, v));
        }
        let length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let no_body = *req.method() == Method::HEAD
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if no_body {
            drop(incoming);
            return match length {
                Some(n) if *req.method() == Method::HEAD => {
                    b.body(crate::serve::body::SegmentBody::head(n))
                }
                _ => b.finish(),
            };
        }
        let stream = UpBody {
            inner: incoming,
            read_timeout: self.opts.read_timeout,
            sleep: Box::pin(tokio::time::sleep(self.opts.read_timeout)),
            watch: Watch::new(req),
            upstream: self.pool.upstreams[i].addr.to_string(),
            _active: active,
        };
        match length {
            Some(n) => b.body(actix_web::body::SizedStream::new(n, stream)),
            None => b.streaming(stream),
        }
    }

    /// nginx X-Accel-Redirect: drop the upstream body, serve the named internal file with
    /// GET semantics, carrying over only the headers nginx carries over.
    fn accel_redirect(
        &self,
        req: &HttpRequest,
        target: &[u8],
        up: &http::HeaderMap,
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
        let mut extra = Vec::new();
        for (k, v) in up.iter() {
            if CARRIED.contains(&k.as_str()) {
                if let (Ok(k), Ok(v)) = (
                    ax::HeaderName::from_bytes(k.as_str().as_bytes()),
                    HeaderValue::from_bytes(v.as_bytes()),
                ) {
                    extra.push((k, v));
                }
            }
        }
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
        let mut tick = tokio::time::interval(self.opts.health_interval);
        loop {
            tick.tick().await;
            for i in 0..self.pool.upstreams.len() {
                let uri: http::Uri = match format!("http://u{i}{path}").parse() {
                    Ok(u) => u,
                    Err(_) => return,
                };
                let mut r = hyper::Request::new(Full::new(Bytes::new()));
                *r.uri_mut() = uri;
                r.headers_mut().insert(
                    http::header::HOST,
                    http::HeaderValue::from_static("localhost"),
                );
                let ok = matches!(
                    tokio::time::timeout(self.opts.connect_timeout, self.client.request(r)).await,
                    Ok(Ok(resp)) if resp.status().as_u16() < 400
                );
                if !ok {
                    tracing::warn!(upstream = %self.pool.upstreams[i].addr, "health check {path} failed");
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
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: u64,
) -> Result<Bytes, BodyError> {
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

fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut timed_out = false;
    while let Some(s) = src {
        if s.is::<upstream::ConnectTimeout>() {
            timed_out = true;
        }
        src = s.source();
    }
    if e.is_connect() {
        if timed_out {
            Failure::ConnectTimeout
        } else {
            Failure::ConnectRefused
        }
    } else {
        Failure::Broken
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
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
    what: Option<String>,
}

impl Watch {
    fn new(req: &HttpRequest) -> Watch {
        Watch {
            what: Some(format!("{} {}", req.method(), req.uri())),
        }
    }
    fn done(&mut self) {
        self.what = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(w) = self.what.take() {
            tracing::info!(status = 499, "client closed the connection before the response was complete: {w}; upstream request dropped");
        }
    }
}

/// The upstream body as it arrives, with the read timeout between chunks.
struct UpBody {
    inner: Incoming,
    read_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    watch: Watch,
    upstream: String,
    _active: Active,
}

impl futures_util::Stream for UpBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        use hyper::body::Body;
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let deadline = tokio::time::Instant::now() + this.read_timeout;
                    this.sleep.as_mut().reset(deadline);
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Poll::Ready(Some(Ok(data)));
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.watch.done();
                    tracing::warn!(upstream = %this.upstream, cause = %error_chain(&e), "upstream response body failed");
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                Poll::Ready(None) => {
                    this.watch.done();
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    if std::future::Future::poll(this.sleep.as_mut(), cx).is_ready() {
                        this.watch.done();
                        tracing::warn!(upstream = %this.upstream, "upstream body stalled longer than --read-timeout {:?}", this.read_timeout);
                        return Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "read timeout",
                        ))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
