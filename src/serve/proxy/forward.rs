//! Header rewriting in both directions: hop-by-hop stripping, X-Forwarded-*, Host.

use actix_web::http::header::HeaderMap as AxMap;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use std::net::IpAddr;

/// Hop-by-hop headers (RFC 9110 §7.6.1 plus Caddy's list).
const HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Inbound forwarding headers, only believed from a trusted proxy.
const FORWARDED: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
];

/// Names listed in `Connection` (lower-cased).
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

pub fn is_hop(name: &str) -> bool {
    HOP.contains(&name)
}

/// `true` when the peer may set X-Forwarded-* for us.
pub fn trusted(peer: Option<IpAddr>, nets: &[IpNet]) -> bool {
    peer.is_some_and(|ip| {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        nets.iter().any(|n| n.contains(&ip))
    })
}

/// Parses `--trusted-proxy` values: a CIDR or a bare address.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or CIDR"))
}

/// What the request looked like to us.
pub struct Inbound<'a> {
    pub headers: &'a AxMap,
    pub peer: Option<IpAddr>,
    pub trusted: bool,
    /// Host header, or the authority of an HTTP/2 request.
    pub host: Option<&'a str>,
    /// `http` (staticd itself does not terminate TLS).
    pub scheme: &'a str,
    /// Keep `Upgrade`/`Connection: upgrade` (WebSocket tunnel).
    pub upgrade: Option<&'a [u8]>,
}

/// Headers for the upstream request.
pub fn request_headers(i: &Inbound<'_>) -> HeaderMap {
    let named = connection_tokens(i.headers.get_all("connection").map(|v| v.as_bytes()));
    let mut out = HeaderMap::with_capacity(i.headers.len() + 4);
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (name, value) in i.headers.iter() {
        let n = name.as_str();
        if is_hop(n)
            || named.iter().any(|t| t == n)
            || n == "content-length"
            || n == "expect"
            || n == "host"
            || (!i.trusted && FORWARDED.contains(&n))
            || (i.trusted
                && (n == "x-forwarded-for" || n == "x-forwarded-proto" || n == "x-forwarded-host"))
        {
            continue;
        }
        if n == "cookie" {
            // HTTP/2 splits cookies into several fields; HTTP/1.1 wants one line.
            cookies.push(value.as_bytes());
            continue;
        }
        if let (Ok(hn), Ok(hv)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(hn, hv);
        }
    }
    if !cookies.is_empty() {
        if let Ok(v) = HeaderValue::from_bytes(&cookies.join(&b"; "[..])) {
            out.insert(http::header::COOKIE, v);
        }
    }
    if let Some(h) = i.host.and_then(|h| HeaderValue::from_str(h).ok()) {
        out.insert(http::header::HOST, h);
    }
    // Believed only from trusted peers: the chain so far, the original scheme and host.
    let prior = |n: &str| -> Option<String> {
        if !i.trusted {
            return None;
        }
        let vals: Vec<&str> = i
            .headers
            .get_all(n)
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!vals.is_empty()).then(|| vals.join(", "))
    };
    let peer = i.peer.map(|p| p.to_string());
    let xff = match (prior("x-forwarded-for"), peer) {
        (Some(chain), Some(p)) => Some(format!("{chain}, {p}")),
        (Some(chain), None) => Some(chain),
        (None, p) => p,
    };
    if let Some(v) = xff.and_then(|v| HeaderValue::from_str(&v).ok()) {
        out.insert("x-forwarded-for", v);
    }
    let proto = prior("x-forwarded-proto").unwrap_or_else(|| i.scheme.to_string());
    if let Ok(v) = HeaderValue::from_str(&proto) {
        out.insert("x-forwarded-proto", v);
    }
    let fhost = prior("x-forwarded-host").or_else(|| i.host.map(str::to_string));
    if let Some(v) = fhost.and_then(|v| HeaderValue::from_str(&v).ok()) {
        out.insert("x-forwarded-host", v);
    }
    if let Some(up) = i.upgrade.and_then(|u| HeaderValue::from_bytes(u).ok()) {
        out.insert(http::header::UPGRADE, up);
        out.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
    out
}

/// Response headers to pass to the client: everything but hop-by-hop, names listed in
/// `Connection`, framing (actix frames the body itself) and nginx's `X-Accel-*` controls.
/// Repeated headers (`Set-Cookie`) stay separate lines.
pub fn response_headers(
    h: &HeaderMap,
    keep_upgrade: bool,
) -> Vec<(
    actix_web::http::header::HeaderName,
    actix_web::http::header::HeaderValue,
)> {
    use actix_web::http::header as ax;
    let named = connection_tokens(
        h.get_all(http::header::CONNECTION)
            .iter()
            .map(|v| v.as_bytes()),
    );
    let mut out = Vec::with_capacity(h.len());
    for (name, value) in h.iter() {
        let n = name.as_str();
        if (is_hop(n) && !(keep_upgrade && n == "upgrade"))
            || named
                .iter()
                .any(|t| t == n && !(keep_upgrade && t == "upgrade"))
            || n == "content-length"
            || n.starts_with("x-accel-")
        {
            continue;
        }
        if let (Ok(hn), Ok(hv)) = (
            ax::HeaderName::from_bytes(n.as_bytes()),
            ax::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.push((hn, hv));
        }
    }
    out
}

/// The `Upgrade` value when this is an HTTP/1.1 upgrade request (`Connection: upgrade`).
pub fn upgrade_of(h: &AxMap) -> Option<&[u8]> {
    let tokens = connection_tokens(h.get_all("connection").map(|v| v.as_bytes()));
    if !tokens.iter().any(|t| t == "upgrade") {
        return None;
    }
    h.get("upgrade").map(|v| v.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header as ax;

    fn map(pairs: &[(&'static str, &'static str)]) -> AxMap {
        let mut m = AxMap::new();
        for (n, v) in pairs {
            m.append(
                ax::HeaderName::from_static(n),
                ax::HeaderValue::from_static(v),
            );
        }
        m
    }

    #[test]
    fn untrusted_forwarded_replaced() {
        let h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        let i = Inbound {
            headers: &h,
            peer: Some("10.0.0.1".parse().unwrap()),
            trusted: false,
            host: Some("example.com"),
            scheme: "http",
            upgrade: None,
        };
        let out = request_headers(&i);
        assert_eq!(out["x-forwarded-for"], "10.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-forwarded-host"], "example.com");
        assert_eq!(out["host"], "example.com");
        assert_eq!(out["cookie"], "a=1; b=2");
        assert!(
            out.get("x-secret").is_none()
                && out.get("te").is_none()
                && out.get("connection").is_none()
        );
    }

    #[test]
    fn trusted_chain_appended() {
        let h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let nets = vec![parse_net("10.0.0.0/8").unwrap()];
        let peer = Some("10.0.0.1".parse().unwrap());
        assert!(trusted(peer, &nets));
        let i = Inbound {
            headers: &h,
            peer,
            trusted: true,
            host: Some("h"),
            scheme: "http",
            upgrade: None,
        };
        let out = request_headers(&i);
        assert_eq!(out["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "https");
    }
}
