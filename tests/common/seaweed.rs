//! SeaweedFS (`weed mini`, from the venv `.ci/s3` builds) on loopback, for the publish tests
//! (through `common::s3`) and the publish bench, which includes this file and [`super::ports`]
//! with `#[path]` (tests and benches are separate crates: so std, staticd and the
//! dev-dependencies only, and `super::ports` the one sibling).
//!
//! Why it is built this way (the startup flake it fixes):
//! - `weed mini` exits at once when a port it is given is taken ("Port allocation failed"),
//!   and fails later when one is taken between its check and its bind. Ports found by
//!   binding port 0 are handed to any other `bind(0)` on the machine meanwhile, and a killed
//!   store's ports are anyone's until its restart. Every port here is leased instead
//!   ([`super::ports`]), for the store's whole life, restarts included.
//! - Ready is a signed PUT, GET and DELETE of a probe object that succeed, within a deadline
//!   (the S3 port answers before writes do); an exit of weed ends the wait at once.
//! - A first start that fails anyway is retried on fresh ports and a fresh data directory, and
//!   a restart on its own ports and data; each failure's weed output is printed.
use super::ports::{lease_ports, Lease};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one start of a server may take to be ready (loaded 2-core machine: seconds;
/// Python's import of moto is the slowest).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Attempts at a start (fresh ports each) or a restart (same ports) before the test fails.
const ATTEMPTS: usize = 3;

/// `bash .ci/s3`: the venv with `weed`, django-storages, boto3 (and collectfasta); its python.
pub fn s3_python() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci").join("s3");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let py = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    if py.is_file() {
        Ok(py)
    } else {
        Err(format!(
            "{} printed {stdout:?}, not a python",
            script.display()
        ))
    }
}

/// One S3 identity of the store (`-s3.config`).
#[derive(Clone, Copy)]
pub struct Identity {
    pub name: &'static str,
    pub access_key: &'static str,
    pub secret_key: &'static str,
    /// SeaweedFS actions: "Admin", "Read", "Write", "List", "Tagging".
    pub actions: &'static [&'static str],
}

/// What a store is started with. The first identity is the one [`Seaweed::env`] and
/// [`Seaweed::client`] use (and the probe writes with): it needs Read and Write.
pub struct Options<'a> {
    pub bucket: &'a str,
    pub identities: &'a [Identity],
    /// Where its temporary directory goes (`None`: the system's).
    pub parent: Option<&'a Path>,
}

/// One readiness probe of an S3 server: a signed PUT through staticd's own client, the GET
/// of the same bytes, a DELETE (also `common::moto`'s: one definition of "ready").
pub async fn probe(store: &staticd::remote::store::Store) -> Result<(), String> {
    let key = ".staticd-ready-probe";
    let body = bytes::Bytes::from_static(b"ready");
    let headers = staticd::remote::store::Headers {
        content_type: "text/plain".into(),
        cache_control: "no-cache".into(),
        encoding: None,
    };
    store
        .put(
            key,
            body.clone(),
            &headers,
            object_store::PutMode::Overwrite,
        )
        .await
        .map_err(|e| e.to_string())?;
    match store.get(key).await.map_err(|e| e.to_string())? {
        Some((got, _)) if got == body => {}
        other => return Err(format!("the probe read back as {other:?}")),
    }
    store
        .delete(&[key.to_string()])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The readiness loop of a server a test starts (weed here, `common::moto`'s server):
/// `ready` is tried every 50 ms until it succeeds, for [`READY_TIMEOUT`] at most; an exit of
/// `child` ends the wait at once. The error says which, with `ready`'s last error; the
/// caller adds the server's output.
pub fn wait_ready(
    what: &str,
    child: &mut Child,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited ({status}) before it was ready"));
        }
        let last = match ready() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if started.elapsed() > READY_TIMEOUT {
            return Err(format!(
                "{what} was not ready within {READY_TIMEOUT:?}; last error: {last}"
            ));
        }
        // The poll's period, not a wait for an outcome.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `attempt` up to [`ATTEMPTS`] times until it gives a value; each failure is printed
/// (a retry must never hide one), and all of them fail the test at the end. `what` names it
/// ("weed mini start").
pub fn retried<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut failures = String::new();
    for n in 1..=ATTEMPTS {
        match attempt() {
            Ok(v) => return v,
            Err(e) => {
                let msg = format!("{what} {n}/{ATTEMPTS}: {e}");
                eprintln!("{msg}");
                failures.push_str(&msg);
                failures.push('\n');
            }
        }
    }
    panic!("{what}: failed {ATTEMPTS} times:\n{failures}");
}

/// Every port one `weed mini` listens on, leased.
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
    _leases: Vec<Lease>,
}

impl Ports {
    fn lease() -> Ports {
        let (admin, mut leases) = lease_ports(1, Some(10000));
        let (p, more) = lease_ports(8, None);
        leases.extend(more);
        Ports {
            s3: p[0],
            s3_grpc: p[1],
            master: p[2],
            master_grpc: p[3],
            volume: p[4],
            volume_grpc: p[5],
            filer: p[6],
            filer_grpc: p[7],
            admin: admin[0],
            _leases: leases,
        }
    }

    fn admin_grpc(&self) -> u16 {
        self.admin + 10000
    }
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

/// One `weed mini`, its data in a temp dir, its bucket created at start.
pub struct Seaweed {
    child: Option<Child>,
    weed: PathBuf,
    dir: tempfile::TempDir,
    ports: Ports,
    bucket: String,
    access_key: String,
    secret_key: String,
    pub endpoint: String,
}

impl Seaweed {
    /// Starts `weed` (the venv's `bin/weed`) and waits until a signed write works.
    pub fn launch(weed: &Path, opts: &Options) -> Seaweed {
        let first = opts.identities.first().expect("a store needs an identity");
        retried("weed mini start", || {
            let dir = match opts.parent {
                Some(p) => tempfile::tempdir_in(p),
                None => tempfile::tempdir(),
            }
            .expect("a temporary directory for weed");
            let ports = Ports::lease();
            let mut s = Seaweed {
                child: None,
                weed: weed.to_path_buf(),
                endpoint: format!("http://127.0.0.1:{}", ports.s3),
                dir,
                ports,
                bucket: opts.bucket.to_string(),
                access_key: first.access_key.to_string(),
                secret_key: first.secret_key.to_string(),
            };
            s.write_config(opts.identities);
            s.spawn().map(|()| s)
        })
    }

    fn write_config(&self, identities: &[Identity]) {
        let ids: Vec<_> = identities
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": i.name,
                    "credentials": [{"accessKey": i.access_key, "secretKey": i.secret_key}],
                    "actions": i.actions,
                })
            })
            .collect();
        let config = serde_json::json!({ "identities": ids });
        std::fs::write(self.dir.path().join("s3.json"), config.to_string()).unwrap();
    }

    /// Starts weed on this store's ports and data and waits until it is ready; on failure
    /// the process is gone and the error carries weed's own output.
    fn spawn(&mut self) -> Result<(), String> {
        let p = &self.ports;
        let d = self.dir.path();
        let data = d.join("data");
        std::fs::create_dir_all(&data).unwrap();
        // One log per process: a failed attempt's output is not mixed with the next one's.
        let log_path = d.join("weed.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&self.weed)
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
            .arg(format!("-admin.port.grpc={}", p.admin_grpc()))
            .arg(format!(
                "-filer.localSocket={}",
                d.join("filer.sock").display()
            ))
            .arg(format!("-s3.localSocket={}", d.join("s3.sock").display()))
            .args(["-webdav=false", "-admin.ui=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            // Telemetry would try to reach an outside host.
            .args(["-master.telemetry=false", "-s3.autoCreateBucket=false"])
            .arg(format!("-bucket={}", self.bucket))
            .arg(format!("-s3.config={}", d.join("s3.json").display()))
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.weed.display()))?;
        self.child = Some(child);
        self.wait_ready().inspect_err(|_| self.kill())
    }

    /// Ready = a signed PUT of a probe, its GET and its DELETE succeed (the S3 port answers
    /// before writes do), polled by [`wait_ready`].
    fn wait_ready(&mut self) -> Result<(), String> {
        let store = self.client("");
        let rt = staticd::remote::store::runtime().unwrap();
        let child = self.child.as_mut().expect("a started weed");
        wait_ready("weed", child, || rt.block_on(probe(&store))).map_err(|e| {
            format!(
                "{e} (ports {}); its output:\n{}",
                self.ports_text(),
                self.log()
            )
        })
    }

    fn ports_text(&self) -> String {
        let p = &self.ports;
        format!(
            "s3 {} master {} volume {} filer {} admin {} (gRPC {} {} {} {} {})",
            p.s3,
            p.master,
            p.volume,
            p.filer,
            p.admin,
            p.s3_grpc,
            p.master_grpc,
            p.volume_grpc,
            p.filer_grpc,
            p.admin_grpc()
        )
    }

    /// An object_store client of the first identity (for probes and for faults).
    pub fn client(&self, prefix: &str) -> staticd::remote::store::Store {
        let target =
            staticd::remote::Target::parse(&format!("s3://{}/{prefix}", self.bucket)).unwrap();
        let cfg = staticd::remote::PublishConfig {
            retries: 0,
            ..self.publish_config()
        };
        let credentials = [
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), self.secret_key.clone()),
        ];
        staticd::remote::store::Store::with_env(target, &cfg, credentials).unwrap()
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

    /// The environment a staticd process (or boto3) needs to reach this store as the first
    /// identity with the standard AWS variables alone (no staticd.toml).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
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

    /// SIGKILL, and wait until the process is gone. Its ports stay leased to this store.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // weed puts a unix socket per gRPC port in /tmp, whatever TMPDIR says, and
            // leaves them behind.
            let p = &self.ports;
            for (name, port) in [
                ("master", p.master_grpc),
                ("volume", p.volume_grpc),
                ("filer", p.filer_grpc),
                ("s3", p.s3_grpc),
                ("admin", p.admin_grpc()),
            ] {
                let _ = std::fs::remove_file(format!("/tmp/seaweedfs-{name}-grpc-{port}.sock"));
            }
        }
    }

    /// Starts it again on the same data and ports (a store coming back where it was).
    pub fn restart(&mut self) {
        self.kill();
        retried("weed mini restart", || self.spawn());
    }

    /// weed's output (stdout and stderr) since its last start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    fn filer(&self) -> String {
        format!(
            "http://127.0.0.1:{}/buckets/{}",
            self.ports.filer, self.bucket
        )
    }

    /// Every object under `prefix`, from the filer's own listing (recursive): what was
    /// written, seen without the S3 client under test.
    pub fn objects(&self, prefix: &str) -> BTreeMap<String, Stored> {
        use base64::Engine as _;
        let client = reqwest::blocking::Client::new();
        let root = format!("/buckets/{}/", self.bucket);
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
                let v: serde_json::Value = serde_json::from_slice(&resp.bytes().unwrap())
                    .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
                let entries = v["Entries"].as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    break;
                }
                for e in &entries {
                    let full = e["FullPath"].as_str().unwrap();
                    last = full.rsplit('/').next().unwrap().to_string();
                    let key = full.strip_prefix(&root).unwrap().to_string();
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
