//! SeaweedFS (`weed mini`, from the venv `.ci/s3` builds) for the publish benchmark: started
//! on free loopback ports with one bucket, and asked through its filer which objects were
//! written (chunk ids change on every write, so a re-upload of identical bytes counts too).
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "staticd-bench";
pub const SECRET_KEY: &str = "staticd-bench-secret";

/// `bash .ci/s3`: the venv with `weed`, django-storages, boto3 and collectfasta; its python.
pub fn s3_python() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join(".ci").join("s3"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!(".ci/s3: {e}"))?;
    if !out.status.success() {
        return Err(format!(".ci/s3 failed ({})", out.status));
    }
    let py = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim(),
    );
    py.is_file()
        .then_some(py.clone())
        .ok_or_else(|| format!(".ci/s3 printed {py:?}, not a python"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port `p` with `p + 10000` free too: weed's admin worker dials `admin + 10000`.
fn port_pair() -> u16 {
    for i in 0..2000u32 {
        let p = 20000 + ((std::process::id().wrapping_mul(7919) + i * 104729) % 10000) as u16;
        if TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        {
            return p;
        }
    }
    panic!("no free port pair");
}

pub struct Seaweed {
    child: Child,
    _dir: tempfile::TempDir,
    pub endpoint: String,
    filer: u16,
    /// `/tmp/seaweedfs-*-grpc-PORT.sock`: weed leaves one per gRPC port behind.
    sockets: Vec<String>,
    pub bucket: String,
}

impl Seaweed {
    pub fn start(weed: &Path, bucket: &str, parent: &Path) -> Seaweed {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let d = dir.path();
        let (s3, filer, admin) = (free_port(), free_port(), port_pair());
        let grpc = [free_port(), free_port(), free_port(), free_port()];
        let log = std::fs::File::create(d.join("weed.log")).unwrap();
        let child = Command::new(weed)
            .arg("mini")
            .arg(format!("-dir={}", d.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={}", grpc[0]))
            .arg(format!("-master.port={}", free_port()))
            .arg(format!("-master.port.grpc={}", grpc[1]))
            .arg(format!("-volume.port={}", free_port()))
            .arg(format!("-volume.port.grpc={}", grpc[2]))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={}", grpc[3]))
            .arg(format!("-admin.port={admin}"))
            .arg(format!("-admin.port.grpc={}", admin + 10000))
            .arg(format!(
                "-filer.localSocket={}",
                d.join("filer.sock").display()
            ))
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .args([
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ])
            .args(["-master.telemetry=false", "-s3.autoCreateBucket=false"])
            .arg(format!("-bucket={bucket}"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn weed mini");
        let mut s = Seaweed {
            child,
            _dir: dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            filer,
            sockets: ["s3", "master", "volume", "filer"]
                .iter()
                .zip(grpc)
                .map(|(n, p)| format!("/tmp/seaweedfs-{n}-grpc-{p}.sock"))
                .chain([format!("/tmp/seaweedfs-admin-grpc-{}.sock", admin + 10000)])
                .collect(),
            bucket: bucket.to_string(),
        };
        s.wait_ready();
        s
    }

    /// Ready = a signed PUT succeeds (the S3 port answers a little before that).
    fn wait_ready(&mut self) {
        let target = staticd::remote::Target::parse(&format!("s3://{}", self.bucket)).unwrap();
        let cfg = staticd::remote::PublishConfig {
            endpoint: Some(self.endpoint.clone()),
            path_style: true,
            allow_http: true,
            retries: 0,
            ..Default::default()
        };
        let store =
            staticd::remote::store::Store::with_env(target, &cfg, self.env_owned()).unwrap();
        let rt = staticd::remote::store::runtime().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let headers = staticd::remote::store::Headers {
            content_type: "text/plain".into(),
            cache_control: "no-cache".into(),
            encoding: None,
        };
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("weed mini exited: {st}");
            }
            let put = store.put(
                ".ready",
                bytes::Bytes::from_static(b"ok"),
                &headers,
                object_store::PutMode::Overwrite,
            );
            if rt.block_on(put).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "weed mini not ready after 120 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        rt.block_on(store.delete(&[".ready".to_string()])).unwrap();
    }

    fn env_owned(&self) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    /// The AWS variables a client needs for this store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        ]
    }

    /// Key → chunk ids of every object under `prefix`, from the filer (recursive).
    pub fn chunks(&self, prefix: &str) -> BTreeMap<String, Vec<String>> {
        let client = reqwest::blocking::Client::new();
        let base = format!("http://127.0.0.1:{}/buckets/{}", self.filer, self.bucket);
        let mut out = BTreeMap::new();
        let mut dirs = vec![prefix.trim_matches('/').to_string()];
        while let Some(dir) = dirs.pop() {
            let mut last = String::new();
            loop {
                let url = format!("{base}/{dir}/?limit=1000&lastFileName={last}");
                let Ok(resp) = client.get(&url).header("Accept", "application/json").send() else {
                    break;
                };
                let v: serde_json::Value =
                    serde_json::from_slice(&resp.bytes().unwrap_or_default()).unwrap_or_default();
                let entries = v["Entries"].as_array().cloned().unwrap_or_default();
                for e in &entries {
                    let full = e["FullPath"].as_str().unwrap_or("");
                    last = full.rsplit('/').next().unwrap_or("").to_string();
                    let key = full
                        .strip_prefix(&format!("/buckets/{}/", self.bucket))
                        .unwrap_or(full)
                        .to_string();
                    if e["Mode"].as_u64().unwrap_or(0) & (1 << 31) != 0 {
                        dirs.push(key);
                        continue;
                    }
                    let ids = e["chunks"]
                        .as_array()
                        .map(|c| {
                            c.iter()
                                .filter_map(|c| c["file_id"].as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.insert(key, ids);
                }
                if entries.len() < 1000 {
                    break;
                }
            }
        }
        out
    }
}

/// Objects new or rewritten between two [`Seaweed::chunks`] listings.
pub fn written(
    before: &BTreeMap<String, Vec<String>>,
    after: &BTreeMap<String, Vec<String>>,
) -> usize {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .count()
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}
