//! Response heads for the HTTP/1 loop: status line, the reply's headers, then what HTTP/1.1
//! framing adds (Content-Length, Date, Connection), written into one reused buffer.

use crate::serve::message::{Body, Reply};
use actix_web::http::StatusCode;

/// How the connection goes on after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: nothing to say.
    KeepAlive,
    /// HTTP/1.0 that asked for keep-alive: confirm it.
    KeepAlive10,
    Close,
    /// A 101 to an upgrade request: the connection becomes a tunnel.
    Upgrade,
}

/// How the body is delimited on the wire (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` (also on HEAD: the length GET would send).
    Length(u64),
    /// 1xx, 204 and 304: no length, no body.
    Bare,
    /// A stream of unknown length to an HTTP/1.1 client.
    Chunked,
    /// A stream of unknown length to an HTTP/1.0 client: ends when the connection does.
    UntilClose,
}

/// The framing for `body` under `status`.
pub fn framing(status: StatusCode, body: &Body, http10: bool) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::Bare;
    }
    match body.known_size() {
        Some(n) => Framing::Length(n),
        None if http10 => Framing::UntilClose,
        None => Framing::Chunked,
    }
}

/// Appends the head of `reply` to `out`.
pub fn encode(out: &mut Vec<u8>, reply: &Reply<'_>, framing: Framing, persist: Persist) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(reply.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        reply
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &reply.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Bare | Framing::UntilClose => {}
    }
    out.extend_from_slice(match persist {
        Persist::KeepAlive => b"",
        Persist::KeepAlive10 => b"connection: keep-alive\r\n".as_slice(),
        Persist::Close => b"connection: close\r\n",
        Persist::Upgrade => b"connection: upgrade\r\n",
    });
    out.extend_from_slice(b"date: ");
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the current IMF-fixdate (formatted once per second per worker).
fn date(out: &mut Vec<u8>) {
    out.extend_from_slice(crate::serve::headers::date().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{self, HeaderValue};
    use std::borrow::Cow;

    fn head(reply: &Reply<'_>, len: u64, p: Persist) -> String {
        let mut out = Vec::new();
        let f = match framing(reply.status, &reply.body, false) {
            Framing::Length(_) => Framing::Length(len),
            other => other,
        };
        encode(&mut out, reply, f, p);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn heads_and_lengths() {
        let r = Reply::not_found();
        let s = head(&r, 14, Persist::KeepAlive);
        assert!(s.starts_with(
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 14\r\ndate: "
        ), "{s}");
        assert!(s.ends_with(" GMT\r\n\r\n"), "{s}");
        assert!(
            head(&r, 0, Persist::Close).contains("\r\ncontent-length: 0\r\nconnection: close\r\n")
        );
        assert!(head(&r, 1234567, Persist::KeepAlive10)
            .contains("\r\ncontent-length: 1234567\r\nconnection: keep-alive\r\n"));
    }

    #[test]
    fn not_modified_has_no_length() {
        let r = Reply {
            status: StatusCode::NOT_MODIFIED,
            headers: vec![(header::ETAG, Cow::Owned(HeaderValue::from_static("\"x\"")))],
            body: Body::Empty,
            stale: false,
            close: false,
            upstream: None,
            unbuffered: false,
        };
        let s = head(&r, 0, Persist::KeepAlive);
        assert!(
            s.starts_with("HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\ndate: "),
            "{s}"
        );
    }

    #[test]
    fn streams_are_chunked_for_1_1_and_until_close_for_1_0() {
        let stream = || Body::Stream {
            len: None,
            stream: Box::pin(futures_util::stream::empty()),
        };
        assert_eq!(framing(StatusCode::OK, &stream(), false), Framing::Chunked);
        assert_eq!(
            framing(StatusCode::OK, &stream(), true),
            Framing::UntilClose
        );
        assert_eq!(
            framing(StatusCode::NO_CONTENT, &stream(), false),
            Framing::Bare
        );
        let sized = Body::Stream {
            len: Some(5),
            stream: Box::pin(futures_util::stream::empty()),
        };
        assert_eq!(framing(StatusCode::OK, &sized, true), Framing::Length(5));
        let mut out = Vec::new();
        let r = Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: stream(),
            stale: false,
            close: false,
            upstream: None,
            unbuffered: false,
        };
        encode(&mut out, &r, Framing::Chunked, Persist::KeepAlive);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ndate: "));
    }
}
