//! `staticd serve --origin s3://…`: replicas that share nothing but a real S3-compatible
//! store. Against SeaweedFS: two replicas answer the same requests identically (bytes, ETag,
//! Content-Encoding, Cache-Control, Last-Modified), as a local root does; a second
//! generation is picked up by both while the first one's names keep answering; the disk
//! cache stays under its bound; with the store gone, cached objects are still answered and
//! an uncached one gets an error answer, never a hang. Against moto's server (the second S3
//! dialect): negotiation, 304, Range and a second publish followed by the poll. On both,
//! HTTP/2 (h2c with prior knowledge) answers as HTTP/1.1 does.
use crate::common::http::Response;
use crate::common::moto::Moto;
use crate::common::publish::{publish, staticd_cmd};
use crate::common::s3::{Seaweed, BUCKET};
use crate::common::staticd::Staticd;
use crate::common::tls::fetch;
use crate::common::wait_until;
use crate::publish::project;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `staticd serve --origin URL` reaching the store through the AWS variables `env` alone (no
/// staticd.toml), with its own cache directory.
fn origin_cmd(env: &[(&str, String)], url: &str, cache: &Path, extra: &[&str]) -> Command {
    let mut c = staticd_cmd(&["serve", "--origin", url], env);
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

/// What HTTP/2 must answer as HTTP/1.1 does: status, the headers that say what the bytes
/// are, and the bytes (compared apart: a mismatch must not print them).
type Essentials = (u16, Vec<Option<String>>);
const ESSENTIAL: [&str; 5] = [
    "etag",
    "content-encoding",
    "content-range",
    "cache-control",
    "last-modified",
];

/// Each request over HTTP/1.1 (staticd's own loop) and over h2c with prior knowledge (curl
/// `--http2-prior-knowledge`; actix's HTTP/2 front end) gets the same answer from the
/// replica `r`. curl sends no Accept-Encoding of its own and decodes nothing (no
/// `--compressed`), so both see the bytes as sent.
fn same_over_h2c(r: &Staticd, requests: &[(String, Vec<(&str, &str)>)]) {
    for (path, headers) in requests {
        let h1 = r.get(path, headers);
        let mut args = vec!["--http2-prior-knowledge".to_string()];
        for (k, v) in headers {
            args.extend(["-H".to_string(), format!("{k}: {v}")]);
        }
        args.push(r.url(path));
        let h2 = fetch(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(h2.version, "2", "{path}: not HTTP/2");
        let h1_seen: Essentials = (
            h1.status,
            ESSENTIAL
                .iter()
                .map(|n| h1.header(n).map(str::to_string))
                .collect(),
        );
        let h2_seen: Essentials = (
            h2.status,
            ESSENTIAL
                .iter()
                .map(|n| h2.header(n).map(str::to_string))
                .collect(),
        );
        assert_eq!(h1_seen, h2_seen, "{path} {headers:?}: HTTP/1.1 vs h2c");
        assert!(
            h1.body == h2.body,
            "{path} {headers:?}: HTTP/1.1 sent {} bytes, h2c {} other ones",
            h1.body.len(),
            h2.body.len()
        );
    }
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
        &store.env(),
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
    let a = Staticd::start(origin_cmd(
        &store.env(),
        &url,
        &cache_a,
        &["--origin-poll", "1h"],
    ));
    let b = Staticd::start(origin_cmd(
        &store.env(),
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
        Some("max-age=31536000, immutable")
    );
    assert_eq!(a.get(&hashed_css, &[]).body, css.as_bytes());
    let range = a.get(&format!("/static/{logo}"), &[("Range", "bytes=100-199")]);
    assert_eq!(range.status, 206);
    assert_eq!(range.body, png[100..200]);
    assert_eq!(
        a.get("/static/css/app.css", &[]).header("cache-control"),
        Some("max-age=60")
    );

    // A 304 for the ETag either replica gave, on both.
    let etag = br.header("etag").unwrap().to_string();
    for r in [&a, &b] {
        let nm = r.get(
            &hashed_css,
            &[("Accept-Encoding", "br"), ("If-None-Match", etag.as_str())],
        );
        assert_eq!(nm.status, 304, "{nm:?}");
        assert_eq!(nm.header("etag"), Some(etag.as_str()));
    }

    // HTTP/2 answers as HTTP/1.1 does, for cached objects and for ones it fetches first.
    let mut over_h2 = requests.clone();
    over_h2.push((
        hashed_css.clone(),
        vec![("Accept-Encoding", "br"), ("If-None-Match", etag.as_str())],
    ));
    same_over_h2c(&b, &over_h2);

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
    let out = origin_cmd(&store.env(), &url, &tmp.path().join("c"), &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("s3://static/site/staticfiles.json"), "{err}");
}

/// The second S3 dialect: a replica of a moto store answers a hashed asset with br, gzip or
/// identity (the bytes collect wrote), 304 for its ETag, a Range, the same over h2c; its
/// polls are conditional GETs the server answers 304; a second publish is followed within a
/// deadline while the first generation's names keep answering.
#[test]
fn a_replica_of_a_moto_store_negotiates_revalidates_and_follows_a_publish() {
    let moto = Moto::start();
    let (p, env) = crate::publish_moto::project(&moto, "compress = true\n", "");
    let css = "main { padding: 1em 2em; color: #654321; }\n".repeat(200);
    p.write("css/site.css", css.as_bytes());
    let png: Vec<u8> = (0..12_000u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
        .collect();
    p.write("img/mark.png", &png);
    p.run_collect(&[]);
    let url = format!("s3://{}/site", crate::common::moto::BUCKET);
    publish(&p, &url, &env);
    let root = p.root();
    let old_css = p.hashed("css/site.css");
    let mark = p.hashed("img/mark.png");

    let tmp = tempfile::tempdir().unwrap();
    let r = Staticd::start(origin_cmd(
        &moto.env(),
        &url,
        &tmp.path().join("cache"),
        &["--origin-poll", "300ms"],
    ));
    let local = Staticd::serve(&root, &["--no-dictionaries"]);
    assert_eq!(r.get("/.staticd/health/ready", &[]).status, 200);

    // Negotiation: each coding's bytes are the file collect wrote for it.
    let hashed_css = format!("/static/{old_css}");
    let mut etags = Vec::new();
    for (ae, coding, file) in [
        ("br, gzip", Some("br"), format!("{old_css}.br")),
        ("gzip", Some("gzip"), format!("{old_css}.gz")),
        ("identity", None, old_css.clone()),
    ] {
        let got = r.get(&hashed_css, &[("Accept-Encoding", ae)]);
        assert_eq!(got.status, 200, "{ae}: {got:?}");
        assert_eq!(got.header("content-encoding"), coding, "{ae}");
        assert_eq!(got.body, std::fs::read(root.join(&file)).unwrap(), "{ae}");
        assert_eq!(
            got.header("cache-control"),
            Some("max-age=31536000, immutable")
        );
        let etag = got.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"'), "a strong ETag: {etag}");
        // From the cache now: the same answer.
        assert_eq!(
            seen(&r.get(&hashed_css, &[("Accept-Encoding", ae)])),
            seen(&got),
            "{ae} again"
        );
        // 304 for it, with it.
        let nm = r.get(
            &hashed_css,
            &[("Accept-Encoding", ae), ("If-None-Match", etag.as_str())],
        );
        assert_eq!(nm.status, 304, "{ae}: {nm:?}");
        assert_eq!(nm.header("etag"), Some(etag.as_str()));
        assert!(nm.body.is_empty());
        etags.push(etag);
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), 3, "one ETag per coding: {etags:?}");

    // A Range of a file without variants; the unhashed original revalidates.
    let ranged = r.get(&format!("/static/{mark}"), &[("Range", "bytes=100-199")]);
    assert_eq!(ranged.status, 206, "{ranged:?}");
    assert_eq!(ranged.header("content-range"), Some("bytes 100-199/12000"));
    assert_eq!(ranged.body, png[100..200]);
    assert_eq!(
        r.get("/static/css/site.css", &[]).header("cache-control"),
        Some("max-age=60")
    );

    // As a local root answers (validators aside: the origin's come from the listing).
    let requests: Vec<(String, Vec<(&str, &str)>)> = vec![
        (hashed_css.clone(), vec![("Accept-Encoding", "br, gzip")]),
        (hashed_css.clone(), vec![("Accept-Encoding", "gzip")]),
        (hashed_css.clone(), vec![("Accept-Encoding", "identity")]),
        (
            "/static/css/site.css".into(),
            vec![("Accept-Encoding", "br")],
        ),
        (format!("/static/{mark}"), vec![]),
        (format!("/static/{mark}"), vec![("Range", "bytes=100-199")]),
        ("/static/nope.css".into(), vec![]),
    ];
    for (path, headers) in &requests {
        assert_eq!(
            semantics(&r.get(path, headers)),
            semantics(&local.get(path, headers)),
            "{path} {headers:?}: as a local root"
        );
    }
    let mut over_h2 = requests.clone();
    over_h2.push((
        hashed_css.clone(),
        vec![
            ("Accept-Encoding", "br"),
            ("If-None-Match", etags[0].as_str()),
        ],
    ));
    same_over_h2c(&r, &over_h2);

    // The poll is a conditional GET: moto answers the unchanged manifest 304 (no body).
    let manifest_key = "site/staticfiles.json";
    wait_until("a 304 to a poll", Duration::from_secs(30), || {
        moto.requests()
            .iter()
            .any(|q| q.method == "GET" && q.key.as_deref() == Some(manifest_key) && q.status == 304)
            .then_some(())
    });

    // A second generation: followed by the poll within a deadline; the first one's names
    // keep answering.
    let new_css = format!("{css}aside {{ color: teal; }}\n");
    p.write("css/site.css", new_css.as_bytes());
    p.run_collect(&[]);
    publish(&p, &url, &env);
    let next = p.hashed("css/site.css");
    assert_ne!(next, old_css);
    let next_path = format!("/static/{next}");
    let got = wait_until("the new generation", Duration::from_secs(30), || {
        let got = r.get("/static/css/site.css", &[("Accept-Encoding", "identity")]);
        (got.body == new_css.as_bytes()).then_some(got)
    });
    assert_eq!(got.status, 200);
    let br = r.get(&next_path, &[("Accept-Encoding", "br")]);
    assert_eq!(br.status, 200, "{br:?}");
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(
        br.body,
        std::fs::read(root.join(format!("{next}.br"))).unwrap()
    );
    let old = r.get(&hashed_css, &[("Accept-Encoding", "identity")]);
    assert_eq!(old.status, 200, "the first generation's name still answers");
    assert_eq!(old.body, css.as_bytes());
    same_over_h2c(
        &r,
        &[
            (next_path.clone(), vec![("Accept-Encoding", "br")]),
            (next_path, vec![("Accept-Encoding", "gzip")]),
        ],
    );
}
