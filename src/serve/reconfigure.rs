//! SIGHUP: the configuration read again and applied without dropping a connection, as
//! nginx's HUP does.
//!
//! The command line, environment and `staticd.toml` are resolved again exactly as at start
//! (`resolve::parse`, same `argv`). If that fails, or what it gives cannot be prepared
//! (STATIC_ROOT not found, a bad header value), the reload is refused with one log line
//! naming every problem and its place, and the running configuration stays. Otherwise:
//! - the live part ([`Live`]: CORS header, access-log format, the proxy with its upstreams,
//!   media and internal mounts) is swapped in whole. The proxy is rebuilt only when its
//!   options changed (then its health state starts fresh, as nginx's new workers do).
//!   Requests already in flight keep what they loaded: a download or a slow upstream
//!   request finishes on the old configuration, new requests get the new one;
//! - new table options (root, STATIC_URL, manifest name, max-age, memory limits) go to the
//!   reloader, which rebuilds the table from them and swaps it (`reload`);
//! - the header rules (`[headers]`) are swapped whole, and the access log goes to the new
//!   `[log] access_log` from the next line on (a file that cannot be opened refuses the
//!   reload);
//! - options of `[serve]` (listeners, workers, connection timeouts, body size) and of
//!   `[tls]` and `[acme]` (which certificates, where HTTPS listens) cannot change without a
//!   restart: each one that changed is logged as needing one and left as it is. The
//!   certificate *files* are re-read by every SIGHUP (and when they change on disk), so a
//!   renewed certificate needs no restart.
//!
//! Adding a reloadable part: build it from the new settings in [`prepare`] (an error
//! refuses the whole reload: nothing is swapped), add it to [`Prepared`], and swap it in at
//! [`Reconfigure::reload`]'s "commit" step.

use super::config::{ServeArgs, RESTART_SECTIONS};
use super::config_file::key_of;
use super::header_rules::{HeaderRules, Rule};
use super::log;
use super::path::normalize_prefix;
use super::proxy::{self, Proxy};
use super::reload::Wake;
use super::resolve::{self, Failure, Loaded};
use super::state::{Live, State};
use super::table::BuildOptions;
use actix_web::http::header::HeaderValue;
use arc_swap::ArcSwap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// How the settings are read again: `resolve::parse` with the process's `argv`.
pub type Reread = Box<dyn Fn() -> Result<Loaded, Failure> + Send + Sync>;

/// Everything a configuration is made into, before anything is swapped.
pub struct Prepared {
    pub build: BuildOptions,
    pub cors: Option<HeaderValue>,
    pub proxy: proxy::Options,
}

/// Builds the parts of `args` (from the options, or the Django project); `max_body` is the
/// running server's (`[serve]`, restart-only). Blocking: may run discovery.
pub fn prepare(args: &ServeArgs, max_body: u64) -> Result<Prepared, String> {
    let (root, static_url) = resolve::locate(args).map_err(|e| format!("{e:#}"))?;
    // Absolute, so the reloader can watch the parent even for `--root static`.
    let root = if root.as_os_str().is_empty() {
        root
    } else {
        std::path::absolute(&root).unwrap_or(root)
    };
    let build = BuildOptions {
        root,
        prefix: normalize_prefix(&static_url),
        manifest_name: args.manifest_name.clone(),
        max_age: args.max_age,
        mem_file_max: args.mem_file_max,
        mem_total_max: args.mem_total_max,
        dictionaries: !args.no_dictionaries,
    };
    let cors = if args.no_cors {
        None
    } else {
        Some(HeaderValue::from_str(&args.cors_origin).map_err(|_| {
            format!(
                "{:?} (cors_origin) is not a valid header value",
                args.cors_origin
            )
        })?)
    };
    certificates(args)?;
    Ok(Prepared {
        build,
        cors,
        proxy: proxy_options(args, max_body),
    })
}

/// The HTTPS options hold together, and every certificate file pair loads (what `staticd
/// check` reports; at startup the same checks stop staticd).
pub fn certificates(args: &ServeArgs) -> Result<(), String> {
    args.tls.check().map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now();
    for (cert, key) in args.tls.tls_certs.iter().zip(&args.tls.tls_keys) {
        let pair = crate::tls::CertPair {
            cert: cert.clone(),
            key: key.clone(),
        };
        crate::tls::certs::load_pair(&pair, now).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The proxy's options from the settings.
pub fn proxy_options(args: &ServeArgs, max_body: u64) -> proxy::Options {
    proxy::Options {
        upstreams: args.upstreams.clone(),
        trusted: args.trusted_proxies.clone(),
        x_real_ip: args.x_real_ip,
        max_body,
        connect_timeout: args.connect_timeout,
        read_timeout: args.read_timeout,
        balance: args.balance,
        max_fails: args.max_fails,
        fail_timeout: args.fail_timeout,
        health_check: args.health_check.clone(),
        health_interval: args.health_interval,
        internal: args.internal.clone(),
        media: args.media_root.clone().map(|dir| proxy::files::Mount {
            prefix: normalize_prefix(&args.media_url),
            dir,
        }),
        media_max_age: args.max_age,
        ws_idle_timeout: args.ws_idle_timeout,
        compress: super::compress::Policy {
            enabled: !args.no_proxy_compress,
            types: super::compress::types::Types::new(
                args.proxy_compress_types.clone(),
                args.no_proxy_compress_types.clone(),
            ),
            exclude_paths: args.no_proxy_compress_paths.clone(),
            min_length: args.proxy_compress_min_length,
        },
    }
}

/// The running configuration and how to read it again.
pub struct Reconfigure {
    pub reread: Reread,
    pub current: Loaded,
    /// The reloader's build options.
    pub build: Arc<ArcSwap<BuildOptions>>,
    pub nudge: SyncSender<Wake>,
}

/// The file keys whose values differ, in the order of `new`.
pub fn changed(old: &Loaded, new: &Loaded) -> Vec<String> {
    new.values
        .iter()
        .filter(|(id, v)| old.values.get(*id) != Some(v))
        .map(|(id, _)| id.clone())
        .collect()
}

/// `static.max_age` as the file spells it: `[static] max_age`.
fn shown(id: &str) -> String {
    key_of(id).map_or_else(|| id.to_string(), |k| k.to_string())
}

impl Reconfigure {
    /// Reads the configuration again and applies what can change without a restart.
    /// Returns the new proxy when one replaced the old (its health loop is the caller's to
    /// start). Blocking: reads files, may run discovery.
    pub fn reload(&mut self, state: &State) -> Option<Arc<Proxy>> {
        let place = self.current.file.as_ref().map_or_else(
            || "the command line and environment".to_string(),
            |f| f.display().to_string(),
        );
        let mut new = match (self.reread)() {
            Ok(l) => l,
            Err(f) => {
                tracing::warn!("reload refused, the running configuration stays: {f}");
                return None;
            }
        };
        let max_body = self.current.args.max_body;
        let prepared = match prepare(&new.args, max_body) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("reload refused, the running configuration stays: {e}");
                return None;
            }
        };
        let changed = changed(&self.current, &new);
        let (restart, applied): (Vec<&String>, Vec<&String>) = changed
            .iter()
            .partition(|id| key_of(id).is_some_and(|k| RESTART_SECTIONS.contains(&k.section())));
        for id in &restart {
            tracing::warn!(
                "reload: {} changed: needs a restart; kept as it is",
                shown(id)
            );
            // Still what runs: a later reload compares with it.
            if let Some(v) = self.current.values.get(*id) {
                new.values.insert((*id).clone(), v.clone());
            }
        }

        // The access log's file is opened here, the one step that can still fail: an error
        // refuses the reload before anything is swapped (the current file stays).
        let access = &new.args.observe.access_log;
        if *access != self.current.args.observe.access_log {
            if let Err(e) = log::set_access_target(access) {
                tracing::warn!("reload refused, the running configuration stays: access_log: {e}");
                return None;
            }
        }

        // Commit: nothing below can fail.
        let observe = &new.args.observe;
        let rules: Vec<Rule> = observe
            .headers
            .iter()
            .chain(&observe.remove_headers)
            .cloned()
            .collect();
        state
            .observe
            .rules
            .store(Arc::new(HeaderRules::new(&rules)));
        let old = state.live.load_full();
        let proxy = if *old.proxy.options() == prepared.proxy {
            old.proxy.clone()
        } else {
            Arc::new(Proxy::new(prepared.proxy))
        };
        let fresh = !Arc::ptr_eq(&proxy, &old.proxy);
        state.live.store(Arc::new(Live {
            cors: prepared.cors,
            log_format: new.args.log_format,
            proxy: proxy.clone(),
        }));
        if fresh {
            old.proxy.retire();
        }
        if **self.build.load() != prepared.build {
            self.build.store(Arc::new(prepared.build));
            let _ = self.nudge.try_send(Wake::Reconfigured);
        }
        let applied: Vec<String> = applied.iter().map(|id| shown(id)).collect();
        if applied.is_empty() {
            tracing::info!("configuration reloaded from {place}: nothing to apply");
        } else {
            tracing::info!(
                "configuration reloaded from {place}: {} applied",
                applied.join(", ")
            );
        }
        self.current = new;
        fresh.then_some(proxy)
    }
}
