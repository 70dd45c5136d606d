//! The exchange with an upstream: the request encoded once, sent over a kept-alive or new
//! connection, retried where that is safe, up to the response head.

use super::client::{self, Conn};
use super::upstream::Active;
use super::{forward, Incoming, Proxy};
use crate::serve::spool::Spooled;
use crate::serve::ticker;
use bytes::BytesMut;

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
    /// The upstream request's bytes: the same for every upstream, so built once (and not
    /// frozen into `Bytes`, which would allocate for nothing: it is only read).
    fn encode(&self, inc: &Incoming<'_>, body: &Spooled, upgrade: Option<&[u8]>) -> BytesMut {
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
            peer: inc.peer.and_then(|p| p.addr()),
            trusted: forward::trusted(inc.peer, &self.opts.trusted),
            nets: &self.opts.trusted,
            real_ip: self.opts.x_real_ip,
            host: Some(host),
            scheme: if inc.https { "https" } else { "http" },
            upgrade,
        };
        let inline = body.in_memory().map_or(0, <[u8]>::len);
        let mut out = client::start_request(inc.method, inc.target, inline);
        forward::write_request_headers(&inbound, &mut out);
        client::end_request(&mut out, inc.method, body);
        out
    }

    /// Sends with retries; returns the connection with the response head read, or the
    /// final failure.
    pub(crate) async fn send(
        &self,
        inc: &Incoming<'_>,
        body: &Spooled,
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
        // Two attempts at most: the upstreams tried so far, without an allocation.
        let mut tried = [0usize; 2];
        let mut last = Failure::Broken;
        for attempt in 0..2 {
            // A stale pooled connection is retried on the same upstream over a new
            // connection; a failed connect goes to another one.
            let i = match self.pool.pick(&tried[..attempt]) {
                Some(i) => i,
                None if attempt > 0 => tried[0],
                None => return Err(Failure::ConnectRefused),
            };
            tried[attempt] = i;
            let active = Active::enter(&self.pool, i);
            let addr = active.addr();
            let idle = if attempt == 0 {
                client::take_idle(addr, i)
            } else {
                None
            };
            let connected = match idle {
                Some(c) => Ok((c, 0)),
                None => {
                    let connect = client::connect(addr, i, &request);
                    match tokio::time::timeout(self.opts.connect_timeout, connect).await {
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
            // `sent`: how much of the request a new connection wrote as it opened.
            let (mut conn, sent) = match connected {
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
            let timeout = self.opts.read_timeout;
            let exchanged = async {
                let rest = &request[sent..];
                if let Spooled::File { .. } = body {
                    // Written first, each write on its own clock; then the head's.
                    let sent = client::write_with_file_body(&mut conn, rest, body, timeout).await?;
                    let answer = client::answer(&mut conn, asked, sent);
                    return ticker::within(ticker::Coarse::now() + timeout, answer).await;
                }
                let head = client::exchange(&mut conn, rest, asked);
                ticker::within(ticker::Coarse::now() + timeout, head).await
            };
            match exchanged.await {
                Ok(Ok(head)) => {
                    self.pool.succeeded(i);
                    return Ok((conn, head, active));
                }
                Err(_) => {
                    tracing::warn!(upstream = %addr, method = %inc.method, uri = %inc.target, "upstream timed out reading the response head, or taking the request body (--read-timeout {:?}): 504", self.opts.read_timeout);
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
}
