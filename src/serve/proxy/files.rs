//! Files outside the static table: `--internal` mounts (reached only through an upstream's
//! `X-Accel-Redirect`) and `--media-root` (user uploads). Opened per request, so new uploads
//! are visible at once. Paths go through the static tier's canonical-path check (no dotfiles,
//! no `..`, no encoded separators); directories are 404 (no listings).

use crate::serve::body::{Segment, SegmentBody};
use crate::serve::conditional::{self, Conditions, Outcome};
use crate::serve::path::{route, Route};
use crate::serve::range::{self, RangeSet};
use crate::serve::respond::not_found;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::HttpResponse;
use bytes::Bytes;
use std::path::{Path, PathBuf};

/// A URL prefix (starting and ending with `/`) mapped to a directory.
#[derive(Debug, Clone)]
pub struct Mount {
    pub prefix: String,
    pub dir: PathBuf,
}

impl Mount {
    /// `--internal /protected/=DIR`.
    pub fn parse(s: &str) -> Result<Mount, String> {
        let (p, d) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected /PREFIX/=DIR"))?;
        if d.is_empty() {
            return Err(format!("{s:?}: empty directory"));
        }
        Ok(Mount {
            prefix: crate::serve::config::normalize_prefix(p),
            dir: PathBuf::from(d),
        })
    }

    /// The decoded key when `path` is under this mount (`Some(None)`: under it but malformed).
    pub fn key<'a>(&self, path: &'a str) -> Option<Option<std::borrow::Cow<'a, str>>> {
        match route(path, &self.prefix) {
            Route::Static(k) => Some(k),
            Route::Other => None,
        }
    }
}

/// Serves `key` from `dir` for GET (or HEAD when `head`), honouring the request's
/// conditional and Range headers. `extra` headers go on every answer (X-Accel-Redirect carries
/// Content-Type, Set-Cookie, Content-Disposition, Cache-Control, Expires, Accept-Ranges over);
/// `cache_control` applies only when `extra` has none.
pub fn serve(
    req: &HeaderMap,
    head: bool,
    dir: &Path,
    key: &str,
    extra: &[(HeaderName, HeaderValue)],
    cache_control: Option<&str>,
) -> HttpResponse {
    let Ok(dirf) = std::fs::File::open(dir) else {
        return not_found();
    };
    let Ok(file) = crate::serve::table::open_at(&dirf, Path::new(key)) else {
        return not_found();
    };
    let Ok(meta) = file.metadata() else {
        return not_found();
    };
    if !meta.is_file() {
        return not_found();
    }
    let len = meta.len();
    let mtime = meta.modified().ok().and_then(conditional::unix_seconds);
    // nginx-style validator: mtime and size in hex, host-independent.
    let etag = format!("\"{:x}-{:x}\"", mtime.unwrap_or(0), len);
    let has = |n: &HeaderName| extra.iter().any(|(k, _)| k == n);
    let common = |b: &mut actix_web::HttpResponseBuilder| {
        for (k, v) in extra.iter().filter(|(k, _)| k != header::CONTENT_TYPE) {
            b.append_header((k.clone(), v.clone()));
        }
        if !has(&header::CACHE_CONTROL) {
            if let Some(cc) = cache_control {
                b.insert_header((header::CACHE_CONTROL, cc));
            }
        }
        b.insert_header((header::ETAG, etag.as_str()));
        if let Some(lm) = mtime {
            b.insert_header((header::LAST_MODIFIED, conditional::http_date(lm)));
        }
    };
    let get = |n| req.get(n).map(HeaderValue::as_bytes);
    let cond = Conditions {
        if_match: get(header::IF_MATCH),
        if_none_match: get(header::IF_NONE_MATCH),
        if_modified_since: get(header::IF_MODIFIED_SINCE),
        if_unmodified_since: get(header::IF_UNMODIFIED_SINCE),
    };
    match conditional::evaluate(&cond, etag.as_bytes(), mtime) {
        Outcome::Proceed => {}
        Outcome::NotModified => {
            let mut b = HttpResponse::NotModified();
            common(&mut b);
            return b.finish();
        }
        Outcome::PreconditionFailed => return HttpResponse::PreconditionFailed().finish(),
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
    let ranges = match req.get(header::RANGE) {
        Some(r)
            if req.get(header::IF_RANGE).is_none_or(|ir| {
                conditional::if_range_allows(ir.as_bytes(), etag.as_bytes(), mtime)
            }) =>
        {
            range::parse(r.as_bytes(), len)
        }
        _ => RangeSet::Full,
    };
    let (mut b, segments) = match ranges {
        RangeSet::Full => {
            let mut b = HttpResponse::Ok();
            b.insert_header((header::CONTENT_TYPE, ct.as_str()));
            (b, vec![Segment::File { offset: 0, len }])
        }
        RangeSet::Unsatisfiable => {
            let mut b = HttpResponse::RangeNotSatisfiable();
            common(&mut b);
            b.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
            return b.finish();
        }
        RangeSet::Ranges(r) => {
            let mut b = HttpResponse::PartialContent();
            if let [(first, last)] = r[..] {
                b.insert_header((header::CONTENT_TYPE, ct.as_str()));
                b.insert_header((header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}")));
                (
                    b,
                    vec![Segment::File {
                        offset: first,
                        len: last - first + 1,
                    }],
                )
            } else {
                let boundary = format!("{:016x}{:016x}", mtime.unwrap_or(0), len);
                b.insert_header((
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                ));
                let mut segs = Vec::with_capacity(r.len() * 2 + 1);
                for (first, last) in r {
                    let part = range::part_header(&boundary, &ct, first, last, len);
                    segs.push(Segment::Mem(Bytes::from(part)));
                    segs.push(Segment::File {
                        offset: first,
                        len: last - first + 1,
                    });
                }
                segs.push(Segment::Mem(Bytes::from(range::closing(&boundary))));
                (b, segs)
            }
        }
    };
    common(&mut b);
    if !has(&header::ACCEPT_RANGES) {
        b.insert_header((header::ACCEPT_RANGES, "bytes"));
    }
    let body = SegmentBody::new(segments, Some(file));
    if head {
        use actix_web::body::{BodySize, MessageBody};
        let n = match body.size() {
            BodySize::Sized(n) => n,
            _ => 0,
        };
        b.body(SegmentBody::head(n))
    } else {
        b.body(body)
    }
}
