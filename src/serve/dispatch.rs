//! The one dispatch of every protocol: the HTTP/1 loop (`h1`) and actix's HTTP/2 service
//! (`app`) both decide a request's route here and get the static tier's answer from here, so
//! the two cannot drift apart (prefix matching, the table generation used, the reload nudge).

use super::message::{Reply, Request, Verb};
use super::path::{route, Route};
use super::reload::Wake;
use super::respond::{respond, Ctx};
use super::state::State;
use super::table::Table;
use std::borrow::Cow;
use std::sync::Arc;

/// Where a request goes.
pub enum Dispatch<'s, 'p> {
    /// Under STATIC_URL: answered from the table ([`Static::reply`]).
    Static(Static<'s, 'p>),
    /// Everything else: the proxy's (the upstream, the media and internal mounts, or 404
    /// when there is no upstream).
    Proxy,
}

/// A request under STATIC_URL, with the table generation that answers it.
pub struct Static<'s, 'p> {
    state: &'s State,
    /// Loaded once, when the route is known, and held while the answer (which borrows its
    /// header values) is written; a reload meanwhile does not change it.
    table: arc_swap::Guard<Arc<Table>>,
    /// The decoded table key; `None` for a malformed path (a plain 404).
    key: Option<Cow<'p, str>>,
}

/// Routes `path` (the raw, still percent-encoded request path).
pub fn dispatch<'s, 'p>(state: &'s State, path: &'p str) -> Dispatch<'s, 'p> {
    match route(path, &state.prefix) {
        Route::Static(key) => Dispatch::Static(Static {
            state,
            table: state.table.load(),
            key,
        }),
        Route::Other => Dispatch::Proxy,
    }
}

impl Static<'_, '_> {
    /// The static tier's answer; one that found the table stale wakes the reloader.
    pub fn reply(&self, verb: Verb, req: &Request<'_>) -> Reply<'_> {
        let ctx = Ctx {
            table: &self.table,
            cors: self.state.cors.as_ref(),
        };
        let reply = respond(verb, req, self.key.as_deref(), &ctx);
        if reply.stale {
            let _ = self.state.nudge.try_send(Wake::Stale);
        }
        reply
    }
}
