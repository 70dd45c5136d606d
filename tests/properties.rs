//! Properties of the framing and header parsers, checked on generated inputs in the normal
//! suite (`proptest`); the same functions have coverage-guided fuzz targets in `fuzz/`.

use bytes::BytesMut;
use proptest::prelude::*;
use staticd::serve::h1::request::{self, Parse, RawFields};
use staticd::serve::negotiate::{negotiate, Encoding};
use staticd::serve::path::{route, Route};
use staticd::serve::proxy::client::{chunk_size, content_length, BodyState, Framing, Piece};
use staticd::serve::range::{parse as parse_range, RangeSet};

/// Feeds `wire` to a body decoder `step` bytes at a time; the data it gave out, or the
/// error, and whether it reached the end.
fn decode(framing: Framing, wire: &[u8], step: usize) -> Result<Vec<u8>, String> {
    let mut state = BodyState::new(framing);
    let (mut buf, mut fed, mut out) = (BytesMut::new(), 0, Vec::new());
    loop {
        match state.next(&mut buf, fed == wire.len()) {
            Ok(Piece::Data(d)) => out.extend_from_slice(&d),
            Ok(Piece::End) => return Ok(out),
            Ok(Piece::NeedMore) => {
                assert!(fed < wire.len(), "NeedMore at the end of the input");
                let n = step.min(wire.len() - fed);
                buf.extend_from_slice(&wire[fed..fed + n]);
                fed += n;
            }
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

fn chunked(chunks: &[Vec<u8>], ext: bool) -> Vec<u8> {
    let mut wire = Vec::new();
    for c in chunks.iter().filter(|c| !c.is_empty()) {
        wire.extend_from_slice(format!("{:x}", c.len()).as_bytes());
        if ext {
            wire.extend_from_slice(b";name=value");
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(c);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    wire
}

proptest! {
    #[test]
    fn chunked_bodies_round_trip_in_any_pieces(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        step in 1usize..64,
        ext in any::<bool>(),
    ) {
        let got = decode(Framing::Chunked, &chunked(&chunks, ext), step).unwrap();
        prop_assert_eq!(got, chunks.concat());
    }

    #[test]
    fn a_chunked_body_cut_short_is_an_error(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 1..5),
        cut in any::<prop::sample::Index>(),
        step in 1usize..64,
    ) {
        let wire = chunked(&chunks, false);
        let at = cut.index(wire.len());
        prop_assert!(decode(Framing::Chunked, &wire[..at], step).is_err());
    }

    #[test]
    fn length_bodies_are_exact(body in prop::collection::vec(any::<u8>(), 1..2000), extra in 0usize..50, step in 1usize..512) {
        let mut wire = body.clone();
        wire.extend(std::iter::repeat_n(b'x', extra));
        let got = decode(Framing::Length(body.len() as u64), &wire, step).unwrap();
        prop_assert_eq!(got, body.clone());
        prop_assert!(decode(Framing::Length(body.len() as u64 + 1), &body, step).is_err());
    }

    #[test]
    fn lengths_and_chunk_sizes(n in any::<u64>()) {
        let (signed, list) = (format!("+{n}"), format!("{n}, {n}"));
        prop_assert_eq!(content_length(n.to_string().as_bytes()).unwrap(), n);
        prop_assert!(content_length(signed.as_bytes()).is_err());
        prop_assert!(content_length(list.as_bytes()).is_err());
        let (hex, ext) = (format!("{n:x}"), format!("{n:X};ext=1"));
        prop_assert_eq!(chunk_size(hex.as_bytes()).unwrap(), n);
        prop_assert_eq!(chunk_size(ext.as_bytes()).unwrap(), n);
        let (plus, prefixed, wide) = (format!("+{n:x}"), format!("0x{n:x}"), format!("1{n:016x}"));
        prop_assert!(chunk_size(plus.as_bytes()).is_err());
        prop_assert!(chunk_size(prefixed.as_bytes()).is_err());
        prop_assert!(chunk_size(wide.as_bytes()).is_err(), "65 bits");
    }

    #[test]
    fn ranges_stay_inside_the_representation(header in prop::collection::vec(any::<u8>(), 0..64), len in 0u64..100_000) {
        if let RangeSet::Ranges(r) = parse_range(&header, len) {
            for (first, last) in r {
                prop_assert!(first <= last && last < len);
            }
        }
    }

    #[test]
    fn a_single_range_is_exact(len in 2u64..1_000_000, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let (x, y) = (a.index(len as usize) as u64, b.index(len as usize) as u64);
        let (first, last) = (x.min(y), x.max(y));
        let got = parse_range(format!("bytes={first}-{last}").as_bytes(), len);
        if first == 0 && last == len - 1 {
            prop_assert_eq!(got, RangeSet::Full);
        } else {
            prop_assert_eq!(got, RangeSet::Ranges(vec![(first, last)]));
        }
    }

    #[test]
    fn negotiation_never_picks_a_missing_coding(header in "[a-z*;=,. 0-9]{0,40}", mask in 0u8..8) {
        let available = |e: Encoding| match e {
            Encoding::Brotli => mask & 1 != 0,
            Encoding::Zstd => mask & 2 != 0,
            Encoding::Gzip => mask & 4 != 0,
            Encoding::Identity => true,
            // Deltas are chosen by negotiate_delta, never here.
            Encoding::Dcb | Encoding::Dcz => true,
        };
        if let Some(e) = negotiate(Some(header.as_bytes()), available) {
            prop_assert!(!e.is_delta());
            prop_assert!(available(e));
        }
    }

    #[test]
    fn table_keys_are_canonical(raw in "/static/[a-zA-Z0-9%./\\\\_-]{0,40}") {
        if let Route::Static(Some(key)) = route(&raw, "/static/") {
            prop_assert!(!key.starts_with('/') && !key.ends_with('/'));
            for seg in key.split('/') {
                prop_assert!(!seg.is_empty() && !seg.starts_with('.'), "{:?}", key);
            }
            prop_assert!(!key.contains('\\'));
        }
    }

    #[test]
    fn percent_encoding_a_key_changes_nothing(segs in prop::collection::vec("[a-z0-9][a-z0-9._-]{0,8}", 1..4)) {
        let key = segs.join("/");
        let encoded: String = key
            .bytes()
            .map(|b| if b == b'/' { "/".to_string() } else { format!("%{b:02X}") })
            .collect();
        let (plain, coded) = (format!("/static/{key}"), format!("/static/{encoded}"));
        prop_assert_eq!(route(&plain, "/static/"), route(&coded, "/static/"));
    }

    /// The proxy forwards a head's field lines as [`RawFields`] splits them from the bytes
    /// httparse accepted, without a second parse: the same lines httparse gives, whatever
    /// the line ends and the whitespace around the values.
    #[test]
    fn raw_fields_split_like_httparse(
        blank in 0usize..3,
        lines in prop::collection::vec(
            ("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}", "[ \t]{0,2}", "[ -~\t\u{80}-\u{ff}]{0,20}", any::<bool>()),
            0..10,
        ),
        lf_only in any::<bool>(),
    ) {
        let eol = if lf_only { "\n" } else { "\r\n" };
        let mut raw = eol.repeat(blank).into_bytes();
        raw.extend_from_slice(format!("GET /a:b?c HTTP/1.1{eol}Host: h{eol}").as_bytes());
        for (name, ws, value, crlf) in &lines {
            raw.extend_from_slice(format!("{name}:{ws}").as_bytes());
            raw.extend(value.chars().map(|c| c as u32 as u8));
            raw.extend_from_slice(if *crlf && !lf_only { b"\r\n" } else { b"\n" });
        }
        raw.extend_from_slice(eol.as_bytes());
        raw.extend_from_slice(b"GET /next HTTP/1.1");
        let Parse::Ready(head) = request::parse(&raw) else {
            // Refused heads are never forwarded.
            return Ok(());
        };
        let mut slots = vec![httparse::EMPTY_HEADER; request::MAX_FIELDS];
        let mut req = httparse::Request::new(&mut slots);
        prop_assert!(req.parse(&raw).unwrap().is_complete());
        let want: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
        let got: Vec<(&str, &[u8])> = RawFields::of(&head, &raw).iter().collect();
        prop_assert_eq!(got, want);
    }
}
