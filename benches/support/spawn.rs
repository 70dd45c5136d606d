//! Servers started for a run: pinned to a core with taskset (the benches give each side of a
//! measurement its own core), dying with the bench, waited for until they listen, killed on
//! drop (also on panic).

use super::cpu::children_of;
use super::STATICD;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Calls `check` every `every` until it gives an answer or `within` has passed: readiness is
/// polled, never slept for.
pub fn poll<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

const POLL: Duration = Duration::from_millis(50);

pub struct Server {
    pub name: &'static str,
    pub port: u16,
    pub child: Child,
    /// Processes whose CPU time counts (nginx: master + worker; gunicorn: arbiter + workers).
    pub pids: Vec<i32>,
}

impl Server {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Server {
    /// SIGTERM, up to 5 s to exit, then SIGKILL; workers the master left behind are killed too.
    fn drop(&mut self) {
        let pid = self.pid();
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let child = &mut self.child;
        poll(Duration::from_secs(5), POLL, || {
            child.try_wait().ok().flatten()
        });
        if let Ok(None) = self.child.try_wait() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
        for &p in &self.pids {
            if p != pid && std::fs::metadata(format!("/proc/{p}")).is_ok() {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// How to start one server: `taskset -c CORE PROG ARGS`, stdout and stderr to `log`.
pub struct Launch<'a> {
    name: &'static str,
    core: &'a str,
    prog: &'a str,
    args: &'a [&'a str],
    log: &'a Path,
    env: &'a [(&'a str, &'a str)],
    cwd: Option<&'a Path>,
    ready_within: Duration,
    workers: usize,
}

impl<'a> Launch<'a> {
    pub fn new(
        name: &'static str,
        core: &'a str,
        prog: &'a str,
        args: &'a [&'a str],
        log: &'a Path,
    ) -> Self {
        Launch {
            name,
            core,
            prog,
            args,
            log,
            env: &[],
            cwd: None,
            ready_within: Duration::from_secs(20),
            workers: 0,
        }
    }

    pub fn env(mut self, env: &'a [(&'a str, &'a str)]) -> Self {
        self.env = env;
        self
    }

    pub fn cwd(mut self, dir: &'a Path) -> Self {
        self.cwd = Some(dir);
        self
    }

    /// How long it may take to listen (default 20 s; gunicorn imports Django first).
    pub fn ready_within(mut self, secs: u64) -> Self {
        self.ready_within = Duration::from_secs(secs);
        self
    }

    /// Worker processes it forks after listening, whose CPU counts with its own.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Spawns it (killed by the kernel if the bench dies: PR_SET_PDEATHSIG), waits until `port`
    /// accepts and its workers exist.
    pub fn start(self, port: u16) -> Result<Server, String> {
        let logf = std::fs::File::create(self.log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(self.core).arg(self.prog).args(self.args);
        for (k, v) in self.env {
            cmd.env(k, v);
        }
        if let Some(d) = self.cwd {
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
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", self.prog))?;
        let mut s = Server {
            name: self.name,
            port,
            child,
            pids: vec![],
        };
        wait_listening(&mut s, self.log, self.ready_within)?;
        s.pids = vec![s.pid()];
        if self.workers > 0 {
            adopt_children(&mut s, self.workers);
        }
        Ok(s)
    }
}

/// Until the server's port accepts a connection; an exit meanwhile is an error with its log.
pub fn wait_listening(server: &mut Server, log: &Path, within: Duration) -> Result<(), String> {
    let (name, port) = (server.name, server.port);
    let child = &mut server.child;
    poll(within, POLL, || {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(Err(format!(
                "{name} exited ({st}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            )));
        }
        TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(Ok(()))
    })
    .unwrap_or_else(|| Err(format!("{name} did not listen on {port}")))
}

/// Waits (up to 10 s) for `want` children of the server's main process (they fork after the
/// master listens) and counts them with it.
pub fn adopt_children(s: &mut Server, want: usize) {
    let pid = s.pid();
    let kids = poll(Duration::from_secs(10), POLL, || {
        let kids = children_of(pid);
        (kids.len() >= want).then_some(kids)
    })
    .unwrap_or_else(|| children_of(pid));
    s.pids = std::iter::once(pid).chain(kids).collect();
}

/// `staticd serve` over `root` with one worker and no access log, pinned to `core`, in front of
/// `127.0.0.1:UPSTREAM` when given; its log is `work/staticd.log`.
pub fn start_staticd(
    work: &Path,
    core: &str,
    root: &Path,
    upstream: Option<u16>,
) -> Result<Server, String> {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let root = root.display().to_string();
    let up = upstream.map(|p| format!("127.0.0.1:{p}"));
    let mut args = vec!["serve", "--root", &root, "--static-url", "/static/"];
    if let Some(up) = &up {
        args.extend(["--upstream", up]);
    }
    args.extend(["--bind", &bind, "--workers", "1", "--log-format", "off"]);
    Launch::new("staticd", core, STATICD, &args, &work.join("staticd.log")).start(port)
}
