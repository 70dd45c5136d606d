//! Black-box HTTP semantics of `staticd serve` over a raw socket: negotiation, validators,
//! preconditions, ranges, cache policy, methods, HEAD, CORS, Vary.

use crate::common::fixture::{gz, noise, text, unbr, ungz, StaticRoot};
use crate::common::http::{multipart, Response};
use crate::common::staticd::Staticd;
use std::sync::OnceLock;

const ORIG: &str = "css/app.css";
const HASHED: &str = "css/app.0123456789ab.css";
const OLD_HASHED: &str = "css/app.fedcba987654.css";

struct World {
    server: Staticd,
    css: Vec<u8>,
    big_js: Vec<u8>,
    big_bin: Vec<u8>,
    png: Vec<u8>,
    fx: StaticRoot,
}

/// Fixture bytes are built once; each test gets its own server (killed on drop, which a
/// `static` would never do).
fn world() -> World {
    type Blobs = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);
    static DATA: OnceLock<Blobs> = OnceLock::new();
    let (css, big_js, big_bin, png) = DATA
        .get_or_init(|| {
            (
                text(3000, "app"),
                text(200_000, "big"),
                noise(300_000, 7),
                noise(500, 3),
            )
        })
        .clone();
    {
        let fx = StaticRoot::new();
        fx.write_with_variants(ORIG, &css);
        fx.write_with_variants(HASHED, &css);
        fx.write_with_variants(OLD_HASHED, &text(2000, "old"));
        fx.write_with_variants("copy/same.css", &css);
        fx.write_with_variants("js/big.js", &big_js);
        fx.write("big.bin", &big_bin);
        fx.write("img/logo.png", &png);
        fx.write("lone.gz", &gz(b"lonely"));
        fx.write("LICENSE.f4630b744e0d", b"license");
        fx.manifest(&[
            (ORIG, HASHED),
            ("LICENSE", "LICENSE.f4630b744e0d"),
            ("img/logo.png", "img/logo.png"),
        ]);
        let server = Staticd::serve(&fx.root, &[]);
        World {
            server,
            css,
            big_js,
            big_bin,
            png,
            fx,
        }
    }
}

fn url(rel: &str) -> String {
    format!("/static/{rel}")
}

fn decode(r: &Response) -> Vec<u8> {
    match r.header("content-encoding") {
        None => r.body.clone(),
        Some("br") => unbr(&r.body),
        Some("gzip") => ungz(&r.body),
        Some("zstd") => zstd::decode_all(&r.body[..]).unwrap(),
        Some(other) => panic!("unexpected coding {other}"),
    }
}

#[test]
fn accept_encoding_edge_cases() {
    let w = world();
    let cases: &[(Option<&str>, u16, Option<&str>)] = &[
        (None, 200, None),
        (Some(""), 200, None),
        (Some("br;q=0, gzip"), 200, Some("gzip")),
        (Some("gzip;q=0"), 200, None),
        (Some("*;q=0"), 406, None),
        (Some("identity;q=0"), 406, None),
        (Some("identity;q=0, gzip"), 200, Some("gzip")),
        (Some("*;q=0, identity"), 200, None),
        (Some("GZIP"), 200, Some("gzip")),
        (Some("x-gzip"), 200, Some("gzip")),
        (Some("garbage"), 200, None),
        (Some(";;;,,=q"), 200, None),
        (Some("gzip;q=nope"), 200, None),
        (Some("gzip, br"), 200, Some("br")),
        (Some("gzip, zstd"), 200, Some("zstd")),
        (Some("gzip, deflate, br, zstd"), 200, Some("br")),
        (Some("br;q=0.5, gzip"), 200, Some("gzip")),
        (Some("br;q=0.9, zstd;q=0.9, gzip;q=0.9"), 200, Some("br")),
        (Some("*"), 200, Some("br")),
        (Some("*;q=0.5, br;q=0"), 200, Some("zstd")),
        (Some("deflate"), 200, None),
        (Some("identity;q=1, gzip;q=0.5"), 200, None),
    ];
    let mut etags = std::collections::HashMap::new();
    for &(ae, status, coding) in cases {
        let headers: Vec<(&str, &str)> = ae.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let r = w.server.get(&url(ORIG), &headers);
        assert_eq!(r.status, status, "AE {ae:?}");
        assert_eq!(r.all("vary"), vec!["accept-encoding"], "AE {ae:?}");
        if status == 406 {
            continue;
        }
        assert_eq!(r.header("content-encoding"), coding, "AE {ae:?}");
        assert_eq!(decode(&r), w.css, "AE {ae:?}");
        let etag = r.header("etag").unwrap().to_string();
        if let Some(prev) = etags.insert(coding, etag.clone()) {
            assert_eq!(prev, etag, "ETag must be stable per coding");
        }
    }
    // Each coding has its own ETag.
    let distinct: std::collections::HashSet<_> = etags.values().collect();
    assert_eq!(distinct.len(), 4, "{etags:?}");
}

#[test]
fn no_variants_means_no_vary_and_identity() {
    let w = world();
    let r = w
        .server
        .get(&url("img/logo.png"), &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(r.status, 200);
    assert!(!r.has("vary"));
    assert!(!r.has("content-encoding"));
    assert_eq!(r.body, w.png);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let r = w
        .server
        .get(&url("img/logo.png"), &[("Accept-Encoding", "identity;q=0")]);
    assert_eq!(r.status, 406);
    // A lone .gz (no uncompressed sibling) is a file of its own.
    let r = w
        .server
        .get(&url("lone.gz"), &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200);
    assert!(!r.has("content-encoding"));
    assert_eq!(ungz(&r.body), b"lonely");
    // A variant whose sibling exists is not a URL of its own.
    assert_eq!(w.server.get(&url("css/app.css.gz"), &[]).status, 404);
    assert_eq!(w.server.get(&url("css/app.css.br"), &[]).status, 404);
}

#[test]
fn content_types_and_headers() {
    let w = world();
    let r = w.server.get(&url(ORIG), &[]);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("last-modified").is_some());
    assert!(!r.has("content-disposition"));
    let r = w
        .server
        .get(&url("js/big.js"), &[("Accept-Encoding", "br")]);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(unbr(&r.body), w.big_js);
    let r = w.server.get(&url("big.bin"), &[]);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, w.big_bin);
    let r = w.server.get(&url("js/big.js"), &[]);
    assert_eq!(r.body, w.big_js, "large identity file streamed from disk");
}

#[test]
fn etag_is_content_derived() {
    let w = world();
    let a = w.server.get(&url(ORIG), &[("Accept-Encoding", "gzip")]);
    let b = w
        .server
        .get(&url("copy/same.css"), &[("Accept-Encoding", "gzip")]);
    let etag = a.header("etag").unwrap();
    assert_eq!(Some(etag), b.header("etag"), "same bytes, same ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"));
}

#[test]
fn cache_policy_follows_the_current_manifest() {
    let w = world();
    let immutable = "max-age=31536000, immutable";
    let short = "max-age=60";
    for (rel, cc) in [
        (HASHED, immutable),
        (ORIG, short),
        (OLD_HASHED, short),
        ("LICENSE.f4630b744e0d", short),
        ("img/logo.png", short),
        ("big.bin", short),
    ] {
        for ae in ["", "br"] {
            let r = w.server.get(&url(rel), &[("Accept-Encoding", ae)]);
            assert_eq!(r.status, 200, "{rel}");
            assert_eq!(r.header("cache-control"), Some(cc), "{rel}");
            // With Authorization a shared cache may store the answer only if it says
            // `public` (RFC 9111 §3.5); without, `public` would change nothing.
            let auth = ("Authorization", "Basic c3RhZ2luZzpwdw==");
            let r = w.server.get(&url(rel), &[("Accept-Encoding", ae), auth]);
            assert_eq!(r.status, 200, "{rel}");
            let public = format!("public, {cc}");
            assert_eq!(r.header("cache-control"), Some(public.as_str()), "{rel}");
            let etag = r.header("etag").unwrap().to_string();
            let r = w.server.get(
                &url(rel),
                &[("Accept-Encoding", ae), auth, ("If-None-Match", &etag)],
            );
            assert_eq!(r.status, 304, "{rel}");
            assert_eq!(r.header("cache-control"), Some(public.as_str()), "{rel}");
        }
    }
}

#[test]
fn if_none_match_and_if_modified_since() {
    let w = world();
    let get = |h: &[(&str, &str)]| w.server.get(&url(HASHED), h);
    let first = get(&[("Accept-Encoding", "br")]);
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let weak = format!("W/{etag}");
    let list = format!("\"nope\", {etag}");
    for inm in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let r = get(&[("Accept-Encoding", "br"), ("If-None-Match", inm)]);
        assert_eq!(r.status, 304, "INM {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(
            r.header("cache-control"),
            Some("max-age=31536000, immutable")
        );
        // A current fingerprinted style sheet is an RFC 9842 dictionary: its answers vary on
        // Available-Dictionary too, and the 304 repeats its Use-As-Dictionary.
        assert_eq!(r.all("vary"), vec!["accept-encoding, available-dictionary"]);
        assert_eq!(
            r.header("use-as-dictionary"),
            Some(r#"match="/static/css/app.*.css", match-dest=("style")"#)
        );
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // The br ETag does not validate the gzip representation.
    let r = get(&[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // If-Modified-Since.
    assert_eq!(get(&[("If-Modified-Since", &lm)]).status, 304);
    assert_eq!(
        get(&[("If-Modified-Since", "Thu, 01 Jan 1998 00:00:00 GMT")]).status,
        200
    );
    assert_eq!(get(&[("If-Modified-Since", "not a date")]).status, 200);
    // If-None-Match takes precedence over If-Modified-Since.
    let r = get(&[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 200);
}

#[test]
fn if_match_and_if_unmodified_since() {
    let w = world();
    let get = |h: &[(&str, &str)]| w.server.get(&url(ORIG), h);
    let etag = get(&[]).header("etag").unwrap().to_string();
    let past = "Thu, 01 Jan 1998 00:00:00 GMT";
    assert_eq!(get(&[("If-Match", &etag)]).status, 200);
    assert_eq!(get(&[("If-Match", "*")]).status, 200);
    assert_eq!(get(&[("If-Match", &format!("\"x\", {etag}"))]).status, 200);
    let r = get(&[("If-Match", "\"nope\"")]);
    assert_eq!(r.status, 412);
    assert_eq!(r.all("vary"), vec!["accept-encoding"]);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    // Strong comparison: a weak tag never matches If-Match.
    assert_eq!(get(&[("If-Match", &format!("W/{etag}"))]).status, 412);
    assert_eq!(get(&[("If-Unmodified-Since", past)]).status, 412);
    // If-Match present: If-Unmodified-Since is not evaluated.
    assert_eq!(
        get(&[("If-Match", &etag), ("If-Unmodified-Since", past)]).status,
        200
    );
    // 412 wins over 304 (step 1 before step 3).
    assert_eq!(
        get(&[("If-Match", "\"nope\""), ("If-None-Match", &etag)]).status,
        412
    );
    // If-Match passes, If-None-Match then decides.
    assert_eq!(
        get(&[("If-Match", &etag), ("If-None-Match", &etag)]).status,
        304
    );
}

fn check_ranges(w: &World, rel: &str, full: &[u8], ae: &str, coding: Option<&str>) {
    let len = full.len();
    let get = |range: &str| {
        w.server
            .get(&url(rel), &[("Accept-Encoding", ae), ("Range", range)])
    };
    for (range, first, last) in [
        ("bytes=0-0".to_string(), 0, 0),
        ("bytes=5-5".to_string(), 5, 5),
        ("bytes=-1".to_string(), len - 1, len - 1),
        (format!("bytes={}-", len - 1), len - 1, len - 1),
        ("bytes=10-".to_string(), 10, len - 1),
        (format!("bytes=0-{}", len - 2), 0, len - 2),
        (format!("bytes=3-{}", len + 1000), 3, len - 1),
        ("bytes=100-299999".to_string(), 100, (len - 1).min(299_999)),
    ] {
        let r = get(&range);
        assert_eq!(r.status, 206, "{rel} {range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {first}-{last}/{len}").as_str()),
            "{rel} {range}"
        );
        assert_eq!(r.body, &full[first..=last], "{rel} {range}");
        assert_eq!(r.header("content-encoding"), coding);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // A range covering all of it is a plain 200 (a 206 of everything helps nobody).
    for range in [
        "bytes=0-".to_string(),
        format!("bytes=0-{}", len - 1),
        "bytes=-100000000".to_string(),
        "bytes=0-9,10-".to_string(),
    ] {
        let r = get(&range);
        assert_eq!(r.status, 200, "{rel} {range}");
        assert_eq!(r.header("content-range"), None, "{rel} {range}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"), "{rel} {range}");
        assert_eq!(r.body, full, "{rel} {range}");
        assert_eq!(r.header("content-encoding"), coding);
    }
    // Several ranges: multipart/byteranges.
    let r = get(&format!("bytes=0-1, 5-6, {}-", len - 3));
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap().to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ct}"));
    let parts = multipart(&r.body, boundary);
    assert_eq!(
        parts,
        vec![
            (format!("bytes 0-1/{len}"), full[0..2].to_vec()),
            (format!("bytes 5-6/{len}"), full[5..7].to_vec()),
            (
                format!("bytes {}-{}/{len}", len - 3, len - 1),
                full[len - 3..].to_vec()
            ),
        ]
    );
    // Unsatisfiable.
    for range in [
        format!("bytes={len}-"),
        "bytes=-0".into(),
        format!("bytes={}-{}", len + 5, len + 9),
    ] {
        let r = get(&range);
        assert_eq!(r.status, 416, "{rel} {range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // Malformed or foreign units are ignored: 200 with everything.
    for range in ["bytes=5-1", "items=0-1", "bytes=x-y", "bytes"] {
        let r = get(range);
        assert_eq!(r.status, 200, "{rel} {range}");
        assert_eq!(r.body, full);
    }
}

#[test]
fn ranges_on_memory_and_disk_representations() {
    let w = world();
    check_ranges(&w, "big.bin", &w.big_bin, "", None);
    check_ranges(&w, "js/big.js", &w.big_js, "", None);
    let css_gz = std::fs::read(w.fx.root.join("css/app.css.gz")).unwrap();
    check_ranges(&w, ORIG, &w.css, "", None);
    check_ranges(&w, ORIG, &css_gz, "gzip", Some("gzip"));
    // 206 and 416 keep Vary for a negotiated path.
    let r = w.server.get(&url(ORIG), &[("Range", "bytes=0-0")]);
    assert_eq!(r.all("vary"), vec!["accept-encoding"]);
    let r = w.server.get(&url(ORIG), &[("Range", "bytes=99999-")]);
    assert_eq!(r.all("vary"), vec!["accept-encoding"]);
}

#[test]
fn if_range() {
    let w = world();
    let first = w.server.get(&url("big.bin"), &[]);
    let etag = first.header("etag").unwrap().to_string();
    let lm = first.header("last-modified").unwrap().to_string();
    let get = |ir: &str| {
        w.server
            .get(&url("big.bin"), &[("Range", "bytes=0-9"), ("If-Range", ir)])
    };
    assert_eq!(get(&etag).status, 206);
    assert_eq!(get(&lm).status, 206);
    assert_eq!(get("\"stale\"").status, 200);
    assert_eq!(get(&format!("W/{etag}")).status, 200);
    assert_eq!(get("Thu, 01 Jan 1998 00:00:00 GMT").status, 200);
    let r = get("\"stale\"");
    assert_eq!(r.body, w.big_bin);
}

#[test]
fn head_has_the_headers_of_get() {
    let w = world();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (ORIG, vec![]),
        (ORIG, vec![("Accept-Encoding", "br")]),
        (HASHED, vec![("Accept-Encoding", "gzip")]),
        ("big.bin", vec![]),
        ("js/big.js", vec![("Accept-Encoding", "zstd")]),
        ("big.bin", vec![("Range", "bytes=0-9")]),
        ("big.bin", vec![("Range", "bytes=0-9,20-29")]),
        ("big.bin", vec![("Range", "bytes=999999-")]),
        (ORIG, vec![("If-None-Match", "*")]),
        (ORIG, vec![("If-Match", "\"x\"")]),
        (ORIG, vec![("Accept-Encoding", "*;q=0")]),
        ("missing.css", vec![]),
    ];
    for (rel, headers) in cases {
        let g = w.server.request("GET", &url(rel), &headers, b"");
        let h = w.server.request("HEAD", &url(rel), &headers, b"");
        assert_eq!(g.status, h.status, "{rel} {headers:?}");
        assert_eq!(
            g.comparable_headers(),
            h.comparable_headers(),
            "{rel} {headers:?}"
        );
        assert!(h.body.is_empty());
    }
}

#[test]
fn other_methods_are_405() {
    let w = world();
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"] {
        let r = w
            .server
            .request(m, &url(ORIG), &[("Content-Length", "0")], b"");
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.all("vary").len(), 1);
        assert_eq!(
            w.server
                .request(m, &url("missing.css"), &[("Content-Length", "0")], b"")
                .status,
            404
        );
    }
}

#[test]
fn non_static_routes_are_404() {
    let w = world();
    assert_eq!(w.server.get("/", &[]).status, 404);
    assert_eq!(w.server.get("/admin/", &[]).status, 404);
    assert_eq!(w.server.get("/css/app.css", &[]).status, 404);
    assert_eq!(w.server.get("/static/css/app.css?v=1", &[]).status, 200);
}

#[test]
fn cors_and_max_age_are_configurable() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let s = Staticd::serve(
        &fx.root,
        &["--cors-origin", "https://app.example", "--max-age", "120"],
    );
    let r = s.get("/static/a.txt", &[]);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("cache-control"), Some("max-age=120"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let s = Staticd::serve(&fx.root, &["--no-cors", "--static-url", "/assets/"]);
    let r = s.get("/assets/a.txt", &[]);
    assert_eq!(r.status, 200);
    assert!(!r.has("access-control-allow-origin"));
    assert_eq!(s.get("/static/a.txt", &[]).status, 404);
}

#[test]
fn memory_cap_zero_serves_everything_from_disk() {
    let fx = StaticRoot::new();
    let css = text(5000, "cap");
    fx.write_with_variants("a.css", &css);
    let s = Staticd::serve(&fx.root, &["--mem-total-max", "0"]);
    let r = s.get("/static/a.css", &[("Accept-Encoding", "br")]);
    assert_eq!(unbr(&r.body), css);
    let r = s.get("/static/a.css", &[("Range", "bytes=10-19,100-109")]);
    assert_eq!(r.status, 206);
}
