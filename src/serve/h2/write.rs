//! Writing a [`Reply`] on an HTTP/2 stream: the head (status, `content-length` from the
//! body, `date`, the reply's fields less HTTP/1's connection-specific ones, RFC 9113
//! §8.2.2), then the body within the stream's flow-control window.
//!
//! A body held in memory is handed to `h2` whole: it queues what the window does not take
//! yet (the bytes are shared, not copied), which saves a wake-up per response on the small
//! files that make most of a page. Files are sent as the window opens, so a slow reader
//! holds at most a window of them; an upstream's stream is read ahead of a slow reader
//! (`spool::ReadAhead`), so it does not hold the upstream.

use crate::serve::body::Segment;
use crate::serve::message::{Body, Reply};
use crate::serve::socket::SEND_TIMEOUT;
use crate::serve::spool::ReadAhead;
use crate::serve::stream::{read_file, FILE_CHUNK};
use actix_web::http::header::{self as ax, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::SendStream;
use std::future::poll_fn;

/// Writes `reply` (only its head when `head_only`); the body bytes sent.
pub async fn reply(
    respond: &mut SendResponse<Bytes>,
    reply: &mut Reply<'_>,
    head_only: bool,
) -> u64 {
    let (head, bodiless) = head(reply);
    let end = bodiless || head_only || reply.body.known_size() == Some(0);
    let mut tx = match respond.send_response(head, end) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::debug!("HTTP/2 response head not sent: {e}");
            return 0;
        }
    };
    if end {
        return 0;
    }
    let mut sent = 0;
    let unbuffered = reply.unbuffered;
    let result = match &mut reply.body {
        Body::Empty | Body::Omitted(_) => tx.send_data(Bytes::new(), true),
        Body::Mem(bytes) => {
            sent = bytes.len() as u64;
            tx.send_data(bytes.clone(), true)
        }
        Body::Parts { segments, file } => {
            parts(&mut tx, segments, file.as_deref(), &mut sent).await
        }
        Body::Stream { stream, .. } => {
            // Read ahead of a slow reader, as over HTTP/1, unless the upstream asked for none.
            let mut ahead = ReadAhead::new(stream, unbuffered);
            loop {
                // A client that resets the stream stops the relay at once, not at the
                // upstream's next piece (a server-sent event stream may send none for long).
                let next = tokio::select! {
                    next = ahead.next() => next,
                    _ = poll_fn(|cx| tx.poll_reset(cx)) => return sent,
                };
                let piece = match next {
                    None => break tx.send_data(Bytes::new(), true),
                    Some(Ok(piece)) => piece,
                    Some(Err(e)) => {
                        // The client must not take a cut body for a whole one.
                        tracing::warn!("response body cut short: {e}; stream reset");
                        tx.send_reset(h2::Reason::INTERNAL_ERROR);
                        return sent;
                    }
                };
                sent += piece.len() as u64;
                if let Err(e) = ahead.while_writing(send(&mut tx, piece)).await {
                    break Err(e);
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!("HTTP/2 response body not sent whole: {e}");
    }
    sent
}

/// A body of file ranges and memory pieces (a range, `multipart/byteranges`, a file too
/// large to hold in memory), read [`FILE_CHUNK`] at a time.
async fn parts(
    tx: &mut SendStream<Bytes>,
    segments: &[Segment],
    file: Option<&std::fs::File>,
    sent: &mut u64,
) -> Result<(), h2::Error> {
    let mut buf = BytesMut::new();
    let mut nowait = true;
    for seg in segments {
        match seg {
            Segment::Mem(b) => {
                *sent += b.len() as u64;
                send(tx, b.clone()).await?;
            }
            Segment::File { offset, len } => {
                let Some(file) = file else {
                    tx.send_reset(h2::Reason::INTERNAL_ERROR);
                    return Ok(());
                };
                let (mut offset, mut left) = (*offset, *len);
                while left > 0 {
                    let n = left.min(FILE_CHUNK);
                    let piece = match read_file(file, &mut buf, offset, n, &mut nowait).await {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!("reading a file being served failed: {e}; stream reset");
                            tx.send_reset(h2::Reason::INTERNAL_ERROR);
                            return Ok(());
                        }
                    };
                    offset += piece.len() as u64;
                    left -= piece.len() as u64;
                    *sent += piece.len() as u64;
                    send(tx, piece).await?;
                }
            }
        }
    }
    tx.send_data(Bytes::new(), true)
}

/// Sends `data` as the stream's window allows (waiting for WINDOW_UPDATEs). A client that
/// opens no window for [`SEND_TIMEOUT`] (nginx's `send_timeout`, as on HTTP/1) gets the
/// stream reset: a reader that stopped cannot hold the answer forever.
async fn send(tx: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        tx.reserve_capacity(data.len());
        let cap = match tokio::time::timeout(SEND_TIMEOUT, poll_fn(|cx| tx.poll_capacity(cx))).await
        {
            Ok(Some(cap)) => cap?,
            // The stream was reset or closed: nothing more to send.
            Ok(None) => return Ok(()),
            Err(_) => {
                tx.send_reset(h2::Reason::CANCEL);
                return Err(h2::Reason::CANCEL.into());
            }
        };
        if cap > 0 {
            let piece = data.split_to(cap.min(data.len()));
            tx.send_data(piece, false)?;
        }
    }
    Ok(())
}

/// The response head of `reply`, and whether the status carries no body at all.
fn head(reply: &Reply<'_>) -> (http::Response<()>, bool) {
    let status = reply.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut res = http::Response::new(());
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.reserve(reply.headers.len() + 2);
    if !bodiless {
        if let Some(n) = reply.body.known_size() {
            headers.insert(ax::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    let mut dated = false;
    for (name, value) in &reply.headers {
        if connection_specific(name) || *name == ax::CONTENT_LENGTH {
            continue;
        }
        dated |= *name == ax::DATE;
        headers.append(name.clone(), value.as_ref().clone());
    }
    if !dated {
        headers.insert(ax::DATE, crate::serve::headers::date());
    }
    (res, bodiless)
}

/// Fields HTTP/2 forbids (RFC 9113 §8.2.2): an upstream's HTTP/1 connection fields never
/// reach an HTTP/2 client (the `h2` crate would refuse the whole head).
fn connection_specific(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "transfer-encoding" | "upgrade" | "keep-alive" | "proxy-connection" | "te"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn reply(status: u16, body: Body, fields: &[(&'static str, &'static str)]) -> Reply<'static> {
        let mut r = Reply::new(StatusCode::from_u16(status).unwrap());
        r.body = body;
        for (n, v) in fields {
            r.headers.push((
                HeaderName::from_static(n),
                Cow::Owned(HeaderValue::from_static(v)),
            ));
        }
        r
    }

    fn field<'a>(res: &'a http::Response<()>, name: &str) -> Vec<&'a str> {
        res.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn length_comes_from_the_body_not_the_fields() {
        let r = reply(
            200,
            Body::Mem(Bytes::from_static(b"hello")),
            &[("content-length", "99"), ("content-type", "text/plain")],
        );
        let (res, bodiless) = head(&r);
        assert!(!bodiless);
        assert_eq!(field(&res, "content-length"), ["5"]);
        assert_eq!(field(&res, "content-type"), ["text/plain"]);
        assert_eq!(field(&res, "date").len(), 1);
    }

    #[test]
    fn head_answers_declare_what_get_would_send() {
        let (res, _) = head(&reply(200, Body::Omitted(1234), &[]));
        assert_eq!(field(&res, "content-length"), ["1234"]);
    }

    #[test]
    fn not_modified_and_no_content_carry_no_length() {
        for status in [204, 304] {
            let (res, bodiless) = head(&reply(status, Body::Empty, &[("etag", "\"x\"")]));
            assert!(bodiless);
            assert!(field(&res, "content-length").is_empty(), "{status}");
            assert_eq!(field(&res, "etag"), ["\"x\""]);
        }
    }

    #[test]
    fn connection_fields_are_dropped_and_an_upstream_date_kept() {
        let r = reply(
            200,
            Body::Empty,
            &[
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=5"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "h2c"),
                ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
            ],
        );
        let (res, _) = head(&r);
        for name in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
            assert!(field(&res, name).is_empty(), "{name}");
        }
        assert_eq!(field(&res, "date"), ["Sun, 06 Nov 1994 08:49:37 GMT"]);
        assert_eq!(field(&res, "set-cookie"), ["a=1", "b=2"]);
        assert_eq!(field(&res, "content-length"), ["0"]);
    }
}
