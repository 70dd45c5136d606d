//! The fuzz targets' bodies (`fuzz/fuzz_targets/*` are one line each, calling these). Kept in
//! the crate so that the normal build compiles them and `cargo test` replays the committed
//! seed corpora through them: a target that no longer builds, or a seed that now fails, is
//! seen in CI rather than at the next fuzzing session (the nightly, sanitizer-instrumented
//! fuzz build is not part of `.ci/run`). Compiled only for tests and under cargo-fuzz's
//! `--cfg fuzzing`.

use crate::serve::conditional::{evaluate, if_range_allows, Conditions};
use crate::serve::h1::body::{BodyLen, Decoder};
use crate::serve::h1::request::{self, Parse, RawFields, MAX_FIELDS, MAX_HEAD};
use crate::serve::negotiate::{negotiate, Encoding};
use crate::serve::path::{route, Route};
use crate::serve::proxy::client::{take_head, Asked, BodyState, Framing, Piece};
use crate::serve::range::{self, RangeSet};
use bytes::BytesMut;

/// The HTTP/1 request-head parser (request line, fields, Host, absolute-form, body framing):
/// never a panic; an accepted head lies inside the bytes it came from, and its ranges too;
/// the field lines forwarded upstream ([`RawFields`]) are httparse's own, in order.
pub fn request_head(data: &[u8]) {
    let mut data = data.to_vec();
    if let Parse::NewerMinor(at) = request::parse(&data) {
        // Set to `1`, the line parses as HTTP/1.1 or is refused for something else.
        assert!(data[at].is_ascii_digit() && data[at] > b'1');
        data[at] = b'1';
        assert!(!matches!(request::parse(&data), Parse::NewerMinor(_)));
    }
    let data = &data[..];
    if let Parse::Ready(head) = request::parse(data) {
        assert!(head.len <= data.len() && head.len <= MAX_HEAD);
        for r in [&head.method, &head.target, &head.origin, &head.path] {
            assert!(r.start <= r.end && r.end <= head.len, "{r:?}");
        }
        let _ = head.request(data);
        let _ = head.host(data);
        let mut slots = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut slots);
        assert!(matches!(req.parse(data), Ok(httparse::Status::Complete(n)) if n == head.len));
        let want: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
        let got: Vec<(&str, &[u8])> = RawFields::of(&head, data).iter().collect();
        assert_eq!(got, want);
    }
}

/// The request-body decoder (Content-Length and chunked), fed in arbitrary pieces: never a
/// panic, never more out than in, never past `--max-body`, and a length body is exact.
pub fn request_body(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let len = match data[0] % 2 {
        0 => BodyLen::Length(u64::from(data[1]) * 7),
        _ => BodyLen::Chunked,
    };
    let max = u64::from(data[2]) * 16;
    let step = usize::from(data[3]).max(1);
    let input = &data[4..];
    let Ok(mut d) = Decoder::new(len, max) else {
        return;
    };
    let (mut buf, mut out, mut fed) = (BytesMut::new(), BytesMut::new(), 0);
    loop {
        match d.decode(&mut buf, &mut out) {
            Ok(true) => {
                if let BodyLen::Length(n) = len {
                    assert_eq!(out.len() as u64, n);
                }
                break;
            }
            Ok(false) if fed == input.len() => break,
            Ok(false) => {
                let n = step.min(input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
            Err(_) => break,
        }
        assert!(out.len() <= fed);
        assert!(
            max == 0 || out.len() as u64 <= max,
            "{} > --max-body {max}",
            out.len()
        );
    }
}

/// An upstream response: the head (`take_head`, framing rules), then the body by the framing
/// the head declared, fed in arbitrary pieces. Never a panic; never more body out than in; a
/// Content-Length body is exactly its length.
pub fn upstream(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let asked = Asked {
        head: flags & 1 != 0,
        upgrade: flags & 2 != 0,
    };
    let step = usize::from(flags >> 2).max(1);
    let mut buf = BytesMut::from(rest);
    let Ok(Some(head)) = take_head(&mut buf, asked) else {
        return;
    };
    let body = buf.split().freeze();
    let mut state = BodyState::new(head.framing);
    let (mut fed, mut out) = (0, 0usize);
    loop {
        match state.next(&mut buf, fed == body.len()) {
            Ok(Piece::Data(d)) => {
                out += d.len();
                assert!(out <= fed);
            }
            Ok(Piece::End) => {
                if let Framing::Length(n) = head.framing {
                    assert_eq!(out as u64, n);
                }
                break;
            }
            Ok(Piece::NeedMore) => {
                assert!(fed < body.len(), "NeedMore at the end of the input");
                let n = step.min(body.len() - fed);
                buf.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
            Err(_) => break,
        }
    }
}

/// The static tier's request headers: Range (every range inside the representation, a
/// whole-representation set answered 200), Accept-Encoding (never a coding the asset lacks),
/// and the conditionals (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since,
/// If-Range). Fields are separated by 0xff, which no header value may hold.
pub fn static_headers(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let mask = data[8];
    let mut f = data[9..].split(|&b| b == 0xff);
    let mut next = || f.next().unwrap_or_default();

    if let RangeSet::Ranges(r) = range::parse(next(), len) {
        assert!(!r.is_empty());
        for &(first, last) in &r {
            assert!(first <= last && last < len, "{first}-{last} of {len}");
        }
        let covered: u64 = r.iter().map(|(a, b)| b - a + 1).sum();
        assert!(r.len() > 1 || covered < len, "a whole-representation 206");
    }

    let available = |e: Encoding| match e {
        Encoding::Brotli => mask & 1 != 0,
        Encoding::Zstd => mask & 2 != 0,
        Encoding::Gzip => mask & 4 != 0,
        Encoding::Identity => true,
        // Dictionary deltas are chosen apart from the per-asset files (`negotiate` never
        // offers them).
        Encoding::Dcb | Encoding::Dcz => false,
    };
    if let Some(e) = negotiate(Some(next()), available) {
        assert!(available(e), "{e:?} chosen but not available");
    }

    let mut opt = || Some(next()).filter(|v| !v.is_empty());
    let c = Conditions {
        if_match: opt(),
        if_none_match: opt(),
        if_modified_since: opt(),
        if_unmodified_since: opt(),
    };
    let if_range = opt();
    let etag = b"\"0123456789abcdef\"";
    for lm in [None, Some(0), Some(784_111_777), Some(u64::MAX)] {
        let _ = evaluate(&c, etag, lm);
        if let Some(v) = if_range {
            let _ = if_range_allows(v, etag, lm);
        }
    }
}

/// Request path → table key: never a panic, and a key is always a canonical relative path
/// (no empty, `.`-led or trailing segment, no backslash, no control character), whatever
/// the percent-encoding.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Route::Static(Some(key)) = route(raw, "/static/") {
        assert!(
            !key.is_empty() && !key.starts_with('/') && !key.ends_with('/'),
            "{key:?}"
        );
        for seg in key.split('/') {
            assert!(!seg.is_empty() && !seg.starts_with('.'), "{key:?}");
        }
        assert!(
            !key.contains('\\') && !key.chars().any(char::is_control),
            "{key:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every committed seed of every target goes through its body, as `cargo fuzz run`
    /// starts with them.
    #[test]
    fn the_seed_corpora_pass() {
        type Body = fn(&[u8]);
        let targets: [(&str, Body); 5] = [
            ("request_head", super::request_head),
            ("request_body", super::request_body),
            ("upstream", super::upstream),
            ("static_headers", super::static_headers),
            ("path", super::path),
        ];
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, body) in targets {
            let dir = corpus.join(name);
            let mut seeds = 0;
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.unwrap().path();
                body(&std::fs::read(&path).unwrap());
                seeds += 1;
            }
            assert!(seeds > 0, "no seeds in {}", dir.display());
        }
    }
}
