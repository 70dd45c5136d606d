//! `staticd serve` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Access log format.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Apache/nginx "combined" lines, so existing log tooling keeps working.
    Combined,
    /// One JSON object per request, with the request time.
    Json,
    /// No access log (benchmarks; a load balancer that already logs).
    Off,
}

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
    #[arg(long, default_value_t = 64 * 1024)]
    pub mem_file_max: u64,

    /// Cap on file bytes held in memory (keeps RSS bounded on big corpora).
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub mem_total_max: u64,

    /// Seconds in-flight requests get to finish on SIGTERM/SIGINT before they are cut.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Keep-alive timeout in seconds for idle client connections.
    #[arg(long, default_value_t = 75)]
    pub keep_alive: u64,

    /// Python interpreter for discovery (with PROJECT).
    #[arg(long)]
    pub python: Option<PathBuf>,

    /// Django settings module for discovery (with PROJECT).
    #[arg(long)]
    pub settings: Option<String>,
}

/// STATIC_URL normalised to a path prefix that starts and ends with `/`: the mount is always
/// a directory boundary, so nginx's alias off-by-slash (`/static..`) cannot happen.
/// A full URL (`https://cdn/x/static/`) keeps only its path.
pub fn normalize_prefix(url: &str) -> String {
    let mut path = url;
    if let Some(i) = url.find("://") {
        let after = &url[i + 3..];
        path = after.find('/').map_or("/", |j| &after[j..]);
    }
    let path = path.trim_matches('/');
    if path.is_empty() {
        "/".to_string()
    } else {
        format!("/{path}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("/static/"), "/static/");
        assert_eq!(normalize_prefix("static"), "/static/");
        assert_eq!(normalize_prefix("/a/b"), "/a/b/");
        assert_eq!(normalize_prefix("/"), "/");
        assert_eq!(
            normalize_prefix("https://cdn.example/x/static/"),
            "/x/static/"
        );
    }
}
