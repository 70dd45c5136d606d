//! Live reload: rebuild the table when a new generation is published, swap it atomically.
//!
//! Collect publishes either by swapping the whole STATIC_ROOT directory (`RENAME_EXCHANGE`)
//! or by per-file renames with the manifest renamed last. Both change the fingerprint below.
//! inotify ([`super::dir_watch`]) makes pickup immediate; a 1 s poll of the same fingerprint covers
//! what inotify misses (a watch follows the old directory inode across a swap, network
//! filesystems, overflowed queues). Requests in flight keep the `Arc<Table>` they loaded.
//! `staticd dev` also says when it has published ([`Wake::Published`]), so the rebuild starts
//! at once instead of after the debounce. A configuration reload (SIGHUP) that changes the
//! build options stores them in the shared slot and wakes the reloader
//! ([`Wake::Reconfigured`]), which rebuilds from them and watches the new root: the table is
//! only ever built here.

use super::dir_watch::{DirWatch, Seen};
use super::table::{BuildOptions, Table};
use arc_swap::ArcSwap;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_secs(1);
/// Lets a burst of events (many renames) settle into one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(25);

/// What identifies a published generation: the root directory and its manifest. A root
/// without a manifest (the root files of `--root-files`, a plain directory) is also told
/// apart by its directory's mtime, which moves when a file is added, removed or renamed in
/// it; with a manifest that would only rebuild mid-publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    root: Option<(u64, u64)>,
    manifest: Option<(u64, u64, i64, i64, u64)>,
    listing: Option<(i64, i64)>,
}

pub fn fingerprint(opts: &BuildOptions) -> Fingerprint {
    let meta = std::fs::metadata(&opts.root).ok();
    let root = meta.as_ref().map(|m| (m.dev(), m.ino()));
    let manifest = std::fs::metadata(opts.root.join(&opts.manifest_name))
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()));
    let listing = meta
        .filter(|_| manifest.is_none())
        .map(|m| (m.mtime(), m.mtime_nsec()));
    Fingerprint {
        root,
        manifest,
        listing,
    }
}

/// Why the reloader woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed near STATIC_ROOT: rebuild if the fingerprint moved.
    Event,
    /// A request found a file vanished or changed under the table (per-file publishing
    /// before the manifest lands), or the watches saw bytes rewritten in place (or names
    /// changed below a root without a manifest): rebuild even if the fingerprint did not
    /// move.
    Stale,
    /// A collect in this process has just finished publishing: no burst to wait out.
    Published,
    /// The build options were replaced (a configuration reload): rebuild from them.
    Reconfigured,
}

/// The reloader's wake-up channel. Roomy enough that a `Published` sent with `try_send` is
/// not lost behind a queue of filesystem events.
pub fn channel() -> (SyncSender<Wake>, Receiver<Wake>) {
    sync_channel(64)
}

/// What a watcher event means for the served generation, if anything.
///
/// The parent directory is watched only to see the root swapped, created or removed; its
/// other entries are not STATIC_ROOT's business. They can be busy: Django's default
/// `db.sqlite3` (and its journal, created and deleted by every transaction) sits next to
/// `static/` in a project like sample_project. Reads (the server's own opens) are not
/// changes. Bytes rewritten in place (`cp` over a file, an editor saving) leave the
/// fingerprint as it was, so they force a rebuild ([`Wake::Stale`]); so do names added or
/// removed below the root when it has no manifest (a plain directory, whose fingerprint sees
/// only the top level). Under a manifest, names wait for the manifest: a per-file publish
/// renames thousands of them before it lands. Hidden names are never served, so their
/// events are nothing. Lost events (an overflowed queue) are a wake, to be safe.
fn concerns(opts: &BuildOptions, seen: Seen) -> Option<Wake> {
    let (path, content) = match seen {
        Seen::Overflow => return Some(Wake::Event),
        Seen::Content(p) => (p, true),
        Seen::Name(p) => (p, false),
    };
    let root = &opts.root;
    let inside = path.strip_prefix(root).is_ok_and(|rel| {
        rel.components().next().is_some()
            && !rel
                .components()
                .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
    });
    if content {
        return inside.then_some(Wake::Stale);
    }
    if !path.starts_with(root) {
        return None;
    }
    let below_top = inside && path.parent().is_some_and(|d| d != root.as_path());
    if below_top && !root.join(&opts.manifest_name).exists() {
        return Some(Wake::Stale);
    }
    Some(Wake::Event)
}

/// The directories below the root that hold a served file: each is watched (not
/// recursively, so a symlinked directory is never followed out of the tree) to see bytes
/// rewritten in place.
fn served_dirs(table: &Table, root: &Path) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for rel in table.assets.keys() {
        let mut rest = &rel[..];
        while let Some((dir, _)) = rest.rsplit_once('/') {
            if !dirs.insert(root.join(dir)) {
                break;
            }
            rest = dir;
        }
    }
    dirs
}

/// Gathers the wakes of one burst, starting with `first`: waits out `DEBOUNCE` unless a
/// `Published` says the burst is over. Returns whether any wake was `Stale`, or `None` when
/// every sender is gone.
fn settle(first: Wake, rx: &Receiver<Wake>, debounce: Duration) -> Option<bool> {
    let mut stale = first == Wake::Stale;
    let mut done = matches!(first, Wake::Published | Wake::Reconfigured);
    let deadline = Instant::now() + debounce;
    while !done {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(w) => {
                stale |= w == Wake::Stale;
                done = matches!(w, Wake::Published | Wake::Reconfigured);
            }
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
    while let Ok(w) = rx.try_recv() {
        stale |= w == Wake::Stale;
    }
    Some(stale)
}

/// Starts the reloader thread, which swaps each new generation into `slot`'s table (the
/// shared `State`; only its table is the reloader's business). `built_at` is the fingerprint
/// taken before the initial build, from the options `opts` holds; a reload may replace them.
pub fn spawn<S: AsRef<ArcSwap<Table>> + Send + Sync + 'static>(
    slot: Arc<S>,
    opts: Arc<ArcSwap<BuildOptions>>,
    built_at: Fingerprint,
    tx: SyncSender<Wake>,
    rx: Receiver<Wake>,
) -> std::io::Result<()> {
    spawn_named("static", slot, opts, built_at, tx, rx)
}

/// [`spawn`] for the table `name` (the `table` label of its metrics: `static`,
/// `root_files`).
pub fn spawn_named<S: AsRef<ArcSwap<Table>> + Send + Sync + 'static>(
    name: &'static str,
    slot: Arc<S>,
    opts: Arc<ArcSwap<BuildOptions>>,
    built_at: Fingerprint,
    tx: SyncSender<Wake>,
    rx: Receiver<Wake>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("staticd-reload-{name}"))
        .spawn(move || run(name, (*slot).as_ref(), opts, built_at, tx, rx))
        .map(|_| ())
}

/// Forced rebuilds are rate-limited: a burst of requests for a vanished file must not turn
/// into a burst of full scans.
const STALE_INTERVAL: Duration = Duration::from_millis(500);

fn run(
    name: &'static str,
    slot: &ArcSwap<Table>,
    shared: Arc<ArcSwap<BuildOptions>>,
    mut current: Fingerprint,
    tx: SyncSender<Wake>,
    rx: Receiver<Wake>,
) {
    let root_of = shared.clone();
    let mut watcher = DirWatch::start(move |seen| match concerns(&root_of.load(), seen) {
        Some(wake) => !matches!(
            tx.try_send(wake),
            Err(std::sync::mpsc::TrySendError::Disconnected(_))
        ),
        None => true,
    })
    .map_err(|e| tracing::warn!("file watching unavailable, polling only: {e}"))
    .ok();
    // The parent sees the root being swapped or created; the root and the directories below
    // it that hold served files see the manifest, names and bytes rewritten in place.
    let watch = |w: &mut DirWatch, opts: &BuildOptions, table: &Table, renew: bool| {
        let parent = opts.root.parent().filter(|p| !p.as_os_str().is_empty());
        let mut dirs = served_dirs(table, &opts.root);
        dirs.insert(opts.root.clone());
        w.sync(parent, dirs, renew);
    };
    let mut opts = shared.load_full();
    if let Some(w) = watcher.as_mut() {
        watch(w, &opts, &slot.load(), false);
    }
    let mut last_build = Instant::now();
    let mut again = false;
    // A forced rebuild asked for too soon after the last one: done when the interval is over,
    // never dropped (the bytes it is for would stay stale until the next change).
    let mut pending = false;
    loop {
        let mut stale = pending;
        if !again {
            let wait = match pending {
                true => STALE_INTERVAL.saturating_sub(last_build.elapsed()),
                false => POLL,
            };
            match rx.recv_timeout(wait) {
                Ok(wake) => match settle(wake, &rx, DEBOUNCE) {
                    Some(s) => stale |= s,
                    None => return,
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let latest = shared.load_full();
        let reconfigured = !Arc::ptr_eq(&latest, &opts);
        if reconfigured {
            if let Some(w) = watcher.as_mut() {
                if latest.root != opts.root {
                    // The new root until its table is built; the served directories then.
                    watch(w, &latest, &Table::default(), false);
                }
            }
            opts = latest;
        }
        let now = fingerprint(&opts);
        let due = last_build.elapsed() >= STALE_INTERVAL;
        pending = stale && !due;
        let forced = again || reconfigured || (stale && due);
        again = false;
        if now == current && !forced {
            continue;
        }
        let started = Instant::now();
        let prev = slot.load_full();
        match Table::build(&opts, Some(&prev)) {
            Ok(table) => {
                let n = table.assets.len();
                let mem = table.mem_bytes;
                if let Some(w) = watcher.as_mut() {
                    // A watch follows its directory's inode, which a swap moved away.
                    watch(w, &opts, &table, now.root != current.root);
                }
                slot.store(Arc::new(table));
                super::metrics::table_built(name, true, true);
                tracing::info!(
                    "reloaded {}: {n} URLs, {} KiB in memory, {:?}",
                    opts.root.display(),
                    mem / 1024,
                    started.elapsed()
                );
                // Published again while we were building: go around at once.
                again = fingerprint(&opts) != now;
            }
            Err(e) => {
                super::metrics::table_built(name, true, false);
                tracing::warn!(
                    "reload of {} failed, keeping the previous table: {e:#}",
                    opts.root.display()
                )
            }
        }
        current = now;
        last_build = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_sorted_by_what_they_change() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        let root = app.join("static");
        std::fs::create_dir_all(root.join("css")).unwrap();
        let opts = BuildOptions::for_tests(&root);
        let name = |p: &str| concerns(&opts, Seen::Name(&app.join(p)));
        let content = |p: &str| concerns(&opts, Seen::Content(&app.join(p)));
        // The parent's other entries: a SQLite database and its journal, a sibling named
        // like the root, the parent itself.
        assert_eq!(content("db.sqlite3"), None);
        assert_eq!(name("db.sqlite3-journal"), None);
        assert_eq!(name("static2"), None);
        assert_eq!(name(""), None);
        // The root itself (swapped, created), names at its top: the fingerprint decides.
        assert_eq!(name("static"), Some(Wake::Event));
        assert_eq!(name("static/a.css"), Some(Wake::Event));
        // Bytes rewritten in place, at the top or below: a rebuild, whatever the fingerprint.
        assert_eq!(content("static/a.css"), Some(Wake::Stale));
        assert_eq!(content("static/css/a.css"), Some(Wake::Stale));
        // Hidden names are never served.
        assert_eq!(content("static/.a.css.swp"), None);
        assert_eq!(content("static/.git/index"), None);
        // A name added below the top: a rebuild for a plain directory; under a manifest it
        // waits for the manifest (a per-file publish renames many names before it).
        assert_eq!(name("static/css/new.css"), Some(Wake::Stale));
        std::fs::write(root.join("staticfiles.json"), "{}").unwrap();
        assert_eq!(name("static/css/new.css"), Some(Wake::Event));
        // Lost events: wake.
        assert_eq!(concerns(&opts, Seen::Overflow), Some(Wake::Event));
    }

    #[test]
    fn published_ends_the_debounce() {
        let long = Duration::from_secs(30);
        let (tx, rx) = channel();
        let t = Instant::now();
        assert_eq!(settle(Wake::Published, &rx, long), Some(false));
        tx.send(Wake::Stale).unwrap();
        tx.send(Wake::Published).unwrap();
        tx.send(Wake::Event).unwrap();
        assert_eq!(settle(Wake::Event, &rx, long), Some(true));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "waited out the debounce"
        );
        assert!(rx.try_recv().is_err(), "the burst is drained");
    }

    #[test]
    fn events_wait_out_the_debounce() {
        let (tx, rx) = channel();
        let t = Instant::now();
        tx.send(Wake::Event).unwrap();
        assert_eq!(
            settle(Wake::Event, &rx, Duration::from_millis(50)),
            Some(false)
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        drop(tx);
        assert_eq!(settle(Wake::Event, &rx, Duration::from_millis(50)), None);
    }
}
