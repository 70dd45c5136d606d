//! Response heads for the fast path: status line, the reply's headers, then what HTTP/1.1
//! framing adds (Content-Length, Date, Connection), written into one reused buffer.

use crate::serve::respond::Reply;
use actix_web::http::StatusCode;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// How the connection goes on after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: nothing to say.
    KeepAlive,
    /// HTTP/1.0 that asked for keep-alive: confirm it.
    KeepAlive10,
    Close,
}

/// Appends the head of `reply` to `out`. `content_length` is the body's length (sent or, for
/// HEAD, not): every status but 304 (and 1xx/204, which the static tier never sends)
/// declares it, as actix does.
pub fn encode(out: &mut Vec<u8>, reply: &Reply<'_>, content_length: u64, persist: Persist) {
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
    if reply.status != StatusCode::NOT_MODIFIED {
        out.extend_from_slice(b"content-length: ");
        decimal(out, content_length);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(match persist {
        Persist::KeepAlive => b"",
        Persist::KeepAlive10 => b"connection: keep-alive\r\n".as_slice(),
        Persist::Close => b"connection: close\r\n",
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

thread_local! {
    /// The formatted Date of the current second, per worker thread.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [0; 29])) };
}

/// Appends the current IMF-fixdate (formatted once per second per worker).
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(secs, text)| {
        if *secs != now {
            let s = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(now));
            if s.len() == text.len() {
                text.copy_from_slice(s.as_bytes());
                *secs = now;
            }
        }
        out.extend_from_slice(text);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::respond::Body;
    use actix_web::http::header::{self, HeaderValue};
    use std::borrow::Cow;

    fn head(reply: &Reply<'_>, len: u64, p: Persist) -> String {
        let mut out = Vec::new();
        encode(&mut out, reply, len, p);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn framing() {
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
        };
        let s = head(&r, 0, Persist::KeepAlive);
        assert!(
            s.starts_with("HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\ndate: "),
            "{s}"
        );
    }
}
