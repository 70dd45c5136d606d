//! Delta deploys (RFC 9842), black box: two versions of a project collected into one
//! STATIC_ROOT, then `staticd serve` asked for version 2 by a client that holds version 1,
//! the deltas it answers with decoded by the reference decoders (Debian's `zstd`; Google's
//! C brotli through `tests/support/dcb_decode.py`) and by staticd's own.

use crate::common::http::Response;
use crate::common::project::Project;
use crate::common::staticd::Staticd;
use crate::common::{ci_installed, repo_root};
use staticd::delta::format::{self, Coding};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A bundle of `n` small functions; `edit` changes the body of one.
pub(crate) fn bundle(n: usize, edit: Option<usize>) -> Vec<u8> {
    let mut s = String::from("\"use strict\";\n");
    for i in 0..n {
        if Some(i) == edit {
            s.push_str(&format!(
                "export function f{i}(a, b) {{ return (a + {i}) * b; }}\n"
            ));
        } else {
            s.push_str(&format!(
                "export function f{i}(a, b) {{ return a * {i} + b; }}\n"
            ));
        }
    }
    s.into_bytes()
}

/// Standard base64 with padding, for `Available-Dictionary`.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn available(dict: &[u8]) -> String {
    format!(":{}:", b64(&format::sha256(dict)))
}

/// A project whose `js/app.js` was collected at version 1 then 2; `css/site.css` did not
/// change. Returns the project, both versions and the summary of the second collect.
fn two_versions(args: &[&str]) -> (Project, Vec<u8>, Vec<u8>, serde_json::Value) {
    let (v1, v2) = (bundle(3000, None), bundle(3000, Some(1234)));
    let p = Project::new().files(&[
        ("js/app.js", &v1),
        (
            "css/site.css",
            "body { color: #333 }\n".repeat(300).as_bytes(),
        ),
    ]);
    let first = p.run_collect(args);
    assert_eq!(first["deltas"]["files"], 0, "nothing earlier: {first}");
    p.write("js/app.js", &v2);
    let second = p.run_collect(args);
    (p, v1, v2, second)
}

fn decoded_by_reference(coding: Coding, delta: &[u8], dict: &[u8]) -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let dict_path = t.path().join("dict");
    std::fs::write(&dict_path, dict).unwrap();
    let mut cmd = match coding {
        Coding::Dcz => {
            let mut c = Command::new("zstd");
            c.args(["-d", "-q", "-c", "-D"]).arg(&dict_path);
            c
        }
        Coding::Dcb => {
            let py = ci_installed("codecs", "to decode dcb with the reference brotli");
            let mut c = Command::new(py);
            c.arg(repo_root().join("tests/support/dcb_decode.py"))
                .arg(&dict_path);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the reference decoder");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), delta).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference decoder refused the {coding:?} delta: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn hashed_files(root: &Path, dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_returning_visitor_gets_a_delta_that_decodes_to_version_2() {
    let (p, v1, v2, summary) = two_versions(&[]);
    let d = &summary["deltas"];
    assert_eq!(d["files"], 1, "{summary}");
    assert_eq!(d["made"], 1, "one earlier version");
    assert_eq!(d["written"], 2, "a dcb and a dcz: {summary}");
    let app = p.hashed("js/app.js");
    let files = hashed_files(&p.root(), "js");
    let deltas: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "dcz" || e == "dcb"))
        .collect();
    assert_eq!(deltas.len(), 2, "{files:?}");
    for f in &deltas {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(app.trim_start_matches("js/")),
            "{name} is {app}'s"
        );
    }

    let s = Staticd::serve(&p.root(), &[]);
    let url = format!("/static/{app}");
    let have = available(&v1);
    let ask = |ae: &str, extra: &[(&str, &str)]| -> Response {
        let mut h = vec![
            ("Accept-Encoding", ae),
            ("Available-Dictionary", have.as_str()),
        ];
        h.extend_from_slice(extra);
        s.get(&url, &h)
    };
    let br = s.get(&url, &[("Accept-Encoding", "br")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    let r = ask("dcz, dcb, br", &[]);
    assert_eq!(r.status, 200);
    let coding = Coding::from_token(r.header("content-encoding").unwrap()).expect("a delta");
    assert_eq!(format::decode(coding, &r.body, &v1).unwrap(), v2);
    assert!(
        r.body.len() * 20 < br.body.len(),
        "{} vs br {}",
        r.body.len(),
        br.body.len()
    );
    assert_eq!(
        r.header("vary"),
        Some("accept-encoding, available-dictionary")
    );
    assert_eq!(
        br.header("vary"),
        Some("accept-encoding, available-dictionary")
    );
    let uad = r#"match="/static/js/app.*.js", match-dest=("script")"#;
    assert_eq!(r.header("use-as-dictionary"), Some(uad));
    assert_eq!(br.header("use-as-dictionary"), Some(uad));
    assert_eq!(r.header("accept-ranges"), Some("none"));
    let etag = r.header("etag").unwrap().to_string();
    assert_ne!(Some(etag.as_str()), br.header("etag"), "its own ETag");
    assert!(etag.starts_with('"'), "strong: {etag}");

    // Each coding alone, decoded by the reference decoders.
    for c in [Coding::Dcz, Coding::Dcb] {
        let r = ask(&format!("{}, br", c.token()), &[]);
        assert_eq!(r.header("content-encoding"), Some(c.token()));
        assert_eq!(decoded_by_reference(c, &r.body, &v1), v2, "{c:?}");
    }

    // HEAD: GET's status and headers, no body.
    let head = s.request(
        "HEAD",
        &url,
        &[
            ("Accept-Encoding", "dcz, dcb, br"),
            ("Available-Dictionary", &have),
        ],
        b"",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("content-length"), r.header("content-length"));
    assert_eq!(
        head.header("content-encoding"),
        r.header("content-encoding")
    );

    // Revalidation with the delta's ETag: 304 with it; the br ETag does not match a delta.
    let nm = ask("dcz, dcb, br", &[("If-None-Match", &etag)]);
    assert_eq!(nm.status, 304);
    assert_eq!(nm.header("etag"), Some(etag.as_str()));
    assert_eq!(
        nm.header("vary"),
        Some("accept-encoding, available-dictionary")
    );
    let other = ask(
        "dcz, dcb, br",
        &[("If-None-Match", br.header("etag").unwrap())],
    );
    assert_eq!(other.status, 200);

    // A range of a delta means nothing: the whole delta, 200.
    let ranged = ask("dcz, dcb, br", &[("Range", "bytes=0-9")]);
    assert_eq!(ranged.status, 200);
    assert_eq!(ranged.body, r.body);
    // Without a dictionary ranges work as ever.
    let plain_range = s.get(&url, &[("Accept-Encoding", "br"), ("Range", "bytes=0-9")]);
    assert_eq!(plain_range.status, 206);

    // An unknown dictionary, or no dcb/dcz accepted: the usual br.
    let unknown = s.get(
        &url,
        &[
            ("Accept-Encoding", "dcz, dcb, br"),
            ("Available-Dictionary", &available(b"another version")),
        ],
    );
    assert_eq!(unknown.header("content-encoding"), Some("br"));
    assert_eq!(unknown.body, br.body);
    let not_listed = ask("br, gzip", &[]);
    assert_eq!(not_listed.header("content-encoding"), Some("br"));
    let garbage = s.get(
        &url,
        &[
            ("Accept-Encoding", "dcz, br"),
            ("Available-Dictionary", "not a byte sequence"),
        ],
    );
    assert_eq!(garbage.header("content-encoding"), Some("br"));
    // RFC 9842's readability rules: a cross-site no-cors fetch gets no delta.
    let opaque = ask(
        "dcz, dcb, br",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
    );
    assert_eq!(opaque.header("content-encoding"), Some("br"));
    let same_origin = ask(
        "dcz, dcb, br",
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Mode", "no-cors"),
        ],
    );
    assert!(same_origin
        .header("content-encoding")
        .unwrap()
        .starts_with("dc"));

    // The unchanged style sheet has no delta, but offers itself as a dictionary.
    let css = s.get(
        &format!("/static/{}", p.hashed("css/site.css")),
        &[("Accept-Encoding", "br")],
    );
    assert_eq!(
        css.header("use-as-dictionary"),
        Some(r#"match="/static/css/site.*.css", match-dest=("style")"#)
    );
    // The unhashed original is not immutable: no dictionary, plain Vary.
    let original = s.get("/static/js/app.js", &[("Accept-Encoding", "br")]);
    assert_eq!(original.header("use-as-dictionary"), None);
    assert_eq!(original.header("vary"), Some("accept-encoding"));
}

#[test]
fn deltas_go_back_k_generations_come_from_the_cache_and_only_for_changed_files() {
    let (p, v1, v2, _) = two_versions(&[]);
    // Version 3: deltas against versions 2 and 1; the style sheet, unchanged, gets none.
    p.write("js/app.js", &bundle(3000, Some(7)));
    let third = p.run_collect(&[]);
    assert_eq!(third["deltas"]["files"], 1, "{third}");
    assert_eq!(third["deltas"]["made"], 2, "against v2 and v1: {third}");
    let v3_name = p.hashed("js/app.js");
    let of_v3 = hashed_files(&p.root(), "js")
        .iter()
        .filter(|f| {
            let n = f.file_name().unwrap().to_str().unwrap();
            n.starts_with(v3_name.trim_start_matches("js/"))
                && (n.ends_with(".dcz") || n.ends_with(".dcb"))
        })
        .count();
    assert_eq!(of_v3, 4, "a dcb and a dcz against each");
    // --delta-generations 1: version 4 only against version 3.
    p.write("js/app.js", &bundle(3000, Some(8)));
    let fourth = p.run_collect(&["--delta-generations", "1"]);
    assert_eq!(fourth["deltas"]["made"], 1, "{fourth}");
    // Back to version 1's bytes: its hashed file is still there, nothing is made.
    p.write("js/app.js", &v1);
    let back = p.run_collect(&[]);
    assert_eq!(back["deltas"]["made"], 0, "{back}");
    assert_eq!(back["deltas"]["files"], 0, "{back}");

    // Another STATIC_ROOT through the same cache: version 2 against version 1 is found.
    let cache = p.cache.join("staticd");
    let cache = cache.to_str().unwrap();
    let q = Project::new().files(&[("js/app.js", &v1)]);
    q.run_collect(&["--cache-dir", cache]);
    q.write("js/app.js", &v2);
    let again = q.run_collect(&["--cache-dir", cache]);
    assert_eq!(again["deltas"]["cache_hits"], 1, "{again}");
    assert_eq!(again["deltas"]["made"], 0, "{again}");
    assert_eq!(again["deltas"]["written"], 2, "{again}");
}

#[test]
fn no_dictionaries_turns_it_all_off() {
    let (p, v1, _v2, summary) = two_versions(&["--no-dictionaries"]);
    assert_eq!(summary["deltas"]["written"], 0, "{summary}");
    let files = hashed_files(&p.root(), "js");
    assert!(
        !files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "dcz" || e == "dcb")),
        "{files:?}"
    );
    // Collect again with deltas on, then serve with them off: no delta, no dictionary.
    p.write("js/app.js", &bundle(3000, Some(99)));
    let on = p.run_collect(&[]);
    assert!(on["deltas"]["written"].as_u64().unwrap() >= 1, "{on}");
    let s = Staticd::serve(&p.root(), &["--no-dictionaries"]);
    let url = format!("/static/{}", p.hashed("js/app.js"));
    let r = s.get(
        &url,
        &[
            ("Accept-Encoding", "dcz, dcb, br"),
            ("Available-Dictionary", &available(&v1)),
        ],
    );
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("use-as-dictionary"), None);
    assert_eq!(r.header("vary"), Some("accept-encoding"));
}

/// The same delta over HTTP/2 (h2c with prior knowledge, the actix front end): coding,
/// `Vary`, a strong ETag of its own, a 304 on that ETag, and HEAD without a body.
#[test]
fn a_delta_over_http2() {
    let (p, v1, v2, _) = two_versions(&[]);
    let s = Staticd::serve(&p.root(), &[]);
    let url = s.url(&format!("/static/{}", p.hashed("js/app.js")));
    let have = available(&v1);
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let ask = |method: reqwest::Method, extra: &[(&str, &str)]| {
        let mut req = client
            .request(method, &url)
            .header("Accept-Encoding", "gzip, deflate, br, zstd, dcb, dcz")
            .header("Available-Dictionary", &have);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        r
    };
    let one = |r: &reqwest::blocking::Response, name: &str| -> Option<String> {
        let all: Vec<_> = r.headers().get_all(name).iter().collect();
        assert!(all.len() <= 1, "{name} sent {} times", all.len());
        all.first().map(|v| v.to_str().unwrap().to_string())
    };

    let r = ask(reqwest::Method::GET, &[]);
    assert_eq!(r.status(), 200);
    let coding = one(&r, "content-encoding").unwrap();
    let coding = Coding::from_token(&coding).unwrap_or_else(|| panic!("not a delta: {coding}"));
    assert_eq!(
        one(&r, "vary").as_deref(),
        Some("accept-encoding, available-dictionary")
    );
    let etag = one(&r, "etag").unwrap();
    assert!(etag.starts_with('"'), "strong: {etag}");
    assert!(one(&r, "use-as-dictionary").is_some());
    let body = r.bytes().unwrap().to_vec();
    assert_eq!(format::decode(coding, &body, &v1).unwrap(), v2);
    // What HTTP/1.1 answers to the same request: the same delta under the same ETag.
    let h1 = s.get(
        &format!("/static/{}", p.hashed("js/app.js")),
        &[
            ("Accept-Encoding", "gzip, deflate, br, zstd, dcb, dcz"),
            ("Available-Dictionary", &have),
        ],
    );
    assert_eq!(h1.header("etag"), Some(etag.as_str()));
    assert_eq!(h1.body, body);
    let br = client
        .get(&url)
        .header("Accept-Encoding", "br")
        .send()
        .unwrap();
    assert_ne!(one(&br, "etag"), Some(etag.clone()), "its own ETag");

    let nm = ask(reqwest::Method::GET, &[("If-None-Match", &etag)]);
    assert_eq!(nm.status(), 304);
    assert_eq!(one(&nm, "etag"), Some(etag.clone()));
    assert_eq!(
        one(&nm, "vary").as_deref(),
        Some("accept-encoding, available-dictionary")
    );
    assert!(nm.bytes().unwrap().is_empty());

    let head = ask(reqwest::Method::HEAD, &[]);
    assert_eq!(head.status(), 200);
    assert_eq!(one(&head, "etag"), Some(etag));
    assert_eq!(
        one(&head, "content-encoding").as_deref(),
        Some(coding.token())
    );
    assert_eq!(one(&head, "content-length"), Some(body.len().to_string()));
    assert!(head.bytes().unwrap().is_empty());
}

/// `--delta-codings dcz`: only dcz deltas are made and written (the variant cache keeps the
/// runs apart: a dcz-only entry never answers for a run that wants dcb too), and a coding
/// that is not one is refused by name.
#[test]
fn delta_codings_choose_what_is_made() {
    let (p, v1, v2, summary) = two_versions(&["--delta-codings", "dcz"]);
    assert_eq!(summary["deltas"]["written"], 1, "{summary}");
    let app = p.hashed("js/app.js");
    let names: Vec<String> = hashed_files(&p.root(), "js")
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .filter(|n| n.ends_with(".dcb") || n.ends_with(".dcz"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".dcz"), "{names:?}");
    let s = Staticd::serve(&p.root(), &[]);
    let r = s.get(
        &format!("/static/{app}"),
        &[
            ("Accept-Encoding", "dcb, dcz, br"),
            ("Available-Dictionary", &available(&v1)),
        ],
    );
    assert_eq!(r.header("content-encoding"), Some("dcz"));
    assert_eq!(format::decode(Coding::Dcz, &r.body, &v1).unwrap(), v2);

    // The same pair again with both codings, through the same cache: dcb is made, not
    // taken from the dcz-only entry.
    let q = Project::new().files(&[("js/app.js", &v1)]);
    let cache = p.cache.join("staticd");
    let cache = cache.to_str().unwrap();
    q.run_collect(&["--cache-dir", cache]);
    q.write("js/app.js", &v2);
    let both = q.run_collect(&["--cache-dir", cache]);
    assert_eq!(both["deltas"]["made"], 1, "{both}");
    assert_eq!(both["deltas"]["cache_hits"], 0, "{both}");

    let bad = p.collect(&["--delta-codings", "dcx"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("\"dcx\" is not a delta coding (dcb or dcz)"),
        "{err}"
    );
}

/// `[static] no_dictionaries` in staticd.toml, and a SIGHUP that drops it: deltas come back
/// without a restart (the table is rebuilt with them).
#[test]
fn no_dictionaries_in_the_config_file_follows_sighup() {
    let (p, v1, _v2, _) = two_versions(&[]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("staticd.toml");
    let write = |extra: &str| {
        let text = format!(
            "[serve]\nbind = \"127.0.0.1:0\"\n\n[static]\nroot = {:?}\nurl = \"/static/\"\n{extra}",
            p.root()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    write("no_dictionaries = true\n");
    let mut c = Command::new(env!("CARGO_BIN_EXE_staticd"));
    c.args(["serve", "--config"]).arg(&cfg);
    let s = Staticd::start(c);
    let url = format!("/static/{}", p.hashed("js/app.js"));
    let have = available(&v1);
    let ask = || {
        s.get(
            &url,
            &[
                ("Accept-Encoding", "dcb, dcz, br"),
                ("Available-Dictionary", &have),
            ],
        )
    };
    let off = ask();
    assert_eq!(off.header("content-encoding"), Some("br"));
    assert_eq!(off.header("use-as-dictionary"), None);

    write("");
    s.signal(libc::SIGHUP);
    let on = crate::common::wait_until(
        "a delta after the reload",
        crate::common::staticd::WAIT,
        || {
            let r = ask();
            r.header("content-encoding")
                .is_some_and(|e| e.starts_with("dc"))
                .then_some(r)
        },
    );
    assert!(on.header("use-as-dictionary").is_some());
}
