//! The HTTP/1.1 fast path: every accepted connection starts here.
//!
//! Static requests (GET/HEAD/other methods without a body, under STATIC_URL) are parsed,
//! answered and written by this module directly: one `writev` for a file held in memory,
//! `sendfile` for one on disk. actix-web's HTTP/1 dispatcher cannot do either (it copies every
//! body chunk into its own write buffer and exposes no socket), and its per-request work was
//! most of staticd's CPU time for a small file.
//!
//! The first request it does not answer itself (anything outside STATIC_URL, a body, an
//! upgrade, h2c, a malformed head) hands the whole connection, with the bytes already read,
//! to actix-web for the rest of its life: the proxy, media and internal mounts and HTTP/2
//! behave exactly as before. Both paths build their static answers with the same
//! [`respond`](super::respond) logic.

pub mod request;
pub mod response;
pub mod socket;

use super::app::State;
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
use bytes::{Buf, BytesMut};
use futures_util::future::{select, Either};
use request::{Head, Parse};
use response::Persist;
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
                let read =
                    std::pin::pin!(tokio::time::timeout(wait, socket::read_some(self.io, buf)));
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
    /// `None`: not a static request, hand the connection over (nothing was written).
    async fn answer(&mut self, head: &Head, buf: &BytesMut) -> Option<bool> {
        let path = std::str::from_utf8(&buf[head.path.clone()]).ok()?;
        let Route::Static(key) = route(path, &self.state.prefix) else {
            return None;
        };
        let start = (self.state.log_format != LogFormat::Off).then(Instant::now);
        let table = self.state.table.load();
        let ctx = Ctx {
            table: &table,
            cors: self.state.cors.as_ref(),
        };
        let reply = respond(head.verb, &head.request(buf), key.as_deref(), &ctx);
        if reply.stale {
            let _ = self.state.nudge.try_send(super::reload::Wake::Stale);
        }
        let keep = head.keep_alive && !self.settings.keep_alive.is_zero();
        let persist = match (keep, head.http10) {
            (false, _) => Persist::Close,
            (true, true) => Persist::KeepAlive10,
            (true, false) => Persist::KeepAlive,
        };
        let sent = self.write(&reply, head.verb == Verb::Head, persist).await;
        if let Some(start) = start {
            self.log(head, buf, &reply, start);
        }
        Some(sent.is_ok() && persist != Persist::Close)
    }

    async fn write(
        &mut self,
        reply: &Reply<'_>,
        head_only: bool,
        persist: Persist,
    ) -> std::io::Result<()> {
        self.out.clear();
        response::encode(&mut self.out, reply, reply.body.size(), persist);
        let io = self.io;
        let r = match &reply.body {
            _ if head_only => socket::write_all(io, &self.out, &[]).await,
            Body::Empty => socket::write_all(io, &self.out, &[]).await,
            Body::Mem(bytes) => socket::write_all(io, &self.out, bytes).await,
            Body::Parts { segments, file } => {
                socket::send_more(io, &self.out).await?;
                for seg in segments {
                    match seg {
                        super::body::Segment::Mem(b) => socket::send_more(io, b).await?,
                        super::body::Segment::File { offset, len } => {
                            let Some(file) = file else {
                                return Err(std::io::Error::other("file segment without file"));
                            };
                            socket::send_file(io, file, *offset, *len).await?;
                        }
                    }
                }
                Ok(())
            }
        };
        if persist == Persist::Close {
            socket::finish(io);
        }
        r
    }

    fn log(&self, head: &Head, buf: &[u8], reply: &Reply<'_>, start: Instant) {
        let bytes = if head.verb == Verb::Head {
            0
        } else {
            reply.body.size()
        };
        log::access(
            self.state.log_format,
            &log::Entry {
                remote: self.peer.map(|a| a.ip()),
                method: request::text(buf, Some(head.method.clone())),
                target: request::text(buf, Some(head.target.clone())),
                version: if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" },
                status: reply.status.as_u16(),
                bytes,
                referer: request::text(buf, head.referer.clone()),
                user_agent: request::text(buf, head.user_agent.clone()),
                elapsed: start.elapsed(),
            },
        );
    }
}
