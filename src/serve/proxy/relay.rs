//! The upstream's answer on its way to the client: whole when it is here with its head
//! (a small body is awaited first: [`client`]'s `await_small_body`), streamed otherwise
//! ([`UpBody`], read by the client's task), or replaced by an internal file
//! (X-Accel-Redirect); compressed when [`compress`] says so (a whole body at once, with
//! its length; a streamed one as it streams). [`Watch`] logs a 499 when the client leaves
//! before the end.

use super::client::{self, BodyState, Conn, Piece};
use super::exchange::Failure;
use super::pages::failure_page;
use super::upstream::Active;
use super::{files, forward, Incoming, Proxy};
use crate::serve::compress::{self, coder, stream::Compressed, Plan};
use crate::serve::message::{Body, Reply, Request, Stream};
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::StatusCode;
use bytes::Bytes;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

impl Proxy {
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
        let declared = head
            .get("content-length")
            .and_then(|v| client::content_length(v.as_bytes()).ok());
        let unbuffered = head.unbuffered();
        let client::Head {
            status: _,
            headers,
            framing,
            keep_alive,
        } = head;
        let mut r = Reply::new(status);
        // Moved, not cloned: the head is not needed again.
        r.headers
            .extend(forward::response_headers(headers, false).map(|(k, v)| (k, Cow::Owned(v))));
        let is_head = inc.method == "HEAD";
        let req = Request::from_fields(inc.headers);
        let asked = compress::Asked {
            http10: inc.http10,
            range: req.range.is_some(),
            accept_encoding: req.accept_encoding,
            path: inc.path,
        };
        let mut plan = self
            .opts
            .compress
            .plan(&asked, status.as_u16(), &r.headers, declared);
        let no_body = is_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if no_body {
            if framing == client::Framing::Empty && keep_alive {
                client::put_idle(conn);
            }
            if is_head && status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
                // HEAD declares what GET's answer would: the upstream's Content-Length when
                // it sent one (already checked by `client::framing`), else a stream of
                // unknown length, which goes out as `Transfer-Encoding: chunked` to HTTP/1.1
                // clients, as GET's streamed body does (RFC 9112 §6.1 allows that on HEAD).
                // Never a length of 0 that nobody declared. GET's compressed length is not
                // known without its body.
                r.body = match (&plan, declared) {
                    (Plan::Compress(_), _) | (_, None) => unknown_length(),
                    (_, Some(n)) => Body::Omitted(n),
                };
            }
            compress::apply(plan, &mut r.headers);
            return r;
        }
        if let Some(whole) = whole {
            if keep_alive {
                client::put_idle(conn);
            }
            r.body = whole_body(&mut plan, whole, inc);
            compress::apply(plan, &mut r.headers);
            return r;
        }
        let len = match framing {
            client::Framing::Length(n) => Some(n),
            _ => None,
        };
        r.unbuffered = unbuffered;
        let stream: Stream = Box::pin(UpBody {
            conn: Some(conn),
            state,
            eof: false,
            keep_alive,
            read_timeout: self.opts.read_timeout,
            last_read: Instant::now(),
            sleep: None,
            watch: Watch::new(inc),
            active,
        });
        r.body = streamed_body(&mut plan, stream, len, inc);
        compress::apply(plan, &mut r.headers);
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
}

/// A body that arrived whole, compressed at once when `plan` says so (its length then known:
/// Content-Length, not chunked). Should the encoder fail, it goes as it came and `plan`
/// becomes [`Plan::Vary`].
fn whole_body(plan: &mut Plan, whole: Bytes, inc: &Incoming<'_>) -> Body {
    let Plan::Compress(coding) = *plan else {
        return Body::Mem(whole);
    };
    match coder::compress(coding, &whole) {
        Ok(z) => Body::Mem(z.into()),
        Err(e) => {
            tracing::warn!(method = %inc.method, uri = %inc.target, "compressing the response failed, sent as it came: {e}");
            *plan = Plan::Vary;
            Body::Mem(whole)
        }
    }
}

/// A body still arriving, compressed as it streams when `plan` says so (chunked then).
fn streamed_body(plan: &mut Plan, stream: Stream, len: Option<u64>, inc: &Incoming<'_>) -> Body {
    let Plan::Compress(coding) = *plan else {
        return Body::Stream { len, stream };
    };
    match coder::Encoder::new(coding, len) {
        Ok(encoder) => Body::Stream {
            len: None,
            stream: Box::pin(Compressed::new(stream, encoder)),
        },
        Err(e) => {
            tracing::warn!(method = %inc.method, uri = %inc.target, "no encoder for the response, sent as it comes: {e}");
            *plan = Plan::Vary;
            Body::Stream { len, stream }
        }
    }
}

/// No body, of a length not declared.
fn unknown_length() -> Body {
    Body::Stream {
        len: None,
        stream: Box::pin(futures_util::stream::empty()),
    }
}

/// Logs a 499 when dropped before [`Watch::done`]: the client went away first.
pub(crate) struct Watch {
    what: Option<String>,
}

impl Watch {
    pub(crate) fn new(inc: &Incoming<'_>) -> Watch {
        Watch {
            what: Some(format!("{} {}", inc.method, inc.target)),
        }
    }
    pub(crate) fn done(&mut self) {
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
