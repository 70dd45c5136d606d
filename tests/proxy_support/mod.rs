//! Helpers for the proxy tests: a migrated copy of sample_project under a real gunicorn,
//! staticd in front of it, and a tiny HTTP/1.1 client that keeps every header line.
#![allow(dead_code)]

use crate::common::{copy_tree, free_port, sample_project, venv_python, wait_for_port, ChildGuard};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A migrated temp copy of sample_project.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&sample_project(), dir.path());
        let _ = std::fs::remove_file(dir.path().join("db.sqlite3"));
        let out = Command::new(venv_python())
            .args(["manage.py", "migrate", "--noinput"])
            .current_dir(dir.path())
            .envs(django_env())
            .output()
            .expect("run migrate");
        assert!(
            out.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Project { dir }
    }

    /// `staticd collect` into the project's STATIC_ROOT (Django's manifest storage needs
    /// its manifest with DEBUG off, e.g. for the admin pages).
    pub fn collect(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_staticd"))
            .arg("collect")
            .arg(self.path())
            .arg("--python")
            .arg(venv_python())
            .envs(django_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "collect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `manage.py shell -c CODE`.
    pub fn shell(&self, code: &str) {
        let out = Command::new(venv_python())
            .args(["manage.py", "shell", "-c", code])
            .current_dir(self.path())
            .envs(django_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shell failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn django_env() -> Vec<(&'static str, String)> {
    vec![
        ("DJANGO_ALLOWED_HOSTS", "*".into()),
        ("DJANGO_DEBUG", "0".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
    ]
}

/// gunicorn serving the project on 127.0.0.1:`port`, its access log in a file.
pub struct Gunicorn {
    pub child: ChildGuard,
    pub port: u16,
    pub access_log: PathBuf,
}

impl Gunicorn {
    pub fn start(project: &Project, port: u16) -> Gunicorn {
        let bin = venv_python().parent().unwrap().join("gunicorn");
        let access_log = project.path().join(format!("access-{port}.log"));
        let child = Command::new(bin)
            .args(["toyproject.wsgi", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--workers", "2", "--timeout", "30", "--access-logfile"])
            .arg(&access_log)
            .current_dir(project.path())
            .envs(django_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("SERVE_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn gunicorn");
        let g = Gunicorn {
            child: ChildGuard::new(child),
            port,
            access_log,
        };
        assert!(
            wait_for_port(port, Duration::from_secs(30)),
            "gunicorn did not listen on {port}"
        );
        g
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    /// SIGKILL the arbiter and its workers (the process group would be tidier; the workers
    /// die with their parent's pipe).
    pub fn kill(&mut self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let _ = self.child.wait();
    }
}

/// staticd serve with `extra` flags; stderr kept for assertions on the error log.
pub struct Staticd {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Staticd {
    pub fn start(extra: &[&str]) -> Staticd {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("app.css"), "body{}").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_staticd"))
            .args(["serve", "--root"])
            .arg(root.path())
            .args([
                "--static-url",
                "/static/",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--log-format",
                "off",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn staticd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("staticd serve: listening on http://") {
                    let _ = tx.send(a.to_string());
                }
                if std::env::var_os("SERVE_TEST_VERBOSE").is_some() {
                    eprintln!("[staticd] {line}");
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("staticd address")
            .parse()
            .unwrap();
        Staticd {
            child: ChildGuard::new(child),
            addr,
            root,
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (up to 3 s) for `needle` in the error log; returns the log.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let l = self.log();
            if l.contains(needle) || std::time::Instant::now() > deadline {
                return l;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A parsed response with every header line kept.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        let a = self.all(name);
        assert!(a.len() <= 1, "{name} repeated: {a:?}");
        a.first().copied()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request (`Connection: close`), response read to the end. `head_lines` are
/// raw header lines; Host defaults to `testserver`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    head_lines: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !head_lines
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("host"))
    {
        req.push_str("Host: testserver\r\n");
    }
    for (k, v) in head_lines {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf, method == "HEAD").unwrap_or_else(|| {
        panic!(
            "unparsable: {:?}",
            String::from_utf8_lossy(&buf[..buf.len().min(400)])
        )
    })
}

pub fn parse(buf: &[u8], head: bool) -> Option<Resp> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let raw = &buf[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head {
        Vec::new()
    } else if chunked {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&raw[..nl])
                .unwrap_or("0")
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        raw = &raw[nl + 2..];
        out.extend_from_slice(&raw[..size.min(raw.len())]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
    out
}

/// Cookie `name`'s value from the Set-Cookie lines.
pub fn cookie<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.all("set-cookie").into_iter().find_map(|c| {
        c.split(';')
            .next()?
            .trim()
            .strip_prefix(&format!("{name}="))
    })
}

/// A gunicorn + staticd pair on sample_project.
pub struct Stack {
    pub project: Project,
    pub gunicorn: Gunicorn,
    pub staticd: Staticd,
}

impl Stack {
    pub fn start(extra: &[&str]) -> Stack {
        Self::on(Project::new(), extra)
    }

    pub fn on(project: Project, extra: &[&str]) -> Stack {
        let port = free_port();
        let gunicorn = Gunicorn::start(&project, port);
        let up = format!("127.0.0.1:{port}");
        let mut args = vec!["--upstream", up.as_str()];
        args.extend_from_slice(extra);
        let staticd = Staticd::start(&args);
        Stack {
            project,
            gunicorn,
            staticd,
        }
    }
    pub fn get(&self, path: &str) -> Resp {
        request(self.staticd.addr, "GET", path, &[], b"")
    }
}
