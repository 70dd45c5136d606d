//! Traversal and malformed paths against the real binary over a raw socket (a client library
//! would normalise `..` and `//` away). Never a file outside the table, never a 5xx.

use crate::common::fixture::StaticRoot;
use crate::common::http::{self, Expect};
use crate::common::staticd::Staticd;

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-STATIC-ROOT";

fn fixture() -> StaticRoot {
    let fx = StaticRoot::new();
    let outside = fx.dir.path();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir_all(outside.join("private")).unwrap();
    std::fs::write(outside.join("private/secret.txt"), SECRET).unwrap();
    fx.write("css/app.css", b"body{}");
    fx.write(".env", SECRET);
    fx.write(".git/config", SECRET);
    fx.write("css/.hidden.css", SECRET);
    fx.write("%2e%2e/secret.txt", b"literal-percent-dir");
    let root = &fx.root;
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("outside.txt")).unwrap();
    std::os::unix::fs::symlink(outside.join("private"), root.join("outdir")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("css/up.txt")).unwrap();
    // Directory symlinks leading out: relative, nested in a subdirectory, chained.
    std::os::unix::fs::symlink("../private", root.join("reloutdir")).unwrap();
    std::os::unix::fs::symlink("../../private", root.join("css/escape")).unwrap();
    std::os::unix::fs::symlink("outdir", root.join("chain")).unwrap();
    // Symlinks that stay inside are fine.
    std::os::unix::fs::symlink("css/app.css", root.join("alias.css")).unwrap();
    std::os::unix::fs::symlink("css", root.join("cssdir")).unwrap();
    fx
}

#[test]
fn traversal_and_malformed_paths_never_escape() {
    let fx = fixture();
    let s = Staticd::serve(&fx.root, &[]);
    assert_eq!(s.get("/static/css/app.css", &[]).status, 200);
    assert_eq!(s.get("/static/alias.css", &[]).body, b"body{}");
    assert_eq!(s.get("/static/cssdir/app.css", &[]).body, b"body{}");
    // Literal percent in a file name is reachable only by encoding the percent: one decode.
    assert_eq!(
        s.get("/static/%252e%252e/secret.txt", &[]).body,
        b"literal-percent-dir"
    );

    let long_dirs = format!("/static/{}app.css", "a/".repeat(3000));
    let long_name = format!("/static/{}", "x".repeat(10_000));
    let long_dots = format!("/static/{}secret.txt", "../".repeat(500));
    let paths: Vec<String> = [
        "/static/../secret.txt",
        "/static/../../../../etc/passwd",
        "/static/css/../../secret.txt",
        "/static/css/../css/app.css",
        "/static/./css/app.css",
        "/static/css/./app.css",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/.%2e/secret.txt",
        "/static/css%2fapp.css",
        "/static/css%2Fapp.css",
        "/static/css%5capp.css",
        "/static/..%5csecret.txt",
        "/static/css\\app.css",
        "/static/..\\secret.txt",
        "/static/css/app.css%00",
        "/static/css/app.css%00.png",
        "/static/%00",
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/%c0%af",
        "/static/%e0%80%ae%e0%80%ae/secret.txt",
        "/static/%ff%fe",
        "/static/%252e%252e%252fsecret.txt",
        "/static..",
        "/static../secret.txt",
        "/static..%2fsecret.txt",
        "//static/css/app.css",
        "/static//css/app.css",
        "/static//secret.txt",
        "/static/css//app.css",
        "/static/css/app.css/",
        "/static/css/app.css/.",
        "/static/",
        "/static",
        "/static/css",
        "/static/css/",
        "/static/cssdir/",
        "/static/.env",
        "/static/.git/config",
        "/static/.git/",
        "/static/css/.hidden.css",
        "/static/%2eenv",
        "/static/%2egit/config",
        "/static/outside.txt",
        "/static/outdir/secret.txt",
        "/static/outdir/",
        "/static/passwd",
        "/static/css/up.txt",
        "/static/cssdir/up.txt",
        "/static/reloutdir/secret.txt",
        "/static/css/escape/secret.txt",
        "/static/cssdir/escape/secret.txt",
        "/static/chain/secret.txt",
        "/static/staticfiles.json/..",
        "/static/%",
        "/static/%zz",
        "/static/%2",
        "/static/;/../secret.txt",
        "/static/css/app.css;/../../secret.txt",
        "/static/css/app.css?/../../secret.txt",
        "/static/css/app.css#/../../secret.txt",
        "/static/\u{00e9}",
        "/%2e%2e/secret.txt",
        "/../secret.txt",
        "/secret.txt",
        "*",
        "http://test/static/../secret.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([long_dirs, long_name, long_dots])
    .collect();

    for p in &paths {
        for method in ["GET", "HEAD"] {
            let req = format!("{method} {p} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            let r = http::raw(s.addr, req.as_bytes(), Expect::for_method(method));
            let shown = &p[..p.len().min(80)];
            assert!(r.status < 500, "{method} {shown} -> {}", r.status);
            assert!(
                !r.body.windows(SECRET.len()).any(|w| w == SECRET),
                "{method} {shown} leaked a file outside the table"
            );
            // Everything here is either not in the table (404) or rejected by the HTTP
            // parser (400/414/431); the query string and `;` never change the lookup.
            let ok_200 =
                p.starts_with("/static/css/app.css?") || p.starts_with("/static/css/app.css#");
            if !ok_200 {
                assert!(
                    matches!(r.status, 400 | 404 | 414 | 431),
                    "{method} {shown} -> {}",
                    r.status
                );
            }
        }
    }

    // Raw bytes the URL grammar forbids: a NUL or a space in the request line.
    for line in [
        &b"GET /static/css/app.css\0 HTTP/1.1\r\n"[..],
        b"GET /static/../secret.txt\0 HTTP/1.1\r\n",
        b"GET /static/ ../secret.txt HTTP/1.1\r\n",
        b"GET /static/\xc0\xae\xc0\xae/secret.txt HTTP/1.1\r\n",
        b"GET /static/\xff HTTP/1.1\r\n",
    ] {
        let mut req = line.to_vec();
        req.extend_from_slice(b"Host: test\r\nConnection: close\r\n\r\n");
        // The server may answer (strictly framed, then closed) or just close.
        let buf = http::raw_bytes(s.addr, &req);
        let shown = String::from_utf8_lossy(line);
        if !buf.is_empty() {
            let (r, used) = http::parse(&buf, Expect::default(), true)
                .unwrap_or_else(|e| panic!("{shown:?}: bad response: {e}"))
                .expect("complete at eof");
            assert_eq!(used, buf.len(), "{shown:?}: bytes after the response");
            assert!(
                r.status < 500 && r.status != 200,
                "{shown:?} -> {}",
                r.status
            );
        }
        let text = String::from_utf8_lossy(&buf);
        assert!(!text.contains(std::str::from_utf8(SECRET).unwrap()));
    }

    // Still healthy afterwards.
    assert_eq!(s.get("/static/css/app.css", &[]).status, 200);
}

/// STATIC_ROOT's table follows a symlink only as the mounts do (`openat2(RESOLVE_BENEATH)`):
/// resolved beneath STATIC_ROOT the whole way. One whose resolution leaves it, even to come
/// back in (`css2 -> ../static/css`), is not in the table, and neither is an absolute one,
/// even pointing inside; one whose `..` stays inside is.
#[test]
fn symlinks_leaving_static_root_and_coming_back_are_refused() {
    use std::os::unix::fs::symlink;
    let fx = StaticRoot::new();
    let root = &fx.root;
    assert_eq!(
        root.file_name().unwrap(),
        "static",
        "the links below name it"
    );
    fx.write("css/app.css", b"body{}");
    fx.write("css/sub/x.css", b"x{}");
    // Out and back in: a directory, a file, a file in a subdirectory, a chain, and a link
    // reached through a directory link that stays inside.
    symlink("../static/css", root.join("css2")).unwrap();
    symlink("../static/css/app.css", root.join("back.css")).unwrap();
    symlink("../../static/css/app.css", root.join("css/sub/back.css")).unwrap();
    symlink("css2", root.join("chain")).unwrap();
    // Absolute, pointing inside.
    symlink(root.join("css/app.css"), root.join("abs.css")).unwrap();
    symlink(root.join("css"), root.join("absdir")).unwrap();
    // Staying inside, `..` included.
    symlink("../app.css", root.join("css/sub/up.css")).unwrap();
    symlink("css/sub/../app.css", root.join("dotdot.css")).unwrap();
    symlink("css", root.join("cssdir")).unwrap();

    let s = Staticd::serve(root, &[]);
    for p in [
        "/static/css/app.css",
        "/static/css/sub/up.css",
        "/static/dotdot.css",
        "/static/cssdir/app.css",
        "/static/cssdir/sub/up.css",
    ] {
        let r = s.get(p, &[]);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}"[..]), "{p}");
    }
    assert_eq!(s.get("/static/cssdir/sub/x.css", &[]).body, b"x{}");
    for p in [
        "/static/css2/app.css",
        "/static/css2/sub/x.css",
        "/static/back.css",
        "/static/css/sub/back.css",
        "/static/cssdir/sub/back.css",
        "/static/chain/app.css",
        "/static/abs.css",
        "/static/absdir/app.css",
    ] {
        for method in ["GET", "HEAD"] {
            let req = format!("{method} {p} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            let r = http::raw(s.addr, req.as_bytes(), Expect::for_method(method));
            assert_eq!(r.status, 404, "{method} {p}");
        }
    }
}
