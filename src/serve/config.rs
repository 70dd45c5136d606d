//! `staticd serve` command line.

use super::log::LogFormat;
use std::net::SocketAddr;
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
    pub upstreams: Vec<crate::serve::proxy::upstream::Addr>,

    /// Peers (address or CIDR, repeatable) whose X-Forwarded-* headers are believed;
    /// from anyone else they are dropped and replaced.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = crate::serve::proxy::forward::parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

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
    #[arg(long, value_enum, default_value_t = crate::serve::proxy::upstream::Balance::RoundRobin)]
    pub balance: crate::serve::proxy::upstream::Balance,

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
    #[arg(long = "internal", value_name = "PREFIX=DIR", value_parser = crate::serve::proxy::files::Mount::parse)]
    pub internal: Vec<crate::serve::proxy::files::Mount>,

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

fn parse_upstream(s: &str) -> Result<crate::serve::proxy::upstream::Addr, String> {
    crate::serve::proxy::upstream::Addr::parse(s)
}

/// `10M`, `10MiB`, `512k`, `1G`, or plain bytes. A size that does not fit in 64 bits is an
/// error, never a wrap-around (`99999999999G` would otherwise become a small limit).
pub fn parse_size(s: &str) -> Result<u64, String> {
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
        .map_err(|_| format!("{s:?} is not a size (e.g. 10M, 512k, 1048576)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large (at most {} bytes)", u64::MAX))
}

/// The longest duration any option takes: ten years, far beyond any sensible timeout.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `5s`, `1500ms`, `2m`, or plain seconds (fractions allowed), at most [`MAX_DURATION`]:
/// a deadline computed as `now + duration` must not overflow, and `from_secs_f64` would
/// panic on a value too large for `Duration`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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
            .ok_or_else(|| format!("{s:?} is too long a duration (at most 10 years)")),
        _ => Err(format!("{s:?} is not a duration (e.g. 5s, 500ms)")),
    }
}

/// A [`parse_duration`] that must not be zero (a zero deadline would cut every client off).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: a timeout must be longer than zero")),
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
            parse_size("16777216T"),
            Err("\"16777216T\" is not a size (e.g. 10M, 512k, 1048576)".into())
        );
        let e = parse_size("99999999999G").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        assert!(parse_size("18446744073709551616").is_err());
        assert_eq!(parse_size("17179869183G").unwrap(), 17179869183 << 30);
        let e = parse_duration("1e300s").unwrap_err();
        assert!(e.contains("too long"), "{e}");
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("18446744073709551615").is_err());
        assert_eq!(parse_duration("3650d").map_err(|_| ()), Err(()));
    }
}
