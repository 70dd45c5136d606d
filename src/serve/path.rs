//! Request path → table key. Decodes exactly once and refuses anything non-canonical.
//!
//! The table lookup alone already makes traversal impossible (keys are scanned names); these
//! checks make the refusal explicit and cheap, and keep odd paths from aliasing real files
//! (`a//b`, `./a`, `%2f`), which would split caches and confuse logs.

use std::borrow::Cow;

/// Longest raw path we look at; anything longer cannot be in the table (PATH_MAX).
pub const MAX_PATH: usize = 4096;

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Under the static prefix; `None` when the path is malformed (→ plain 404).
    /// Borrowed when nothing needed decoding, the common case.
    Static(Option<Cow<'a, str>>),
    /// Not under the static prefix (404 today; the upstream proxy later).
    Other,
}

/// `raw` is the request target's path, still percent-encoded; `prefix` starts and ends
/// with `/`.
pub fn route<'a>(raw: &'a str, prefix: &str) -> Route<'a> {
    let Some(rest) = raw.strip_prefix(prefix) else {
        return Route::Other;
    };
    Route::Static(key(rest))
}

fn key(rest: &str) -> Option<Cow<'_, str>> {
    if rest.is_empty() || rest.len() > MAX_PATH {
        return None;
    }
    if !rest.contains('%') {
        return check(rest).then_some(Cow::Borrowed(rest));
    }
    // An encoded separator or NUL has no canonical meaning in a file name.
    let b = rest.as_bytes();
    for i in 0..b.len().saturating_sub(2) {
        if b[i] == b'%' {
            let code = (hex(b[i + 1])?, hex(b[i + 2])?);
            if matches!(code, (2, 0xf) | (5, 0xc) | (0, 0)) {
                return None;
            }
        }
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(b).collect();
    // Strict UTF-8 rejects overlong forms such as `%c0%ae` (a disguised `.`).
    let s = String::from_utf8(decoded).ok()?;
    check(&s).then_some(Cow::Owned(s))
}

/// One pass over the bytes: no control characters (C0, DEL, and C1 as UTF-8 `C2 80`–`C2 9F`),
/// no backslash, and no empty, `.`-led or trailing segment (`//`, `./`, `..`, dotfiles, a
/// directory's trailing `/`).
fn check(s: &str) -> bool {
    let b = s.as_bytes();
    let mut segment_start = true;
    for (i, &c) in b.iter().enumerate() {
        if c < 0x20 || c == 0x7f || c == b'\\' {
            return false;
        }
        if c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) {
            return false;
        }
        if segment_start && (c == b'/' || c == b'.') {
            return false;
        }
        segment_start = c == b'/';
    }
    !segment_start
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// STATIC_URL normalised to a path prefix that starts and ends with `/`: the mount is always
/// a directory boundary, so nginx's alias off-by-slash (`/static..`) cannot happen.
/// A full URL (`https://cdn/x/static/`) keeps only its path.
pub fn normalize_prefix(url: &str) -> String {
    let mut path = url;
    if let Some(i) = url.find("://") {
        let after = &url[i + 3..];
        path = after.find('/').map_or("/", |j| &after[j..]);
    }
    let path = path.trim_matches('/');
    if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{path}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(p: &str) -> Option<String> {
        match route(p, "/static/") {
            Route::Static(k) => k.map(Cow::into_owned),
            Route::Other => Some("<other>".into()),
        }
    }

    #[test]
    fn canonical_paths() {
        assert_eq!(k("/static/css/a.css").as_deref(), Some("css/a.css"));
        assert_eq!(k("/static/a%20b.txt").as_deref(), Some("a b.txt"));
        assert_eq!(k("/static/%E2%8A%97.txt").as_deref(), Some("⊗.txt"));
        assert_eq!(k("/static/%252e%252e/x").as_deref(), Some("%2e%2e/x"));
    }

    #[test]
    fn refused() {
        for p in [
            "/static/",
            "/static/../etc/passwd",
            "/static/%2e%2e/etc/passwd",
            "/static/%2E%2E%2Fetc%2Fpasswd",
            "/static/css%2fa.css",
            "/static/css%5ca.css",
            "/static/css\\a.css",
            "/static/a%00.css",
            "/static/%c0%ae%c0%ae/x",
            "/static//etc/passwd",
            "/static/css//a.css",
            "/static/css/",
            "/static/./a.css",
            "/static/.env",
            "/static/a/.git/config",
            "/static/%zz",
            "/static/%ff",
            "/static/a%c2%85b.txt",
            "/static/a%7fb.txt",
            "/static/a%1fb.txt",
        ] {
            assert_eq!(k(p), None, "{p}");
        }
        assert_eq!(k("/static..").as_deref(), Some("<other>"));
        assert_eq!(k("/static").as_deref(), Some("<other>"));
        assert_eq!(k(&format!("/static/{}", "a".repeat(MAX_PATH + 1))), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("/static/"), "/static/");
        assert_eq!(normalize_prefix("static"), "/static/");
        assert_eq!(normalize_prefix("/a/b"), "/a/b/");
        assert_eq!(normalize_prefix("/"), "/");
        assert_eq!(
            normalize_prefix("https://cdn.example/x/static/"),
            "/x/static/"
        );
    }
}
