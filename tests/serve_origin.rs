//! `staticd serve --origin s3://…`: replicas that share nothing but a real S3-compatible
//! store (SeaweedFS). Two replicas answer the same requests identically (bytes, ETag,
//! Content-Encoding, Cache-Control, Last-Modified), as a local root does; a second
//! generation is picked up by both while the first one's names keep answering; the disk
//! cache stays under its bound; with the store gone, cached objects are still answered and
//! an uncached one gets an error answer, never a hang.
use crate::common::http::Response;
use crate::common::publish::{publish, staticd_cmd};
use crate::common::s3::{Seaweed, BUCKET};
use crate::common::staticd::Staticd;
use crate::common::wait_until;
use crate::publish::project;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `staticd serve --origin URL` reaching `store` through the AWS variables alone (no
/// staticd.toml), with its own cache directory.
fn origin_cmd(store: &Seaweed, url: &str, cache: &Path, extra: &[&str]) -> Command {
    let env = store.env();
    let mut c = staticd_cmd(&["serve", "--origin", url], &env);
    c.arg("--origin-cache-dir")
        .arg(cache)
        .args(["--static-url", "/static/", "--bind", "127.0.0.1:0"])
        .args(["--workers", "2", "--log-format", "json"])
        .args(extra)
        // No staticd.toml of the directory the tests run in.
        .current_dir(cache.parent().unwrap());
    c
}

/// Bytes of the files in `dir`.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// What must be equal between two replicas' answers.
fn seen(r: &Response) -> (u16, Vec<u8>, Vec<Option<String>>) {
    let h = [
        "etag",
        "content-encoding",
        "cache-control",
        "content-type",
        "last-modified",
        "vary",
        "content-range",
        "content-length",
    ]
    .iter()
    .map(|n| r.header(n).map(str::to_string))
    .collect();
    (r.status, r.body.clone(), h)
}

/// What must be equal between an origin replica and a local root (validators differ: the
/// origin derives them from the store's listing, a local root from the bytes it hashes).
fn semantics(r: &Response) -> (u16, Vec<u8>, Vec<Option<String>>) {
    let h = [
        "content-encoding",
        "cache-control",
        "content-type",
        "vary",
        "content-range",
        "accept-ranges",
    ]
    .iter()
    .map(|n| r.header(n).map(str::to_string))
    .collect();
    (r.status, r.body.clone(), h)
}

#[test]
fn two_replicas_answer_identically_across_a_generation_switch() {
    let store = Seaweed::start();
    let (p, env) = project(&store, "compress = true\n", "");
    let css = "body { color: #123456; margin: 0 auto; }\n".repeat(200);
    p.write("css/app.css", css.as_bytes());
    p.write(
        "js/app.js",
        "console.log('staticd');\n".repeat(300).as_bytes(),
    );
    let png: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    p.write("img/logo.png", &png);
    p.run_collect(&[]);
    let url = format!("s3://{BUCKET}/site");
    publish(&p, &url, &env);
    let old_css = p.hashed("css/app.css");
    let js = p.hashed("js/app.js");
    let logo = p.hashed("img/logo.png");

    // `staticd check` takes the origin without contacting the store.
    let check = staticd_cmd(
        &["check", "--origin", &url, "--static-url", "/static/"],
        &[],
    )
    .current_dir(std::env::temp_dir())
    .output()
    .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(
        said.contains("origin s3://static/site under /static/"),
        "{said}"
    );

    // A prefix without a published manifest: a clear error naming the key, at startup.
    let tmp = tempfile::tempdir().unwrap();
    let out = origin_cmd(
        &store,
        &format!("s3://{BUCKET}/nothing"),
        &tmp.path().join("none"),
        &[],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("s3://{BUCKET}/nothing/staticfiles.json")),
        "{err}"
    );

    // Two replicas, each with its own cache; b's is smaller than what it will fetch. a
    // polls once an hour: it can only learn of a new generation from a request for a name
    // it does not list.
    let (cache_a, cache_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let bound: u64 = 24 * 1024;
    let a = Staticd::start(origin_cmd(&store, &url, &cache_a, &["--origin-poll", "1h"]));
    let b = Staticd::start(origin_cmd(
        &store,
        &url,
        &cache_b,
        &[
            "--origin-poll",
            "300ms",
            "--origin-cache-max",
            &bound.to_string(),
        ],
    ));
    // An origin sends no RFC 9842 dictionaries (src/serve/origin/table.rs says why): the
    // local root it is compared with is told the same.
    let local = Staticd::serve(&p.root(), &["--no-dictionaries"]);
    for r in [&a, &b] {
        assert_eq!(r.get("/.staticd/health/ready", &[]).status, 200, "ready");
    }

    let hashed_css = format!("/static/{old_css}");
    let requests: Vec<(String, Vec<(&str, &str)>)> = vec![
        (hashed_css.clone(), vec![("Accept-Encoding", "br, gzip")]),
        (hashed_css.clone(), vec![("Accept-Encoding", "gzip")]),
        (hashed_css.clone(), vec![]),
        (
            "/static/css/app.css".into(),
            vec![("Accept-Encoding", "br")],
        ),
        (format!("/static/{js}"), vec![("Accept-Encoding", "gzip")]),
        (format!("/static/{logo}"), vec![]),
        (format!("/static/{logo}"), vec![("Range", "bytes=100-199")]),
        ("/static/nope.css".into(), vec![]),
    ];
    for (path, headers) in &requests {
        let ra = a.get(path, headers);
        let rb = b.get(path, headers);
        assert_eq!(seen(&ra), seen(&rb), "{path} {headers:?}");
        let rl = local.get(path, headers);
        assert_eq!(
            semantics(&ra),
            semantics(&rl),
            "{path} {headers:?}: as a local root"
        );
        // The same request again: from the cache now, the same answer.
        assert_eq!(seen(&a.get(path, headers)), seen(&ra), "{path} again");
    }
    let br = a.get(&hashed_css, &[("Accept-Encoding", "br")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(
        br.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(a.get(&hashed_css, &[]).body, css.as_bytes());
    let range = a.get(&format!("/static/{logo}"), &[("Range", "bytes=100-199")]);
    assert_eq!(range.status, 206);
    assert_eq!(range.body, png[100..200]);
    assert_eq!(
        a.get("/static/css/app.css", &[]).header("cache-control"),
        Some("public, max-age=60")
    );

    // A 304 for the ETag either replica gave, on both.
    let etag = br.header("etag").unwrap().to_string();
    for r in [&a, &b] {
        let nm = r.get(
            &hashed_css,
            &[("Accept-Encoding", "br"), ("If-None-Match", &etag)],
        );
        assert_eq!(nm.status, 304, "{nm:?}");
        assert_eq!(nm.header("etag"), Some(etag.as_str()));
    }

    // The caches: a holds what it fetched; b stayed under its bound although it fetched
    // more than that.
    let fetched: u64 = [
        (hashed_css.as_str(), "br"),
        (hashed_css.as_str(), "gzip"),
        (hashed_css.as_str(), "identity"),
    ]
    .iter()
    .map(|(path, ae)| a.get(path, &[("Accept-Encoding", ae)]).body.len() as u64)
    .sum::<u64>()
        + png.len() as u64;
    assert!(fetched > bound, "{fetched} fetched, bound {bound}");
    assert!(du(&cache_a) >= fetched, "{} < {fetched}", du(&cache_a));
    assert!(du(&cache_b) <= bound, "{} > {bound}", du(&cache_b));
    assert!(du(&cache_b) > 0);

    // A second generation: css changes. Both replicas answer its new name (b by its poll,
    // a because a name it does not list makes it look again), keep answering the old one,
    // and serve the new unhashed original.
    let new_css = format!("{css}footer {{ color: red; }}\n");
    p.write("css/app.css", new_css.as_bytes());
    p.run_collect(&[]);
    publish(&p, &url, &env);
    let next = p.hashed("css/app.css");
    assert_ne!(next, old_css);
    let next_path = format!("/static/{next}");
    for r in [&a, &b] {
        let got = wait_until("the new hashed name", Duration::from_secs(30), || {
            let got = r.get(&next_path, &[("Accept-Encoding", "br")]);
            (got.status == 200).then_some(got)
        });
        assert_eq!(got.header("content-encoding"), Some("br"));
        let old = r.get(&hashed_css, &[]);
        assert_eq!(old.status, 200, "the old generation's name still answers");
        assert_eq!(old.body, css.as_bytes());
        wait_until("the new original", Duration::from_secs(30), || {
            (r.get("/static/css/app.css", &[]).body == new_css.as_bytes()).then_some(())
        });
    }
    for ae in ["br", "gzip", ""] {
        let h = [("Accept-Encoding", ae)];
        assert_eq!(
            seen(&a.get(&next_path, &h)),
            seen(&b.get(&next_path, &h)),
            "{ae}"
        );
    }
    assert_eq!(a.get(&next_path, &[]).body, new_css.as_bytes());
    assert!(du(&cache_b) <= bound, "{} > {bound}", du(&cache_b));

    // An original overwritten in the store without a new manifest (a publish between its
    // objects and its manifest, or one that died there): the listing is out of date for
    // it. The first answer may be 503; the replica lists again and answers the new bytes.
    let client = store.client("site");
    let rt = staticd::remote::store::runtime().unwrap();
    let headers = staticd::remote::store::Headers {
        content_type: "image/png".into(),
        cache_control: "public, max-age=60".into(),
        encoding: None,
    };
    let overwritten = b"not the listed bytes".to_vec();
    rt.block_on(client.put(
        "img/logo.png",
        overwritten.clone().into(),
        &headers,
        object_store::PutMode::Overwrite,
    ))
    .unwrap();
    let first = b.get("/static/img/logo.png", &[]);
    assert!(matches!(first.status, 200 | 503), "{first:?}");
    let body = wait_until("the overwritten original", Duration::from_secs(30), || {
        let r = b.get("/static/img/logo.png", &[]);
        (r.status == 200).then_some(r.body)
    });
    assert_eq!(body, overwritten);

    // Concurrent requests for an object not cached yet: one download, the same answer.
    let js_path = format!("/static/{js}");
    let answers: Vec<_> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|_| s.spawn(|| seen(&a.get(&js_path, &[("Accept-Encoding", "br")]))))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(answers[0].0, 200);
    assert!(answers.iter().all(|x| *x == answers[0]));

    // The store goes away: what is cached is still answered, identically; an object never
    // fetched gets an error answer (not a hang, not a 404), and the poll failure is logged.
    let cached = seen(&a.get(&next_path, &[("Accept-Encoding", "br")]));
    let mut store = store;
    store.kill();
    assert_eq!(
        seen(&a.get(&next_path, &[("Accept-Encoding", "br")])),
        cached
    );
    assert_eq!(a.get(&hashed_css, &[]).body, css.as_bytes());
    let cold = a.get(&format!("/static/{js}"), &[]);
    assert!(matches!(cold.status, 502 | 504), "{cold:?}");
    b.stderr.wait("the failed poll", |l| {
        l.contains("polling s3://static/site failed")
    });
    a.stderr.wait("the failed fetch", |l| {
        l.contains("origin: answering") && l.contains(&format!("static/site/{js}"))
    });
    // Every line before that one has been read: the js.br download was the only one.
    let fetched = format!("fetched s3://static/site/{js}.br:");
    let downloads = a
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains(&fetched))
        .count();
    assert_eq!(downloads, 1, "{}", a.stderr.text());

    // Starting while the store is unreachable: a clear error naming the bucket and key.
    let out = origin_cmd(&store, &url, &tmp.path().join("c"), &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("s3://static/site/staticfiles.json"), "{err}");
}
