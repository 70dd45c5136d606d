//! Upstream addresses, their connections (TCP or Unix socket), balancing and passive/active
//! health.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Where an upstream listens (`--upstream`, parsed by `config::parse_upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A literal `ip:port`, parsed once here rather than on every connection (a request to
    /// gunicorn's sync workers opens one each time).
    Ip(std::net::SocketAddr),
    /// `host:port` with a name: resolved when connecting, its addresses kept for a few
    /// seconds (`client::connect`), so container names work and a restarted container is
    /// found. Shared, not copied, by each connection that remembers where it goes.
    Tcp(Arc<str>),
    /// `unix:/path/to.sock`.
    Unix(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Ip(a) => write!(f, "{a}"),
            Addr::Tcp(hp) => f.write_str(hp),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Balancing policy.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConn,
}

/// One upstream and its health.
pub struct Upstream {
    pub addr: Addr,
    /// `addr` as the access log shows it (`$upstream_addr`), formatted once.
    pub name: Arc<str>,
    /// In-flight requests (least-conn).
    active: AtomicUsize,
    fails: AtomicU32,
    /// Milliseconds since the pool's epoch until which the upstream is skipped.
    down_until: AtomicU64,
    /// The last active health check: [`UNPROBED`], [`PASSED`] or [`FAILED`].
    probed: AtomicU8,
}

const UNPROBED: u8 = 0;
const PASSED: u8 = 1;
const FAILED: u8 = 2;

/// All upstreams, shared by every worker.
pub struct Pool {
    pub upstreams: Vec<Upstream>,
    balance: Balance,
    max_fails: u32,
    fail_timeout: Duration,
    rr: AtomicUsize,
    epoch: Instant,
}

impl Pool {
    pub fn new(addrs: Vec<Addr>, balance: Balance, max_fails: u32, fail_timeout: Duration) -> Self {
        Pool {
            upstreams: addrs
                .into_iter()
                .map(|addr| Upstream {
                    name: addr.to_string().into(),
                    addr,
                    active: AtomicUsize::new(0),
                    fails: AtomicU32::new(0),
                    down_until: AtomicU64::new(0),
                    probed: AtomicU8::new(UNPROBED),
                })
                .collect(),
            balance,
            max_fails,
            fail_timeout,
            rr: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn is_up(&self, i: usize, now: u64) -> bool {
        self.upstreams[i].down_until.load(Ordering::Relaxed) <= now
    }

    /// Whether upstream `i` is taken now (not skipped after failures).
    pub fn up(&self, i: usize) -> bool {
        self.is_up(i, self.now_ms())
    }

    /// The last active health check of upstream `i` (`None` before the first one).
    pub fn probed(&self, i: usize) -> Option<bool> {
        match self.upstreams[i].probed.load(Ordering::Relaxed) {
            PASSED => Some(true),
            FAILED => Some(false),
            _ => None,
        }
    }

    /// The next upstream, skipping `tried` and (while any other is left) those marked down.
    /// Like nginx, when every candidate is down one is tried anyway rather than failing.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.upstreams.len();
        if n == 1 {
            // The only candidate is tried whatever its health (nginx does the same).
            return (!tried.contains(&0)).then_some(0);
        }
        let now = self.now_ms();
        let start = self.rr.fetch_add(1, Ordering::Relaxed);
        // No allocation: this runs for every proxied request.
        let order = || {
            (0..n)
                .map(move |k| (start + k) % n)
                .filter(|i| !tried.contains(i))
        };
        let any_live = order().any(|i| self.is_up(i, now));
        let mut set = order().filter(|&i| !any_live || self.is_up(i, now));
        match self.balance {
            Balance::RoundRobin => set.next(),
            Balance::LeastConn => {
                set.min_by_key(|&i| self.upstreams[i].active.load(Ordering::Relaxed))
            }
        }
    }

    /// A failed attempt (nginx `max_fails` within `fail_timeout`).
    pub fn failed(&self, i: usize) {
        let u = &self.upstreams[i];
        crate::serve::metrics::upstream_failed(&u.addr);
        let f = u.fails.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_fails > 0 && f >= self.max_fails {
            u.down_until.store(
                self.now_ms() + self.fail_timeout.as_millis() as u64,
                Ordering::Relaxed,
            );
            u.fails.store(0, Ordering::Relaxed);
            if self.upstreams.len() > 1 {
                tracing::warn!(upstream = %u.addr, "upstream marked down for {:?}", self.fail_timeout);
            }
        }
    }

    pub fn succeeded(&self, i: usize) {
        let u = &self.upstreams[i];
        u.fails.store(0, Ordering::Relaxed);
    }

    /// Active health check result.
    pub fn set_health(&self, i: usize, healthy: bool, hold: Duration) {
        let u = &self.upstreams[i];
        u.probed
            .store(if healthy { PASSED } else { FAILED }, Ordering::Relaxed);
        if healthy {
            u.fails.store(0, Ordering::Relaxed);
            u.down_until.store(0, Ordering::Relaxed);
        } else {
            u.down_until
                .store(self.now_ms() + hold.as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// Counts an in-flight request for least-conn until dropped (after the body ends).
pub struct Active(Arc<Pool>, usize);

impl Active {
    pub fn enter(pool: &Arc<Pool>, i: usize) -> Self {
        pool.upstreams[i].active.fetch_add(1, Ordering::Relaxed);
        Active(pool.clone(), i)
    }

    pub fn addr(&self) -> &Addr {
        &self.0.upstreams[self.1].addr
    }

    /// [`Upstream::name`], shared.
    pub fn name(&self) -> Arc<str> {
        self.0.upstreams[self.1].name.clone()
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.upstreams[self.1]
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection to an upstream.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_down() {
        let p = Pool::new(
            vec![Addr::Tcp("a:1".into()), Addr::Tcp("b:1".into())],
            Balance::RoundRobin,
            1,
            Duration::from_secs(10),
        );
        p.failed(0);
        for _ in 0..4 {
            assert_eq!(p.pick(&[]), Some(1));
        }
        assert_eq!(p.pick(&[1]), Some(0));
    }
}
