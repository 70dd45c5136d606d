//! Memory given back after a burst of connections.
//!
//! An idle HTTP/1 connection costs about 7 KB here (its task and socket state; it was 19 KB
//! with a buffer held and the proxy exchange inline in its future). glibc keeps what
//! closed connections freed in its arenas rather than return it, so after a burst staticd
//! stayed at its peak: 5,000 connections (at 19 KB) took it from 13 MB to 107 MB, and it
//! stayed at 107 MB once they had closed. `malloc_trim(0)` (every arena, since glibc
//! 2.8) brought it back to 15 MB. So a thread looks every [`EVERY`] and trims when the open
//! connections have fallen by [`BURST`] or more from the highest count since its last
//! look. A steady load never triggers it, and a trim is one call of a few milliseconds at
//! most.
//!
//! Counted always (two atomic operations per connection), not only with `--metrics`.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// How often the thread looks.
const EVERY: Duration = Duration::from_secs(2);
/// A fall in open connections worth a trim (about 7 MB).
const BURST: usize = 1000;

static OPEN: AtomicUsize = AtomicUsize::new(0);
/// The highest [`OPEN`] since the thread last looked.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// One open client connection, counted until dropped.
pub struct Open(());

impl Open {
    pub fn count() -> Open {
        let now = OPEN.fetch_add(1, Relaxed) + 1;
        PEAK.fetch_max(now, Relaxed);
        Open(())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Relaxed);
    }
}

/// Whether a look that saw `peak` and then `now` open connections should trim.
fn worth_trimming(peak: usize, now: usize) -> bool {
    peak.saturating_sub(now) >= BURST
}

/// Starts the thread (once per process).
pub fn spawn() -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("staticd-trim".into())
        .spawn(|| loop {
            std::thread::sleep(EVERY);
            let now = OPEN.load(Relaxed);
            let peak = PEAK.swap(now, Relaxed);
            if worth_trimming(peak, now) {
                trim();
                tracing::debug!(peak, now, "connections fell: memory given back");
            }
        })
        .map(drop)
}

#[cfg(target_env = "gnu")]
fn trim() {
    // SAFETY: no arguments but the padding to keep; glibc locks each arena as it goes.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(target_env = "gnu"))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_fall_trims() {
        assert!(!worth_trimming(0, 0));
        assert!(!worth_trimming(5000, 4500));
        assert!(worth_trimming(5000, 4000));
        assert!(worth_trimming(1000, 0));
        // More open than at the last look: no fall.
        assert!(!worth_trimming(10, 3000));
    }
}
