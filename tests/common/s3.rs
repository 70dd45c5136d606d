//! A real S3-compatible store for the publish tests: SeaweedFS (`weed mini`, from the venv
//! `.ci/s3` builds) on free loopback ports, with a bucket, killed and restarted at will, and
//! read from its filer's HTTP API so a test can see what was written without trusting the
//! S3 client under test.
use super::{free_port, repo_root, wait_until, ChildGuard};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub const ACCESS_KEY: &str = "staticd-test";
pub const SECRET_KEY: &str = "staticd-test-secret";
pub const BUCKET: &str = "static";
/// An identity that may read and list but not write (for the denied-write test).
pub const READER_KEY: &str = "staticd-reader";
pub const READER_SECRET: &str = "staticd-reader-secret";

/// The python of the venv `.ci/s3` builds (SeaweedFS, django-storages, boto3, Django).
pub fn s3_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = repo_root().join(".ci").join("s3");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let py = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
        assert!(py.is_file(), "{} printed {stdout:?}", script.display());
        py
    })
    .clone()
}

/// A port `p` with `p + 10000` free too (SeaweedFS's admin worker dials `admin + 10000`
/// whatever `-admin.port.grpc` says).
fn port_pair() -> u16 {
    wait_until("a free port pair", Duration::from_secs(10), || {
        let p = 20000 + (rand_u16() % 10000);
        let a = TcpListener::bind(("127.0.0.1", p)).ok()?;
        let b = TcpListener::bind(("127.0.0.1", p + 10000)).ok()?;
        drop((a, b));
        Some(p)
    })
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    (t ^ (std::process::id() << 7)) as u16
}

#[derive(Clone, Copy)]
struct Ports {
    s3: u16,
    s3_grpc: u16,
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    admin: u16,
}

/// What the store holds under a key, as its filer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    /// The chunks' file ids: a new write gets new ones, so they tell whether an object was
    /// written again even with the same bytes in the same second.
    pub chunks: Vec<String>,
    pub mime: String,
    /// The stored response headers (Cache-Control, Content-Encoding, …).
    pub headers: BTreeMap<String, String>,
}

/// One `weed mini`, its data in a temp dir, a bucket [`BUCKET`] created at start.
pub struct Seaweed {
    child: Option<ChildGuard>,
    dir: tempfile::TempDir,
    ports: Ports,
    pub endpoint: String,
}

impl Seaweed {
    /// Starts a store on free ports. A port taken by another process between the choice
    /// and weed's bind (other tests and sessions pick ports too) makes weed exit at once:
    /// then it starts again on other ports.
    pub fn start() -> Seaweed {
        for _ in 0..4 {
            let mut s = Self::choose();
            match s.try_spawn() {
                Ok(()) => return s,
                Err(log) if log.contains("address already in use") => {
                    eprintln!("weed mini: a port was taken, starting again on others");
                }
                Err(log) => panic!("{log}"),
            }
        }
        panic!("weed mini found no free ports in 4 attempts");
    }

    fn choose() -> Seaweed {
        let ports = Ports {
            s3: free_port(),
            s3_grpc: free_port(),
            master: free_port(),
            master_grpc: free_port(),
            volume: free_port(),
            volume_grpc: free_port(),
            filer: free_port(),
            filer_grpc: free_port(),
            admin: port_pair(),
        };
        let s = Seaweed {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            endpoint: format!("http://127.0.0.1:{}", ports.s3),
            ports,
        };
        s
    }

    fn weed() -> PathBuf {
        s3_python().parent().unwrap().join("weed")
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let p = self.ports;
        let d = self.dir.path();
        let data = d.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let identities = serde_json::json!({"identities": [
            {"name": "admin", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "reader", "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
             "actions": ["Read", "List"]}
        ]});
        let config = d.join("s3.json");
        std::fs::write(&config, identities.to_string()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("weed.log"))
            .unwrap();
        let child = Command::new(Self::weed())
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg(format!("-admin.port={}", p.admin))
            .arg(format!("-admin.port.grpc={}", p.admin + 10000))
            .arg(format!(
                "-filer.localSocket={}",
                d.join("filer.sock").display()
            ))
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .args(["-webdav=false", "-admin.ui=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            // Telemetry would try to reach an outside host.
            .args(["-master.telemetry=false", "-s3.autoCreateBucket=false"])
            .arg(format!("-bucket={BUCKET}"))
            .arg(format!("-s3.config={}", config.display()))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn weed mini");
        self.child = Some(ChildGuard::new(child));
        self.wait_ready()
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// The S3 port answers before writes succeed: ready is a signed PUT that succeeds.
    /// `Err` with what weed said when it exited instead of becoming ready.
    fn wait_ready(&mut self) -> Result<(), String> {
        let store = self.client("");
        let rt = staticd::remote::store::runtime().unwrap();
        let headers = staticd::remote::store::Headers {
            content_type: "text/plain".into(),
            cache_control: "no-cache".into(),
            encoding: None,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    // weed's fatal lines go to its glog files, not to its stderr.
                    let fatal = glog_fatal(c.id()).unwrap_or_default();
                    return Err(format!(
                        "weed mini exited ({status}): {}{fatal}",
                        self.log()
                    ));
                }
            }
            let last = match rt.block_on(store.put(
                ".ready",
                bytes::Bytes::from_static(b"ok"),
                &headers,
                object_store::PutMode::Overwrite,
            )) {
                Ok(_) => break,
                Err(e) => e.to_string(),
            };
            assert!(
                std::time::Instant::now() < deadline,
                "weed mini did not accept a signed PUT within 90 s; last error: {last}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        rt.block_on(store.delete(&[".ready".to_string()])).unwrap();
        Ok(())
    }

    /// An object_store client of the test's own (for probes and for faults).
    pub fn client(&self, prefix: &str) -> staticd::remote::store::Store {
        let target = staticd::remote::Target::parse(&format!("s3://{BUCKET}/{prefix}")).unwrap();
        let cfg = staticd::remote::PublishConfig {
            retries: 0,
            ..self.publish_config()
        };
        staticd::remote::store::Store::with_env(target, &cfg, self.credentials()).unwrap()
    }

    pub fn publish_config(&self) -> staticd::remote::PublishConfig {
        staticd::remote::PublishConfig {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            allow_http: true,
            ..Default::default()
        }
    }

    fn credentials(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ]
    }

    /// The environment a staticd process needs to reach this store with the standard AWS
    /// variables alone (no staticd.toml).
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

    /// A `[publish]` table for this store (credentials stay in the environment).
    pub fn publish_toml(&self, extra: &str) -> String {
        format!(
            "[publish]\nendpoint = \"{}\"\nregion = \"us-east-1\"\npath_style = true\nallow_http = true\n{extra}",
            self.endpoint
        )
    }

    /// SIGKILL, and wait until the process is gone (its ports are then free again).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // weed puts a unix socket per gRPC port in /tmp, whatever TMPDIR says, and
            // leaves them behind.
            let p = self.ports;
            for (name, port) in [
                ("master", p.master_grpc),
                ("volume", p.volume_grpc),
                ("filer", p.filer_grpc),
                ("s3", p.s3_grpc),
                ("admin", p.admin + 10000),
            ] {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{name}-grpc-{port}.sock"));
            }
        }
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    fn filer(&self) -> String {
        format!("http://127.0.0.1:{}/buckets/{BUCKET}", self.ports.filer)
    }

    /// Every object under `prefix`, from the filer's own listing (recursive).
    pub fn objects(&self, prefix: &str) -> BTreeMap<String, Stored> {
        let client = reqwest::blocking::Client::new();
        let mut out = BTreeMap::new();
        let mut dirs = vec![prefix.trim_matches('/').to_string()];
        while let Some(dir) = dirs.pop() {
            let mut last = String::new();
            loop {
                let url = format!("{}/{dir}/?limit=1000&lastFileName={last}", self.filer());
                let resp = client
                    .get(&url)
                    .header("Accept", "application/json")
                    .send()
                    .unwrap_or_else(|e| panic!("GET {url}: {e}"));
                if resp.status() == 404 {
                    break;
                }
                let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
                let entries = v["Entries"].as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    break;
                }
                for e in &entries {
                    let full = e["FullPath"].as_str().unwrap();
                    let name = full.rsplit('/').next().unwrap().to_string();
                    last = name.clone();
                    let key = full
                        .strip_prefix(&format!("/buckets/{BUCKET}/"))
                        .unwrap()
                        .to_string();
                    let is_dir = e["Mode"].as_u64().unwrap_or(0) & (1 << 31) != 0;
                    if is_dir {
                        dirs.push(key);
                        continue;
                    }
                    let headers = e["Extended"]
                        .as_object()
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| {
                                    let raw = base64::engine::general_purpose::STANDARD
                                        .decode(v.as_str()?)
                                        .ok()?;
                                    Some((k.clone(), String::from_utf8(raw).ok()?))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let chunks = e["chunks"]
                        .as_array()
                        .map(|c| {
                            c.iter()
                                .filter_map(|c| c["file_id"].as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.insert(
                        key,
                        Stored {
                            size: e["FileSize"].as_u64().unwrap_or(0),
                            chunks,
                            mime: e["Mime"].as_str().unwrap_or("").to_string(),
                            headers,
                        },
                    );
                }
                if entries.len() < 1000 {
                    break;
                }
            }
        }
        out
    }

    /// An object's bytes through the filer (no S3 client involved); `None` if absent.
    pub fn read(&self, key: &str) -> Option<Vec<u8>> {
        let url = format!("{}/{key}", self.filer());
        let resp = reqwest::blocking::get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        (resp.status() == 200).then(|| resp.bytes().unwrap().to_vec())
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keys whose chunks differ between two listings, or that are new: what was written between.
pub fn written_between(
    before: &BTreeMap<String, Stored>,
    after: &BTreeMap<String, Stored>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k).is_none_or(|b| b.chunks != v.chunks))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The first line of the glog FATAL file weed process `pid` wrote (in the temp dir), if any.
fn glog_fatal(pid: u32) -> Option<String> {
    let suffix = format!(".{pid}");
    std::fs::read_dir(std::env::temp_dir())
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("weed.") && n.contains(".log.FATAL.") && n.ends_with(&suffix)
        })
        .find_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            text.lines()
                .find(|l| l.starts_with('F'))
                .map(str::to_string)
        })
}
