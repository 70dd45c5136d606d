//! The HTTP/1.1 fast path: every accepted connection starts here.
//!
//! Requests without a body are parsed, answered and written by this module directly:
//! static files (one `writev` for a file held in memory, `sendfile` for one on disk) and
//! proxied routes (the upstream's answer relayed as it comes, chunked when its length is not
//! known). actix-web's HTTP/1 dispatcher can do neither as cheaply: it copies every body chunk
//! into its own write buffer, exposes no socket, and its per-request work was most of
//! staticd's CPU time for a small file.
//!
//! The first request it does not take (a body, an upgrade, `Expect`, h2c, a malformed head)
//! hands the whole connection, with the bytes already read, to actix-web for the rest of its
//! life: request bodies (`--max-body`, 413), WebSocket tunnels and HTTP/2 behave exactly as
//! before. Both paths build their answers with the same code ([`respond`](super::respond)
//! for the static tier, [`Proxy::local`](super::proxy::Proxy::local) and
//! [`Proxy::forward`](super::proxy::Proxy::forward) for the rest); only the writing differs.

pub mod request;
pub mod response;
pub mod socket;

use super::app::State;
use super::body::Segment;
use super::config::LogFormat;
use super::path::{route, Route};
use super::respond::{respond, Body, Ctx, Reply, Verb};
use super::{log, proxy};
use actix_http::{HttpService, Protocol};
use actix_server::GracefulShutdownSignal;
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory as _, Service, ServiceFactory,
    ServiceFactoryExt as _,
};
use actix_web::dev::AppConfig;
use actix_web::http::StatusCode;
use bytes::{Buf, BytesMut};
use futures_util::future::{select, Either};
use futures_util::StreamExt as _;
use request::{Head, Parse};
use response::{Framing, Persist};
use socket::Prefixed;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Longest request head the fast path buffers; a longer one goes to actix (which answers 431).
const MAX_HEAD: usize = 16 * 1024;

/// Connection settings shared by both paths.
#[derive(Clone)]
pub struct Settings {
    pub keep_alive: Duration,
    /// Time for the first request's head (actix's `client_request_timeout`).
    pub request_timeout: Duration,
    pub local: SocketAddr,
    pub shutdown: GracefulShutdownSignal,
}

/// The per-worker service factory for accepted TCP connections.
pub fn factory(
    state: Arc<State>,
    settings: Settings,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()> {
    let signal = settings.shutdown.clone();
    let http = HttpService::build()
        .keep_alive(settings.keep_alive)
        .client_request_timeout(settings.request_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(settings.local)
        .graceful_shutdown_signal(move || {
            let s = signal.clone();
            async move { s.notified().await }
        })
        .on_connect_ext(|io: &Prefixed, data: &mut actix_web::dev::Extensions| {
            proxy::abort::remember(io.fd(), data);
            if let Ok(addr) = io.local_addr() {
                data.insert(proxy::LocalAddr(addr));
            }
        })
        .finish(map_config(
            super::app::build(actix_web::web::Data::from(state.clone()))
                .into_factory()
                .map_err(|e| e.error_response()),
            |_| AppConfig::default(),
        ));
    let settings = Rc::new(settings);
    fn_factory(move || {
        let fallback = http.new_service(());
        let (state, settings) = (state.clone(), settings.clone());
        async move {
            let fallback = Rc::new(fallback.await?);
            Ok(fn_service(move |io: TcpStream| {
                serve(io, state.clone(), settings.clone(), fallback.clone())
            }))
        }
    })
}

/// Why the fast path stopped with a connection.
enum End {
    /// Done with it (closed, timed out, an I/O error): drop it.
    Close,
    /// actix takes it from here.
    HandOver,
}

async fn serve<S>(
    io: TcpStream,
    state: Arc<State>,
    settings: Rc<Settings>,
    fallback: Rc<S>,
) -> Result<(), ()>
where
    S: Service<(Prefixed, Protocol, Option<SocketAddr>), Response = ()>,
{
    // nginx's `tcp_nodelay on`: a response in two writes must not wait for a delayed ACK.
    let _ = io.set_nodelay(true);
    let peer = io.peer_addr().ok();
    let mut buf = BytesMut::with_capacity(4096);
    let mut conn = Conn {
        io: &io,
        state: &state,
        settings: &settings,
        peer,
        out: Vec::with_capacity(512),
    };
    match conn.run(&mut buf).await {
        End::Close => Ok(()),
        End::HandOver => {
            let proto = if buf.starts_with(b"PRI * HTTP/2") {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
            let _ = fallback.call((Prefixed::new(buf, io), proto, peer)).await;
            Ok(())
        }
    }
}

struct Conn<'a> {
    io: &'a TcpStream,
    state: &'a State,
    settings: &'a Settings,
    peer: Option<SocketAddr>,
    /// The response head being written, reused.
    out: Vec<u8>,
}

impl Conn<'_> {
    async fn run(&mut self, buf: &mut BytesMut) -> End {
        let mut wait = self.settings.request_timeout;
        // One shutdown listener for the connection's life, polled whenever it idles.
        let mut stop = std::pin::pin!(self.settings.shutdown.notified());
        loop {
            // The whole head must arrive within `wait` (a client trickling bytes does not
            // reset it), as actix's `client_request_timeout`.
            let deadline = tokio::time::Instant::now() + wait;
            let head = loop {
                if !buf.is_empty() {
                    match request::parse(buf) {
                        Parse::Ready(head) => break head,
                        Parse::HandOver => return End::HandOver,
                        Parse::Partial if buf.len() >= MAX_HEAD => return End::HandOver,
                        Parse::Partial => {}
                    }
                }
                let idle = buf.is_empty();
                let read = std::pin::pin!(tokio::time::timeout_at(
                    deadline,
                    socket::read_some(self.io, buf)
                ));
                // Between requests an idle connection closes when the server stops.
                let got = if idle {
                    match select(read, stop.as_mut()).await {
                        Either::Left((r, _)) => r,
                        Either::Right(_) => return End::Close,
                    }
                } else {
                    read.await
                };
                match got {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return End::Close,
                }
            };
            match self.answer(&head, buf).await {
                Some(true) => {}
                Some(false) => return End::Close,
                None => return End::HandOver,
            }
            buf.advance(head.len);
            wait = self.settings.keep_alive;
        }
    }

    /// Answers one request. `Some(keep)`: answered, and whether the connection goes on;
    /// `None`: not one for the fast path, hand the connection over (nothing was written).
    async fn answer(&mut self, head: &Head, buf: &BytesMut) -> Option<bool> {
        let path = std::str::from_utf8(&buf[head.path.clone()]).ok()?;
        let start = (self.state.log_format != LogFormat::Off).then(Instant::now);
        match route(path, &self.state.prefix) {
            Route::Static(key) => {
                let table = self.state.table.load();
                let ctx = Ctx {
                    table: &table,
                    cors: self.state.cors.as_ref(),
                };
                let reply = respond(head.verb, &head.request(buf), key.as_deref(), &ctx);
                if reply.stale {
                    let _ = self.state.nudge.try_send(super::reload::Wake::Stale);
                }
                Some(self.send(head, buf, reply, start).await)
            }
            Route::Other => {
                // All fields this time: they are forwarded.
                let mut lines = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
                let mut parsed = httparse::Request::new(&mut lines);
                parsed.parse(buf).ok()?;
                let fields: &[httparse::Header<'_>] = parsed.headers;
                let host = fields
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("host"))
                    .and_then(|h| std::str::from_utf8(h.value).ok());
                let inc = proxy::Incoming {
                    method: request::text(buf, Some(head.method.clone())),
                    target: request::text(buf, Some(head.target.clone())),
                    path,
                    headers: &fields,
                    host,
                    peer: self.peer.map(|a| a.ip()),
                    // Only asked for when there is no Host to forward (a syscall).
                    local: host.is_none().then(|| self.io.local_addr().ok()).flatten(),
                    client_fd: Some(std::os::unix::io::AsRawFd::as_raw_fd(self.io)),
                };
                let proxy = &self.state.proxy;
                let reply = match proxy.local(&inc) {
                    Some(r) => r,
                    None => proxy.forward(&inc, &[]).await,
                };
                Some(self.send(head, buf, reply, start).await)
            }
        }
    }

    /// Writes `reply` and logs it; whether the connection can go on.
    async fn send(
        &mut self,
        head: &Head,
        buf: &[u8],
        mut reply: Reply<'_>,
        start: Option<Instant>,
    ) -> bool {
        if reply.close {
            // The client left (499): nothing to write.
            if let Some(start) = start {
                self.log(head, buf, reply.status, 0, start);
            }
            return false;
        }
        let framing = response::framing(reply.status, &reply.body, head.http10);
        let keep = head.keep_alive
            && !self.settings.keep_alive.is_zero()
            && framing != Framing::UntilClose;
        let persist = match (keep, head.http10) {
            (false, _) => Persist::Close,
            (true, true) => Persist::KeepAlive10,
            (true, false) => Persist::KeepAlive,
        };
        self.out.clear();
        response::encode(&mut self.out, &reply, framing, persist);
        let head_only = head.verb == Verb::Head || framing == Framing::Bare;
        // Logged before writing when the length is known (as actix-web does), so lines
        // keep the order in which requests were answered; a stream's after it ends.
        let known = reply.body.known_size();
        if let (Some(start), Some(n)) = (start, known) {
            self.log(head, buf, reply.status, n, start);
        }
        let sent = self.write(&mut reply.body, head_only, framing).await;
        if persist == Persist::Close {
            socket::finish(self.io);
        }
        if let (Some(start), None) = (start, known) {
            let bytes = *sent.as_ref().unwrap_or(&0);
            self.log(head, buf, reply.status, bytes, start);
        }
        sent.is_ok() && persist != Persist::Close
    }

    /// Writes the head in `self.out` and the body; the body bytes sent.
    async fn write(
        &mut self,
        body: &mut Body,
        head_only: bool,
        framing: Framing,
    ) -> std::io::Result<u64> {
        let io = self.io;
        if head_only {
            socket::write_all(io, &self.out, &[]).await?;
            return Ok(0);
        }
        match body {
            Body::Empty | Body::Omitted(_) => socket::write_all(io, &self.out, &[]).await?,
            Body::Mem(bytes) => socket::write_all(io, &self.out, bytes).await?,
            Body::Parts { segments, file } => {
                // Memory pieces (the head, part headers) are held back until a file range
                // follows them: they go out with MSG_MORE to share its packets. The last
                // piece of the response must go without it, or the kernel would keep it
                // back (about 200 ms) waiting for more.
                let mut held: Vec<&[u8]> = vec![&self.out];
                for seg in segments.iter() {
                    match seg {
                        Segment::Mem(b) => held.push(b),
                        Segment::File { len: 0, .. } => {}
                        Segment::File { offset, len } => {
                            let Some(file) = file else {
                                return Err(std::io::Error::other("file segment without file"));
                            };
                            for piece in held.drain(..) {
                                socket::send_more(io, piece).await?;
                            }
                            socket::send_file(io, file, *offset, *len).await?;
                        }
                    }
                }
                if let Some((last, before)) = held.split_last() {
                    for piece in before {
                        socket::send_more(io, piece).await?;
                    }
                    socket::write_all(io, last, &[]).await?;
                }
            }
            Body::Stream { stream, .. } => {
                // The head goes at once: a server-sent event stream may wait long for its
                // first event. Each chunk is written as it arrives.
                socket::write_all(io, &self.out, &[]).await?;
                let mut sent = 0;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if framing == Framing::Chunked {
                        if chunk.is_empty() {
                            continue;
                        }
                        socket::write_chunk(io, &chunk).await?;
                    } else {
                        socket::write_all(io, &chunk, &[]).await?;
                    }
                    sent += chunk.len() as u64;
                }
                if framing == Framing::Chunked {
                    socket::write_all(io, b"0\r\n\r\n", &[]).await?;
                }
                return Ok(sent);
            }
        }
        Ok(body.size())
    }

    fn log(&self, head: &Head, buf: &[u8], status: StatusCode, bytes: u64, start: Instant) {
        let bytes = if head.verb == Verb::Head { 0 } else { bytes };
        log::access(
            self.state.log_format,
            &log::Entry {
                remote: self.peer.map(|a| a.ip()),
                method: request::text(buf, Some(head.method.clone())),
                target: request::text(buf, Some(head.target.clone())),
                version: if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" },
                status: status.as_u16(),
                bytes,
                referer: request::text(buf, head.referer.clone()),
                user_agent: request::text(buf, head.user_agent.clone()),
                elapsed: start.elapsed(),
            },
        );
    }
}
