//! The one dispatch of every protocol: the HTTP/1 loop (`h1`) and the HTTP/2 server (`h2`)
//! both decide a request's route here and get the static tier's answer from here, so
//! the two cannot drift apart (prefix matching, the table generation used, the reload nudge).
//!
//! In order: the health path (never forwarded), STATIC_URL, the root files
//! (`--root-files`: a file of that table at the site root, e.g. `/robots.txt`), then the
//! proxy (upstream and mounts).

use super::headers;
use super::health::{self, Probe};
use super::message::{error_page, Reply, Request, Verb};
use super::metrics::RouteKind;
use super::origin::Origin;
use super::path::{route, Route};
use super::reload::Wake;
use super::respond::{needs_bytes, respond, Ctx};
use super::state::{Live, State};
use super::table::{Source, Table};
use crate::remote::fetch::{FetchError, Wanted};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use arc_swap::ArcSwap;
use std::borrow::Cow;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// Where a request goes.
pub enum Dispatch<'s, 'p> {
    /// Under STATIC_URL, or a root file: answered from a table ([`Static::reply`]).
    Static(Static<'s, 'p>),
    /// staticd's health path ([`health::answer`]).
    Health(Probe),
    /// Everything else: the proxy's (the upstream, the media and internal mounts, or 404
    /// when there is no upstream); the kind is `Media` under the media mount, else `Proxy`.
    Proxy(RouteKind),
}

impl Dispatch<'_, '_> {
    /// The route kind (metrics, access log, header rules).
    pub fn kind(&self) -> RouteKind {
        match self {
            Dispatch::Static(_) => RouteKind::Static,
            Dispatch::Health(_) => RouteKind::Internal,
            Dispatch::Proxy(kind) => *kind,
        }
    }
}

/// A request under STATIC_URL, with the table generation that answers it.
pub struct Static<'s, 'p> {
    live: &'s Live,
    /// Loaded once, when the route is decided (its prefix decides it), and held while the
    /// answer (which borrows its header values) is written; a reload meanwhile does not
    /// change it.
    table: arc_swap::Guard<Arc<Table>>,
    /// The decoded table key; `None` for a malformed path (a plain 404).
    key: Option<Cow<'p, str>>,
    /// The reloader of that table.
    nudge: &'s SyncSender<Wake>,
    /// `serve --origin`: where the table's bytes come from, and the slot its poller swaps
    /// (a name not listed makes it poll at once, then the table is loaded again).
    origin: Option<(&'s Origin, &'s ArcSwap<Table>)>,
}

/// Routes `path` (the raw, still percent-encoded request path) with the configuration
/// `live` the request loaded.
pub fn dispatch<'s, 'p>(state: &'s State, live: &'s Live, path: &'p str) -> Dispatch<'s, 'p> {
    if let Some(probe) = health::probe(&state.observe.health_path, path) {
        return Dispatch::Health(probe);
    }
    let table = state.table.load();
    match route(path, &table.prefix) {
        Route::Static(key) => Dispatch::Static(Static {
            live,
            table,
            key,
            nudge: &state.nudge,
            origin: state.origin.as_deref().map(|o| (o, &state.table)),
        }),
        Route::Other => {
            if let Some(root) = &state.observe.root_files {
                // Only a name the table has: anything else (a malformed or hidden path
                // included) goes on to the upstream.
                if let Route::Static(Some(key)) = route(path, "/") {
                    let table = root.table.load();
                    if table.get(&key).is_some() {
                        return Dispatch::Static(Static {
                            live,
                            table,
                            key: Some(key),
                            nudge: &root.nudge,
                            origin: None,
                        });
                    }
                }
            }
            let kind = if live.proxy.is_media(path) {
                RouteKind::Media
            } else {
                RouteKind::Proxy
            };
            Dispatch::Proxy(kind)
        }
    }
}

impl Static<'_, '_> {
    /// The static tier's answer; one that found the table stale wakes the reloader. With
    /// `--origin`, the bytes the answer sends are fetched into the cache first.
    pub async fn answer(&mut self, verb: Verb, req: &Request<'_>) -> Reply<'_> {
        let Some((origin, slot)) = self.origin else {
            return self.reply(verb, req, None);
        };
        let Some(key) = self.key.as_deref() else {
            return self.reply(verb, req, None);
        };
        if verb != Verb::Other && self.table.get(key).is_none() {
            origin.refresh().await;
            self.table = slot.load();
        }
        let wanted = self.table.get(key).and_then(|asset| {
            let v = needs_bytes(verb, req, asset)?;
            let Source::Remote { store_etag } = &v.source else {
                return None;
            };
            Some(Wanted {
                key: format!("{}{}", asset.rel, v.encoding.suffix().unwrap_or_default()),
                size: v.len,
                etag: store_etag.as_deref().map(str::to_string),
                id: v.hash,
            })
        });
        let fetched = match wanted {
            None => None,
            Some(w) => match origin.fetcher.file(&w).await {
                Ok(f) => Some(f),
                Err(e) => return failed(origin, &e),
            },
        };
        self.reply(verb, req, fetched)
    }

    fn reply(&self, verb: Verb, req: &Request<'_>, fetched: Option<std::fs::File>) -> Reply<'_> {
        let ctx = Ctx {
            table: &self.table,
            cors: self.live.cors.as_ref(),
            fetched: std::cell::Cell::new(fetched),
        };
        let reply = respond(verb, req, self.key.as_deref(), &ctx);
        if reply.stale {
            let _ = self.nudge.try_send(Wake::Stale);
        }
        reply
    }
}

/// The answer when an object could not be fetched: 504 when the store took too long, 503
/// when the object changed since the listing (the prefix is listed again at once, a retry
/// will find it), 404 when it was deleted since, 502 for anything else the store said.
fn failed(origin: &Origin, e: &FetchError) -> Reply<'static> {
    let status = match e {
        FetchError::TimedOut { .. } => StatusCode::GATEWAY_TIMEOUT,
        FetchError::Changed { .. } => {
            origin.relist();
            StatusCode::SERVICE_UNAVAILABLE
        }
        FetchError::Missing { .. } => StatusCode::NOT_FOUND,
        FetchError::Store(_) | FetchError::Corrupt { .. } | FetchError::Local(_) => {
            StatusCode::BAD_GATEWAY
        }
    };
    tracing::warn!("origin: answering {}: {e}", status.as_u16());
    error_page(status)
}

/// What no route answers, on either protocol: `OPTIONS *` (200 with `Allow`), CONNECT (405:
/// this is no forward proxy) and TRACE (405, as nginx). A 405's `Allow` lists the target's
/// methods (RFC 9110 §15.5.6): GET and HEAD for a TRACE of a file, the server's otherwise.
pub fn special(
    state: &State,
    live: &Live,
    method: &[u8],
    asterisk: bool,
    path: &str,
) -> Option<Reply<'static>> {
    let mut allow = if live.proxy.has_upstreams() {
        ALLOW_PROXIED
    } else {
        headers::ALLOW
    };
    if asterisk {
        let mut r = Reply::new(StatusCode::OK);
        r.headers.push((header::ALLOW, Cow::Owned(allow)));
        return Some(r);
    }
    match method {
        b"CONNECT" => {}
        b"TRACE" => {
            if !matches!(dispatch(state, live, path), Dispatch::Proxy(_)) {
                allow = headers::ALLOW;
            }
        }
        _ => return None,
    }
    let mut r = error_page(StatusCode::METHOD_NOT_ALLOWED);
    r.headers.push((header::ALLOW, Cow::Owned(allow)));
    Some(r)
}

/// What `Allow` lists when an upstream takes the methods the static tier does not.
const ALLOW_PROXIED: HeaderValue =
    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
