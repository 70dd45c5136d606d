//! Live reload: rebuild the table when a new generation is published, swap it atomically.
//!
//! Collect publishes either by swapping the whole STATIC_ROOT directory (`RENAME_EXCHANGE`)
//! or by per-file renames with the manifest renamed last. Both change the fingerprint below.
//! inotify (via `notify`) makes pickup immediate; a 1 s poll of the same fingerprint covers
//! what inotify misses (a watch follows the old directory inode across a swap, network
//! filesystems, overflowed queues). Requests in flight keep the `Arc<Table>` they loaded.

use super::app::State;
use super::table::{BuildOptions, Table};
use notify::{RecursiveMode, Watcher};
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_secs(1);
/// Lets a burst of events (many renames) settle into one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(25);

/// What identifies a published generation: the root directory and its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    root: Option<(u64, u64)>,
    manifest: Option<(u64, u64, i64, i64, u64)>,
}

pub fn fingerprint(opts: &BuildOptions) -> Fingerprint {
    let root = std::fs::metadata(&opts.root)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let manifest = std::fs::metadata(opts.root.join(&opts.manifest_name))
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()));
    Fingerprint { root, manifest }
}

/// Why the reloader woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed near STATIC_ROOT: rebuild if the fingerprint moved.
    Event,
    /// A request found a file vanished or changed under the table: rebuild even if the
    /// fingerprint did not move (per-file publishing before the manifest lands).
    Stale,
}

/// Starts the reloader thread. `built_at` is the fingerprint taken before the initial build.
pub fn spawn(
    state: Arc<State>,
    opts: BuildOptions,
    built_at: Fingerprint,
    tx: SyncSender<Wake>,
    rx: Receiver<Wake>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("staticd-reload".into())
        .spawn(move || run(state, opts, built_at, tx, rx))
        .map(|_| ())
}

/// Forced rebuilds are rate-limited: a burst of requests for a vanished file must not turn
/// into a burst of full scans.
const STALE_INTERVAL: Duration = Duration::from_millis(500);

fn run(
    state: Arc<State>,
    opts: BuildOptions,
    mut current: Fingerprint,
    tx: SyncSender<Wake>,
    rx: Receiver<Wake>,
) {
    let mut watcher = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        let _ = tx.try_send(Wake::Event);
    })
    .map_err(|e| tracing::warn!("file watching unavailable, polling only: {e}"))
    .ok();
    let watch = |w: &mut notify::RecommendedWatcher| {
        // The parent sees the root being swapped or created; the root sees the manifest.
        if let Some(parent) = opts.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = w.watch(parent, RecursiveMode::NonRecursive);
        }
        let _ = w.unwatch(&opts.root);
        let _ = w.watch(&opts.root, RecursiveMode::NonRecursive);
    };
    if let Some(w) = watcher.as_mut() {
        watch(w);
    }
    let mut last_build = Instant::now();
    let mut again = false;
    loop {
        let mut stale = false;
        if !again {
            match rx.recv_timeout(POLL) {
                Ok(wake) => {
                    std::thread::sleep(DEBOUNCE);
                    stale = wake == Wake::Stale;
                    while let Ok(w) = rx.try_recv() {
                        stale |= w == Wake::Stale;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let now = fingerprint(&opts);
        let forced = again || (stale && last_build.elapsed() >= STALE_INTERVAL);
        again = false;
        if now == current && !forced {
            continue;
        }
        let started = Instant::now();
        let prev = state.table.load_full();
        match Table::build(&opts, Some(&prev)) {
            Ok(table) => {
                let n = table.assets.len();
                let mem = table.mem_bytes;
                state.table.store(Arc::new(table));
                tracing::info!(
                    "reloaded {}: {n} URLs, {} KiB in memory, {:?}",
                    opts.root.display(),
                    mem / 1024,
                    started.elapsed()
                );
                if now.root != current.root {
                    if let Some(w) = watcher.as_mut() {
                        watch(w);
                    }
                }
                // Published again while we were building: go around at once.
                again = fingerprint(&opts) != now;
            }
            Err(e) => tracing::warn!(
                "reload of {} failed, keeping the previous table: {e:#}",
                opts.root.display()
            ),
        }
        current = now;
        last_build = Instant::now();
    }
}
