//! What a listener does differently once HTTPS is on ([`Front`]), for both front ends (the
//! HTTP/1 loop and actix's HTTP/2):
//!
//! - on the **plain listener** (`--bind`): ACME HTTP-01 challenges are answered from
//!   [`Http01Tokens`] before anything else, and every other request gets a `308 Permanent
//!   Redirect` to the same path and query over `https` (unless `--no-redirect-http`). 308
//!   rather than 301: the method and body are kept (RFC 9110 §15.4.9), so a form posted to
//!   `http://` is posted again to `https://`, not turned into a GET;
//! - on the **TLS listener** (`--https-bind`): requests are `https` (`X-Forwarded-Proto`
//!   to the upstream), and `--hsts` adds `Strict-Transport-Security` to every response
//!   that has none (an upstream's own, such as Django's `SECURE_HSTS_SECONDS`, is kept).
//!   Never on plain HTTP: RFC 6797 §7.2 forbids it there, and browsers ignore it.

use super::message::{page, Reply};
use crate::tls::Http01Tokens;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use bytes::Bytes;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

/// How one listener treats requests. The default is plain HTTP with HTTPS off.
#[derive(Debug, Clone, Default)]
pub struct Front {
    /// A TLS listener: its requests are `https`.
    pub secure: bool,
    /// `Strict-Transport-Security` for its responses (TLS listener, `--hsts`).
    pub hsts: Option<HeaderValue>,
    /// ACME HTTP-01 answers (plain listener, ACME on).
    pub http01: Option<Arc<Http01Tokens>>,
    /// Redirect to HTTPS on this port (plain listener, HTTPS on).
    pub redirect_port: Option<u16>,
}

/// What a request is, as far as [`Front::early`] needs to know.
pub struct Asked<'a> {
    /// The path, still percent-encoded.
    pub path: &'a str,
    /// Path and query in origin form (starting with `/`).
    pub target: &'a str,
    /// Host (or an absolute-form authority, or HTTP/2's `:authority`).
    pub host: Option<&'a str>,
    /// The address the client reached, for a request without a host (HTTP/1.0).
    pub local: Option<SocketAddr>,
}

impl Front {
    /// The scheme of this listener's requests.
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    /// Whether [`Front::early`] can answer anything (a check that costs nothing, before
    /// the request is looked at).
    pub fn answers_early(&self) -> bool {
        self.http01.is_some() || self.redirect_port.is_some()
    }

    /// The answer given before routing, if any: an ACME challenge's, or the redirect.
    pub fn early(&self, asked: &Asked<'_>) -> Option<Reply<'static>> {
        if let Some(tokens) = &self.http01 {
            if Http01Tokens::is_challenge_path(asked.path) {
                // A path under the prefix that is no pending token: 404, not a redirect
                // (see `Http01Tokens::is_challenge_path`).
                return Some(match tokens.answer(asked.path) {
                    Some(key_authorization) => challenge_answer(key_authorization),
                    None => Reply::not_found(),
                });
            }
        }
        let port = self.redirect_port?;
        Some(
            match redirect_location(asked.host, asked.local, port, asked.target) {
                Some(location) => redirect(location),
                None => page(StatusCode::BAD_REQUEST, "Bad Request"),
            },
        )
    }

    /// Adds `Strict-Transport-Security` unless the response carries one.
    pub fn add_hsts(&self, headers: &mut Vec<(HeaderName, Cow<'_, HeaderValue>)>) {
        if let Some(v) = &self.hsts {
            if !headers
                .iter()
                .any(|(n, _)| n == header::STRICT_TRANSPORT_SECURITY)
            {
                headers.push((header::STRICT_TRANSPORT_SECURITY, Cow::Owned(v.clone())));
            }
        }
    }
}

/// RFC 8555 §8.3: `200` with the key authorization as `application/octet-stream`.
fn challenge_answer(key_authorization: String) -> Reply<'static> {
    let mut r = Reply::new(StatusCode::OK);
    r.headers.push((
        header::CONTENT_TYPE,
        Cow::Owned(HeaderValue::from_static("application/octet-stream")),
    ));
    r.headers.push((
        header::CACHE_CONTROL,
        Cow::Owned(HeaderValue::from_static("no-store")),
    ));
    r.body = super::message::Body::Mem(Bytes::from(key_authorization));
    r
}

fn redirect(location: HeaderValue) -> Reply<'static> {
    let mut r = page(StatusCode::PERMANENT_REDIRECT, "Permanent Redirect");
    r.headers.push((header::LOCATION, Cow::Owned(location)));
    r
}

/// `https://HOST[:PORT]TARGET`: the host the client asked for without its port (or the
/// address it reached, when it named none), the HTTPS port unless it is 443, then the path
/// and query as sent. `None` when that makes no valid header value.
pub fn redirect_location(
    host: Option<&str>,
    local: Option<SocketAddr>,
    port: u16,
    target: &str,
) -> Option<HeaderValue> {
    let name = match host {
        Some(h) => strip_port(h).to_string(),
        None => match local?.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
    };
    if name.is_empty() || !target.starts_with('/') {
        return None;
    }
    let url = if port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{port}{target}")
    };
    HeaderValue::from_str(&url).ok()
}

/// `host[:port]` → `host` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Why an `--hsts` setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HstsError {
    #[error(
        "--hsts-preload needs --hsts-include-subdomains and --hsts of at least 31536000 \
         (one year): the browsers' preload list refuses anything less"
    )]
    PreloadTooWeak,
}

/// The `Strict-Transport-Security` value (RFC 6797 §6.1).
pub fn hsts_value(
    max_age: u64,
    include_subdomains: bool,
    preload: bool,
) -> Result<HeaderValue, HstsError> {
    if preload && !(include_subdomains && max_age >= 31_536_000) {
        return Err(HstsError::PreloadTooWeak);
    }
    let mut v = format!("max-age={max_age}");
    if include_subdomains {
        v.push_str("; includeSubDomains");
    }
    if preload {
        v.push_str("; preload");
    }
    Ok(HeaderValue::from_str(&v).expect("ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(host: Option<&str>, port: u16, target: &str) -> Option<String> {
        let local = Some("10.0.0.7:80".parse().unwrap());
        redirect_location(host, local, port, target).map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn the_redirect_keeps_path_and_query_and_names_the_https_port() {
        assert_eq!(
            loc(Some("example.com:80"), 443, "/a/b?x=1&y=%20").unwrap(),
            "https://example.com/a/b?x=1&y=%20"
        );
        assert_eq!(
            loc(Some("example.com"), 8443, "/").unwrap(),
            "https://example.com:8443/"
        );
        assert_eq!(
            loc(Some("[::1]:8080"), 8443, "/p").unwrap(),
            "https://[::1]:8443/p"
        );
        assert_eq!(loc(Some("[::1]"), 443, "/").unwrap(), "https://[::1]/");
        // No host (HTTP/1.0): the address the client reached.
        assert_eq!(loc(None, 443, "/x").unwrap(), "https://10.0.0.7/x");
        let v6 = redirect_location(None, Some("[::2]:80".parse().unwrap()), 443, "/");
        assert_eq!(v6.unwrap(), "https://[::2]/");
        // Not origin form: nothing to redirect to.
        assert_eq!(loc(Some("h"), 443, "*"), None);
    }

    #[test]
    fn early_answers_challenges_before_redirecting() {
        let tokens = Http01Tokens::new();
        let front = Front {
            http01: Some(tokens),
            redirect_port: Some(443),
            ..Front::default()
        };
        let asked = |path: &'static str| Asked {
            path,
            target: path,
            host: Some("example.com"),
            local: None,
        };
        // Under the challenge prefix, no token pending: 404, never a redirect.
        let r = front
            .early(&asked("/.well-known/acme-challenge/abc"))
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = front.early(&asked("/static/x.css")).unwrap();
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
        let location = r.headers.iter().find(|(n, _)| n == header::LOCATION);
        assert_eq!(
            location.unwrap().1.as_ref(),
            "https://example.com/static/x.css"
        );
        // HTTPS off: nothing early.
        assert!(Front::default().early(&asked("/x")).is_none());
    }

    #[test]
    fn hsts_is_added_once_and_an_upstreams_own_is_kept() {
        let front = Front {
            secure: true,
            hsts: Some(hsts_value(300, false, false).unwrap()),
            ..Front::default()
        };
        let mut h = Vec::new();
        front.add_hsts(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].1.as_ref(), "max-age=300");
        let mut theirs = vec![(
            header::STRICT_TRANSPORT_SECURITY,
            Cow::Owned(HeaderValue::from_static("max-age=1")),
        )];
        front.add_hsts(&mut theirs);
        assert_eq!(theirs.len(), 1);
        assert_eq!(theirs[0].1.as_ref(), "max-age=1");
    }

    #[test]
    fn hsts_values_and_the_preload_rules() {
        assert_eq!(
            hsts_value(63_072_000, true, true).unwrap(),
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(
            hsts_value(600, true, false).unwrap(),
            "max-age=600; includeSubDomains"
        );
        assert_eq!(
            hsts_value(31_536_000, false, true),
            Err(HstsError::PreloadTooWeak)
        );
        assert_eq!(
            hsts_value(86_400, true, true),
            Err(HstsError::PreloadTooWeak)
        );
    }
}
