//! WebSocket and other HTTP/1.1 Upgrade requests: the handshake goes to the upstream; on
//! `101` the two connections are spliced, closing after `--ws-idle-timeout` of silence in
//! both directions.

use super::{failure_page, forward, Incoming, Proxy};
use actix_web::dev::Payload;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Last activity in either direction, in ms since `start`.
struct Idle {
    start: Instant,
    last: AtomicU64,
    limit: Duration,
}

impl Idle {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn expired(&self) -> bool {
        let idle = self.start.elapsed().as_millis() as u64 - self.last.load(Ordering::Relaxed);
        idle >= self.limit.as_millis() as u64
    }
}

pub async fn run(
    p: &Proxy,
    inc: &Incoming<'_>,
    mut payload: Payload,
    upgrade: &[u8],
) -> HttpResponse {
    let (conn, head, active) = match p.send(inc, &[], Some(upgrade)).await {
        Ok(r) => r,
        Err(f) => return failure_page(f).into_actix(false),
    };
    if head.status != 101 {
        return p.relay(inc, conn, head, active).into_actix(false);
    }
    let headers: Vec<_> = forward::response_headers(&head.headers, false)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let proto = head
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("websocket")
        .to_string();
    // Whatever the upstream sent right after its 101 goes to the client first.
    let early = conn.buf.freeze();
    let (rd, mut wr) = tokio::io::split(conn.io);
    let limit = p.opts.ws_idle_timeout;
    let idle = Arc::new(Idle {
        start: Instant::now(),
        last: AtomicU64::new(0),
        limit,
    });
    // Client → upstream. The payload is tied to this worker's thread: a local task.
    let up_idle = idle.clone();
    actix_web::rt::spawn(async move {
        loop {
            match tokio::time::timeout(limit, payload.next()).await {
                Ok(Some(Ok(chunk))) => {
                    up_idle.touch();
                    if wr.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                Ok(_) => break,
                Err(_) if up_idle.expired() => break,
                Err(_) => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    // Upstream → client: the 101 response's body.
    let early = futures_util::stream::iter((!early.is_empty()).then(|| Ok(early)));
    let down = futures_util::stream::unfold(
        (rd, idle, active),
        move |(mut rd, idle, active)| async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match tokio::time::timeout(limit, rd.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return None,
                    Ok(Ok(n)) => {
                        idle.touch();
                        buf.truncate(n);
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(buf)),
                            (rd, idle, active),
                        ));
                    }
                    Err(_) if idle.expired() => {
                        tracing::info!("tunnel idle for {limit:?}: closed");
                        return None;
                    }
                    Err(_) => {}
                }
            }
        },
    );
    let mut b = HttpResponse::SwitchingProtocols();
    b.upgrade(proto);
    for (k, v) in headers {
        b.append_header((k, v));
    }
    b.streaming(early.chain(down))
}
