//! One static request: lookup → method → negotiation → preconditions → range → body.
//!
//! The order is RFC 9110's: the representation is selected first (each coding has its own
//! ETag), then §13.2.2 preconditions are evaluated against it, then Range applies to its bytes.
//! HEAD runs the very same path (Range included, as nginx and Go do) so that its status and
//! headers are exactly GET's; only the body is left out when the answer is written.
//!
//! The answer is a [`Reply`], not a framework response (see `message`).

use super::body::Segment;
use super::conditional::{self, Outcome};
use super::dictionary;
use super::headers;
use super::message::{Body, Reply, Request, Verb};
use super::negotiate::{negotiate, negotiate_delta, Encoding};
use super::range::{self, RangeSet};
use super::table::{Asset, Opened, Source, Table, Unlisted, Variant};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;

/// What a handler needs besides the request.
pub struct Ctx<'a> {
    pub table: &'a Table,
    pub cors: Option<&'a HeaderValue>,
    /// The bytes of the [`Source::Remote`] variant [`needs_bytes`] named, fetched into the
    /// origin's cache before the answer (`dispatch`).
    pub fetched: std::cell::Cell<Option<std::fs::File>>,
}

/// The variant whose bytes the answer will send, when they are not in memory: the one
/// negotiation selects, if the preconditions let the request go on. What `serve --origin`
/// fetches before answering (a 304 needs no bytes, so a replica answers it even while the
/// store is down). The same steps, in the same order, as [`respond`].
pub fn needs_bytes<'t>(verb: Verb, req: &Request<'_>, asset: &'t Asset) -> Option<&'t Variant> {
    if verb == Verb::Other {
        return None;
    }
    let enc = negotiate(req.accept_encoding, |e| asset.variant(e).is_some())?;
    let v = asset.variant(enc)?;
    let lm = asset.last_modified.as_ref().map(|(s, _)| *s);
    match conditional::evaluate(&req.conditions, v.etag.as_bytes(), lm) {
        Outcome::Proceed => (!matches!(v.source, Source::Memory(_))).then_some(v),
        Outcome::NotModified | Outcome::PreconditionFailed => None,
    }
}

/// The answer for a path under the static prefix. `key` is the decoded table key, `None`
/// for a malformed path.
pub fn respond<'a>(verb: Verb, req: &Request<'_>, key: Option<&str>, ctx: &Ctx<'a>) -> Reply<'a> {
    let Some(asset) = key.and_then(|k| ctx.table.get(k)) else {
        return match key.and_then(|k| ctx.table.open_unlisted(k)) {
            Some(u) if verb != Verb::Other => {
                let mut r = unlisted(u, ctx);
                public_if_authorized(&mut r, req);
                r
            }
            _ => Reply::not_found(),
        };
    };
    let mut r = answer(verb, req, asset, ctx);
    if asset.varies_on_dictionary() {
        dictionary_headers(&mut r, asset);
    }
    public_if_authorized(&mut r, req);
    r
}

/// `public` on the Cache-Control of an answer to a request with `Authorization`
/// ([`Request::cache_control`]).
fn public_if_authorized(r: &mut Reply<'_>, req: &Request<'_>) {
    if req.authorization.is_none() {
        return;
    }
    for (name, value) in r.headers.iter_mut() {
        if *name == header::CACHE_CONTROL {
            let with_public = req.cache_control(value).into_owned();
            *value = Cow::Owned(with_public);
        }
    }
}

/// `Vary: accept-encoding, available-dictionary` instead of `accept-encoding` about an asset
/// that is or has a dictionary (RFC 9842 §6.2), and its `Use-As-Dictionary` on the answers
/// that carry or confirm its bytes (200, 206, 304).
fn dictionary_headers<'a>(r: &mut Reply<'a>, asset: &'a Asset) {
    for (name, value) in r.headers.iter_mut() {
        if *name == header::VARY {
            *value = Cow::Owned(HeaderValue::from_static(dictionary::VARY));
        }
    }
    if let Some(d) = &asset.dictionary {
        if matches!(r.status.as_u16(), 200 | 206 | 304) {
            r.headers.push((USE_AS_DICTIONARY, Cow::Borrowed(d)));
        }
    }
}

const USE_AS_DICTIONARY: header::HeaderName = header::HeaderName::from_static("use-as-dictionary");

/// RFC 9842: the delta to send instead of `chosen`, when the request names a dictionary
/// this asset has a delta against, lists its coding, and may read such an answer.
fn delta<'a>(
    req: &Request<'_>,
    asset: &'a Asset,
    chosen: Encoding,
    ctx: &Ctx<'a>,
) -> Option<&'a Variant> {
    if asset.deltas.is_empty() {
        return None;
    }
    let dict = dictionary::available_dictionary(req.available_dictionary?)?;
    let allow_origin = ctx.cors.map(HeaderValue::as_bytes);
    if !dictionary::readable(
        req.sec_fetch_site,
        req.sec_fetch_mode,
        req.origin,
        allow_origin,
    ) {
        return None;
    }
    let enc = negotiate_delta(req.accept_encoding, chosen, |e| {
        asset.delta(&dict, e).map(|v| v.len)
    })?;
    asset.delta(&dict, enc)
}

fn answer<'a>(verb: Verb, req: &Request<'_>, asset: &'a Asset, ctx: &Ctx<'a>) -> Reply<'a> {
    if verb == Verb::Other {
        let mut r = Reply::new(StatusCode::METHOD_NOT_ALLOWED);
        r.headers.push((header::ALLOW, Cow::Owned(headers::ALLOW)));
        headers::common(&mut r.headers, asset, ctx.cors);
        return r;
    }
    let Some(enc) = negotiate(req.accept_encoding, |e| asset.variant(e).is_some()) else {
        let mut r = Reply::new(StatusCode::NOT_ACCEPTABLE);
        r.headers.push((header::VARY, Cow::Owned(headers::VARY_AE)));
        if let Some(origin) = ctx.cors {
            r.headers
                .push((header::ACCESS_CONTROL_ALLOW_ORIGIN, Cow::Borrowed(origin)));
        }
        return r;
    };
    let Some(v) = delta(req, asset, enc, ctx).or_else(|| asset.variant(enc)) else {
        let mut r = Reply::not_found();
        r.stale = true;
        return r;
    };
    let lm = asset.last_modified.as_ref().map(|(s, _)| *s);
    match conditional::evaluate(&req.conditions, v.etag.as_bytes(), lm) {
        Outcome::Proceed => {}
        Outcome::NotModified => {
            let mut r = Reply::new(StatusCode::NOT_MODIFIED);
            headers::common(&mut r.headers, asset, ctx.cors);
            headers::validators(&mut r.headers, asset, v);
            return r;
        }
        Outcome::PreconditionFailed => {
            let mut r = Reply::new(StatusCode::PRECONDITION_FAILED);
            headers::common(&mut r.headers, asset, ctx.cors);
            return r;
        }
    }

    // Open before committing to a status, so a vanished file is a 404, never a 5xx.
    let file = match &v.source {
        Source::Memory(_) => None,
        Source::Remote { .. } => match ctx.fetched.take() {
            Some(f) => Some(Arc::new(f)),
            // Only a caller that skipped the fetch gets here.
            None => return super::message::error_page(StatusCode::SERVICE_UNAVAILABLE),
        },
        Source::File | Source::FileAt(_) => match ctx.table.open(asset, v) {
            Opened::Same(f) => Some(f),
            Opened::Replaced(f, len) => return replaced(asset, v, f, len, ctx),
            Opened::Gone => {
                // A new generation may have no such variant (its content compressed
                // badly): the identity file under the same name is still an answer.
                let identity = asset.variant(Encoding::Identity);
                if let Some(id) = identity.filter(|id| id.encoding != v.encoding) {
                    match ctx.table.open(asset, id) {
                        Opened::Same(f) => return full(asset, id, Some(f), ctx).stale(),
                        Opened::Replaced(f, len) => return replaced(asset, id, f, len, ctx),
                        Opened::Gone => {}
                    }
                }
                return Reply::not_found().stale();
            }
        },
    };

    // RFC 9842 gives ranges of a dictionary-compressed answer no meaning: the whole delta.
    let ranges = match req.range {
        Some(r) if !v.encoding.is_delta() && if_range_ok(req, v, lm) => range::parse(r, v.len),
        _ => RangeSet::Full,
    };
    match ranges {
        RangeSet::Full if v.encoding.is_delta() => {
            let mut r = full(asset, v, file, ctx);
            for (name, value) in r.headers.iter_mut() {
                if *name == header::ACCEPT_RANGES {
                    *value = Cow::Owned(HeaderValue::from_static("none"));
                }
            }
            r
        }
        RangeSet::Full => full(asset, v, file, ctx),
        RangeSet::Unsatisfiable => {
            let mut r = Reply::new(StatusCode::RANGE_NOT_SATISFIABLE);
            headers::common(&mut r.headers, asset, ctx.cors);
            r.headers
                .push((header::ACCEPT_RANGES, Cow::Owned(headers::BYTES)));
            r.headers.push((
                header::CONTENT_RANGE,
                Cow::Owned(owned_value(format!("bytes */{}", v.len))),
            ));
            r
        }
        RangeSet::Ranges(ranges) => partial(asset, v, file, &ranges, ctx),
    }
}

fn if_range_ok(req: &Request<'_>, v: &Variant, lm: Option<u64>) -> bool {
    req.if_range
        .is_none_or(|ir| conditional::if_range_allows(ir, v.etag.as_bytes(), lm))
}

/// A header value we formatted ourselves (digits, tokens): always valid.
fn owned_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).expect("formatted header values are visible ASCII")
}

fn full<'a>(
    asset: &'a Asset,
    v: &'a Variant,
    file: Option<Arc<std::fs::File>>,
    ctx: &Ctx<'a>,
) -> Reply<'a> {
    let mut r = Reply::new(StatusCode::OK);
    r.headers
        .push((header::CONTENT_TYPE, Cow::Borrowed(&asset.content_type)));
    headers::common(&mut r.headers, asset, ctx.cors);
    headers::representation(&mut r.headers, asset, v);
    r.body = match &v.source {
        // The hot path: a refcounted slice, no allocation, no syscall.
        Source::Memory(bytes) => Body::Mem(bytes.clone()),
        Source::File | Source::FileAt(_) | Source::Remote { .. } => Body::Parts {
            segments: vec![Segment::File {
                offset: 0,
                len: v.len,
            }],
            file,
        },
    };
    r
}

/// The file under the asset's name was replaced since the table was built (a collect
/// published new bytes and the reload has not landed yet): it is served as it is now, so a
/// URL that exists before and after a collect never answers 404. Without validators and
/// ranges, which describe the old bytes; the reload is nudged.
fn replaced<'a>(
    asset: &'a Asset,
    v: &'a Variant,
    file: Arc<std::fs::File>,
    len: u64,
    ctx: &Ctx<'a>,
) -> Reply<'a> {
    let mut r = Reply::new(StatusCode::OK);
    r.headers
        .push((header::CONTENT_TYPE, Cow::Borrowed(&asset.content_type)));
    headers::common(&mut r.headers, asset, ctx.cors);
    r.headers
        .push((header::CACHE_CONTROL, Cow::Borrowed(&asset.cache_control)));
    if let Some(token) = v.encoding.token() {
        r.headers.push((
            header::CONTENT_ENCODING,
            Cow::Owned(HeaderValue::from_static(token)),
        ));
    }
    r.body = Body::Parts {
        segments: vec![Segment::File { offset: 0, len }],
        file: Some(file),
    };
    r.stale()
}

/// A name of a generation published after the table was built (see
/// [`Table::open_unlisted`]): identity, without validators or ranges, with the short
/// max-age (the table decides immutability once it has the new manifest); the reload is
/// nudged.
fn unlisted<'a>(u: Unlisted, ctx: &Ctx<'a>) -> Reply<'a> {
    let mut r = Reply::new(StatusCode::OK);
    r.headers
        .push((header::CONTENT_TYPE, Cow::Owned(u.content_type)));
    r.headers
        .push((header::CACHE_CONTROL, Cow::Owned(u.cache_control)));
    // Other answers for this URL may be encoded once the table lists it.
    r.headers.push((header::VARY, Cow::Owned(headers::VARY_AE)));
    if let Some(origin) = ctx.cors {
        r.headers
            .push((header::ACCESS_CONTROL_ALLOW_ORIGIN, Cow::Borrowed(origin)));
    }
    r.body = Body::Parts {
        segments: vec![Segment::File {
            offset: 0,
            len: u.len,
        }],
        file: Some(Arc::new(u.file)),
    };
    r.stale()
}

fn partial<'a>(
    asset: &'a Asset,
    v: &'a Variant,
    file: Option<Arc<std::fs::File>>,
    ranges: &[(u64, u64)],
    ctx: &Ctx<'a>,
) -> Reply<'a> {
    let slice = |first: u64, last: u64| match &v.source {
        Source::Memory(bytes) => Segment::Mem(bytes.slice(first as usize..=last as usize)),
        Source::File | Source::FileAt(_) | Source::Remote { .. } => Segment::File {
            offset: first,
            len: last - first + 1,
        },
    };
    let mut r = Reply::new(StatusCode::PARTIAL_CONTENT);
    headers::common(&mut r.headers, asset, ctx.cors);
    headers::representation(&mut r.headers, asset, v);
    let segments = if let [(first, last)] = ranges {
        r.headers
            .push((header::CONTENT_TYPE, Cow::Borrowed(&asset.content_type)));
        r.headers.push((
            header::CONTENT_RANGE,
            Cow::Owned(owned_value(format!("bytes {first}-{last}/{}", v.len))),
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
        r.headers.push((
            header::CONTENT_TYPE,
            Cow::Owned(owned_value(format!(
                "multipart/byteranges; boundary={boundary}"
            ))),
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
    r.body = Body::Parts { segments, file };
    r
}
