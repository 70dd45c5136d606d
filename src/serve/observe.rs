//! What an operator runs staticd with besides its routes: the health path, Prometheus
//! metrics on a listener of their own, the access log's target (SIGUSR1 reopens it) and
//! the diagnostics' level and format, response header rules, and the root files.
//!
//! [`ObserveArgs`] is flattened into `ServeArgs`; `serve::run` calls [`init_logs`],
//! [`Observe::new`], then [`Observe::listen`] inside the server's runtime.
//!
//! Each option has a file key and a variable (`ServeArgs` declares them). A configuration reload
//! (SIGHUP, `reconfigure`) applies `[log] access_log` ([`log::set_access_target`]) and
//! `[headers] set`/`remove` (`State::observe`'s `rules`, swapped whole). The rest is in
//! `[serve]`, restart-only, each for a reason: the health path and the metrics listener are
//! bound into the running server, the diagnostics' level and format into the installed
//! subscriber, and the root files' table has a reloader of its own, started once.
//! [`log::reopen_logs`] is what SIGUSR1 calls.

use super::header_rules::{self, HeaderRules, Rule};
use super::health;
use super::log::{self, AccessTarget, DiagFormat, DiagLevel, Diagnostics};
use super::message::{Body, Verb};
use super::metrics;
use super::reload;
use super::state::{self, RootFiles, State};
use super::table::{BuildOptions, Table};
use actix_http::{HttpMessage as _, HttpService, KeepAlive, Request, Response};
use actix_service::fn_service;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use anyhow::Context as _;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Health, metrics, logs, header rules and root files (`staticd serve`).
#[derive(clap::Args, Debug, Clone)]
pub struct ObserveArgs {
    /// staticd's own health path, answered on every listener and never forwarded:
    /// PATH is liveness (200 while the process answers), PATH/ready readiness (200 when
    /// the asset table is loaded and, with upstreams, one of them is healthy; else 503).
    #[arg(id = "serve.health_path", long = "health-path", value_name = "PATH", default_value = health::DEFAULT_PATH, value_parser = parse_health_path)]
    pub health_path: String,

    /// Serve Prometheus metrics at /metrics on this address (`127.0.0.1:9090`), a
    /// listener of its own (it also answers the health path). Off by default.
    #[arg(id = "serve.metrics_bind", long = "metrics-bind", value_name = "ADDR")]
    pub metrics_bind: Option<SocketAddr>,

    /// Where the access log goes: a file (appended to; SIGUSR1 reopens it, for
    /// logrotate), or `-` for stdout.
    #[arg(id = "log.access_log", long = "access-log", value_name = "PATH", default_value = "-", value_parser = parse_access_target)]
    pub access_log: AccessTarget,

    /// Level of the diagnostics on stderr (default: RUST_LOG, else info).
    #[arg(
        id = "serve.log_level",
        long = "log-level",
        value_name = "LEVEL",
        value_enum
    )]
    pub log_level: Option<DiagLevel>,

    /// Format of the diagnostics on stderr.
    #[arg(id = "serve.error_log_format", long = "error-log-format", value_name = "FORMAT", value_enum, default_value_t = DiagFormat::Text)]
    pub error_log_format: DiagFormat,

    /// Sets a response header on every answer of a route kind (static, media, proxy,
    /// internal, all; several joined by `,`), whatever its status: `ROUTE:Name: value`,
    /// or `ROUTE:?Name: value` to set it only when the answer has none. Repeatable.
    /// `X-Content-Type-Options: nosniff` is set on static and media answers by default.
    #[arg(id = "headers.set", long = "header", value_name = "ROUTE:NAME: VALUE", value_parser = header_rules::parse_set)]
    pub headers: Vec<Rule>,

    /// Removes a response header from a route kind's answers (`proxy:Server`), before the
    /// `--header` rules; also turns off a default (`static:X-Content-Type-Options`).
    /// Repeatable.
    #[arg(id = "headers.remove", long = "remove-header", value_name = "ROUTE:NAME", value_parser = header_rules::parse_remove)]
    pub remove_headers: Vec<Rule>,

    /// Files served at the site root (favicon.ico, robots.txt, …) from this directory,
    /// before anything goes upstream: the static tier's answer (validators, ranges,
    /// precompressed variants), never a listing, no hidden file, nothing outside DIR.
    #[arg(id = "serve.root_files", long = "root-files", value_name = "DIR")]
    pub root_files: Option<PathBuf>,
}

/// `--health-path` must be an absolute path of its own: not `/` (it would answer for the
/// whole site), no query, no trailing slash.
fn parse_health_path(s: &str) -> Result<String, String> {
    let ok = s.starts_with('/')
        && s.len() > 1
        && !s.ends_with('/')
        && !s.contains(['?', '#', ' ', '%'])
        && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: expected an absolute path such as /.staticd/health (not /, no query, no trailing slash)"
        ))
    }
}

fn parse_access_target(s: &str) -> Result<AccessTarget, String> {
    if s.is_empty() {
        return Err("empty path (use - for stdout)".into());
    }
    Ok(AccessTarget::parse(s))
}

/// Installs the logging (before anything is logged): the access log's target first, so a
/// file that cannot be opened stops the start with its name.
pub fn init_logs(args: &ObserveArgs) -> anyhow::Result<()> {
    log::set_access_target(&args.access_log).context("--access-log")?;
    log::init_with(Diagnostics {
        level: args.log_level,
        format: args.error_log_format,
    });
    Ok(())
}

/// What `serve::run` keeps of [`ObserveArgs`] until the server starts.
pub struct Observe {
    metrics_bind: Option<SocketAddr>,
}

impl Observe {
    /// Builds the header rules and the root files' table (with its reloader) for the shared
    /// state, and turns the metrics on when they have a listener. `static_opts` are the
    /// static table's options, whose memory and caching limits the root files share.
    pub fn new(
        args: &ObserveArgs,
        static_opts: &BuildOptions,
    ) -> anyhow::Result<(Observe, state::Observe)> {
        if args.metrics_bind.is_some() {
            metrics::enable();
        }
        // The static table was loaded just before.
        metrics::table_built("static", false, true);
        let rules: Vec<Rule> = args
            .headers
            .iter()
            .chain(&args.remove_headers)
            .cloned()
            .collect();
        let root_files = match &args.root_files {
            None => None,
            Some(dir) => Some(root_files(dir, static_opts)?),
        };
        let shared = state::Observe {
            health_path: args.health_path.clone(),
            rules: ArcSwap::from_pointee(HeaderRules::new(&rules)),
            root_files,
        };
        Ok((
            Observe {
                metrics_bind: args.metrics_bind,
            },
            shared,
        ))
    }

    /// Inside the server's runtime, before it says it listens: adds the metrics listener
    /// to `builder` (printing its address) and starts the SIGUSR1 handler.
    pub fn listen(
        &self,
        builder: actix_server::ServerBuilder,
        state: Arc<State>,
    ) -> anyhow::Result<actix_server::ServerBuilder> {
        let mut builder = builder;
        if let Some(addr) = self.metrics_bind {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot bind --metrics-bind {addr}"))?;
            let local = listener.local_addr()?;
            builder = builder.listen("metrics", listener, move || {
                let state = state.clone();
                HttpService::build()
                    // One scrape per connection: nothing idles across a graceful stop.
                    .keep_alive(KeepAlive::Disabled)
                    .h1(fn_service(move |req: Request| {
                        let state = state.clone();
                        async move { Ok::<_, actix_http::Error>(metrics_answer(&req, &state).await) }
                    }))
                    .tcp()
            })?;
            eprintln!("staticd serve: metrics on http://{local}/metrics");
        }
        spawn_reopen_on_sigusr1();
        Ok(builder)
    }
}

/// Refuses what [`Observe::new`] would refuse, before the static table is built: that can
/// take a while for a large STATIC_ROOT, and a mistyped flag should not wait for it.
pub fn check(args: &ObserveArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.root_files {
        root_files_dir(dir)?;
    }
    Ok(())
}

/// `--root-files` DIR, made absolute; an error unless it is a directory.
fn root_files_dir(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !dir.is_dir() {
        anyhow::bail!("--root-files {}: not a directory", dir.display());
    }
    Ok(dir)
}

/// Builds the root files' table from `dir` and starts its reloader.
fn root_files(dir: &std::path::Path, static_opts: &BuildOptions) -> anyhow::Result<Arc<RootFiles>> {
    let dir = root_files_dir(dir)?;
    let opts = BuildOptions {
        root: dir.clone(),
        // Answered at the site root.
        prefix: "/".to_string(),
        // Not collected generations: nothing to make deltas against.
        dictionaries: false,
        ..static_opts.clone()
    };
    let fp = reload::fingerprint(&opts);
    let table = Table::build(&opts, None)
        .with_context(|| format!("cannot load --root-files {}", dir.display()))?;
    metrics::table_built("root_files", false, true);
    tracing::info!(
        "root files from {}: {} URLs",
        dir.display(),
        table.assets.len()
    );
    let (tx, rx) = reload::channel();
    let slot = Arc::new(RootFiles {
        table: ArcSwap::from_pointee(table),
        nudge: tx.clone(),
    });
    let opts = Arc::new(ArcSwap::from_pointee(opts));
    reload::spawn_named("root_files", slot.clone(), opts, fp, tx, rx)
        .context("cannot start the root files' reloader")?;
    Ok(slot)
}

/// SIGUSR1: the access log file is opened again (logrotate's `postrotate`). Registered
/// before the server says it listens: SIGUSR1's default action would end the process.
fn spawn_reopen_on_sigusr1() {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let Ok(mut usr1) = signal(SignalKind::user_defined1()) else {
        tracing::warn!("cannot handle SIGUSR1: the access log will not be reopened");
        return;
    };
    actix_web::rt::spawn(async move {
        while usr1.recv().await.is_some() {
            if let Err(e) = log::reopen_logs() {
                tracing::error!("SIGUSR1: {e}; still writing to the previous file");
            }
        }
    });
}

/// The metrics listener: `/metrics` and the health path.
async fn metrics_answer(req: &Request, state: &State) -> Response<actix_web::body::BoxBody> {
    let verb = Verb::of(req.method());
    let path = req.uri().path();
    if let Some(probe) = health::probe(&state.observe.health_path, path) {
        // A short body in memory; actix's HTTP/1 writer declares its length to HEAD too.
        let reply = health::answer(state, probe, verb).await;
        let body = match reply.body {
            Body::Mem(b) => b,
            _ => bytes::Bytes::new(),
        };
        let mut r = Response::with_body(reply.status, body).map_into_boxed_body();
        for (name, value) in reply.headers {
            r.headers_mut().append(name, value.into_owned());
        }
        return r;
    }
    if path != "/metrics" {
        return Response::with_body(StatusCode::NOT_FOUND, "404 Not Found\n").map_into_boxed_body();
    }
    if verb == Verb::Other {
        let mut r = Response::new(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // Prometheus asks for OpenMetrics in its Accept; anything else gets the 0.0.4 format.
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let body = metrics::encode(now(state), openmetrics);
    let mut r = if *req.method() == Method::HEAD {
        Response::new(StatusCode::OK)
    } else {
        Response::with_body(StatusCode::OK, body).map_into_boxed_body()
    };
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::content_type(openmetrics)),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What a scrape reads of the running server.
fn now(state: &State) -> metrics::Now {
    let mut tables = Vec::with_capacity(2);
    let t = state.table.load();
    tables.push(("static", t.assets.len() as u64, t.mem_bytes));
    if let Some(root) = &state.observe.root_files {
        let t = root.table.load();
        tables.push(("root_files", t.assets.len() as u64, t.mem_bytes));
    }
    metrics::Now {
        tables,
        upstreams: state.live.load().proxy.upstream_states(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths() {
        assert_eq!(parse_health_path("/healthz"), Ok("/healthz".into()));
        assert_eq!(
            parse_health_path("/.staticd/health"),
            Ok("/.staticd/health".into())
        );
        for bad in ["", "/", "healthz", "/h/", "/h?x", "/h%20", "/h x"] {
            assert!(parse_health_path(bad).is_err(), "{bad:?}");
        }
    }
}
