//! `staticd serve`: the static tier and the reverse proxy.
//!
//! [`run`] builds the table, the proxy and the shared [`state::State`], starts the reloader,
//! and serves every connection with the HTTP/1 loop (`h1`), which hands only h2c to
//! actix-web (`app`). Both front ends route with `dispatch`.
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
//!    - `body`: response bodies as memory pieces and file ranges.
//!    - `socket`: a client connection's socket I/O (`writev`, `sendfile`, the lingering
//!      close), for the HTTP/1 loop and its tunnels.
//!    - `log`: the access log and diagnostics.
//! 2. What the answers are made of:
//!    - `table`: STATIC_ROOT + manifest → URL table (variants, types, validators, caching).
//!    - `message`: `Reply`, `Body`, `Verb`, `Request`, error pages.
//! 3. Built on those:
//!    - `headers`: the static tier's header sets.
//!    - `reload`: watching for new generations and swapping the table.
//! 4. The two kinds of answer:
//!    - `respond`: the static tier (one request: lookup, negotiation, preconditions, range).
//!    - `proxy`: everything outside STATIC_URL (`--upstream`, media, internal mounts).
//! 5. Shared by the workers:
//!    - `state`: the current table, the prefix, the proxy.
//! 6. Routing:
//!    - `dispatch`: static or proxied; the static answer, for every protocol.
//! 7. The front ends:
//!    - `app`: actix-web's App, for HTTP/2 (h2c).
//! 8. The HTTP/1 server:
//!    - `h1`: every connection, for its whole life (h2c handed to `app`).
//! 9. The command line:
//!    - `config`: `staticd serve`'s flags and their value parsers.

pub mod app;
pub mod beneath;
pub mod body;
pub mod conditional;
pub mod config;
#[cfg(test)]
mod dependency_order;
pub mod dictionary;
pub mod dispatch;
pub mod fields;
pub mod h1;
pub mod headers;
pub mod log;
pub mod message;
pub mod negotiate;
pub mod path;
pub mod proxy;
pub mod range;
pub mod reload;
pub mod respond;
pub mod socket;
pub mod state;
pub mod table;

pub use config::ServeArgs;
pub use log::LogFormat;

use actix_web::http::header::HeaderValue;
use anyhow::Context as _;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Instant;

/// Runs the server until SIGTERM/SIGINT, then drains in-flight requests
/// (bounded by `--shutdown-timeout`).
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    run_with(args, reload::channel())
}

/// [`run`] with the reloader's channel made by the caller, who keeps a sender to say when it
/// has published (`staticd dev`).
pub fn run_with(
    args: ServeArgs,
    (tx, rx): (
        std::sync::mpsc::SyncSender<reload::Wake>,
        std::sync::mpsc::Receiver<reload::Wake>,
    ),
) -> anyhow::Result<()> {
    log::init(args.log_format);
    let (root, static_url) = locate(&args)?;
    // Absolute, so the reloader can watch the parent even for `--root static`.
    let root = std::path::absolute(&root).unwrap_or(root);
    let prefix = path::normalize_prefix(&static_url);
    let opts = table::BuildOptions {
        root: root.clone(),
        manifest_name: args.manifest_name.clone(),
        max_age: args.max_age,
        mem_file_max: args.mem_file_max,
        mem_total_max: args.mem_total_max,
        dictionaries: (!args.no_dictionaries).then(|| prefix.clone()),
    };

    let started = Instant::now();
    let fp = reload::fingerprint(&opts);
    let table = table::Table::build(&opts, None)
        .with_context(|| format!("cannot load {}", root.display()))?;
    if table.dir.is_none() {
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

    let cors = if args.no_cors {
        None
    } else {
        Some(
            HeaderValue::from_str(&args.cors_origin)
                .context("--cors-origin is not a valid header value")?,
        )
    };
    let proxy = Arc::new(proxy::Proxy::new(proxy::Options {
        upstreams: args.upstreams.clone(),
        trusted: args.trusted_proxies.clone(),
        max_body: args.max_body,
        connect_timeout: args.connect_timeout,
        read_timeout: args.read_timeout,
        balance: args.balance,
        max_fails: args.max_fails,
        fail_timeout: args.fail_timeout,
        health_check: args.health_check.clone(),
        health_interval: args.health_interval,
        internal: args.internal.clone(),
        media: args.media_root.clone().map(|dir| proxy::files::Mount {
            prefix: path::normalize_prefix(&args.media_url),
            dir,
        }),
        media_max_age: args.max_age,
        ws_idle_timeout: args.ws_idle_timeout,
    }));
    for u in &args.upstreams {
        tracing::info!("proxying everything outside {prefix} to {u}");
    }
    let state = Arc::new(state::State {
        table: ArcSwap::from_pointee(table),
        prefix,
        cors,
        log_format: args.log_format,
        nudge: tx.clone(),
        proxy: proxy.clone(),
    });
    reload::spawn(state.clone(), opts, fp, tx, rx)?;

    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Bound here rather than by actix so the address is known before the workers start.
    let listener = std::net::TcpListener::bind(args.bind)
        .with_context(|| format!("cannot bind {}", args.bind))?;
    let local = listener.local_addr()?;
    raise_backlog(&listener);
    actix_web::rt::System::new().block_on(async move {
        let builder = actix_server::Server::build();
        let settings = h1::Settings {
            keep_alive: args.keep_alive,
            header_timeout: args.header_timeout,
            body_timeout: args.body_timeout,
            max_body: args.max_body,
            local,
            shutdown: builder.graceful_shutdown_signal(),
        };
        let server = builder
            .workers(workers)
            .shutdown_timeout(args.shutdown_timeout.as_secs_f64().ceil() as u64)
            // actix treats SIGINT as a forced stop; we want both signals graceful.
            .disable_signals()
            // HTTP/1.x (our own loop) and h2c (actix-web) on the same plaintext port.
            .listen("staticd", listener, move || {
                h1::factory(state.clone(), settings.clone())
            })?
            .run();
        // Tests and supervisors read this line to learn the port (`--bind 127.0.0.1:0`).
        eprintln!("staticd serve: listening on http://{local}");
        if args.health_check.is_some() && !args.upstreams.is_empty() {
            actix_web::rt::spawn(proxy.health_loop());
        }
        let handle = server.handle();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: draining in-flight requests");
            handle.stop(true).await;
        });
        server.await.context("server failed")
    })
}

/// A listen backlog of 1024 like actix-web's own binding (std's is 128): bursts of new
/// connections queue instead of being refused. Calling `listen` again only resizes the queue.
fn raise_backlog(listener: &std::net::TcpListener) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a valid, bound and listening socket.
    unsafe { libc::listen(listener.as_raw_fd(), 1024) };
}

/// STATIC_ROOT and STATIC_URL from the flags, else from the Django project.
fn locate(args: &ServeArgs) -> anyhow::Result<(std::path::PathBuf, String)> {
    if let (Some(root), Some(url)) = (&args.root, &args.static_url) {
        return Ok((root.clone(), url.clone()));
    }
    match &args.project {
        Some(project) => {
            let d = crate::django::discover(&crate::django::DiscoverOptions {
                project: project.clone(),
                python: args.python.clone(),
                settings: args.settings.clone(),
                ..Default::default()
            })?;
            Ok((
                args.root.clone().unwrap_or(d.static_root),
                args.static_url.clone().unwrap_or(d.static_url),
            ))
        }
        None => {
            let root = args
                .root
                .clone()
                .context("give a Django PROJECT directory or --root STATIC_ROOT")?;
            Ok((
                root,
                args.static_url.clone().unwrap_or_else(|| "/static/".into()),
            ))
        }
    }
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
