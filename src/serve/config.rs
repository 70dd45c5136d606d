//! `staticd serve`'s options: each one declared once, as a clap field, and found in three
//! places from that declaration (precedence: flag > environment > file > default):
//! - the flag, `--max-age`;
//! - the environment variable, `STATICD_` and the flag's name (`STATICD_MAX_AGE`), set by
//!   [`declare`] for every option that has a file key (a repeatable option's variable takes
//!   a comma-separated list where its flag declares `value_delimiter = ','`, else one value);
//! - the key in `staticd.toml`, from the clap id: `id = "static.max_age"` is `max_age` in
//!   `[static]`; `id = "upstream[].address"` is `address` in each `[[upstream]]` entry (see
//!   `config_file` for the forms).
//!
//! So adding an option costs one field, e.g.
//! `#[arg(id = "proxy.compress", long = "compress", default_value_t = true)] pub compress: bool`
//! (id = section.key, long = the flag), plus its line in the README's table, which a unit
//! test keeps equal to [`key_table`]. An option without a dot in its id (`project`,
//! `config`) is command-line only. `[serve]` holds what only a restart changes (listeners,
//! workers, connection timeouts): a reload logs those as needing a restart; every other
//! section is applied by a reload (SIGHUP).
//!
//! The value parsers live here too, with typed errors ([`ValueError`]): the proxy's types
//! (`Addr`, `Mount`) know nothing of how the command line spells them.

use super::compress::types::Pattern;
use super::listen::{parse_bind, Bind};
use super::log::LogFormat;
use super::path::normalize_prefix;
use super::proxy::files::Mount;
use super::proxy::forward::Trusted;
use super::proxy::upstream::{Addr, Balance};
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The sections of `staticd.toml` whose options need a restart to change (the certificate
/// files themselves are re-read on SIGHUP; `[origin]`'s store and cache are opened once).
pub const RESTART_SECTIONS: &[&str] = &["serve", "tls", "acme", "origin"];

/// Serve STATIC_ROOT under STATIC_URL: precompressed variants, validators, ranges, live reload.
#[derive(clap::Args, Debug, Clone)]
#[command(mut_args = declare)]
pub struct ServeArgs {
    /// Django project directory (holding manage.py or staticd.toml; default: the current
    /// directory): STATIC_ROOT and STATIC_URL are discovered from its settings, as collect
    /// does, unless --root and --static-url give them; its staticd.toml is read.
    pub project: Option<PathBuf>,

    /// The configuration file (default: PROJECT/staticd.toml, if there is one).
    #[arg(long, value_name = "FILE", env = "STATICD_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to listen on (HTTP/1.1 and h2c), repeatable: `HOST:PORT` (a name is
    /// resolved, every address bound), `:PORT` (every address), `[::]:PORT` (IPv6 only),
    /// `unix:/path`. Not used when systemd passes sockets (LISTEN_FDS).
    #[arg(id = "serve.bind", long = "bind", value_name = "ADDR", default_value = "127.0.0.1:8080", value_delimiter = ',', value_parser = parse_bind)]
    pub bind: Vec<Bind>,

    /// Worker threads (one event loop each); default: the number of cores.
    #[arg(id = "serve.workers", long = "workers", value_name = "N")]
    pub workers: Option<usize>,

    /// Time in-flight requests get to finish on SIGTERM/SIGINT before they are cut
    /// (`10s`, `500ms`; a plain number is seconds).
    #[arg(id = "serve.shutdown_timeout", long = "shutdown-timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Keep-alive timeout for idle client connections (`75s`; a plain number is seconds;
    /// 0 turns keep-alive off).
    #[arg(id = "serve.keep_alive", long = "keep-alive", value_name = "DURATION", default_value = "75s", value_parser = parse_duration)]
    pub keep_alive: Duration,

    /// Time for a whole request head to arrive (counted from the connection's accept for
    /// its first request, from the first byte for later ones); a client trickling bytes is
    /// cut off (408). `5s`, `500ms`; a plain number is seconds.
    #[arg(id = "serve.header_timeout", long = "header-timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub header_timeout: Duration,

    /// Longest pause while a request body arrives (nginx's `client_body_timeout`): 408 and
    /// the connection closed.
    #[arg(id = "serve.body_timeout", long = "body-timeout", value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    pub body_timeout: Duration,

    /// Largest request body buffered for the upstream (`10M`, `512k`, bytes; 0 = no limit);
    /// over it: 413, nothing sent upstream.
    #[arg(id = "serve.max_body", long = "max-body", value_name = "SIZE", default_value = "10M", value_parser = parse_size)]
    pub max_body: u64,

    /// Python interpreter for discovery (with PROJECT).
    #[arg(id = "django.python", long = "python", value_name = "PYTHON")]
    pub python: Option<PathBuf>,

    /// Django settings module for discovery (with PROJECT).
    #[arg(id = "django.settings", long = "settings", value_name = "MODULE")]
    pub settings: Option<String>,

    /// STATIC_ROOT to serve (default: discovered from PROJECT).
    #[arg(id = "static.root", long = "root", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// URL prefix the files are served under (default: discovered from PROJECT, else
    /// `/static/`).
    #[arg(id = "static.url", long = "static-url", value_name = "URL")]
    pub static_url: Option<String>,

    /// `Cache-Control: max-age` for files that are not current fingerprinted names (and
    /// for media files).
    #[arg(
        id = "static.max_age",
        long = "max-age",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    pub max_age: u64,

    /// Manifest file name inside STATIC_ROOT.
    #[arg(id = "static.manifest_name", long = "manifest-name", value_name = "NAME", default_value = crate::manifest::DEFAULT_NAME)]
    pub manifest_name: String,

    /// Files up to this many bytes are answered from memory.
    #[arg(id = "static.mem_file_max", long = "mem-file-max", value_name = "SIZE", default_value = "64k", value_parser = parse_size)]
    pub mem_file_max: u64,

    /// Cap on file bytes held in memory (keeps RSS bounded on big corpora).
    #[arg(id = "static.mem_total_max", long = "mem-total-max", value_name = "SIZE", default_value = "16M", value_parser = parse_size)]
    pub mem_total_max: u64,

    /// `Access-Control-Allow-Origin` value on every file response.
    #[arg(
        id = "static.cors_origin",
        long = "cors-origin",
        value_name = "ORIGIN",
        default_value = "*"
    )]
    pub cors_origin: String,

    /// Send no `Access-Control-Allow-Origin` header.
    #[arg(
        id = "static.no_cors",
        long = "no-cors",
        conflicts_with = "static.cors_origin"
    )]
    pub no_cors: bool,

    /// Serve no RFC 9842 deltas (dcb/dcz) and send no `Use-As-Dictionary`.
    #[arg(id = "static.no_dictionaries", long = "no-dictionaries")]
    pub no_dictionaries: bool,

    /// Serve the generation published at `s3://BUCKET/PREFIX` (`staticd publish`) instead
    /// of a STATIC_ROOT: its manifest is polled, objects are fetched on first request into
    /// a bounded disk cache. The store is reached as `staticd publish` reaches it (the AWS
    /// variables, `[publish]` of staticd.toml). No Django project is needed.
    #[arg(id = "origin.url", long = "origin", value_name = "S3_URL", value_parser = crate::remote::Target::parse)]
    pub origin: Option<crate::remote::Target>,

    /// How often --origin's manifest is polled (a conditional GET: unchanged costs a 304).
    #[arg(id = "origin.poll", long = "origin-poll", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    pub origin_poll: Duration,

    /// --origin's disk cache (default: $XDG_CACHE_HOME/staticd/origin or
    /// ~/.cache/staticd/origin). One per server: the bound is per process.
    #[arg(id = "origin.cache_dir", long = "origin-cache-dir", value_name = "DIR")]
    pub origin_cache_dir: Option<PathBuf>,

    /// Bound of --origin's disk cache; the least recently used objects are evicted.
    #[arg(id = "origin.cache_max", long = "origin-cache-max", value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub origin_cache_max: u64,

    /// MEDIA_ROOT: user uploads served under --media-url (ETag, Range, short max-age).
    #[arg(id = "media.root", long = "media-root", value_name = "DIR")]
    pub media_root: Option<PathBuf>,

    /// URL prefix of --media-root.
    #[arg(
        id = "media.url",
        long = "media-url",
        value_name = "URL",
        default_value = "/media/"
    )]
    pub media_url: String,

    /// Backend for everything outside STATIC_URL: `HOST:PORT` or `unix:/path.sock`
    /// (repeatable: balanced). Without one, those routes answer 404.
    #[arg(id = "upstream[].address", long = "upstream", value_name = "ADDR", value_delimiter = ',', value_parser = parse_upstream)]
    pub upstreams: Vec<Addr>,

    /// How requests are spread over several upstreams.
    #[arg(id = "proxy.balance", long = "balance", value_name = "POLICY", value_enum, default_value_t = Balance::RoundRobin)]
    pub balance: Balance,

    /// Failed attempts after which an upstream is skipped for --fail-timeout (0 = never).
    #[arg(
        id = "proxy.max_fails",
        long = "max-fails",
        value_name = "N",
        default_value_t = 1
    )]
    pub max_fails: u32,

    /// How long an upstream that failed is skipped.
    #[arg(id = "proxy.fail_timeout", long = "fail-timeout", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub fail_timeout: Duration,

    /// Active health check: GET this path on every upstream each --health-interval.
    #[arg(id = "proxy.health_check", long = "health-check", value_name = "PATH")]
    pub health_check: Option<String>,

    /// Interval of the active health check.
    #[arg(id = "proxy.health_interval", long = "health-interval", value_name = "DURATION", default_value = "5s", value_parser = parse_timeout)]
    pub health_interval: Duration,

    /// Time allowed to connect to an upstream (`5s`, `500ms`) → 504.
    #[arg(id = "proxy.connect_timeout", long = "connect-timeout", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time allowed for the response head (and a body of up to 64 KiB, read with it),
    /// between two reads of a longer body, and between two writes of a request body over
    /// 64 KiB → 504.
    #[arg(id = "proxy.read_timeout", long = "read-timeout", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Peers (address or CIDR, repeatable; `unix:` for every Unix-socket peer) whose
    /// X-Forwarded-* headers are believed; from anyone else they are dropped and replaced.
    #[arg(id = "proxy.trusted_proxies", long = "trusted-proxy", value_name = "CIDR", value_delimiter = ',', value_parser = parse_trusted)]
    pub trusted_proxies: Vec<Trusted>,

    /// Also send `X-Real-IP: <client address>` upstream (nginx's `proxy_set_header X-Real-IP
    /// $remote_addr`). Off by default, as in the nginx this replaces: X-Forwarded-For
    /// carries the same address.
    #[arg(id = "proxy.x_real_ip", long = "x-real-ip")]
    pub x_real_ip: bool,

    /// WebSocket/Upgrade tunnels close after this long without traffic either way.
    #[arg(id = "proxy.ws_idle_timeout", long = "ws-idle-timeout", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub ws_idle_timeout: Duration,

    /// `/PREFIX/=DIR`: files served only through an upstream's X-Accel-Redirect
    /// (nginx `internal;`); direct requests get 404. Repeatable.
    #[arg(id = "internal[].url=root", long = "internal", value_name = "PREFIX=DIR", value_parser = parse_mount)]
    pub internal: Vec<Mount>,

    /// Access log format (written to --access-log).
    #[arg(id = "log.format", long = "log-format", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Combined)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub observe: super::observe::ObserveArgs,

    #[command(flatten)]
    pub tls: super::tls_args::TlsArgs,

    // Compression of upstream responses (nginx `gzip on` + `gzip_types`, Caddy `encode`):
    // br, zstd or gzip as the client accepts, for text types; see README "Compression of
    // proxied responses".
    /// Send upstream responses as the upstream sent them: no on-the-fly br/zstd/gzip.
    #[arg(id = "compress.off", long = "no-proxy-compress")]
    pub no_proxy_compress: bool,

    /// Also compress upstream responses of this Content-Type (`type/subtype`, `type/*`,
    /// `type/*+suffix`; repeatable). By default: text/* but text/event-stream, JSON,
    /// JavaScript, XML, SVG and the +json/+xml types.
    #[arg(id = "compress.types", long = "proxy-compress-type", value_name = "TYPE", value_delimiter = ',', value_parser = parse_media_pattern)]
    pub proxy_compress_types: Vec<Pattern>,

    /// Never compress upstream responses of this Content-Type (as --proxy-compress-type;
    /// repeatable).
    #[arg(id = "compress.skip_types", long = "no-proxy-compress-type", value_name = "TYPE", value_delimiter = ',', value_parser = parse_media_pattern)]
    pub no_proxy_compress_types: Vec<Pattern>,

    /// Never compress upstream responses to requests under this path (`/account/`;
    /// matched on the decoded path, as Django sees it; repeatable): e.g. pages that show a
    /// secret next to what a request put there (BREACH, see README).
    #[arg(id = "compress.skip_paths", long = "no-proxy-compress-path", value_name = "PREFIX", value_delimiter = ',', value_parser = parse_path_prefix)]
    pub no_proxy_compress_paths: Vec<String>,

    /// Upstream responses declaring a shorter Content-Length go out uncompressed (nginx
    /// `gzip_min_length`); a length not declared (streamed) counts as long enough.
    #[arg(id = "compress.min_length", long = "proxy-compress-min-length", value_name = "SIZE", default_value = "512", value_parser = parse_size)]
    pub proxy_compress_min_length: u64,
}

/// Completes each option's declaration from its id (see the module doc): the environment
/// variable `STATICD_<FLAG>` and, in `--help`, the file key as a heading.
pub fn declare(arg: clap::Arg) -> clap::Arg {
    let id = arg.get_id().as_str().to_string();
    let Some(key) = super::config_file::key_of(&id) else {
        return arg;
    };
    let mut arg = arg.help_heading(format!("staticd.toml {}", heading(&key)));
    if let (None, Some(long)) = (arg.get_env(), arg.get_long()) {
        let var = env_var(long);
        arg = arg.env(var);
    }
    arg
}

/// `[static]`, `[[upstream]]`: where an option's key is, as a heading.
fn heading(key: &super::config_file::Key<'_>) -> String {
    use super::config_file::Key;
    match key {
        Key::Table { section, .. } => format!("[{section}]"),
        Key::Entries { section, .. } => format!("[[{section}]]"),
    }
}

/// `--max-age` → `STATICD_MAX_AGE`.
pub fn env_var(long: &str) -> String {
    format!("STATICD_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The README's table of every option: file key, environment variable, flag, default, and
/// what SIGHUP does with it.
pub fn key_table(cmd: &clap::Command) -> String {
    let mut out = String::from(
        "| staticd.toml | environment | flag | default | on SIGHUP |\n|---|---|---|---|---|\n",
    );
    for a in cmd.get_arguments() {
        let Some(key) = super::config_file::key_of(a.get_id().as_str()) else {
            continue;
        };
        let long = a.get_long().unwrap_or_default();
        let env = a
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        let default: Vec<String> = a
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let flag_only = matches!(
            a.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
        );
        let default = match (flag_only, default.as_slice()) {
            (true, _) => "false".to_string(),
            (false, []) => "".to_string(),
            (false, d) => format!("`{}`", d.join(",")),
        };
        let list = match (a.get_action(), a.get_value_delimiter()) {
            (clap::ArgAction::Append, Some(d)) => format!(" (list: `{d}`-separated)"),
            (clap::ArgAction::Append, None) => " (one value)".to_string(),
            _ => String::new(),
        };
        let reload = if RESTART_SECTIONS.contains(&key.section()) {
            "needs a restart"
        } else {
            "applied"
        };
        out.push_str(&format!(
            "| `{key}` | `{env}`{list} | `--{long}` | {default} | {reload} |\n"
        ));
    }
    out
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
    /// `--proxy-compress-type` not `type/subtype`, `type/*` or `type/*+suffix`.
    NotAMediaType(String),
    /// `--no-proxy-compress-path` not starting with `/`.
    NotAPathPrefix(String),
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
            ValueError::NotANetwork(s) => write!(f, "{s:?} is not an address, a CIDR or unix:"),
            ValueError::NotAMount(s) => write!(f, "{s:?}: expected /PREFIX/=DIR"),
            ValueError::EmptyMountDir(s) => write!(f, "{s:?}: empty directory"),
            ValueError::NotAMediaType(s) => write!(
                f,
                "{s:?} is not a media type (e.g. text/html, text/*, application/*+json)"
            ),
            ValueError::NotAPathPrefix(s) => {
                write!(f, "{s:?}: expected a path starting with / (e.g. /account/)")
            }
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
    if let Ok(a) = hp.parse::<std::net::SocketAddr>() {
        return Ok(Addr::Ip(a));
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

/// `--trusted-proxy`: a CIDR, a bare address, or `unix:` (every Unix-socket peer).
pub fn parse_trusted(s: &str) -> Result<Trusted, ValueError> {
    if s.trim() == "unix:" {
        return Ok(Trusted::Unix);
    }
    parse_network(s.trim()).map(Trusted::Net)
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

/// `--proxy-compress-type text/html`, `text/*`, `application/*+json`.
pub fn parse_media_pattern(s: &str) -> Result<Pattern, ValueError> {
    s.parse().map_err(|_| ValueError::NotAMediaType(s.into()))
}

/// `--no-proxy-compress-path /account/`: a path as Django sees it (decoded).
pub fn parse_path_prefix(s: &str) -> Result<String, ValueError> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(ValueError::NotAPathPrefix(s.into()))
    }
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
    use clap::Args as _;

    fn serve_command() -> clap::Command {
        ServeArgs::augment_args(clap::Command::new("serve"))
    }

    /// The README's one table of keys, variables and flags is this generated one: adding
    /// an option fails here until the README lists it (the message is the table to paste).
    #[test]
    fn readme_lists_every_option() {
        let table = key_table(&serve_command());
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        assert!(
            readme.contains(&table),
            "README.md's table of options is not the current one; it is:\n{table}"
        );
    }

    /// The README's full staticd.toml example is valid, key for key.
    #[test]
    fn readme_example_is_valid() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme
            .find("```toml\n# /etc/staticd/staticd.toml")
            .expect("the example in README.md");
        let body = &readme[start + "```toml\n".len()..];
        let example = &body[..body.find("```").unwrap()];
        let path = std::path::Path::new("/etc/staticd/staticd.toml");
        let layer = super::super::config_file::read(&serve_command(), path, example)
            .unwrap_or_else(|p| panic!("{p:#?}"));
        assert!(layer.values.len() > 20, "{layer:?}");
    }

    #[test]
    fn every_option_has_a_key_and_a_variable() {
        let cmd = serve_command();
        let mut n = 0;
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if matches!(id, "project" | "config") {
                continue;
            }
            let key = super::super::config_file::key_of(id);
            assert!(key.is_some(), "{id} has no file key");
            let long = a.get_long().unwrap();
            assert_eq!(
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
                Some(env_var(long)),
                "{id}"
            );
            n += 1;
        }
        assert!(n >= 30, "{n} options");
        assert_eq!(env_var("max-age"), "STATICD_MAX_AGE");
    }

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
        // A literal address is parsed once, here; IPv6 in brackets, as in a URL.
        assert_eq!(
            parse_upstream("127.0.0.1:8000"),
            Ok(Addr::Ip(([127, 0, 0, 1], 8000).into()))
        );
        assert_eq!(
            parse_upstream("http://[::1]:8000"),
            Ok(Addr::Ip("[::1]:8000".parse().unwrap()))
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
    fn compression_values() {
        assert_eq!(
            parse_media_pattern("Text/*"),
            Ok("text/*".parse::<Pattern>().unwrap())
        );
        assert_eq!(
            parse_media_pattern("html"),
            Err(ValueError::NotAMediaType("html".into()))
        );
        assert_eq!(
            parse_media_pattern("html").unwrap_err().to_string(),
            "\"html\" is not a media type (e.g. text/html, text/*, application/*+json)"
        );
        assert_eq!(parse_path_prefix("/account/"), Ok("/account/".into()));
        assert_eq!(
            parse_path_prefix("account"),
            Err(ValueError::NotAPathPrefix("account".into()))
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
