//! `staticd dev`: collect --watch and serve in one process. An edit is served under its new
//! hashed URL, the old URL still answers, a broken edit keeps the last good generation, and a
//! burst of changes is one re-collect.

use crate::common::project::Project;
use crate::common::staticd::{Staticd, WAIT};
use crate::common::wait_until;
use std::fs;
use std::time::{Duration, Instant};

/// `staticd dev` on `p`, and a cursor into its stderr so that each wait sees only the lines
/// after the one the previous wait found.
struct Dev {
    server: Staticd,
    seen: std::cell::Cell<usize>,
}

impl Dev {
    fn start(p: &Project) -> Dev {
        let server = Staticd::dev(&p.dir, &["--log-format", "off", "--workers", "1"]);
        Dev {
            server,
            seen: 0.into(),
        }
    }

    /// The next stderr line containing `needle`.
    fn wait_line(&self, needle: &str) -> String {
        let mut at = self.seen.get();
        let line = self
            .server
            .stderr
            .wait_from(&mut at, needle, WAIT, |l| l.contains(needle));
        self.seen.set(at);
        line
    }

    fn wait_200(&self, url: &str) {
        wait_until(&format!("{url} to answer 200"), WAIT, || {
            (self.server.get(url, &[]).status == 200).then_some(())
        });
    }
}

/// One stylesheet in a staticd.toml project.
fn project() -> Project {
    Project::new().files(&[("css/app.css", b"body { color: red; }\n")])
}

#[test]
fn edit_is_served_under_new_url_and_old_still_answers() {
    let p = project();
    let dev = Dev::start(&p);
    dev.wait_line("initial collect");
    let old = format!("/static/{}", p.hashed("css/app.css"));
    dev.wait_200(&old);

    // An editor's atomic save: write a temporary file, rename it over the original.
    let tmp = p.dir.join("assets/css/.app.css.tmp");
    fs::write(&tmp, "body { color: blue; }\n").unwrap();
    fs::rename(&tmp, p.dir.join("assets/css/app.css")).unwrap();
    let line = dev.wait_line("→ /static/css/app.");
    assert!(line.contains("app.css"), "{line}");
    let new = format!("/static/{}", p.hashed("css/app.css"));
    assert_ne!(new, old);
    assert!(line.contains(&new), "the line names the new URL: {line}");
    dev.wait_200(&new);
    assert_eq!(dev.server.get(&new, &[]).body, b"body { color: blue; }\n");
    assert_eq!(
        dev.server.get(&old, &[]).status,
        200,
        "the old URL still answers"
    );

    // A broken reference: the error names its kind, file and line; the last good generation
    // stays.
    p.write(
        "css/app.css",
        b"body {\n background: url(missing.png);\n}\n",
    );
    dev.wait_line("error[missing_reference]: 1 missing reference");
    let err = dev.wait_line("css/app.css:2:");
    assert!(err.contains("missing.png"), "{err}");
    assert_eq!(format!("/static/{}", p.hashed("css/app.css")), new);
    assert_eq!(dev.server.get(&new, &[]).status, 200);

    // Fixed again, and a new file created.
    p.write("css/app.css", b"body { color: green; }\n");
    p.write("css/extra.css", b"p { margin: 0; }\n");
    let _ = dev.wait_line("→ /static/");
    wait_until("the create and the fix to be published", WAIT, || {
        let m = p.manifest();
        (m.contains_key("css/extra.css") && m["css/app.css"] != new.trim_start_matches("/static/"))
            .then_some(())
    });
    let extra = format!("/static/{}", p.hashed("css/extra.css"));
    dev.wait_200(&extra);

    // A rename: the old key leaves the manifest, the new one arrives; the old file stays.
    fs::rename(
        p.dir.join("assets/css/extra.css"),
        p.dir.join("assets/css/moved.css"),
    )
    .unwrap();
    wait_until("the rename to be published", WAIT, || {
        let m = p.manifest();
        (m.contains_key("css/moved.css") && !m.contains_key("css/extra.css")).then_some(())
    });
    assert_eq!(
        dev.server.get(&extra, &[]).status,
        200,
        "hashed files of older generations stay"
    );
}

#[test]
fn a_burst_of_changes_is_coalesced() {
    let p = project();
    let dev = Dev::start(&p);
    dev.wait_line("initial collect");
    // Like a `git checkout`: hundreds of files within a few milliseconds. The watcher starts
    // a re-collect once the sources were quiet for 10 ms, or 500 ms after a batch began; on
    // a loaded machine this writer can itself pause that long, so those pauses are counted.
    let (mut pauses, started) = (0, Instant::now());
    let mut last = started;
    for i in 0..300 {
        p.write(&format!("gen/f{i}.txt"), format!("{i}").as_bytes());
        let now = Instant::now();
        if now - last >= Duration::from_millis(8) {
            pauses += 1;
        }
        last = now;
    }
    let allowed = 1 + pauses + (started.elapsed().as_millis() / 500) as usize;
    let first = dev.wait_line(" → ");
    wait_until("all 300 files to be published", WAIT, || {
        (p.manifest().len() == 301).then_some(())
    });
    // Events are handled in order: once a change made after the burst has been re-collected,
    // every re-collect the burst caused has printed its line before that one.
    let from = dev.seen.get();
    p.write("css/app.css", b"body { color: navy; }\n");
    dev.wait_line("→ /static/css/app.");
    let lines = dev.server.stderr.snapshot();
    let rest: Vec<&String> = lines[from..dev.seen.get() - 1]
        .iter()
        .filter(|l| l.contains(" → "))
        .collect();
    // One more for a pause the notify thread (not this writer) took on a loaded machine.
    assert!(
        rest.len() < allowed + 1,
        "300 files gave {} re-collects ({pauses} pauses while writing, {allowed} allowed): {first} {rest:?}",
        rest.len() + 1
    );
    assert_eq!(p.manifest().len(), 301);
}
