//! Response header rules by route kind (`--header`, `--remove-header`): what nginx's
//! `add_header` and `proxy_hide_header` do, or Caddy's `header`, for the security headers a
//! deployment adds (Strict-Transport-Security, Content-Security-Policy, …).
//!
//! Decisions:
//! - A rule applies to every answer of its route kind whatever the status (nginx's
//!   `add_header … always`), so HSTS and CSP also cover 404 and 5xx pages; only 1xx
//!   (a `101 Switching Protocols` that starts a tunnel) is left alone. nginx without
//!   `always` skips anything but 200/201/204/206/301/302/303/304/307/308, a known trap for
//!   HSTS.
//! - Removals run first, on the answer as built (the upstream's fields, staticd's own);
//!   then each set rule replaces the field, or with `?Name` adds it only when absent (an
//!   upstream view that sets its own CSP keeps it).
//! - `X-Content-Type-Options: nosniff` is set by default on static and media answers;
//!   `--remove-header static:X-Content-Type-Options` turns that default off.
//! - Fields that frame or route the message (Content-Length, Transfer-Encoding,
//!   Connection, …, Date) are refused: a rule must not change how the body is read.
//!
//! The same [`HeaderRules::apply`] runs on HTTP/1 answers ([`Headers`]) and HTTP/2 ones
//! (actix's `HeaderMap`).

use super::message::Headers;
use super::metrics::RouteKind;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use std::borrow::Cow;

/// A rule from the command line (or, later, the config file's `[headers]`), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub kinds: Vec<RouteKind>,
    pub name: HeaderName,
    /// `None` for a removal.
    pub value: Option<HeaderValue>,
    /// `?Name`: set only when the answer has no such field.
    pub if_absent: bool,
}

/// A rule that cannot be used; each carries the rule as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{0:?}: expected ROUTE:Name: value (ROUTE: static, media, proxy, internal, all; several joined with `,`)")]
    Shape(String),
    #[error("{0:?}: unknown route kind {1:?} (static, media, proxy, internal, all)")]
    Route(String, String),
    #[error("{0:?}: {1:?} is not a header field name")]
    Name(String, String),
    #[error("{0:?}: the value is not a valid header field value (visible ASCII)")]
    Value(String),
    #[error("{0:?}: {1} frames or routes the message and cannot be set or removed")]
    Reserved(String, String),
    #[error("{0:?}: `?` (set when absent) means nothing for a removal")]
    IfAbsentRemoval(String),
}

/// Fields a rule may not touch: the writers frame the message with them.
const RESERVED: &[&str] = &[
    "connection",
    "content-length",
    "date",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn kinds(rule: &str, spec: &str) -> Result<Vec<RouteKind>, RuleError> {
    let mut out = Vec::new();
    for k in spec.split(',').map(str::trim) {
        match k.to_ascii_lowercase().as_str() {
            "static" => out.push(RouteKind::Static),
            "media" => out.push(RouteKind::Media),
            "proxy" => out.push(RouteKind::Proxy),
            "internal" => out.push(RouteKind::Internal),
            "all" | "*" => out.extend(RouteKind::ALL),
            _ => return Err(RuleError::Route(rule.into(), k.into())),
        }
    }
    out.dedup();
    Ok(out)
}

fn name(rule: &str, n: &str) -> Result<(HeaderName, bool), RuleError> {
    let (n, if_absent) = match n.trim().strip_prefix('?') {
        Some(rest) => (rest.trim(), true),
        None => (n.trim(), false),
    };
    let name = HeaderName::try_from(n).map_err(|_| RuleError::Name(rule.into(), n.to_string()))?;
    if RESERVED.contains(&name.as_str()) {
        return Err(RuleError::Reserved(rule.into(), n.to_string()));
    }
    Ok((name, if_absent))
}

/// `--header ROUTE:Name: value` (`ROUTE:?Name: value` sets it only when absent).
pub fn parse_set(s: &str) -> Result<Rule, RuleError> {
    let (spec, field) = s
        .split_once(':')
        .ok_or_else(|| RuleError::Shape(s.into()))?;
    let (n, v) = field
        .split_once(':')
        .ok_or_else(|| RuleError::Shape(s.into()))?;
    let (name, if_absent) = name(s, n)?;
    let value = HeaderValue::from_str(v.trim()).map_err(|_| RuleError::Value(s.into()))?;
    Ok(Rule {
        kinds: kinds(s, spec)?,
        name,
        value: Some(value),
        if_absent,
    })
}

/// `--remove-header ROUTE:Name`.
pub fn parse_remove(s: &str) -> Result<Rule, RuleError> {
    let (spec, n) = s
        .split_once(':')
        .ok_or_else(|| RuleError::Shape(s.into()))?;
    let (name, if_absent) = name(s, n)?;
    if if_absent {
        return Err(RuleError::IfAbsentRemoval(s.into()));
    }
    Ok(Rule {
        kinds: kinds(s, spec)?,
        name,
        value: None,
        if_absent: false,
    })
}

/// One route kind's rules.
#[derive(Debug, Default, Clone)]
struct KindRules {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue, bool)>,
}

/// Every rule, by route kind; built once, swapped whole on a configuration reload.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    by_kind: [KindRules; RouteKind::ALL.len()],
}

/// A field list a rule can change: HTTP/1's [`Headers`] or actix's `HeaderMap` (HTTP/2).
pub trait Fields {
    fn has(&self, name: &HeaderName) -> bool;
    fn remove(&mut self, name: &HeaderName);
    /// Replaces every field `name` with one of `value`.
    fn set(&mut self, name: &HeaderName, value: &HeaderValue);
}

impl Fields for Headers<'_> {
    fn has(&self, name: &HeaderName) -> bool {
        self.iter().any(|(n, _)| n == name)
    }
    fn remove(&mut self, name: &HeaderName) {
        self.retain(|(n, _)| n != name);
    }
    fn set(&mut self, name: &HeaderName, value: &HeaderValue) {
        Fields::remove(self, name);
        // A clone of a HeaderValue shares its bytes: no allocation.
        self.push((name.clone(), Cow::Owned(value.clone())));
    }
}

impl Fields for HeaderMap {
    fn has(&self, name: &HeaderName) -> bool {
        self.contains_key(name)
    }
    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
    fn set(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.insert(name.clone(), value.clone());
    }
}

impl Default for HeaderRules {
    /// The defaults alone.
    fn default() -> Self {
        HeaderRules::new(&[])
    }
}

impl HeaderRules {
    /// The defaults, then `rules` in order: a set rule replaces an earlier one for the same
    /// name and kind; a removal drops earlier set rules for its name and kind (the defaults
    /// included) and strips the field from answers.
    pub fn new(rules: &[Rule]) -> HeaderRules {
        let defaults = [Rule {
            kinds: vec![RouteKind::Static, RouteKind::Media],
            name: actix_web::http::header::X_CONTENT_TYPE_OPTIONS,
            value: Some(HeaderValue::from_static("nosniff")),
            if_absent: false,
        }];
        let mut by_kind: [KindRules; RouteKind::ALL.len()] = Default::default();
        for kind in RouteKind::ALL {
            let of_kind = |r: &&Rule| r.kinds.contains(&kind);
            let kr = &mut by_kind[kind as usize];
            for r in rules.iter().filter(of_kind).filter(|r| r.value.is_none()) {
                if !kr.remove.contains(&r.name) {
                    kr.remove.push(r.name.clone());
                }
            }
            let removed = kr.remove.clone();
            let defaults = defaults
                .iter()
                .filter(of_kind)
                .filter(|r| !removed.contains(&r.name));
            for r in defaults.chain(rules.iter().filter(of_kind)) {
                if let Some(value) = &r.value {
                    kr.set.retain(|(n, _, _)| *n != r.name);
                    kr.set.push((r.name.clone(), value.clone(), r.if_absent));
                }
            }
        }
        HeaderRules { by_kind }
    }

    /// Applies the rules of `kind` to an answer with `status`.
    pub fn apply(&self, kind: RouteKind, status: StatusCode, fields: &mut impl Fields) {
        let rules = &self.by_kind[kind as usize];
        if status.is_informational() || (rules.set.is_empty() && rules.remove.is_empty()) {
            return;
        }
        for name in &rules.remove {
            fields.remove(name);
        }
        for (name, value, if_absent) in &rules.set {
            if !(*if_absent && fields.has(name)) {
                fields.set(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header;

    fn fields(
        rules: &HeaderRules,
        kind: RouteKind,
        status: u16,
        start: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut h: Headers<'static> = start
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    Cow::Owned(HeaderValue::from_str(v).unwrap()),
                )
            })
            .collect();
        rules.apply(kind, StatusCode::from_u16(status).unwrap(), &mut h);
        h.iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_rules_and_names_bad_ones() {
        let r = parse_set(
            "static,media:Strict-Transport-Security: max-age=63072000; includeSubDomains",
        )
        .unwrap();
        assert_eq!(r.kinds, [RouteKind::Static, RouteKind::Media]);
        assert_eq!(r.name, header::STRICT_TRANSPORT_SECURITY);
        assert_eq!(r.value.unwrap(), "max-age=63072000; includeSubDomains");
        let r = parse_set("proxy:?Content-Security-Policy: default-src 'self'").unwrap();
        assert!(r.if_absent);
        assert_eq!(parse_set("all:X-A: 1").unwrap().kinds, RouteKind::ALL);
        // A rule without its route kind.
        assert_eq!(parse_set("X-A: 1"), Err(RuleError::Shape("X-A: 1".into())));
        assert_eq!(
            parse_set("X-A: b: 1"),
            Err(RuleError::Route("X-A: b: 1".into(), "X-A".into()))
        );
        assert_eq!(
            parse_set("static:X-A"),
            Err(RuleError::Shape("static:X-A".into()))
        );
        assert_eq!(
            parse_set("static:Bad Name: 1"),
            Err(RuleError::Name(
                "static:Bad Name: 1".into(),
                "Bad Name".into()
            ))
        );
        assert_eq!(
            parse_set("static:X-A: a\u{7f}"),
            Err(RuleError::Value("static:X-A: a\u{7f}".into()))
        );
        assert!(matches!(
            parse_set("all:Content-Length: 3"),
            Err(RuleError::Reserved(..))
        ));
        assert!(matches!(
            parse_remove("proxy:Transfer-Encoding"),
            Err(RuleError::Reserved(..))
        ));
        assert!(matches!(
            parse_remove("proxy:?Server"),
            Err(RuleError::IfAbsentRemoval(..))
        ));
        let r = parse_remove("proxy:X-Powered-By").unwrap();
        assert_eq!((r.kinds, r.value), (vec![RouteKind::Proxy], None));
        let e = parse_set("stat:X: 1").unwrap_err().to_string();
        assert!(e.contains("\"stat\"") && e.contains("static, media"), "{e}");
    }

    #[test]
    fn defaults_set_nosniff_on_static_and_media_only() {
        let r = HeaderRules::default();
        assert_eq!(
            fields(&r, RouteKind::Static, 200, &[("content-type", "text/css")]),
            pairs(&[
                ("content-type", "text/css"),
                ("x-content-type-options", "nosniff")
            ])
        );
        assert_eq!(
            fields(&r, RouteKind::Media, 404, &[]),
            pairs(&[("x-content-type-options", "nosniff")])
        );
        assert_eq!(fields(&r, RouteKind::Proxy, 200, &[]), pairs(&[]));
        assert_eq!(fields(&r, RouteKind::Internal, 200, &[]), pairs(&[]));
        // A 101 that starts a tunnel is left alone.
        assert_eq!(fields(&r, RouteKind::Static, 101, &[]), pairs(&[]));
    }

    #[test]
    fn removal_runs_first_and_cancels_only_defaults() {
        let rules = [
            parse_remove("static:X-Content-Type-Options").unwrap(),
            parse_set("proxy:X-Content-Type-Options: nosniff").unwrap(),
            parse_remove("proxy:X-Content-Type-Options").unwrap(),
            parse_remove("proxy:Server").unwrap(),
            parse_set("all:Strict-Transport-Security: max-age=1").unwrap(),
            parse_set("all:Strict-Transport-Security: max-age=2").unwrap(),
            parse_set("proxy:?Content-Security-Policy: default-src 'self'").unwrap(),
        ];
        let r = HeaderRules::new(&rules);
        assert_eq!(
            fields(&r, RouteKind::Static, 200, &[]),
            pairs(&[("strict-transport-security", "max-age=2")])
        );
        assert_eq!(
            fields(&r, RouteKind::Media, 200, &[]),
            pairs(&[
                ("x-content-type-options", "nosniff"),
                ("strict-transport-security", "max-age=2")
            ])
        );
        // The upstream's own field is stripped, then the explicit rule sets it again.
        assert_eq!(
            fields(
                &r,
                RouteKind::Proxy,
                502,
                &[
                    ("server", "gunicorn"),
                    ("x-content-type-options", "sniff"),
                    ("content-security-policy", "img-src *"),
                    ("strict-transport-security", "max-age=9"),
                ]
            ),
            pairs(&[
                ("content-security-policy", "img-src *"),
                ("x-content-type-options", "nosniff"),
                ("strict-transport-security", "max-age=2"),
            ])
        );
        assert_eq!(
            fields(&r, RouteKind::Proxy, 200, &[]),
            pairs(&[
                ("x-content-type-options", "nosniff"),
                ("strict-transport-security", "max-age=2"),
                ("content-security-policy", "default-src 'self'"),
            ])
        );
    }

    #[test]
    fn applies_to_actix_header_maps_alike() {
        let r =
            HeaderRules::new(&[
                parse_set("static:Content-Security-Policy: default-src 'none'").unwrap(),
            ]);
        let mut m = HeaderMap::new();
        m.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css"));
        r.apply(RouteKind::Static, StatusCode::OK, &mut m);
        assert_eq!(m.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
        assert_eq!(
            m.get(header::CONTENT_SECURITY_POLICY).unwrap(),
            "default-src 'none'"
        );
        assert_eq!(m.len(), 3);
    }
}
