//! What every worker shares, built once by `serve::run`: the current table and the live
//! part of the configuration. Its own module, below the front ends (`h1`, `app`), so the
//! reloader, the reconfiguration and the dispatch use it without importing either.

use super::header_rules::HeaderRules;
use super::log::LogFormat;
use super::origin::Origin;
use super::proxy::Proxy;
use super::reload::Wake;
use super::table::Table;
use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// Shared by all workers.
pub struct State {
    /// The current generation (with its STATIC_URL prefix); swapped whole by the reloader.
    pub table: ArcSwap<Table>,
    /// The options a configuration reload (SIGHUP) replaces; swapped whole by it.
    pub live: ArcSwap<Live>,
    /// Wakes the reloader when a request finds the table stale.
    pub nudge: SyncSender<Wake>,
    /// The health path, header rules and root files (`ObserveArgs`); a reload swaps the
    /// rules (their own `ArcSwap`, so a request applies the rules current when it ends).
    pub observe: Observe,
    /// `serve --origin`: the store the table comes from (`None`: STATIC_ROOT).
    pub origin: Option<Arc<Origin>>,
}

/// The part of the configuration that changes without a restart. A request loads it once
/// and keeps what it loaded to the end (a reload meanwhile does not change its answer).
pub struct Live {
    pub cors: Option<HeaderValue>,
    pub log_format: LogFormat,
    /// Upstreams, internal and media mounts (everything outside the static prefix).
    pub proxy: Arc<Proxy>,
}

/// What `ObserveArgs` adds to the shared state.
pub struct Observe {
    /// staticd's own health path (`--health-path`): liveness; `PATH/ready`: readiness.
    pub health_path: String,
    /// Response header rules by route kind; a configuration reload swaps them whole.
    pub rules: ArcSwap<HeaderRules>,
    /// `--root-files`: answered at the site root before anything goes upstream.
    pub root_files: Option<Arc<RootFiles>>,
}

/// The table of `--root-files` DIR, with the wake-up channel of its own reloader.
pub struct RootFiles {
    pub table: ArcSwap<Table>,
    pub nudge: SyncSender<Wake>,
}

/// The slot the root files' reloader swaps new generations into.
impl AsRef<ArcSwap<Table>> for RootFiles {
    fn as_ref(&self) -> &ArcSwap<Table> {
        &self.table
    }
}

/// The slot the reloader swaps new generations into.
impl AsRef<ArcSwap<Table>> for State {
    fn as_ref(&self) -> &ArcSwap<Table> {
        &self.table
    }
}
