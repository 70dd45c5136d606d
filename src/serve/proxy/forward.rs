//! Header rewriting in both directions: hop-by-hop stripping, X-Forwarded-*, X-Real-IP,
//! Host.

use crate::serve::fields::Fields;
use crate::serve::socket::Peer;
use actix_web::http::header::{self as ax, HeaderName, HeaderValue};
use bytes::BytesMut;
use ipnet::IpNet;
use std::fmt::Write as _;
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

/// Other claims about the client's connection (its scheme, its address) that only a proxy
/// may make: from an untrusted client they are dropped, from a trusted proxy passed on as
/// they came. gunicorn believes `X-Forwarded-Ssl: on` and `X-Forwarded-Protocol: ssl` from
/// 127.0.0.1 by default (`secure_scheme_headers`), so a client could otherwise pose as HTTPS
/// (or, contradicting staticd's `X-Forwarded-Proto`, have every request refused). Every other
/// `X-Forwarded-*` (`-Ssl`, `-Protocol`, `-Scheme`, `-Prefix`, `-Server`…) goes the same way.
const CLAIMS: &[&str] = &[
    "x-forwarded",
    "x-url-scheme",
    "x-scheme",
    "front-end-https",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
];

/// Whether an untrusted client may not send `name` (lower case) upstream.
fn is_claim(name: &str) -> bool {
    name.starts_with("x-forwarded-") || CLAIMS.contains(&name)
}

/// Names listed in `Connection` (lower-cased). `close` and `keep-alive` name no field that
/// is not dropped anyway, so the usual `Connection: close` allocates nothing here.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
        })
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether `name` (any case) is hop-by-hop.
pub fn is_hop(name: &str) -> bool {
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// `ip` as `Display` writes it; IPv4 without the formatting machinery (it was a tenth of
/// the time spent on a proxied request's headers, written twice per request).
fn push_ip(out: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (k, octet) in v4.octets().into_iter().enumerate() {
                if k > 0 {
                    out.extend_from_slice(b".");
                }
                let d = [
                    b'0' + octet / 100,
                    b'0' + octet / 10 % 10,
                    b'0' + octet % 10,
                ];
                let skip = if octet >= 100 {
                    0
                } else if octet >= 10 {
                    1
                } else {
                    2
                };
                out.extend_from_slice(&d[skip..]);
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// A `--trusted-proxy`: a network, or `unix:` for every peer on a Unix socket (nginx's
/// `set_real_ip_from unix:`; such a peer is a process on this host that may open the
/// socket file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trusted {
    Net(IpNet),
    Unix,
}

/// `true` when the peer may set X-Forwarded-* for us.
pub fn trusted(peer: Option<Peer>, list: &[Trusted]) -> bool {
    match peer {
        None => false,
        Some(Peer::Unix) => list.contains(&Trusted::Unix),
        Some(Peer::Ip(ip)) => {
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            list.iter()
                .any(|t| matches!(t, Trusted::Net(n) if n.contains(&ip)))
        }
    }
}

/// What the request looked like to us.
pub struct Inbound<'a> {
    pub headers: &'a dyn Fields,
    pub peer: Option<IpAddr>,
    pub trusted: bool,
    /// `--trusted-proxy` networks (which addresses of a trusted peer's chain are proxies).
    pub nets: &'a [Trusted],
    /// `--x-real-ip`: write X-Real-IP (a trusted peer's own passes either way).
    pub real_ip: bool,
    /// Host header, or the authority of an HTTP/2 request.
    pub host: Option<&'a str>,
    /// `https` for a request that came over TLS, else `http` (a trusted proxy's
    /// `X-Forwarded-Proto` wins over it).
    pub scheme: &'a str,
    /// Keep `Upgrade`/`Connection: upgrade` (WebSocket tunnel).
    pub upgrade: Option<&'a [u8]>,
}

/// Writes the upstream request's header lines (`name: value\r\n`) into `out`, straight
/// from the inbound map: this runs for every proxied request, so no map is built.
pub fn write_request_headers(i: &Inbound<'_>, out: &mut BytesMut) {
    let line = |out: &mut BytesMut, n: &[u8], v: &[u8]| {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    };
    let named = connection_tokens(i.headers.all("connection").into_iter());
    let mut cookies: Vec<&[u8]> = Vec::new();
    // Lower-cased names: on the stack when short (every common one), else in `long`.
    let mut short = [0u8; 64];
    let mut long = String::new();
    i.headers.each(&mut |name, value| {
        // actix's names are lower case already; a parsed head's are as sent.
        let n = if !name.bytes().any(|b| b.is_ascii_uppercase()) {
            name
        } else if let Some(buf) = short.get_mut(..name.len()) {
            buf.copy_from_slice(name.as_bytes());
            buf.make_ascii_lowercase();
            std::str::from_utf8(buf).unwrap_or(name)
        } else {
            long.clear();
            long.push_str(name);
            long.make_ascii_lowercase();
            long.as_str()
        };
        // nginx's `underscores_in_headers off`: `X_Forwarded_For` must not reach a WSGI
        // server that maps `_` and `-` to the same environ key.
        if n.contains('_')
            || is_hop(n)
            || named.iter().any(|t| t == n)
            || n == "content-length"
            || n == "expect"
            || n == "host"
            || FORWARDED.contains(&n)
            || (!i.trusted && is_claim(n))
        {
            return;
        }
        if n == "cookie" {
            // HTTP/2 splits cookies into several fields; HTTP/1.1 wants one line.
            cookies.push(value);
            return;
        }
        line(out, name.as_bytes(), value);
    });
    if !cookies.is_empty() {
        line(out, b"cookie", &cookies.join(&b"; "[..]));
    }
    if let Some(h) = i.host {
        line(out, b"host", h.as_bytes());
    }
    // Believed only from trusted peers: the chain so far, the original scheme and host; a
    // trusted peer's other forwarding headers (X-Real-IP, Forwarded…) pass unchanged.
    let prior = |n: &str| -> Option<Vec<u8>> {
        if !i.trusted {
            return None;
        }
        let vals = i.headers.all(n);
        (!vals.is_empty()).then(|| vals.join(&b", "[..]))
    };
    if i.trusted {
        for n in ["x-forwarded-port", "forwarded"] {
            for v in i.headers.all(n) {
                line(out, n.as_bytes(), v);
            }
        }
    }
    match i.headers.all("x-real-ip").first().filter(|_| i.trusted) {
        Some(v) => line(out, b"x-real-ip", v),
        None if i.real_ip => {
            if let Some(ip) = real_ip(i) {
                out.extend_from_slice(b"x-real-ip: ");
                push_ip(out, ip);
                out.extend_from_slice(b"\r\n");
            }
        }
        None => {}
    }
    let chain = prior("x-forwarded-for");
    if chain.is_some() || i.peer.is_some() {
        out.extend_from_slice(b"x-forwarded-for: ");
        if let Some(chain) = &chain {
            out.extend_from_slice(chain);
        }
        if let Some(p) = i.peer {
            if chain.is_some() {
                out.extend_from_slice(b", ");
            }
            push_ip(out, p);
        }
        out.extend_from_slice(b"\r\n");
    }
    let proto = prior("x-forwarded-proto");
    line(
        out,
        b"x-forwarded-proto",
        proto.as_deref().unwrap_or(i.scheme.as_bytes()),
    );
    // Only a trusted peer's: staticd's own would repeat Host, which reaches the upstream
    // unchanged (Django's USE_X_FORWARDED_HOST falls back to it).
    if let Some(h) = prior("x-forwarded-host") {
        line(out, b"x-forwarded-host", &h);
    }
    if let Some(up) = i.upgrade {
        line(out, b"upgrade", up);
        line(out, b"connection", b"upgrade");
    }
}

/// The client's address for `X-Real-IP` (nginx's `proxy_set_header X-Real-IP
/// $remote_addr` behind `set_real_ip_from` with `real_ip_recursive on`): the peer, unless
/// the peer is a trusted proxy, in which case its X-Forwarded-For chain is read from the
/// right and the first address that is not a trusted proxy is the client (the leftmost one
/// when all are). A trusted peer's own X-Real-IP is passed on as it is (above).
fn real_ip(i: &Inbound<'_>) -> Option<IpAddr> {
    let peer = i.peer?;
    if !i.trusted {
        return Some(peer);
    }
    let values = i.headers.all("x-forwarded-for");
    let chain: Vec<IpAddr> = values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .filter_map(|a| std::str::from_utf8(a).ok()?.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|a| !trusted(Some(Peer::ip(**a)), i.nets))
        .or(chain.first())
        .copied()
        .or(Some(peer))
}

/// Response headers to pass to the client: everything but hop-by-hop, names listed in
/// `Connection`, framing (actix frames the body itself) and nginx's `X-Accel-*` controls.
/// Repeated headers (`Set-Cookie`) stay separate lines.
///
/// `Date` and `Server` are dropped too, as nginx's default `proxy_hide_header` does: the
/// writer adds staticd's own `Date` (exactly one per response, RFC 9110 §6.6.1), and
/// staticd sends no `Server` on any response, proxied or not.
pub fn response_headers(
    h: Vec<(HeaderName, HeaderValue)>,
    keep_upgrade: bool,
) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
    let named = connection_tokens(
        h.iter()
            .filter(|(n, _)| n == ax::CONNECTION)
            .map(|(_, v)| v.as_bytes()),
    );
    h.into_iter().filter(move |(name, _)| {
        let n = name.as_str();
        let dropped = dropped_response_field(n) || named.iter().any(|t| t == n);
        !dropped || keep_upgrade && n == "upgrade"
    })
}

/// Whether a response field (by its lower-case name, as `HeaderName` holds it) is never
/// passed on: hop-by-hop ([`HOP`]), framing, `Date`, `Server` and nginx's `X-Accel-*`. One
/// `match` (by length, then bytes) per field, where [`is_hop`] compares each name, in any
/// case, with every entry.
fn dropped_response_field(n: &str) -> bool {
    match n {
        "connection"
        | "proxy-connection"
        | "keep-alive"
        | "proxy-authenticate"
        | "proxy-authorization"
        | "te"
        | "trailer"
        | "transfer-encoding"
        | "upgrade"
        | "content-length"
        | "date"
        | "server" => true,
        _ => n.starts_with("x-accel-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    /// The written header lines as (name, value) pairs.
    fn written(i: &Inbound<'_>) -> Vec<(String, String)> {
        let mut out = BytesMut::new();
        write_request_headers(i, &mut out);
        String::from_utf8(out.to_vec())
            .unwrap()
            .split_terminator("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect()
    }

    fn get<'a>(h: &'a [(String, String)], n: &str) -> Option<&'a str> {
        let mut it = h.iter().filter(|(k, _)| k == n);
        let v = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "{n} written twice");
        v
    }

    /// A request with `headers` from the untrusted client 10.0.0.1, for example.com.
    fn from_client(headers: &HeaderMap) -> Inbound<'_> {
        Inbound {
            headers,
            peer: Some("10.0.0.1".parse().unwrap()),
            trusted: false,
            nets: &[],
            real_ip: false,
            host: Some("example.com"),
            scheme: "http",
            upgrade: None,
        }
    }
    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                ax::HeaderName::from_static(n),
                ax::HeaderValue::from_static(v),
            );
        }
        m
    }

    /// The response filter's list holds every hop-by-hop name (the request side's).
    #[test]
    fn every_hop_by_hop_field_is_dropped_from_responses() {
        for n in HOP {
            assert!(dropped_response_field(n), "{n}");
        }
        for n in [
            "content-length",
            "date",
            "server",
            "x-accel-redirect",
            "x-accel-x",
        ] {
            assert!(dropped_response_field(n), "{n}");
        }
        for n in [
            "content-type",
            "x-frame-options",
            "set-cookie",
            "vary",
            "x-accel",
        ] {
            assert!(!dropped_response_field(n), "{n}");
        }
    }

    #[test]
    fn untrusted_forwarded_replaced() {
        let h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("x-real-ip", "6.6.6.6"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ]);
        let i = from_client(&h);
        let out = written(&i);
        assert_eq!(get(&out, "x-forwarded-for").unwrap(), "10.0.0.1");
        assert_eq!(get(&out, "x-forwarded-proto").unwrap(), "http");
        // Host reaches the upstream as the client sent it, so no X-Forwarded-Host repeats
        // it; a client's own is dropped, as is its X-Real-IP (none is set by default).
        assert_eq!(get(&out, "x-forwarded-host"), None);
        assert_eq!(get(&out, "x-real-ip"), None);
        assert_eq!(get(&out, "host").unwrap(), "example.com");
        assert_eq!(get(&out, "cookie").unwrap(), "a=1; b=2");
        assert!(
            get(&out, "x-secret").is_none()
                && get(&out, "te").is_none()
                && get(&out, "connection").is_none()
        );
    }

    #[test]
    fn claims_about_the_connection_are_believed_only_from_trusted_proxies() {
        let claims = [
            ("x-forwarded-ssl", "on"),
            ("x-forwarded-protocol", "ssl"),
            ("x-forwarded-scheme", "https"),
            ("x-forwarded-prefix", "/admin"),
            ("x-url-scheme", "https"),
            ("front-end-https", "on"),
            ("true-client-ip", "6.6.6.6"),
            ("x-cluster-client-ip", "6.6.6.6"),
        ];
        let mut pairs = claims.to_vec();
        pairs.push(("x-forwardedness", "kept"));
        let h = map(&pairs);
        let mut i = from_client(&h);
        let out = written(&i);
        for (n, _) in claims {
            assert_eq!(get(&out, n), None, "{n}");
        }
        assert_eq!(get(&out, "x-forwardedness"), Some("kept"));
        assert_eq!(get(&out, "x-forwarded-proto"), Some("http"));
        i.trusted = true;
        let out = written(&i);
        for (n, v) in claims {
            assert_eq!(get(&out, n), Some(v), "{n}");
        }
    }

    #[test]
    fn response_headers_hidden() {
        let pairs = [
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("server", "gunicorn"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("content-length", "5"),
            ("transfer-encoding", "chunked"),
            ("x-accel-buffering", "no"),
            ("etag", "\"v\""),
        ];
        let h: Vec<_> = pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect();
        let kept: Vec<_> = response_headers(h, false)
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();
        let kept: Vec<_> = kept.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            kept,
            [
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("etag", "\"v\"")
            ]
        );
    }

    #[test]
    fn underscored_names_dropped() {
        let h = map(&[("x_forwarded_for", "6.6.6.6"), ("x-kept", "1")]);
        let i = Inbound {
            headers: &h,
            peer: None,
            trusted: true,
            nets: &[],
            real_ip: false,
            host: Some("h"),
            scheme: "http",
            upgrade: None,
        };
        let out = written(&i);
        assert!(out.iter().all(|(n, _)| !n.contains('_')), "{out:?}");
        assert_eq!(get(&out, "x-kept"), Some("1"));
    }

    #[test]
    fn the_scheme_is_the_connections_unless_a_trusted_proxy_says_otherwise() {
        let h = map(&[("x-forwarded-proto", "http")]);
        let over_tls = |trusted| Inbound {
            headers: &h,
            peer: Some("10.0.0.1".parse().unwrap()),
            trusted,
            nets: &[],
            real_ip: false,
            host: Some("h"),
            scheme: "https",
            upgrade: None,
        };
        // A client's own claim is replaced by what staticd saw: TLS.
        let out = written(&over_tls(false));
        assert_eq!(get(&out, "x-forwarded-proto"), Some("https"));
        // A trusted proxy saw the client's connection; its word is kept.
        let out = written(&over_tls(true));
        assert_eq!(get(&out, "x-forwarded-proto"), Some("http"));
    }

    #[test]
    fn trusted_chain_appended() {
        let h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "original.example"),
        ]);
        let nets = [Trusted::Net("10.0.0.0/8".parse().unwrap())];
        let peer = Some("10.0.0.1".parse().unwrap());
        assert!(trusted(peer.map(Peer::Ip), &nets));
        assert!(trusted(
            Some(Peer::ip("::ffff:10.1.2.3".parse().unwrap())),
            &nets
        ));
        assert!(!trusted(Some(Peer::ip("11.0.0.1".parse().unwrap())), &nets));
        assert!(!trusted(Some(Peer::Unix), &nets) && !trusted(None, &nets));
        assert!(trusted(Some(Peer::Unix), &[Trusted::Unix]));
        let i = Inbound {
            headers: &h,
            peer,
            trusted: true,
            nets: &nets,
            real_ip: false,
            host: Some("h"),
            scheme: "http",
            upgrade: None,
        };
        let out = written(&i);
        assert_eq!(get(&out, "x-forwarded-for").unwrap(), "1.2.3.4, 10.0.0.1");
        assert_eq!(get(&out, "x-forwarded-proto").unwrap(), "https");
        assert_eq!(get(&out, "x-forwarded-host").unwrap(), "original.example");
        assert_eq!(get(&out, "host").unwrap(), "h");
    }

    #[test]
    fn ip_written_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.9.255",
            "1.22.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = BytesMut::new();
            push_ip(&mut out, ip);
            assert_eq!(&out[..], ip.to_string().as_bytes());
        }
        for o in 0..=255u8 {
            let ip = IpAddr::from([o, 255 - o, o / 3, o]);
            let mut out = BytesMut::new();
            push_ip(&mut out, ip);
            assert_eq!(&out[..], ip.to_string().as_bytes());
        }
    }

    #[test]
    fn real_ip_from_the_peer_or_the_trusted_chain() {
        let nets = vec![Trusted::Net("10.0.0.0/8".parse().unwrap())];
        let inbound = |h: &'static HeaderMap, peer: &str| {
            let peer: Option<IpAddr> = Some(peer.parse().unwrap());
            Inbound {
                headers: h,
                peer,
                trusted: trusted(peer.map(Peer::ip), &nets),
                nets: &nets,
                real_ip: true,
                host: Some("h"),
                scheme: "http",
                upgrade: None,
            }
        };
        let leak = |m: HeaderMap| -> &'static HeaderMap { Box::leak(Box::new(m)) };
        // An untrusted client's own X-Real-IP is replaced by its address.
        let h = leak(map(&[
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
        ]));
        assert_eq!(
            get(&written(&inbound(h, "203.0.113.9")), "x-real-ip"),
            Some("203.0.113.9")
        );
        // Behind trusted proxies: the rightmost address that is not one of them.
        let h = leak(map(&[(
            "x-forwarded-for",
            "6.6.6.6, 198.51.100.7, 10.1.1.1",
        )]));
        assert_eq!(
            get(&written(&inbound(h, "10.0.0.2")), "x-real-ip"),
            Some("198.51.100.7")
        );
        let h = leak(map(&[
            ("x-forwarded-for", "10.2.2.2"),
            ("x-forwarded-for", "10.1.1.1"),
        ]));
        assert_eq!(
            get(&written(&inbound(h, "10.0.0.2")), "x-real-ip"),
            Some("10.2.2.2")
        );
        // A trusted peer's X-Real-IP is passed on.
        let h = leak(map(&[("x-real-ip", "192.0.2.1")]));
        assert_eq!(
            get(&written(&inbound(h, "10.0.0.2")), "x-real-ip"),
            Some("192.0.2.1")
        );
        // A trusted peer that says nothing: itself.
        let h = leak(map(&[]));
        assert_eq!(
            get(&written(&inbound(h, "10.0.0.2")), "x-real-ip"),
            Some("10.0.0.2")
        );
    }
}
