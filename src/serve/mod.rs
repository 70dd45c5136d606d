//! `staticd serve`: the static tier and the reverse proxy.
//!
//! [`run`] builds the table, the proxy and the shared [`state::State`], starts the reloader,
//! binds the listeners (or takes systemd's), and serves every connection with the HTTP/1
//! loop (`h1`), which hands only h2c to the HTTP/2 server (`h2`). Both front ends route with
//! `dispatch`. With HTTPS on, one more listener (`tls_listen`) does the TLS handshake and
//! gives each connection to one of them by ALPN. SIGHUP reloads the configuration
//! (`reconfigure`) and the certificates; SIGTERM and SIGINT drain.
//!
//! ## Modules, in dependency order
//!
//! Lowest first. A module uses only modules of earlier layers, never one of its own layer
//! or a later one (`dependency_order.rs` checks this on the sources), so `serve/` has no
//! cycle and each module can be read without those that use it.
//!
//! 1. Leaves, using no other serve module:
//!    - `fields`: request header fields as either front end holds them.
//!    - `negotiate`, `conditional`, `range`: pure RFC 9110 logic.
//!    - `dictionary`: pure RFC 9842 logic (`Available-Dictionary`, `Use-As-Dictionary`).
//!    - `path`: request path → table key (decoded once, non-canonical paths refused);
//!      STATIC_URL → prefix.
//!    - `beneath`: opening a file below a root that no symlink can lead out of.
//!    - `host`: Host and authority syntax (RFC 9112 §3.2), for HTTP/1 and HTTP/2 alike.
//!    - `body`: response bodies as memory pieces and file ranges.
//!    - `spool`: request bodies on their way upstream, past 64 KiB in a nameless
//!      temporary file.
//!    - `socket`: a plain client connection (TCP or Unix) and its socket I/O (`writev`,
//!      `sendfile`), for the HTTP/1 loop and its tunnels; its peer.
//!    - `listen`: the listeners (`--bind` forms, Unix sockets, systemd socket activation).
//!    - `config_file`: staticd.toml's serve sections → the options' defaults, every
//!      problem with its file:line:column.
//!    - `metrics`: the Prometheus counters and their exposition.
//!    - `ticker`: per-request deadlines and the client watch (499) on one ticker per worker
//!      thread instead of a timer each.
//!    - `dir_watch`: the reloader's inotify watches (writes and names, never reads).
//!    - `trim`: memory given back to the system after a burst of connections.
//! 2. What the answers are made of:
//!    - `table`: STATIC_ROOT + manifest → URL table (variants, types, validators, caching).
//!    - `message`: `Reply`, `Body`, `Verb`, `Request`, error pages.
//!    - `stream`: a client connection, plain or TLS, as the HTTP/1 loop and its tunnels
//!      use it (what replaces `sendfile` under TLS).
//!    - `log`: the access log (its target, SIGUSR1's reopen) and diagnostics.
//! 3. Built on those:
//!    - `headers`: the static tier's header sets.
//!    - `compress`: on-the-fly br/zstd/gzip of upstream responses (which, how, the
//!      header edits), with its encoders and the streaming body.
//!    - `reload`: watching for new generations and swapping the table.
//!    - `origin`: `--origin`, a generation served from an object store (the table from its
//!      manifest and listing, the manifest polled, objects fetched on first request).
//!    - `https`: what a listener does once HTTPS is on (ACME challenges, the redirect, HSTS).
//!    - `header_rules`: response header rules by route kind (`--header`).
//! 4. The two kinds of answer:
//!    - `respond`: the static tier (one request: lookup, negotiation, preconditions, range).
//!    - `proxy`: everything outside STATIC_URL (`--upstream`, media, internal mounts).
//! 5. Shared by the workers:
//!    - `state`: the current table, the live part of the configuration (CORS, log format,
//!      the proxy) that a reload swaps, the health path, header rules and root files.
//! 6. staticd's own answers:
//!    - `health`: the health path (liveness, readiness).
//! 7. Routing, and what every connection is served with:
//!    - `dispatch`: health, static, root files or proxied; the static answer, for every
//!      protocol.
//!    - `conn`: a listener's connection settings (timeouts, limits, shutdown, HTTPS).
//! 8. The HTTP/2 server:
//!    - `h2`: h2c and TLS `h2` connections, each stream answered in the connection's task.
//! 9. The HTTP/1 server:
//!    - `h1`: every connection, for its whole life (h2c handed to `h2`).
//! 10. Operations:
//!    - `observe`: health, metrics listener, log targets, header rules, root files options.
//!    - `tls_args`: the HTTPS options and their checks.
//! 11. The options:
//!    - `config`: `staticd serve`'s options (flag, environment variable and file key from
//!      one declaration each) and their value parsers.
//! 12. Where the settings come from:
//!    - `resolve`: flags > environment > staticd.toml > defaults; STATIC_ROOT and
//!      STATIC_URL from the options or the Django project.
//! 13. The HTTPS listener:
//!    - `tls_listen`: the TLS handshake, then h2 or the HTTP/1 loop; certificates' upkeep.
//! 14. Reloading:
//!    - `reconfigure`: SIGHUP, the configuration read again and applied without a restart.
//! 15. Checking:
//!    - `check`: `staticd check`, the configuration prepared as a reload would, and
//!      STATIC_ROOT checked.

pub mod beneath;
pub mod body;
pub mod check;
pub mod compress;
pub mod conditional;
pub mod config;
pub mod config_file;
pub mod conn;
#[cfg(test)]
mod dependency_order;
pub mod dictionary;
pub mod dir_watch;
pub mod dispatch;
pub mod fields;
pub mod h1;
pub mod h2;
pub mod header_rules;
pub mod headers;
pub mod health;
pub mod host;
pub mod https;
pub mod listen;
pub mod log;
pub mod message;
pub mod metrics;
pub mod negotiate;
pub mod observe;
pub mod origin;
pub mod path;
pub mod proxy;
pub mod range;
pub mod reconfigure;
pub mod reload;
pub mod resolve;
pub mod respond;
pub mod socket;
pub mod spool;
pub mod state;
pub mod stream;
pub mod table;
pub mod ticker;
pub mod tls_args;
pub mod tls_listen;
pub mod trim;

pub use config::ServeArgs;
pub use log::LogFormat;
pub use resolve::Loaded;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use listen::{Listener, Socket};
use reconfigure::{Reconfigure, Reread};
use state::{Live, State};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What `run` needs besides the settings.
#[derive(Default)]
pub struct Start {
    /// How to read the settings again on SIGHUP; `None`: SIGHUP says it cannot.
    pub reread: Option<Reread>,
    /// Sockets from systemd (socket activation), used instead of `--bind`. Taken by
    /// [`listen::take_activation`] while the process had one thread.
    pub inherited: Vec<Listener>,
}

/// The process's limits on open descriptors (`RLIMIT_NOFILE`), if the kernel says.
pub(crate) fn open_files_limit() -> Option<libc::rlimit> {
    // SAFETY: getrlimit fills the struct it is given.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim)
}

/// Raises the soft limit on open descriptors to the hard one, as Go's runtime does for every
/// server and nginx's `worker_rlimit_nofile` lets one ask: connections and the files the
/// table keeps open (`table::Variant::kept`) share it, and the usual soft default of 1024
/// is a limit nobody chose. Failing leaves the limit as it was.
fn raise_open_files_limit() {
    let Some(mut lim) = open_files_limit() else {
        return;
    };
    // An unlimited hard limit is not a valid soft one (the kernel's `nr_open` caps it).
    let want = lim.rlim_max.min(1 << 20);
    if lim.rlim_cur < want {
        let was = lim.rlim_cur;
        lim.rlim_cur = want;
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            tracing::debug!("open files limit raised from {was} to {want}");
        }
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains in-flight requests
/// (bounded by `--shutdown-timeout`); SIGHUP reloads the configuration.
pub fn run(loaded: Loaded, start: Start) -> anyhow::Result<()> {
    run_with(loaded, start, reload::channel())
}

/// [`run`] with the reloader's channel made by the caller, who keeps a sender to say when it
/// has published (`staticd dev`).
pub fn run_with(
    loaded: Loaded,
    start: Start,
    (tx, rx): (SyncSender<reload::Wake>, Receiver<reload::Wake>),
) -> anyhow::Result<()> {
    let args = loaded.args.clone();
    observe::init_logs(&args.observe)?;
    raise_open_files_limit();
    // Certificates first: a bad one stops staticd before anything else is done.
    let mut https = tls_listen::Https::from_args(&args.tls)?;
    let prepared = reconfigure::prepare(&args, args.max_body).map_err(anyhow::Error::msg)?;
    observe::check(&args.observe)?;
    let opts = prepared.build;
    let root = opts.root.clone();
    let prefix = opts.prefix.clone();

    let started = Instant::now();
    let fp = reload::fingerprint(&opts);
    let (origin, table) = match &args.origin {
        Some(target) => {
            let settings = origin_settings(&loaded, target)?;
            let (o, t) = origin::Origin::start(&settings, &opts)
                .with_context(|| format!("cannot serve from {target}"))?;
            (Some(o), t)
        }
        None => (
            None,
            table::Table::build(&opts, None)
                .with_context(|| format!("cannot load {}", root.display()))?,
        ),
    };
    if origin.is_some() {
        // Origin::start said what it loaded.
    } else if table.dir.is_none() {
        tracing::warn!(
            "no directory at {}; serving nothing until it appears",
            root.display()
        );
    }
    tracing::info!(
        "loaded {}: {} URLs ({} manifest entries), {} KiB in memory, {:?}",
        root.display(),
        table.assets.len(),
        table.manifest_entries,
        table.mem_bytes / 1024,
        started.elapsed()
    );
    if let Some(f) = &loaded.file {
        tracing::info!("configuration from {}", f.display());
    }

    let proxy = Arc::new(proxy::Proxy::new(prepared.proxy));
    for u in &args.upstreams {
        tracing::info!("proxying everything outside {prefix} to {u}");
    }
    let (observe, observed) = observe::Observe::new(&args.observe, &opts)?;
    let state = Arc::new(State {
        table: ArcSwap::from_pointee(table),
        live: ArcSwap::from_pointee(Live {
            cors: prepared.cors,
            log_format: args.log_format,
            proxy: proxy.clone(),
        }),
        nudge: tx.clone(),
        observe: observed,
        origin: origin.clone(),
    });
    let build = Arc::new(ArcSwap::from_pointee(opts));
    match &origin {
        Some(o) => {
            o.spawn_poller(state.clone(), build.clone());
            // Wakes meant for the reloader (a reconfiguration) make the poller look now.
            let o = o.clone();
            std::thread::Builder::new()
                .name("staticd-origin-wake".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        o.kick();
                    }
                })?;
        }
        None => reload::spawn(state.clone(), build.clone(), fp, tx.clone(), rx)?,
    }
    let reconfigure = start.reread.map(|reread| {
        Arc::new(Mutex::new(Reconfigure {
            reread,
            current: loaded,
            build,
            nudge: tx,
        }))
    });

    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Bound here rather than by actix so the addresses are known before the workers start.
    let listeners = if start.inherited.is_empty() {
        listen::bind_all(&args.bind)?
    } else {
        tracing::info!(
            "socket activation: listening on the {} socket(s) systemd passed; --bind is not used",
            start.inherited.len()
        );
        start.inherited
    };
    // HTTPS: its listener, bound here too so that every address is known up front.
    let tls_listener = match &https {
        Some(h) => Some(listen::bind_https(h.bind)?),
        None => None,
    };
    let tls_local = tls_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    trim::spawn()?;
    actix_web::rt::System::new().block_on(async move {
        let mut builder = actix_server::Server::build()
            .workers(workers)
            .shutdown_timeout(args.shutdown_timeout.as_secs_f64().ceil() as u64)
            // actix treats SIGINT as a forced stop; we want both signals graceful.
            .disable_signals();
        let shutdown = builder.graceful_shutdown_signal();
        // HTTPS: ACME runs on this (the main) runtime; the plain listeners learn what HTTPS
        // changes for them (challenges, the redirect).
        let mut plain_front = https::Front::default();
        if let (Some(h), Some(tls_local)) = (https.as_mut(), tls_local) {
            h.start_acme()?;
            plain_front = h.plain_front(tls_local.port());
        }
        let plain_front = Arc::new(plain_front);
        let mut urls = Vec::new();
        let mut files = Vec::new();
        // Each socket goes to the server, which closes it when a shutdown begins.
        for (i, l) in listeners.into_iter().enumerate() {
            let settings = conn::Settings {
                keep_alive: args.keep_alive,
                header_timeout: args.header_timeout,
                body_timeout: args.body_timeout,
                max_body: args.max_body,
                local: l.local_addr(),
                shutdown: shutdown.clone(),
                front: plain_front.clone(),
            };
            let name = format!("staticd-{i}");
            let st = state.clone();
            // HTTP/1.x (our own loop) and h2c (actix-web) on every listener.
            let url = l.url();
            if let Some(n) = &l.fd_name {
                tracing::info!("{url}: socket {n:?} from systemd");
            }
            urls.push(url);
            files.extend(l.socket_file());
            builder = match l.socket {
                Socket::Tcp(t) => builder.listen(name, t, move || {
                    h1::factory::<tokio::net::TcpStream>(st.clone(), settings.clone())
                })?,
                Socket::Unix(u) => builder.listen_uds(name, u, move || {
                    h1::factory::<tokio::net::UnixStream>(st.clone(), settings.clone())
                })?,
            };
        }
        // HTTPS: TLS, then HTTP/2 or HTTP/1.1 by ALPN.
        if let (Some(h), Some(l), Some(tls_local)) = (&https, tls_listener, tls_local) {
            let settings = conn::Settings {
                keep_alive: args.keep_alive,
                header_timeout: args.header_timeout,
                body_timeout: args.body_timeout,
                max_body: args.max_body,
                local: Some(tls_local),
                shutdown: shutdown.clone(),
                front: Arc::new(h.tls_front()),
            };
            let acceptor = h.acceptor.clone();
            let st = state.clone();
            urls.push(format!("https://{tls_local}"));
            builder = builder.listen("staticd-https", l, move || {
                tls_listen::factory(st.clone(), settings.clone(), acceptor.clone())
            })?;
        }
        let https = https.map(Arc::new);
        let metrics_state = state.clone();
        let server = observe.listen(builder, metrics_state)?.run();
        // SIGHUP is handled from here on: before the listening lines, which supervisors
        // (and tests) wait for before they may send it.
        let hangup = hangup_stream();
        // Tests and supervisors read these lines to learn the addresses (`--bind
        // 127.0.0.1:0`): one per listener.
        for url in &urls {
            eprintln!("staticd serve: listening on {url}");
        }
        actix_web::rt::spawn(proxy.health_loop());
        if let Some(mut hangup) = hangup {
            let state = state.clone();
            actix_web::rt::spawn(async move {
                while hangup.recv().await.is_some() {
                    // The certificate files are re-read whatever else happens.
                    if let Some(h) = &https {
                        h.reload_certificates();
                    }
                    let Some(r) = reconfigure.clone() else {
                        tracing::warn!("SIGHUP: this command cannot reload its configuration");
                        continue;
                    };
                    tracing::info!("SIGHUP: reloading the configuration");
                    let st = state.clone();
                    let done = actix_web::rt::task::spawn_blocking(move || {
                        r.lock().map(|mut r| r.reload(&st)).ok().flatten()
                    })
                    .await;
                    if let Ok(Some(proxy)) = done {
                        actix_web::rt::spawn(proxy.health_loop());
                    }
                }
            });
        }
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: draining in-flight requests");
            handle.stop(true).await;
        });
        let r = server.await.context("server failed");
        for f in &files {
            f.remove();
        }
        r
    })
}

/// `--origin`'s settings: the options, and `[publish]` of the configuration file (where
/// the store is; the AWS variables go over it, as for `staticd publish`).
fn origin_settings(
    loaded: &Loaded,
    target: &crate::remote::Target,
) -> anyhow::Result<origin::Settings> {
    let args = &loaded.args;
    let store = match &loaded.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            crate::remote::PublishConfig::parse(&text, path)?
        }
        None => crate::remote::PublishConfig::default(),
    };
    let cache_dir = match &args.origin_cache_dir {
        Some(d) => d.clone(),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|x| !x.is_empty())
            .map(|x| PathBuf::from(x).join("staticd/origin"))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/staticd/origin")))
            .ok_or_else(|| {
                anyhow::anyhow!("--origin needs a cache directory: pass --origin-cache-dir (no $HOME or $XDG_CACHE_HOME here)")
            })?,
    };
    Ok(origin::Settings {
        target: target.clone(),
        store,
        poll: args.origin_poll,
        cache_dir,
        cache_max: args.origin_cache_max,
    })
}

/// SIGHUP's stream; `None` if it cannot be installed (then SIGHUP keeps its default).
fn hangup_stream() -> Option<actix_web::rt::signal::unix::Signal> {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map_err(|e| tracing::warn!("cannot handle SIGHUP: {e}"))
        .ok()
}

async fn wait_for_signal() {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    first_of(term.recv(), int.recv()).await;
}

/// Waits for whichever future finishes first (no `tokio::select!` without a direct tokio dep).
async fn first_of<A: std::future::Future, B: std::future::Future>(a: A, b: B) {
    let a = std::pin::pin!(a);
    let b = std::pin::pin!(b);
    futures_util::future::select(a, b).await;
}
