//! `staticd dev`: collect --watch and serve in one process. An edit is served under its new
//! hashed URL, the old URL still answers, a broken edit keeps the last good generation, and a
//! burst of changes is one re-collect.
mod serve_support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Dev {
    child: Child,
    addr: std::net::SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Lines read while waiting for the address (the first collect can come before it).
    early: std::cell::RefCell<Vec<String>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn start(project: &Path) -> Dev {
        let mut child = Command::new(env!("CARGO_BIN_EXE_staticd"))
            .arg("dev")
            .arg(project)
            .args([
                "--bind",
                "127.0.0.1:0",
                "--log-format",
                "off",
                "--workers",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut early = Vec::new();
        let addr = loop {
            let line = lines
                .recv_timeout(deadline - Instant::now())
                .expect("dev server did not start");
            if let Some(a) = line.strip_prefix("staticd serve: listening on http://") {
                break a.parse().unwrap();
            }
            early.push(line);
        };
        Dev {
            child,
            addr,
            lines,
            early: early.into(),
        }
    }

    fn get(&self, path: &str) -> serve_support::Response {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        serve_support::raw(self.addr, req.as_bytes(), false)
    }

    /// Waits for a stderr line containing `needle`; returns it.
    fn wait_line(&self, needle: &str) -> String {
        let mut early = self.early.borrow_mut();
        if let Some(i) = early.iter().position(|l| l.contains(needle)) {
            let line = early.remove(i);
            early.drain(..i);
            return line;
        }
        early.clear();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn drain(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(1500));
        self.lines.try_iter().collect()
    }
}

fn project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("proj");
    fs::create_dir_all(dir.join("assets/css")).unwrap();
    fs::write(
        dir.join("staticd.toml"),
        "static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\n",
    )
    .unwrap();
    fs::write(dir.join("assets/css/app.css"), "body { color: red; }\n").unwrap();
    (tmp, dir)
}

fn hashed(root: &Path, key: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("staticfiles.json")).unwrap()).unwrap();
    v["paths"][key].as_str().unwrap().to_string()
}

fn wait_200(dev: &Dev, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while dev.get(url).status != 200 {
        assert!(Instant::now() < deadline, "{url} never answered 200");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn edit_is_served_under_new_url_and_old_still_answers() {
    let (_tmp, dir) = project();
    let root = dir.join("static");
    let dev = Dev::start(&dir);
    dev.wait_line("initial collect");
    let old = format!("/static/{}", hashed(&root, "css/app.css"));
    wait_200(&dev, &old);

    // An editor's atomic save: write a temporary file, rename it over the original.
    let tmp = dir.join("assets/css/.app.css.tmp");
    fs::write(&tmp, "body { color: blue; }\n").unwrap();
    fs::rename(&tmp, dir.join("assets/css/app.css")).unwrap();
    let line = dev.wait_line("→ /static/css/app.");
    assert!(line.contains("app.css"), "{line}");
    let new = format!("/static/{}", hashed(&root, "css/app.css"));
    assert_ne!(new, old);
    assert!(line.contains(&new), "the line names the new URL: {line}");
    wait_200(&dev, &new);
    assert_eq!(dev.get(&new).body, b"body { color: blue; }\n");
    assert_eq!(dev.get(&old).status, 200, "the old URL still answers");

    // A broken reference: the error names file and line; the last good generation stays.
    fs::write(
        dir.join("assets/css/app.css"),
        "body {\n background: url(missing.png);\n}\n",
    )
    .unwrap();
    let err = dev.wait_line("css/app.css:2:");
    assert!(err.contains("missing.png"), "{err}");
    assert_eq!(format!("/static/{}", hashed(&root, "css/app.css")), new);
    assert_eq!(dev.get(&new).status, 200);

    // Fixed again, and a new file created.
    fs::write(dir.join("assets/css/app.css"), "body { color: green; }\n").unwrap();
    fs::write(dir.join("assets/css/extra.css"), "p { margin: 0; }\n").unwrap();
    let _ = dev.wait_line("→ /static/");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("staticfiles.json")).unwrap()).unwrap();
        if v["paths"]["css/extra.css"].is_string()
            && v["paths"]["css/app.css"] != new.trim_start_matches("/static/")
        {
            break;
        }
        assert!(Instant::now() < deadline, "create and fix never published");
        std::thread::sleep(Duration::from_millis(20));
    }
    let extra = format!("/static/{}", hashed(&root, "css/extra.css"));
    wait_200(&dev, &extra);

    // A rename: the old key leaves the manifest, the new one arrives; the old file stays.
    fs::rename(
        dir.join("assets/css/extra.css"),
        dir.join("assets/css/moved.css"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("staticfiles.json")).unwrap()).unwrap();
        if v["paths"]["css/moved.css"].is_string() && v["paths"]["css/extra.css"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "rename never published");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        dev.get(&extra).status,
        200,
        "hashed files of older generations stay"
    );
}

#[test]
fn a_burst_of_changes_is_coalesced() {
    let (_tmp, dir) = project();
    let dev = Dev::start(&dir);
    dev.wait_line("initial collect");
    // Like a `git checkout`: hundreds of files within a few milliseconds.
    fs::create_dir_all(dir.join("assets/gen")).unwrap();
    for i in 0..300 {
        fs::write(dir.join(format!("assets/gen/f{i}.txt")), format!("{i}")).unwrap();
    }
    let first = dev.wait_line(" → ");
    let rest: Vec<String> = dev
        .drain()
        .into_iter()
        .filter(|l| l.contains(" → "))
        .collect();
    assert!(
        rest.len() <= 1,
        "300 files gave {} re-collects: {first} {rest:?}",
        rest.len() + 1
    );
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("static/staticfiles.json")).unwrap()).unwrap();
    assert_eq!(v["paths"].as_object().unwrap().len(), 301);
}
