//! The one dispatch of every protocol: the HTTP/1 loop (`h1`) and actix's HTTP/2 service
//! (`app`) both decide a request's route here and get the static tier's answer from here, so
//! the two cannot drift apart (prefix matching, the table generation used, the reload nudge).
//!
//! In order: the health path (never forwarded), STATIC_URL, the root files
//! (`--root-files`: a file of that table at the site root, e.g. `/robots.txt`), then the
//! proxy (upstream and mounts).

use super::health::{self, Probe};
use super::message::{Reply, Request, Verb};
use super::metrics::RouteKind;
use super::path::{route, Route};
use super::reload::Wake;
use super::respond::{respond, Ctx};
use super::state::{Live, State};
use super::table::Table;
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
    /// The static tier's answer; one that found the table stale wakes the reloader.
    pub fn reply(&self, verb: Verb, req: &Request<'_>) -> Reply<'_> {
        let ctx = Ctx {
            table: &self.table,
            cors: self.live.cors.as_ref(),
        };
        let reply = respond(verb, req, self.key.as_deref(), &ctx);
        if reply.stale {
            let _ = self.nudge.try_send(Wake::Stale);
        }
        reply
    }
}
