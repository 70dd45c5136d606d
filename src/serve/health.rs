//! staticd's own health path (`--health-path`, default `/.staticd/health`), answered on
//! every listener and never forwarded:
//! - `PATH`: liveness, `200 ok` whenever the process answers at all;
//! - `PATH/ready`: readiness, `200` when the asset table is loaded (STATIC_ROOT exists)
//!   and, with upstreams, at least one of them is healthy
//!   ([`Proxy::ready`](super::proxy::Proxy::ready)); else `503` with the reasons.
//!
//! A path of its own rather than a query (`?ready`): probes of load balancers, Docker and
//! Kubernetes take a path, and caches and logs keep them apart. Both answers carry
//! `Cache-Control: no-store` so no cache between a balancer and staticd replays them.

use super::message::{Body, Reply, Verb};
use super::state::State;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use bytes::Bytes;
use std::borrow::Cow;

/// The default `--health-path`: under a dot segment, which the static tier and the mounts
/// refuse, so it can never shadow a file.
pub const DEFAULT_PATH: &str = "/.staticd/health";

/// What a request to the health path asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Live,
    Ready,
}

/// Which probe the raw request `path` (no query) is, if any.
pub fn probe(health_path: &str, path: &str) -> Option<Probe> {
    let rest = path.strip_prefix(health_path)?;
    match rest {
        "" => Some(Probe::Live),
        "/ready" => Some(Probe::Ready),
        _ => None,
    }
}

/// The answer to `probe` for a request with `verb`.
pub async fn answer(state: &State, probe: Probe, verb: Verb) -> Reply<'static> {
    if verb == Verb::Other {
        let mut r = Reply::new(StatusCode::METHOD_NOT_ALLOWED);
        r.headers.push((
            header::ALLOW,
            Cow::Owned(HeaderValue::from_static("GET, HEAD")),
        ));
        return r;
    }
    let (status, text) = match probe {
        Probe::Live => (StatusCode::OK, "ok\n".to_string()),
        Probe::Ready => match readiness(state).await {
            Ok(()) => (StatusCode::OK, "ready\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            ),
        },
    };
    let mut r = Reply::new(status);
    r.headers.push((
        header::CONTENT_TYPE,
        Cow::Owned(HeaderValue::from_static("text/plain; charset=utf-8")),
    ));
    r.headers.push((
        header::CACHE_CONTROL,
        Cow::Owned(HeaderValue::from_static("no-store")),
    ));
    r.body = Body::Mem(Bytes::from(text));
    r
}

/// `Ok` when the table is loaded and the proxied side can take requests; else every reason.
async fn readiness(state: &State) -> Result<(), String> {
    let table = {
        let t = state.table.load();
        t.dir.is_some() || t.remote
    };
    let proxy = state.live.load_full().proxy.clone();
    let proxy = proxy.ready().await;
    match (table, proxy) {
        (true, Ok(())) => Ok(()),
        (false, Ok(())) => Err("no asset table (STATIC_ROOT does not exist yet)".into()),
        (true, Err(e)) => Err(e),
        (false, Err(e)) => Err(format!(
            "no asset table (STATIC_ROOT does not exist yet); {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes() {
        let p = DEFAULT_PATH;
        assert_eq!(probe(p, "/.staticd/health"), Some(Probe::Live));
        assert_eq!(probe(p, "/.staticd/health/ready"), Some(Probe::Ready));
        assert_eq!(probe(p, "/.staticd/healthz"), None);
        assert_eq!(probe(p, "/.staticd/health/"), None);
        assert_eq!(probe(p, "/.staticd/health/ready/x"), None);
        assert_eq!(probe(p, "/"), None);
        assert_eq!(probe("/healthz", "/healthz/ready"), Some(Probe::Ready));
    }
}
