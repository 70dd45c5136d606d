//! Response header sets, one function per status family, so every status gets the same
//! rules: `Vary` exactly once when the asset has variants, CORS on every file response
//! (206/304/416 included, unlike WhiteNoise).

use super::table::{Asset, Variant};
use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponseBuilder;

pub const VARY_AE: HeaderValue = HeaderValue::from_static("accept-encoding");
pub const BYTES: HeaderValue = HeaderValue::from_static("bytes");
pub const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// Headers shared by every response about an asset.
pub fn common(b: &mut HttpResponseBuilder, asset: &Asset, cors: Option<&HeaderValue>) {
    if asset.has_variants {
        b.insert_header((header::VARY, VARY_AE));
    }
    if let Some(origin) = cors {
        b.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
    }
}

/// Validators and caching of the selected representation: what a 304 must repeat
/// (RFC 9110 §15.4.5: Cache-Control, ETag, Vary).
pub fn validators(b: &mut HttpResponseBuilder, asset: &Asset, v: &Variant) {
    b.insert_header((header::CACHE_CONTROL, asset.cache_control.clone()));
    b.insert_header((header::ETAG, v.etag.clone()));
    if let Some((_, lm)) = &asset.last_modified {
        b.insert_header((header::LAST_MODIFIED, lm.clone()));
    }
}

/// Full representation metadata for 200 and 206.
pub fn representation(b: &mut HttpResponseBuilder, asset: &Asset, v: &Variant) {
    validators(b, asset, v);
    b.insert_header((header::ACCEPT_RANGES, BYTES));
    if let Some(token) = v.encoding.token() {
        b.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static(token)));
    }
}
