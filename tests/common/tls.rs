//! TLS test kit: a throwaway CA ([`TestCa`]), a minimal server around staticd's TLS and ACME
//! library ([`TlsServer`]: the handshake through `staticd::tls::TlsAcceptor`, a one-line
//! HTTP/1.1 answer saying what was negotiated, and a plain-HTTP port answering ACME HTTP-01
//! from `Http01Tokens`), and the independent clients that check it: `openssl s_client`
//! ([`s_client`]) and `curl` ([`curl`]).
//!
//! The server is the library as staticd's listeners will use it (phase 2 of issue 13 wires
//! the same calls into `serve`); the HTTP it speaks is just enough for the clients.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use staticd::tls::accept::{Accepted, Protocol};
use staticd::tls::{Http01Tokens, SniResolver, TlsAcceptor, TlsAlpnChallenges};
use std::io::{Read, Write};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority for tests: trusted by nothing but the clients told to.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key`.
    pub fn write(&self, dir: &Path, stem: &str) -> staticd::tls::CertPair {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        staticd::tls::CertPair { cert, key }
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate (for `--cacert`/`-CAfile`) into `dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let p = dir.join("test-ca.pem");
        std::fs::write(&p, &self.cert_pem).unwrap();
        p
    }

    /// A leaf for `names` (DNS names, or IP addresses), valid 2020–2090.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .collect();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2090, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What the server saw, for the tests to check.
pub fn answer_body(protocol: Protocol, sni: Option<&str>) -> String {
    let proto = match protocol {
        Protocol::H2 => "h2",
        Protocol::Http1 => "http/1.1",
        Protocol::AcmeTls => "acme-tls/1",
    };
    format!("proto={proto} sni={}\n", sni.unwrap_or("-"))
}

/// A TLS listener (and a plain-HTTP one for HTTP-01) on 127.0.0.1 running staticd's TLS
/// library on a tokio runtime of its own thread. Stops when dropped.
pub struct TlsServer {
    pub tls_port: u16,
    pub http_port: u16,
    pub resolver: Arc<SniResolver>,
    pub http01: Arc<Http01Tokens>,
    runtime: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    /// Binds both listeners (ports chosen by the kernel) and starts serving with a
    /// `ServerConfig` from `staticd::tls::config` (offering `acme-tls/1` if `acme_tls`).
    pub fn start(acme_tls: bool) -> TlsServer {
        let resolver = SniResolver::new(TlsAlpnChallenges::new());
        let http01 = Http01Tokens::new();
        let config = staticd::tls::config::server_config(
            resolver.clone(),
            staticd::tls::config::Options {
                acme_tls_alpn: acme_tls,
            },
        )
        .unwrap();
        let acceptor = TlsAcceptor::new(config);
        let tls = StdListener::bind("127.0.0.1:0").unwrap();
        let http = StdListener::bind("127.0.0.1:0").unwrap();
        let (tls_port, http_port) = (
            tls.local_addr().unwrap().port(),
            http.local_addr().unwrap().port(),
        );
        tls.set_nonblocking(true).unwrap();
        http.set_nonblocking(true).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (rt_tx, rt_rx) = std::sync::mpsc::channel();
        let tokens = http01.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt_tx.send(rt.handle().clone()).unwrap();
            rt.block_on(async move {
                let tls = tokio::net::TcpListener::from_std(tls).unwrap();
                let http = tokio::net::TcpListener::from_std(http).unwrap();
                let serve = async {
                    loop {
                        tokio::select! {
                            Ok((tcp, _)) = tls.accept() => {
                                tokio::spawn(serve_tls(acceptor.clone(), tcp));
                            }
                            Ok((tcp, _)) = http.accept() => {
                                tokio::spawn(serve_http01(tokens.clone(), tcp));
                            }
                        }
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        TlsServer {
            tls_port,
            http_port,
            resolver,
            http01,
            runtime: rt_rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The server's runtime, for `Acme::start` (which spawns its tasks on the current one).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a request head (up to the blank line) and answers `200` with [`answer_body`],
/// `Connection: close`. h2 connections are closed at once: the tests only check that h2 was
/// negotiated.
async fn serve_tls(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream) {
    let Ok(Accepted::Http {
        mut stream,
        protocol,
        sni,
    }) = acceptor.accept(tcp).await
    else {
        return;
    };
    if protocol == Protocol::H2 {
        let _ = stream.shutdown().await;
        return;
    }
    if read_head(&mut stream).await.is_none() {
        return;
    }
    let body = answer_body(protocol, sni.as_deref());
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// HTTP-01: `GET /.well-known/acme-challenge/<token>` → the key authorization, else 404.
async fn serve_http01(tokens: Arc<Http01Tokens>, mut tcp: tokio::net::TcpStream) {
    let Some(head) = read_head(&mut tcp).await else {
        return;
    };
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("");
    let reply = match tokens.answer(path) {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    let _ = tcp.write_all(reply.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Runs a command with `input` on stdin; fails the test if it has not exited in 30 s.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let ereader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: ereader.join().unwrap(),
    }
}

/// What `openssl s_client` reported about one connection.
#[derive(Debug)]
pub struct SClient {
    pub ok: bool,
    /// stdout and stderr together.
    pub text: String,
}

impl SClient {
    /// The negotiated protocol version (`TLSv1.3`, …), if the handshake completed.
    pub fn protocol(&self) -> Option<String> {
        self.field("Protocol")
    }

    /// The ALPN protocol the server chose (`None`: none).
    pub fn alpn(&self) -> Option<String> {
        self.text
            .lines()
            .find_map(|l| l.trim().strip_prefix("ALPN protocol: "))
            .map(str::to_string)
    }

    pub fn reused(&self) -> bool {
        self.text.lines().any(|l| l.starts_with("Reused, "))
    }

    /// `Verify return code: 0 (ok)`.
    pub fn verified(&self) -> bool {
        self.text.contains("Verify return code: 0 (ok)")
    }

    /// `Key: value` lines of the SSL-Session block and the summary.
    fn field(&self, key: &str) -> Option<String> {
        self.text.lines().find_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// The server's leaf certificate as PEM (s_client prints it).
    pub fn leaf_pem(&self) -> Option<String> {
        let start = self.text.find("-----BEGIN CERTIFICATE-----")?;
        let end = self.text[start..].find("-----END CERTIFICATE-----")? + start;
        Some(format!(
            "{}-----END CERTIFICATE-----\n",
            &self.text[start..end]
        ))
    }

    /// The leaf's serial (upper-case hex) and subjectAltName, read by `openssl x509`.
    pub fn leaf(&self) -> Option<(String, String)> {
        let pem = self.leaf_pem()?;
        let out = run_with_input(
            Command::new("openssl").args(["x509", "-noout", "-serial", "-ext", "subjectAltName"]),
            pem.as_bytes(),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let serial = text
            .lines()
            .find_map(|l| l.strip_prefix("serial="))?
            .to_string();
        let san = text
            .lines()
            .skip_while(|l| !l.contains("Subject Alternative Name"))
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_string();
        Some((serial, san))
    }

    pub fn serial(&self) -> Option<String> {
        self.leaf().map(|(s, _)| s)
    }
}

/// The request `s_client` sends after its handshake (the server answers and closes, so
/// s_client sees the session tickets, then exits).
pub const REQUEST: &str = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// `openssl s_client -connect 127.0.0.1:port <args>`, sending [`REQUEST`] and waiting for the
/// server to close (`-ign_eof`).
pub fn s_client(port: u16, args: &[&str]) -> SClient {
    let out = run_with_input(
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-ign_eof",
            ])
            .args(args),
        REQUEST.as_bytes(),
    );
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    SClient {
        ok: out.status.success(),
        text,
    }
}

/// `curl -sS` with `args`; (exit success, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = run_with_input(
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .args(args),
        b"",
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A response as an HTTP client outside staticd's code saw it (curl or nghttp).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `1.1` or `2`.
    pub version: String,
    pub status: u16,
    /// Lower-case names, in order (HTTP/2 pseudo-headers left out).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Fetched {
    /// The single value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut all = self.headers.iter().filter(|(k, _)| k == name);
        let v = all.next().map(|(_, v)| v.as_str());
        assert!(all.next().is_none(), "{name} sent more than once: {self:?}");
        v
    }
}

/// `curl -sS ARGS` keeping the head and the body apart (`-D`, `-o`); the last response's
/// head if it followed redirects. Fails the test if curl fails.
pub fn fetch(args: &[&str]) -> Fetched {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = run_with_input(
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "-D"])
            .arg(&head)
            .arg("-o")
            .arg(&body)
            .args(args),
        b"",
    );
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&head).unwrap();
    // One block per response (redirects, 100 Continue): the last one is the answer.
    let block = text
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or_else(|| panic!("curl {args:?}: no head"));
    let mut lines = block.lines();
    let status_line = lines.next().unwrap();
    let mut words = status_line.split_whitespace();
    let version = words
        .next()
        .unwrap()
        .trim_start_matches("HTTP/")
        .to_string();
    let status = words.next().unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Fetched {
        version,
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// nghttp's binary (`.ci/nghttp2` installs it if missing), once per test process.
pub fn nghttp_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| super::ci_installed("nghttp2", "for the HTTP/2-over-TLS tests"))
        .clone()
}

/// One HTTP/2 request with `nghttp` (nghttp2's own client, an HTTP/2 implementation
/// independent of curl's use of the same library: it speaks h2 only, so it proves what
/// ALPN chose). `data`: a file sent as the body of a POST. nghttp checks no certificate.
pub fn nghttp(url: &str, headers: &[(&str, &str)], data: Option<&Path>) -> Fetched {
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("har.json");
    let mut cmd = Command::new(nghttp_bin());
    cmd.arg("-y").arg(format!("--har={}", har.display()));
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(d) = data {
        cmd.arg("-d").arg(d);
    }
    cmd.arg(url);
    let out = run_with_input(&mut cmd, b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "nghttp {url}: {err}");
    let har: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&har).unwrap_or_else(|e| panic!("nghttp {url}: no HAR ({e}): {err}")),
    )
    .unwrap();
    let response = &har["log"]["entries"][0]["response"];
    let mut status = 0;
    let mut fields = Vec::new();
    for h in response["headers"].as_array().unwrap() {
        let (k, v) = (h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
        match k {
            ":status" => status = v.parse().unwrap(),
            _ if k.starts_with(':') => {}
            _ => fields.push((k.to_string(), v.to_string())),
        }
    }
    assert_eq!(response["httpVersion"], "HTTP/2.0", "{har}");
    Fetched {
        version: "2".into(),
        status,
        headers: fields,
        body: out.stdout,
    }
}

/// A TLS client connection made with rustls, trusting only `ca_pem`, with its handshake
/// done and kept open by the test; and the serial of the certificate it got.
pub fn open_tls(
    ca_pem: &str,
    port: u16,
    name: &str,
    alpn: &[&[u8]],
) -> (
    rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    String,
) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(staticd::tls::certs::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name.to_string().try_into().unwrap())
            .unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    let leaf = &stream.conn.peer_certificates().unwrap()[0];
    let serial = staticd::tls::certs::leaf_info(leaf).unwrap().serial;
    (stream, serial)
}
