//! Host and request-target authority syntax (RFC 9112 §3.2, RFC 3986 §3.2), hand-written:
//! it runs on every request, so it is one pass over a short slice with no allocation.
//!
//! A Host value (and the authority of an absolute-form target) is `host [ ":" port ]`:
//! `host` an IP-literal (`[v6]`, `[vF.x]`), or a reg-name of unreserved, pct-encoded and
//! sub-delim characters (an IPv4 address is a reg-name too); `port` digits. No userinfo
//! (RFC 9110 §4.2.4 treats it as an error), and never empty: an `http` URI with an empty
//! host is invalid (RFC 9110 §4.2.1), and nginx refuses an empty Host as well.

use std::ops::Range;

/// Why a Host value (or an absolute-form authority) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty host")]
    Empty,
    #[error("byte {0:#04x} is not allowed in a host")]
    Char(u8),
    #[error("malformed percent-encoding in the host")]
    Percent,
    #[error("the port is not a number")]
    Port,
    #[error("malformed IP literal")]
    IpLiteral,
}

/// Checks `host [":" port]`.
pub fn check(v: &[u8]) -> Result<(), HostError> {
    if v.is_empty() {
        return Err(HostError::Empty);
    }
    let rest = if v[0] == b'[' {
        let end = v
            .iter()
            .position(|&b| b == b']')
            .ok_or(HostError::IpLiteral)?;
        ip_literal(&v[1..end])?;
        &v[end + 1..]
    } else {
        let end = v.iter().position(|&b| b == b':').unwrap_or(v.len());
        if end == 0 {
            return Err(HostError::Empty);
        }
        reg_name(&v[..end])?;
        &v[end..]
    };
    match rest {
        [] => Ok(()),
        [b':', port @ ..] if port.iter().all(u8::is_ascii_digit) => Ok(()),
        [b':', ..] => Err(HostError::Port),
        [b, ..] => Err(HostError::Char(*b)),
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn reg_name(v: &[u8]) -> Result<(), HostError> {
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if b == b'%' {
            match v.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return Err(HostError::Percent),
            }
            continue;
        }
        if !(unreserved(b) || sub_delim(b)) {
            return Err(HostError::Char(b));
        }
        i += 1;
    }
    Ok(())
}

/// Inside the brackets: an IPv6 address (no zone identifier, as RFC 3986) or IPvFuture
/// (`v` HEXDIG+ `.` (unreserved / sub-delims / `:`)+).
fn ip_literal(v: &[u8]) -> Result<(), HostError> {
    if let [b'v' | b'V', rest @ ..] = v {
        let dot = rest
            .iter()
            .position(|&b| b == b'.')
            .ok_or(HostError::IpLiteral)?;
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        let ok = !ver.is_empty()
            && ver.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| unreserved(b) || sub_delim(b) || b == b':');
        return if ok {
            Ok(())
        } else {
            Err(HostError::IpLiteral)
        };
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
        .map(|_| ())
        .ok_or(HostError::IpLiteral)
}

/// An absolute-form target (`http://authority/path?query`, RFC 9112 §3.2.2), split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absolute {
    /// The authority: the request's host, in place of any Host header.
    pub authority: Range<usize>,
    /// Path and query, starting at `/` or `?` or empty (then the origin-form is `/`).
    pub origin: Range<usize>,
}

/// Why an absolute-form target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("only http and https targets are served")]
    Scheme,
    #[error("bad authority in the target: {0}")]
    Authority(HostError),
}

/// Splits an absolute-form `target` (already known not to start with `/`); ranges are
/// relative to `target`. `Ok(None)`: not absolute-form at all (no `scheme://`).
pub fn absolute(target: &[u8]) -> Result<Option<Absolute>, TargetError> {
    let Some(colon) = target.iter().position(|&b| b == b':') else {
        return Ok(None);
    };
    let (scheme, rest) = (&target[..colon], &target[colon..]);
    if !rest.starts_with(b"://") {
        return Ok(None);
    }
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return Err(TargetError::Scheme);
    }
    let start = colon + 3;
    let end = target[start..]
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .map_or(target.len(), |i| start + i);
    check(&target[start..end]).map_err(TargetError::Authority)?;
    Ok(Some(Absolute {
        authority: start..end,
        origin: end..target.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_hosts() {
        for h in [
            "example.com",
            "example.com:8080",
            "a",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8000",
            "[2001:db8::7]:1",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "under_score.example",
            "a%20b",
            "host:",
            "sub!$&'()*+,;=delims",
        ] {
            assert_eq!(check(h.as_bytes()), Ok(()), "{h}");
        }
    }

    #[test]
    fn invalid_hosts() {
        use HostError::*;
        for (h, e) in [
            ("", Empty),
            (":80", Empty),
            ("a b", Char(b' ')),
            ("x/path", Char(b'/')),
            ("u@x", Char(b'@')),
            ("u:p@x", Port),
            ("x:80:80", Port),
            ("x:8a", Port),
            ("x:-1", Port),
            ("a%2", Percent),
            ("a%zz", Percent),
            ("[::1", IpLiteral),
            ("[::g]", IpLiteral),
            ("[fe80::1%25en0]", IpLiteral),
            ("[v1.]", IpLiteral),
            ("[::1]x", Char(b'x')),
            ("a\tb", Char(b'\t')),
            ("caf\u{e9}", Char(0xc3)),
            ("x?y", Char(b'?')),
            ("x#y", Char(b'#')),
            ("a\"b", Char(b'"')),
        ] {
            assert_eq!(check(h.as_bytes()), Err(e), "{h:?}");
        }
    }

    fn split(t: &str) -> Result<Option<(String, String)>, TargetError> {
        Ok(absolute(t.as_bytes())?.map(|a| {
            (
                t[a.authority.clone()].to_string(),
                t[a.origin.clone()].to_string(),
            )
        }))
    }

    #[test]
    fn absolute_form() {
        let s = |a: &str, o: &str| Ok(Some((a.to_string(), o.to_string())));
        assert_eq!(split("http://a.example/x?y=1"), s("a.example", "/x?y=1"));
        assert_eq!(split("HTTPS://a.example:8443"), s("a.example:8443", ""));
        assert_eq!(split("http://a.example?q"), s("a.example", "?q"));
        assert_eq!(split("http://[::1]:80/"), s("[::1]:80", "/"));
        assert_eq!(split("a.example:443"), Ok(None), "authority-form");
        assert_eq!(split("*"), Ok(None));
        assert_eq!(split("ftp://a/"), Err(TargetError::Scheme));
        assert_eq!(
            split("http://u@a.example/"),
            Err(TargetError::Authority(HostError::Char(b'@')))
        );
        assert_eq!(
            split("http:///x"),
            Err(TargetError::Authority(HostError::Empty))
        );
    }
}
