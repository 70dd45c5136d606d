//! collect and serve meet only in STATIC_ROOT and the manifest: a real `staticd collect`
//! publishing a new generation under a running `staticd serve`, while a client loops over the
//! old manifest's URLs and then the new one's.
mod serve_support;

use serve_support::Server;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn collect(project: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_staticd"))
        .arg("collect")
        .arg(project)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn manifest(root: &Path) -> BTreeMap<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("staticfiles.json")).unwrap()).unwrap();
    v["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn recollect_under_traffic_serves_old_and_new() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("proj");
    fs::create_dir_all(project.join("assets/css")).unwrap();
    fs::create_dir_all(project.join("assets/img")).unwrap();
    fs::write(
        project.join("staticd.toml"),
        "static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\n",
    )
    .unwrap();
    fs::write(project.join("assets/img/a.png"), b"\x89PNG one").unwrap();
    fs::write(
        project.join("assets/css/app.css"),
        "body { background: url(../img/a.png); }\n".repeat(50),
    )
    .unwrap();
    collect(&project);
    let root = project.join("static");
    let old = manifest(&root);
    let server = Server::start(&root, &[]);
    let old_urls: Vec<String> = old.values().map(|h| format!("/static/{h}")).collect();
    for u in &old_urls {
        let r = server.get(u, &[]);
        assert_eq!(r.status, 200, "{u}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, failures, requests) = (stop.clone(), failures.clone(), requests.clone());
        let addr = server.addr;
        let urls = old_urls.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    let req = format!("GET {u} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                    let r = serve_support::raw(addr, req.as_bytes(), false);
                    requests.fetch_add(1, Ordering::Relaxed);
                    if r.status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    // A new image: the image and the CSS that references it get new names.
    fs::write(project.join("assets/img/a.png"), b"\x89PNG two").unwrap();
    collect(&project);
    let new = manifest(&root);
    assert_ne!(new["img/a.png"], old["img/a.png"]);
    assert_ne!(new["css/app.css"], old["css/app.css"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    for h in new.values() {
        let u = format!("/static/{h}");
        loop {
            let r = server.get(&u, &[]);
            if r.status == 200 {
                assert_eq!(
                    r.header("cache-control"),
                    Some("public, max-age=31536000, immutable")
                );
                break;
            }
            assert!(Instant::now() < deadline, "{u} never answered 200");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    assert!(requests.load(Ordering::Relaxed) > 10);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "an old URL failed");
    // Old generation still answers, now as a non-current file.
    let r = server.get(&format!("/static/{}", old["css/app.css"]), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
}
