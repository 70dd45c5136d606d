//! Request heads for the fast path: parsed once with httparse, kept as byte ranges into the
//! connection's buffer (so the buffer can be read into again without a borrow in the way).
//!
//! What the fast path does not take is [`Parse::HandOver`]: a request with a body, an
//! upgrade, `Expect`, a target that is not origin-form, h2c's preface, a malformed head.
//! actix-web then gets the connection and answers as it always did.

use crate::serve::conditional::Conditions;
use crate::serve::respond::{Request, Verb};
use std::ops::Range;

/// Header lines we look at before handing a request over (actix takes more).
pub const MAX_HEADERS: usize = 48;

// Returned by value once per request and never stored: boxing `Head` would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// The head is not complete yet.
    Partial,
    HandOver,
    Ready(Head),
}

/// A complete request head, as ranges into the buffer it was parsed from.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    pub method: Range<usize>,
    pub verb: Verb,
    /// The request target as sent (path and query).
    pub target: Range<usize>,
    /// The target up to `?`.
    pub path: Range<usize>,
    pub http10: bool,
    pub keep_alive: bool,
    pub accept_encoding: Option<Range<usize>>,
    pub if_match: Option<Range<usize>>,
    pub if_none_match: Option<Range<usize>>,
    pub if_modified_since: Option<Range<usize>>,
    pub if_unmodified_since: Option<Range<usize>>,
    pub range: Option<Range<usize>>,
    pub if_range: Option<Range<usize>>,
    pub referer: Option<Range<usize>>,
    pub user_agent: Option<Range<usize>>,
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::HandOver,
    };
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + s.len()
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parse::HandOver;
    };
    if !target.starts_with('/') {
        // Absolute-form, authority-form and `*`: actix's business.
        return Parse::HandOver;
    }
    let target_r = at(target.as_bytes());
    let path_len = target.find('?').unwrap_or(target.len());
    let mut head = Head {
        len,
        method: at(method.as_bytes()),
        verb: match method {
            "GET" => Verb::Get,
            "HEAD" => Verb::Head,
            _ => Verb::Other,
        },
        path: target_r.start..target_r.start + path_len,
        target: target_r,
        http10: version == 0,
        ..Head::default()
    };
    let (mut close, mut keep) = (false, false);
    for h in req.headers.iter() {
        let v = Some(at(h.value));
        let name = h.name.as_bytes();
        // Dispatch on length first: one comparison rules out most names.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {}
            5 if name.eq_ignore_ascii_case(b"range") => head.range = head.range.or(v),
            6 if name.eq_ignore_ascii_case(b"expect") => return Parse::HandOver,
            7 if name.eq_ignore_ascii_case(b"referer") => head.referer = head.referer.or(v),
            7 if name.eq_ignore_ascii_case(b"upgrade") => return Parse::HandOver,
            8 if name.eq_ignore_ascii_case(b"if-match") => head.if_match = head.if_match.or(v),
            8 if name.eq_ignore_ascii_case(b"if-range") => head.if_range = head.if_range.or(v),
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        return Parse::HandOver;
                    }
                }
            }
            10 if name.eq_ignore_ascii_case(b"user-agent") => {
                head.user_agent = head.user_agent.or(v)
            }
            13 if name.eq_ignore_ascii_case(b"if-none-match") => {
                head.if_none_match = head.if_none_match.or(v)
            }
            14 if name.eq_ignore_ascii_case(b"content-length") && h.value.trim_ascii() != b"0" => {
                return Parse::HandOver
            }
            15 if name.eq_ignore_ascii_case(b"accept-encoding") => {
                head.accept_encoding = head.accept_encoding.or(v)
            }
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => {
                head.if_modified_since = head.if_modified_since.or(v)
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return Parse::HandOver,
            19 if name.eq_ignore_ascii_case(b"if-unmodified-since") => {
                head.if_unmodified_since = head.if_unmodified_since.or(v)
            }
            _ => {}
        }
    }
    // HTTP/1.1 keeps the connection unless told otherwise; 1.0 only when asked (RFC 9112 §9.3).
    head.keep_alive = !close && (version == 1 || keep);
    Parse::Ready(head)
}

impl Head {
    /// What the static tier reads, borrowed from `buf` (the buffer this head came from).
    pub fn request<'b>(&self, buf: &'b [u8]) -> Request<'b> {
        let get = |r: &Option<Range<usize>>| r.clone().map(|r| &buf[r]);
        Request {
            accept_encoding: get(&self.accept_encoding),
            conditions: Conditions {
                if_match: get(&self.if_match),
                if_none_match: get(&self.if_none_match),
                if_modified_since: get(&self.if_modified_since),
                if_unmodified_since: get(&self.if_unmodified_since),
            },
            range: get(&self.range),
            if_range: get(&self.if_range),
        }
    }
}

/// `buf[r]` as text; heads that parsed hold only visible ASCII where we call this (method,
/// target), and header values fall back to empty when they are not UTF-8.
pub fn text(buf: &[u8], r: Option<Range<usize>>) -> &str {
    r.and_then(|r| std::str::from_utf8(&buf[r]).ok())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(raw: &[u8]) -> Head {
        match parse(raw) {
            Parse::Ready(h) => h,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    #[test]
    fn static_get() {
        let raw = b"GET /static/app.css?v=1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\nRange: bytes=0-0\r\nIf-None-Match: \"a\"\r\nUser-Agent: t\r\n\r\nGET /next";
        let h = ready(raw);
        assert_eq!(&raw[..h.len], &raw[..raw.len() - 9]);
        assert_eq!(h.verb, Verb::Get);
        assert_eq!(&raw[h.path.clone()], b"/static/app.css");
        assert_eq!(&raw[h.target.clone()], b"/static/app.css?v=1");
        assert!(h.keep_alive && !h.http10);
        let r = h.request(raw);
        assert_eq!(r.accept_encoding, Some(&b"br, gzip"[..]));
        assert_eq!(r.range, Some(&b"bytes=0-0"[..]));
        assert_eq!(r.conditions.if_none_match, Some(&b"\"a\""[..]));
        assert_eq!(r.conditions.if_match, None);
        assert_eq!(text(raw, h.user_agent), "t");
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!ready(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ready(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!ready(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ready(b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
        assert!(!ready(b"GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n\r\n").keep_alive);
        assert_eq!(
            ready(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").verb,
            Verb::Other
        );
    }

    #[test]
    fn handed_over() {
        assert_eq!(
            parse(b"GET /static/a HTTP/1.1\r\nHost: x\r\n"),
            Parse::Partial
        );
        for raw in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET http://h/static/a HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw),
                Parse::HandOver,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parse::HandOver
        );
    }
}
