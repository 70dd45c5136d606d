//! collect and serve meet only in STATIC_ROOT and the manifest: a real `staticd collect`
//! publishing a new generation under a running `staticd serve`, while a client loops over the
//! old manifest's URLs and then the new one's.

use crate::common::http::{self, Conn, Expect};
use crate::common::project::Project;
use crate::common::staticd::{Staticd, WAIT};
use crate::common::wait_until;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// GET `u` on a connection of its own; anything but a well-framed 200 is a failure.
fn get_ok(addr: SocketAddr, u: &str) -> Result<(), String> {
    let mut c = Conn::open(addr);
    c.send(&http::request_bytes("GET", u, &[], b""));
    match c.try_response(Expect::default()) {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("{u}: {}", r.status)),
        Err(e) => Err(format!("{u}: {e}")),
    }
}

#[test]
fn recollect_under_traffic_serves_old_and_new() {
    let body = "body { background: url(../img/a.png); }\n".repeat(50);
    let project = Project::new().files(&[
        ("img/a.png", b"\x89PNG one".as_slice()),
        ("css/app.css", body.as_bytes()),
    ]);
    project.run_collect(&[]);
    let root = project.root();
    let old = project.manifest();
    let server = Staticd::serve(&root, &[]);
    let old_urls: Vec<String> = old.values().map(|h| format!("/static/{h}")).collect();
    for u in &old_urls {
        let r = server.get(u, &[]);
        assert_eq!(r.status, 200, "{u}");
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=31536000, immutable")
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, failures, requests) = (stop.clone(), failures.clone(), requests.clone());
        let addr = server.addr;
        let urls = old_urls.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    if let Err(e) = get_ok(addr, u) {
                        failures.lock().unwrap().push(e);
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // A new image: the image and the CSS that references it get new names.
    project.write("img/a.png", b"\x89PNG two");
    project.run_collect(&[]);
    let new = project.manifest();
    assert_ne!(new["img/a.png"], old["img/a.png"]);
    assert_ne!(new["css/app.css"], old["css/app.css"]);
    for h in new.values() {
        let u = format!("/static/{h}");
        // Before the reload lands, a new name already answers 200 from the new tree, with
        // the short max-age (Table::open_unlisted); the reloaded table makes it immutable.
        wait_until(
            &format!("{u} to answer 200 as immutable"),
            Duration::from_secs(10),
            || {
                let r = server.get(&u, &[]);
                assert_eq!(r.status, 200, "{u} after the publish");
                (r.header("cache-control") == Some("max-age=31536000, immutable")).then_some(())
            },
        );
    }
    // The client goes on over the old URLs for two more rounds after the new generation
    // answered (or stops early, if it failed).
    let after = requests.load(Ordering::Relaxed) + 2 * old_urls.len();
    wait_until("two more rounds of the client", WAIT, || {
        (requests.load(Ordering::Relaxed) >= after || client.is_finished()).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    assert!(requests.load(Ordering::Relaxed) > 10);
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "an old URL failed: {failures:?}");
    // Old generation still answers, now as a non-current file.
    let r = server.get(&format!("/static/{}", old["css/app.css"]), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
}

/// Version `v` of a file of about `size` bytes: a first line naming the version, then text
/// that compresses quickly (so ten collects with brotli stay fast).
fn version(v: usize, size: usize) -> Vec<u8> {
    let mut s = format!("/* version {v} */\n");
    while s.len() < size {
        s.push_str("a { color: red; margin: 0 auto; }\n");
    }
    s.into_bytes()
}

/// Which version `body` is, if any (identity, or gzip-decoded).
fn version_of(body: &[u8], gzip: bool) -> Option<usize> {
    let body = if gzip {
        crate::common::fixture::ungz(body)
    } else {
        body.to_vec()
    };
    let first = body.split(|&b| b == b'\n').next()?;
    let v = std::str::from_utf8(first)
        .ok()?
        .strip_prefix("/* version ")?
        .strip_suffix(" */")?
        .parse()
        .ok()?;
    (body.len() > 1000 && body == version(v, body.len().max(1)).as_slice()[..body.len()])
        .then_some(v)
}

/// A file that exists before and after a collect answers 200 throughout, with the bytes of
/// one of the generations: an unhashed 200 KB file and a hashed 2 MB one, both on disk, both
/// replaced by each of ten collects while a client loops over every URL seen so far.
#[test]
fn replaced_files_answer_200_throughout_ten_collects() {
    const SMALL: usize = 200 * 1024;
    const BIG: usize = 2 * 1024 * 1024;
    let project = Project::new().files(&[
        ("css/app.css", &version(0, SMALL)),
        ("js/big.js", &version(0, BIG)),
    ]);
    project.run_collect(&[]);
    let server = Staticd::serve(&project.root(), &[]);
    let urls = Arc::new(Mutex::new(vec![
        "/static/css/app.css".to_string(),
        "/static/js/big.js".to_string(),
        format!("/static/{}", project.hashed("js/big.js")),
    ]));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let client = {
        let (urls, stop, failures, requests) = (
            urls.clone(),
            stop.clone(),
            failures.clone(),
            requests.clone(),
        );
        let addr = server.addr;
        std::thread::spawn(move || {
            let mut gzip = false;
            while !stop.load(Ordering::Relaxed) {
                let list = urls.lock().unwrap().clone();
                for u in &list {
                    gzip = !gzip;
                    let headers: &[(&str, &str)] = if gzip {
                        &[("Accept-Encoding", "gzip")]
                    } else {
                        &[]
                    };
                    // Every failure is recorded with its reason, never a panic of this
                    // thread (whose message the join would lose).
                    let response = Conn::try_open(addr)
                        .and_then(|mut c| {
                            use std::io::Write;
                            c.stream
                                .write_all(&http::request_bytes("GET", u, headers, b""))?;
                            Ok(c)
                        })
                        .map_err(|e| http::Error::Io(format!("connect or send: {e}")))
                        .and_then(|mut c| c.try_response(Expect::default()));
                    let verdict = match response {
                        Ok(r) if r.status == 200 => {
                            let coded = r.header("content-encoding") == Some("gzip");
                            match version_of(&r.body, coded) {
                                Some(_) => Ok(()),
                                None => Err(format!("{u}: 200 with bytes of no version")),
                            }
                        }
                        Ok(r) => Err(format!("{u}: {}", r.status)),
                        Err(e) => Err(format!("{u}: {e}")),
                    };
                    if let Err(e) = verdict {
                        failures.lock().unwrap().push(e);
                    }
                    requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    for v in 1..=10 {
        project.write("css/app.css", &version(v, SMALL));
        project.write("js/big.js", &version(v, BIG));
        let before = requests.load(Ordering::Relaxed);
        project.run_collect(&[]);
        urls.lock()
            .unwrap()
            .push(format!("/static/{}", project.hashed("js/big.js")));
        // Some traffic after each publish, before the next one.
        wait_until("requests after the publish", WAIT, || {
            (requests.load(Ordering::Relaxed) > before + 10 || client.is_finished()).then_some(())
        });
    }
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let failures = failures.lock().unwrap();
    let n = requests.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {n} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(n > 100, "only {n} requests");
}

/// `collect --link` makes each unhashed original a symlink to its source: an absolute path
/// outside STATIC_ROOT, which the table never follows (README, "A table, not a filesystem
/// walk"). The originals are 404; the hashed names, real files and what templates
/// reference, are served.
#[test]
fn link_originals_are_not_served_and_hashed_copies_are() {
    let project = Project::new().files(&[
        ("css/app.css", b"body{}".as_slice()),
        ("img/a.png", b"\x89PNG two"),
    ]);
    project.run_collect(&["--link"]);
    let root = project.root();
    let manifest = project.manifest();
    assert_eq!(manifest.len(), 2, "{manifest:?}");
    let s = Staticd::serve(&root, &[]);
    for (original, hashed) in &manifest {
        let meta = std::fs::symlink_metadata(root.join(original)).unwrap();
        assert!(meta.file_type().is_symlink(), "{original} is not a symlink");
        let r = s.get(&format!("/static/{hashed}"), &[]);
        assert_eq!(r.status, 200, "{hashed}");
        assert_eq!(
            r.body,
            std::fs::read(project.dir.join("assets").join(original)).unwrap()
        );
        assert_eq!(s.get(&format!("/static/{original}"), &[]).status, 404);
    }
}
