//! Ports of the few Python 3.12 standard-library functions Django's URL converter is built from
//! (`posixpath.normpath/join/dirname`, `urllib.parse.unquote/urlsplit/urldefrag`, `str.strip`). Each one
//! reproduces CPython 3.12.1's behaviour, quirks included, because they decide both the lookup key and
//! the exact bytes Django writes into the rewritten file.

use super::pyclass::is_py_space;

/// `posixpath.normpath`: drop `.` and empty segments, fold `..`, keep exactly two leading slashes (POSIX
/// allows `//` to mean something else), and return `"."` for an empty result.
pub(super) fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let root = if path.starts_with("//") && !path.starts_with("///") {
        "//"
    } else if path.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut comps: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        let keep =
            comp != ".." || (root.is_empty() && comps.is_empty()) || comps.last() == Some(&"..");
        if keep {
            comps.push(comp);
        } else {
            comps.pop();
        }
    }
    let out = format!("{root}{}", comps.join("/"));
    if out.is_empty() {
        ".".into()
    } else {
        out
    }
}

/// `posixpath.join(a, b)` for two arguments: an absolute `b` replaces `a`.
pub(super) fn join(a: &str, b: &str) -> String {
    if b.starts_with('/') {
        b.to_string()
    } else if a.is_empty() || a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// `posixpath.dirname`: everything before the last `/`, with trailing slashes removed unless it is all slashes.
pub(super) fn dirname(p: &str) -> &str {
    let head = &p[..p.rfind('/').map_or(0, |i| i + 1)];
    if !head.is_empty() && head.bytes().any(|b| b != b'/') {
        head.trim_end_matches('/')
    } else {
        head
    }
}

/// `str.strip()` with no argument (Python's whitespace set, not Rust's).
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// `urllib.parse.unquote(s)` (UTF-8, errors="replace"). Only ASCII runs are decoded; each run's bytes are
/// decoded on their own, so a multi-byte sequence split by a literal non-ASCII character becomes U+FFFD.
/// Invalid escapes (`%zz`, a trailing `%`) stay literal.
pub(super) fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        let ascii_len = rest.find(|c: char| !c.is_ascii()).unwrap_or(rest.len());
        let (ascii, tail) = rest.split_at(ascii_len);
        out.push_str(&String::from_utf8_lossy(&percent_decode(ascii.as_bytes())));
        let other_len = tail.find(|c: char| c.is_ascii()).unwrap_or(tail.len());
        out.push_str(&tail[..other_len]);
        rest = &tail[other_len..];
    }
    out
}

/// `%XX` (either hex case) to one byte; anything else copied.
fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The five parts `urllib.parse.urlsplit` returns.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Split {
    pub scheme: String,
    pub netloc: String,
    pub path: String,
    pub query: String,
    pub fragment: String,
}

const SCHEME_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";

/// `urllib.parse.urlsplit` (3.12.1): strips leading C0/space, deletes every tab/CR/LF, lower-cases a scheme,
/// splits a `//netloc`, then the first `#`, then the first `?`. The IPv6 bracket checks that can raise are
/// not reproduced (no CSS/JS reference reaches them with a netloc).
pub(super) fn urlsplit(url: &str) -> Split {
    let trimmed = url.trim_start_matches(|c: char| c <= ' ');
    let mut rest: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut sp = Split::default();
    if let Some(i) = rest.find(':') {
        let first_alpha = rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if i > 0 && first_alpha && rest[..i].chars().all(|c| SCHEME_CHARS.contains(c)) {
            sp.scheme = rest[..i].to_ascii_lowercase();
            rest = rest[i + 1..].to_string();
        }
    }
    if rest.starts_with("//") {
        let delim = rest[2..]
            .find(['/', '?', '#'])
            .map_or(rest.len(), |d| d + 2);
        sp.netloc = rest[2..delim].to_string();
        rest = rest[delim..].to_string();
    }
    if let Some((a, f)) = rest.split_once('#') {
        sp.fragment = f.to_string();
        rest = a.to_string();
    }
    if let Some((a, q)) = rest.split_once('?') {
        sp.query = q.to_string();
        rest = a.to_string();
    }
    sp.path = rest;
    sp
}

const USES_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtsps", "rtspu",
    "sip", "sips", "mms", "sftp", "tel",
];
const USES_NETLOC: &[&str] = &[
    "",
    "ftp",
    "http",
    "gopher",
    "nntp",
    "telnet",
    "imap",
    "wais",
    "file",
    "mms",
    "https",
    "shttp",
    "snews",
    "prospero",
    "rtsp",
    "rtsps",
    "rtspu",
    "rsync",
    "svn",
    "svn+ssh",
    "sftp",
    "nfs",
    "git",
    "git+ssh",
    "ws",
    "wss",
    "itms-services",
];

/// `urllib.parse.urldefrag`: without a `#` the URL is returned untouched; with one it goes through
/// `urlparse` + `urlunparse`, which drops an empty `?`, an empty `;params`, C0 characters and tabs/newlines,
/// and lower-cases the scheme. Django keeps the result as the author's URL, so these quirks show in the output.
pub(super) fn urldefrag(url: &str) -> (String, String) {
    if !url.contains('#') {
        return (url.to_string(), String::new());
    }
    let mut sp = urlsplit(url);
    let fragment = std::mem::take(&mut sp.fragment);
    if USES_PARAMS.contains(&sp.scheme.as_str()) && sp.path.contains(';') {
        let (path, params) = split_params(&sp.path);
        sp.path = if params.is_empty() {
            path.to_string()
        } else {
            format!("{path};{params}")
        };
    }
    (urlunsplit(&sp), fragment)
}

/// `_splitparams`: params start at the first `;` of the last segment.
fn split_params(path: &str) -> (&str, &str) {
    let from = path.rfind('/').unwrap_or(0);
    match path[from..].find(';') {
        Some(i) => (&path[..from + i], &path[from + i + 1..]),
        None => (path, ""),
    }
}

/// `urllib.parse.urlunsplit` (3.12.1).
fn urlunsplit(sp: &Split) -> String {
    let mut url = sp.path.clone();
    let wants_netloc = !sp.scheme.is_empty()
        && USES_NETLOC.contains(&sp.scheme.as_str())
        && !url.starts_with("//");
    if !sp.netloc.is_empty() || wants_netloc {
        if !url.is_empty() && !url.starts_with('/') {
            url.insert(0, '/');
        }
        url = format!("//{}{url}", sp.netloc);
    }
    if !sp.scheme.is_empty() {
        url = format!("{}:{url}", sp.scheme);
    }
    if !sp.query.is_empty() {
        url = format!("{url}?{}", sp.query);
    }
    if !sp.fragment.is_empty() {
        url = format!("{url}#{}", sp.fragment);
    }
    url
}

#[cfg(test)]
mod tests {
    //! Expected values are CPython 3.12.1 outputs.
    use super::*;

    #[test]
    fn normpath_matches_posixpath() {
        let cases = [
            ("", "."),
            (".", "."),
            ("a/./b", "a/b"),
            ("a//b/", "a/b"),
            ("cached/css/../img/a.png", "cached/img/a.png"),
            ("../x", "../x"),
            ("a/../../x", "../x"),
            ("../../a/..", "../.."),
            ("/../x", "/x"),
            ("//a/b", "//a/b"),
            ("///a", "/a"),
            ("a/..", "."),
            ("a b /c", "a b /c"),
        ];
        for (i, o) in cases {
            assert_eq!(normpath(i), o, "normpath({i:?})");
        }
    }

    #[test]
    fn join_and_dirname_match_posixpath() {
        assert_eq!(join("", "a.png"), "a.png");
        assert_eq!(join("css", "a.png"), "css/a.png");
        assert_eq!(join("css/", "a.png"), "css/a.png");
        assert_eq!(join("css", "/a.png"), "/a.png");
        assert_eq!(dirname("cached/css/window.css"), "cached/css");
        assert_eq!(dirname("window.css"), "");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(dirname("//a"), "//");
        assert_eq!(dirname("a//b"), "a");
    }

    #[test]
    fn unquote_matches_urllib() {
        assert_eq!(unquote("abc"), "abc");
        assert_eq!(unquote("%61.png"), "a.png");
        assert_eq!(unquote("%2f%2F"), "//");
        assert_eq!(unquote("%zz%4"), "%zz%4");
        assert_eq!(unquote("100%"), "100%");
        assert_eq!(unquote("%E2%98%83"), "☃");
        assert_eq!(unquote("%E2%98"), "\u{FFFD}");
        assert_eq!(unquote("%E2⊗%98%83"), "\u{FFFD}⊗\u{FFFD}\u{FFFD}");
        assert_eq!(unquote("%ff%41"), "\u{FFFD}A");
        assert_eq!(unquote("a%20b"), "a b");
    }

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(py_strip("\u{1c} a.png \u{3000}"), "a.png");
        assert_eq!(py_strip("\u{200b}a"), "\u{200b}a");
    }

    #[test]
    fn urlsplit_matches_urllib() {
        let sp = urlsplit("a.png?v=1#x?y");
        assert_eq!(
            (sp.path.as_str(), sp.query.as_str(), sp.fragment.as_str()),
            ("a.png", "v=1", "x?y")
        );
        let sp = urlsplit("Foo:bar.png");
        assert_eq!((sp.scheme.as_str(), sp.path.as_str()), ("foo", "bar.png"));
        let sp = urlsplit("css/a:b.png");
        assert_eq!((sp.scheme.as_str(), sp.path.as_str()), ("", "css/a:b.png"));
        let sp = urlsplit(" //host/p?q");
        assert_eq!(
            (sp.netloc.as_str(), sp.path.as_str(), sp.query.as_str()),
            ("host", "/p", "q")
        );
        assert_eq!(urlsplit("a\tb\n.png ").path, "ab.png ");
    }

    #[test]
    fn urldefrag_matches_urllib() {
        let d = |s: &str| urldefrag(s);
        assert_eq!(d("a.png"), ("a.png".into(), "".into()));
        assert_eq!(d("a.png?"), ("a.png?".into(), "".into()));
        assert_eq!(
            d("fonts/font.eot?#iefix"),
            ("fonts/font.eot".into(), "iefix".into())
        );
        assert_eq!(d("a.png?v=1#x"), ("a.png?v=1".into(), "x".into()));
        assert_eq!(d("#default#VML"), ("".into(), "default#VML".into()));
        assert_eq!(d("a;p/b;q#f"), ("a;p/b;q".into(), "f".into()));
        assert_eq!(d("a/b;#f"), ("a/b".into(), "f".into()));
        assert_eq!(d("Foo:bar#x"), ("foo:bar".into(), "x".into()));
        assert_eq!(d("http:x#f"), ("http:///x".into(), "f".into()));
        assert_eq!(d("//h#f"), ("//h".into(), "f".into()));
        assert_eq!(d("a\tb#f"), ("ab".into(), "f".into()));
    }
}
