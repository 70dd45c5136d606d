//! Byte ranges (RFC 9110 §14), applied to the selected (possibly encoded) representation.
//!
//! Unlike WhiteNoise (`bytes=0-0` → 416) and actix-files (first range only), every
//! satisfiable range is served, several as `multipart/byteranges`.
//!
//! A range set that covers the whole representation (`bytes=0-`, `bytes=0-78` of 79 bytes,
//! `bytes=-500` of 100, `bytes=0-49,50-99`) is answered 200 with all of it, as §14.2 lets
//! a server ignore Range: a 206 of everything only costs the client a Content-Range to
//! parse (REDbot flags it). The static table, the media mount and `--internal` mounts all
//! go through [`parse`], so the rule is the same for each.

/// Above this many ranges the header is ignored and the whole representation sent:
/// a cheap defence against range amplification (RFC 9110 §14.2 allows ignoring Range).
pub const MAX_RANGES: usize = 64;

/// The decision for a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeSet {
    /// Ignore Range: send 200 with the full representation.
    Full,
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
    /// 206 with these inclusive `(first, last)` byte positions, in the client's order
    /// (overlapping ranges are coalesced, sorted).
    Ranges(Vec<(u64, u64)>),
}

/// Parses `Range` against a representation of `len` bytes. Unknown units and malformed
/// syntax are ignored (→ `Full`), as §14.2 requires.
pub fn parse(header: &[u8], len: u64) -> RangeSet {
    let Ok(h) = std::str::from_utf8(header) else {
        return RangeSet::Full;
    };
    let h = h.trim_matches([' ', '\t']);
    let Some((unit, set)) = h.split_once('=') else {
        return RangeSet::Full;
    };
    if !unit.trim_matches([' ', '\t']).eq_ignore_ascii_case("bytes") {
        return RangeSet::Full;
    }
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut members = 0usize;
    for spec in set.split(',') {
        let spec = spec.trim_matches([' ', '\t']);
        if spec.is_empty() {
            continue;
        }
        members += 1;
        if members > MAX_RANGES {
            return RangeSet::Full;
        }
        let Some((a, b)) = spec.split_once('-') else {
            return RangeSet::Full;
        };
        let (a, b) = (a.trim_matches([' ', '\t']), b.trim_matches([' ', '\t']));
        if a.is_empty() {
            // suffix-range: the last `n` bytes.
            let Some(n) = digits(b) else {
                return RangeSet::Full;
            };
            if n > 0 && len > 0 {
                out.push((len.saturating_sub(n), len - 1));
            }
            continue;
        }
        let Some(first) = digits(a) else {
            return RangeSet::Full;
        };
        let last = if b.is_empty() {
            u64::MAX
        } else {
            match digits(b) {
                Some(l) if l >= first => l,
                _ => return RangeSet::Full,
            }
        };
        if first < len {
            out.push((first, last.min(len - 1)));
        }
    }
    if members == 0 {
        return RangeSet::Full;
    }
    if out.is_empty() {
        return RangeSet::Unsatisfiable;
    }
    if covers_all(&out, len) {
        return RangeSet::Full;
    }
    if overlaps(&out) {
        out.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(out.len());
        for (f, l) in out {
            match merged.last_mut() {
                Some(prev) if f <= prev.1.saturating_add(1) => prev.1 = prev.1.max(l),
                _ => merged.push((f, l)),
            }
        }
        out = merged;
    }
    RangeSet::Ranges(out)
}

/// Whether the (non-empty, in-bounds) ranges together cover bytes `0..len`.
fn covers_all(r: &[(u64, u64)], len: u64) -> bool {
    if !r.iter().any(|&(f, _)| f == 0) {
        return false; // the usual case, decided without sorting
    }
    let mut sorted = r.to_vec();
    sorted.sort_unstable();
    let mut next = 0; // first byte not yet covered
    for (f, l) in sorted {
        if f > next {
            return false;
        }
        next = next.max(l + 1);
    }
    next >= len
}

fn overlaps(r: &[(u64, u64)]) -> bool {
    r.iter()
        .enumerate()
        .any(|(i, a)| r[i + 1..].iter().any(|b| a.0 <= b.1 && b.0 <= a.1))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Absurdly large positions saturate: they are then unsatisfiable or clamped, not errors.
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

/// The part header of one range in a `multipart/byteranges` body (RFC 9110 §14.6).
pub fn part_header(boundary: &str, content_type: &str, first: u64, last: u64, len: u64) -> String {
    format!("\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {first}-{last}/{len}\r\n\r\n")
}

/// The closing delimiter of a `multipart/byteranges` body.
pub fn closing(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

#[cfg(test)]
mod tests {
    use super::RangeSet::*;
    use super::*;

    fn p(h: &str) -> RangeSet {
        parse(h.as_bytes(), 100)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(p("bytes=0-0"), Ranges(vec![(0, 0)]));
        assert_eq!(p("bytes=5-5"), Ranges(vec![(5, 5)]));
        assert_eq!(p("bytes=-1"), Ranges(vec![(99, 99)]));
        assert_eq!(p("bytes=99-"), Ranges(vec![(99, 99)]));
        assert_eq!(p("bytes=10-1000"), Ranges(vec![(10, 99)]));
        assert_eq!(p("bytes=0-98"), Ranges(vec![(0, 98)]));
        assert_eq!(p("bytes=-99"), Ranges(vec![(1, 99)]));
        assert_eq!(p("Bytes = 1-2"), Ranges(vec![(1, 2)]));
    }

    #[test]
    fn whole_representation_is_full() {
        for h in [
            "bytes=0-",
            "bytes=0-99",
            "bytes=0-1000",
            "bytes=-100",
            "bytes=-500",
            "bytes=0-49,50-99",
            "bytes=50-99, 0-49",
            "bytes=0-60,40-",
            "bytes=0-0,1-",
        ] {
            assert_eq!(p(h), Full, "{h}");
        }
        assert_eq!(parse(b"bytes=0-0", 1), Full);
        assert_eq!(parse(b"bytes=0-78", 79), Full);
        assert_eq!(parse(b"bytes=0-77", 79), Ranges(vec![(0, 77)]));
        // A gap keeps it partial.
        assert_eq!(p("bytes=0-48,50-99"), Ranges(vec![(0, 48), (50, 99)]));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(p("bytes=100-"), Unsatisfiable);
        assert_eq!(p("bytes=-0"), Unsatisfiable);
        assert_eq!(p("bytes=200-300, 100-"), Unsatisfiable);
        assert_eq!(parse(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=5-1"), Full);
        assert_eq!(p("items=0-1"), Full);
        assert_eq!(p("bytes=abc"), Full);
        assert_eq!(p("bytes="), Full);
        assert_eq!(p("bytes=1-2-3"), Full);
        assert_eq!(p("bytes=99999999999999999999999-"), Unsatisfiable);
        let many = format!("bytes={}", vec!["1-1"; MAX_RANGES + 1].join(","));
        assert_eq!(p(&many), Full);
    }

    #[test]
    fn multiple_ranges() {
        assert_eq!(p("bytes=0-1, 5-6"), Ranges(vec![(0, 1), (5, 6)]));
        assert_eq!(p("bytes=50-60, 0-1"), Ranges(vec![(50, 60), (0, 1)]));
        assert_eq!(p("bytes=0-1, 200-300"), Ranges(vec![(0, 1)]));
        assert_eq!(p("bytes=0-10, 5-20, 21-22"), Ranges(vec![(0, 22)]));
        assert_eq!(p("bytes=0-1,,-1"), Ranges(vec![(0, 1), (99, 99)]));
    }
}
