//! moto's server (`moto_server`, from the venv `.ci/s3` builds), the second S3 dialect the
//! publish tests run against: one per test, on a leased loopback port ([`super::ports`]),
//! with a bucket. What it was asked to write is read from its own request log (the server's
//! record, not the client's), and what it holds through boto3 (an S3 client other than the
//! one under test).
use super::ports::{lease_ports, Lease};
use super::seaweed::{probe, retried, wait_ready};
use super::ChildGuard;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// moto checks no signature: any pair is accepted, these just make the requests signed.
pub const ACCESS_KEY: &str = "staticd-moto";
pub const SECRET_KEY: &str = "staticd-moto-secret";
pub const BUCKET: &str = "static";

/// One request the server answered, from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The key (percent-decoded, without the bucket), `None` for a bucket-level request.
    pub key: Option<String>,
    /// The query string, if any (multipart parts, listings).
    pub query: String,
    pub status: u16,
}

/// An object as boto3's HEAD reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub cache_control: Option<String>,
    pub content_encoding: Option<String>,
}

pub struct Moto {
    child: Option<ChildGuard>,
    dir: tempfile::TempDir,
    _lease: Vec<Lease>,
    pub endpoint: String,
}

impl Moto {
    /// A moto server with bucket [`BUCKET`] that took a signed write. A start that fails
    /// (its port taken after all, a crash) is retried on a fresh port, its log printed.
    pub fn start() -> Moto {
        let bin = super::s3::s3_python().parent().unwrap().join("moto_server");
        retried("moto_server start", || Self::try_start(&bin))
    }

    fn try_start(bin: &Path) -> Result<Moto, String> {
        let (ports, lease) = lease_ports(1, None);
        let port = ports[0];
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // The request log must reach the file as each request is answered.
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut m = Moto {
            child: Some(ChildGuard::new(child)),
            dir,
            _lease: lease,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        m.wait_ready()?;
        Ok(m)
    }

    /// Ready = CreateBucket answered 200 and a signed PUT, GET and DELETE of a probe through
    /// staticd's own client succeed, polled by [`wait_ready`].
    fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let store = self.client("");
        let rt = staticd::remote::store::runtime().unwrap();
        let create = format!("{}/{BUCKET}", self.endpoint);
        let mut bucket = false;
        let child = self.child.as_mut().expect("a started moto_server");
        wait_ready("moto_server", child, || {
            if !bucket {
                // CreateBucket (moto needs no signature for it).
                match http.put(&create).send() {
                    Ok(r) if r.status().is_success() => bucket = true,
                    Ok(r) => return Err(format!("CreateBucket answered {}", r.status())),
                    Err(e) => return Err(format!("CreateBucket: {e}")),
                }
            }
            rt.block_on(probe(&store))
        })
        .map_err(|e| format!("{e}; its output:\n{}", self.log()))
    }

    /// staticd's own client for `s3://BUCKET/prefix` on this server.
    pub fn client(&self, prefix: &str) -> staticd::remote::store::Store {
        let target = staticd::remote::Target::parse(&format!("s3://{BUCKET}/{prefix}")).unwrap();
        let cfg = staticd::remote::PublishConfig {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            allow_http: true,
            retries: 0,
            ..Default::default()
        };
        staticd::remote::store::Store::with_env(target, &cfg, credentials_owned()).unwrap()
    }

    /// The AWS variables a staticd run needs (the endpoint is in [`Moto::publish_toml`]).
    pub fn credentials(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ]
    }

    /// The environment a staticd process needs to reach this server with the standard AWS
    /// variables alone (no staticd.toml): what `serve --origin` replicas are started with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.credentials();
        env.extend([
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        ]);
        env
    }

    /// A `[publish]` table for this server.
    pub fn publish_toml(&self, extra: &str) -> String {
        format!(
            "[publish]\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nallow_http = true\n{extra}",
            self.endpoint
        )
    }

    /// The server's output: its request log, and any error it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Every request the server answered so far, in order, from its log (werkzeug's
    /// `"METHOD /bucket/key?query HTTP/1.1" STATUS` lines, colour codes removed). The line is
    /// written as the response starts, so a client that has its answer finds it there.
    pub fn requests(&self) -> Vec<Request> {
        parse_requests(&self.log())
    }

    /// Keys under `prefix` written successfully (single PUTs and completed multipart
    /// uploads) since request number `since` of [`Moto::requests`], in order.
    pub fn written_since(&self, since: usize, prefix: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .skip(since)
            .filter(|r| (200..300).contains(&r.status))
            .filter(|r| {
                (r.method == "PUT" && r.query.is_empty())
                    || (r.method == "POST" && r.query.starts_with("uploadId="))
            })
            .filter_map(|r| r.key)
            .filter(|k| k.starts_with(&format!("{prefix}/")))
            .collect()
    }

    /// Every object under `prefix` as boto3 lists and HEADs it.
    pub fn objects(&self, prefix: &str) -> BTreeMap<String, Object> {
        let out = self.boto3(OBJECTS_PY, prefix);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("boto3 listing not JSON ({e}): {out}"));
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, o)| {
                let s = |f: &str| o[f].as_str().map(str::to_string);
                (
                    k.clone(),
                    Object {
                        size: o["size"].as_u64().unwrap(),
                        etag: s("etag").unwrap(),
                        content_type: s("content_type").unwrap_or_default(),
                        cache_control: s("cache_control"),
                        content_encoding: s("content_encoding"),
                    },
                )
            })
            .collect()
    }

    /// An object's bytes through boto3; `None` if there is none.
    pub fn read(&self, key: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let out = self.boto3(READ_PY, key);
        let out = out.trim();
        (out != "-").then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(out)
                .unwrap_or_else(|e| panic!("boto3 read of {key}: {e}: {out}"))
        })
    }

    /// Runs `code` with the venv's python and boto3 pointed at this server, `arg` as argv[1].
    fn boto3(&self, code: &str, arg: &str) -> String {
        let out = Command::new(super::s3::s3_python())
            .args(["-c", code, arg])
            .env("STATICD_MOTO_ENDPOINT", &self.endpoint)
            .env("STATICD_MOTO_BUCKET", BUCKET)
            .envs(credentials_owned())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .stdin(Stdio::null())
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "boto3 against moto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn credentials_owned() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
    ]
}

/// The requests in a werkzeug log (pure, unit-tested below).
fn parse_requests(log: &str) -> Vec<Request> {
    let mut out = Vec::new();
    for line in log.lines() {
        let line = strip_ansi(line);
        let Some((_, rest)) = line.split_once("] \"") else {
            continue;
        };
        let Some((request, tail)) = rest.split_once("\" ") else {
            continue;
        };
        let mut parts = request.split(' ');
        let (Some(method), Some(target), Some(version)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !version.starts_with("HTTP/") {
            continue;
        }
        let Some(status) = tail.split(' ').next().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = path.trim_start_matches('/');
        let key = path.split_once('/').map(|(_, k)| {
            percent_encoding::percent_decode_str(k)
                .decode_utf8_lossy()
                .into_owned()
        });
        out.push(Request {
            method: method.to_string(),
            key: key.filter(|k| !k.is_empty()),
            query: query.to_string(),
            status,
        });
    }
    out
}

/// `line` without ANSI colour sequences (`ESC [ ... m`: werkzeug colours non-2xx lines).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const OBJECTS_PY: &str = r#"
import boto3, json, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["STATICD_MOTO_ENDPOINT"])
bucket = os.environ["STATICD_MOTO_BUCKET"]
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=sys.argv[1] + "/"):
    for o in page.get("Contents", []):
        h = s3.head_object(Bucket=bucket, Key=o["Key"])
        out[o["Key"]] = {
            "size": h["ContentLength"],
            "etag": h["ETag"],
            "content_type": h.get("ContentType"),
            "cache_control": h.get("CacheControl"),
            "content_encoding": h.get("ContentEncoding"),
        }
print(json.dumps(out))
"#;

const READ_PY: &str = r#"
import base64, boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["STATICD_MOTO_ENDPOINT"])
try:
    body = s3.get_object(Bucket=os.environ["STATICD_MOTO_BUCKET"], Key=sys.argv[1])["Body"].read()
except s3.exceptions.NoSuchKey:
    print("-")
else:
    print(base64.b64encode(body).decode())
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn werkzeug_lines_parse_with_and_without_colour() {
        let log = "127.0.0.1 - - [29/Nov/2026 10:57:55] \"HEAD /static/a/b.css HTTP/1.1\" 200 -\n\
                   127.0.0.1 - - [29/Nov/2026 10:57:56] \"\u{1b}[31m\u{1b}[1mPUT /static/a/b%20c.css HTTP/1.1\u{1b}[0m\" 412 -\n\
                   127.0.0.1 - - [29/Nov/2026 10:57:56] \"PUT /static HTTP/1.1\" 200 -\n\
                   127.0.0.1 - - [29/Nov/2026 10:57:56] \"POST /static/big.png?uploadId=x HTTP/1.1\" 200 -\n\
                   * Running on http://127.0.0.1:5000\n";
        let r = parse_requests(log);
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].method, "HEAD");
        assert_eq!(r[1].key.as_deref(), Some("a/b c.css"));
        assert_eq!(r[1].status, 412);
        assert_eq!(r[2].key, None);
        assert_eq!(r[3].query, "uploadId=x");
    }
}
