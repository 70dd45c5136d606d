//! Live reload under traffic, against the real binary: a client loops over the old
//! manifest's URLs while a new generation is published, first by per-file renames (manifest
//! last), then by swapping the whole directory with `renameat2(RENAME_EXCHANGE)`. New URLs
//! must answer within a couple of seconds; old URLs must never fail.

use crate::common::fixture::{noise, text, write_manifest, write_variants, StaticRoot};
use crate::common::http::{self, Conn, Expect};
use crate::common::staticd::{Staticd, WAIT};
use crate::common::{wait_until, write_file};
// The swap `staticd collect` publishes with.
use staticd::collect::publish::exchange;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IMMUTABLE: &str = "max-age=31536000, immutable";
const SHORT: &str = "max-age=60";

/// Generation `n`: an original, its hashed copy (with variants), a large hashed binary
/// (streamed from disk, not memory) and, from generation 2 on, a brand-new file.
fn write_generation(root: &Path, n: u32) -> Vec<String> {
    let css = text(4000, &format!("gen{n}"));
    write_variants(root, "css/app.css", &css);
    let hashed_css = format!("css/app.{n:012x}.css");
    write_variants(root, &hashed_css, &css);
    let hashed_bin = format!("media/video.{:012x}.bin", 0xb000 + n);
    write_file(root, &hashed_bin, &noise(150_000, u64::from(n)));
    let mut pairs = vec![
        ("css/app.css".to_string(), hashed_css.clone()),
        ("media/video.bin".to_string(), hashed_bin.clone()),
    ];
    if n >= 2 {
        let new_js = format!("js/new.{:012x}.js", 0x7000 + n);
        write_file(root, &new_js, b"console.log('new');");
        pairs.push(("js/new.js".into(), new_js));
    }
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    write_manifest(root, &refs);
    pairs
        .into_iter()
        .map(|(_, h)| format!("/static/{h}"))
        .collect()
}

/// Loops GETs over `urls` on keep-alive connections of the strict client, recording every
/// answer that is not a well-framed 200 (a body shorter than its Content-Length included) and
/// how many times each URL was answered.
struct Traffic {
    stop: Arc<AtomicBool>,
    urls: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicU64>,
    served: Arc<Mutex<HashMap<String, u64>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr, urls: Vec<String>) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let urls = Arc::new(Mutex::new(urls));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let served = Arc::new(Mutex::new(HashMap::new()));
        let threads = (0..2)
            .map(|i| {
                let (stop, urls, failures, requests, served) = (
                    stop.clone(),
                    urls.clone(),
                    failures.clone(),
                    requests.clone(),
                    served.clone(),
                );
                std::thread::spawn(move || {
                    let mut conn: Option<Conn> = None;
                    let mut k = i;
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let list = urls.lock().unwrap().clone();
                        let u = &list[k % list.len()];
                        k += 1;
                        let ae = ["br", "gzip", ""][k % 3];
                        let req = http::request_bytes(
                            "GET",
                            u,
                            &[("Accept-Encoding", ae), ("Connection", "keep-alive")],
                            b"",
                        );
                        let c = conn.get_or_insert_with(|| Conn::open(addr));
                        let answer = c
                            .stream
                            .write_all(&req)
                            .map_err(|e| e.to_string())
                            .and_then(|()| {
                                c.try_response(Expect::default()).map_err(|e| e.to_string())
                            });
                        match answer {
                            Ok(r) if r.status == 200 => {
                                *served.lock().unwrap().entry(u.clone()).or_insert(0) += 1;
                                if r.header("connection") == Some("close") {
                                    conn = None;
                                }
                            }
                            Ok(r) => {
                                failures.lock().unwrap().push(format!("{u}: {}", r.status));
                                conn = None;
                            }
                            Err(e) => {
                                failures.lock().unwrap().push(format!("{u}: {e}"));
                                conn = None;
                            }
                        }
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            urls,
            failures,
            requests,
            served,
            threads,
        }
    }

    fn add(&self, more: &[String]) {
        self.urls.lock().unwrap().extend(more.iter().cloned());
    }

    /// Waits until every URL in the list has been answered `more` times since this call
    /// (returns early once something failed or a client stopped: `finish` reports it).
    fn wait_each(&self, more: u64, what: &str) {
        let urls = self.urls.lock().unwrap().clone();
        let count = |u: &String| self.served.lock().unwrap().get(u).copied().unwrap_or(0);
        let want: Vec<(String, u64)> = urls.iter().map(|u| (u.clone(), count(u) + more)).collect();
        wait_until(what, WAIT, || {
            let done = want.iter().all(|(u, n)| count(u) >= *n)
                || !self.failures.lock().unwrap().is_empty()
                || self.threads.iter().any(|t| t.is_finished());
            done.then_some(())
        });
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.requests.load(Ordering::Relaxed),
            self.failures.lock().unwrap().clone(),
        )
    }
}

/// Polls until `url` answers 200; returns how long it took.
fn wait_for(s: &Staticd, url: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    wait_until(&format!("{url} to answer 200"), within, || {
        (s.get(url, &[]).status == 200).then_some(())
    });
    t0.elapsed()
}

fn cache_control(s: &Staticd, url: &str) -> String {
    s.get(url, &[])
        .header("cache-control")
        .unwrap_or("")
        .to_string()
}

/// Waits (3 s at most each) until every URL of a new generation answers.
fn appear(s: &Staticd, new: &[String]) {
    for u in new {
        let took = wait_for(s, u, Duration::from_secs(3));
        eprintln!("{u} appeared after {took:?}");
    }
}

/// Stops the traffic: no request failed, and the cache policy moved from the old generation
/// to the new one.
fn assert_switched(s: &Staticd, traffic: Traffic, old: &[String], new: &[String]) {
    let (n, failures) = traffic.finish();
    assert!(
        failures.is_empty(),
        "{} failures of {n}: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(n > 20, "only {n} requests");
    // A new name answers 200 from the new tree as soon as it is published, with the short
    // max-age (Table::open_unlisted); the reloaded table makes it immutable.
    for u in new {
        wait_until(
            &format!("{u} to be served as immutable"),
            Duration::from_secs(10),
            || (cache_control(s, u) == IMMUTABLE).then_some(()),
        );
    }
    for u in old {
        assert_eq!(cache_control(s, u), SHORT, "old generation {u}");
    }
}

#[test]
fn reload_by_per_file_renames_under_traffic() {
    let fx = StaticRoot::new();
    let old = write_generation(&fx.root, 1);
    let s = Staticd::serve(&fx.root, &[]);
    for u in &old {
        assert_eq!(cache_control(&s, u), IMMUTABLE, "{u}");
    }
    let mut watched = old.clone();
    watched.push("/static/css/app.css".into());
    let traffic = Traffic::start(s.addr, watched);
    traffic.wait_each(2, "traffic over generation 1");

    // Publish generation 2 in place: files first (originals replaced by rename), manifest last.
    let staging = fx.dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let new = write_generation(&staging, 2);
    for entry in walkdir::WalkDir::new(&staging) {
        let e = entry.unwrap();
        let rel = e.path().strip_prefix(&staging).unwrap();
        if e.file_type().is_file() && rel != Path::new("staticfiles.json") {
            let dest = fx.root.join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::rename(e.path(), dest).unwrap();
        }
    }
    std::fs::rename(
        staging.join("staticfiles.json"),
        fx.root.join("staticfiles.json"),
    )
    .unwrap();

    appear(&s, &new);
    traffic.add(&new);
    traffic.wait_each(3, "traffic over both generations");
    assert_switched(&s, traffic, &old, &new);
    let css = s.get("/static/css/app.css", &[]);
    assert_eq!(css.body, text(4000, "gen2"), "original replaced");
}

#[test]
fn reload_by_directory_exchange_under_traffic() {
    let fx = StaticRoot::new();
    let old = write_generation(&fx.root, 1);
    write_file(&fx.root, "gone.txt", b"only in generation 1");
    let s = Staticd::serve(&fx.root, &[]);
    assert_eq!(s.get("/static/gone.txt", &[]).status, 200);
    let traffic = Traffic::start(s.addr, old.clone());
    traffic.wait_each(2, "traffic over generation 1");

    // The next generation is a complete directory: older hashed files carried over (as
    // collect keeps them), new ones added, then swapped in with one syscall.
    let next = fx.dir.path().join("static.next");
    std::fs::create_dir_all(&next).unwrap();
    write_generation(&next, 1);
    std::fs::remove_file(next.join("staticfiles.json")).unwrap();
    let new = write_generation(&next, 2);
    exchange(&next, &fx.root).expect("renameat2(RENAME_EXCHANGE)");

    appear(&s, &new);
    traffic.add(&new);
    traffic.wait_each(2, "traffic over both generations");
    // Collect then deletes the previous generation; nothing may break.
    std::fs::remove_dir_all(&next).unwrap();
    traffic.wait_each(3, "traffic after the old generation was deleted");
    assert_switched(&s, traffic, &old, &new);
    assert_eq!(s.get("/static/gone.txt", &[]).status, 404);

    // A second swap (back and forth) keeps working: the watch follows the new directory.
    let third = fx.dir.path().join("static.third");
    std::fs::create_dir_all(&third).unwrap();
    let newer = write_generation(&third, 3);
    exchange(&third, &fx.root).unwrap();
    for u in &newer {
        wait_for(&s, u, Duration::from_secs(3));
    }
}

#[test]
fn root_created_after_start_and_vanished_files() {
    let fx = StaticRoot::new();
    std::fs::remove_dir_all(&fx.root).unwrap();
    let s = Staticd::serve(&fx.root, &["--mem-file-max", "1000"]);
    assert_eq!(s.get("/static/css/app.css", &[]).status, 404);
    let urls = write_generation(&fx.root, 1);
    wait_for(&s, &urls[0], Duration::from_secs(3));

    // A disk-backed file deleted behind the table's back: 404, never a 5xx.
    let big = fx.root.join(urls[1].trim_start_matches("/static/"));
    std::fs::remove_file(&big).unwrap();
    let r = s.get(&urls[1], &[]);
    assert_eq!(r.status, 404);
    // Replaced by different bytes of another size: not served under the old validators.
    write_file(&fx.root, "css/app.css", b"changed");
    let r = s.get("/static/css/app.css", &[]);
    assert!(r.status == 404 || r.body == b"changed", "{}", r.status);
}

/// Rewrites `rel` under `root` in place: the same inode, as `cp` over a file or an editor
/// saving does (no rename, so the directory listing does not move).
fn rewrite_in_place(root: &Path, rel: &str, bytes: &[u8]) {
    use std::os::unix::fs::MetadataExt;
    let path = root.join(rel);
    let ino = std::fs::metadata(&path).unwrap().ino();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.write_all(bytes).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino);
}

/// A plain directory (no manifest) whose files are rewritten in place, at the top and in
/// subdirectories, small (held in memory) and large (read from disk), one growing from
/// memory size to disk size: each is then served as it is now, with its new length and a new
/// ETag, within seconds. A file added in a subdirectory is served too.
#[test]
fn files_rewritten_in_place_are_served_as_they_are_now() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("static");
    let files: [(&str, Vec<u8>, Vec<u8>); 4] = [
        ("grows.bin", noise(100, 1), noise(150_000, 2)),
        (
            "css/app.css",
            b"body{color:red}".to_vec(),
            b"body{color:blue}".to_vec(),
        ),
        ("big.bin", noise(200_000, 3), noise(150_000, 4)),
        ("js/lib/deep.js", text(120_000, "old"), text(120_000, "new")),
    ];
    for (rel, old, _) in &files {
        write_file(&root, rel, old);
    }
    let s = Staticd::serve(&root, &[]);
    let mut etags = Vec::new();
    for (rel, old, _) in &files {
        let r = s.get(&format!("/static/{rel}"), &[]);
        assert_eq!((r.status, &r.body), (200, old), "{rel}");
        etags.push(r.header("etag").expect("an ETag").to_string());
    }
    for (rel, _, new) in &files {
        rewrite_in_place(&root, rel, new);
    }
    for ((rel, _, new), old_etag) in files.iter().zip(&etags) {
        let url = format!("/static/{rel}");
        wait_until(
            &format!("{url} to be served as rewritten"),
            Duration::from_secs(10),
            || {
                let r = s.get(&url, &[]);
                (r.status == 200 && &r.body == new && r.header("etag") != Some(old_etag))
                    .then_some(())
            },
        );
        let r = s.get(&url, &[]);
        assert_eq!(r.header("content-length"), Some(&*new.len().to_string()));
    }
    write_file(&root, "css/added.css", b"p{}");
    wait_for(&s, "/static/css/added.css", Duration::from_secs(10));
}
