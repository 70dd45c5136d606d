//! Response header sets, one function per status family, so every status gets the same
//! rules: `Vary` exactly once when the asset has variants, CORS on every file response
//! (206/304/416 included, unlike WhiteNoise).

use super::message::Headers;
use super::table::{Asset, Variant};
use actix_web::http::header::{self, HeaderValue};
use std::borrow::Cow;

pub const VARY_AE: HeaderValue = HeaderValue::from_static("accept-encoding");
pub const BYTES: HeaderValue = HeaderValue::from_static("bytes");
pub const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// Headers shared by every response about an asset.
pub fn common<'a>(h: &mut Headers<'a>, asset: &Asset, cors: Option<&'a HeaderValue>) {
    if asset.has_variants {
        h.push((header::VARY, Cow::Owned(VARY_AE)));
    }
    if let Some(origin) = cors {
        h.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, Cow::Borrowed(origin)));
    }
}

/// Validators and caching of the selected representation: what a 304 must repeat
/// (RFC 9110 §15.4.5: Cache-Control, ETag, Vary).
pub fn validators<'a>(h: &mut Headers<'a>, asset: &'a Asset, v: &'a Variant) {
    h.push((header::CACHE_CONTROL, Cow::Borrowed(&asset.cache_control)));
    h.push((header::ETAG, Cow::Borrowed(&v.etag)));
    if let Some((_, lm)) = &asset.last_modified {
        h.push((header::LAST_MODIFIED, Cow::Borrowed(lm)));
    }
}

/// Full representation metadata for 200 and 206.
pub fn representation<'a>(h: &mut Headers<'a>, asset: &'a Asset, v: &'a Variant) {
    validators(h, asset, v);
    h.push((header::ACCEPT_RANGES, Cow::Owned(BYTES)));
    if let Some(token) = v.encoding.token() {
        h.push((
            header::CONTENT_ENCODING,
            Cow::Owned(HeaderValue::from_static(token)),
        ));
    }
}

thread_local! {
    /// The `Date` value of the current second, per worker thread.
    static DATE: std::cell::RefCell<(u64, HeaderValue)> =
        const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

/// The current IMF-fixdate for `Date`, formatted once per second per worker (both
/// protocols' responses carry it).
pub fn date() -> HeaderValue {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(secs, value)| {
        if *secs != now {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(now));
            if let Ok(v) = HeaderValue::from_str(&text) {
                *value = v;
                *secs = now;
            }
        }
        value.clone()
    })
}
