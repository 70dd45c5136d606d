//! What staticd's health path and metrics read of the proxy: whether some upstream can take
//! a request now (readiness), each upstream's state, and which paths are the media mount's.

use super::{client, Proxy};
use std::fmt::Write as _;

impl Proxy {
    /// Readiness of the proxied side: `Ok` without upstreams, or when at least one upstream
    /// is healthy; else why not.
    ///
    /// Healthy means: not skipped after failures (`--max-fails`), and
    /// - with `--health-check`, its last active check passed (none yet: not ready, so a
    ///   load balancer waits for the first one);
    /// - without it, a connection to it opens now (within `--connect-timeout`): nothing
    ///   else would notice an upstream that is down before a request fails on it.
    pub async fn ready(&self) -> Result<(), String> {
        let pool = &self.pool;
        if pool.upstreams.is_empty() {
            return Ok(());
        }
        let mut why = String::new();
        for (i, u) in pool.upstreams.iter().enumerate() {
            let state = if !pool.up(i) {
                Err("marked down after failures")
            } else if self.opts.health_check.is_some() {
                match pool.probed(i) {
                    Some(true) => Ok(()),
                    Some(false) => Err("health check failed"),
                    None => Err("not checked yet"),
                }
            } else {
                match tokio::time::timeout(
                    self.opts.connect_timeout,
                    client::connect(&u.addr, i, &[]),
                )
                .await
                {
                    Ok(Ok(_conn)) => Ok(()),
                    Ok(Err(_)) => Err("connection refused or failed"),
                    Err(_) => Err("connect timed out"),
                }
            };
            match state {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let _ = write!(
                        why,
                        "{}upstream {}: {e}",
                        if why.is_empty() { "" } else { "; " },
                        u.addr
                    );
                }
            }
        }
        Err(why)
    }

    /// Each upstream's address and whether it is taken now (for the metrics).
    pub fn upstream_states(&self) -> Vec<(String, bool)> {
        let pool = &self.pool;
        (0..pool.upstreams.len())
            .map(|i| (pool.upstreams[i].addr.to_string(), pool.up(i)))
            .collect()
    }

    /// Whether `path` (raw) is under the media mount (`--media-url`).
    pub fn is_media(&self, path: &str) -> bool {
        self.opts
            .media
            .as_ref()
            .is_some_and(|m| path.starts_with(m.prefix.as_str()))
    }
}
