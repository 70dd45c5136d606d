//! The actix application, for HTTP/2 (h2c prior knowledge; every HTTP/1 connection is the
//! `h1` loop's): one default service that routes by prefix.
//!
//! No actix router is involved (it would re-decode paths and cost time): the raw path is
//! checked against the static prefix; everything else goes to
//! the `--upstream` reverse proxy (`super::proxy`), which also serves the media and
//! X-Accel-Redirect mounts and answers 404 when there is no upstream.

use super::log::{self, LogFormat};
use super::message::{Request, Verb};
use super::path::{route, Route};
use super::respond::{respond, Ctx};
use super::table::Table;
use actix_web::body::MessageBody;
use actix_web::dev::{fn_service, Payload, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Version;
use actix_web::{web, App, HttpRequest, HttpResponse};
use arc_swap::ArcSwap;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

/// Shared by all workers.
pub struct State {
    /// The current generation; swapped whole by the reloader.
    pub table: ArcSwap<Table>,
    /// STATIC_URL's path, starting and ending with `/`.
    pub prefix: String,
    pub cors: Option<HeaderValue>,
    pub log_format: LogFormat,
    /// Wakes the reloader when a request finds the table stale.
    pub nudge: SyncSender<super::reload::Wake>,
    /// Upstreams, internal and media mounts (everything outside the static prefix).
    pub proxy: std::sync::Arc<super::proxy::Proxy>,
}

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
            let res = dispatch(&req, payload, &state).await;
            Ok(ServiceResponse::new(req, res))
        }
    }))
}

async fn dispatch(req: &HttpRequest, payload: Payload, state: &State) -> HttpResponse {
    // Only read the clock when the time will be logged.
    let start = (state.log_format != LogFormat::Off).then(Instant::now);
    let res = match route(req.uri().path(), &state.prefix) {
        Route::Static(key) => {
            let table = state.table.load();
            let ctx = Ctx {
                table: &table,
                cors: state.cors.as_ref(),
            };
            let verb = Verb::of(req.method());
            let reply = respond(
                verb,
                &Request::from_fields(req.headers()),
                key.as_deref(),
                &ctx,
            );
            if reply.stale {
                let _ = state.nudge.try_send(super::reload::Wake::Stale);
            }
            reply.into_actix(verb == Verb::Head)
        }
        Route::Other => state.proxy.handle(req, payload).await,
    };
    if let Some(start) = start {
        log_access(req, &res, state.log_format, start);
    }
    res
}

fn log_access(req: &HttpRequest, res: &HttpResponse, format: LogFormat, start: Instant) {
    use actix_web::body::BodySize;
    let bytes = match res.body().size() {
        BodySize::Sized(n) if req.method() != actix_web::http::Method::HEAD => n,
        _ => 0,
    };
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
            remote: req.peer_addr().map(|a| a.ip()),
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
            elapsed: start.elapsed(),
        },
    );
}
