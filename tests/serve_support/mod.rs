//! Shared helpers for the `serve_*` black-box tests: fixtures written straight to disk, the
//! real binary on a free port, and a raw HTTP/1.1 client (no path normalisation, exact
//! header lists so duplicates are visible).
#![allow(dead_code)]

use staticd::manifest::Manifest;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A STATIC_ROOT under a temp dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(&root).unwrap();
        Fixture { dir, root }
    }

    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        write_in(&self.root, rel, data)
    }

    /// Writes `rel` plus `.br`, `.gz`, `.zst` siblings compressed from `data`.
    pub fn write_with_variants(&self, rel: &str, data: &[u8]) {
        write_variants(&self.root, rel, data);
    }

    pub fn manifest(&self, pairs: &[(&str, &str)]) {
        write_manifest(&self.root, pairs);
    }
}

pub fn write_in(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    p
}

pub fn write_variants(root: &Path, rel: &str, data: &[u8]) {
    write_in(root, rel, data);
    write_in(root, &format!("{rel}.br"), &br(data));
    write_in(root, &format!("{rel}.gz"), &gz(data));
    write_in(
        root,
        &format!("{rel}.zst"),
        &zstd::encode_all(data, 3).unwrap(),
    );
}

/// Publishes a manifest the way collect does: temp name, then rename over.
pub fn write_manifest(root: &Path, pairs: &[(&str, &str)]) {
    let paths: BTreeMap<String, String> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let tmp = root.join(".staticfiles.json.tmp");
    std::fs::write(&tmp, Manifest::new(paths).to_bytes()).unwrap();
    std::fs::rename(&tmp, root.join("staticfiles.json")).unwrap();
}

pub fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    w.write_all(data).unwrap();
    drop(w);
    out
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn unbr(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn ungz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Compressible text of about `n` bytes.
pub fn text(n: usize, seed: &str) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            ".{seed}-{i} {{ color: #{:06x}; }}\n",
            i * 7919 % 0xffffff
        ));
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

/// Incompressible bytes (deterministic).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The real binary, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    pub fn start(root: &Path, extra: &[&str]) -> Server {
        Self::start_with(root, extra, false)
    }

    /// `capture_stdout` keeps the access log for [`Server::stop_and_stdout`].
    pub fn start_with(root: &Path, extra: &[&str], capture_stdout: bool) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_staticd"));
        cmd.arg("serve")
            .arg("--root")
            .arg(root)
            .args(["--bind", "127.0.0.1:0", "--workers", "2"]);
        if !extra.contains(&"--static-url") {
            cmd.args(["--static-url", "/static/"]);
        }
        if !capture_stdout && !extra.iter().any(|a| a.starts_with("--log-format")) {
            cmd.args(["--log-format", "off"]);
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(if capture_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn staticd");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("staticd serve: listening on http://") {
                    let _ = tx.send(a.to_string());
                }
                if std::env::var_os("SERVE_TEST_VERBOSE").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not report its address")
            .parse()
            .unwrap();
        let stdout = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = out.read_to_string(&mut s);
                s
            })
        });
        Server {
            child,
            addr,
            stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET `path` with extra header lines.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        raw(self.addr, req.as_bytes(), method == "HEAD")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the server to exit on its own, failing the test after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let t0 = std::time::Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(t0.elapsed() < limit, "did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait for exit, return the access log.
    pub fn stop_and_stdout(mut self) -> String {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
        self.stdout
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The single value of `name`; panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} appears {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }

    /// Headers minus `Date` (which may tick between two requests), lowercased and sorted.
    pub fn comparable_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("date"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    }
}

/// Sends `request` as is and reads the response until the server closes.
pub fn raw(addr: SocketAddr, request: &[u8], head: bool) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf, head).unwrap_or_else(|| {
        panic!(
            "unparsable response to {:?}: {:?}",
            String::from_utf8_lossy(&request[..request.len().min(200)]),
            String::from_utf8_lossy(&buf[..buf.len().min(500)])
        )
    })
}

fn parse(buf: &[u8], head: bool) -> Option<Response> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if head {
        assert!(body.is_empty(), "HEAD response carried a body");
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, len)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        if !head && status != 304 {
            let len: usize = len.parse().ok()?;
            assert_eq!(body.len(), len, "Content-Length does not match the body");
        }
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

/// Parses a `multipart/byteranges` body into (Content-Range, bytes) parts.
pub fn multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let d = delim.as_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let at = rest
            .windows(d.len())
            .position(|w| w == d)
            .expect("delimiter");
        rest = &rest[at + d.len()..];
        if rest.starts_with(b"--") {
            assert_eq!(rest, b"--\r\n", "closing delimiter");
            return parts;
        }
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_string();
        rest = &rest[head_end + 4..];
        let next = rest
            .windows(d.len())
            .position(|w| w == d)
            .expect("next delimiter");
        parts.push((cr, rest[..next].to_vec()));
        rest = &rest[next..];
    }
}
