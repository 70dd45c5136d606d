//! `staticd publish` / `collect --publish` / `prune --remote` against a real S3-compatible
//! store (SeaweedFS), counted twice: by staticd's own JSON summary and by what the store's
//! filer says was written (chunk ids change on every write, so a re-upload of the same bytes
//! shows too).
use crate::common::django::{django_env, SampleProject};
use crate::common::project::{manifest_paths, Project};
use crate::common::publish::{
    self, expected_keys, json, local_deltas, many_files, n, run, signal, spawn_publish,
};
use crate::common::s3::{self, written_between, Seaweed, BUCKET};
use crate::common::{wait_until, write_file};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// A `staticd.toml` project whose `[publish]` points at `store`, with its credentials.
pub(crate) fn project(
    store: &Seaweed,
    storage: &str,
    publish_extra: &str,
) -> (Project, Vec<(&'static str, String)>) {
    let credentials = vec![
        ("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY.to_string()),
        ("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY.to_string()),
    ];
    publish::project(&store.publish_toml(publish_extra), credentials, storage)
}

/// A migrated sample_project, the store's variables with Django's, and the venv's python.
fn sample_on(store: &Seaweed) -> (SampleProject, Vec<(&'static str, String)>, String) {
    let project = SampleProject::new();
    let mut env = django_env();
    env.extend(store.env());
    let py = crate::common::venv_python().to_str().unwrap().to_string();
    (project, env, py)
}

#[test]
fn sample_project_publish_republish_and_one_edit() {
    let store = Seaweed::start();
    let (project, env, py) = sample_on(&store);
    let dir = project.path().to_str().unwrap();
    let url = format!("s3://{BUCKET}/site");
    let collect_publish = || {
        let args = ["collect", dir, "--python", py.as_str(), "--publish", &url];
        json(&[&args[..], &["--format", "json"]].concat(), &env)
    };

    // collect --publish: everything is sent, and the store holds exactly that.
    let v = collect_publish();
    let p = &v["publish"];
    let root = project.path().join("static");
    let want = expected_keys(&root, "site");
    assert_eq!(n(p, "objects") as usize, want.len() - 2, "{p}");
    assert_eq!(n(p, "uploaded"), n(p, "objects"), "{p}");
    assert_eq!(p["manifest"], "written");
    assert_eq!(n(p, "generation"), 1);
    let first = store.objects("site");
    assert_eq!(first.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        store.read("site/staticfiles.json").unwrap(),
        std::fs::read(root.join("staticfiles.json")).unwrap(),
        "the manifest is byte for byte the local one"
    );
    // Headers: a hashed name is immutable, an original is not; text has a charset.
    let hashed = manifest_paths(&root)["notes/css/app.css"].clone();
    let h = &first[&format!("site/{hashed}")];
    assert_eq!(h.mime, "text/css; charset=utf-8");
    assert_eq!(
        h.headers["Cache-Control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        store.read(&format!("site/{hashed}")).unwrap(),
        std::fs::read(root.join(&hashed)).unwrap()
    );
    let o = &first["site/notes/css/app.css"];
    assert_eq!(o.headers["Cache-Control"], "public, max-age=60");
    let png = manifest_paths(&root)["notes/img/logo.png"].clone();
    assert_eq!(first[&format!("site/{png}")].mime, "image/png");

    // Nothing changed: nothing sent, and the store agrees.
    let again = json(
        &[
            "publish",
            &url,
            dir,
            "--python",
            py.as_str(),
            "--format",
            "json",
        ],
        &env,
    );
    assert_eq!(n(&again, "uploaded"), 0, "{again}");
    assert_eq!(n(&again, "unchanged"), n(&again, "objects"));
    assert_eq!(again["manifest"], "unchanged");
    let second = store.objects("site");
    assert_eq!(written_between(&first, &second), Vec::<String>::new());

    // One edit: that file's new hashed name and its original, then the manifest and record.
    let css = project.path().join("notes/static/notes/css/app.css");
    let mut text = std::fs::read_to_string(&css).unwrap();
    text.push_str("\nfooter { color: red; }\n");
    std::fs::write(&css, text).unwrap();
    let v = collect_publish();
    let p = &v["publish"];
    let third = store.objects("site");
    let written = written_between(&second, &third);
    assert_eq!(n(p, "generation"), 2);
    let new_hashed = manifest_paths(&root)["notes/css/app.css"].clone();
    assert_ne!(new_hashed, hashed);
    // The edited file under its new hashed name and its original, each with its variants
    // (staticd compresses whatever the storage): nothing else but the manifest and record.
    let mut changed = Vec::new();
    for name in [new_hashed.as_str(), "notes/css/app.css"] {
        for suffix in ["", ".br", ".gz"] {
            if root.join(format!("{name}{suffix}")).is_file() {
                changed.push(format!("site/{name}{suffix}"));
            }
        }
    }
    // And the new version's deltas against the old one, when they paid.
    changed.extend(
        local_deltas(&root, &new_hashed)
            .into_iter()
            .map(|d| format!("site/{d}")),
    );
    assert!(changed.len() >= 2);
    assert_eq!(n(p, "uploaded") as usize, changed.len(), "{p}: {written:?}");
    let mut want = changed;
    want.push("site/.staticd-generations.json".to_string());
    want.push("site/staticfiles.json".to_string());
    want.sort();
    assert_eq!(written, want);
    assert!(
        third.contains_key(&format!("site/{hashed}")),
        "the old generation stays"
    );
}

/// The key a CDN rule derives from a request for `asset` (a key) with `Available-Dictionary:
/// :<base64 SHA-256>:` when it tries `coding` (README "CDN rules: deltas"): the first 16 hex
/// digits of the hash between the asset's key and the coding.
fn cdn_delta_key(asset: &str, available_dictionary: &str, coding: &str) -> String {
    use base64::Engine as _;
    let b64 = available_dictionary
        .trim()
        .strip_prefix(':')
        .and_then(|v| v.strip_suffix(':'))
        .expect("a byte sequence");
    let hash = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{asset}.{hex}.{coding}")
}

/// Deltas (RFC 9842, issue 16) go to the store under their local names, with their coding,
/// the bundle's type and the immutable Cache-Control; the key a CDN rule computes from
/// `Available-Dictionary` is there; an unchanged re-publish sends nothing; `prune --remote`
/// deletes a pruned version's deltas with it and keeps the current one's.
#[test]
fn deltas_published_beside_their_file_and_pruned_with_it() {
    use crate::delta::{available, bundle};
    let store = Seaweed::start();
    let (p, env) = project(&store, "compress = true\n", "");
    let dir = p.dir.to_str().unwrap();
    let url = format!("s3://{BUCKET}/dl");
    let collect_publish = || {
        json(
            &["collect", dir, "--publish", &url, "--format", "json"],
            &env,
        )
    };
    let versions = [
        bundle(3000, None),
        bundle(3000, Some(1234)),
        bundle(3000, Some(7)),
    ];
    p.write("js/app.js", &versions[0]);
    p.write(
        "css/site.css",
        "body { color: #333 }\n".repeat(300).as_bytes(),
    );
    let first = collect_publish();
    assert_eq!(first["deltas"]["written"], 0, "{first}");
    let v1_name = p.hashed("js/app.js");
    let before = store.objects("dl");

    // Version 2, collected and published in one run.
    p.write("js/app.js", &versions[1]);
    let second = collect_publish();
    let v2_name = p.hashed("js/app.js");
    let root = p.root();
    let deltas = local_deltas(&root, &v2_name);
    assert!(!deltas.is_empty(), "collect kept a delta: {second}");
    let after = store.objects("dl");
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        expected_keys(&root, "dl")
            .union(&before.keys().cloned().collect())
            .cloned()
            .collect::<BTreeSet<_>>(),
        "this generation's keys, deltas included, beside the last one's"
    );
    let mut want_written: Vec<String> = deltas.iter().map(|d| format!("dl/{d}")).collect();
    for name in [v2_name.as_str(), "js/app.js"] {
        for suffix in ["", ".br", ".gz"] {
            if root.join(format!("{name}{suffix}")).is_file() {
                want_written.push(format!("dl/{name}{suffix}"));
            }
        }
    }
    assert_eq!(
        n(&second["publish"], "uploaded") as usize,
        want_written.len(),
        "{second}"
    );
    want_written.push("dl/.staticd-generations.json".into());
    want_written.push("dl/staticfiles.json".into());
    want_written.sort();
    assert_eq!(written_between(&before, &after), want_written);
    for d in &deltas {
        let key = format!("dl/{d}");
        let o = &after[&key];
        let coding = d.rsplit('.').next().unwrap();
        assert_eq!(o.headers["Content-Encoding"], coding, "{key}");
        assert_eq!(o.mime, "text/javascript; charset=utf-8", "{key}");
        assert_eq!(
            o.headers["Cache-Control"], "public, max-age=31536000, immutable",
            "{key}"
        );
        assert_eq!(
            store.read(&key).unwrap(),
            std::fs::read(root.join(d)).unwrap(),
            "{key}: the local bytes"
        );
    }
    // What a browser holding version 1 sends leads a CDN rule to a delta's key.
    let have_v1 = available(&versions[0]);
    let found: Vec<String> = ["dcb", "dcz"]
        .iter()
        .map(|c| cdn_delta_key(&format!("dl/{v2_name}"), &have_v1, c))
        .filter(|k| after.contains_key(k))
        .collect();
    assert_eq!(
        found.len(),
        deltas.len(),
        "{found:?} vs {deltas:?}: every delta is found from the request"
    );

    // Nothing changed: nothing sent.
    let again = publish::publish(&p, &url, &env);
    assert_eq!(n(&again, "uploaded"), 0, "{again}");
    assert_eq!(n(&again, "unchanged"), n(&again, "objects"), "{again}");
    assert_eq!(
        written_between(&after, &store.objects("dl")),
        Vec::<String>::new()
    );

    // Version 3 (deltas against 2 and 1), then keep one generation: versions 1 and 2 go, with
    // version 2's deltas; version 3's stay, the one against the pruned version 1 included.
    p.write("js/app.js", &versions[2]);
    collect_publish();
    let v3_name = p.hashed("js/app.js");
    let v3_deltas = local_deltas(&root, &v3_name);
    assert!(
        v3_deltas.len() > deltas.len(),
        "against two versions: {v3_deltas:?}"
    );
    let full = store.objects("dl");
    let out = run(
        &["prune", dir, "--remote", &url, "--keep-generations", "1"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pruned = store.objects("dl");
    let gone: BTreeSet<String> = full
        .keys()
        .filter(|k| !pruned.contains_key(*k))
        .cloned()
        .collect();
    let mut want_gone: BTreeSet<String> = deltas.iter().map(|d| format!("dl/{d}")).collect();
    for name in [&v1_name, &v2_name] {
        for suffix in ["", ".br", ".gz"] {
            let k = format!("dl/{name}{suffix}");
            if full.contains_key(&k) {
                want_gone.insert(k);
            }
        }
    }
    assert_eq!(gone, want_gone);
    for d in &v3_deltas {
        assert!(pruned.contains_key(&format!("dl/{d}")), "{d} stays");
    }
}

/// Django with django-storages' S3ManifestStaticStorage reads the manifest staticd published
/// and renders `{% static %}` as URLs of objects that are there.
#[test]
fn django_storages_renders_static_from_the_published_manifest() {
    let store = Seaweed::start();
    let (project, env, py) = sample_on(&store);
    let dir = project.path().to_str().unwrap();
    json(
        &[
            "collect",
            dir,
            "--python",
            py.as_str(),
            "--publish",
            &format!("s3://{BUCKET}/assets"),
            "--format",
            "json",
        ],
        &env,
    );
    let root = project.path().join("static");
    let hashed = manifest_paths(&root)["notes/css/app.css"].clone();
    // A settings module of the test's own: the sample project's, with the staticfiles
    // storage on the store (and the local manifest moved away, so only the store has one).
    write_file(
        project.path(),
        "toyproject/settings_s3.py",
        format!(
            r#"from .settings import *  # noqa
STORAGES = {{
    "default": {{"BACKEND": "django.core.files.storage.FileSystemStorage"}},
    "staticfiles": {{
        "BACKEND": "storages.backends.s3.S3ManifestStaticStorage",
        "OPTIONS": {{
            "bucket_name": "{BUCKET}",
            "location": "assets",
            "endpoint_url": "{}",
            "access_key": "{}",
            "secret_key": "{}",
            "region_name": "us-east-1",
            "addressing_style": "path",
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_auth": True,
        }},
    }},
}}
"#,
            store.endpoint,
            s3::ACCESS_KEY,
            s3::SECRET_KEY
        )
        .as_bytes(),
    );
    std::fs::rename(
        root.join("staticfiles.json"),
        project.path().join("moved.json"),
    )
    .unwrap();
    let code = "from django.template import Template, Context\nprint(Template(\"{% load static %}{% static 'notes/css/app.css' %}\").render(Context()))";
    let out = Command::new(s3::s3_python())
        .args([
            "manage.py",
            "shell",
            "--settings",
            "toyproject.settings_s3",
            "-c",
            code,
        ])
        .current_dir(project.path())
        .envs(django_env())
        .output()
        .unwrap();
    // The last line (the shell may print what it imported first), HTML-unescaped.
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stdout = stdout.lines().last().unwrap_or("").replace("&amp;", "&");
    assert!(
        out.status.success(),
        "Django failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("{}/{BUCKET}/assets/{hashed}?", store.endpoint);
    assert!(
        stdout.starts_with(&prefix),
        "{stdout} should start with {prefix}"
    );
    // The (presigned) URL Django made answers with the published bytes.
    let resp = reqwest::blocking::get(&stdout).unwrap();
    assert_eq!(resp.status(), 200, "{stdout}");
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        resp.bytes().unwrap().to_vec(),
        std::fs::read(root.join(&hashed)).unwrap()
    );
}

/// Two publishes racing for one prefix: the second to write the manifest fails cleanly,
/// the manifest is the winner's whole, and running the loser again publishes it.
#[test]
fn concurrent_publishes_never_interleave() {
    let store = Seaweed::start();
    let (a, env_a) = project(&store, "", "jobs = 1\n");
    let (b, env_b) = project(&store, "", "");
    many_files(&a, "a", 400);
    b.write("b.css", b"body{}");
    a.run_collect(&[]);
    b.run_collect(&[]);
    let url = format!("s3://{BUCKET}/race");
    // A reads the (absent) manifest, lists, starts uploading; it is frozen after its first
    // object lands, B publishes whole, then A goes on.
    let child_a = spawn_publish(&a, &url, &env_a);
    wait_until("A's first upload", Duration::from_secs(60), || {
        store
            .objects("race")
            .keys()
            .any(|k| k.starts_with("race/many/"))
            .then_some(())
    });
    signal(&child_a, libc::SIGSTOP);
    let vb = publish::publish(&b, &url, &env_b);
    assert_eq!(vb["manifest"], "written");
    signal(&child_a, libc::SIGCONT);
    let out_a = child_a.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out_a.stderr);
    assert!(!out_a.status.success(), "A must lose the race: {err}");
    assert!(
        err.contains("another publish changed s3://static/race/staticfiles.json"),
        "{err}"
    );
    assert_eq!(
        store.read("race/staticfiles.json").unwrap(),
        std::fs::read(b.root().join("staticfiles.json")).unwrap(),
        "the manifest is B's, whole"
    );
    // A again: only the manifest and the record are left to write.
    let va = publish::publish(&a, &url, &env_a);
    assert_eq!(va["manifest"], "written");
    assert_eq!(n(&va, "uploaded"), 0, "{va}");
    assert_eq!(
        store.read("race/staticfiles.json").unwrap(),
        std::fs::read(a.root().join("staticfiles.json")).unwrap()
    );
    assert_eq!(n(&va, "generation"), 2);
}

/// The store dies mid-publish: the publish fails naming the bucket and an object it could not
/// write, the previous manifest and every object it names are intact, and a retry sends only
/// what is still missing.
#[test]
fn store_killed_mid_publish_then_retry_completes() {
    let mut store = Seaweed::start();
    let (p, env) = project(
        &store,
        "",
        "jobs = 1\nretries = 1\nretry_timeout_secs = 2\n",
    );
    p.write("app.css", b"body { color: blue }");
    p.run_collect(&[]);
    let url = format!("s3://{BUCKET}/live");
    publish::publish(&p, &url, &env);
    let gen1_manifest = store.read("live/staticfiles.json").unwrap();
    let gen1 = store.objects("live");

    many_files(&p, "g2", 400);
    p.write("app.css", b"body { color: green }");
    p.run_collect(&[]);
    let mut child = spawn_publish(&p, &url, &env);
    wait_until(
        "the second publish's first upload",
        Duration::from_secs(60),
        || {
            store
                .objects("live")
                .keys()
                .any(|k| k.starts_with("live/many/"))
                .then_some(())
        },
    );
    signal(&child, libc::SIGSTOP);
    store.kill();
    signal(&child, libc::SIGCONT);
    wait_until("the publish to give up", Duration::from_secs(120), || {
        child.try_wait().unwrap().map(|_| ())
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the publish must fail: {err}");
    // It names the object it could not write: a key of this generation, not the prefix.
    let keys = expected_keys(&p.root(), "live");
    assert!(
        keys.iter()
            .filter(
                |k| !k.ends_with("staticfiles.json") && !k.ends_with(".staticd-generations.json")
            )
            .any(|k| err.contains(&format!("s3://static/{k}"))),
        "the error names the bucket and an object's key: {err}"
    );

    store.restart();
    assert_eq!(
        store.read("live/staticfiles.json").unwrap(),
        gen1_manifest,
        "the previous manifest is unchanged"
    );
    // The previous generation is its manifest and what that names: all untouched. (An
    // unhashed original is a mutable object, updated before the manifest, as the local
    // publish does when it cannot swap the tree.)
    let after_crash = store.objects("live");
    let gen1_names: BTreeSet<String> = serde_json::from_slice::<serde_json::Value>(&gen1_manifest)
        .unwrap()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| format!("live/{}", v.as_str().unwrap()))
        .collect();
    assert!(!gen1_names.is_empty());
    for k in &gen1_names {
        assert_eq!(
            after_crash.get(k),
            gen1.get(k),
            "{k} of the previous generation"
        );
    }
    // The retry need not crawl: more uploads in flight.
    let toml = p.dir.join("staticd.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("jobs = 1\n", "jobs = 16\n")).unwrap();
    let v = publish::publish(&p, &url, &env);
    assert_eq!(v["manifest"], "written");
    let after_retry = store.objects("live");
    let before_kill = written_between(&gen1, &after_crash);
    assert!(
        !before_kill.is_empty(),
        "some objects made it before the kill"
    );
    let written = written_between(&after_crash, &after_retry);
    // Nothing that made it before the kill is sent again.
    for k in &written {
        assert!(!before_kill.contains(k), "{k} sent twice");
    }
    assert_eq!(n(&v, "uploaded") as usize, written.len() - 2, "{v}");
    assert_eq!(
        store.read("live/staticfiles.json").unwrap(),
        std::fs::read(p.root().join("staticfiles.json")).unwrap()
    );
    assert_eq!(
        after_retry.keys().cloned().collect::<BTreeSet<_>>(),
        &expected_keys(&p.root(), "live") | &gen1.keys().cloned().collect(),
    );
}

/// Variants: own keys, Content-Encoding, the base's Content-Type; large files in parts, whose
/// multipart ETag staticd predicts (a re-publish sends nothing).
#[test]
fn variants_and_multipart() {
    let store = Seaweed::start();
    let (p, env) = project(
        &store,
        "compress = true\n",
        "multipart_threshold_mib = 5\npart_size_mib = 5\n",
    );
    p.write("app.js", "console.log('staticd');\n".repeat(200).as_bytes());
    // Too small for compression to pay: no variant locally, an identity fill in the store.
    p.write("tiny.js", b"x");
    // Incompressible and over the threshold: two parts.
    let big: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    p.write("big.png", &big);
    p.run_collect(&[]);
    let url = format!("s3://{BUCKET}/v");
    let v = publish::publish(&p, &url, &env);
    assert_eq!(n(&v, "uploaded"), n(&v, "objects"));
    let js = p.hashed("app.js");
    let objects = store.objects("v");
    for (suffix, enc) in [(".br", "br"), (".gz", "gzip")] {
        let o = &objects[&format!("v/{js}{suffix}")];
        assert_eq!(o.mime, "text/javascript; charset=utf-8", "{suffix}");
        assert_eq!(o.headers["Content-Encoding"], enc);
        assert_eq!(
            o.headers["Cache-Control"],
            "public, max-age=31536000, immutable"
        );
    }
    let tiny = p.hashed("tiny.js");
    assert!(!p.root().join(format!("{tiny}.br")).exists());
    let fill = &objects[&format!("v/{tiny}.br")];
    assert_eq!(fill.mime, "text/javascript; charset=utf-8");
    assert!(!fill.headers.contains_key("Content-Encoding"), "{fill:?}");
    assert_eq!(store.read(&format!("v/{tiny}.br")).unwrap(), b"x".to_vec());
    assert!(
        !objects.contains_key(&format!("v/{}.br", p.hashed("big.png"))),
        "no fill for a name no CDN rule negotiates"
    );
    let png = p.hashed("big.png");
    assert_eq!(store.read(&format!("v/{png}")).unwrap(), big);
    let client = store.client("v");
    let rt = staticd::remote::store::runtime().unwrap();
    let listing = rt.block_on(client.list()).unwrap();
    let etag = listing[&png].etag.clone().unwrap();
    assert!(
        etag.trim_matches('"').ends_with("-2"),
        "uploaded in two parts: {etag}"
    );
    let again = publish::publish(&p, &url, &env);
    assert_eq!(n(&again, "uploaded"), 0, "{again}");
}

/// An object overwritten with other bytes behind staticd's back is found by the listing
/// (size or ETag) and sent again.
#[test]
fn damaged_object_is_sent_again() {
    let store = Seaweed::start();
    let (p, env) = project(&store, "", "");
    p.write("a.css", b"a { color: red }");
    p.run_collect(&[]);
    let url = format!("s3://{BUCKET}/d");
    publish::publish(&p, &url, &env);
    let hashed = p.hashed("a.css");
    let client = store.client("d");
    let rt = staticd::remote::store::runtime().unwrap();
    rt.block_on(client.put(
        &hashed,
        bytes::Bytes::from_static(b"a { color: RED }"),
        &Default::default(),
        object_store::PutMode::Overwrite,
    ))
    .unwrap();
    let v = publish::publish(&p, &url, &env);
    assert_eq!(n(&v, "replaced"), 1, "{v}");
    assert_eq!(n(&v, "uploaded"), 1, "{v}");
    assert_eq!(
        store.read(&format!("d/{hashed}")).unwrap(),
        b"a { color: red }".to_vec()
    );
}

#[test]
fn prune_remote_deletes_only_what_no_kept_generation_names() {
    let store = Seaweed::start();
    let (p, env) = project(&store, "compress = true\n", "");
    let url = format!("s3://{BUCKET}/pr");
    let mut names = Vec::new();
    p.write("keep.css", "body { margin: 0 }\n".repeat(40).as_bytes());
    for colour in ["red", "green", "blue"] {
        p.write(
            "a.css",
            format!("a {{ color: {colour} }}\n").repeat(40).as_bytes(),
        );
        p.run_collect(&[]);
        publish::publish(&p, &url, &env);
        names.push(p.hashed("a.css"));
    }
    let before = store.objects("pr");
    for name in &names {
        assert!(before.contains_key(&format!("pr/{name}")));
        assert!(before.contains_key(&format!("pr/{name}.gz")));
    }
    let dir = p.dir.to_str().unwrap();
    let dry = run(
        &[
            "prune",
            dir,
            "--remote",
            &url,
            "--keep-generations",
            "2",
            "-n",
        ],
        &env,
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(store.objects("pr"), before, "a dry run deletes nothing");
    let out = run(
        &["prune", dir, "--remote", &url, "--keep-generations", "2"],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = store.objects("pr");
    let gone: BTreeSet<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let mut want: BTreeSet<String> = BTreeSet::new();
    for suffix in ["", ".br", ".gz"] {
        let k = format!("pr/{}{suffix}", names[0]);
        if before.contains_key(&k) {
            want.insert(k);
        }
    }
    assert_eq!(gone, want.iter().collect(), "{stdout}");
    assert!(
        stdout.contains(&format!("{} objects", want.len())),
        "{stdout}"
    );
    assert!(after.contains_key("pr/a.css"), "originals are never pruned");
    assert!(after.contains_key(&format!("pr/{}", p.hashed("keep.css"))));
    let rec: serde_json::Value =
        serde_json::from_slice(&store.read("pr/.staticd-generations.json").unwrap()).unwrap();
    assert_eq!(rec["generations"].as_array().unwrap().len(), 2);
}

#[test]
fn wrong_credentials_and_missing_bucket_are_clear_errors() {
    let store = Seaweed::start();
    let (p, mut env) = project(&store, "", "retries = 0\n");
    p.write("a.css", b"a{}");
    p.run_collect(&[]);
    let dir = p.dir.to_str().unwrap();

    let missing = run(&["publish", "s3://no-such-bucket/x", dir], &env);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        err.contains("bucket \"no-such-bucket\" does not exist"),
        "{err}"
    );

    env.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    env.push(("AWS_SECRET_ACCESS_KEY", "not-the-secret".into()));
    let wrong = run(&["publish", &format!("s3://{BUCKET}/x"), dir], &env);
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(err.contains("s3://static/x/"), "{err}");

    // Authenticated, but not allowed to write.
    env.retain(|(k, _)| !k.starts_with("AWS_"));
    env.push(("AWS_ACCESS_KEY_ID", s3::READER_KEY.into()));
    env.push(("AWS_SECRET_ACCESS_KEY", s3::READER_SECRET.into()));
    let denied = run(&["publish", &format!("s3://{BUCKET}/x"), dir], &env);
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(!denied.status.success());
    let hashed = p.hashed("a.css");
    assert!(
        err.contains("access denied while writing s3://static/x/"),
        "{err}"
    );
    assert!(
        err.contains(&format!("x/{hashed}")) || err.contains("x/a.css"),
        "{err}"
    );

    let bad_url = run(&["publish", "gs://b/x", dir], &env);
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("invalid store URL \"gs://b/x\""));
    assert!(store.objects("x").is_empty());
}

/// The variant cache's second level on the store: a fresh runner (empty disk cache, empty
/// STATIC_ROOT) compresses nothing another runner compressed, and a damaged entry there is
/// found and recomputed.
#[test]
fn remote_variant_cache_shared_by_runners() {
    let store = Seaweed::start();
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| {
            let body = format!(".c{i} {{ color: #{i:06x}; margin: {i}px }}\n").repeat(60);
            (format!("css/c{i}.css"), body.into_bytes())
        })
        .collect();
    let runner = || {
        let (p, env) = project(&store, "compress = true\n", "");
        for (rel, body) in &files {
            p.write(rel, body);
        }
        (p, env)
    };
    let url = format!("s3://{BUCKET}/ci-cache");
    let collect = |p: &Project, env: &[(&str, String)]| {
        json(
            &[
                "collect",
                p.dir.to_str().unwrap(),
                "--cache",
                &url,
                "--format",
                "json",
            ],
            env,
        )
    };

    let (a, env_a) = runner();
    let first = collect(&a, &env_a);
    let distinct = n(&first, "compressions");
    assert!(distinct >= 6, "{first}");
    assert_eq!(n(&first, "cache_hits"), 0);
    let stored = store.objects("ci-cache");
    assert_eq!(
        stored.len() as u64,
        distinct,
        "one entry per distinct content: {stored:?}"
    );

    // A second runner: everything from the store, nothing compressed, nothing written there.
    let (b, env_b) = runner();
    let second = collect(&b, &env_b);
    assert_eq!(n(&second, "compressions"), 0, "{second}");
    assert_eq!(n(&second, "cache_hits"), distinct);
    assert_eq!(
        written_between(&stored, &store.objects("ci-cache")),
        Vec::<String>::new()
    );
    for (rel, _) in &files {
        let hashed = b.hashed(rel);
        assert_eq!(
            std::fs::read(b.root().join(format!("{hashed}.br"))).unwrap(),
            std::fs::read(a.root().join(format!("{hashed}.br"))).unwrap(),
            "{rel}: the same variant as the runner that compressed it"
        );
    }

    // A damaged entry: detected, recomputed, replaced.
    let (victim, _) = stored.iter().next().unwrap();
    let rel = victim.strip_prefix("ci-cache/").unwrap().to_string();
    let rt = staticd::remote::store::runtime().unwrap();
    rt.block_on(store.client("ci-cache").put(
        &rel,
        bytes::Bytes::from_static(b"SDC1 not a cache entry"),
        &Default::default(),
        object_store::PutMode::Overwrite,
    ))
    .unwrap();
    let (c, env_c) = runner();
    let third = collect(&c, &env_c);
    assert_eq!(n(&third, "cache_corrupt"), 1, "{third}");
    assert_eq!(n(&third, "compressions"), 1);
    assert_eq!(n(&third, "cache_hits"), distinct - 1);
    let repaired = store.read(victim).unwrap();
    assert!(
        repaired.starts_with(b"SDC1") && repaired.len() > 40,
        "entry rewritten"
    );
}
