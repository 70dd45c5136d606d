//! `cargo bench --bench serve`: staticd's static tier against nginx and Caddy on one core each.
//!
//! What it does (everything in one run; the machine is noisy, only compare figures from one run):
//! 1. Installs what is missing (Debian: nginx, libnginx-mod-http-brotli-static, caddy, wrk) when run
//!    as root; a peer whose package is unavailable is skipped, never fatal.
//! 2. Builds a corpus (cached under `target/bench-serve/`) with `staticd collect` from a
//!    `staticd.toml`: a ~2 KB CSS, a 100 KB JS, a 1 MiB random `.png`, and filler up to ~9k source
//!    files (for the RSS figure).
//! 3. Starts nginx (1 worker), Caddy, staticd (`--workers 1`) and a minimal actix-web handler
//!    answering the small CSS's bytes from memory (this same binary, `--ref-server`), each pinned
//!    to core 0; wrk runs pinned to core 1 (`-t1 -c32 --latency`, keep-alive).
//! 4. Runs four requests (small hashed CSS with br, 100 KB JS with gzip, 1 MiB image identity,
//!    a 404), servers interleaved, each run repeated, and reports medians of req/s, p99 and the
//!    server's CPU time per request (utime+stime from /proc over the run; nginx: master+worker).
//! 5. Prints the table, the staticd/nginx ratios against the targets (met/missed, never aborts),
//!    staticd's RSS, and writes the same as markdown to `target/bench-serve.md`.
//!
//! Knobs: `SERVE_BENCH_SECS` (default 10), `SERVE_BENCH_REPS` (default 3),
//! `SERVE_BENCH_FILLER` (filler files, default 8997).
//! Only 127.0.0.1 is loaded; every server started here is killed on exit, also on panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const STATICD: &str = env!("CARGO_BIN_EXE_staticd");
/// Bump when the corpus recipe changes, so a cached corpus is rebuilt.
const CORPUS_VERSION: &str = "v1";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--ref-server") {
        ref_server(&args[2], Path::new(&args[3]));
        return;
    }
    // `cargo bench -- <filter>`: anything that is not "serve" (or a flag) means "not us".
    if let Some(f) = args.iter().skip(1).find(|a| !a.starts_with('-')) {
        if !"serve".contains(f.as_str()) {
            return;
        }
    }
    if let Err(e) = run() {
        eprintln!("serve bench: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reference point: a minimal actix-web handler returning fixed bytes from memory.

fn ref_server(bind: &str, body_file: &Path) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let body = bytes::Bytes::from(std::fs::read(body_file).expect("reference body"));
    let bind: SocketAddr = bind.parse().expect("bind address");
    actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(move || {
                let body = body.clone();
                App::new().default_service(web::to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .insert_header(("content-type", "text/css; charset=utf-8"))
                            .insert_header(("content-encoding", "br"))
                            .insert_header(("vary", "Accept-Encoding"))
                            .body(body)
                    }
                }))
            })
            .workers(1)
            .keep_alive(Duration::from_secs(75))
            .bind(bind)?
            .run()
            .await
        })
        .expect("reference server");
}

// ---------------------------------------------------------------------------------------------
// Tools.

struct Tools {
    wrk: bool,
    nginx: bool,
    brotli_module: Option<PathBuf>,
    caddy: bool,
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn brotli_module_path() -> Option<PathBuf> {
    ["/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// `apt-get install -y PKG`, once with the current lists and once after `apt-get update`.
fn apt_install(pkg: &str, updated: &mut bool) -> bool {
    if !is_root() || !have("apt-get") {
        println!("  {pkg}: missing and cannot install (not root or no apt-get)");
        return false;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", pkg])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    println!("  installing {pkg} ...");
    if install() {
        return true;
    }
    if !*updated {
        *updated = true;
        let _ = Command::new("apt-get")
            .args(["update"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if install() {
            return true;
        }
    }
    println!("  {pkg}: not installable here; skipping what needs it");
    false
}

fn ensure_tools() -> Tools {
    println!("tools:");
    let mut updated = false;
    let wrk = have("wrk") || (apt_install("wrk", &mut updated) && have("wrk"));
    let nginx = have("nginx") || (apt_install("nginx", &mut updated) && have("nginx"));
    let brotli_module = if nginx {
        brotli_module_path().or_else(|| {
            apt_install("libnginx-mod-http-brotli-static", &mut updated);
            brotli_module_path()
        })
    } else {
        None
    };
    let caddy = have("caddy") || (apt_install("caddy", &mut updated) && have("caddy"));
    println!(
        "  wrk: {}, nginx: {}, ngx_brotli static: {}, caddy: {}, taskset: {}",
        yes(wrk),
        yes(nginx),
        yes(brotli_module.is_some()),
        yes(caddy),
        yes(have("taskset"))
    );
    Tools {
        wrk,
        nginx,
        brotli_module,
        caddy,
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn version_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Corpus.

/// xorshift64*: deterministic content without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Log-uniform in [lo, hi).
    fn log_size(&mut self, lo: f64, hi: f64) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo * (hi / lo).powf(u)) as usize
    }
}

const WORDS: &[&str] = &[
    "button",
    "header",
    "footer",
    "nav",
    "item",
    "active",
    "disabled",
    "primary",
    "secondary",
    "container",
    "row",
    "col",
    "grid",
    "flex",
    "card",
    "modal",
    "tooltip",
    "dropdown",
    "form",
    "input",
    "label",
    "select",
    "table",
    "list",
    "icon",
    "badge",
    "alert",
    "panel",
    "title",
    "content",
    "wrapper",
    "inner",
    "outer",
    "left",
    "right",
    "top",
    "bottom",
    "small",
    "large",
];

fn css_text(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 200);
    while s.len() < size {
        let a = WORDS[rng.below(WORDS.len() as u64) as usize];
        let b = WORDS[rng.below(WORDS.len() as u64) as usize];
        let _ = writeln!(
            s,
            ".{a}-{b}-{} {{ color: #{:06x}; margin: {}px {}px; padding: {}px; }}",
            rng.below(100),
            rng.below(0xffffff),
            rng.below(40),
            rng.below(40),
            rng.below(24)
        );
    }
    s.truncate(size);
    s.into_bytes()
}

fn js_text(rng: &mut Rng, size: usize) -> Vec<u8> {
    let mut s = String::with_capacity(size + 200);
    while s.len() < size {
        let a = WORDS[rng.below(WORDS.len() as u64) as usize];
        let b = WORDS[rng.below(WORDS.len() as u64) as usize];
        let _ = writeln!(
            s,
            "function {a}_{b}_{}(el, opts) {{ var n = opts.{b} || {}; if (el.classList.contains('{a}')) {{ el.style.width = (n * {}) + 'px'; }} return n ^ 0x{:x}; }}",
            rng.below(10_000),
            rng.below(1000),
            rng.below(64),
            rng.next() & 0xffff_ffff
        );
    }
    s.truncate(size);
    s.into_bytes()
}

struct Corpus {
    /// The directory whose `static/` is STATIC_ROOT (nginx `root`, Caddy `root`).
    parent: PathBuf,
    static_root: PathBuf,
    small_url: String,
    js_url: String,
    image_url: String,
    source_files: usize,
    root_files: usize,
    root_bytes: u64,
}

fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(path, data)
}

fn build_corpus(dir: &Path, filler: usize) -> Result<Corpus, String> {
    let marker = dir.join(format!("built-{CORPUS_VERSION}-{filler}"));
    let static_root = dir.join("static");
    if !marker.exists() {
        println!("corpus: building {} (once; cached) ...", dir.display());
        let _ = std::fs::remove_dir_all(dir);
        let e = |e: std::io::Error| e.to_string();
        let assets = dir.join("assets");
        let mut rng = Rng(0x5eed_0000_0000_0001);
        write(&assets.join("css/app.css"), &css_text(&mut rng, 2048)).map_err(e)?;
        write(&assets.join("js/app.js"), &js_text(&mut rng, 100 * 1024)).map_err(e)?;
        write(&assets.join("img/hero.png"), &rng.bytes(1 << 20)).map_err(e)?;
        for i in 0..filler {
            let kind = rng.below(20);
            let (ext, data) = match kind {
                0..=6 => {
                    let n = rng.log_size(200.0, 16_000.0);
                    ("css", css_text(&mut rng, n))
                }
                7..=13 => {
                    let n = rng.log_size(200.0, 16_000.0);
                    ("js", js_text(&mut rng, n))
                }
                14..=15 => {
                    let n = rng.log_size(300.0, 6_000.0);
                    ("svg", css_text(&mut rng, n))
                }
                16..=17 => {
                    let n = rng.log_size(500.0, 30_000.0);
                    ("png", rng.bytes(n))
                }
                _ => {
                    let n = rng.log_size(5_000.0, 40_000.0);
                    ("woff2", rng.bytes(n))
                }
            };
            let p = assets.join(format!("vendor/pkg{:03}/f{i:05}.{ext}", i / 100));
            write(&p, &data).map_err(e)?;
        }
        write(
            &dir.join("staticd.toml"),
            b"static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\ncompress = true\n",
        )
        .map_err(e)?;
        let t = Instant::now();
        let out = Command::new(STATICD)
            .arg("collect")
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("staticd collect: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "staticd collect failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        println!("corpus: collected in {:.1}s", t.elapsed().as_secs_f64());
        std::fs::write(&marker, b"").map_err(e)?;
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(static_root.join("staticfiles.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let hashed = |name: &str| -> Result<String, String> {
        manifest["paths"][name]
            .as_str()
            .map(|h| format!("/static/{h}"))
            .ok_or_else(|| format!("{name} not in the manifest"))
    };
    let (mut root_files, mut root_bytes) = (0usize, 0u64);
    for entry in walkdir::WalkDir::new(&static_root).into_iter().flatten() {
        if entry.file_type().is_file() {
            root_files += 1;
            root_bytes += entry.metadata().map_or(0, |m| m.len());
        }
    }
    Ok(Corpus {
        parent: dir.to_path_buf(),
        small_url: hashed("css/app.css")?,
        js_url: hashed("js/app.js")?,
        image_url: hashed("img/hero.png")?,
        static_root,
        source_files: filler + 3,
        root_files,
        root_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// Servers.

struct Server {
    name: &'static str,
    port: u16,
    child: Child,
    /// Processes whose CPU time counts (nginx: master + worker).
    pids: Vec<i32>,
}

impl Server {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.pid();
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        // nginx's worker, if the master did not take it along.
        for &p in &self.pids {
            if p != pid && std::fs::metadata(format!("/proc/{p}")).is_ok() {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `taskset -c 0 PROG ARGS`, stdout/stderr to `log`, dying with us.
fn spawn_pinned(
    prog: &str,
    args: &[&str],
    log: &Path,
    env: &[(&str, &str)],
) -> Result<Child, String> {
    let logf = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg("0").arg(prog).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf);
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| format!("{prog}: {e}"))
}

fn wait_listening(server: &mut Server, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = server.child.try_wait() {
            return Err(format!(
                "{} exited ({st}): {}",
                server.name,
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        if TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{} did not listen on {}", server.name, server.port))
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some(fields) = proc_stat_fields(p) {
                if fields.get(1).and_then(|s| s.parse::<i32>().ok()) == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Fields of /proc/PID/stat after the `(comm)`: index 0 is `state` (field 3).
fn proc_stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime in clock ticks, summed over `pids`.
fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|&p| proc_stat_fields(p))
        .map(|f| f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0))
        .sum()
}

fn clk_tck() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn proc_status_kib(pid: i32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

fn start_nginx(work: &Path, corpus: &Corpus, brotli: Option<&Path>) -> Result<Server, String> {
    let prefix = work.join("nginx");
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
    let port = free_port();
    let conf = fill(
        include_str!("serve/nginx.conf.in"),
        &[
            (
                "USER",
                if is_root() {
                    "user root root;".into()
                } else {
                    String::new()
                },
            ),
            ("PREFIX", prefix.display().to_string()),
            ("PORT", port.to_string()),
            ("PARENT", corpus.parent.display().to_string()),
            (
                "LOAD_BROTLI",
                brotli.map_or(String::new(), |p| format!("load_module {};", p.display())),
            ),
            (
                "BROTLI_STATIC",
                if brotli.is_some() {
                    "            brotli_static on;".into()
                } else {
                    String::new()
                },
            ),
        ],
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let log = prefix.join("stderr.log");
    let p = prefix.display().to_string();
    let c = conf_path.display().to_string();
    let child = spawn_pinned("nginx", &["-p", &p, "-c", &c], &log, &[])?;
    let mut s = Server {
        name: "nginx",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log)?;
    // The worker forks after the master listens; give it a moment to exist.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut workers = children_of(s.pid());
    while workers.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        workers = children_of(s.pid());
    }
    s.pids = std::iter::once(s.pid()).chain(workers).collect();
    Ok(s)
}

fn start_caddy(work: &Path, corpus: &Corpus) -> Result<Server, String> {
    let dir = work.join("caddy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = free_port();
    let conf = fill(
        include_str!("serve/Caddyfile.in"),
        &[
            ("PORT", port.to_string()),
            ("PARENT", corpus.parent.display().to_string()),
        ],
    );
    let conf_path = dir.join("Caddyfile");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let log = dir.join("stderr.log");
    let c = conf_path.display().to_string();
    let d = dir.display().to_string();
    // HOME/XDG: keep Caddy's storage and autosave inside our directory.
    let child = spawn_pinned(
        "caddy",
        &["run", "--config", &c, "--adapter", "caddyfile"],
        &log,
        &[("HOME", &d), ("XDG_DATA_HOME", &d), ("XDG_CONFIG_HOME", &d)],
    )?;
    let mut s = Server {
        name: "caddy",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log)?;
    s.pids = vec![s.pid()];
    Ok(s)
}

fn start_staticd(work: &Path, corpus: &Corpus) -> Result<Server, String> {
    let port = free_port();
    let log = work.join("staticd.log");
    let bind = format!("127.0.0.1:{port}");
    let root = corpus.static_root.display().to_string();
    let child = spawn_pinned(
        STATICD,
        &[
            "serve",
            "--root",
            &root,
            "--static-url",
            "/static/",
            "--bind",
            &bind,
            "--workers",
            "1",
            "--log-format",
            "off",
        ],
        &log,
        &[],
    )?;
    let mut s = Server {
        name: "staticd",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log)?;
    s.pids = vec![s.pid()];
    Ok(s)
}

fn start_ref(work: &Path, body: &Path) -> Result<Server, String> {
    let port = free_port();
    let log = work.join("actix-ref.log");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bind = format!("127.0.0.1:{port}");
    let child = spawn_pinned(
        &exe.display().to_string(),
        &["--ref-server", &bind, &body.display().to_string()],
        &log,
        &[],
    )?;
    let mut s = Server {
        name: "actix-ref",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log)?;
    s.pids = vec![s.pid()];
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Requests.

struct Req {
    key: &'static str,
    label: &'static str,
    path: String,
    accept_encoding: Option<&'static str>,
    want_status: u16,
    want_encoding: Option<&'static str>,
}

/// One request over a fresh connection: (status, content-encoding, content-length).
fn probe(port: u16, req: &Req) -> Result<(u16, Option<String>, Option<u64>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let ae = req
        .accept_encoding
        .map_or(String::new(), |a| format!("Accept-Encoding: {a}\r\n"));
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n{ae}Connection: close\r\n\r\n",
        req.path
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let (mut enc, mut len) = (None, None);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-encoding" => enc = Some(v.trim().to_string()),
                "content-length" => len = v.trim().parse().ok(),
                _ => {}
            }
        }
    }
    Ok((status, enc, len))
}

#[derive(Clone, Debug, Default)]
struct Sample {
    rps: f64,
    p99_ms: f64,
    requests: u64,
    cpu_us_per_req: f64,
    wrk_cpu_pct: f64,
    non2xx: u64,
    socket_errors: u64,
}

fn children_cpu_secs() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        "h" => v * 3_600_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> Result<Sample, String> {
    let mut s = Sample::default();
    let mut in_dist = false;
    let mut got_rps = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist && t.starts_with("99%") {
            s.p99_ms = parse_duration_ms(t.trim_start_matches("99%")).ok_or("bad p99")?;
            in_dist = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse().map_err(|_| "bad Requests/sec")?;
            got_rps = true;
        }
        if t.contains(" requests in ") {
            s.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            s.non2xx = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = t.strip_prefix("Socket errors:") {
            s.socket_errors = v
                .split(',')
                .filter_map(|p| {
                    p.split_whitespace()
                        .last()
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum();
        }
    }
    if !got_rps {
        return Err(format!("unparsable wrk output:\n{out}"));
    }
    Ok(s)
}

fn run_wrk(server: &Server, req: &Req, secs: u64) -> Result<Sample, String> {
    let url = format!("http://127.0.0.1:{}{}", server.port, req.path);
    let d = format!("{secs}s");
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        "1",
        "wrk",
        "-t1",
        "-c32",
        "-d",
        &d,
        "--timeout",
        "5s",
        "--latency",
    ]);
    if let Some(ae) = req.accept_encoding {
        cmd.arg("-H").arg(format!("Accept-Encoding: {ae}"));
    }
    cmd.arg(&url);
    let cpu0 = cpu_ticks(&server.pids);
    let wrk0 = children_cpu_secs();
    let t0 = Instant::now();
    let out = cmd.output().map_err(|e| format!("wrk: {e}"))?;
    let wall = t0.elapsed().as_secs_f64();
    let wrk_cpu = children_cpu_secs() - wrk0;
    let cpu1 = cpu_ticks(&server.pids);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut s = parse_wrk(&text)?;
    if s.requests > 0 {
        s.cpu_us_per_req = (cpu1 - cpu0) as f64 / clk_tck() * 1e6 / s.requests as f64;
    }
    s.wrk_cpu_pct = wrk_cpu / wall * 100.0;
    Ok(s)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Default)]
struct Agg {
    rps: f64,
    p99_ms: f64,
    cpu_us: f64,
    /// Share of its core the server used during the run.
    server_cpu: f64,
    wrk_cpu: f64,
    runs: usize,
    bad: u64,
    rps_all: Vec<f64>,
}

fn aggregate(samples: &[Sample]) -> Agg {
    Agg {
        rps: median(samples.iter().map(|s| s.rps).collect()),
        p99_ms: median(samples.iter().map(|s| s.p99_ms).collect()),
        cpu_us: median(samples.iter().map(|s| s.cpu_us_per_req).collect()),
        server_cpu: median(
            samples
                .iter()
                .map(|s| s.cpu_us_per_req * s.rps / 1e4)
                .collect(),
        ),
        wrk_cpu: median(samples.iter().map(|s| s.wrk_cpu_pct).collect()),
        runs: samples.len(),
        bad: samples.iter().map(|s| s.socket_errors).sum(),
        rps_all: samples.iter().map(|s| s.rps).collect(),
    }
}

// ---------------------------------------------------------------------------------------------

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn run() -> Result<(), String> {
    let secs = env_num("SERVE_BENCH_SECS", 10);
    let reps = env_num("SERVE_BENCH_REPS", 3).max(1) as usize;
    let filler = env_num("SERVE_BENCH_FILLER", 8997) as usize;
    println!("serve bench: {secs}s per run, {reps} runs per server and request (medians)");
    let tools = ensure_tools();
    if !tools.wrk {
        println!("serve bench: wrk unavailable; nothing to measure");
        return Ok(());
    }
    if !have("taskset") {
        println!("serve bench: taskset unavailable; nothing to measure");
        return Ok(());
    }
    let base = target_dir().join("bench-serve");
    let corpus = build_corpus(&base.join("corpus"), filler)?;
    let work = base.join("run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    println!(
        "corpus: {} source files; STATIC_ROOT {} files, {:.1} MiB; small {} js {} image {}",
        corpus.source_files,
        corpus.root_files,
        corpus.root_bytes as f64 / 1048576.0,
        corpus.small_url,
        corpus.js_url,
        corpus.image_url
    );

    let reqs = vec![
        Req {
            key: "small",
            label: "small hashed CSS, br",
            path: corpus.small_url.clone(),
            accept_encoding: Some("br"),
            want_status: 200,
            want_encoding: Some("br"),
        },
        Req {
            key: "js",
            label: "100 KB JS, gzip",
            path: corpus.js_url.clone(),
            accept_encoding: Some("gzip"),
            want_status: 200,
            want_encoding: Some("gzip"),
        },
        Req {
            key: "image",
            label: "1 MiB image, identity",
            path: corpus.image_url.clone(),
            accept_encoding: None,
            want_status: 200,
            want_encoding: None,
        },
        Req {
            key: "404",
            label: "404",
            path: "/static/css/missing.0123456789ab.css".into(),
            accept_encoding: Some("br"),
            want_status: 404,
            want_encoding: None,
        },
    ];

    // Start everything (each pinned to core 0). Drop kills them, also on panic.
    let mut servers: Vec<Server> = Vec::new();
    match start_staticd(&work, &corpus) {
        Ok(s) => servers.push(s),
        Err(e) => return Err(format!("staticd: {e}")),
    }
    if tools.nginx {
        match start_nginx(&work, &corpus, tools.brotli_module.as_deref()) {
            Ok(s) => servers.push(s),
            Err(e) => println!("nginx: cannot start, skipped: {e}"),
        }
    }
    if tools.caddy {
        match start_caddy(&work, &corpus) {
            Ok(s) => servers.push(s),
            Err(e) => println!("caddy: cannot start, skipped: {e}"),
        }
    }
    let small_br = corpus
        .static_root
        .join(format!("{}.br", &corpus.small_url["/static/".len()..]));
    let reference = if small_br.exists() {
        match start_ref(&work, &small_br) {
            Ok(s) => Some(s),
            Err(e) => {
                println!("actix-ref: cannot start: {e}");
                None
            }
        }
    } else {
        println!("actix-ref: no {} to serve; skipped", small_br.display());
        None
    };

    // Sanity: every server answers every request as intended (same bytes on the wire).
    println!("check (status, content-encoding, content-length):");
    let mut notes: Vec<String> = Vec::new();
    for req in &reqs {
        for s in &servers {
            match probe(s.port, req) {
                Ok((st, enc, len)) => {
                    let ok = st == req.want_status && enc.as_deref() == req.want_encoding;
                    println!(
                        "  {:<9} {:<22} {st} {:<5} {:>8} {}",
                        s.name,
                        req.label,
                        enc.clone().unwrap_or_else(|| "-".into()),
                        len.map_or("-".into(), |l| l.to_string()),
                        if ok { "ok" } else { "UNEXPECTED" }
                    );
                    if !ok {
                        notes.push(format!(
                            "{} answers `{}` with {st} {} (expected {} {}): not the same work as the others",
                            s.name,
                            req.label,
                            enc.unwrap_or_else(|| "identity".into()),
                            req.want_status,
                            req.want_encoding.unwrap_or("identity")
                        ));
                    }
                }
                Err(e) => notes.push(format!("{} `{}`: probe failed: {e}", s.name, req.label)),
            }
        }
    }
    if let Some(r) = &reference {
        if let Ok((st, enc, len)) = probe(r.port, &reqs[0]) {
            println!(
                "  {:<9} {:<22} {st} {:<5} {:>8}",
                r.name,
                reqs[0].label,
                enc.unwrap_or_default(),
                len.unwrap_or(0)
            );
        }
    }

    // Warm-up: page cache, nginx's open_file_cache, staticd's table, connection setup paths.
    let warm = Duration::from_secs(2).as_secs();
    for req in &reqs {
        for s in &servers {
            let _ = run_wrk(s, req, warm);
        }
    }
    if let Some(r) = &reference {
        let _ = run_wrk(r, &reqs[0], warm);
    }
    let load_before = loadavg();
    let staticd_pid = servers[0].pid();
    let rss_warm = proc_status_kib(staticd_pid, "VmRSS:");

    // Measured runs: repetitions outermost, servers rotated so none always runs first.
    let mut samples: BTreeMap<(&str, &str), Vec<Sample>> = BTreeMap::new();
    let total = reps * (reqs.len() * servers.len() + reference.is_some() as usize);
    let mut done = 0;
    for rep in 0..reps {
        for req in &reqs {
            let mut order: Vec<&Server> = servers.iter().collect();
            if req.key == "small" {
                if let Some(r) = &reference {
                    order.push(r);
                }
            }
            let k = order.len();
            order.rotate_left((rep + done) % k);
            for s in order {
                done += 1;
                match run_wrk(s, req, secs) {
                    Ok(sample) => {
                        println!(
                            "  [{done:>3}/{total}] rep {} {:<9} {:<22} {:>9.0} req/s  p99 {:>7.2} ms  {:>6.2} µs CPU/req  srv {:>3.0}%  wrk {:>3.0}%{}",
                            rep + 1,
                            s.name,
                            req.label,
                            sample.rps,
                            sample.p99_ms,
                            sample.cpu_us_per_req,
                            sample.cpu_us_per_req * sample.rps / 1e4,
                            sample.wrk_cpu_pct,
                            if sample.socket_errors > 0 {
                                format!("  socket errors {}", sample.socket_errors)
                            } else {
                                String::new()
                            }
                        );
                        samples.entry((s.name, req.key)).or_default().push(sample);
                    }
                    Err(e) => println!("  {} {}: {e}", s.name, req.label),
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
    let rss_end = proc_status_kib(staticd_pid, "VmRSS:");
    let hwm_end = proc_status_kib(staticd_pid, "VmHWM:");
    let load_after = loadavg();
    let staticd_log = std::fs::read_to_string(work.join("staticd.log")).unwrap_or_default();

    // ----- Report.
    let mut md = String::new();
    let _ = writeln!(md, "# staticd serve benchmark\n");
    let _ = writeln!(
        md,
        "One core per server (`taskset -c 0`), wrk on the other (`taskset -c 1 wrk -t1 -c32 -d{secs}s --latency`, keep-alive); \
         medians of {reps} interleaved runs; CPU = server utime+stime from /proc over the run / requests (nginx: master+worker).\n"
    );
    let _ = writeln!(
        md,
        "Versions: {} · nginx {} (ngx_brotli static: {}) · {} · {}. Kernel {}.\n",
        version_of(STATICD, &["--version"]),
        version_of("nginx", &["-v"]).trim_start_matches("nginx version: "),
        yes(tools.brotli_module.is_some()),
        if tools.caddy {
            format!("Caddy {}", version_of("caddy", &["version"]))
        } else {
            "Caddy: skipped".into()
        },
        version_of("wrk", &["-v"]),
        version_of("uname", &["-r"])
    );
    let _ = writeln!(
        md,
        "Machine: {} cores, load average {load_before} before the measured runs, {load_after} after. \
         \"server CPU\" / \"wrk CPU\" = share of their core they got: well below 100% for both means the run was \
         limited by other load on the machine, not by either side; CPU µs/req is then the steadier figure.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        md,
        "Corpus: {} source files collected by `staticd collect` (manifest + br/gz): STATIC_ROOT holds {} files, {:.1} MiB.\n",
        corpus.source_files,
        corpus.root_files,
        corpus.root_bytes as f64 / 1048576.0
    );
    let _ = writeln!(
        md,
        "| request | server | req/s | p99 ms | CPU µs/req | server CPU | wrk CPU | runs (req/s) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    let mut aggs: BTreeMap<(&str, &str), Agg> = BTreeMap::new();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s.name)
        .chain(reference.as_ref().map(|r| r.name))
        .collect();
    for req in &reqs {
        for &name in &names {
            let Some(v) = samples.get(&(name, req.key)) else {
                continue;
            };
            let a = aggregate(v);
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0}% | {:.0}% | {}{} |",
                req.label,
                name,
                a.rps,
                a.p99_ms,
                a.cpu_us,
                a.server_cpu,
                a.wrk_cpu,
                a.rps_all
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if a.bad > 0 {
                    format!(" (socket errors {})", a.bad)
                } else {
                    String::new()
                }
            );
            let _ = a.runs;
            aggs.insert((name, req.key), a);
        }
    }

    let _ = writeln!(md, "\n## staticd / nginx\n");
    let mut verdicts: Vec<(String, bool)> = Vec::new();
    if aggs.keys().any(|k| k.0 == "nginx") {
        let _ = writeln!(md, "| request | req/s | p99 | CPU/req | target | verdict |");
        let _ = writeln!(md, "|---|---:|---:|---:|---|---|");
        for req in &reqs {
            let (Some(s), Some(n)) = (
                aggs.get(&("staticd", req.key)),
                aggs.get(&("nginx", req.key)),
            ) else {
                continue;
            };
            let rr = s.rps / n.rps;
            let pr = s.p99_ms / n.p99_ms;
            let cr = s.cpu_us / n.cpu_us;
            let (target, met): (&str, Option<bool>) = match req.key {
                "small" | "404" => (
                    "req/s ≥ 1.3x, p99 ≤ 1.0x, CPU ≤ 0.8x",
                    Some(rr >= 1.3 && pr <= 1.0 && cr <= 0.8),
                ),
                "image" => ("req/s ≥ 0.95x", Some(rr >= 0.95)),
                _ => ("(none)", None),
            };
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "-",
            };
            if let Some(m) = met {
                let mut why = Vec::new();
                if req.key != "image" {
                    if rr < 1.3 {
                        why.push(format!("req/s {rr:.3}x < 1.3x"));
                    }
                    if pr > 1.0 {
                        why.push(format!("p99 {pr:.3}x > 1.0x"));
                    }
                    if cr > 0.8 {
                        why.push(format!("CPU {cr:.3}x > 0.8x"));
                    }
                } else if rr < 0.95 {
                    why.push(format!("req/s {rr:.3}x < 0.95x"));
                }
                verdicts.push((
                    format!(
                        "{}: {}{}",
                        req.label,
                        verdict,
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", why.join(", "))
                        }
                    ),
                    m,
                ));
            }
            let _ = writeln!(
                md,
                "| {} | {rr:.2}x | {pr:.2}x | {cr:.2}x | {target} | {verdict} |",
                req.label
            );
        }
    } else {
        let _ = writeln!(md, "nginx was not measured: no ratios.");
    }
    let rss_mib = rss_warm.map(|k| k as f64 / 1024.0);
    let rss_ok = rss_mib.map(|m| m <= 64.0);
    let _ = writeln!(
        md,
        "\nstaticd RSS with the {}-file corpus loaded: {} after warm-up, {} at the end (peak {}); target ≤ 64 MiB: {}",
        corpus.source_files,
        rss_warm.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        rss_end.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        hwm_end.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        match rss_ok {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "unknown",
        }
    );
    if let Some(ok) = rss_ok {
        verdicts.push((format!("RSS: {}", if ok { "met" } else { "MISSED" }), ok));
    }
    if let (Some(r), Some(n)) = (
        aggs.get(&("actix-ref", "small")),
        aggs.get(&("nginx", "small")),
    ) {
        let _ = writeln!(
            md,
            "\nReference: a minimal actix-web handler returning the small asset's br bytes from memory: {:.0} req/s ({:.2}x nginx), {:.2} µs CPU/req, wrk at {:.0}% of its core: the load generator is {}.",
            r.rps,
            r.rps / n.rps,
            r.cpu_us,
            r.wrk_cpu,
            if r.wrk_cpu < 95.0 { "not the limit at these rates" } else { "close to its own limit here (treat ratios above ~this rate with care)" }
        );
    }
    if let Some(line) = staticd_log.lines().find(|l| l.contains("loaded")) {
        let _ = writeln!(md, "\nstaticd: `{}`", line.trim());
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\nNotes:");
        for n in &notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let starved: Vec<&str> = reqs
        .iter()
        .filter(|r| {
            ["staticd", "nginx"]
                .iter()
                .all(|n| aggs.get(&(*n, r.key)).is_some_and(|a| a.server_cpu < 90.0))
        })
        .map(|r| r.label)
        .collect();
    if !starved.is_empty() {
        let _ = writeln!(
            md,
            "\nCaution: neither staticd nor nginx got 90% of its core on: {}. Those req/s and p99 ratios measure \
             the machine's other load more than the servers; compare CPU µs/req there (req/s at saturation ≈ 1e6 / CPU µs/req).",
            starved.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "\nTargets: {}",
        verdicts
            .iter()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>()
            .join("; ")
    );

    println!("\n{md}");
    let out = target_dir().join("bench-serve.md");
    match std::fs::write(&out, &md) {
        Ok(()) => println!("written to {}", out.display()),
        Err(e) => println!("cannot write {}: {e}", out.display()),
    }
    drop(reference);
    drop(servers);
    Ok(())
}
