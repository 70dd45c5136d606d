//! `staticd publish` against moto's server, the second S3 dialect (issue 15) beside
//! SeaweedFS (`publish`): a publish and an unchanged re-publish counted twice (staticd's
//! summary and the server's own request log), the stored headers as boto3 reads them, and the
//! manifest's conditional write (`If-None-Match: *` for the first generation, `If-Match` for
//! the next) losing a race cleanly.
use crate::common::moto::{Moto, BUCKET};
use crate::common::project::Project;
use crate::common::publish::{self, expected_keys, many_files, n, signal, spawn_publish};
use crate::common::wait_until;
use std::collections::BTreeSet;
use std::time::Duration;

pub(crate) fn project(
    moto: &Moto,
    storage: &str,
    extra: &str,
) -> (Project, Vec<(&'static str, String)>) {
    publish::project(&moto.publish_toml(extra), moto.credentials(), storage)
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Everything is sent once, the server holds exactly the generation with the right headers,
/// and a re-publish with nothing changed sends nothing.
#[test]
fn publish_then_unchanged_republish_with_headers() {
    let moto = Moto::start();
    let (p, env) = project(&moto, "compress = true\n", "");
    p.write("app.css", "body { color: blue }\n".repeat(100).as_bytes());
    p.write("app.js", "console.log('staticd');\n".repeat(100).as_bytes());
    // A tiny PNG: no variant (not compressible text), Content-Type from its name.
    p.write("logo.png", b"\x89PNG\r\n\x1a\nnot really a png");
    p.run_collect(&[]);
    let url = format!("s3://{BUCKET}/site");
    let root = p.root();

    let v = publish::publish(&p, &url, &env);
    assert_eq!(v["manifest"], "written", "{v}");
    assert_eq!(n(&v, "uploaded"), n(&v, "objects"), "{v}");
    assert_eq!(n(&v, "generation"), 1);
    let want = expected_keys(&root, "site");
    // The server's log: every key of the generation written once, nothing else.
    let written = moto.written_since(0, "site");
    let once: BTreeSet<String> = written.iter().cloned().collect();
    assert_eq!(
        once.len(),
        written.len(),
        "a key written twice: {written:?}"
    );
    assert_eq!(once, want);
    assert_eq!(n(&v, "uploaded") as usize, written.len() - 2, "{v}");
    // What boto3 sees: the same keys, the manifest byte for byte.
    let objects = moto.objects("site");
    assert_eq!(objects.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        moto.read("site/staticfiles.json").unwrap(),
        std::fs::read(root.join("staticfiles.json")).unwrap()
    );

    // Headers: a hashed name is immutable, an original revalidates; text has a charset;
    // variants carry their encoding and the base's type.
    let css = p.hashed("app.css");
    let o = &objects[&format!("site/{css}")];
    assert_eq!(o.content_type, "text/css; charset=utf-8");
    assert_eq!(o.cache_control.as_deref(), Some(IMMUTABLE));
    assert_eq!(o.content_encoding, None);
    assert_eq!(
        moto.read(&format!("site/{css}")).unwrap(),
        std::fs::read(root.join(&css)).unwrap()
    );
    let original = &objects["site/app.css"];
    assert_eq!(original.content_type, "text/css; charset=utf-8");
    assert_eq!(
        original.cache_control.as_deref(),
        Some("public, max-age=60")
    );
    let js = p.hashed("app.js");
    for (suffix, enc) in [(".br", "br"), (".gz", "gzip")] {
        let key = format!("site/{js}{suffix}");
        assert!(root.join(format!("{js}{suffix}")).is_file(), "{key}");
        let o = &objects[&key];
        assert_eq!(o.content_type, "text/javascript; charset=utf-8", "{key}");
        assert_eq!(o.content_encoding.as_deref(), Some(enc), "{key}");
        assert_eq!(o.cache_control.as_deref(), Some(IMMUTABLE), "{key}");
        assert_eq!(
            moto.read(&key).unwrap(),
            std::fs::read(root.join(format!("{js}{suffix}"))).unwrap(),
            "{key}"
        );
    }
    let png = &objects[&format!("site/{}", p.hashed("logo.png"))];
    assert_eq!(png.content_type, "image/png");
    assert_eq!(png.content_encoding, None);

    // Nothing changed: staticd sends nothing, and the server was asked to write nothing.
    let mark = moto.requests().len();
    let again = publish::publish(&p, &url, &env);
    assert_eq!(n(&again, "uploaded"), 0, "{again}");
    assert_eq!(n(&again, "unchanged"), n(&again, "objects"), "{again}");
    assert_eq!(again["manifest"], "unchanged");
    assert_eq!(moto.written_since(mark, "site"), Vec::<String>::new());
}

/// Two publishes race for one prefix, twice: for the first generation (the manifest is
/// created with `If-None-Match: *`) and for the next (replaced with `If-Match`). Each time
/// the one that writes the manifest second fails naming it, the manifest is the winner's
/// whole, and the loser run again publishes without re-sending its objects.
#[test]
fn manifest_conditional_write_loses_a_race_cleanly() {
    let moto = Moto::start();
    let (a, env_a) = project(&moto, "", "jobs = 1\n");
    let (b, env_b) = project(&moto, "", "");
    let url = format!("s3://{BUCKET}/race");
    for (round, tag) in [(1, "a1"), (2, "a2")] {
        many_files(&a, tag, 200);
        b.write("b.css", format!("b {{ order: {round} }}").as_bytes());
        a.run_collect(&[]);
        b.run_collect(&[]);
        // A reads the manifest (absent, then B's), lists, starts uploading; it is frozen
        // after its first object lands, B publishes whole, then A goes on.
        let mark = moto.requests().len();
        let child_a = spawn_publish(&a, &url, &env_a);
        wait_until("A's first upload", Duration::from_secs(60), || {
            moto.written_since(mark, "race")
                .iter()
                .any(|k| k.starts_with(&format!("race/many/{tag}-")))
                .then_some(())
        });
        signal(&child_a, libc::SIGSTOP);
        let vb = publish::publish(&b, &url, &env_b);
        assert_eq!(vb["manifest"], "written", "round {round}: {vb}");
        signal(&child_a, libc::SIGCONT);
        let out_a = child_a.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out_a.stderr);
        assert!(!out_a.status.success(), "round {round}: A must lose: {err}");
        assert!(
            err.contains("another publish changed s3://static/race/staticfiles.json"),
            "round {round}: {err}"
        );
        // The server refused exactly that write (412), and kept B's manifest whole.
        let refused: Vec<_> = moto
            .requests()
            .into_iter()
            .skip(mark)
            .filter(|r| r.key.as_deref() == Some("race/staticfiles.json") && r.status == 412)
            .collect();
        assert_eq!(refused.len(), 1, "round {round}: {refused:?}");
        assert_eq!(
            moto.read("race/staticfiles.json").unwrap(),
            std::fs::read(b.root().join("staticfiles.json")).unwrap(),
            "round {round}: the manifest is B's, whole"
        );
        // A again: its objects are there, only the manifest and the record are written.
        let mark = moto.requests().len();
        let va = publish::publish(&a, &url, &env_a);
        assert_eq!(va["manifest"], "written", "round {round}: {va}");
        assert_eq!(n(&va, "uploaded"), 0, "round {round}: {va}");
        assert_eq!(
            moto.written_since(mark, "race"),
            ["race/staticfiles.json", "race/.staticd-generations.json"],
            "round {round}"
        );
        assert_eq!(
            moto.read("race/staticfiles.json").unwrap(),
            std::fs::read(a.root().join("staticfiles.json")).unwrap()
        );
        assert_eq!(n(&va, "generation"), 2 * round);
    }
}
