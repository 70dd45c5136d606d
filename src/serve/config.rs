//! `staticd serve` command line.

//!
//! The value parsers live here too, with typed errors ([`ValueError`]): the proxy's types
//! (`Addr`, `Mount`) know nothing of how the command line spells them.

use super::log::LogFormat;
use super::path::normalize_prefix;
use super::proxy::files::Mount;
use super::proxy::upstream::{Addr, Balance};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Serve STATIC_ROOT under STATIC_URL: precompressed variants, validators, ranges, live reload.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Django project directory (holding manage.py): STATIC_ROOT and STATIC_URL are
    /// discovered from its settings, as collect does. `--root`/`--static-url` override.
    pub project: Option<PathBuf>,

    /// STATIC_ROOT to serve (required without PROJECT).
    #[arg(long, env = "STATICD_ROOT")]
    pub root: Option<PathBuf>,

    /// URL prefix the files are served under.
    #[arg(long, env = "STATICD_STATIC_URL")]
    pub static_url: Option<String>,

    /// Address to listen on (HTTP/1.1 and h2c).
    #[arg(long, default_value = "127.0.0.1:8080", env = "STATICD_BIND")]
    pub bind: SocketAddr,

    /// Worker threads (one event loop each); default: the number of cores.
    #[arg(long)]
    pub workers: Option<usize>,

    /// `Cache-Control: max-age` for files that are not current fingerprinted names.
    #[arg(long, default_value_t = 60)]
    pub max_age: u64,

    /// `Access-Control-Allow-Origin` value on every file response.
    #[arg(long, default_value = "*")]
    pub cors_origin: String,

    /// Send no `Access-Control-Allow-Origin` header.
    #[arg(long, conflicts_with = "cors_origin")]
    pub no_cors: bool,

    /// Serve no RFC 9842 deltas (dcb/dcz) and send no `Use-As-Dictionary`.
    #[arg(long)]
    pub no_dictionaries: bool,

    /// Access log format, written to stdout.
    #[arg(long, value_enum, default_value_t = LogFormat::Combined)]
    pub log_format: LogFormat,

    /// Manifest file name inside STATIC_ROOT.
    #[arg(long, default_value = crate::manifest::DEFAULT_NAME)]
    pub manifest_name: String,

    /// Files up to this many bytes are answered from memory.
    #[arg(long, default_value = "64k", value_parser = parse_size)]
    pub mem_file_max: u64,

    /// Cap on file bytes held in memory (keeps RSS bounded on big corpora).
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    pub mem_total_max: u64,

    /// Time in-flight requests get to finish on SIGTERM/SIGINT before they are cut
    /// (`10s`, `500ms`; a plain number is seconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Keep-alive timeout for idle client connections (`75s`; a plain number is seconds;
    /// 0 turns keep-alive off).
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub keep_alive: Duration,

    /// Time for a whole request head to arrive (counted from the connection's accept for
    /// its first request, from the first byte for later ones); a client trickling bytes is
    /// cut off (408). `5s`, `500ms`; a plain number is seconds.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub header_timeout: Duration,

    /// Longest pause while a request body arrives (nginx's `client_body_timeout`): 408 and
    /// the connection closed.
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub body_timeout: Duration,

    /// Python interpreter for discovery (with PROJECT).
    #[arg(long)]
    pub python: Option<PathBuf>,

    /// Django settings module for discovery (with PROJECT).
    #[arg(long)]
    pub settings: Option<String>,

    /// Backend for everything outside STATIC_URL: `HOST:PORT` or `unix:/path.sock`
    /// (repeatable: balanced). Without one, those routes answer 404.
    #[arg(long = "upstream", value_name = "ADDR", env = "STATICD_UPSTREAM", value_delimiter = ',', value_parser = parse_upstream)]
    pub upstreams: Vec<Addr>,

    /// Peers (address or CIDR, repeatable) whose X-Forwarded-* headers are believed;
    /// from anyone else they are dropped and replaced.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_network)]
    pub trusted_proxies: Vec<IpNet>,

    /// Largest request body buffered for the upstream (`10M`, `512k`, bytes; 0 = no limit);
    /// over it: 413, nothing sent upstream.
    #[arg(long, default_value = "10M", value_parser = parse_size)]
    pub max_body: u64,

    /// Time allowed to connect to an upstream (`5s`, `500ms`) → 504.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time allowed for the response head, and between two body reads → 504.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// How requests are spread over several upstreams.
    #[arg(long, value_enum, default_value_t = Balance::RoundRobin)]
    pub balance: Balance,

    /// Failed attempts after which an upstream is skipped for --fail-timeout (0 = never).
    #[arg(long, default_value_t = 1)]
    pub max_fails: u32,

    /// How long an upstream that failed is skipped.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub fail_timeout: Duration,

    /// Active health check: GET this path on every upstream each --health-interval.
    #[arg(long, value_name = "PATH")]
    pub health_check: Option<String>,

    /// Interval of the active health check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub health_interval: Duration,

    /// `/PREFIX/=DIR`: files served only through an upstream's X-Accel-Redirect
    /// (nginx `internal;`); direct requests get 404. Repeatable.
    #[arg(long = "internal", value_name = "PREFIX=DIR", value_parser = parse_mount)]
    pub internal: Vec<Mount>,

    /// MEDIA_ROOT: user uploads served under --media-url (ETag, Range, short max-age).
    #[arg(long, env = "STATICD_MEDIA_ROOT")]
    pub media_root: Option<PathBuf>,

    /// URL prefix of --media-root.
    #[arg(long, default_value = "/media/", env = "STATICD_MEDIA_URL")]
    pub media_url: String,

    /// WebSocket/Upgrade tunnels close after this long without traffic either way.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub ws_idle_timeout: Duration,
}

/// A command-line value that cannot be used; each carries the value as given, and the
/// message (clap prints it after the flag's name) says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    /// Not a size (`10M`, `512k`, bytes).
    NotASize(String),
    /// A size beyond 64 bits.
    SizeTooLarge(String),
    /// Not a duration (`5s`, `500ms`, seconds).
    NotADuration(String),
    /// A duration beyond [`MAX_DURATION`].
    DurationTooLong(String),
    /// A timeout of zero.
    ZeroTimeout(String),
    /// `--upstream unix:` without a path.
    EmptySocketPath(String),
    /// `--upstream host:port/path`.
    UpstreamWithPath(String),
    /// `--upstream` neither `HOST:PORT` nor `unix:/path`.
    NotAnUpstream(String),
    /// `--trusted-proxy` neither an address nor a CIDR.
    NotANetwork(String),
    /// `--internal` without `=`.
    NotAMount(String),
    /// `--internal /prefix/=` (no directory).
    EmptyMountDir(String),
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueError::NotASize(s) => write!(f, "{s:?} is not a size (e.g. 10M, 512k, 1048576)"),
            ValueError::SizeTooLarge(s) => {
                write!(f, "{s:?} is too large (at most {} bytes)", u64::MAX)
            }
            ValueError::NotADuration(s) => write!(f, "{s:?} is not a duration (e.g. 5s, 500ms)"),
            ValueError::DurationTooLong(s) => {
                write!(f, "{s:?} is too long a duration (at most 10 years)")
            }
            ValueError::ZeroTimeout(s) => write!(f, "{s:?}: a timeout must be longer than zero"),
            ValueError::EmptySocketPath(s) => write!(f, "{s:?}: empty socket path"),
            ValueError::UpstreamWithPath(s) => write!(
                f,
                "{s:?}: an upstream is HOST:PORT or unix:/path, without a path"
            ),
            ValueError::NotAnUpstream(s) => {
                write!(f, "{s:?}: expected HOST:PORT or unix:/path.sock")
            }
            ValueError::NotANetwork(s) => write!(f, "{s:?} is not an address or CIDR"),
            ValueError::NotAMount(s) => write!(f, "{s:?}: expected /PREFIX/=DIR"),
            ValueError::EmptyMountDir(s) => write!(f, "{s:?}: empty directory"),
        }
    }
}

impl std::error::Error for ValueError {}

/// `--upstream`: `HOST:PORT` (an `http://` in front and a trailing `/` are tolerated) or
/// `unix:/path.sock`. The host is resolved at connect time, so container names work.
pub fn parse_upstream(s: &str) -> Result<Addr, ValueError> {
    let s = s.trim();
    if let Some(p) = s.strip_prefix("unix:") {
        let p = p.trim_start_matches("//");
        if p.is_empty() {
            return Err(ValueError::EmptySocketPath(s.into()));
        }
        return Ok(Addr::Unix(PathBuf::from(p)));
    }
    let hp = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
    if hp.contains('/') {
        return Err(ValueError::UpstreamWithPath(s.into()));
    }
    match hp.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(Addr::Tcp(hp.into())),
        _ => Err(ValueError::NotAnUpstream(s.into())),
    }
}

/// `--trusted-proxy`: a CIDR or a bare address.
pub fn parse_network(s: &str) -> Result<IpNet, ValueError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ValueError::NotANetwork(s.into()))
}

/// `--internal /protected/=DIR`.
pub fn parse_mount(s: &str) -> Result<Mount, ValueError> {
    let (p, d) = s
        .split_once('=')
        .ok_or_else(|| ValueError::NotAMount(s.into()))?;
    if d.is_empty() {
        return Err(ValueError::EmptyMountDir(s.into()));
    }
    Ok(Mount {
        prefix: normalize_prefix(p),
        dir: PathBuf::from(d),
    })
}

/// `10M`, `10MiB`, `512k`, `1G`, or plain bytes. A size that does not fit in 64 bits is an
/// error, never a wrap-around (`99999999999G` would otherwise become a small limit).
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n = num
        .trim()
        .parse::<u64>()
        .map_err(|_| ValueError::NotASize(s.into()))?;
    n.checked_mul(mult)
        .ok_or_else(|| ValueError::SizeTooLarge(s.into()))
}

/// The longest duration any option takes: ten years, far beyond any sensible timeout.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `5s`, `1500ms`, `2m`, or plain seconds (fractions allowed), at most [`MAX_DURATION`]:
/// a deadline computed as `now + duration` must not overflow, and `from_secs_f64` would
/// panic on a value too large for `Duration`.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let t = s.trim();
    let (num, unit) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Duration::try_from_secs_f64(v * unit)
            .ok()
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| ValueError::DurationTooLong(s.into())),
        _ => Err(ValueError::NotADuration(s.into())),
    }
}

/// A [`parse_duration`] that must not be zero (a zero deadline would cut every client off).
pub fn parse_timeout(s: &str) -> Result<Duration, ValueError> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(ValueError::ZeroTimeout(s.into())),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("7").unwrap(), 7);
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("x").is_err());
        assert_eq!(parse_timeout("1s"), Ok(Duration::from_secs(1)));
        assert!(parse_timeout("0").is_err() && parse_timeout("0ms").is_err());
    }

    #[test]
    fn overflowing_sizes_and_durations_are_errors() {
        assert_eq!(
            parse_size("16777216T").map_err(|e| e.to_string()),
            Err("\"16777216T\" is not a size (e.g. 10M, 512k, 1048576)".into())
        );
        let e = parse_size("99999999999G").unwrap_err();
        assert_eq!(e, ValueError::SizeTooLarge("99999999999G".into()));
        assert!(e.to_string().contains("too large"), "{e}");
        assert!(parse_size("18446744073709551616").is_err());
        assert_eq!(parse_size("17179869183G").unwrap(), 17179869183 << 30);
        let e = parse_duration("1e300s").unwrap_err();
        assert_eq!(e, ValueError::DurationTooLong("1e300s".into()));
        assert!(e.to_string().contains("too long"), "{e}");
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("18446744073709551615").is_err());
        assert_eq!(
            parse_duration("3650d"),
            Err(ValueError::NotADuration("3650d".into()))
        );
        assert_eq!(
            parse_timeout("0ms"),
            Err(ValueError::ZeroTimeout("0ms".into()))
        );
    }

    #[test]
    fn upstreams() {
        assert_eq!(parse_upstream("web:8000"), Ok(Addr::Tcp("web:8000".into())));
        assert_eq!(
            parse_upstream(" http://web:8000/ "),
            Ok(Addr::Tcp("web:8000".into()))
        );
        assert_eq!(
            parse_upstream("unix:/run/g.sock"),
            Ok(Addr::Unix("/run/g.sock".into()))
        );
        assert_eq!(
            parse_upstream("web"),
            Err(ValueError::NotAnUpstream("web".into()))
        );
        assert_eq!(
            parse_upstream(":80"),
            Err(ValueError::NotAnUpstream(":80".into()))
        );
        assert_eq!(
            parse_upstream("web:80/x"),
            Err(ValueError::UpstreamWithPath("web:80/x".into()))
        );
        assert_eq!(
            parse_upstream("unix:"),
            Err(ValueError::EmptySocketPath("unix:".into()))
        );
        assert_eq!(
            parse_upstream("web").unwrap_err().to_string(),
            "\"web\": expected HOST:PORT or unix:/path.sock"
        );
    }

    #[test]
    fn networks_and_mounts() {
        assert_eq!(
            parse_network("10.0.0.0/8"),
            Ok("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(parse_network("::1"), Ok("::1/128".parse().unwrap()));
        assert_eq!(
            parse_network("10.0.0.0/33"),
            Err(ValueError::NotANetwork("10.0.0.0/33".into()))
        );
        let m = parse_mount("protected=/srv/files").unwrap();
        assert_eq!(
            (m.prefix.as_str(), m.dir.as_path()),
            ("/protected/", "/srv/files".as_ref())
        );
        assert_eq!(
            parse_mount("/protected/").unwrap_err(),
            ValueError::NotAMount("/protected/".into())
        );
        assert_eq!(
            parse_mount("/p/=").unwrap_err(),
            ValueError::EmptyMountDir("/p/=".into())
        );
    }
}
