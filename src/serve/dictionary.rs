//! RFC 9842 (Compression Dictionary Transport) at the static tier, pure: the request's
//! `Available-Dictionary`, whether a response may be dictionary-compressed at all (the RFC's
//! readability rules), and the `Use-As-Dictionary` a current fingerprinted asset carries so
//! that browsers keep it for the next deploy.
//!
//! The deltas themselves are made by collect (`crate::delta`); the table finds them beside
//! their asset and `respond` picks one.

/// `Vary` of every answer about an asset that is, or has, a dictionary: a cache must key
/// on both (RFC 9842 §6.2).
pub const VARY: &str = "accept-encoding, available-dictionary";

/// `Available-Dictionary` (RFC 9842 §2.2): a Structured Field byte sequence (RFC 8941
/// §3.3.5), `:base64:`, holding a SHA-256. Parameters after it are ignored; anything else
/// (another item type, a hash of another length, bad base64) names no dictionary.
pub fn available_dictionary(value: &[u8]) -> Option<[u8; 32]> {
    let v = value.trim_ascii();
    let rest = v.strip_prefix(b":")?;
    let end = rest.iter().position(|&b| b == b':')?;
    let after = rest[end + 1..].trim_ascii_start();
    if !(after.is_empty() || after.starts_with(b";")) {
        return None;
    }
    base64(&rest[..end])?.try_into().ok()
}

/// Standard base64 (RFC 4648 §4), padding optional (RFC 8941 §4.2.7 lets parsers accept
/// it missing).
fn base64(text: &[u8]) -> Option<Vec<u8>> {
    let unpadded = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    if text.len() != unpadded.len() && !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(unpadded.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in unpadded {
        let d = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(d);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // A lone sextet cannot end a byte; leftover bits must be zero (canonical encoding).
    (bits < 6 && acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// RFC 9842 §7.3 "Response readability", the server's side: whether this request may get
/// a dictionary-compressed answer. Same-origin requests may (`Sec-Fetch-Site:
/// same-origin`); so may requests without `Sec-Fetch-Mode`, navigations and same-origin
/// mode; a CORS request only when the answer carries `Access-Control-Allow-Origin` matching
/// its `Origin` (or `*`); no other mode (`no-cors`: an opaque response whose size must not
/// leak through a dictionary).
pub fn readable(
    site: Option<&[u8]>,
    mode: Option<&[u8]>,
    origin: Option<&[u8]>,
    allow_origin: Option<&[u8]>,
) -> bool {
    let is = |v: Option<&[u8]>, token: &str| {
        v.is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    };
    if is(site, "same-origin") {
        return true;
    }
    let Some(mode) = mode else { return true };
    if is(Some(mode), "navigate") || is(Some(mode), "same-origin") {
        return true;
    }
    if !is(Some(mode), "cors") {
        return false;
    }
    match (
        allow_origin.map(<[u8]>::trim_ascii),
        origin.map(<[u8]>::trim_ascii),
    ) {
        (Some(b"*"), Some(_)) => true,
        (Some(allowed), Some(origin)) => allowed == origin,
        _ => false,
    }
}

/// `Use-As-Dictionary` (RFC 9842 §2.1) for the fingerprinted asset at `key` (the path below
/// `prefix`, e.g. `js/app.1a2b3c4d5e6f.js` under `/static/`): `match` is the logical name
/// under any fingerprint (`/static/js/app.*.js`), so the next deploy's file is requested with
/// this one as its dictionary; `match-dest` where the type says where it is used (scripts
/// and style sheets; JSON, SVG, WebAssembly are fetched as too many kinds of destination).
/// `None` when `key` has no fingerprint segment to replace.
pub fn use_as_dictionary(prefix: &str, key: &str) -> Option<String> {
    let file_start = key.rfind('/').map_or(0, |i| i + 1);
    let (stem, ext) = split_ext(key, file_start)?;
    let (logical_stem, _fingerprint) = split_ext(stem, file_start)?;
    let mut pattern = String::new();
    pattern_text(&mut pattern, prefix);
    pattern_text(&mut pattern, logical_stem);
    pattern.push_str(".*");
    pattern_text(&mut pattern, ext);
    let mut value = format!("match=\"{}\"", sf_string(&pattern));
    let ext = ext.trim_start_matches('.');
    let dest = if ext.eq_ignore_ascii_case("js") || ext.eq_ignore_ascii_case("mjs") {
        Some("script")
    } else if ext.eq_ignore_ascii_case("css") {
        Some("style")
    } else {
        None
    };
    if let Some(dest) = dest {
        value.push_str(&format!(", match-dest=(\"{dest}\")"));
    }
    Some(value)
}

/// `(stem, .ext)` of `path` split at the last dot after `file_start`, the dot not leading
/// the file name.
fn split_ext(path: &str, file_start: usize) -> Option<(&str, &str)> {
    let dot = path.rfind('.').filter(|&i| i > file_start)?;
    Some(path.split_at(dot))
}

/// Appends `text` as literal URL Pattern text (the WHATWG URL Pattern syntax): bytes a URL
/// path never carries raw are percent-encoded, as a browser's request has them, and the
/// pattern syntax's own characters are escaped with a backslash.
fn pattern_text(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        match b {
            b'*' | b'+' | b'?' | b':' | b'(' | b')' | b'{' | b'}' => {
                out.push('\\');
                out.push(b as char);
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => out.push(b as char),
            b'-' | b'.' | b'_' | b'~' | b'/' | b'!' | b'$' | b'&' | b'\'' | b',' | b';' | b'='
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// The inside of a Structured Field string: `\` and `"` escaped (everything else in a
/// pattern is printable ASCII already).
fn sf_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_dictionary_is_a_byte_sequence_of_a_sha256() {
        // The RFC's example.
        let h = available_dictionary(b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=:").unwrap();
        assert_eq!(&h[..4], &[0xa5, 0x91, 0xa6, 0xd4]);
        assert_eq!(h[31], 0x6e);
        // Whitespace around, parameters after, padding left out: the same hash.
        for v in [
            &b"  :pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=:  "[..],
            b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=:;x=1",
            b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4:",
        ] {
            assert_eq!(
                available_dictionary(v),
                Some(h),
                "{}",
                String::from_utf8_lossy(v)
            );
        }
        for bad in [
            &b""[..],
            b"pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=",
            b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=",
            b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=: x",
            b":YWJj:",
            b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=:, :YWJj:",
            b":pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4-:",
            b"\"pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=\"",
        ] {
            assert_eq!(
                available_dictionary(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn base64_is_strict_about_its_alphabet_and_tail() {
        assert_eq!(base64(b"YWJj").unwrap(), b"abc");
        assert_eq!(base64(b"YWI=").unwrap(), b"ab");
        assert_eq!(base64(b"YWI").unwrap(), b"ab");
        assert_eq!(base64(b"YQ==").unwrap(), b"a");
        assert_eq!(base64(b"").unwrap(), b"");
        assert_eq!(base64(b"YR=="), None, "non-zero leftover bits");
        assert_eq!(base64(b"Y"), None, "a lone sextet");
        assert_eq!(base64(b"YW=I"), None);
        assert_eq!(base64(b"YWI=="), None, "padding to no multiple of 4");
    }

    #[test]
    fn readability_follows_rfc_9842() {
        let r =
            |site: Option<&str>, mode: Option<&str>, origin: Option<&str>, acao: Option<&str>| {
                readable(
                    site.map(str::as_bytes),
                    mode.map(str::as_bytes),
                    origin.map(str::as_bytes),
                    acao.map(str::as_bytes),
                )
            };
        // A same-origin <script src> is no-cors, yet same-origin: readable.
        assert!(r(Some("same-origin"), Some("no-cors"), None, None));
        assert!(r(None, None, None, None), "no Sec-Fetch-Mode: allowed");
        assert!(r(Some("none"), Some("navigate"), None, None));
        assert!(r(Some("cross-site"), Some("same-origin"), None, None));
        assert!(r(
            Some("cross-site"),
            Some("cors"),
            Some("https://a.example"),
            Some("*")
        ));
        assert!(r(
            Some("same-site"),
            Some("cors"),
            Some("https://a.example"),
            Some("https://a.example")
        ));
        assert!(!r(
            Some("same-site"),
            Some("cors"),
            Some("https://a.example"),
            Some("https://b.example")
        ));
        assert!(
            !r(Some("cross-site"), Some("cors"), None, Some("*")),
            "CORS without Origin"
        );
        assert!(!r(
            Some("cross-site"),
            Some("cors"),
            Some("https://a.example"),
            None
        ));
        assert!(!r(Some("cross-site"), Some("no-cors"), None, Some("*")));
        assert!(!r(Some("same-site"), Some("websocket"), None, None));
    }

    #[test]
    fn use_as_dictionary_matches_the_logical_name_under_any_fingerprint() {
        let u = |k| use_as_dictionary("/static/", k);
        assert_eq!(
            u("js/app.1a2b3c4d5e6f.js").unwrap(),
            r#"match="/static/js/app.*.js", match-dest=("script")"#
        );
        assert_eq!(
            u("css/site.min.1a2b3c4d5e6f.css").unwrap(),
            r#"match="/static/css/site.min.*.css", match-dest=("style")"#
        );
        assert_eq!(
            u("app.js.1a2b3c4d5e6f.map").unwrap(),
            r#"match="/static/app.js.*.map""#
        );
        assert_eq!(
            u("data.1a2b3c4d5e6f.json").unwrap(),
            r#"match="/static/data.*.json""#
        );
        // Pattern syntax escaped, then the backslash escaped for the string; what a URL
        // path never carries raw percent-encoded.
        assert_eq!(
            u("a b/(x)+y:1.1a2b3c4d5e6f.js").unwrap(),
            r#"match="/static/a%20b/\\(x\\)\\+y\\:1.*.js", match-dest=("script")"#
        );
        assert_eq!(
            u("é\"%.1a2b3c4d5e6f.svg").unwrap(),
            r#"match="/static/%C3%A9%22%25.*.svg""#
        );
        assert_eq!(
            use_as_dictionary("/", "app.1a2b3c4d5e6f.js").unwrap(),
            r#"match="/app.*.js", match-dest=("script")"#
        );
        assert_eq!(u("LICENSE.1a2b3c4d5e6f"), None);
        assert_eq!(u(".hidden.js"), None);
    }
}
