//! Issue 14, point 3: listeners. `--bind` repeatable in every form (`IP:PORT`, `:PORT`,
//! `[::]:PORT`, a host name, `unix:/path`), a Unix-socket peer as the access log and
//! X-Forwarded-For see it, and systemd socket activation (an inherited listening socket at
//! descriptor 3), across a restart that loses no connection.

use crate::common::http::{self, Expect};
use crate::common::staticd::{socket_activation, Staticd, WAIT};
use crate::common::wait_until;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;

fn root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.css"), "body{}").unwrap();
    dir
}

/// `staticd serve --root ROOT` with these flags (and no listener but theirs) as `c` runs
/// it: the binary itself, or a shell that `exec`s it.
fn serve_command(mut c: Command, root: &Path, args: &[&str]) -> Command {
    c.arg("serve")
        .arg("--root")
        .arg(root)
        .args(["--static-url", "/static/", "--workers", "1"])
        .args(["--log-format", "json"])
        .args(args);
    c
}

fn serve(root: &Path, args: &[&str]) -> Staticd {
    let c = Command::new(env!("CARGO_BIN_EXE_staticd"));
    Staticd::start(serve_command(c, root, args))
}

fn addr(url: &str) -> SocketAddr {
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not TCP"))
        .parse()
        .unwrap()
}

fn get_css(a: SocketAddr) {
    let r = http::get(a, "/static/app.css", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"body{}"[..]),
        "via {a}"
    );
}

#[test]
fn every_tcp_form() {
    let root = root();
    // IP:PORT, twice (repeatable), and a host name: every address it resolves to.
    let names: Vec<SocketAddr> = ("localhost", 0).to_socket_addrs().unwrap().collect();
    let s = serve(
        root.path(),
        &[
            "--bind",
            "127.0.0.1:0",
            "--bind",
            "127.0.0.1:0",
            "--bind",
            "localhost:0",
        ],
    );
    let urls = s.listening(2 + names.len());
    let addrs: Vec<SocketAddr> = urls.iter().map(|u| addr(u)).collect();
    assert!(addrs[..2].iter().all(|a| a.ip().to_string() == "127.0.0.1"));
    assert_ne!(addrs[0].port(), addrs[1].port());
    let mut resolved: Vec<_> = addrs[2..].iter().map(|a| a.ip()).collect();
    let mut want: Vec<_> = names.iter().map(|a| a.ip()).collect();
    resolved.sort();
    want.sort();
    want.dedup();
    assert_eq!(resolved, want, "{urls:?}");
    for a in addrs {
        get_css(a);
    }
    drop(s);

    // `:PORT` is every address: IPv4 and IPv6 apart; `[::]:PORT` is IPv6 only (as nginx's
    // `listen [::]:80`), so `0.0.0.0:PORT` can sit next to it.
    let s = serve(root.path(), &["--bind", ":0", "--bind", "[::]:0"]);
    let urls = s.listening(3);
    let (v4, v6, v6_only) = (addr(&urls[0]), addr(&urls[1]), addr(&urls[2]));
    assert_eq!(v4.ip().to_string(), "0.0.0.0", "{urls:?}");
    assert_eq!(
        (v6.ip().to_string(), v6_only.ip().to_string()),
        ("::".into(), "::".into())
    );
    get_css(SocketAddr::from(([127, 0, 0, 1], v4.port())));
    get_css(SocketAddr::new("::1".parse().unwrap(), v6.port()));
    get_css(SocketAddr::new("::1".parse().unwrap(), v6_only.port()));
    assert!(
        TcpStream::connect(("127.0.0.1", v6_only.port())).is_err(),
        "[::]:PORT took IPv4 too"
    );
}

/// A minimal upstream that answers each request with the X-Forwarded-For it received.
fn echo_xff() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut xff = "-".to_string();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("x-forwarded-for:") {
                    xff = v.trim().to_string();
                }
            }
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xff}",
                xff.len()
            );
        }
    });
    a
}

/// `unix:/path`: a raw request over the socket; the access log's remote is `unix:`;
/// X-Forwarded-For gets nothing appended for such a peer, and what it sends is kept only
/// with `--trusted-proxy unix:`. The socket file is removed at exit.
#[test]
fn unix_socket_listener() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("staticd.sock");
    let bind = format!("unix:{}", sock.display());
    let up = echo_xff().to_string();
    let mut s = serve(
        root.path(),
        &["--bind", &bind, "--bind", "127.0.0.1:0", "--upstream", &up],
    );
    let urls = s.listening(2);
    assert_eq!(urls[0], bind);
    let r = http::unix_get(&sock, "/static/app.css", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}"[..]));
    let log = s.wait_status("/static/app.css", 200);
    assert_eq!(log["remote"], "unix:");

    let r = http::unix_get(&sock, "/page", &[("X-Forwarded-For", "1.2.3.4")]);
    assert_eq!(
        r.text(),
        "-",
        "an untrusted unix peer's X-Forwarded-For is dropped"
    );
    // Over TCP the peer's address is appended, as before.
    let r = http::get(addr(&urls[1]), "/page", &[]);
    assert_eq!(r.text(), "127.0.0.1");
    assert!(s.stop().success());
    assert!(!sock.exists(), "the socket file outlived the server");

    // Trusted: the front proxy's X-Forwarded-For reaches the upstream.
    let s = serve(
        root.path(),
        &[
            "--bind",
            &bind,
            "--upstream",
            &up,
            "--trusted-proxy",
            "unix:",
        ],
    );
    let r = http::unix_get(&sock, "/page", &[("X-Forwarded-For", "1.2.3.4")]);
    assert_eq!(r.text(), "1.2.3.4");
    drop(s);

    // A stale socket file (its server killed) is replaced; a live one is refused.
    assert!(sock.exists(), "a killed server leaves its file");
    let s = serve(root.path(), &["--bind", &bind]);
    assert_eq!(http::unix_get(&sock, "/static/app.css", &[]).status, 200);
    let c = Command::new(env!("CARGO_BIN_EXE_staticd"));
    let o = serve_command(c, root.path(), &["--bind", &bind])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "cannot listen on {bind}: another process accepts connections on it"
        )),
        "{e}"
    );
    drop(s);
}

/// `staticd serve` on `listener`, passed by socket activation, with a `--bind` that is then
/// not used.
fn activated(root: &Path, listener: &TcpListener) -> Staticd {
    let c = socket_activation(listener.as_raw_fd(), "LISTEN_FDNAMES=web");
    Staticd::start(serve_command(c, root, &["--bind", "127.0.0.1:1"]))
}

/// Socket activation, and a restart meanwhile: a client that connects while no server
/// runs waits in the backlog of the socket systemd (here, the test) keeps, and is answered
/// by the next server.
#[test]
fn socket_activation_survives_a_restart() {
    let root = root();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let mut s = activated(root.path(), &l);
    assert_eq!(s.listening(1), [format!("http://{a}")]);
    assert_eq!(s.addr, a);
    s.stderr.wait("the socket's name from LISTEN_FDNAMES", |l| {
        l.ends_with(&format!("http://{a}: socket \"web\" from systemd"))
    });
    get_css(a);
    assert!(s.stop().success());

    // No server now: the connection is queued, not refused.
    let mut waiting = TcpStream::connect(a).expect("the kept socket accepts into its backlog");
    waiting.set_read_timeout(Some(WAIT)).unwrap();
    waiting
        .write_all(&http::request_bytes("GET", "/static/app.css", &[], b""))
        .unwrap();
    let s = activated(root.path(), &l);
    let mut all = Vec::new();
    waiting.read_to_end(&mut all).unwrap();
    let (r, _) = http::parse(&all, Expect::default(), true)
        .unwrap()
        .expect("a response for the queued client");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"body{}"[..]));
    wait_until("the new server to log it", WAIT, || {
        s.stdout
            .snapshot()
            .iter()
            .any(|l| l.contains("/static/app.css"))
            .then_some(())
    });
}

/// A descriptor that is not a listening socket is refused, naming it.
#[test]
fn socket_activation_refuses_what_is_not_listening() {
    let root = root();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let cmd = socket_activation(c.as_raw_fd(), "");
    let mut cmd = serve_command(cmd, root.path(), &[]);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("error: socket activation: descriptor 3: not listening"),
        "{e}"
    );
}
