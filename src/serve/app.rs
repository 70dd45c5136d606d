//! The actix application, for HTTP/2 (h2c prior knowledge, or TLS with ALPN `h2`; every
//! HTTP/1 connection is the `h1` loop's): one default service that routes with `dispatch`,
//! as the `h1` loop does, after what the listener's `https::Front` answers first.
//!
//! No actix router is involved (it would re-decode paths and cost time): the raw path is
//! checked against the static prefix; everything else goes to
//! the `--upstream` reverse proxy (`super::proxy`), which also serves the media and
//! X-Accel-Redirect mounts and answers 404 when there is no upstream.

use super::dispatch::{dispatch, Dispatch};
use super::health;
use super::https::{Asked, Front};
use super::log::{self, LogFormat};
use super::message::{Request, Upstream, Verb};
use super::metrics::{self, Coding, RouteKind};
use super::proxy::LocalAddr;
use super::state::State;
use actix_web::body::MessageBody;
use actix_web::dev::{fn_service, Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Version;
use actix_web::{web, App, HttpRequest, HttpResponse};
use std::sync::Arc;
use std::time::Instant;

/// Builds the App for one worker.
pub fn build(
    state: web::Data<State>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // A plain service, not a handler with extractors: the request, its payload and the
    // shared state are all at hand without per-request extraction futures.
    App::new().default_service(fn_service(move |sreq: ServiceRequest| {
        let state = state.clone();
        async move {
            let (req, payload) = sreq.into_parts();
            let res = answer(&req, payload, &state).await;
            Ok(ServiceResponse::new(req, res))
        }
    }))
}

async fn answer(req: &HttpRequest, payload: Payload, state: &State) -> HttpResponse {
    let live = state.live.load();
    // Only read the clock when the time will be logged or counted.
    let start = (live.log_format != LogFormat::Off || metrics::enabled()).then(Instant::now);
    // What HTTPS changes on this connection's listener (h1 puts it in the connection data).
    let front = req.conn_data::<Arc<Front>>();
    let early = front.filter(|f| f.answers_early()).and_then(|f| {
        let asked = Asked {
            path: req.uri().path(),
            target: req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
            host: req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri().authority().map(|a| a.as_str())),
            local: req.conn_data::<LocalAddr>().map(|a| a.0),
        };
        f.early(&asked)
    });
    let verb = Verb::of(req.method());
    let route = dispatch(state, &live, req.uri().path());
    let kind = route.kind();
    let mut res = match (early, route) {
        (Some(reply), _) => reply.into_actix(verb == Verb::Head),
        (None, Dispatch::Static(mut st)) => st
            .answer(verb, &Request::from_fields(req.headers()))
            .await
            .into_actix(verb == Verb::Head),
        (None, Dispatch::Health(probe)) => health::answer(state, probe, verb)
            .await
            .into_actix(verb == Verb::Head),
        (None, Dispatch::Proxy(_)) => live.proxy.handle(req, payload).await,
    };
    let status = res.status();
    state
        .observe
        .rules
        .load()
        .apply(kind, status, res.headers_mut());
    if let Some(hsts) = front.and_then(|f| f.hsts.as_ref()) {
        let headers = res.headers_mut();
        if !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
    if let Some(start) = start {
        log_access(req, &res, live.log_format, kind, start);
    }
    res
}

fn log_access(
    req: &HttpRequest,
    res: &HttpResponse,
    format: LogFormat,
    kind: RouteKind,
    start: Instant,
) {
    use actix_web::body::BodySize;
    let bytes = match res.body().size() {
        BodySize::Sized(n) if req.method() != actix_web::http::Method::HEAD => n,
        _ => 0,
    };
    let elapsed = start.elapsed();
    let coding = Coding::of(
        res.headers()
            .get(header::CONTENT_ENCODING)
            .map(HeaderValue::as_bytes),
    );
    metrics::request(kind, res.status().as_u16(), bytes, coding, elapsed);
    if format == LogFormat::Off {
        return;
    }
    let extensions = res.extensions();
    let upstream = extensions.get::<Upstream>();
    let hdr = |n| {
        req.headers()
            .get(n)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    log::access(
        format,
        &log::Entry {
            remote: super::proxy::incoming::peer(req),
            method: req.method().as_str(),
            target,
            version: match req.version() {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2.0",
                Version::HTTP_3 => "HTTP/3.0",
                _ => "HTTP/1.1",
            },
            status: res.status().as_u16(),
            bytes,
            referer: hdr(header::REFERER),
            user_agent: hdr(header::USER_AGENT),
            elapsed,
            route: kind.as_str(),
            upstream: upstream.map(|u| (u.addr.as_str(), u.header_time)),
        },
    );
}
