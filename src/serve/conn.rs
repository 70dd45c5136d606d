//! One listener's connection settings, as both protocol servers (`h1`, `h2`) apply them:
//! timeouts, the body limit, the shutdown signal and what HTTPS changes.

use super::https::Front;
use actix_server::GracefulShutdownSignal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Connection settings of one listener.
#[derive(Clone)]
pub struct Settings {
    pub keep_alive: Duration,
    /// Time for a whole request head (`--header-timeout`).
    pub header_timeout: Duration,
    /// Longest pause while a request body arrives (`--body-timeout`).
    pub body_timeout: Duration,
    /// Largest request body (`--max-body`; 0: no limit).
    pub max_body: u64,
    /// The listener's address (`None` for a Unix socket).
    pub local: Option<SocketAddr>,
    pub shutdown: GracefulShutdownSignal,
    /// What HTTPS changes on this listener (nothing when it is off).
    pub front: Arc<Front>,
}
