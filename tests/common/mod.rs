//! The integration tests' one harness: paths and the Python venv (here), the strict raw
//! HTTP/1.1 client ([`http`]), the launcher of `staticd serve`/`dev` ([`staticd`]),
//! `staticd collect` projects ([`project`]), STATIC_ROOT fixtures ([`fixture`]), real
//! Django under gunicorn ([`django`]), real Vite ([`vite`]), a TLS test kit around staticd's
//! TLS library with `openssl s_client` and `curl` as clients ([`tls`]), Pebble, the ACME
//! test server ([`pebble`]), a scripted upstream ([`upstream`]), and S3-compatible stores:
//! SeaweedFS ([`s3`] over [`seaweed`], which the publish bench shares) and moto ([`moto`]),
//! on ports leased for them ([`ports`]); [`publish`] runs staticd against them.

pub mod django;
pub mod echo;
pub mod fixture;
pub mod http;
pub mod moto;
pub mod pebble;
pub mod ports;
pub mod project;
pub mod publish;
pub mod s3;
pub mod seaweed;
pub mod staticd;
pub mod tls;
pub mod upstream;
pub mod vite;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository (crate) root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `sample_project/` in the repository (copy it before running anything that writes).
pub fn sample_project() -> PathBuf {
    repo_root().join("sample_project")
}

/// Runs the idempotent installer `.ci/<name>` and returns the file it prints on its last
/// line (what it installed or found); `purpose` says in a failure what the tests need it for.
pub fn ci_installed(name: &str, purpose: &str) -> PathBuf {
    let script = repo_root().join(".ci").join(name);
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!(
            "{} failed ({}); the tests need it {purpose}.\nstdout:\n{stdout}\nstderr:\n{stderr}",
            script.display(),
            out.status
        );
    }
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let path = PathBuf::from(last.trim());
    assert!(
        path.is_file(),
        "{} printed {last:?} as its last line, which is no file.\nstderr:\n{stderr}",
        script.display()
    );
    path
}

/// The test virtualenv's python (Django, DRF, WhiteNoise, gunicorn, uvicorn, …), built by
/// `.ci/venv` at most once per test process (the script itself is idempotent and locked).
pub fn venv_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| ci_installed("venv", "to build the Python virtualenv"))
        .clone()
}

/// The `key=value` facts `.ci/venv` recorded for the venv of [`venv_python`].
fn venv_stamp(key: &str) -> String {
    let py = venv_python();
    let stamp = py
        .parent()
        .and_then(Path::parent)
        .expect("venv layout")
        .join(".staticd-stamp");
    let text = std::fs::read_to_string(&stamp)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", stamp.display()));
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {key}= in {}: {text}", stamp.display()))
}

/// Django's version in the test virtualenv (e.g. `"6.1.3"`).
pub fn django_version() -> String {
    venv_stamp("django")
}

/// Django's own `tests/staticfiles_tests` (from the sdist of [`django_version`]).
pub fn django_tests_dir() -> PathBuf {
    let dir = PathBuf::from(venv_stamp("tests"));
    assert!(
        dir.join("project").is_dir(),
        "{} is not Django's staticfiles_tests",
        dir.display()
    );
    dir
}

/// Run the venv's python with `code`; its stdout, trimmed. Panics on failure.
pub fn python_eval(code: &str) -> String {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(code)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python -c {code:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The long options `staticd SUB --help` lists (`--root`, `--dry-run`, `--help`, …), for
/// the tests that check a deployment file gives staticd only options it has.
pub fn help_flags(sub: &str) -> std::collections::BTreeSet<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_staticd"))
        .args([sub, "--help"])
        .output()
        .unwrap();
    assert!(o.status.success(), "staticd {sub} --help");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            // `-n, --dry-run`: the long form after the short one.
            let l = match l.split_once(", ") {
                Some((short, long)) if short.len() == 2 && short.starts_with('-') => long,
                _ => l,
            };
            l.starts_with("--")
                .then(|| l.split_whitespace().next().unwrap().to_string())
        })
        .collect()
}

/// A loopback TCP port for a server the test starts (or an address nothing may answer on),
/// leased ([`ports`]) for the rest of the test process: outside the kernel's ephemeral range,
/// so no other `bind(0)` or `connect()` on the machine is handed it before the server binds
/// it, and no other lease while this process lives (a server restarted on it finds it free).
pub fn free_port() -> u16 {
    static HELD: std::sync::Mutex<Vec<ports::Lease>> = std::sync::Mutex::new(Vec::new());
    let (port, lease) = ports::lease_ports(1, None);
    HELD.lock().unwrap_or_else(|e| e.into_inner()).extend(lease);
    port[0]
}

/// Polls `probe` (every 10 ms) until it gives a value; fails the test after `timeout`,
/// naming `what`. The one way tests wait for something: never a fixed sleep.
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until something accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Writes `root/rel`, creating its directories; the path written.
pub fn write_file(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// Copy `src` into `dst` (created), recreating symlinks as symlinks.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    for entry in walkdir::WalkDir::new(src).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap_or_else(|e| panic!("walk {}: {e}", src.display()));
        let rel = entry.path().strip_prefix(src).unwrap();
        let target = dst.join(rel);
        let ft = entry.file_type();
        if ft.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            std::os::unix::fs::symlink(&link, &target)
                .unwrap_or_else(|e| panic!("symlink {}: {e}", target.display()));
        } else if ft.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| {
                panic!(
                    "copy {} → {}: {e}",
                    entry.path().display(),
                    target.display()
                )
            });
        }
    }
}

/// A digest of a directory tree: sorted relative paths, file contents and symlink targets
/// (not mtimes or permissions). Equal digests = "nothing in it changed".
pub fn tree_digest(dir: &Path) -> String {
    let mut h = blake3::Hasher::new();
    for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap_or_else(|e| panic!("walk {}: {e}", dir.display()));
        let rel = entry.path().strip_prefix(dir).unwrap();
        let rel = rel.to_string_lossy();
        let ft = entry.file_type();
        if ft.is_symlink() {
            let link = std::fs::read_link(entry.path()).unwrap();
            h.update(b"L\0").update(rel.as_bytes()).update(b"\0");
            h.update(link.to_string_lossy().as_bytes()).update(b"\0");
        } else if ft.is_dir() {
            h.update(b"D\0").update(rel.as_bytes()).update(b"\0");
        } else {
            let mut f = std::fs::File::open(entry.path()).unwrap();
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).unwrap();
            h.update(b"F\0").update(rel.as_bytes()).update(b"\0");
            h.update(&(buf.len() as u64).to_le_bytes()).update(&buf);
        }
    }
    h.finalize().to_hex().to_string()
}

/// Kills (and reaps) the child process when dropped.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        ChildGuard(child)
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
