//! One static request: lookup → method → negotiation → preconditions → range → body.
//!
//! The order is RFC 9110's: the representation is selected first (each coding has its own
//! ETag), then §13.2.2 preconditions are evaluated against it, then Range applies to its bytes.
//! HEAD runs the very same path (Range included, as nginx and Go do) so that its status and
//! headers are exactly GET's; only the body is replaced by a sized empty one.

use super::body::{Segment, SegmentBody};
use super::conditional::{self, Conditions, Outcome};
use super::headers;
use super::negotiate::negotiate;
use super::range::{self, RangeSet};
use super::table::{Asset, Source, Table, Variant};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;

/// What a handler needs besides the request.
pub struct Ctx<'a> {
    pub table: &'a Table,
    pub cors: Option<&'a HeaderValue>,
}

/// The answer for a path under the static prefix. `key` is the decoded table key, `None`
/// for a malformed path. Returns the response and whether the table looked stale (a file
/// vanished or changed under it) so the caller can ask for a reload.
pub fn respond(req: &HttpRequest, key: Option<&str>, ctx: &Ctx<'_>) -> (HttpResponse, bool) {
    let Some(asset) = key.and_then(|k| ctx.table.get(k)) else {
        return (not_found(), false);
    };
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut b = HttpResponse::MethodNotAllowed();
            b.insert_header((header::ALLOW, headers::ALLOW));
            headers::common(&mut b, asset, ctx.cors);
            return (b.finish(), false);
        }
    };
    let h = req.headers();
    let ae = h.get(header::ACCEPT_ENCODING).map(HeaderValue::as_bytes);
    let Some(enc) = negotiate(ae, |e| asset.variant(e).is_some()) else {
        let mut b = HttpResponse::NotAcceptable();
        b.insert_header((header::VARY, headers::VARY_AE));
        if let Some(origin) = ctx.cors {
            b.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
        }
        return (b.finish(), false);
    };
    let Some(v) = asset.variant(enc) else {
        return (not_found(), true);
    };
    let lm = asset.last_modified.as_ref().map(|(s, _)| *s);
    match conditional::evaluate(&conditions(h), v.etag.as_bytes(), lm) {
        Outcome::Proceed => {}
        Outcome::NotModified => {
            let mut b = HttpResponse::NotModified();
            headers::common(&mut b, asset, ctx.cors);
            headers::validators(&mut b, asset, v);
            return (b.finish(), false);
        }
        Outcome::PreconditionFailed => {
            let mut b = HttpResponse::PreconditionFailed();
            headers::common(&mut b, asset, ctx.cors);
            return (b.finish(), false);
        }
    }

    // Open before committing to a status, so a vanished file is a 404, never a 5xx.
    let file = match &v.source {
        Source::Memory(_) => None,
        Source::File | Source::FileAt(_) => match ctx.table.open(asset, v) {
            Some(f) => Some(f),
            None => return (not_found(), true),
        },
    };

    let ranges = match h.get(header::RANGE) {
        Some(r) if if_range_ok(h, v, lm) => range::parse(r.as_bytes(), v.len),
        _ => RangeSet::Full,
    };
    let resp = match ranges {
        RangeSet::Full => full(asset, v, file, head, ctx),
        RangeSet::Unsatisfiable => {
            let mut b = HttpResponse::RangeNotSatisfiable();
            headers::common(&mut b, asset, ctx.cors);
            b.insert_header((header::ACCEPT_RANGES, headers::BYTES));
            b.insert_header((header::CONTENT_RANGE, format!("bytes */{}", v.len)));
            b.finish()
        }
        RangeSet::Ranges(r) => partial(asset, v, file, &r, head, ctx),
    };
    (resp, false)
}

/// 404 for anything not in the table: no body worth caching, no hint of what exists.
pub fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        ))
        .body(Bytes::from_static(b"404 Not Found\n"))
}

fn conditions(h: &HeaderMap) -> Conditions<'_> {
    let get = |n| h.get(n).map(HeaderValue::as_bytes);
    Conditions {
        if_match: get(header::IF_MATCH),
        if_none_match: get(header::IF_NONE_MATCH),
        if_modified_since: get(header::IF_MODIFIED_SINCE),
        if_unmodified_since: get(header::IF_UNMODIFIED_SINCE),
    }
}

fn if_range_ok(h: &HeaderMap, v: &Variant, lm: Option<u64>) -> bool {
    h.get(header::IF_RANGE)
        .is_none_or(|ir| conditional::if_range_allows(ir.as_bytes(), v.etag.as_bytes(), lm))
}

fn full(
    asset: &Asset,
    v: &Variant,
    file: Option<std::fs::File>,
    head: bool,
    ctx: &Ctx<'_>,
) -> HttpResponse {
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CONTENT_TYPE, asset.content_type.clone()));
    headers::common(&mut b, asset, ctx.cors);
    headers::representation(&mut b, asset, v);
    match (&v.source, head) {
        // The hot path: a refcounted slice, no allocation, no syscall.
        (Source::Memory(bytes), false) => b.body(bytes.clone()),
        (_, true) => b.body(SegmentBody::head(v.len)),
        (Source::File | Source::FileAt(_), false) => b.body(SegmentBody::new(
            vec![Segment::File {
                offset: 0,
                len: v.len,
            }],
            file,
        )),
    }
}

fn partial(
    asset: &Asset,
    v: &Variant,
    file: Option<std::fs::File>,
    ranges: &[(u64, u64)],
    head: bool,
    ctx: &Ctx<'_>,
) -> HttpResponse {
    let slice = |first: u64, last: u64| match &v.source {
        Source::Memory(bytes) => Segment::Mem(bytes.slice(first as usize..=last as usize)),
        Source::File | Source::FileAt(_) => Segment::File {
            offset: first,
            len: last - first + 1,
        },
    };
    let mut b = HttpResponse::PartialContent();
    headers::common(&mut b, asset, ctx.cors);
    headers::representation(&mut b, asset, v);
    let segments = if let [(first, last)] = ranges {
        b.insert_header((header::CONTENT_TYPE, asset.content_type.clone()));
        b.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{}", v.len),
        ));
        vec![slice(*first, *last)]
    } else {
        // Same boundary on every replica for the same bytes; 128 bits of content hash
        // cannot plausibly occur inside the parts.
        let boundary: String = v.hash[16..].iter().map(|b| format!("{b:02x}")).collect();
        let ct = asset
            .content_type
            .to_str()
            .unwrap_or("application/octet-stream");
        b.insert_header((
            header::CONTENT_TYPE,
            format!("multipart/byteranges; boundary={boundary}"),
        ));
        let mut segs = Vec::with_capacity(ranges.len() * 2 + 1);
        for &(first, last) in ranges {
            let part = range::part_header(&boundary, ct, first, last, v.len);
            segs.push(Segment::Mem(Bytes::from(part)));
            segs.push(slice(first, last));
        }
        segs.push(Segment::Mem(Bytes::from(range::closing(&boundary))));
        segs
    };
    let body = SegmentBody::new(segments, file);
    if head {
        b.body(SegmentBody::head(body_size(&body)))
    } else {
        b.body(body)
    }
}

fn body_size(b: &SegmentBody) -> u64 {
    use actix_web::body::{BodySize, MessageBody};
    match b.size() {
        BodySize::Sized(n) => n,
        _ => 0,
    }
}
