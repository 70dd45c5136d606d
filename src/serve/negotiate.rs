//! Accept-Encoding negotiation (RFC 9110 §12.5.3), pure and allocation-free.
//!
//! Peers get this wrong in many ways (spec §7.1): q-values ignored, `q=0` honoured only for
//! some codings, `*` not expanded, case-sensitive tokens. Here every entry is parsed, the
//! client's q decides, and the server's order br > zstd > gzip > identity breaks ties.
//!
//! The dictionary codings of RFC 9842 (dcb, dcz) are chosen apart, by [`negotiate_delta`]:
//! only when the request names a dictionary there is a delta against, and never through `*`
//! (a client that has not named them cannot decode them).

/// A content coding staticd can serve from STATIC_ROOT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Brotli,
    Zstd,
    Gzip,
    Identity,
    /// RFC 9842 dictionary-compressed brotli: a delta, never in the per-asset slots.
    Dcb,
    /// RFC 9842 dictionary-compressed zstd: a delta, never in the per-asset slots.
    Dcz,
}

impl Encoding {
    /// Server preference on equal q for precompressed files: the smallest output first
    /// (brotli 11 beats zstd 19 on text), identity last.
    pub const PREFERENCE: [Encoding; 4] = [
        Encoding::Brotli,
        Encoding::Zstd,
        Encoding::Gzip,
        Encoding::Identity,
    ];

    /// The `Content-Encoding` token; `None` for identity (never sent as a header).
    pub fn token(self) -> Option<&'static str> {
        match self {
            Encoding::Brotli => Some("br"),
            Encoding::Zstd => Some("zstd"),
            Encoding::Gzip => Some("gzip"),
            Encoding::Identity => None,
            Encoding::Dcb => Some("dcb"),
            Encoding::Dcz => Some("dcz"),
        }
    }

    /// File-name suffix of the precompressed sibling written by collect (a delta's name
    /// also names its dictionary: none).
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Encoding::Brotli => Some(".br"),
            Encoding::Zstd => Some(".zst"),
            Encoding::Gzip => Some(".gz"),
            Encoding::Identity | Encoding::Dcb | Encoding::Dcz => None,
        }
    }

    /// Server preference on equal q when compressing as the bytes stream (proxied
    /// responses): at the fast levels used there (zstd 3, brotli 2) zstd gives as few bytes
    /// for less CPU (README "Compression of proxied responses"), so it goes first, as in
    /// Caddy's `encode`.
    pub const ON_THE_FLY: [Encoding; 4] = [
        Encoding::Zstd,
        Encoding::Brotli,
        Encoding::Gzip,
        Encoding::Identity,
    ];

    /// Index into per-asset variant arrays, in [`Encoding::PREFERENCE`] order; the deltas'
    /// are past their end (an asset keeps its deltas apart).
    pub fn index(self) -> usize {
        match self {
            Encoding::Brotli => 0,
            Encoding::Zstd => 1,
            Encoding::Gzip => 2,
            Encoding::Identity => 3,
            Encoding::Dcb => 4,
            Encoding::Dcz => 5,
        }
    }

    /// A dictionary-compressed coding (RFC 9842).
    pub fn is_delta(self) -> bool {
        matches!(self, Encoding::Dcb | Encoding::Dcz)
    }
}

/// Which codings the client named, with q in thousandths; `None` = not named.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Prefs {
    br: Option<u16>,
    zstd: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
    dcb: Option<u16>,
    dcz: Option<u16>,
}

impl Prefs {
    /// The client's q for `enc`, in thousandths (0: not acceptable). `*` covers the ordinary
    /// codings only, and identity is acceptable unless refused.
    fn q(&self, enc: Encoding) -> u16 {
        let named = match enc {
            Encoding::Brotli => self.br,
            Encoding::Zstd => self.zstd,
            Encoding::Gzip => self.gzip,
            Encoding::Identity => self.identity,
            Encoding::Dcb => return self.dcb.unwrap_or(0),
            Encoding::Dcz => return self.dcz.unwrap_or(0),
        };
        match (named, self.star, enc) {
            (Some(q), _, _) => q,
            (None, Some(q), _) => q,
            (None, None, Encoding::Identity) => 1,
            (None, None, _) => 0,
        }
    }
}

/// Picks the representation to send. `available(e)` says whether the asset has coding `e`
/// (identity is always available). `None` means nothing acceptable exists: answer 406.
///
/// A missing header means "no preference"; we then send identity, which every client can
/// read (RFC 9110 allows any coding, but guessing would break curl-like clients).
pub fn negotiate(header: Option<&[u8]>, available: impl Fn(Encoding) -> bool) -> Option<Encoding> {
    negotiate_in(Encoding::PREFERENCE, header, available)
}

/// [`negotiate`] with the server's own order for equal q-values (identity last).
pub fn negotiate_in(
    order: [Encoding; 4],
    header: Option<&[u8]>,
    available: impl Fn(Encoding) -> bool,
) -> Option<Encoding> {
    let Some(header) = header else {
        return Some(Encoding::Identity);
    };
    let prefs = parse(header);
    let mut best: Option<(u16, Encoding)> = None;
    for enc in order {
        if enc != Encoding::Identity && !available(enc) {
            continue;
        }
        // Identity is acceptable unless refused by `identity;q=0` or `*;q=0`.
        let q = prefs.q(enc);
        // Strictly greater: the server's order wins ties.
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, enc));
        }
    }
    best.map(|(_, e)| e)
}

/// RFC 9842: the delta to send instead of `chosen` (what [`negotiate`] picked), if the
/// client lists dcb or dcz with a q at least `chosen`'s. `len(e)` is the size of the delta in
/// coding `e` against the request's dictionary, `None` when there is none. Higher q wins,
/// then the smaller delta.
pub fn negotiate_delta(
    header: Option<&[u8]>,
    chosen: Encoding,
    len: impl Fn(Encoding) -> Option<u64>,
) -> Option<Encoding> {
    let prefs = parse(header?);
    let floor = prefs.q(chosen).max(1);
    [Encoding::Dcb, Encoding::Dcz]
        .into_iter()
        .filter_map(|e| Some((prefs.q(e), len(e)?, e)))
        .filter(|&(q, _, _)| q >= floor)
        .min_by_key(|&(q, len, _)| (std::cmp::Reverse(q), len))
        .map(|(_, _, e)| e)
}

/// Parses the list leniently: malformed members are skipped, not fatal, so garbage from a
/// broken client degrades to identity instead of an error. When a coding appears more than
/// once the highest q counts.
fn parse(header: &[u8]) -> Prefs {
    let mut p = Prefs::default();
    for member in header.split(|&b| b == b',') {
        let mut parts = member.split(|&b| b == b';');
        let coding = trim(parts.next().unwrap_or_default());
        if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
            continue;
        }
        let mut q = Some(1000u16);
        for param in parts {
            let param = trim(param);
            if param.is_empty() {
                continue;
            }
            let Some(eq) = param.iter().position(|&b| b == b'=') else {
                q = None;
                break;
            };
            let (name, value) = (trim(&param[..eq]), trim(&param[eq + 1..]));
            if name.eq_ignore_ascii_case(b"q") {
                q = parse_q(value);
                if q.is_none() {
                    break;
                }
            }
        }
        let Some(q) = q else { continue };
        let slot = if coding.eq_ignore_ascii_case(b"br") {
            &mut p.br
        } else if coding.eq_ignore_ascii_case(b"zstd") {
            &mut p.zstd
        } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            &mut p.gzip
        } else if coding.eq_ignore_ascii_case(b"identity") {
            &mut p.identity
        } else if coding.eq_ignore_ascii_case(b"dcb") {
            &mut p.dcb
        } else if coding.eq_ignore_ascii_case(b"dcz") {
            &mut p.dcz
        } else if coding == b"*" {
            &mut p.star
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    p
}

/// RFC 9110 §12.4.2 `qvalue`, in thousandths; `None` when malformed.
fn parse_q(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if int.len() != 1 || frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int[0] {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `s` without the optional whitespace (spaces, tabs) around it (RFC 9110 §5.6.3).
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A `tchar` of RFC 9110 §5.6.2 (what tokens are made of).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::Encoding::*;
    use super::*;

    fn all(_: Encoding) -> bool {
        true
    }
    fn neg(h: &str) -> Option<Encoding> {
        negotiate(Some(h.as_bytes()), all)
    }

    #[test]
    fn q_values_and_ties() {
        assert_eq!(neg("gzip, br"), Some(Brotli));
        assert_eq!(neg("br;q=0, gzip"), Some(Gzip));
        assert_eq!(neg("br;q=0.5, gzip;q=0.8"), Some(Gzip));
        assert_eq!(neg("br;q=0.8, gzip;q=0.8, zstd;q=0.8"), Some(Brotli));
        assert_eq!(neg("gzip, zstd"), Some(Zstd));
        assert_eq!(neg("gzip;q=0"), Some(Identity));
        assert_eq!(neg("identity;q=0.5, gzip;q=0.4"), Some(Identity));
        assert_eq!(neg("gzip;q=0.001"), Some(Gzip));
        assert_eq!(neg("gzip;Q=1.000"), Some(Gzip));
    }

    #[test]
    fn star_and_identity_refusal() {
        assert_eq!(neg("*"), Some(Brotli));
        assert_eq!(neg("*;q=0"), None);
        assert_eq!(neg("*;q=0, identity"), Some(Identity));
        assert_eq!(neg("identity;q=0"), None);
        assert_eq!(neg("identity;q=0, gzip"), Some(Gzip));
        assert_eq!(neg("*;q=0.5, br;q=0"), Some(Zstd));
        assert_eq!(negotiate(Some(b"identity;q=0, br"), |e| e == Gzip), None);
        assert_eq!(negotiate(Some(b"*"), |_| false), Some(Identity));
    }

    #[test]
    fn tokens_are_case_insensitive_and_x_gzip_is_gzip() {
        assert_eq!(neg("GZIP"), Some(Gzip));
        assert_eq!(neg("Br"), Some(Brotli));
        assert_eq!(neg("x-gzip"), Some(Gzip));
        assert_eq!(neg("deflate"), Some(Identity));
    }

    #[test]
    fn garbage_and_empty() {
        assert_eq!(neg(""), Some(Identity));
        assert_eq!(neg(",,, ;;"), Some(Identity));
        assert_eq!(neg("gzip;q=2"), Some(Identity));
        assert_eq!(neg("gzip;q=abc, br;q"), Some(Identity));
        assert_eq!(neg("g zip"), Some(Identity));
        assert_eq!(neg("\u{1}\u{2}garbage\u{7f}"), Some(Identity));
        assert_eq!(negotiate(None, all), Some(Identity));
        assert_eq!(
            negotiate(Some(&[0xff, 0xfe, b'b', b'r']), all),
            Some(Identity)
        );
    }

    #[test]
    fn only_available_codings() {
        assert_eq!(negotiate(Some(b"br, gzip"), |e| e == Gzip), Some(Gzip));
        assert_eq!(negotiate(Some(b"br"), |e| e == Gzip), Some(Identity));
    }

    #[test]
    fn deltas_only_when_named_and_not_less_wanted() {
        let both = |e: Encoding| match e {
            Dcb => Some(100),
            Dcz => Some(90),
            _ => None,
        };
        let nd = |h: &str, chosen| negotiate_delta(Some(h.as_bytes()), chosen, both);
        // Chrome's header: the smaller delta.
        assert_eq!(nd("gzip, deflate, br, zstd, dcb, dcz", Brotli), Some(Dcz));
        assert_eq!(nd("dcb, br", Brotli), Some(Dcb));
        assert_eq!(nd("DCZ;q=1.0, br", Brotli), Some(Dcz));
        // The client's q first, then the size.
        assert_eq!(nd("dcb, dcz;q=0.5, br", Brotli), Some(Dcb));
        // Not named (`*` does not cover them), refused, or less wanted than the answer.
        assert_eq!(nd("*", Brotli), None);
        assert_eq!(nd("br, gzip", Brotli), None);
        assert_eq!(nd("dcb;q=0, dcz;q=0, br", Brotli), None);
        assert_eq!(nd("dcz;q=0.5, br", Brotli), None);
        assert_eq!(nd("dcz;q=0.5, gzip;q=0.5", Gzip), Some(Dcz));
        assert_eq!(nd("dcz", Identity), Some(Dcz));
        // Only codings with a delta against the request's dictionary.
        assert_eq!(
            negotiate_delta(Some(b"dcb, dcz"), Identity, |e| (e == Dcb).then_some(5)),
            Some(Dcb)
        );
        assert_eq!(negotiate_delta(Some(b"dcb, dcz"), Identity, |_| None), None);
        assert_eq!(negotiate_delta(None, Identity, both), None);
        // The ordinary negotiation ignores them.
        assert_eq!(neg("dcb, dcz"), Some(Identity));
    }

    #[test]
    fn qvalue_grammar() {
        assert_eq!(parse_q(b"0"), Some(0));
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"0.125"), Some(125));
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.0"), Some(1000));
        assert_eq!(parse_q(b"1.5"), None);
        assert_eq!(parse_q(b"0.1234"), None);
        assert_eq!(parse_q(b""), None);
        assert_eq!(parse_q(b".5"), None);
    }
}
