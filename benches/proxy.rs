//! `cargo bench --bench proxy`: staticd's reverse proxy (`serve --upstream`) against nginx
//! `proxy_pass` (upstream `keepalive 32`), both in front of the same upstream.
//!
//! What it does (everything in one run; the machine is noisy, only compare figures from one run):
//! 1. Installs what is missing (Debian: nginx, wrk) when run as root; without wrk or taskset
//!    nothing is measured, without nginx only staticd is.
//! 2. Two upstreams, one after the other:
//!    - `fast`: a tiny fixed-response HTTP/1.1 server with keep-alive (this same binary,
//!      `--upstream-server PORT`: one thread, tokio current-thread), answering ~200 bytes of
//!      JSON to every request. It measures the proxies themselves.
//!    - `gunicorn`: a migrated temp copy of `sample_project` under
//!      `gunicorn toyproject.wsgi --workers 2` (the venv from `.ci/venv`), `GET /echo/`
//!      (a small JsonResponse, DEBUG off). Sync workers close every connection, so both proxies
//!      open one upstream connection per request, as in the seed's stack.
//! 3. CPU layout on 2 cores: each proxy pinned to core 0 with one worker; wrk (`-t1`) and the
//!    upstream share core 1. A `direct` row (wrk straight to the upstream) shows what core 1
//!    delivers without a proxy in between.
//! 4. wrk keep-alive (`-c32` for `fast`, `-c8` for gunicorn), 10 s runs, repetitions outermost
//!    with the targets rotated; medians of req/s, p99 and the proxy's CPU per request
//!    (utime+stime from /proc over the run; nginx: master+worker), plus the upstream's CPU per
//!    request and, for `fast`, the upstream connections opened per 1000 requests.
//! 5. Prints the table, the staticd/nginx ratios against the target (req/s ≥ 1.0x nginx; met or
//!    missed, never aborts) and writes the same as markdown to `target/bench-proxy.md`.
//!
//! Knobs: `PROXY_BENCH_SECS` (default 10), `PROXY_BENCH_REPS` (default 3),
//! `PROXY_BENCH_FAST_CONNS` (32), `PROXY_BENCH_GUNICORN_CONNS` (8), `PROXY_BENCH_VENV` (a venv
//! directory handed to `.ci/venv`, e.g. an already built one; default `.ci/venv`'s own).
//! Only 127.0.0.1 is loaded; every process started here is killed on exit, also on panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const STATICD: &str = env!("CARGO_BIN_EXE_staticd");

/// Cores: the proxy under test, and wrk together with the upstream.
const PROXY_CORE: &str = "0";
const LOAD_CORE: &str = "1";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--upstream-server") {
        upstream_server(args[2].parse().expect("port"));
        return;
    }
    // `cargo bench -- <filter>`: anything that is not "proxy" (or a flag) means "not us".
    if let Some(f) = args.iter().skip(1).find(|a| !a.starts_with('-')) {
        if !"proxy".contains(f.as_str()) {
            return;
        }
    }
    if let Err(e) = run() {
        eprintln!("proxy bench: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The fast upstream: fixed bytes to every request, keep-alive, pipelining-safe.

static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static ANSWERED: AtomicU64 = AtomicU64::new(0);

const FAST_BODY: &str = "{\"id\": 42, \"title\": \"A note\", \"body\": \"Fixed response from the benchmark's upstream; the proxies in front of it are what is measured.\", \"tags\": [\"bench\", \"proxy\"]}\n";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn answer(head: &[u8], out: &mut Vec<u8>) {
    ANSWERED.fetch_add(1, Ordering::Relaxed);
    let stats;
    let body: &[u8] = if head.starts_with(b"GET /__head") {
        head
    } else if head.starts_with(b"GET /__stats") {
        stats = format!(
            "{} {}\n",
            ACCEPTED.load(Ordering::Relaxed),
            ANSWERED.load(Ordering::Relaxed)
        );
        stats.as_bytes()
    } else {
        FAST_BODY.as_bytes()
    };
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nVary: Cookie\r\nX-Frame-Options: DENY\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

fn upstream_server(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            ACCEPTED.fetch_add(1, Ordering::Relaxed);
            let _ = s.set_nodelay(true);
            tokio::spawn(upstream_conn(s));
        }
    });
}

async fn upstream_conn(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        buf.reserve(16 * 1024);
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut start = 0;
        while let Some(end) = find(&buf[start..], b"\r\n\r\n") {
            let head_end = start + end + 4;
            let total = head_end + content_length(&buf[start..head_end]);
            if buf.len() < total {
                break;
            }
            answer(&buf[start..head_end], &mut out);
            start = total;
        }
        buf.drain(..start);
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tools.

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
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
// Processes.

struct Server {
    name: &'static str,
    port: u16,
    child: Child,
    /// Processes whose CPU time counts (nginx: master + worker; gunicorn: arbiter + workers).
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
        let deadline = Instant::now() + Duration::from_secs(5);
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
        // Workers, if their master did not take them along.
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

/// `taskset -c CORE PROG ARGS`, stdout/stderr to `log`, dying with us.
fn spawn_pinned(
    core: &str,
    prog: &str,
    args: &[&str],
    log: &Path,
    env: &[(&str, &str)],
    cwd: Option<&Path>,
) -> Result<Child, String> {
    let logf = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(core).arg(prog).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
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

fn wait_listening(server: &mut Server, log: &Path, secs: u64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
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

/// Waits (up to 10 s) for `want` children of the server's main process; records them.
fn adopt_children(s: &mut Server, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kids = children_of(s.pid());
    while kids.len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        kids = children_of(s.pid());
    }
    s.pids = std::iter::once(s.pid()).chain(kids).collect();
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

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

fn start_fast_upstream(work: &Path) -> Result<Server, String> {
    let port = free_port();
    let log = work.join("fast-upstream.log");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = spawn_pinned(
        LOAD_CORE,
        &exe.display().to_string(),
        &["--upstream-server", &port.to_string()],
        &log,
        &[],
        None,
    )?;
    let mut s = Server {
        name: "fast-upstream",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log, 20)?;
    s.pids = vec![s.pid()];
    Ok(s)
}

/// `bash .ci/venv [PROXY_BENCH_VENV]`: its last stdout line is the venv's python.
fn venv_python() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join(".ci").join("venv"));
    if let Some(d) = std::env::var_os("PROXY_BENCH_VENV") {
        cmd.arg(d);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!(".ci/venv: {e}"))?;
    if !out.status.success() {
        return Err(format!(".ci/venv failed ({})", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let py = PathBuf::from(
        stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim(),
    );
    if py.is_file() {
        Ok(py)
    } else {
        Err(format!(".ci/venv printed {py:?}, not a python"))
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n == "__pycache__" || n == "db.sqlite3" || n == "staticfiles" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

fn django_env() -> [(&'static str, &'static str); 3] {
    [
        ("DJANGO_DEBUG", "0"),
        ("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ]
}

/// gunicorn (2 sync workers) serving a migrated temp copy of sample_project, on core 1.
fn start_gunicorn(work: &Path) -> Result<(Server, String), String> {
    let py = venv_python()?;
    let gunicorn = py.with_file_name("gunicorn");
    if !gunicorn.is_file() {
        return Err(format!("no {}", gunicorn.display()));
    }
    let project = work.join("sample_project");
    let _ = std::fs::remove_dir_all(&project);
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("sample_project"),
        &project,
    )
    .map_err(|e| format!("copying sample_project: {e}"))?;
    let out = Command::new(&py)
        .args(["manage.py", "migrate", "--noinput"])
        .current_dir(&project)
        .envs(django_env())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("migrate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port();
    let log = work.join("gunicorn.log");
    let bind = format!("127.0.0.1:{port}");
    let child = spawn_pinned(
        LOAD_CORE,
        &gunicorn.display().to_string(),
        &[
            "toyproject.wsgi",
            "--bind",
            &bind,
            "--workers",
            "2",
            "--timeout",
            "30",
        ],
        &log,
        &django_env(),
        Some(&project),
    )?;
    let mut s = Server {
        name: "gunicorn",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log, 60)?;
    adopt_children(&mut s, 2);
    let version = version_of(&gunicorn.display().to_string(), &["--version"]);
    Ok((s, version))
}

fn start_nginx(work: &Path, empty: &Path, upstream_port: u16) -> Result<Server, String> {
    let prefix = work.join("nginx");
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
    let port = free_port();
    let conf = fill(
        include_str!("proxy/nginx.conf.in"),
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
            ("UPSTREAM_PORT", upstream_port.to_string()),
            (
                "STATIC_PARENT",
                empty.parent().unwrap_or(empty).display().to_string(),
            ),
        ],
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let log = prefix.join("stderr.log");
    let p = prefix.display().to_string();
    let c = conf_path.display().to_string();
    let child = spawn_pinned(PROXY_CORE, "nginx", &["-p", &p, "-c", &c], &log, &[], None)?;
    let mut s = Server {
        name: "nginx",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log, 20)?;
    // The worker forks after the master listens.
    adopt_children(&mut s, 1);
    Ok(s)
}

fn start_staticd(work: &Path, empty: &Path, upstream_port: u16) -> Result<Server, String> {
    let port = free_port();
    let log = work.join("staticd.log");
    let bind = format!("127.0.0.1:{port}");
    let up = format!("127.0.0.1:{upstream_port}");
    let root = empty.display().to_string();
    let child = spawn_pinned(
        PROXY_CORE,
        STATICD,
        &[
            "serve",
            "--root",
            &root,
            "--static-url",
            "/static/",
            "--upstream",
            &up,
            "--bind",
            &bind,
            "--workers",
            "1",
            "--log-format",
            "off",
        ],
        &log,
        &[],
        None,
    )?;
    let mut s = Server {
        name: "staticd",
        port,
        child,
        pids: vec![],
    };
    wait_listening(&mut s, &log, 20)?;
    s.pids = vec![s.pid()];
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// One GET over a fresh connection: (status, head, body).
fn http_get(port: u16, path: &str) -> Result<(u16, String, Vec<u8>), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: proxy-bench\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let len = content_length(head.as_bytes());
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, head, buf[head_end..].to_vec()))
}

/// (connections accepted, requests answered) by the fast upstream, itself not counted.
fn fast_stats(port: u16) -> Option<(u64, u64)> {
    let (_, _, body) = http_get(port, "/__stats").ok()?;
    let s = String::from_utf8_lossy(&body);
    let mut it = s.split_whitespace().map(|n| n.parse::<u64>().ok());
    Some((it.next()??.saturating_sub(1), it.next()??.saturating_sub(1)))
}

#[derive(Clone, Debug, Default)]
struct Sample {
    rps: f64,
    p99_ms: f64,
    requests: u64,
    cpu_us_per_req: f64,
    upstream_cpu_us_per_req: f64,
    wrk_cpu_pct: f64,
    non2xx: u64,
    socket_errors: u64,
    /// New upstream connections per 1000 requests (fast upstream only).
    up_conns_per_k: Option<f64>,
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

/// What one scenario loads: the upstream, its path and wrk's connection count.
struct Scenario {
    key: &'static str,
    label: String,
    path: &'static str,
    conns: u64,
}

/// `target` is the process wrk talks to (a proxy, or the upstream itself for `direct`).
fn run_wrk(
    target: &Server,
    upstream: &Server,
    sc: &Scenario,
    secs: u64,
    fast: bool,
) -> Result<Sample, String> {
    let url = format!("http://127.0.0.1:{}{}", target.port, sc.path);
    let d = format!("{secs}s");
    let c = sc.conns.to_string();
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        "-c",
        &c,
        "-d",
        &d,
        "--timeout",
        "5s",
        "--latency",
        &url,
    ]);
    let direct = std::ptr::eq(target, upstream);
    let up0 = if fast {
        fast_stats(upstream.port)
    } else {
        None
    };
    let cpu0 = cpu_ticks(&target.pids);
    let ucpu0 = cpu_ticks(&upstream.pids);
    let wrk0 = children_cpu_secs();
    let t0 = Instant::now();
    let out = cmd.output().map_err(|e| format!("wrk: {e}"))?;
    let wall = t0.elapsed().as_secs_f64();
    let wrk_cpu = children_cpu_secs() - wrk0;
    let cpu1 = cpu_ticks(&target.pids);
    let ucpu1 = cpu_ticks(&upstream.pids);
    let up1 = if fast {
        fast_stats(upstream.port)
    } else {
        None
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut s = parse_wrk(&text)?;
    if s.requests > 0 {
        let per = |t: u64| t as f64 / clk_tck() * 1e6 / s.requests as f64;
        s.cpu_us_per_req = if direct { 0.0 } else { per(cpu1 - cpu0) };
        s.upstream_cpu_us_per_req = per(ucpu1 - ucpu0);
        if let (Some(a), Some(b)) = (up0, up1) {
            // The stats request itself opened one connection.
            let conns = b.0.saturating_sub(a.0 + 1);
            s.up_conns_per_k = Some(conns as f64 * 1000.0 / s.requests as f64);
        }
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
    up_cpu_us: f64,
    /// Share of its core the proxy used during the run.
    proxy_cpu: f64,
    wrk_cpu: f64,
    up_conns_per_k: Option<f64>,
    non2xx: u64,
    errors: u64,
    rps_all: Vec<f64>,
}

fn aggregate(samples: &[Sample]) -> Agg {
    let conns: Vec<f64> = samples.iter().filter_map(|s| s.up_conns_per_k).collect();
    Agg {
        rps: median(samples.iter().map(|s| s.rps).collect()),
        p99_ms: median(samples.iter().map(|s| s.p99_ms).collect()),
        cpu_us: median(samples.iter().map(|s| s.cpu_us_per_req).collect()),
        up_cpu_us: median(samples.iter().map(|s| s.upstream_cpu_us_per_req).collect()),
        proxy_cpu: median(
            samples
                .iter()
                .map(|s| s.cpu_us_per_req * s.rps / 1e4)
                .collect(),
        ),
        wrk_cpu: median(samples.iter().map(|s| s.wrk_cpu_pct).collect()),
        up_conns_per_k: (!conns.is_empty()).then(|| median(conns)),
        non2xx: samples.iter().map(|s| s.non2xx).sum(),
        errors: samples.iter().map(|s| s.socket_errors).sum(),
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

/// Results of one scenario: per target name, its samples.
struct Outcome {
    scenario: Scenario,
    samples: BTreeMap<&'static str, Vec<Sample>>,
    notes: Vec<String>,
    upstream_version: String,
}

/// Starts the proxies in front of `upstream`, checks them, runs the interleaved repetitions.
fn measure(
    work: &Path,
    empty: &Path,
    upstream: &Server,
    sc: Scenario,
    nginx: bool,
    secs: u64,
    reps: usize,
) -> Outcome {
    let fast = sc.key == "fast";
    let mut out = Outcome {
        scenario: sc,
        samples: BTreeMap::new(),
        notes: Vec::new(),
        upstream_version: String::new(),
    };
    let sc = &out.scenario;
    println!("\n== {} ==", sc.label);
    let mut proxies: Vec<Server> = Vec::new();
    match start_staticd(work, empty, upstream.port) {
        Ok(s) => proxies.push(s),
        Err(e) => out.notes.push(format!("staticd: cannot start: {e}")),
    }
    if nginx {
        match start_nginx(work, empty, upstream.port) {
            Ok(s) => proxies.push(s),
            Err(e) => out.notes.push(format!("nginx: cannot start: {e}")),
        }
    }

    // Sanity: same status through every target; for the fast upstream, what each proxy sends.
    println!("check:");
    let mut targets: Vec<&Server> = vec![upstream];
    targets.extend(proxies.iter());
    for t in &targets {
        let name = if std::ptr::eq(*t, upstream) {
            "direct"
        } else {
            t.name
        };
        match http_get(t.port, sc.path) {
            Ok((st, _, body)) => {
                println!("  {name:<8} GET {} → {st}, {} bytes", sc.path, body.len());
                if st != 200 {
                    out.notes.push(format!(
                        "{name}: GET {} answered {st}, not 200: {}",
                        sc.path,
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ));
                }
            }
            Err(e) => out
                .notes
                .push(format!("{name}: GET {} failed: {e}", sc.path)),
        }
        if fast && !std::ptr::eq(*t, upstream) {
            if let Ok((_, _, body)) = http_get(t.port, "/__head") {
                let head = String::from_utf8_lossy(&body);
                let lines: Vec<&str> = head.lines().filter(|l| !l.is_empty()).collect();
                println!("           upstream saw: {}", lines.join(" | "));
                out.notes
                    .push(format!("{name} sends upstream: `{}`", lines.join("` `")));
            }
        }
    }

    // Warm-up: connection pools, page cache, Python's imports.
    for t in &targets {
        let _ = run_wrk(t, upstream, sc, 2, fast);
    }

    println!(
        "measuring: {reps} × {} targets × {secs}s (load average {})",
        targets.len(),
        loadavg()
    );
    let total = reps * targets.len();
    let mut done = 0;
    for rep in 0..reps {
        let mut order = targets.clone();
        let k = order.len();
        order.rotate_left(rep % k);
        for t in order {
            done += 1;
            let name = if std::ptr::eq(t, upstream) {
                "direct"
            } else {
                t.name
            };
            match run_wrk(t, upstream, sc, secs, fast) {
                Ok(s) => {
                    println!(
                        "  [{done:>2}/{total}] rep {} {:<8} {:>8.0} req/s  p99 {:>7.2} ms  proxy {:>6.2} µs CPU/req ({:>3.0}%)  upstream {:>6.2} µs/req  wrk {:>3.0}%{}{}{}",
                        rep + 1,
                        name,
                        s.rps,
                        s.p99_ms,
                        s.cpu_us_per_req,
                        s.cpu_us_per_req * s.rps / 1e4,
                        s.upstream_cpu_us_per_req,
                        s.wrk_cpu_pct,
                        s.up_conns_per_k
                            .map_or(String::new(), |c| format!("  {c:.2} up-conns/1k req")),
                        if s.non2xx > 0 {
                            format!("  non-2xx {}", s.non2xx)
                        } else {
                            String::new()
                        },
                        if s.socket_errors > 0 {
                            format!("  socket errors {}", s.socket_errors)
                        } else {
                            String::new()
                        }
                    );
                    out.samples.entry(name).or_default().push(s);
                }
                Err(e) => println!("  {name}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let log = std::fs::read_to_string(work.join("staticd.log")).unwrap_or_default();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    if !warnings.is_empty() {
        out.notes.push(format!(
            "staticd logged {} warnings, first: `{}`",
            warnings.len(),
            warnings[0].trim()
        ));
    }
    drop(proxies);
    out
}

fn run() -> Result<(), String> {
    let secs = env_num("PROXY_BENCH_SECS", 10);
    let reps = env_num("PROXY_BENCH_REPS", 3).max(1) as usize;
    let fast_conns = env_num("PROXY_BENCH_FAST_CONNS", 32);
    let gunicorn_conns = env_num("PROXY_BENCH_GUNICORN_CONNS", 8);
    println!("proxy bench: {secs}s per run, {reps} runs per target (medians)");
    println!("tools:");
    let mut updated = false;
    let wrk = have("wrk") || (apt_install("wrk", &mut updated) && have("wrk"));
    let nginx = have("nginx") || (apt_install("nginx", &mut updated) && have("nginx"));
    let taskset = have("taskset");
    println!(
        "  wrk: {}, nginx: {}, taskset: {}",
        yes(wrk),
        yes(nginx),
        yes(taskset)
    );
    if !wrk || !taskset {
        println!("proxy bench: wrk or taskset unavailable; nothing to measure");
        return Ok(());
    }
    let work = target_dir().join("bench-proxy");
    let _ = std::fs::remove_dir_all(&work);
    let empty = work.join("static");
    std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
    let load_before = loadavg();

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    // 1. The fast upstream.
    match start_fast_upstream(&work) {
        Ok(up) => {
            let sc = Scenario {
                key: "fast",
                label: format!(
                    "fast upstream (fixed ~{} B JSON), wrk -c{fast_conns}",
                    FAST_BODY.len()
                ),
                path: "/api/notes/42/",
                conns: fast_conns,
            };
            let mut o = measure(&work, &empty, &up, sc, nginx, secs, reps);
            o.upstream_version = "this binary's --upstream-server (tokio, one thread)".into();
            outcomes.push(o);
        }
        Err(e) => skipped.push(format!("fast upstream: cannot start: {e}")),
    }
    // 2. gunicorn with sample_project.
    match start_gunicorn(&work) {
        Ok((up, version)) => {
            let sc = Scenario {
                key: "gunicorn",
                label: format!(
                    "gunicorn, sample_project GET /echo/ (2 sync workers), wrk -c{gunicorn_conns}"
                ),
                path: "/echo/",
                conns: gunicorn_conns,
            };
            let mut o = measure(&work, &empty, &up, sc, nginx, secs, reps);
            o.upstream_version = version;
            outcomes.push(o);
        }
        Err(e) => skipped.push(format!("gunicorn: cannot start, skipped: {e}")),
    }
    let load_after = loadavg();

    // ----- Report.
    let mut md = String::new();
    let _ = writeln!(md, "# staticd reverse-proxy benchmark\n");
    let _ = writeln!(
        md,
        "Each proxy pinned to core 0 (`taskset -c 0`) with one worker; **wrk (`-t1`) and the upstream share core 1** \
         (`taskset -c 1`). `direct` = wrk straight to the upstream (no proxy): what core 1 delivers on its own. \
         wrk keep-alive, {secs}s runs, medians of {reps} interleaved runs. \
         Proxy CPU = utime+stime from /proc over the run / requests (nginx: master+worker); upstream CPU likewise \
         (gunicorn: arbiter+workers).\n"
    );
    let _ = writeln!(
        md,
        "nginx: `proxy_pass http://up` with `upstream up {{ keepalive 32; }}`, `proxy_http_version 1.1`, \
         `proxy_set_header Connection \"\"`, Host/X-Forwarded-For/X-Forwarded-Proto as in the seed, 1 worker, \
         access_log off (benches/proxy/nginx.conf.in). staticd: `serve --root EMPTY --static-url /static/ \
         --upstream 127.0.0.1:PORT --workers 1 --log-format off`.\n"
    );
    let _ = writeln!(
        md,
        "Versions: {} · nginx {} · {}. Kernel {}.\n",
        version_of(STATICD, &["--version"]),
        version_of("nginx", &["-v"]).trim_start_matches("nginx version: "),
        version_of("wrk", &["-v"]),
        version_of("uname", &["-r"])
    );
    let _ = writeln!(
        md,
        "Machine: {} cores, load average {load_before} before, {load_after} after (other work on the machine \
         competes for both cores: only compare figures from one run).\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut verdicts: Vec<String> = Vec::new();
    let mut cautions: Vec<String> = Vec::new();
    for o in &outcomes {
        let sc = &o.scenario;
        let _ = writeln!(md, "## {}\n", sc.label);
        let _ = writeln!(md, "Upstream: {}.\n", o.upstream_version);
        let _ = writeln!(
            md,
            "| target | req/s | p99 ms | proxy CPU µs/req | proxy core | upstream CPU µs/req | wrk CPU | upstream conns / 1k req | runs (req/s) |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        let mut aggs: BTreeMap<&str, Agg> = BTreeMap::new();
        for name in ["direct", "nginx", "staticd"] {
            let Some(v) = o.samples.get(name) else {
                continue;
            };
            let a = aggregate(v);
            let direct = name == "direct";
            let _ = writeln!(
                md,
                "| {name} | {:.0} | {:.2} | {} | {} | {:.2} | {:.0}% | {} | {}{}{} |",
                a.rps,
                a.p99_ms,
                if direct {
                    "-".into()
                } else {
                    format!("{:.2}", a.cpu_us)
                },
                if direct {
                    "-".into()
                } else {
                    format!("{:.0}%", a.proxy_cpu)
                },
                a.up_cpu_us,
                a.wrk_cpu,
                a.up_conns_per_k.map_or("-".into(), |c| format!("{c:.2}")),
                a.rps_all
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if a.non2xx > 0 {
                    format!(" (non-2xx {})", a.non2xx)
                } else {
                    String::new()
                },
                if a.errors > 0 {
                    format!(" (socket errors {})", a.errors)
                } else {
                    String::new()
                }
            );
            aggs.insert(name, a);
        }
        if let (Some(s), Some(n)) = (aggs.get("staticd"), aggs.get("nginx")) {
            let rr = s.rps / n.rps;
            let pr = s.p99_ms / n.p99_ms;
            let cr = s.cpu_us / n.cpu_us;
            let met = rr >= 1.0;
            let _ = writeln!(
                md,
                "\nstaticd / nginx: req/s **{rr:.2}x**, p99 {pr:.2}x, proxy CPU/req {cr:.2}x. Target req/s ≥ 1.0x: **{}**.",
                if met { "met" } else { "MISSED" }
            );
            verdicts.push(format!(
                "{}: {} (req/s {rr:.2}x, p99 {pr:.2}x, CPU/req {cr:.2}x)",
                sc.key,
                if met { "met" } else { "MISSED" }
            ));
            if s.proxy_cpu < 90.0 && n.proxy_cpu < 90.0 {
                cautions.push(format!(
                    "{}: neither proxy used 90% of core 0 (staticd {:.0}%, nginx {:.0}%): req/s is bounded by core 1 \
                     (wrk + upstream) or by the upstream itself, not by the proxy; CPU µs/req is the figure that \
                     compares the proxies there (saturated req/s ≈ 1e6 / CPU µs/req).",
                    sc.key, s.proxy_cpu, n.proxy_cpu
                ));
            }
        } else {
            let _ = writeln!(
                md,
                "\nNo staticd/nginx ratio: one of them was not measured."
            );
        }
        if !o.notes.is_empty() {
            let _ = writeln!(md, "\nNotes:");
            for n in &o.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        let _ = writeln!(md);
    }
    for s in &skipped {
        let _ = writeln!(md, "- skipped: {s}");
    }
    if !cautions.is_empty() {
        let _ = writeln!(md, "\nCaution:");
        for c in &cautions {
            let _ = writeln!(md, "- {c}");
        }
    }
    let _ = writeln!(
        md,
        "\nTarget (req/s ≥ 1.0x nginx): {}",
        if verdicts.is_empty() {
            "not measured".to_string()
        } else {
            verdicts.join("; ")
        }
    );

    println!("\n{md}");
    let out = target_dir().join("bench-proxy.md");
    match std::fs::write(&out, &md) {
        Ok(()) => println!("written to {}", out.display()),
        Err(e) => println!("cannot write {}: {e}", out.display()),
    }
    Ok(())
}
