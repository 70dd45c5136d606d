//! The one launcher of `staticd serve` and `staticd dev`: a free port (`--bind 127.0.0.1:0`,
//! unless the test binds itself; the address read back from the server's own "listening on"
//! line, and the HTTPS listener's too with `--https-bind`), both output streams
//! captured line by line, waits on a condition with a deadline, and a kill on drop.

use super::http::{self, Conn, Response};
use super::ChildGuard;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for something the server is expected to do soon.
pub const WAIT: Duration = Duration::from_secs(20);

/// Lines of one output stream, appended as they arrive; waits are woken by each new line.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<LinesState>, Condvar)>);

#[derive(Default)]
struct LinesState {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    fn push(&self, line: String) {
        let (m, cv) = &*self.0;
        m.lock().unwrap().lines.push(line);
        cv.notify_all();
    }

    fn close(&self) {
        let (m, cv) = &*self.0;
        m.lock().unwrap().closed = true;
        cv.notify_all();
    }

    /// Drains `reader` into a new `Lines` on a thread of its own (so the child never blocks
    /// on a full pipe).
    pub fn drain(reader: impl Read + Send + 'static, label: &'static str) -> Lines {
        let lines = Lines::default();
        let l = lines.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_string();
                        if std::env::var_os("SERVE_TEST_VERBOSE").is_some() {
                            eprintln!("[{label}] {line}");
                        }
                        l.push(line);
                    }
                }
            }
            l.close();
        });
        lines
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().lines.clone()
    }

    pub fn text(&self) -> String {
        let mut s = self.snapshot().join("\n");
        s.push('\n');
        s
    }

    /// Waits until the stream is closed (the process exited and the reader finished).
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut st = m.lock().unwrap();
        while !st.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
        true
    }

    /// The first line at index `*from` or later for which `pred` holds; `*from` moves past
    /// it, so successive waits see successive lines. Fails the test after `timeout`, naming
    /// `what` and showing every line.
    pub fn wait_from(
        &self,
        from: &mut usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let (m, cv) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut st = m.lock().unwrap();
        loop {
            if let Some(i) = st.lines[*from..].iter().position(|l| pred(l)) {
                let i = *from + i;
                *from = i + 1;
                return st.lines[i].clone();
            }
            *from = st.lines.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || st.closed {
                panic!(
                    "no line for {what} within {timeout:?}{}:\n{}",
                    if st.closed { " (stream closed)" } else { "" },
                    st.lines.join("\n")
                );
            }
            st = cv.wait_timeout(st, left).unwrap().0;
        }
    }

    /// The first line (from the start) for which `pred` holds.
    pub fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_from(&mut 0, what, WAIT, pred)
    }
}

/// A structured field of a diagnostic (tracing) line on stderr: `key=value` as a whole
/// word, so `status=499` never matches a duration such as `499.7µs`.
pub fn has_field(line: &str, key: &str, value: &str) -> bool {
    let want = format!("{key}={value}");
    line.split_whitespace().any(|w| w == want)
}

/// What serve prints once per listener, before its address.
const LISTENING: &str = "staticd serve: listening on ";

/// A running `staticd serve` or `staticd dev`, killed when dropped.
pub struct Staticd {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    /// The HTTPS listener's address (`--https-bind`).
    pub https_addr: Option<SocketAddr>,
    /// Diagnostics (reloads, warnings, `dev`'s collect lines).
    pub stderr: Lines,
    /// The access log (JSON lines unless the test chose another `--log-format`).
    pub stdout: Lines,
    /// A root made for a server started without one ([`Staticd::proxy`]).
    _root: Option<tempfile::TempDir>,
}

impl Staticd {
    /// `staticd serve --root ROOT` with `extra` flags. Defaults that `extra` can override:
    /// `--static-url /static/`, `--workers 2`, `--log-format json`.
    pub fn serve(root: &Path, extra: &[&str]) -> Staticd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_staticd"));
        cmd.arg("serve").arg("--root").arg(root);
        if !extra.contains(&"--static-url") {
            cmd.args(["--static-url", "/static/"]);
        }
        Self::launch(cmd, extra, None)
    }

    /// `staticd serve` in front of an upstream (in `extra`), with a root of its own that
    /// holds `/static/app.css`.
    pub fn proxy(extra: &[&str]) -> Staticd {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("app.css"), "body{}").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_staticd"));
        cmd.arg("serve")
            .arg("--root")
            .arg(root.path())
            .args(["--static-url", "/static/"]);
        Self::launch(cmd, extra, Some(root))
    }

    /// `staticd dev PROJECT` (collect --watch and serve in one process).
    pub fn dev(project: &Path, extra: &[&str]) -> Staticd {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_staticd"));
        cmd.arg("dev").arg(project);
        Self::launch(cmd, extra, None)
    }

    fn launch(mut cmd: Command, extra: &[&str], root: Option<tempfile::TempDir>) -> Staticd {
        if !extra.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--workers") {
            cmd.args(["--workers", "2"]);
        }
        if !extra.iter().any(|a| a.starts_with("--log-format")) {
            cmd.args(["--log-format", "json"]);
        }
        cmd.args(extra);
        let mut s = Self::start(cmd);
        s._root = root;
        s
    }

    /// Runs `cmd` as it is (no flag added: the test gives the listeners, the log format,
    /// the configuration) and waits for its first listening line. `addr` is the first TCP
    /// listener's address (`0.0.0.0:0` when the first one is a Unix socket; see
    /// [`Staticd::listening`]); `https_addr` the HTTPS listener's, with `--https-bind`.
    pub fn start(mut cmd: Command) -> Staticd {
        let https = cmd.get_args().any(|a| a == "--https-bind");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::new(cmd.spawn().expect("spawn staticd"));
        let stderr = Lines::drain(child.stderr.take().unwrap(), "staticd");
        let stdout = Lines::drain(child.stdout.take().unwrap(), "access");
        let line = stderr.wait_from(&mut 0, "the listening address", WAIT, |l| {
            l.starts_with(LISTENING)
        });
        let addr = match line[LISTENING.len()..].strip_prefix("http://") {
            Some(a) => a.parse().unwrap_or_else(|e| panic!("{line:?}: {e}")),
            None => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        // The HTTPS listener's line comes after the plain ones.
        let https_addr = https.then(|| {
            let prefix = format!("{LISTENING}https://");
            let line = stderr.wait_from(&mut 0, "the https address", WAIT, |l| {
                l.starts_with(&prefix)
            });
            line[prefix.len()..]
                .parse::<SocketAddr>()
                .unwrap_or_else(|e| panic!("{line:?}: {e}"))
        });
        Staticd {
            child,
            addr,
            https_addr,
            stderr,
            stdout,
            _root: None,
        }
    }

    /// The first `n` listening lines' addresses (`http://…` or `unix:…`), in order.
    pub fn listening(&self, n: usize) -> Vec<String> {
        let mut from = 0;
        (0..n)
            .map(|i| {
                let line = self.stderr.wait_from(
                    &mut from,
                    &format!("listening line {}", i + 1),
                    WAIT,
                    |l| l.starts_with(LISTENING),
                );
                line[LISTENING.len()..].to_string()
            })
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.addr)
    }

    /// GET `path` with extra header lines, on a connection of its own.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http::get(self.addr, path, headers)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http::request(self.addr, method, path, headers, body)
    }

    /// Waits for the access-log entry for which `pred` holds (JSON log format).
    pub fn wait_access(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let line = self.stdout.wait(what, |l| {
            serde_json::from_str(l).is_ok_and(|v: serde_json::Value| pred(&v))
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for the access-log entry of `uri` with `status`.
    pub fn wait_status(&self, uri: &str, status: u16) -> serde_json::Value {
        self.wait_access(&format!("{uri} logged with status {status}"), |v| {
            v["uri"] == uri && v["status"] == status
        })
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the server to exit on its own, failing the test after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait for the exit, then for both streams to be read to their end.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(WAIT);
        assert!(self.stdout.wait_closed(WAIT) && self.stderr.wait_closed(WAIT));
        st
    }
}

/// A shell that `exec`s staticd as systemd starts it with socket activation: descriptor
/// `fd` at 3, `LISTEN_FDS=1`, `LISTEN_PID` the shell's (so staticd's) pid, and `vars`
/// (`LISTEN_FDNAMES=…`). Arguments added to the command go to staticd.
pub fn socket_activation(fd: RawFd, vars: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "export LISTEN_PID=$$ LISTEN_FDS=1 {vars}; exec \"$@\""
        ))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_staticd"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: the flag is cleared either way.
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c
}
