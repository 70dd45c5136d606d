//! Every integration test, as modules of one binary: one link instead of one per file, one
//! check of the Python venv, and one pool of test threads for all of them (a slow module no
//! longer runs alone at the end of its own binary). `cargo test MODULE::` runs one module.
//! The shared harness is `common` (see tests/common/mod.rs).

mod common;

mod browser;
mod bundler;
mod cli;
mod collect_failures;
mod collect_policy;
mod conformance;
mod conformance_apps;
mod delta;
mod deploy_systemd;
mod discover;
mod discover_memo;
mod h1_edge;
mod incremental;
mod properties;
mod proxy_compress;
mod proxy_deploy;
mod proxy_gunicorn;
mod proxy_keepalive;
mod publish;
mod publish_moto;
mod redbot;
mod serve_acme;
mod serve_collect;
mod serve_config;
mod serve_h1;
mod serve_h2;
mod serve_http;
mod serve_listen;
mod serve_observe;
mod serve_ops;
mod serve_origin;
mod serve_reload;
mod serve_sighup;
mod serve_tls;
mod serve_traversal;
mod tls_acme;
mod tls_handshake;
mod upstream_strict;
mod watch;
mod watch_stage;
