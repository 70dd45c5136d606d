//! Request heads: parsed once with httparse, checked against RFC 9112's request rules, and
//! kept as byte ranges into the connection's buffer (so the buffer can be read into again
//! without a borrow in the way).
//!
//! Checked here, each failure a [`HeadError`] with its status: the head's syntax (httparse:
//! obs-fold, invalid field names, a bad request line) and size (16 KiB, 128 field lines:
//! 431; a request line alone over 16 KiB: 414); the version (`HTTP/1.x` with x above 1 is
//! served as HTTP/1.1, [`Parse::NewerMinor`]; another major version is 505); the target's
//! form (origin, absolute `http(s)://`, `*` for OPTIONS only, authority for CONNECT only; a
//! fragment is cut off); Host (missing on HTTP/1.1, repeated, or not `host[:port]`: 400); the
//! body's framing ([`body::framing`](super::body::framing), and no bare-LF line end in a
//! head that has a body); `Expect` (only `100-continue`,
//! else 417; ignored in HTTP/1.0 as RFC 9110 §10.1.1 says). Upgrade is honoured only for
//! HTTP/1.1 with `Connection: upgrade`; anything else leaves it a plain request. An Upgrade
//! that offers `h2c` is never honoured (the request is served as HTTP/1.1, which RFC 9113
//! §3.1 allows): tunnelling it would hand the client an HTTP/2 connection straight to an
//! upstream that speaks h2c, past every rule staticd applies ("h2c smuggling").

use super::body::{self, BodyLen, FramingError};
use crate::serve::conditional::Conditions;
use crate::serve::host::{self, HostError, TargetError};
use crate::serve::message::{Request, Verb};
use actix_web::http::StatusCode;
use std::ops::Range;

/// Field lines parsed on the stack; a head with more is parsed again with [`MAX_FIELDS`].
pub const MAX_HEADERS: usize = 48;
/// Most field lines in a head (431 beyond).
pub const MAX_FIELDS: usize = 128;
/// Largest request head, request line included (431 beyond): Node's limit, half of
/// nginx's four 8 KiB buffers.
pub const MAX_HEAD: usize = 16 * 1024;

// Returned by value once per request and never stored: boxing `Head` would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// The head is not complete yet.
    Partial,
    Ready(Head),
    /// Refused; the head holds what was parsed (method and target, for the log).
    Invalid(HeadError, Head),
    /// An HTTP/1.x request line with x above 1: the byte at this index is x. RFC 9110 §2.5
    /// has it processed as HTTP/1.1 (httparse knows only 1.0 and 1.1), so the caller sets it
    /// to `1` and parses again: the head keeps its length and every range its place.
    NewerMinor(usize),
}

/// Why a request head is refused. Every one is answered, then the connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed request head: {0}")]
    Syntax(httparse::Error),
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// The request line alone is over the head limit (RFC 9112 §3: 414, as nginx).
    #[error("request line longer than {MAX_HEAD} bytes")]
    UriTooLong,
    /// A major version other than 1 on an HTTP/1 connection (`HTTP/2.0`, `HTTP/3.0`).
    #[error("HTTP version not supported")]
    Version,
    #[error("more than {MAX_FIELDS} header lines")]
    TooManyFields,
    #[error("request target not allowed for this method")]
    Target,
    #[error("{0}")]
    Absolute(TargetError),
    #[error("no Host header in an HTTP/1.1 request")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("invalid Host: {0}")]
    Host(HostError),
    #[error("{0}")]
    Framing(FramingError),
    /// A line ended by a bare LF in a head that declares a body: a peer that ends lines
    /// only at CRLF would not see the same framing fields.
    #[error("bare LF in a head with a body")]
    BareLf,
    #[error("an expectation other than 100-continue")]
    Expectation,
    /// A method longer than any registered one (RFC 9112 §3: 501).
    #[error("method longer than {MAX_METHOD} bytes")]
    LongMethod,
}

/// The longest method accepted. The longest in IANA's registry is `UPDATEREDIRECTREF` (17);
/// anything much longer is not a method an upstream implements (RFC 9112 §3 answers 501).
pub const MAX_METHOD: usize = 32;

impl HeadError {
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::TooLarge | HeadError::TooManyFields => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::UriTooLong => StatusCode::URI_TOO_LONG,
            HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            HeadError::Framing(FramingError::UnsupportedCoding) | HeadError::LongMethod => {
                StatusCode::NOT_IMPLEMENTED
            }
            HeadError::Expectation => StatusCode::EXPECTATION_FAILED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// The request target's form (RFC 9112 §3.2).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    #[default]
    Origin,
    /// `http://authority/path`: the authority is the host, whatever Host says.
    Absolute,
    /// `*` (OPTIONS only).
    Asterisk,
    /// `host:port` (CONNECT only).
    Authority,
}

/// A complete request head, as ranges into the buffer it was parsed from.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    pub method: Range<usize>,
    pub verb: Verb,
    /// The request target as sent.
    pub target: Range<usize>,
    pub form: Form,
    /// Path and query in origin form (for absolute-form, what follows the authority:
    /// empty stands for `/`).
    pub origin: Range<usize>,
    /// The origin-form target up to `?`.
    pub path: Range<usize>,
    /// The authority of an absolute-form target.
    pub authority: Option<Range<usize>>,
    /// The Host header's value.
    pub host: Option<Range<usize>>,
    pub http10: bool,
    pub keep_alive: bool,
    pub body: BodyLen,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// The `Upgrade` value of an HTTP/1.1 upgrade request (`Connection: upgrade`).
    pub upgrade: Option<Range<usize>>,
    pub accept_encoding: Option<Range<usize>>,
    pub if_match: Option<Range<usize>>,
    pub if_none_match: Option<Range<usize>>,
    pub if_modified_since: Option<Range<usize>>,
    pub if_unmodified_since: Option<Range<usize>>,
    pub range: Option<Range<usize>>,
    pub if_range: Option<Range<usize>>,
    pub referer: Option<Range<usize>>,
    pub user_agent: Option<Range<usize>>,
    pub available_dictionary: Option<Range<usize>>,
    pub sec_fetch_site: Option<Range<usize>>,
    pub sec_fetch_mode: Option<Range<usize>>,
    /// The `Origin` header (not the origin-form target above).
    pub origin_header: Option<Range<usize>>,
    pub authorization: Option<Range<usize>>,
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match parse_with(buf, &mut lines) {
        Parse::Invalid(HeadError::Syntax(httparse::Error::TooManyHeaders), _) => {
            let mut lines = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
            match parse_with(buf, &mut lines) {
                Parse::Invalid(HeadError::Syntax(httparse::Error::TooManyHeaders), head) => {
                    Parse::Invalid(HeadError::TooManyFields, head)
                }
                other => other,
            }
        }
        other => other,
    }
}

/// A parsed head's field lines, read again straight from its bytes (for forwarding them).
///
/// httparse accepted these bytes, so every line is `name:value` ended by CRLF or LF, the
/// name a token (no `:`, no whitespace) and no line folded; splitting them again needs no
/// second parse. A second httparse pass (1.5 KB of slots zeroed, filled and copied out)
/// cost about 1,300 of the 19,500 user-space instructions of a proxied GET
/// (`benches/proxy/instructions.sh`). The values are httparse's: whitespace around them cut.
pub struct RawFields<'b>(&'b [u8]);

impl<'b> RawFields<'b> {
    /// The field lines of `head`, in `buf` (the buffer it was parsed from).
    pub fn of(head: &Head, buf: &'b [u8]) -> Self {
        let head_bytes = &buf[..head.len];
        // The request line ends at the first LF after the target (empty lines before the
        // request line, which httparse skips, end before the target starts).
        let start = head_bytes[head.target.end..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(head.len, |i| head.target.end + i + 1);
        RawFields(&head_bytes[start..])
    }

    /// Every field line as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let eol = memchr::memchr(b'\n', rest)?;
            let line = &rest[..eol];
            rest = &rest[eol + 1..];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = memchr::memchr(b':', line)?;
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            let ws = |b: &u8| *b == b' ' || *b == b'\t';
            let value = &line[colon + 1..];
            let from = value.iter().position(|b| !ws(b)).unwrap_or(value.len());
            let to = value.iter().rposition(|b| !ws(b)).map_or(from, |i| i + 1);
            Some((name, &value[from..to]))
        })
    }
}

fn parse_with<'b>(buf: &'b [u8], lines: &mut [httparse::Header<'b>]) -> Parse {
    let mut req = httparse::Request::new(lines);
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + s.len()
    };
    let status = req.parse(buf);
    // What the log shows of a refused request.
    let mut head = Head {
        method: req.method.map_or(0..0, |m| at(m.as_bytes())),
        target: req.path.map_or(0..0, |t| at(t.as_bytes())),
        verb: match req.method {
            Some("GET") => Verb::Get,
            Some("HEAD") => Verb::Head,
            _ => Verb::Other,
        },
        http10: req.version == Some(0),
        ..Head::default()
    };
    // Only empty lines so far (a CRLF flood) is no request line: 431 as any head.
    let too_large = || match request_line(buf) {
        (line, true) if line.len() > MAX_HEAD => HeadError::UriTooLong,
        (line, false) if !line.is_empty() => HeadError::UriTooLong,
        _ => HeadError::TooLarge,
    };
    let len = match status {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
            return Parse::Invalid(too_large(), head)
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Parse::Invalid(too_large(), head)
        }
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(httparse::Error::Version) => {
            return match version(buf) {
                LineVersion::Partial if buf.len() < MAX_HEAD => Parse::Partial,
                LineVersion::Partial => Parse::Invalid(too_large(), head),
                LineVersion::NewerMinor(at) => Parse::NewerMinor(at),
                LineVersion::Unsupported => Parse::Invalid(HeadError::Version, head),
                LineVersion::Invalid => {
                    Parse::Invalid(HeadError::Syntax(httparse::Error::Version), head)
                }
            }
        }
        Err(e) => return Parse::Invalid(HeadError::Syntax(e), head),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parse::Invalid(HeadError::Syntax(httparse::Error::Token), head);
    };
    head.len = len;
    if method.len() > MAX_METHOD {
        return Parse::Invalid(HeadError::LongMethod, head);
    }
    let t = target.as_bytes();
    let origin = if t.first() == Some(&b'/') {
        head.target.clone()
    } else if t == b"*" && method == "OPTIONS" {
        head.form = Form::Asterisk;
        0..0
    } else {
        match host::absolute(t) {
            Ok(Some(abs)) => {
                let base = head.target.start;
                // `OPTIONS http://host` (empty path, no query) asks about the server as a
                // whole: it is `OPTIONS *` (RFC 9112 §3.2.4).
                head.form = match method == "OPTIONS" && abs.origin.is_empty() {
                    true => Form::Asterisk,
                    false => Form::Absolute,
                };
                head.authority = Some(base + abs.authority.start..base + abs.authority.end);
                base + abs.origin.start..base + abs.origin.end
            }
            Ok(None) if method == "CONNECT" => {
                head.form = Form::Authority;
                0..0
            }
            Ok(None) => return Parse::Invalid(HeadError::Target, head),
            Err(e) => return Parse::Invalid(HeadError::Absolute(e), head),
        }
    };
    // A fragment is no part of a request target (RFC 9112 §3.2); a client that sends one
    // anyway gets it cut off, as nginx and gunicorn do, so the static tier and the upstream
    // see the same path (it was a 404 on the static tier only).
    let mut origin = origin;
    if let Some(hash) = buf[origin.clone()].iter().position(|&b| b == b'#') {
        origin.end = origin.start + hash;
    }
    let path_len = buf[origin.clone()]
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(origin.len());
    head.path = origin.start..origin.start + path_len;
    head.origin = origin;

    let mut framing = body::Fields::default();
    let (mut close, mut keep, mut upgrade_token) = (false, false, false);
    let (mut hosts, mut upgrade, mut expect) = (0, None, None::<HeadError>);
    let mut h2c = false;
    for h in req.headers.iter() {
        let v = Some(at(h.value));
        let name = h.name.as_bytes();
        // Dispatch on length first: one comparison rules out most names.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                hosts += 1;
                head.host = head.host.or(v);
            }
            5 if name.eq_ignore_ascii_case(b"range") => head.range = head.range.or(v),
            6 if name.eq_ignore_ascii_case(b"origin") => {
                head.origin_header = head.origin_header.or(v)
            }
            13 if name.eq_ignore_ascii_case(b"authorization") => {
                head.authorization = head.authorization.or(v)
            }
            14 if name.eq_ignore_ascii_case(b"sec-fetch-site") => {
                head.sec_fetch_site = head.sec_fetch_site.or(v)
            }
            14 if name.eq_ignore_ascii_case(b"sec-fetch-mode") => {
                head.sec_fetch_mode = head.sec_fetch_mode.or(v)
            }
            20 if name.eq_ignore_ascii_case(b"available-dictionary") => {
                head.available_dictionary = head.available_dictionary.or(v)
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                let value = h.value.trim_ascii();
                if !value.is_empty() && !value.eq_ignore_ascii_case(b"100-continue") {
                    expect = Some(HeadError::Expectation);
                } else if !value.is_empty() {
                    head.expect_continue = true;
                }
            }
            7 if name.eq_ignore_ascii_case(b"referer") => head.referer = head.referer.or(v),
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                h2c |= h
                    .value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c"));
                upgrade = upgrade.or(v);
            }
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
                        upgrade_token = true;
                    }
                }
            }
            10 if name.eq_ignore_ascii_case(b"user-agent") => {
                head.user_agent = head.user_agent.or(v)
            }
            13 if name.eq_ignore_ascii_case(b"if-none-match") => {
                head.if_none_match = head.if_none_match.or(v)
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                framing.content_lengths += 1;
                framing.content_length = framing.content_length.or(Some(h.value));
            }
            15 if name.eq_ignore_ascii_case(b"accept-encoding") => {
                head.accept_encoding = head.accept_encoding.or(v)
            }
            17 if name.eq_ignore_ascii_case(b"if-modified-since") => {
                head.if_modified_since = head.if_modified_since.or(v)
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                framing.transfer_encodings += 1;
                framing.transfer_encoding = framing.transfer_encoding.or(Some(h.value));
            }
            19 if name.eq_ignore_ascii_case(b"if-unmodified-since") => {
                head.if_unmodified_since = head.if_unmodified_since.or(v)
            }
            _ => {}
        }
    }
    let http10 = version == 0;
    // Host: RFC 9112 §3.2, then the body's framing, then expectations.
    let host_check = match (hosts, &head.host) {
        (0, _) if http10 => Ok(()),
        (0, _) => Err(HeadError::MissingHost),
        (1, Some(r)) => host::check(&buf[r.clone()]).map_err(HeadError::Host),
        _ => Err(HeadError::DuplicateHost),
    };
    let declares_body = framing.content_lengths + framing.transfer_encodings > 0;
    let checked = host_check
        .and_then(|()| body::framing(&framing, http10).map_err(HeadError::Framing))
        .and_then(|b| match declares_body && bare_lf(&buf[..len]) {
            true => Err(HeadError::BareLf),
            false => Ok(b),
        })
        .and_then(|b| match expect {
            Some(e) if !http10 => Err(e),
            _ => Ok(b),
        });
    match checked {
        Ok(b) => head.body = b,
        Err(e) => return Parse::Invalid(e, head),
    }
    if http10 {
        head.expect_continue = false;
    } else if upgrade_token && !h2c {
        head.upgrade = upgrade;
    }
    // HTTP/1.1 keeps the connection unless told otherwise; 1.0 only when asked (RFC 9112 §9.3).
    head.keep_alive = !close && (!http10 || keep);
    Parse::Ready(head)
}

/// The request line at the start of `buf` (after the empty lines httparse skips, RFC 9112
/// §2.2), without its line end, and whether that end has arrived.
fn request_line(buf: &[u8]) -> (&[u8], bool) {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    match line.iter().position(|&b| b == b'\n') {
        Some(n) => (line[..n].strip_suffix(b"\r").unwrap_or(&line[..n]), true),
        None => (line, false),
    }
}

/// What the version of a request line httparse refused is.
#[derive(Debug, PartialEq, Eq)]
enum LineVersion {
    /// The line has not ended and what came of its last word can still be `HTTP/d.d`.
    Partial,
    /// `HTTP/1.x`, x above 1: the index of x in the buffer.
    NewerMinor(usize),
    /// `HTTP/d.d` with a major version other than 1 (505).
    Unsupported,
    Invalid,
}

/// RFC 9112 §2.3: `HTTP-version = "HTTP/" DIGIT "." DIGIT`. A recipient of a higher minor
/// version than it implements processes the message as its own (RFC 9110 §2.5); another
/// major version is refused with 505 (RFC 9110 §15.6.6), as nginx does.
fn version(buf: &[u8]) -> LineVersion {
    let (line, complete) = request_line(buf);
    let at = line.iter().rposition(|&b| b == b' ').map_or(0, |i| i + 1);
    let word = &line[at..];
    let shape = b"HTTP/0.0";
    let fits = |(i, &b): (usize, &u8)| match shape[i] {
        b'0' => b.is_ascii_digit(),
        s => b == s,
    };
    if word.len() > shape.len() || !word.iter().enumerate().all(fits) {
        return LineVersion::Invalid;
    }
    if !complete {
        return LineVersion::Partial;
    }
    match word {
        _ if word.len() < shape.len() => LineVersion::Invalid,
        [.., b'1', b'.', minor] if *minor > b'1' => {
            let line_start = line.as_ptr() as usize - buf.as_ptr() as usize;
            LineVersion::NewerMinor(line_start + at + 7)
        }
        [.., b'1', b'.', _] | [.., b'0', b'.', _] => LineVersion::Invalid,
        _ => LineVersion::Unsupported,
    }
}

/// Whether a line of `head` ends in LF without CR (RFC 9112 §2.2 lets a recipient accept
/// it; httparse does).
fn bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
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
            available_dictionary: get(&self.available_dictionary),
            sec_fetch_site: get(&self.sec_fetch_site),
            sec_fetch_mode: get(&self.sec_fetch_mode),
            origin: get(&self.origin_header),
            authorization: get(&self.authorization),
        }
    }

    /// The host the request is for: an absolute-form target's authority, else Host.
    pub fn host<'b>(&self, buf: &'b [u8]) -> Option<&'b str> {
        let r = self.authority.clone().or(self.host.clone())?;
        std::str::from_utf8(&buf[r]).ok()
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

    fn refused(raw: &[u8]) -> HeadError {
        match parse(raw) {
            Parse::Invalid(e, _) => e,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    /// What httparse gives as the field lines of `raw`.
    fn httparse_fields(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut slots = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req.parse(raw).unwrap().is_complete());
        req.headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect()
    }

    #[test]
    fn raw_fields_are_httparses_lines() {
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\r\n\r\nGET /a:b HTTP/1.1\r\nHost:x\r\nX-Empty:\r\nX-Tab:\t v \t\r\n\r\nGET /next",
            b"GET http://a.example/x HTTP/1.1\nHost: b\nCookie: a=b; c=d:e\n\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xc3\xa9 \r\n\r\n",
            b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nX-Spaces:   a  b   \r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ] {
            let h = ready(raw);
            let ours: Vec<_> = RawFields::of(&h, raw)
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect();
            assert_eq!(
                ours,
                httparse_fields(raw),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
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
        assert_eq!(&raw[h.origin.clone()], b"/static/app.css?v=1");
        assert_eq!(h.host(raw), Some("x"));
        assert!(h.keep_alive && !h.http10);
        assert_eq!(
            (h.body, h.form, h.upgrade.clone()),
            (BodyLen::None, Form::Origin, None)
        );
        let r = h.request(raw);
        assert_eq!(r.accept_encoding, Some(&b"br, gzip"[..]));
        assert_eq!(r.range, Some(&b"bytes=0-0"[..]));
        assert_eq!(r.conditions.if_none_match, Some(&b"\"a\""[..]));
        assert_eq!(r.conditions.if_match, None);
        assert_eq!(text(raw, h.user_agent), "t");
    }

    #[test]
    fn methods_up_to_the_limit() {
        let line = |m: &str| format!("{m} /x HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes();
        assert_eq!(ready(&line("UPDATEREDIRECTREF")).verb, Verb::Other);
        assert_eq!(ready(&line(&"M".repeat(MAX_METHOD))).verb, Verb::Other);
        let long = refused(&line(&"M".repeat(MAX_METHOD + 1)));
        assert_eq!(
            (long, long.status()),
            (HeadError::LongMethod, StatusCode::NOT_IMPLEMENTED)
        );
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!ready(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ready(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        let h = b"Host: h\r\n";
        let with = |l: &str| [l.as_bytes(), h, b"\r\n"].concat();
        assert!(!ready(&with("GET / HTTP/1.1\r\nConnection: close\r\n")).keep_alive);
        assert!(!ready(&with("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n")).keep_alive);
        assert!(!ready(&with("GET / HTTP/1.1\r\nConnection: close, keep-alive\r\n")).keep_alive);
        assert_eq!(
            ready(&with("POST / HTTP/1.1\r\nContent-Length: 0\r\n")).verb,
            Verb::Other
        );
    }

    #[test]
    fn bodies() {
        let h = ready(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(h.body, BodyLen::Length(5));
        let h = ready(b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.body, BodyLen::Chunked);
        assert_eq!(
            refused(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::Framing(FramingError::LengthAndChunked)
        );
        assert_eq!(
            refused(
                b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"
            ),
            HeadError::Framing(FramingError::DuplicateLength)
        );
        let e = refused(b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(e.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            refused(b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::Framing(FramingError::ChunkedHttp10)
        );
        // A framing field seen only by splitting at a bare LF.
        assert_eq!(
            refused(b"POST /x HTTP/1.1\r\nHost: h\r\nX: y\nContent-Length: 5\r\n\r\nhello"),
            HeadError::BareLf
        );
        assert_eq!(
            refused(b"POST /x HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n"),
            HeadError::BareLf
        );
        // Without a body, LF-only lines are accepted (RFC 9112 §2.2).
        assert_eq!(ready(b"GET /x HTTP/1.1\nHost: h\n\n").body, BodyLen::None);
    }

    #[test]
    fn host_rules() {
        assert_eq!(refused(b"GET / HTTP/1.1\r\n\r\n"), HeadError::MissingHost);
        assert_eq!(ready(b"GET / HTTP/1.0\r\n\r\n").host, None);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            HeadError::DuplicateHost
        );
        assert_eq!(
            refused(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            HeadError::DuplicateHost
        );
        for bad in ["a b", "x/path", "u@x", "x:80:80", ""] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert!(
                matches!(refused(raw.as_bytes()), HeadError::Host(_)),
                "{bad:?}"
            );
        }
        // Absolute-form: the target's authority wins over Host.
        let raw = b"GET http://a.example/x?y HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = ready(raw);
        assert_eq!(h.form, Form::Absolute);
        assert_eq!(h.host(raw), Some("a.example"));
        assert_eq!(&raw[h.origin.clone()], b"/x?y");
        assert_eq!(&raw[h.path.clone()], b"/x");
        let raw = b"GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n";
        let h = ready(raw);
        assert!(h.origin.is_empty() && h.path.is_empty());
        assert!(matches!(
            refused(b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            HeadError::Absolute(_)
        ));
    }

    #[test]
    fn fragments_are_cut_off() {
        let raw = b"GET /static/a.css?v=1#top HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = ready(raw);
        assert_eq!(&raw[h.origin.clone()], b"/static/a.css?v=1");
        assert_eq!(&raw[h.path.clone()], b"/static/a.css");
        assert_eq!(&raw[h.target.clone()], b"/static/a.css?v=1#top");
        let raw = b"GET http://a/x#y?z HTTP/1.1\r\nHost: a\r\n\r\n";
        let h = ready(raw);
        assert_eq!(&raw[h.origin.clone()], b"/x");
        assert_eq!(&raw[h.path.clone()], b"/x");
        let raw = b"GET /#frag HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(&raw[ready(raw).path.clone()], b"/");
    }

    #[test]
    fn target_forms() {
        let h = ready(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.form, Form::Asterisk);
        let raw = b"OPTIONS http://a.example:8001 HTTP/1.1\r\nHost: h\r\n\r\n";
        let h = ready(raw);
        assert_eq!(
            (h.form, h.host(raw)),
            (Form::Asterisk, Some("a.example:8001"))
        );
        let h = ready(b"OPTIONS http://a.example/ HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.form, Form::Absolute);
        let h = ready(b"OPTIONS http://a.example?q HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(h.form, Form::Absolute);
        assert_eq!(
            ready(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n").form,
            Form::Authority
        );
        assert_eq!(
            refused(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
            HeadError::Target
        );
        assert_eq!(
            refused(b"GET a.example:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
            HeadError::Target
        );
    }

    #[test]
    fn expectations_and_upgrades() {
        let h = ready(
            b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
        );
        assert!(h.expect_continue);
        assert!(!ready(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        assert_eq!(
            refused(b"GET / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n"),
            HeadError::Expectation
        );
        assert!(matches!(
            parse(b"GET / HTTP/1.0\r\nExpect: teapot\r\n\r\n"),
            Parse::Ready(_)
        ));
        let raw = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
        let h = ready(raw);
        assert_eq!(text(raw, h.upgrade), "websocket");
        // A stray Upgrade, or one on HTTP/1.0, is not an upgrade.
        assert_eq!(
            ready(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").upgrade,
            None
        );
        assert_eq!(
            ready(b"GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade,
            None
        );
        // h2c is never tunnelled, alone or offered beside another protocol.
        for up in ["h2c", "H2C", "websocket, h2c", " h2c ,foo"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: {up}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n");
            assert_eq!(ready(raw.as_bytes()).upgrade, None, "{up}");
        }
    }

    #[test]
    fn versions() {
        // RFC 9110 §2.5: a higher minor version of HTTP/1 is served as HTTP/1.1.
        let mut raw = b"\r\nGET /x HTTP/1.2\r\nHost: h\r\n\r\n".to_vec();
        let Parse::NewerMinor(at) = parse(&raw) else {
            panic!("{:?}", parse(&raw))
        };
        assert_eq!(&raw[at - 7..=at], b"HTTP/1.2");
        raw[at] = b'1';
        let h = ready(&raw);
        assert!(!h.http10 && h.keep_alive);
        assert!(matches!(
            parse(b"GET / HTTP/1.9\r\nHost: h\r\n\r\n"),
            Parse::NewerMinor(13)
        ));
        // The line end has not come: its version may still be anything.
        assert_eq!(parse(b"GET / HTTP/1.2"), Parse::Partial);
        assert_eq!(parse(b"GET / HTTP/2"), Parse::Partial);
        // h2c's preface after a first HTTP/1 request (the loop hands over only a first one).
        assert_eq!(
            refused(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            HeadError::Version
        );
        for v in ["HTTP/2.0", "HTTP/3.0", "HTTP/9.9"] {
            let raw = format!("GET / {v}\r\nHost: h\r\n\r\n");
            assert_eq!(refused(raw.as_bytes()), HeadError::Version, "{v}");
            assert_eq!(HeadError::Version.status().as_u16(), 505);
        }
        for v in [
            "HTTP/0.9",
            "HTTP/1.10",
            "HTTP/12.0",
            "HTTP/1",
            "HTTPS/1.1",
            "http/1.1",
            "HTTP/1.2 ",
        ] {
            let raw = format!("GET / {v}\r\nHost: h\r\n\r\n");
            assert!(
                matches!(refused(raw.as_bytes()), HeadError::Syntax(_)),
                "{v}"
            );
        }
        assert!(matches!(refused(b"GET / HTTP/1.25"), HeadError::Syntax(_)));
    }

    #[test]
    fn syntax_and_limits() {
        assert_eq!(
            parse(b"GET /static/a HTTP/1.1\r\nHost: x\r\n"),
            Parse::Partial
        );
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        ] {
            assert!(
                matches!(refused(raw), HeadError::Syntax(_)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // More lines than the stack holds: parsed again on the heap.
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
        let h = ready(raw.as_bytes());
        let lines: Vec<_> = RawFields::of(&h, raw.as_bytes()).iter().collect();
        assert_eq!(lines.len(), MAX_HEADERS + 2);
        assert_eq!(lines[MAX_HEADERS + 1], ("X-48", &b"y"[..]));
        let too_many: String = (0..MAX_FIELDS).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{too_many}\r\n");
        assert_eq!(refused(raw.as_bytes()), HeadError::TooManyFields);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(refused(big.as_bytes()), HeadError::TooLarge);
        assert_eq!(
            refused(format!("{big}\r\n").as_bytes()),
            HeadError::TooLarge
        );
        // The request line alone over the limit: 414, whether or not it has ended.
        let long = format!("GET /{} HTTP/1.1", "a".repeat(MAX_HEAD));
        assert_eq!(refused(long.as_bytes()), HeadError::UriTooLong);
        let whole = format!("{long}\r\nHost: h\r\n\r\n");
        assert_eq!(refused(whole.as_bytes()), HeadError::UriTooLong);
        assert_eq!(HeadError::UriTooLong.status().as_u16(), 414);
        assert_eq!(refused(&b"\r\n".repeat(MAX_HEAD)), HeadError::TooLarge);
    }
}
