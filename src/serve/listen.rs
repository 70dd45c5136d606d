//! Where `staticd serve` listens: the `--bind` addresses, and the sockets systemd hands over
//! (socket activation).
//!
//! `--bind` is repeatable and takes (nginx's `listen` where it has an equivalent):
//! - `IP:PORT`: `127.0.0.1:8080`, `[::1]:8080`. `[::]:PORT` is IPv6 only, as nginx's
//!   `listen [::]:80` (its default `ipv6only=on`), so it can sit next to `0.0.0.0:PORT`.
//! - `:PORT`: every address, IPv4 and IPv6 (two sockets, `0.0.0.0` and `[::]`), as Caddy's
//!   `:8080`. A host without IPv6 gets the IPv4 one and a warning.
//! - `HOST:PORT`: a name, resolved once at start; every address it has is bound (nginx
//!   does the same). An address the host cannot bind (`::1` without IPv6) is skipped with a
//!   warning while another one of the name's is bound; none bound is an error.
//! - `unix:/path`: a Unix socket. A socket file left by a process that is gone (nothing
//!   accepts on it) is replaced; one something still accepts on is an error, as is a path
//!   that is not a socket. The file gets the process's umask; it is removed at exit if it is
//!   still the one bound here.
//!
//! Socket activation (sd_listen_fds(3)): when `LISTEN_PID` is this process and
//! `LISTEN_FDS` counts descriptors from 3 on, those listening sockets (TCP or Unix) are the
//! listeners and `--bind` is not used: systemd keeps them open across a restart, so a
//! client connecting meanwhile waits in the backlog instead of being refused.
//! `LISTEN_FDNAMES` names them in the log. The variables are removed from the environment
//! once read (nothing staticd starts, such as Python for discovery, inherits them), and
//! the descriptors are made close-on-exec.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The listen backlog, as actix-web's own binding (std's is 128): bursts of new
/// connections queue instead of being refused.
const BACKLOG: i32 = 1024;

/// systemd passes its sockets from this descriptor on (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// One `--bind` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// An IP address and port.
    Addr(SocketAddr),
    /// `:PORT`: every address, IPv4 and IPv6.
    Port(u16),
    /// A host name and port, resolved at start.
    Host(String, u16),
    /// `unix:/path`.
    Unix(PathBuf),
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Addr(a) => write!(f, "{a}"),
            Bind::Port(p) => write!(f, ":{p}"),
            Bind::Host(h, p) => write!(f, "{h}:{p}"),
            Bind::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A `--bind` value that cannot be used; each carries the value as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// Not one of the forms.
    NotABind(String),
    /// `unix:` without a path.
    EmptySocketPath(String),
    /// An IPv6 address without brackets (`::1:80`: where does the port start?).
    BareIpv6(String),
    /// A port that is not a number from 0 to 65535.
    BadPort(String),
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::NotABind(s) => write!(
                f,
                "{s:?}: expected HOST:PORT, :PORT, [IPv6]:PORT or unix:/path"
            ),
            BindError::EmptySocketPath(s) => write!(f, "{s:?}: empty socket path"),
            BindError::BareIpv6(s) => write!(
                f,
                "{s:?}: an IPv6 address goes in brackets, e.g. [::1]:8080"
            ),
            BindError::BadPort(s) => write!(f, "{s:?}: the port must be a number from 0 to 65535"),
        }
    }
}

impl std::error::Error for BindError {}

/// Parses one `--bind` value.
pub fn parse_bind(s: &str) -> Result<Bind, BindError> {
    let t = s.trim();
    if let Some(p) = t.strip_prefix("unix:") {
        let p = p.trim_start_matches("//");
        if p.is_empty() {
            return Err(BindError::EmptySocketPath(s.into()));
        }
        return Ok(Bind::Unix(PathBuf::from(p)));
    }
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(Bind::Addr(a));
    }
    let Some((host, port)) = t.rsplit_once(':') else {
        return Err(BindError::NotABind(s.into()));
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| BindError::BadPort(s.into()))?;
    if host.is_empty() {
        return Ok(Bind::Port(port));
    }
    if host.parse::<Ipv6Addr>().is_ok() {
        return Err(BindError::BareIpv6(s.into()));
    }
    let name_ok = host
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !name_ok {
        return Err(BindError::NotABind(s.into()));
    }
    Ok(Bind::Host(host.to_ascii_lowercase(), port))
}

/// Why listening failed; each names what it was trying.
#[derive(Debug)]
pub enum ListenError {
    /// `bind`/`listen` on an address failed.
    Bind { what: String, error: io::Error },
    /// A host name that does not resolve.
    Resolve { what: String, error: io::Error },
    /// A Unix socket path something still accepts on.
    InUse(PathBuf),
    /// A Unix socket path that is some other file.
    NotASocket(PathBuf),
    /// `LISTEN_*` variables that make no sense.
    Activation(String),
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenError::Bind { what, error } => write!(f, "cannot listen on {what}: {error}"),
            ListenError::Resolve { what, error } => write!(f, "cannot resolve {what}: {error}"),
            ListenError::InUse(p) => write!(
                f,
                "cannot listen on unix:{}: another process accepts connections on it",
                p.display()
            ),
            ListenError::NotASocket(p) => write!(
                f,
                "cannot listen on unix:{}: the path exists and is not a socket",
                p.display()
            ),
            ListenError::Activation(m) => write!(f, "socket activation: {m}"),
        }
    }
}

impl std::error::Error for ListenError {}

/// A listening socket.
#[derive(Debug)]
pub enum Socket {
    Tcp(std::net::TcpListener),
    Unix(UnixListener),
}

/// A listening socket and how it is reported.
#[derive(Debug)]
pub struct Listener {
    pub socket: Socket,
    /// systemd's name for it (`LISTEN_FDNAMES`), for an inherited socket.
    pub fd_name: Option<String>,
    /// The socket file bound here (device and inode): removed at exit if still there.
    made: Option<(PathBuf, u64, u64)>,
}

impl Listener {
    /// The TCP address, `None` for a Unix socket.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            Socket::Tcp(l) => l.local_addr().ok(),
            Socket::Unix(_) => None,
        }
    }

    /// What it listens on, as printed at start: `http://127.0.0.1:8080`, `unix:/path`.
    pub fn url(&self) -> String {
        match &self.socket {
            Socket::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}"),
                Err(_) => "http://?".into(),
            },
            Socket::Unix(l) => match l.local_addr() {
                Ok(a) => match a.as_pathname() {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix:(unnamed)".into(),
                },
                Err(_) => "unix:?".into(),
            },
        }
    }

    /// The socket file this process made for it, to remove at exit (the socket itself is
    /// handed to the server, which closes it when it stops accepting).
    pub fn socket_file(&self) -> Option<SocketFile> {
        self.made
            .clone()
            .map(|(path, dev, ino)| SocketFile { path, dev, ino })
    }
}

/// A Unix socket file bound by this process.
#[derive(Debug, Clone)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Removes the file, unless another process has replaced it since.
    pub fn remove(&self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether an address the host cannot have explains the failure (no IPv6, an address of
/// another machine): for `:PORT` and host names such an address is skipped.
fn unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT)
    )
}

/// Binds every `--bind` value, in order.
pub fn bind_all(binds: &[Bind]) -> Result<Vec<Listener>, ListenError> {
    let mut out = Vec::new();
    for b in binds {
        match b {
            Bind::Addr(a) => out.push(bind_tcp(*a, &b.to_string())?),
            Bind::Port(p) => {
                out.push(bind_tcp(
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *p),
                    &b.to_string(),
                )?);
                let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *p);
                match bind_tcp(v6, &b.to_string()) {
                    Ok(l) => out.push(l),
                    Err(ListenError::Bind { error, .. }) if unavailable(&error) => {
                        tracing::warn!("--bind {b}: no IPv6 here ({error}); IPv4 only")
                    }
                    Err(e) => return Err(e),
                }
            }
            Bind::Host(h, p) => {
                let what = b.to_string();
                let mut addrs: Vec<SocketAddr> = (h.as_str(), *p)
                    .to_socket_addrs()
                    .map_err(|error| ListenError::Resolve {
                        what: what.clone(),
                        error,
                    })?
                    .collect();
                addrs.sort();
                addrs.dedup();
                let mut bound = 0;
                let mut skipped = None;
                for a in addrs {
                    match bind_tcp(a, &format!("{a} ({what})")) {
                        Ok(l) => {
                            out.push(l);
                            bound += 1;
                        }
                        Err(ListenError::Bind { error, what }) if unavailable(&error) => {
                            tracing::warn!("--bind {b}: skipping {what}: {error}");
                            skipped = Some(ListenError::Bind { error, what });
                        }
                        Err(e) => return Err(e),
                    }
                }
                if bound == 0 {
                    return Err(skipped.unwrap_or(ListenError::Resolve {
                        what,
                        error: io::Error::new(io::ErrorKind::NotFound, "no address"),
                    }));
                }
            }
            Bind::Unix(p) => out.push(bind_unix(p)?),
        }
    }
    Ok(out)
}

/// The HTTPS listener (`--https-bind`): one TCP address, bound as `--bind`'s are.
pub fn bind_https(addr: SocketAddr) -> Result<std::net::TcpListener, ListenError> {
    match bind_tcp(addr, &format!("--https-bind {addr}"))?.socket {
        Socket::Tcp(t) => Ok(t),
        Socket::Unix(_) => unreachable!("bind_tcp binds TCP"),
    }
}

fn bind_tcp(addr: SocketAddr, what: &str) -> Result<Listener, ListenError> {
    use socket2::{Domain, Protocol, Socket as S, Type};
    let err = |error| ListenError::Bind {
        what: what.to_string(),
        error,
    };
    let s = S::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(err)?;
    }
    s.set_reuse_address(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    s.listen(BACKLOG).map_err(err)?;
    Ok(Listener {
        socket: Socket::Tcp(s.into()),
        fd_name: None,
        made: None,
    })
}

fn bind_unix(path: &Path) -> Result<Listener, ListenError> {
    let what = format!("unix:{}", path.display());
    let err = |error| ListenError::Bind {
        what: what.clone(),
        error,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => return Err(ListenError::InUse(path.into())),
            // Left by a process that is gone: nobody accepts on it.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(err)?
            }
            Err(e) => return Err(err(e)),
        },
        Ok(_) => return Err(ListenError::NotASocket(path.into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let l = UnixListener::bind(path).map_err(err)?;
    // SAFETY: a valid, bound and listening socket; `listen` again only resizes the queue.
    unsafe { libc::listen(l.as_raw_fd(), BACKLOG) };
    let made = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (path.to_path_buf(), m.dev(), m.ino()));
    Ok(Listener {
        socket: Socket::Unix(l),
        fd_name: None,
        made,
    })
}

/// The descriptors of sd_listen_fds(3) from the values of `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES`, each with its name: none when the variables are absent or meant for
/// another process (`LISTEN_PID` not `pid`).
pub fn activation_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    names: Option<&str>,
    pid: u32,
) -> Result<Vec<(RawFd, Option<String>)>, ListenError> {
    let Some(listen_pid) = listen_pid else {
        return Ok(Vec::new());
    };
    let for_pid: u32 = listen_pid.trim().parse().map_err(|_| {
        ListenError::Activation(format!("LISTEN_PID={listen_pid:?} is not a process id"))
    })?;
    if for_pid != pid {
        return Ok(Vec::new());
    }
    let n: RawFd = match listen_fds {
        None => return Ok(Vec::new()),
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| (0..=4096).contains(n))
            .ok_or_else(|| {
                ListenError::Activation(format!("LISTEN_FDS={v:?} is not a descriptor count"))
            })?,
    };
    let names: Vec<Option<String>> = match names {
        None => vec![None; n as usize],
        Some(v) => {
            let list: Vec<Option<String>> = v
                .split(':')
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect();
            if list.len() != n as usize {
                return Err(ListenError::Activation(format!(
                    "LISTEN_FDNAMES={v:?} names {} descriptors, LISTEN_FDS={n}",
                    list.len()
                )));
            }
            list
        }
    };
    Ok((LISTEN_FDS_START..LISTEN_FDS_START + n)
        .zip(names)
        .collect())
}

/// The sockets systemd passed to this process (none without socket activation), taken
/// over: the variables are removed, the descriptors made close-on-exec. Call it while the
/// process has one thread (removing variables races with other threads reading them).
pub fn take_activation() -> Result<Vec<Listener>, ListenError> {
    let var = |k| std::env::var(k).ok();
    let fds = activation_fds(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )?;
    if fds.is_empty() {
        return Ok(Vec::new());
    }
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    fds.into_iter()
        .map(|(fd, name)| inherit(fd, name))
        .collect()
}

/// Takes over descriptor `fd`, which must be a listening stream socket, TCP or Unix.
fn inherit(fd: RawFd, fd_name: Option<String>) -> Result<Listener, ListenError> {
    let bad = |why: &str| {
        ListenError::Activation(format!(
            "descriptor {fd}{}: {why}",
            fd_name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ))
    };
    let int_opt = |level, name| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of their sizes.
        let r = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    match int_opt(libc::SOL_SOCKET, libc::SO_TYPE) {
        None => return Err(bad("not a socket")),
        Some(t) if t != libc::SOCK_STREAM => return Err(bad("not a stream socket")),
        Some(_) => {}
    }
    if int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) != Some(1) {
        return Err(bad("not listening"));
    }
    let family = int_opt(libc::SOL_SOCKET, libc::SO_DOMAIN).unwrap_or(-1);
    // SAFETY: fcntl on a descriptor checked above; only FD_CLOEXEC changes.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: systemd passed this descriptor to this process; nothing else owns it.
    let socket = match family {
        libc::AF_INET | libc::AF_INET6 => {
            Socket::Tcp(unsafe { std::net::TcpListener::from_raw_fd(fd) })
        }
        libc::AF_UNIX => Socket::Unix(unsafe { UnixListener::from_raw_fd(fd) }),
        _ => return Err(bad("neither TCP nor a Unix socket")),
    };
    Ok(Listener {
        socket,
        fd_name,
        made: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_forms() {
        let ok = |s: &str| parse_bind(s).unwrap();
        assert_eq!(
            ok("127.0.0.1:8080"),
            Bind::Addr("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(ok("[::]:80"), Bind::Addr("[::]:80".parse().unwrap()));
        assert_eq!(ok("[::1]:0"), Bind::Addr("[::1]:0".parse().unwrap()));
        assert_eq!(ok(":8080"), Bind::Port(8080));
        assert_eq!(ok("localhost:8080"), Bind::Host("localhost".into(), 8080));
        assert_eq!(
            ok("Web-1.example:80"),
            Bind::Host("web-1.example".into(), 80)
        );
        assert_eq!(
            ok("unix:/run/staticd.sock"),
            Bind::Unix("/run/staticd.sock".into())
        );
        assert_eq!(ok("unix:///run/s.sock"), Bind::Unix("/run/s.sock".into()));
        assert_eq!(ok("unix:rel.sock"), Bind::Unix("rel.sock".into()));
        for s in [
            "127.0.0.1:8080",
            "[::]:80",
            ":8080",
            "localhost:8080",
            "unix:/run/s.sock",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
    }

    #[test]
    fn bad_binds() {
        let err = |s: &str| parse_bind(s).unwrap_err();
        assert_eq!(err("8080"), BindError::NotABind("8080".into()));
        assert_eq!(err("localhost"), BindError::NotABind("localhost".into()));
        assert_eq!(err(":http"), BindError::BadPort(":http".into()));
        assert_eq!(err("h:65536"), BindError::BadPort("h:65536".into()));
        assert_eq!(err("::1:80"), BindError::BareIpv6("::1:80".into()));
        assert_eq!(err("unix:"), BindError::EmptySocketPath("unix:".into()));
        assert_eq!(err("a_b:80"), BindError::NotABind("a_b:80".into()));
        assert_eq!(err("a..b:80"), BindError::NotABind("a..b:80".into()));
        assert_eq!(
            err("http://h:80"),
            BindError::NotABind("http://h:80".into())
        );
        assert_eq!(
            err("8080").to_string(),
            "\"8080\": expected HOST:PORT, :PORT, [IPv6]:PORT or unix:/path"
        );
    }

    #[test]
    fn activation_variables() {
        let f = |pid, fds, names| activation_fds(pid, fds, names, 42);
        assert!(
            f(None, Some("2"), None).unwrap().is_empty(),
            "no LISTEN_PID"
        );
        assert!(
            f(Some("41"), Some("2"), None).unwrap().is_empty(),
            "another process's"
        );
        assert!(f(Some("42"), None, None).unwrap().is_empty());
        assert_eq!(
            f(Some("42"), Some("2"), None).unwrap(),
            [(3, None), (4, None)]
        );
        assert_eq!(
            f(Some("42"), Some("2"), Some("web:")).unwrap(),
            [(3, Some("web".into())), (4, None)]
        );
        assert_eq!(f(Some("42"), Some("0"), None).unwrap(), []);
        for (pid, fds, names, msg) in [
            ("x", "1", None, "LISTEN_PID=\"x\" is not a process id"),
            (
                "42",
                "-1",
                None,
                "LISTEN_FDS=\"-1\" is not a descriptor count",
            ),
            (
                "42",
                "two",
                None,
                "LISTEN_FDS=\"two\" is not a descriptor count",
            ),
            (
                "42",
                "2",
                Some("a"),
                "LISTEN_FDNAMES=\"a\" names 1 descriptors, LISTEN_FDS=2",
            ),
        ] {
            let e = f(Some(pid), Some(fds), names).unwrap_err().to_string();
            assert_eq!(e, format!("socket activation: {msg}"));
        }
    }

    #[test]
    fn tcp_unix_and_inherited_listeners() {
        let l = bind_all(&[Bind::Addr("127.0.0.1:0".parse().unwrap())]).unwrap();
        assert_eq!(l.len(), 1);
        let a = l[0].local_addr().unwrap();
        assert!(a.ip().is_loopback() && a.port() != 0);
        assert_eq!(l[0].url(), format!("http://{a}"));
        // Taking over a descriptor: a listening socket is accepted, anything else refused.
        let dup = |fd: RawFd| unsafe { libc::dup(fd) };
        let Socket::Tcp(t) = &l[0].socket else {
            panic!()
        };
        let inherited = inherit(dup(t.as_raw_fd()), Some("web".into())).unwrap();
        assert_eq!(inherited.local_addr(), Some(a));
        assert_eq!(inherited.fd_name.as_deref(), Some("web"));
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = inherit(dup(file.as_raw_fd()), None)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(": not a socket"), "{e}");
        let c = std::net::TcpStream::connect(a).unwrap();
        let e = inherit(dup(c.as_raw_fd()), None).unwrap_err().to_string();
        assert!(e.ends_with(": not listening"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let u = bind_all(&[Bind::Unix(path.clone())]).unwrap().remove(0);
        assert_eq!(u.url(), format!("unix:{}", path.display()));
        assert!(matches!(bind_unix(&path), Err(ListenError::InUse(_))));
        // A file left by a process that is gone is replaced.
        drop(u);
        assert!(path.exists());
        let u = bind_unix(&path).unwrap();
        u.socket_file().unwrap().remove();
        assert!(!path.exists());
        std::fs::write(&path, "x").unwrap();
        assert!(matches!(bind_unix(&path), Err(ListenError::NotASocket(_))));
    }
}
