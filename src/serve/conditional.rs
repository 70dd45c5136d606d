//! Conditional requests (RFC 9110 §13), evaluated in the order of §13.2.2.
//!
//! Evaluated against the *selected* representation (after negotiation), since each coding has
//! its own strong ETag. Dates are compared at one-second resolution, as HTTP-dates carry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the preconditions decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the representation (ranges may still apply).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition the client set is false.
    PreconditionFailed,
}

/// The request's conditional header values (raw bytes; `None` when absent).
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a [u8]>,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub if_unmodified_since: Option<&'a [u8]>,
}

/// `etag` is the quoted strong tag of the selected representation; `last_modified` is in
/// whole seconds since the epoch (`None` when unknown). Only GET and HEAD reach this.
pub fn evaluate(c: &Conditions<'_>, etag: &[u8], last_modified: Option<u64>) -> Outcome {
    // Step 1 and 2: If-Match, else If-Unmodified-Since.
    if let Some(im) = c.if_match {
        if !list_matches(im, etag, true) {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(ius), Some(lm)) =
        (c.if_unmodified_since.and_then(parse_date), last_modified)
    {
        if lm > ius {
            return Outcome::PreconditionFailed;
        }
    }
    // Step 3 and 4: If-None-Match, else If-Modified-Since (GET/HEAD only).
    if let Some(inm) = c.if_none_match {
        if list_matches(inm, etag, false) {
            return Outcome::NotModified;
        }
    } else if let (Some(ims), Some(lm)) = (c.if_modified_since.and_then(parse_date), last_modified)
    {
        if lm <= ims {
            return Outcome::NotModified;
        }
    }
    Outcome::Proceed
}

/// If-Range (§13.1.5): `true` when the Range header may be honoured.
/// An entity tag must match strongly; a date must equal Last-Modified exactly.
pub fn if_range_allows(value: &[u8], etag: &[u8], last_modified: Option<u64>) -> bool {
    let v = trim(value);
    if v.starts_with(b"\"") || v.starts_with(b"W/") {
        return match parse_tags(v) {
            Some(tags) => tags.len() == 1 && !tags[0].weak && tags[0].opaque == strip_weak(etag).1,
            None => false,
        };
    }
    matches!((parse_date(v), last_modified), (Some(d), Some(lm)) if d == lm)
}

/// Seconds since the epoch, as sent in `Last-Modified`.
pub fn unix_seconds(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// `Last-Modified` / `If-*-Since` value for `secs`.
pub fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

fn parse_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(trim(v)).ok()?;
    httpdate::parse_http_date(s).ok().and_then(unix_seconds)
}

struct Tag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

/// `*` or a list of entity tags. `strong` selects strong comparison (If-Match) versus weak
/// comparison (If-None-Match). A malformed list never matches.
fn list_matches(header: &[u8], etag: &[u8], strong: bool) -> bool {
    let h = trim(header);
    if h == b"*" {
        return true;
    }
    let Some(tags) = parse_tags(h) else {
        return false;
    };
    let (own_weak, own) = strip_weak(etag);
    tags.iter()
        .any(|t| t.opaque == own && (!strong || (!t.weak && !own_weak)))
}

fn strip_weak(tag: &[u8]) -> (bool, &[u8]) {
    match tag.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    }
}

/// Splits `#entity-tag`. Commas inside quotes are part of the tag (`etagc` allows them).
fn parse_tags(mut s: &[u8]) -> Option<Vec<Tag<'_>>> {
    let mut out = Vec::new();
    loop {
        s = trim(s);
        while let [b',', rest @ ..] = s {
            s = trim(rest);
        }
        if s.is_empty() {
            return Some(out);
        }
        let weak = s.starts_with(b"W/");
        if weak {
            s = &s[2..];
        }
        if s.first() != Some(&b'"') {
            return None;
        }
        let close = s[1..].iter().position(|&b| b == b'"')? + 1;
        out.push(Tag {
            weak,
            opaque: &s[..=close],
        });
        s = trim(&s[close + 1..]);
        match s.first() {
            None => return Some(out),
            Some(b',') => {}
            Some(_) => return None,
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::Outcome::*;
    use super::*;

    const TAG: &[u8] = b"\"abc\"";
    const LM: u64 = 1_700_000_000;

    fn eval(c: Conditions<'_>) -> Outcome {
        evaluate(&c, TAG, Some(LM))
    }

    #[test]
    fn if_none_match_lists_weak_and_star() {
        let c = |v: &'static str| Conditions {
            if_none_match: Some(v.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c("\"abc\"")), NotModified);
        assert_eq!(eval(c("\"x\", \"abc\"")), NotModified);
        assert_eq!(eval(c("W/\"abc\"")), NotModified);
        assert_eq!(eval(c("*")), NotModified);
        assert_eq!(eval(c("\"abcd\"")), Proceed);
        assert_eq!(eval(c("abc")), Proceed);
        assert_eq!(eval(c("\"a,b\", \"abc\"")), NotModified);
    }

    #[test]
    fn if_match_is_strong_and_first() {
        let c = |v: &'static str| Conditions {
            if_match: Some(v.as_bytes()),
            if_none_match: Some(b"\"abc\""),
            ..Default::default()
        };
        assert_eq!(eval(c("\"abc\"")), NotModified);
        assert_eq!(eval(c("*")), NotModified);
        assert_eq!(eval(c("W/\"abc\"")), PreconditionFailed);
        assert_eq!(eval(c("\"zzz\"")), PreconditionFailed);
    }

    #[test]
    fn dates() {
        let d = |s: u64| http_date(s);
        let ims = d(LM);
        let c = Conditions {
            if_modified_since: Some(ims.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c), NotModified);
        let older = d(LM - 1);
        let c = Conditions {
            if_modified_since: Some(older.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c), Proceed);
        // If-None-Match present: If-Modified-Since is ignored.
        let c = Conditions {
            if_none_match: Some(b"\"other\""),
            if_modified_since: Some(ims.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c), Proceed);
        let c = Conditions {
            if_unmodified_since: Some(older.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c), PreconditionFailed);
        // If-Match present: If-Unmodified-Since is ignored.
        let c = Conditions {
            if_match: Some(TAG),
            if_unmodified_since: Some(older.as_bytes()),
            ..Default::default()
        };
        assert_eq!(eval(c), Proceed);
        let c = Conditions {
            if_modified_since: Some(b"garbage"),
            if_unmodified_since: Some(b"garbage"),
            ..Default::default()
        };
        assert_eq!(eval(c), Proceed);
    }

    #[test]
    fn if_range() {
        assert!(if_range_allows(b"\"abc\"", TAG, Some(LM)));
        assert!(!if_range_allows(b"W/\"abc\"", TAG, Some(LM)));
        assert!(!if_range_allows(b"\"x\"", TAG, Some(LM)));
        assert!(if_range_allows(http_date(LM).as_bytes(), TAG, Some(LM)));
        assert!(!if_range_allows(
            http_date(LM - 5).as_bytes(),
            TAG,
            Some(LM)
        ));
        assert!(!if_range_allows(b"nonsense", TAG, Some(LM)));
    }
}
