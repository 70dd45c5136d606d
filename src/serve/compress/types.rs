//! Which Content-Types are compressed: media-type patterns (`text/html`, `text/*`,
//! `application/*+json`) matched case-insensitively, parameters (`; charset=…`) ignored.
//!
//! The default list is nginx's usual `gzip_types` for a web application plus what Caddy's
//! `encode` matches: every text type, JSON, JavaScript, XML and SVG, and their structured
//! suffixes (`+json`, `+xml`). Images, fonts, archives and media are already compressed or
//! seldom come from Django. `text/event-stream` is left out: an open event stream would
//! hold an encoder's state (256 KiB for gzip, more for br and zstd) for its whole life,
//! for events of a few hundred bytes that gain little; `--proxy-compress-type
//! text/event-stream` turns it on (each event is still flushed at once, see `stream`).

use crate::serve::negotiate::is_tchar;

/// The types compressed unless the command line says otherwise.
pub const DEFAULT: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "image/svg+xml",
];

/// Left out of [`DEFAULT`]'s `text/*` (see the module doc); named explicitly it is compressed.
pub const DEFAULT_EXCLUDED: &[&str] = &["text/event-stream"];

/// A media-type pattern: `type/subtype`, `type/*`, or `type/*+suffix`; lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    kind: String,
    sub: Sub,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sub {
    Exact(String),
    Any,
    /// `*+json`: any subtype with this structured-syntax suffix (`+json`, with the `+`).
    Suffix(String),
}

/// A pattern that is not `type/subtype`, `type/*` or `type/*+suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern(pub String);

impl std::fmt::Display for BadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is not a media type (e.g. text/html, text/*, application/*+json)",
            self.0
        )
    }
}

impl std::error::Error for BadPattern {}

impl std::str::FromStr for Pattern {
    type Err = BadPattern;

    fn from_str(s: &str) -> Result<Pattern, BadPattern> {
        let bad = || BadPattern(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        let (kind, sub) = t.split_once('/').ok_or_else(bad)?;
        let token = |x: &str| !x.is_empty() && x.bytes().all(is_tchar);
        if !token(kind) || kind == "*" {
            return Err(bad());
        }
        let sub = match sub {
            "*" => Sub::Any,
            s if s.starts_with("*+") && token(&s[2..]) => Sub::Suffix(s[1..].to_string()),
            s if token(s) && !s.contains('*') => Sub::Exact(s.to_string()),
            _ => return Err(bad()),
        };
        Ok(Pattern {
            kind: kind.to_string(),
            sub,
        })
    }
}

impl Pattern {
    /// Whether the media type `kind/sub` (lower case, no parameters) matches.
    fn matches(&self, kind: &str, sub: &str) -> bool {
        kind == self.kind
            && match &self.sub {
                Sub::Any => true,
                Sub::Exact(s) => s == sub,
                Sub::Suffix(x) => sub.len() > x.len() && sub.ends_with(x.as_str()),
            }
    }
}

/// The types to compress: the defaults, plus those added, minus those removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Types {
    add: Vec<Pattern>,
    remove: Vec<Pattern>,
    default: Vec<Pattern>,
    default_excluded: Vec<Pattern>,
}

impl Types {
    /// `add` (`--proxy-compress-type`) and `remove` (`--no-proxy-compress-type`) around
    /// the defaults. A type removed is never compressed; one added always is (unless also
    /// removed), even if the defaults leave it out.
    pub fn new(add: Vec<Pattern>, remove: Vec<Pattern>) -> Types {
        let parse = |l: &[&str]| l.iter().map(|p| p.parse().expect("valid")).collect();
        Types {
            add,
            remove,
            default: parse(DEFAULT),
            default_excluded: parse(DEFAULT_EXCLUDED),
        }
    }

    /// Whether a response with this Content-Type value is compressed.
    pub fn compress(&self, content_type: &[u8]) -> bool {
        let Some((kind, sub)) = media_type(content_type) else {
            return false;
        };
        let any = |l: &[Pattern]| l.iter().any(|p| p.matches(&kind, &sub));
        if any(&self.remove) {
            return false;
        }
        any(&self.add) || (any(&self.default) && !any(&self.default_excluded))
    }
}

impl Default for Types {
    fn default() -> Types {
        Types::new(Vec::new(), Vec::new())
    }
}

/// `type/subtype` of a Content-Type value, lower case; `None` when malformed.
fn media_type(v: &[u8]) -> Option<(String, String)> {
    let v = std::str::from_utf8(v).ok()?;
    let essence = v.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, sub) = essence.split_once('/')?;
    let token = |x: &str| !x.is_empty() && x.bytes().all(is_tchar);
    (token(kind) && token(sub)).then(|| (kind.to_string(), sub.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let t = Types::default();
        for yes in [
            "text/html; charset=utf-8",
            "TEXT/HTML",
            "text/plain",
            "text/css",
            "text/javascript",
            "text/csv",
            "application/json",
            "application/problem+json",
            "application/vnd.api+json; charset=utf-8",
            "application/javascript",
            "application/xml",
            "application/xhtml+xml",
            "application/rss+xml",
            "image/svg+xml",
        ] {
            assert!(t.compress(yes.as_bytes()), "{yes}");
        }
        for no in [
            "text/event-stream",
            "image/png",
            "application/octet-stream",
            "application/pdf",
            "application/zip",
            "font/woff2",
            "video/mp4",
            "application/+json",
            "",
            "html",
            "text/",
            "application/json\u{7f}",
        ] {
            assert!(!t.compress(no.as_bytes()), "{no}");
        }
        assert!(!t.compress(&[0xff, b'/', b'x']));
    }

    #[test]
    fn added_and_removed() {
        let t = Types::new(
            vec![p("text/event-stream"), p("application/wasm")],
            vec![p("text/csv"), p("application/*+xml")],
        );
        assert!(t.compress(b"text/event-stream"));
        assert!(t.compress(b"application/wasm"));
        assert!(!t.compress(b"text/csv; header=present"));
        assert!(!t.compress(b"application/atom+xml"));
        assert!(t.compress(b"application/xml"));
        assert!(t.compress(b"text/html"));
        let none = Types::new(vec![], vec![p("text/*")]);
        assert!(!none.compress(b"text/html") && none.compress(b"application/json"));
        let both = Types::new(vec![p("image/png")], vec![p("image/*")]);
        assert!(!both.compress(b"image/png"), "removal wins");
    }

    #[test]
    fn patterns() {
        assert_eq!(p(" Text/HTML "), p("text/html"));
        for bad in [
            "",
            "html",
            "*/*",
            "text/",
            "/html",
            "text/ht*ml",
            "text/*+",
            "a b/c",
        ] {
            assert_eq!(bad.parse::<Pattern>(), Err(BadPattern(bad.into())), "{bad}");
        }
        assert_eq!(
            "html".parse::<Pattern>().unwrap_err().to_string(),
            "\"html\" is not a media type (e.g. text/html, text/*, application/*+json)"
        );
    }
}
