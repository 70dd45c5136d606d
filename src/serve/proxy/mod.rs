//! `--upstream`: the reverse proxy to the WSGI/ASGI backend, plus the file mounts that only
//! make sense next to it (`--internal` for X-Accel-Redirect, `--media-root`).
//!
//! One request's way through, one file per step (`impl Proxy` is split along them):
//! - `incoming`: the request as the proxy sees it ([`Incoming`], from the HTTP/1 loop or
//!   the HTTP/2 server, each of which reads the body first).
//! - here: what is answered without an upstream ([`Proxy::local`]), and [`Proxy::forward`],
//!   which runs the next two steps and gives up when the client leaves (499, on the worker's
//!   [`ticker`](crate::serve::ticker)).
//! - `exchange`: the upstream request, sent with retries, up to the response head.
//! - `relay`: the response (whole, streamed, or an X-Accel-Redirect file), compressed as
//!   [`compress`](crate::serve::compress) decides, and the 499 watch that logs a client
//!   leaving mid-stream.
//! - `pages`: the error answers (502, 504, the 499 that writes nothing).
//! - `tunnel`: WebSocket/Upgrade (HTTP/1.1).
//!
//! And what they use:
//! - `client`: the HTTP/1.1 client (per-worker keep-alive connections, framing).
//! - `upstream`: addresses, TCP/Unix streams, balancing, health.
//! - `forward`: header rewriting both ways.
//! - `files`: internal and media mounts (ETag, Range, conditionals).
//! - `ready`: what the health path and the metrics read (readiness, upstream states).
//!
//! Request bodies are buffered (bounded by `--max-body`; past 64 KiB in a temporary file,
//! `spool`) before an upstream is contacted, so a slow client never holds a gunicorn sync
//! worker; responses are streamed as produced, and read ahead of a slow client by the
//! front ends' writers (`spool::Backlog`) for the same reason.

pub mod client;
pub mod exchange;
pub mod files;
pub mod forward;
pub mod incoming;
pub mod pages;
pub mod ready;
pub mod relay;
pub mod tunnel;
pub mod upstream;

pub use incoming::Incoming;

use crate::serve::message::{Reply, Request};
use crate::serve::spool::Spooled;
use crate::serve::ticker;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::StatusCode;
use files::Mount;
use forward::Trusted;
use pages::{client_closed, failure_page};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use upstream::{Addr, Balance, Pool};

/// Everything the proxy needs, from the command line. A reload (SIGHUP) that changes
/// any of it replaces the whole [`Proxy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub upstreams: Vec<Addr>,
    pub trusted: Vec<Trusted>,
    /// `--x-real-ip`: set X-Real-IP to the client's address.
    pub x_real_ip: bool,
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
    /// On-the-fly compression of upstream responses.
    pub compress: crate::serve::compress::Policy,
}

pub struct Proxy {
    opts: Options,
    pool: Arc<Pool>,
    media_cc: String,
    /// Replaced by a reload: its health loop ends (requests still using it finish).
    retired: std::sync::atomic::AtomicBool,
}

impl Proxy {
    pub fn new(opts: Options) -> Proxy {
        let pool = Arc::new(Pool::new(
            opts.upstreams.clone(),
            opts.balance,
            opts.max_fails,
            opts.fail_timeout,
        ));
        // `public` is added per request, only with Authorization (`Request::cache_control`).
        let media_cc = format!("max-age={}", opts.media_max_age);
        Proxy {
            opts,
            pool,
            media_cc,
            retired: Default::default(),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Says that a reload replaced this proxy: its health loop stops.
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn has_upstreams(&self) -> bool {
        !self.opts.upstreams.is_empty()
    }

    /// What is answered here without an upstream: the internal mounts (never reachable
    /// directly, nginx's `internal;`), the media mount, and 404 when there is no upstream.
    /// Whether [`local`](Self::local) answers a request for `path` (a mount, or no
    /// upstream): such an answer never depends on the request's body.
    pub fn answers_locally(&self, path: &str) -> bool {
        self.opts.internal.iter().any(|m| m.key(path).is_some())
            || self
                .opts
                .media
                .as_ref()
                .is_some_and(|m| m.key(path).is_some())
            || !self.has_upstreams()
    }

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
    pub async fn forward(&self, inc: &Incoming<'_>, body: &Spooled) -> Reply<'static> {
        let work = async {
            let started = inc.timed.then(std::time::Instant::now);
            match self.send(inc, body, None).await {
                Ok((conn, head, active)) => {
                    // Retries included: the time the client waited for the head.
                    let upstream = started.map(|s| {
                        let took = s.elapsed();
                        crate::serve::metrics::upstream_header(took);
                        crate::serve::message::Upstream {
                            addr: active.name(),
                            header_time: took,
                        }
                    });
                    let mut reply = self.relay(inc, conn, head, active);
                    reply.upstream = upstream;
                    reply
                }
                Err(f) => failure_page(f),
            }
        };
        ticker::guard(None, inc.client_fd, work)
            .await
            .unwrap_or_else(|_| {
                tracing::info!(status = 499, method = %inc.method, uri = %inc.target, "client closed the connection before the upstream answered; upstream request cancelled");
                client_closed()
            })
    }

    /// `--health-check PATH`: probes every upstream each interval (runs until shutdown,
    /// or until a reload retires this proxy).
    pub async fn health_loop(self: Arc<Self>) {
        let Some(path) = self.opts.health_check.clone() else {
            return;
        };
        let retired = || self.retired.load(std::sync::atomic::Ordering::Relaxed);
        let mut request = client::start_request("GET", &path, 0);
        request.extend_from_slice(b"host: localhost\r\nconnection: close\r\n");
        client::end_request(&mut request, "GET", &Spooled::empty());
        let mut tick = tokio::time::interval(self.opts.health_interval);
        loop {
            tick.tick().await;
            if retired() {
                return;
            }
            for (i, u) in self.pool.upstreams.iter().enumerate() {
                let probe = async {
                    let (mut c, sent) = client::connect(&u.addr, i, &request).await.ok()?;
                    client::exchange(&mut c, &request[sent..], client::Asked::default())
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
