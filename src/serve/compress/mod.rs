//! On-the-fly compression of upstream responses: nginx's `gzip on` with `gzip_types` and
//! `gzip_vary on`, Caddy's `encode`, with br and zstd as well as gzip.
//!
//! The coding is chosen by the client's q-values as for static files ([`negotiate`]), but
//! equal ones go zstd > br > gzip ([`Encoding::ON_THE_FLY`]: at these levels zstd is as
//! small for less CPU), compressed as the body streams ([`stream`]), at levels chosen for
//! speed ([`coder`]). [`Policy::plan`] decides from the request and the response head; what
//! it decides, and why:
//!
//! - Untouched (sent as the upstream sent it): compression off; a response to a Range
//!   request, a 206 or any response with Content-Range (ranges are the upstream's, over its
//!   bytes); 1xx, 204 and 304 (no body; a 304 refreshes what the client holds, and carries
//!   no Content-Type to judge by); a response with Content-Encoding (already encoded, e.g.
//!   Django's GZipMiddleware) or `Cache-Control: no-transform` (RFC 9110 §7.7); a type not
//!   in [`types`]; a path excluded; a declared Content-Length under the minimum (nginx's
//!   `gzip_min_length`). A length not declared (chunked, or until close) counts as long
//!   enough: waiting to learn it would hold the first bytes back.
//! - `Vary: Accept-Encoding` only: a response that could be compressed but not for this
//!   request: the client accepts none of the codings, or it is HTTP/1.0 (without chunked coding an
//!   unknown length would cost the connection; nginx's `gzip_http_version 1.1` default
//!   makes the same choice). Vary still goes out, so caches key the URL by Accept-Encoding
//!   whichever request filled them.
//! - Compressed: Content-Encoding set, `Vary: Accept-Encoding` merged into the upstream's
//!   Vary, a strong ETag made weak (the bytes differ from the upstream's, as nginx does;
//!   Django's weak comparison for If-None-Match still matches it), Accept-Ranges dropped
//!   (a range would be of the upstream's bytes), Content-Length dropped: the length is known
//!   when the whole body had arrived with the head (compressed at once), else the body is
//!   chunked.
//!
//! HEAD is planned as GET would be, so its answer carries the fields GET's would
//! (RFC 9110 §9.3.2): the Content-Encoding, Vary and weak ETag, and no Content-Length, which
//! is known only once a body is compressed (the caller sends none; nginx instead answers
//! HEAD uncompressed, with the upstream's length, which no GET gets).
//!
//! Compression and secrets (BREACH): see README "Compression of proxied responses".

pub mod coder;
pub mod memory;
pub mod stream;
pub mod types;

use super::message::Headers;
use super::negotiate::{negotiate_in, trim, Encoding};
use actix_web::http::header::{self, HeaderValue};
use std::borrow::Cow;

/// Declared lengths under this are sent as they are (`--proxy-compress-min-length`): such a
/// response fits in one TCP segment with its head either way, and brotli's and zlib's set-up
/// would cost more than the bytes saved.
pub const DEFAULT_MIN_LENGTH: u64 = 512;

/// What is compressed (from the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
    pub types: types::Types,
    /// Request paths (decoded, as Django sees them) under which nothing is compressed.
    pub exclude_paths: Vec<String>,
    pub min_length: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            enabled: true,
            types: types::Types::default(),
            exclude_paths: Vec::new(),
            min_length: DEFAULT_MIN_LENGTH,
        }
    }
}

/// What of the request matters.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub http10: bool,
    /// The request had a Range header.
    pub range: bool,
    pub accept_encoding: Option<&'a [u8]>,
    /// The target's path, still percent-encoded.
    pub path: &'a str,
}

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Sent as the upstream sent it.
    Untouched,
    /// Not compressed for this request, but it could be for another: `Vary` only.
    Vary,
    /// Compressed with this coding (never identity).
    Compress(Encoding),
}

impl Policy {
    /// The plan for a response with `status` and `headers` (those passed on to the client)
    /// to the request `asked`; `length` is the upstream's declared Content-Length.
    pub fn plan(
        &self,
        asked: &Asked<'_>,
        status: u16,
        headers: &Headers<'_>,
        length: Option<u64>,
    ) -> Plan {
        if !self.enabled
            || asked.range
            || matches!(status, 100..=199 | 204 | 206 | 304)
            || length.is_some_and(|n| n < self.min_length)
        {
            return Plan::Untouched;
        }
        let mut content_type = None;
        for (name, value) in headers {
            if name == header::CONTENT_ENCODING || name == header::CONTENT_RANGE {
                return Plan::Untouched;
            }
            if name == header::CACHE_CONTROL && has_token(value.as_bytes(), b"no-transform") {
                return Plan::Untouched;
            }
            if name == header::CONTENT_TYPE && content_type.is_none() {
                content_type = Some(value.as_bytes());
            }
        }
        if !content_type.is_some_and(|t| self.types.compress(t)) || self.excluded(asked.path) {
            return Plan::Untouched;
        }
        if asked.http10 {
            return Plan::Vary;
        }
        match negotiate_in(Encoding::ON_THE_FLY, asked.accept_encoding, |_| true) {
            Some(Encoding::Identity) | None => Plan::Vary,
            Some(coding) => Plan::Compress(coding),
        }
    }

    fn excluded(&self, path: &str) -> bool {
        if self.exclude_paths.is_empty() {
            return false;
        }
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        self.exclude_paths
            .iter()
            .any(|p| decoded.starts_with(p.as_str()))
    }
}

/// Edits the headers for `plan` (the body is the caller's).
pub fn apply(plan: Plan, headers: &mut Headers<'_>) {
    let coding = match plan {
        Plan::Untouched => return,
        Plan::Vary => None,
        Plan::Compress(c) => c.token(),
    };
    add_vary(headers);
    let Some(token) = coding else {
        return;
    };
    headers.retain(|(n, _)| n != header::ACCEPT_RANGES && n != header::CONTENT_LENGTH);
    if let Some(i) = headers.iter().position(|(n, _)| n == header::ETAG) {
        match weak(headers[i].1.as_bytes()) {
            Some(Some(w)) => headers[i].1 = Cow::Owned(w),
            Some(None) => {}
            // Not an entity-tag: dropped, as nginx does, rather than passed on as strong.
            None => {
                headers.remove(i);
            }
        }
    }
    headers.push((
        header::CONTENT_ENCODING,
        Cow::Owned(HeaderValue::from_static(token)),
    ));
}

/// `Accept-Encoding` added to the last Vary field (one field stays one), unless some Vary
/// already names it or is `*`.
fn add_vary(headers: &mut Headers<'_>) {
    let mut last = None;
    for (i, (name, value)) in headers.iter().enumerate() {
        if name == header::VARY {
            let v = value.as_bytes();
            if has_token(v, b"accept-encoding") || has_token(v, b"*") {
                return;
            }
            last = Some(i);
        }
    }
    let Some(i) = last else {
        headers.push((
            header::VARY,
            Cow::Owned(HeaderValue::from_static("Accept-Encoding")),
        ));
        return;
    };
    let old = trim(headers[i].1.as_bytes());
    let merged = if old.is_empty() {
        HeaderValue::from_static("Accept-Encoding")
    } else {
        let mut v = old.to_vec();
        v.extend_from_slice(b", Accept-Encoding");
        HeaderValue::from_bytes(&v).unwrap_or(HeaderValue::from_static("Accept-Encoding"))
    };
    headers[i].1 = Cow::Owned(merged);
}

/// The weak form of an ETag value: `Some(None)` when already weak, `None` when it is no
/// entity-tag at all.
fn weak(etag: &[u8]) -> Option<Option<HeaderValue>> {
    let t = trim(etag);
    if t.starts_with(b"W/\"") && t.len() >= 4 && t.ends_with(b"\"") {
        return Some(None);
    }
    if t.len() >= 2 && t.starts_with(b"\"") && t.ends_with(b"\"") {
        let mut w = b"W/".to_vec();
        w.extend_from_slice(t);
        return HeaderValue::from_bytes(&w).ok().map(Some);
    }
    None
}

/// Whether the comma-separated list `v` has `token` (case-insensitive; a directive's
/// `=value` is ignored).
fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',').any(|item| {
        let name = item.split(|&b| b == b'=').next().unwrap_or_default();
        trim(name).eq_ignore_ascii_case(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderName;

    fn headers(pairs: &[(&'static str, &'static str)]) -> Headers<'static> {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_static(n),
                    Cow::Owned(HeaderValue::from_static(v)),
                )
            })
            .collect()
    }

    fn get<'a>(pairs: &'a [(&'a str, String)], name: &str) -> Vec<&'a str> {
        pairs
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn shown(h: &Headers<'_>) -> Vec<(&'static str, String)> {
        h.iter()
            .map(|(n, v)| {
                let n: &'static str = Box::leak(n.as_str().to_string().into_boxed_str());
                (n, v.to_str().unwrap().to_string())
            })
            .collect()
    }

    const BROWSER: Asked<'static> = Asked {
        http10: false,
        range: false,
        accept_encoding: Some(b"gzip, deflate, br, zstd".as_slice()),
        path: "/",
    };

    fn html() -> Headers<'static> {
        headers(&[("content-type", "text/html; charset=utf-8")])
    }

    #[test]
    fn plans() {
        let p = Policy::default();
        let plan = |a: Asked<'_>, status: u16, h: &Headers<'_>, len: Option<u64>| {
            p.plan(&a, status, h, len)
        };
        let h = html();
        // A browser accepting all three gets zstd (the server's order on equal q).
        assert_eq!(plan(BROWSER, 200, &h, None), Plan::Compress(Encoding::Zstd));
        assert_eq!(
            plan(BROWSER, 404, &h, Some(512)),
            Plan::Compress(Encoding::Zstd)
        );
        // Without zstd (Safari, Chrome before 123): br before gzip.
        let no_zstd = Asked {
            accept_encoding: Some(&b"gzip, deflate, br"[..]),
            ..BROWSER
        };
        assert_eq!(
            plan(no_zstd, 200, &h, None),
            Plan::Compress(Encoding::Brotli)
        );
        // The client's q-values come first.
        let br_first = Asked {
            accept_encoding: Some(&b"zstd;q=0.5, br"[..]),
            ..BROWSER
        };
        assert_eq!(
            plan(br_first, 200, &h, None),
            Plan::Compress(Encoding::Brotli)
        );
        let gzip = Asked {
            accept_encoding: Some(&b"gzip"[..]),
            ..BROWSER
        };
        assert_eq!(plan(gzip, 200, &h, None), Plan::Compress(Encoding::Gzip));
        let zstd = Asked {
            accept_encoding: Some(&b"br;q=0.5, zstd"[..]),
            ..BROWSER
        };
        assert_eq!(plan(zstd, 200, &h, None), Plan::Compress(Encoding::Zstd));
        for refuse in [
            None,
            Some(&b"identity"[..]),
            Some(&b"deflate"[..]),
            Some(&b"*;q=0"[..]),
        ] {
            let a = Asked {
                accept_encoding: refuse,
                ..BROWSER
            };
            assert_eq!(plan(a, 200, &h, None), Plan::Vary, "{refuse:?}");
        }
        let http10 = Asked {
            http10: true,
            ..BROWSER
        };
        assert_eq!(plan(http10, 200, &h, None), Plan::Vary);
        let ranged = Asked {
            range: true,
            ..BROWSER
        };
        assert_eq!(plan(ranged, 200, &h, None), Plan::Untouched);
        for status in [101, 204, 206, 304] {
            assert_eq!(plan(BROWSER, status, &h, None), Plan::Untouched, "{status}");
        }
        assert_eq!(plan(BROWSER, 200, &h, Some(511)), Plan::Untouched);
        for extra in [
            ("content-encoding", "gzip"),
            ("content-encoding", "identity"),
            ("content-range", "bytes 0-9/100"),
            ("cache-control", "private, No-Transform"),
        ] {
            let mut h = html();
            h.extend(headers(&[extra]));
            assert_eq!(plan(BROWSER, 200, &h, None), Plan::Untouched, "{extra:?}");
        }
        let cc = headers(&[
            ("cache-control", "no-transformed=1"),
            ("content-type", "application/json"),
        ]);
        assert_eq!(
            plan(BROWSER, 200, &cc, None),
            Plan::Compress(Encoding::Zstd)
        );
        for t in ["image/png", "text/event-stream"] {
            let h = headers(&[("content-type", t)]);
            assert_eq!(plan(BROWSER, 200, &h, None), Plan::Untouched, "{t}");
        }
        assert_eq!(plan(BROWSER, 200, &Vec::new(), None), Plan::Untouched);
        let off = Policy {
            enabled: false,
            ..Policy::default()
        };
        assert_eq!(off.plan(&BROWSER, 200, &h, None), Plan::Untouched);
    }

    #[test]
    fn excluded_paths_are_decoded_first() {
        let p = Policy {
            exclude_paths: vec!["/account/".into()],
            ..Policy::default()
        };
        let h = html();
        for path in ["/account/", "/account/keys", "/%61ccount/keys"] {
            let a = Asked { path, ..BROWSER };
            assert_eq!(p.plan(&a, 200, &h, None), Plan::Untouched, "{path}");
        }
        let a = Asked {
            path: "/accounts",
            ..BROWSER
        };
        assert_eq!(p.plan(&a, 200, &h, None), Plan::Compress(Encoding::Zstd));
    }

    #[test]
    fn compressed_headers() {
        let mut h = headers(&[
            ("content-type", "text/html"),
            ("etag", "\"v1\""),
            ("vary", "Cookie"),
            ("accept-ranges", "bytes"),
            ("content-length", "900"),
        ]);
        apply(Plan::Compress(Encoding::Zstd), &mut h);
        let s = shown(&h);
        assert_eq!(get(&s, "etag"), ["W/\"v1\""]);
        assert_eq!(get(&s, "vary"), ["Cookie, Accept-Encoding"]);
        assert_eq!(get(&s, "content-encoding"), ["zstd"]);
        assert!(get(&s, "accept-ranges").is_empty() && get(&s, "content-length").is_empty());

        let mut h = headers(&[("etag", "W/\"v1\""), ("vary", "accept-encoding")]);
        apply(Plan::Compress(Encoding::Gzip), &mut h);
        let s = shown(&h);
        assert_eq!(get(&s, "etag"), ["W/\"v1\""]);
        assert_eq!(get(&s, "vary"), ["accept-encoding"]);

        let mut h = headers(&[("etag", "v1-unquoted"), ("vary", "*")]);
        apply(Plan::Compress(Encoding::Brotli), &mut h);
        let s = shown(&h);
        assert!(get(&s, "etag").is_empty());
        assert_eq!(get(&s, "vary"), ["*"]);
    }

    #[test]
    fn vary_only() {
        let mut h = headers(&[("etag", "\"v1\""), ("vary", "Cookie"), ("vary", "Origin")]);
        apply(Plan::Vary, &mut h);
        let s = shown(&h);
        assert_eq!(get(&s, "etag"), ["\"v1\""]);
        assert_eq!(get(&s, "vary"), ["Cookie", "Origin, Accept-Encoding"]);
        assert!(get(&s, "content-encoding").is_empty());
        let mut h = headers(&[("vary", " ")]);
        apply(Plan::Vary, &mut h);
        assert_eq!(get(&shown(&h), "vary"), ["Accept-Encoding"]);
        let mut h = Vec::new();
        apply(Plan::Vary, &mut h);
        assert_eq!(get(&shown(&h), "vary"), ["Accept-Encoding"]);
        let mut h = headers(&[("etag", "\"v1\"")]);
        apply(Plan::Untouched, &mut h);
        assert_eq!(shown(&h), [("etag", "\"v1\"".to_string())]);
    }
}
