//! staticd's HTTP/1.1 server: every accepted connection is served here for its whole life.
//!
//! One loop per connection reads a head ([`request`]: httparse, then RFC 9112's request
//! rules), reads the body if the answer needs it ([`body`]: Content-Length or chunked,
//! bounded by `--max-body`, `100 Continue` first when asked; past 64 KiB into a temporary
//! file, [`spool`](super::spool)), answers (a local answer goes out before its request's
//! body, which is then read and dropped), and goes on with the next head:
//! static files from the table (one `writev` for a file held in memory, `sendfile` for one
//! on disk), everything else through the proxy (the upstream's answer relayed as it comes,
//! chunked when its length is not known), WebSocket and other upgrades as a tunnel
//! ([`Proxy::upgrade`](super::proxy::Proxy::upgrade)). One request is answered at a time,
//! so pipelined requests are answered in order, each framed for its own method and
//! version, and nothing after a `Connection: close` is read.
//!
//! Every head must arrive whole within `--header-timeout` (the first request's counted from
//! the accept, later ones from their first byte), a body may pause at most
//! `--body-timeout` (408), an idle connection lives `--keep-alive`, and a client that stops
//! reading is dropped after [`socket::SEND_TIMEOUT`]. A request refused before its body was
//! read is answered and the connection closed after a lingering read ([`ClientIo::linger`]),
//! so the answer is not lost to a reset.
//!
//! On a graceful shutdown a request being answered finishes (bounded by
//! `--shutdown-timeout`); the rest ends at once: an idle connection closes, a lingering
//! read is cut, and a tunnel is closed on both sides.
//!
//! The same loop serves HTTP/1.1 over TLS ([`serve_over`], from `tls_listen`): it is
//! generic over the connection ([`ClientIo`]), and only the way bytes reach the socket
//! differs (`stream` says what replaces `sendfile` there). The listener's [`Front`] adds
//! what HTTPS changes: ACME challenges and the redirect on the plain listener, HSTS and
//! `X-Forwarded-Proto: https` on the TLS one.
//!
//! Only h2c (prior knowledge: the connection starts with `PRI * HTTP/2.0`) goes elsewhere:
//! the connection, with the bytes already read, is handed to staticd's HTTP/2 server
//! ([`h2`](super::h2)), which answers with the same code: both route with
//! [`dispatch`](super::dispatch), the static tier answering under STATIC_URL and
//! [`Proxy::local`](super::proxy::Proxy::local) and
//! [`Proxy::forward`](super::proxy::Proxy::forward) the rest.
//!
//! Why not actix-web's HTTP/1 dispatcher: it copies every body chunk into its own buffer
//! and exposes no socket (no `sendfile`), its per-request work was most of the CPU time of a
//! small file, and handing a connection to it mid-way made its codec frame a response by
//! the next pipelined request's method and version.

pub mod body;
pub mod request;
pub mod response;

use super::body::Segment;
use super::conn::Settings;
use super::dispatch::{dispatch, Dispatch};
use super::health;
use super::https::Asked;
use super::log::{self, LogFormat};
use super::message::{self, error_page, Body, Reply, Verb};
use super::metrics::{self, Coding, RouteKind};
use super::proxy;
use super::socket::{self, Client, Peer, Prefixed};
use super::spool::{ReadAhead, Spool, SpoolError, Spooled, IN_MEMORY};
use super::state::{Live, State};
use super::stream::ClientIo;
use super::ticker;
use super::trim;
use actix_service::{fn_factory, fn_service, ServiceFactory};
use actix_web::http::StatusCode;
use body::{BodyError, BodyLen};
use bytes::{Buf, BytesMut};
use futures_util::future::{select, Either};
use request::{Form, Head, HeadError, Parse};
use response::{Framing, Persist};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// The first line of h2c's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The per-worker service factory for the connections of one listener: TCP or Unix
/// sockets (`T`, as actix-server accepts them).
pub fn factory<T: Into<Client> + 'static>(
    state: Arc<State>,
    settings: Settings,
) -> impl ServiceFactory<T, Config = (), Response = (), Error = (), InitError = ()> {
    let settings = Rc::new(settings);
    fn_factory(move || {
        let (state, settings) = (state.clone(), settings.clone());
        async move {
            Ok(fn_service(move |io: T| {
                serve(io.into(), state.clone(), settings.clone())
            }))
        }
    })
}

/// How the loop left a connection.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Done with it (closed, timed out, an I/O error): drop it.
    Close,
    /// h2c's preface: the HTTP/2 server (`h2`) takes it.
    H2c,
}

async fn serve(io: Client, state: Arc<State>, settings: Rc<Settings>) -> Result<(), ()> {
    let _open = (metrics::Connection::open(), trim::Open::count());
    let peer = io.peer();
    let mut buf = BytesMut::new();
    if run(&io, peer, &state, &settings, &mut buf).await == End::H2c {
        let ends = super::h2::Endpoints {
            local: io.local_addr(),
            peer,
        };
        super::h2::serve(Prefixed::new(buf, io), ends, &state, &settings).await;
    }
    Ok(())
}

/// Serves HTTP/1.x on a connection whose protocol is settled (TLS with ALPN `http/1.1` or
/// none): a connection that starts with h2c's preface is closed.
pub async fn serve_over<I: ClientIo>(
    io: &I,
    peer: Option<Peer>,
    state: &State,
    settings: &Settings,
) {
    let mut buf = BytesMut::new();
    run(io, peer, state, settings, &mut buf).await;
}

async fn run<I: ClientIo>(
    io: &I,
    peer: Option<Peer>,
    state: &State,
    settings: &Settings,
    buf: &mut BytesMut,
) -> End {
    let mut conn = Conn {
        io,
        state,
        settings,
        peer,
        log_format: LogFormat::Off,
        route: RouteKind::Internal,
        body_unread: false,
        body_pending: false,
        out: Vec::with_capacity(512),
    };
    conn.run(buf).await
}

/// A streamed body, after its head: each piece is written as soon as it is here, and while
/// one is being written the stream is read ahead, so a slow client does not slow the
/// upstream down (nginx's `proxy_buffering`), unless the upstream asked for none. Each
/// piece written is added to `streamed`.
async fn relay<I: ClientIo>(
    io: &I,
    stream: &mut message::Stream,
    framing: Framing,
    unbuffered: bool,
    streamed: &mut u64,
) -> std::io::Result<()> {
    let mut ahead = ReadAhead::new(stream, unbuffered);
    while let Some(piece) = ahead.next().await {
        let piece = piece?;
        ahead
            .while_writing(async {
                match framing {
                    Framing::Chunked => io.write_chunk(&piece).await,
                    _ => io.write_all(&piece, &[]).await,
                }
            })
            .await?;
        *streamed += piece.len() as u64;
    }
    if framing == Framing::Chunked {
        io.write_all(b"0\r\n\r\n", &[]).await?;
    }
    Ok(())
}

/// A future made in its box rather than on the stack and then moved: `Box::pin(f)` copies
/// the whole of `f` (5.6 KB for a proxied exchange, of which 88 bytes are set before it
/// first runs), which showed as 1.7 % of a proxied request's CPU.
fn in_box<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// What waiting for a head gave.
// Returned by value once per request and never stored (as `Parse`).
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(Head),
    Invalid(HeadError, Head),
    H2c,
    /// Part of a head came, not all of it, within `--header-timeout`.
    TimedOut,
    /// Closed, idle past `--keep-alive`, shut down, or an I/O error.
    Gone,
}

/// What happens to the connection after a response (in increasing order of finality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum After {
    /// As the request asked (keep-alive or close).
    Request,
    Close,
    /// Close, reading what the client still sends for a while (a request refused before
    /// its body was read).
    Linger,
}

/// Why a request body was not read.
enum BodyFail {
    Bad(BodyError),
    /// The temporary file for a large body could not be made or written.
    Spool(SpoolError),
    TimedOut,
    /// The client closed (or reset) the connection.
    Gone,
}

struct Conn<'a, I> {
    io: &'a I,
    state: &'a State,
    settings: &'a Settings,
    peer: Option<Peer>,
    /// The access log format of the request being answered (from the [`Live`] it loaded).
    log_format: LogFormat,
    /// The route kind of the request being answered (`Internal` until it is routed).
    route: RouteKind,
    /// The request being answered declared a body that was not read (its answer did not
    /// need it): the connection closes after the answer, lingering.
    body_unread: bool,
    /// The request being answered has a body still to come, to be read and dropped after
    /// the answer: an answer that ends the connection lingers.
    body_pending: bool,
    /// The response head being written, reused.
    out: Vec<u8>,
}

impl<I: ClientIo> Conn<'_, I> {
    async fn run(&mut self, buf: &mut BytesMut) -> End {
        // One shutdown listener for the connection's life, polled whenever it idles.
        let mut stop = std::pin::pin!(self.settings.shutdown.notified());
        let mut first = true;
        loop {
            self.route = RouteKind::Internal;
            self.body_unread = false;
            let next = self.read_head(buf, first, stop.as_mut()).await;
            // The configuration this request is answered with, whatever a reload does meanwhile.
            let live = self.state.live.load();
            self.log_format = live.log_format;
            let head = match next {
                Next::Head(head) => head,
                Next::H2c => return End::H2c,
                Next::Invalid(e, head) => {
                    tracing::debug!(peer = ?self.peer, "request refused: {e}");
                    let reply = error_page(e.status());
                    let start = self.clock();
                    self.send(&head, buf, reply, start, After::Linger).await;
                    return End::Close;
                }
                Next::TimedOut => {
                    let reply = error_page(StatusCode::REQUEST_TIMEOUT);
                    self.send(&Head::default(), &[], reply, None, After::Close)
                        .await;
                    return End::Close;
                }
                Next::Gone => return End::Close,
            };
            first = false;
            let start = self.clock();
            let keep = if head.body == BodyLen::None && head.upgrade.is_none() {
                // The common case: the answer borrows the head from `buf` as it is.
                let keep = self
                    .answer(&live, &head, buf, &Spooled::empty(), start, None)
                    .await;
                buf.advance(head.len);
                keep
            } else {
                // The head's bytes apart; `buf` goes on with what follows them.
                let hb = buf.split_to(head.len);
                // Routed once here: only the upstream's answer depends on the body.
                let local = head.body != BodyLen::None && !self.needs_body(&live, &head, &hb);
                if head.body == BodyLen::None {
                    self.answer(&live, &head, &hb, &Spooled::empty(), start, Some(buf))
                        .await
                } else if local && head.expect_continue && buf.is_empty() {
                    // RFC 9110 §10.1.1: a final status that can be decided from the head
                    // is sent at once, without `100 Continue` (as nginx answers a 405 or a
                    // static file); the body is not read, so the connection then closes.
                    self.body_unread = true;
                    self.answer(&live, &head, &hb, &Spooled::empty(), start, None)
                        .await;
                    false
                } else if local {
                    // nginx's discarded body: the answer goes out at once, and the body is
                    // read and dropped after it, so the connection can go on.
                    match body::Decoder::new(head.body, self.settings.max_body) {
                        Ok(decoder) => {
                            self.body_pending = true;
                            let keep = self
                                .answer(&live, &head, &hb, &Spooled::empty(), start, None)
                                .await;
                            self.body_pending = false;
                            keep && self.discard_body(decoder, buf).await
                        }
                        Err(e) => {
                            self.body_failed(&head, &hb, BodyFail::Bad(e), start).await;
                            false
                        }
                    }
                } else {
                    match self.read_body(&head, buf).await {
                        Ok(body) => self.answer(&live, &head, &hb, &body, start, None).await,
                        Err(fail) => {
                            self.body_failed(&head, &hb, fail, start).await;
                            false
                        }
                    }
                }
            };
            if !keep {
                return End::Close;
            }
        }
    }

    /// The clock, when the time will be logged or counted.
    fn clock(&self) -> Option<Instant> {
        (self.log_format != LogFormat::Off || metrics::enabled()).then(Instant::now)
    }

    /// Waits for the next head. The first one must arrive whole within `--header-timeout`
    /// of the accept; later ones may keep the connection idle for `--keep-alive`, and have
    /// `--header-timeout` from their first byte (a client trickling bytes does not reset it).
    async fn read_head(
        &mut self,
        buf: &mut BytesMut,
        first: bool,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Next {
        let now = ticker::Coarse::now();
        let mut idle = !first && buf.is_empty();
        let mut deadline = now
            + if idle {
                self.settings.keep_alive
            } else {
                self.settings.header_timeout
            };
        loop {
            if !buf.is_empty() {
                if first && buf[0] == b'P' && H2_PREFACE.starts_with(&buf[..buf.len().min(16)]) {
                    if buf.len() >= H2_PREFACE.len() {
                        return Next::H2c;
                    }
                } else {
                    match request::parse(buf) {
                        Parse::Ready(head) => return Next::Head(head),
                        Parse::Invalid(e, head) => return Next::Invalid(e, head),
                        Parse::NewerMinor(at) => {
                            // Served (and logged) as HTTP/1.1; parsed again at once.
                            buf[at] = b'1';
                            continue;
                        }
                        Parse::Partial => {}
                    }
                }
                if idle {
                    idle = false;
                    deadline = ticker::Coarse::now() + self.settings.header_timeout;
                }
            }
            let begun = !buf.is_empty();
            let read = std::pin::pin!(ticker::within(deadline, self.io.read_some(buf)));
            // Between requests an idle connection closes when the server stops.
            let got = if begun {
                read.await
            } else {
                match select(read, stop.as_mut()).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => return Next::Gone,
                }
            };
            match got {
                Ok(Ok(n)) if n > 0 => {}
                Err(_) if begun => return Next::TimedOut,
                _ => return Next::Gone,
            }
        }
    }

    /// Reads the whole body of `head` from `buf` and the socket (nothing reaches an
    /// upstream before it is complete: nginx's `proxy_request_buffering on`); past
    /// [`spool::IN_MEMORY`](super::spool::IN_MEMORY) it goes to a temporary file.
    async fn read_body(&mut self, head: &Head, buf: &mut BytesMut) -> Result<Spooled, BodyFail> {
        let mut decoder =
            body::Decoder::new(head.body, self.settings.max_body).map_err(BodyFail::Bad)?;
        // RFC 9110 §10.1.1: only when the body will be read, and not once it is coming.
        if head.expect_continue && buf.is_empty() {
            self.io
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n", &[])
                .await
                .map_err(|_| BodyFail::Gone)?;
        }
        let declared = match head.body {
            BodyLen::Length(n) => n,
            _ => 0,
        };
        // A body that came whole with its head (a form, a small JSON POST) is taken from
        // the buffer as it is, without a copy.
        if declared > 0 && declared <= IN_MEMORY as u64 && buf.len() as u64 >= declared {
            return Ok(Spooled::Mem(buf.split_to(declared as usize).freeze()));
        }
        let mut spool = Spool::new(declared);
        loop {
            let done = decoder.decode(buf, spool.buf()).map_err(BodyFail::Bad)?;
            spool.settle().map_err(BodyFail::Spool)?;
            if done {
                return spool.finish().map_err(BodyFail::Spool);
            }
            self.read_more_body(buf).await?;
        }
    }

    /// Reads and drops the body of a request answered without it; whether the connection
    /// can go on (not after bad framing, a pause over `--body-timeout` or a close: the
    /// answer has gone out, so there is nothing to tell the client).
    async fn discard_body(&mut self, mut decoder: body::Decoder, buf: &mut BytesMut) -> bool {
        let mut scratch = BytesMut::new();
        loop {
            match decoder.decode(buf, &mut scratch) {
                Ok(true) => return true,
                Ok(false) => scratch.clear(),
                Err(_) => return false,
            }
            if self.read_more_body(buf).await.is_err() {
                return false;
            }
        }
    }

    /// More of a body into `buf`, within `--body-timeout`.
    async fn read_more_body(&mut self, buf: &mut BytesMut) -> Result<(), BodyFail> {
        let read = self.io.read_more(buf, socket::BODY_READ);
        let by = ticker::Coarse::now() + self.settings.body_timeout;
        match ticker::within(by, read).await {
            Err(_) => Err(BodyFail::TimedOut),
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(_) => Err(BodyFail::Gone),
        }
    }

    /// Answers a request whose body could not be read, and closes.
    async fn body_failed(
        &mut self,
        head: &Head,
        hb: &[u8],
        fail: BodyFail,
        start: Option<Instant>,
    ) {
        let target = request::text(hb, Some(head.target.clone()));
        let (reply, after) = match fail {
            BodyFail::Bad(BodyError::TooLarge) => {
                tracing::info!(uri = %target, "request body over --max-body ({} bytes): 413", self.settings.max_body);
                let status = StatusCode::PAYLOAD_TOO_LARGE;
                (error_page(status), After::Linger)
            }
            BodyFail::Bad(e) => {
                tracing::info!(uri = %target, "bad request body: {e}: 400");
                let status = StatusCode::BAD_REQUEST;
                (error_page(status), After::Linger)
            }
            BodyFail::Spool(e) => {
                tracing::error!(uri = %target, "{e}: 500");
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                (error_page(status), After::Linger)
            }
            BodyFail::TimedOut => {
                tracing::info!(uri = %target, "request body stalled longer than --body-timeout ({:?}): 408", self.settings.body_timeout);
                let status = StatusCode::REQUEST_TIMEOUT;
                (error_page(status), After::Close)
            }
            BodyFail::Gone => {
                // Nothing to write to; logged as nginx does (400).
                let mut r = Reply::new(StatusCode::BAD_REQUEST);
                r.close = true;
                (r, After::Close)
            }
        };
        self.send(head, hb, reply, start, after).await;
    }

    /// Answers one request whose body (if any) is read; whether the connection goes on.
    /// `rest` (the bytes after the head) is given for an upgrade request: a tunnel takes it.
    async fn answer(
        &mut self,
        live: &Live,
        head: &Head,
        buf: &[u8],
        body: &Spooled,
        start: Option<Instant>,
        rest: Option<&mut BytesMut>,
    ) -> bool {
        if let Some(reply) = self.early(head, buf) {
            return self.send(head, buf, reply, start, After::Request).await;
        }
        if head.verb == Verb::Other {
            if let Some((reply, after)) = special(self.state, live, head, buf) {
                return self.send(head, buf, reply, start, after).await;
            }
        }
        let path = path_of(head, buf);
        let route = dispatch(self.state, live, path);
        self.route = route.kind();
        match route {
            Dispatch::Static(mut st) => {
                let req = head.request(buf);
                let reply = st.answer(head.verb, &req).await;
                self.send(head, buf, reply, start, After::Request).await
            }
            Dispatch::Health(probe) => {
                let reply = health::answer(self.state, probe, head.verb).await;
                self.send(head, buf, reply, start, After::Request).await
            }
            Dispatch::Proxy(_) => {
                // Boxed, as are a relay and a linger: a future is as large as its largest
                // state, and a connection's lives as long as it does. Inline, the upstream
                // exchange made every connection's 7 KB, idle or not; boxed, the
                // allocation is made per proxied request (costing far less than the
                // exchange) and an idle connection's future is 2.6 KB.
                in_box(|| self.proxied(&live.proxy, head, buf, path, body, start, rest)).await
            }
        }
    }

    /// Whether the answer to `head` depends on its body: only the upstream's does (the
    /// static tier, the health path, the mounts and the answers of [`special`] are decided
    /// by the head).
    fn needs_body(&self, live: &Live, head: &Head, buf: &[u8]) -> bool {
        if self.early(head, buf).is_some()
            || (head.verb == Verb::Other && special(self.state, live, head, buf).is_some())
        {
            return false;
        }
        let path = path_of(head, buf);
        matches!(dispatch(self.state, live, path), Dispatch::Proxy(_))
            && !live.proxy.answers_locally(path)
    }

    /// What the listener answers before routing (HTTPS on: an ACME challenge, the redirect).
    fn early(&self, head: &Head, buf: &[u8]) -> Option<Reply<'static>> {
        let front = &self.settings.front;
        // `OPTIONS *` and CONNECT name no path to redirect to: `special` answers them.
        if !front.answers_early() || matches!(head.form, Form::Asterisk | Form::Authority) {
            return None;
        }
        let origin = request::text(buf, Some(head.origin.clone()));
        let target = if origin.starts_with('/') {
            Cow::Borrowed(origin)
        } else {
            Cow::Owned(format!("/{origin}"))
        };
        let host = head.host(buf);
        front.early(&Asked {
            path: path_of(head, buf),
            target: &target,
            host,
            local: host.is_none().then(|| self.io.local_addr()).flatten(),
        })
    }

    /// A request outside STATIC_URL: a local mount, a tunnel, or the upstream.
    #[allow(clippy::too_many_arguments)]
    async fn proxied(
        &mut self,
        proxy: &proxy::Proxy,
        head: &Head,
        buf: &[u8],
        path: &str,
        body: &Spooled,
        start: Option<Instant>,
        rest: Option<&mut BytesMut>,
    ) -> bool {
        // All fields this time: they are forwarded. Split once (forwarding reads them
        // several times), into the array where it lies (collected, 1 KB would be copied).
        let mut lines: SmallVec<[(&str, &[u8]); 32]> = SmallVec::new();
        lines.extend(request::RawFields::of(head, buf).iter());
        let fields: &[(&str, &[u8])] = &lines;
        let host = head.host(buf);
        // Absolute-form goes upstream in origin form (`http://h?q` → `/?q`), Host from it.
        let origin = request::text(buf, Some(head.origin.clone()));
        let target = if origin.starts_with('/') {
            Cow::Borrowed(origin)
        } else {
            Cow::Owned(format!("/{origin}"))
        };
        let inc = proxy::Incoming {
            method: request::text(buf, Some(head.method.clone())),
            target: &target,
            path,
            headers: &fields,
            host,
            peer: self.peer,
            // Only asked for when there is no Host to forward (a syscall).
            local: host.is_none().then(|| self.io.local_addr()).flatten(),
            http10: head.http10,
            client_fd: Some(self.io.fd()),
            https: self.settings.front.secure,
            timed: start.is_some(),
        };
        if let Some(reply) = proxy.local(&inc) {
            return self.send(head, buf, reply, start, After::Request).await;
        }
        let (Some(upgrade), Some(rest)) = (head.upgrade.clone(), rest) else {
            let reply = proxy.forward(&inc, body).await;
            return self.send(head, buf, reply, start, After::Request).await;
        };
        let switch = match proxy.upgrade(&inc, &buf[upgrade]).await {
            proxy::tunnel::Upgrade::Answer(reply) => {
                return self.send(head, buf, reply, start, After::Request).await
            }
            proxy::tunnel::Upgrade::Switched(s) => s,
        };
        let mut r = Reply::new(StatusCode::SWITCHING_PROTOCOLS);
        r.headers.extend(
            switch
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Cow::Owned(v.clone()))),
        );
        self.out.clear();
        response::encode(&mut self.out, &r, Framing::Bare, Persist::Upgrade);
        if let Some(start) = start {
            self.log(head, buf, &r, 0, start);
            self.count(head, &r, 0, start);
        }
        if self.io.write_all(&self.out, &[]).await.is_ok() {
            let stop = self.settings.shutdown.notified();
            switch.splice(self.io, rest.split(), stop).await;
        }
        false
    }

    /// Writes `reply` and logs it; whether the connection can go on.
    async fn send(
        &mut self,
        head: &Head,
        buf: &[u8],
        mut reply: Reply<'_>,
        start: Option<Instant>,
        after: After,
    ) -> bool {
        let after = match self.body_unread {
            true => after.max(After::Linger),
            false => after,
        };
        if reply.close {
            // The client left (499): nothing to write.
            if let Some(start) = start {
                self.log(head, buf, &reply, 0, start);
                self.count(head, &reply, 0, start);
            }
            return false;
        }
        self.state
            .observe
            .rules
            .load()
            .apply(self.route, reply.status, &mut reply.headers);
        self.settings.front.add_hsts(&mut reply.headers);
        let framing = response::framing(reply.status, &reply.body, head.http10);
        let keep = after == After::Request
            && head.keep_alive
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
            self.log(head, buf, &reply, n, start);
        }
        // A stream's bytes are counted as they go, so a client that leaves mid-stream is
        // logged with what it was sent (as nginx's $body_bytes_sent), not 0.
        let mut streamed = 0;
        let sent = self
            .write(
                &mut reply.body,
                head_only,
                framing,
                reply.unbuffered,
                &mut streamed,
            )
            .await;
        if let Some(start) = start {
            // Counted once the answer is written (the duration covers the body), and before
            // a close tells the client it has everything.
            self.count(head, &reply, known.unwrap_or(streamed), start);
        }
        if persist == Persist::Close {
            self.io.finish().await;
        }
        if let (Some(start), None) = (start, known) {
            self.log(head, buf, &reply, streamed, start);
        }
        let unread = after == After::Linger || (self.body_pending && persist == Persist::Close);
        if unread && sent.is_ok() {
            in_box(|| self.io.linger(self.settings.shutdown.notified())).await;
        }
        sent.is_ok() && persist != Persist::Close
    }

    /// Writes the head in `self.out` and the body; the body bytes sent. A stream's bytes
    /// are added to `streamed` as each chunk is written.
    async fn write(
        &mut self,
        body: &mut Body,
        head_only: bool,
        framing: Framing,
        unbuffered: bool,
        streamed: &mut u64,
    ) -> std::io::Result<u64> {
        let io = self.io;
        if head_only {
            io.write_all(&self.out, &[]).await?;
            return Ok(0);
        }
        match body {
            Body::Empty | Body::Omitted(_) => io.write_all(&self.out, &[]).await?,
            Body::Mem(bytes) => io.write_all(&self.out, bytes).await?,
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
                                io.send_more(piece).await?;
                            }
                            io.send_file(file, *offset, *len).await?;
                        }
                    }
                }
                if let Some((last, before)) = held.split_last() {
                    for piece in before {
                        io.send_more(piece).await?;
                    }
                    io.write_all(last, &[]).await?;
                }
            }
            Body::Stream { stream, .. } => {
                // The head goes at once: a server-sent event stream may wait long for its
                // first event.
                io.write_all(&self.out, &[]).await?;
                // Boxed, as is a proxied exchange (`Conn::answer`).
                in_box(|| relay(io, stream, framing, unbuffered, streamed)).await?;
                return Ok(*streamed);
            }
        }
        Ok(body.size())
    }

    /// Counts an answer in the metrics (a no-op unless they are on).
    fn count(&self, head: &Head, reply: &Reply<'_>, bytes: u64, start: Instant) {
        let bytes = if head.verb == Verb::Head { 0 } else { bytes };
        metrics::request(
            self.route,
            reply.status.as_u16(),
            bytes,
            Coding::of(reply.content_coding()),
            start.elapsed(),
        );
    }

    fn log(&self, head: &Head, buf: &[u8], reply: &Reply<'_>, bytes: u64, start: Instant) {
        if self.log_format == LogFormat::Off {
            return;
        }
        let bytes = if head.verb == Verb::Head { 0 } else { bytes };
        let status = reply.status;
        let elapsed = start.elapsed();
        log::access(
            self.log_format,
            &log::Entry {
                remote: self.peer,
                method: request::text(buf, Some(head.method.clone())),
                target: request::text(buf, Some(head.target.clone())),
                version: if head.http10 { "HTTP/1.0" } else { "HTTP/1.1" },
                status: status.as_u16(),
                bytes,
                referer: request::text(buf, head.referer.clone()),
                user_agent: request::text(buf, head.user_agent.clone()),
                elapsed,
                route: self.route.as_str(),
                upstream: reply.upstream.as_ref().map(|u| (&*u.addr, u.header_time)),
            },
        );
    }
}

/// The path `head` asks for, still percent-encoded (absolute-form `http://host` has an
/// empty one: it is `/`).
fn path_of<'b>(head: &Head, buf: &'b [u8]) -> &'b str {
    match request::text(buf, Some(head.path.clone())) {
        "" => "/",
        p => p,
    }
}

/// [`dispatch::special`](super::dispatch::special), and what the connection does after it:
/// CONNECT's is closed (this is no forward proxy).
fn special(state: &State, live: &Live, head: &Head, buf: &[u8]) -> Option<(Reply<'static>, After)> {
    let method = &buf[head.method.clone()];
    let asterisk = head.form == Form::Asterisk;
    let reply = super::dispatch::special(state, live, method, asterisk, path_of(head, buf))?;
    let after = if method == b"CONNECT" {
        After::Linger
    } else {
        After::Request
    };
    Some((reply, after))
}
