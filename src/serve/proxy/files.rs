//! Files outside the static table: `--internal` mounts (reached only through an upstream's
//! `X-Accel-Redirect`) and `--media-root` (user uploads). Opened per request, so new uploads
//! are visible at once. Paths go through the static tier's canonical-path check (no dotfiles,
//! no `..`, no encoded separators); directories are 404 (no listings). Files are opened with
//! [`beneath::open`]: symlinks inside a mount are followed only while they stay inside it
//! (a symlinked directory or file leading out of the mount is a 404).

use crate::serve::beneath::{self, Links};
use crate::serve::body::Segment;
use crate::serve::conditional::{self, Outcome};
use crate::serve::message::{Body, Reply, Request};
use crate::serve::path::{route, Route};
use crate::serve::range::{self, RangeSet};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use bytes::Bytes;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// A URL prefix (starting and ending with `/`) mapped to a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub prefix: String,
    pub dir: PathBuf,
}

impl Mount {
    /// The decoded key when `path` is under this mount (`Some(None)`: under it but malformed).
    pub fn key<'a>(&self, path: &'a str) -> Option<Option<std::borrow::Cow<'a, str>>> {
        match route(path, &self.prefix) {
            Route::Static(k) => Some(k),
            Route::Other => None,
        }
    }
}

/// Serves `key` from `dir` for GET (or HEAD, which the writer answers without the bytes),
/// honouring the request's conditional and Range headers. `extra` headers go on every answer
/// (X-Accel-Redirect carries Content-Type, Set-Cookie, Content-Disposition, Cache-Control,
/// Expires, Accept-Ranges over); `cache_control` applies only when `extra` has none.
pub fn serve(
    req: &Request<'_>,
    dir: &Path,
    key: &str,
    extra: &[(HeaderName, HeaderValue)],
    cache_control: Option<&str>,
) -> Reply<'static> {
    let Ok(dirf) = std::fs::File::open(dir) else {
        return Reply::not_found();
    };
    let Ok(file) = beneath::open(&dirf, Path::new(key), Links::Beneath) else {
        return Reply::not_found();
    };
    let Ok(meta) = file.metadata() else {
        return Reply::not_found();
    };
    if !meta.is_file() {
        return Reply::not_found();
    }
    let len = meta.len();
    let mtime = meta.modified().ok().and_then(conditional::unix_seconds);
    // nginx-style validator: mtime and size in hex, host-independent.
    let etag = format!("\"{:x}-{:x}\"", mtime.unwrap_or(0), len);
    let has = |n: &HeaderName| extra.iter().any(|(k, _)| k == n);
    let common = |r: &mut Reply<'static>| {
        for (k, v) in extra.iter().filter(|(k, _)| k != header::CONTENT_TYPE) {
            r.headers.push((k.clone(), Cow::Owned(v.clone())));
        }
        if !has(&header::CACHE_CONTROL) {
            if let Some(cc) = cache_control.and_then(|cc| HeaderValue::from_str(cc).ok()) {
                let cc = req.cache_control(&cc).into_owned();
                r.headers.push((header::CACHE_CONTROL, Cow::Owned(cc)));
            }
        }
        push(r, header::ETAG, etag.clone());
        if let Some(lm) = mtime {
            push(r, header::LAST_MODIFIED, conditional::http_date(lm));
        }
    };
    match conditional::evaluate(&req.conditions, etag.as_bytes(), mtime) {
        Outcome::Proceed => {}
        Outcome::NotModified => {
            let mut r = Reply::new(StatusCode::NOT_MODIFIED);
            common(&mut r);
            return r;
        }
        Outcome::PreconditionFailed => return Reply::new(StatusCode::PRECONDITION_FAILED),
    }
    let ct = extra
        .iter()
        .find(|(k, _)| k == header::CONTENT_TYPE)
        .and_then(|(_, v)| v.to_str().ok().map(str::to_string))
        .unwrap_or_else(|| {
            mime_guess::from_path(key)
                .first_or_octet_stream()
                .to_string()
        });
    let ranges = match req.range {
        Some(r)
            if req
                .if_range
                .is_none_or(|ir| conditional::if_range_allows(ir, etag.as_bytes(), mtime)) =>
        {
            range::parse(r, len)
        }
        _ => RangeSet::Full,
    };
    let (mut r, segments) = match ranges {
        RangeSet::Full => {
            let mut r = Reply::new(StatusCode::OK);
            push(&mut r, header::CONTENT_TYPE, ct);
            (r, vec![Segment::File { offset: 0, len }])
        }
        RangeSet::Unsatisfiable => {
            let mut r = Reply::new(StatusCode::RANGE_NOT_SATISFIABLE);
            common(&mut r);
            push(&mut r, header::CONTENT_RANGE, format!("bytes */{len}"));
            return r;
        }
        RangeSet::Ranges(ranges) => {
            let mut r = Reply::new(StatusCode::PARTIAL_CONTENT);
            if let [(first, last)] = ranges[..] {
                push(&mut r, header::CONTENT_TYPE, ct);
                push(
                    &mut r,
                    header::CONTENT_RANGE,
                    format!("bytes {first}-{last}/{len}"),
                );
                (
                    r,
                    vec![Segment::File {
                        offset: first,
                        len: last - first + 1,
                    }],
                )
            } else {
                let boundary = format!("{:016x}{:016x}", mtime.unwrap_or(0), len);
                push(
                    &mut r,
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                );
                let mut segs = Vec::with_capacity(ranges.len() * 2 + 1);
                for (first, last) in ranges {
                    let part = range::part_header(&boundary, &ct, first, last, len);
                    segs.push(Segment::Mem(Bytes::from(part)));
                    segs.push(Segment::File {
                        offset: first,
                        len: last - first + 1,
                    });
                }
                segs.push(Segment::Mem(Bytes::from(range::closing(&boundary))));
                (r, segs)
            }
        }
    };
    common(&mut r);
    if !has(&header::ACCEPT_RANGES) {
        r.headers.push((
            header::ACCEPT_RANGES,
            Cow::Owned(HeaderValue::from_static("bytes")),
        ));
    }
    r.body = Body::Parts {
        segments,
        file: Some(std::sync::Arc::new(file)),
    };
    r
}

/// Adds a header whose value we formatted (content types come from the upstream or
/// mime_guess, dates and numbers from us); an invalid one is left out rather than sent.
fn push(r: &mut Reply<'static>, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        r.headers.push((name, Cow::Owned(v)));
    }
}
