//! The static tier's request headers: Range (every range inside the representation, a
//! whole-representation set answered 200), Accept-Encoding (never a coding the asset lacks),
//! and the conditionals (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since,
//! If-Range). Fields are separated by 0xff, which no header value may hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staticd::serve::conditional::{evaluate, if_range_allows, Conditions};
use staticd::serve::negotiate::{negotiate, Encoding};
use staticd::serve::range::{parse, RangeSet};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().unwrap()) % (1 << 40);
    let mask = data[8];
    let mut f = data[9..].split(|&b| b == 0xff);
    let mut next = || f.next().unwrap_or_default();

    if let RangeSet::Ranges(r) = parse(next(), len) {
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
});
