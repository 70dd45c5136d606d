//! WebSocket and other HTTP/1.1 Upgrade requests (`Connection: upgrade` with `Upgrade`, as
//! the HTTP/1 loop recognises them): the handshake goes to the upstream; on `101` the loop
//! writes the answer and the two connections are spliced, closing after `--ws-idle-timeout`
//! of silence in both directions. Any other answer is relayed as a plain response.

use super::client::Conn;
use super::pages::{client_closed, failure_page};
use super::upstream::{Active, Stream};
use super::{forward, Incoming, Proxy};
use crate::serve::message::Reply;
use crate::serve::spool::Spooled;
use crate::serve::stream::ClientIo;
use crate::serve::ticker;
use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::BytesMut;
use futures_util::future::{select, Either};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The upstream's answer to an upgrade request.
pub enum Upgrade {
    /// `101`: write it (with [`Switch::headers`]), then [`Switch::splice`].
    Switched(Switch),
    /// Anything else (a refusal, a failure page, the client gone): a plain response.
    Answer(Reply<'static>),
}

/// An upstream connection that switched protocols.
pub struct Switch {
    /// The 101's headers for the client (`Upgrade` included; the loop adds
    /// `Connection: upgrade`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    conn: Conn,
    /// Counts for `least-conn` while the tunnel is open.
    _active: Active,
    limit: Duration,
}

impl Proxy {
    /// Sends an upgrade request (`upgrade` is its `Upgrade` value) to an upstream.
    pub async fn upgrade(&self, inc: &Incoming<'_>, upgrade: &[u8]) -> Upgrade {
        let none = Spooled::empty();
        let work = self.send(inc, &none, Some(upgrade));
        let (conn, head, active) = match ticker::guard(None, inc.client_fd, work).await {
            Err(_) => {
                tracing::info!(status = 499, method = %inc.method, uri = %inc.target, "client closed the connection before the upstream answered the upgrade");
                return Upgrade::Answer(client_closed());
            }
            Ok(Err(f)) => return Upgrade::Answer(failure_page(f)),
            Ok(Ok(r)) => r,
        };
        if head.status != 101 {
            return Upgrade::Answer(self.relay(inc, conn, head, active));
        }
        if let Some(to) = head.get("upgrade") {
            if !switch_allowed(upgrade, to.as_bytes()) {
                tracing::warn!(upstream = %active.addr(), method = %inc.method, uri = %inc.target, "the upstream switched to {:?}, which the request did not ask for: 502", String::from_utf8_lossy(to.as_bytes()));
                return Upgrade::Answer(failure_page(super::exchange::Failure::Broken));
            }
        }
        let mut headers: Vec<_> = forward::response_headers(head.headers, true).collect();
        if !headers.iter().any(|(k, _)| k == "upgrade") {
            if let Ok(v) = HeaderValue::from_bytes(upgrade) {
                headers.push((HeaderName::from_static("upgrade"), v));
            }
        }
        Upgrade::Switched(Switch {
            headers,
            conn,
            _active: active,
            limit: self.opts.ws_idle_timeout,
        })
    }
}

/// Whether a 101's `Upgrade` names only protocols the request's `Upgrade` offered (RFC
/// 9110 §7.8: a server MUST NOT switch to one the client did not indicate). Protocols are
/// compared as `name[/version]`, without regard to case; a 101 whose protocol was not
/// offered is the upstream's error, answered 502, its connection dropped.
fn switch_allowed(requested: &[u8], answered: &[u8]) -> bool {
    let tokens = |v: &[u8]| -> Vec<Vec<u8>> {
        v.split(|&b| b == b',')
            .map(|t| t.trim_ascii().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let offered = tokens(requested);
    let chosen = tokens(answered);
    !chosen.is_empty() && chosen.iter().all(|c| offered.contains(c))
}

impl Switch {
    /// Copies bytes both ways until both sides have closed (each close is passed on as a
    /// half-close), neither has sent anything for `--ws-idle-timeout`, or `stop` (the
    /// server's graceful shutdown) fires, which closes both connections: a tunnel has no
    /// request boundary to finish at, and would otherwise hold the shutdown until
    /// `--shutdown-timeout`. `from_client` is what the client sent after its request head;
    /// the upstream's bytes read with its 101 go to the client first.
    pub async fn splice(
        self,
        client: &impl ClientIo,
        from_client: BytesMut,
        stop: impl Future<Output = ()>,
    ) {
        let Switch { conn, limit, .. } = self;
        // A tunnel's messages are small and interactive: no Nagle delay on them (the
        // connection was opened without TCP_NODELAY, see `client::connect`).
        if let Stream::Tcp(s) = &conn.io {
            let _ = s.set_nodelay(true);
        }
        let (mut rd, mut wr) = tokio::io::split(conn.io);
        let early = conn.buf;
        let last = Cell::new(Instant::now());
        let idle = || last.get().elapsed() >= limit;
        let up = async {
            let mut buf = from_client;
            loop {
                if !buf.is_empty() {
                    match tokio::time::timeout(limit, wr.write_all(&buf)).await {
                        Ok(Ok(())) => buf.clear(),
                        _ => break,
                    }
                }
                match tokio::time::timeout(limit, client.read_some(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => last.set(Instant::now()),
                    Err(_) if !idle() => {}
                    _ => break,
                }
            }
            let _ = wr.shutdown().await;
        };
        let down = async {
            if client.write_all(&early, &[]).await.is_ok() {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match tokio::time::timeout(limit, rd.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {
                            last.set(Instant::now());
                            if client.write_all(&buf[..n], &[]).await.is_err() {
                                break;
                            }
                        }
                        Err(_) if !idle() => {}
                        Err(_) => {
                            tracing::info!("tunnel idle for {limit:?}: closed");
                            break;
                        }
                        Ok(_) => break,
                    }
                }
            }
            client.finish().await;
        };
        let both = futures_util::future::join(up, down);
        let stopped = matches!(select(pin!(both), pin!(stop)).await, Either::Right(_));
        if stopped {
            tracing::info!("tunnel closed: shutting down");
            // The upstream connection closes when this returns; the client sees our end.
            client.finish().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::switch_allowed;

    #[test]
    fn a_switch_must_be_to_an_offered_protocol() {
        assert!(switch_allowed(b"websocket", b"websocket"));
        assert!(switch_allowed(b"websocket", b"WebSocket"));
        assert!(switch_allowed(b"h2c, websocket", b" websocket "));
        assert!(switch_allowed(b"foo/2, bar", b"foo/2"));
        assert!(!switch_allowed(b"websocket", b"foo"));
        assert!(!switch_allowed(b"foo/2", b"foo/3"));
        assert!(!switch_allowed(b"websocket", b"websocket, foo"));
        assert!(!switch_allowed(b"websocket", b""));
    }
}
