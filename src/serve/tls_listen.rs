//! The HTTPS listener (`--https-bind`), and what keeps its certificates current.
//!
//! Each accepted TCP connection gets its TLS handshake (`tls::TlsAcceptor`: certificate by
//! SNI, TLS 1.2/1.3, resumption), then goes by ALPN: `h2` to staticd's HTTP/2 server over the
//! TLS stream (the same as h2c's: `h2::serve`), `http/1.1` or none to the HTTP/1 loop over a `stream::TlsClient`; an ACME TLS-ALPN-01 validation handshake ends there.
//!
//! [`Https`] holds what lives as long as the server: the certificate files and their watch
//! (reloaded on change, and on SIGHUP through [`Https::reload_certificates`]), the ACME
//! tasks, and the HTTP-01 answers the plain listener gives ([`Https::plain_front`]). A new
//! certificate only affects handshakes made after it is installed: connections in flight
//! keep theirs and are never dropped for it.

use super::conn::Settings;
use super::h1;
use super::h2;
use super::https::Front;
use super::metrics;
use super::socket::Peer;
use super::state::State;
use super::stream::TlsClient;
use super::tls_args::TlsArgs;
use crate::tls::acme::{AcmeConfig, ChallengeKind};
use crate::tls::files::FileWatch;
use crate::tls::{
    Accepted, Acme, AcmeHandle, CertPair, FileCerts, Http01Tokens, Protocol, SniResolver,
    TlsAcceptor, TlsAlpnChallenges,
};
use actix_service::{fn_factory, fn_service, ServiceFactory};
use anyhow::Context as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use tokio::net::TcpStream;

/// HTTPS as configured: certificates, ACME, and what the listeners do about it.
pub struct Https {
    /// `--https-bind`.
    pub bind: SocketAddr,
    pub acceptor: TlsAcceptor,
    pub resolver: Arc<SniResolver>,
    files: Option<Arc<FileCerts>>,
    _watch: Option<FileWatch>,
    acme_config: Option<AcmeConfig>,
    acme: Option<AcmeHandle>,
    http01: Option<Arc<Http01Tokens>>,
    hsts: Option<actix_web::http::header::HeaderValue>,
    redirect: bool,
    redirect_port: Option<u16>,
}

impl Https {
    /// HTTPS from the flags, `None` when it is off. Every certificate file must load: a bad
    /// one stops staticd here, naming the file and why.
    pub fn from_args(args: &TlsArgs) -> anyhow::Result<Option<Https>> {
        args.check()?;
        let Some(bind) = args.https_bind else {
            return Ok(None);
        };
        let resolver = SniResolver::new(TlsAlpnChallenges::new());
        let (files, watch) = if args.tls_certs.is_empty() {
            (None, None)
        } else {
            let pairs = args
                .tls_certs
                .iter()
                .zip(&args.tls_keys)
                .map(|(cert, key)| CertPair {
                    cert: cert.clone(),
                    key: key.clone(),
                })
                .collect();
            let files = FileCerts::load(pairs, resolver.clone())?;
            let watch = files
                .watch()
                .context("cannot start watching the certificate files")?;
            (Some(files), Some(watch))
        };
        let acme_config = (!args.acme_domains.is_empty()).then(|| {
            let mut c = AcmeConfig::new(args.acme_domains.clone());
            c.email = args.acme_email.clone();
            c.directory = args.directory().to_string();
            if let Some(store) = &args.acme_store {
                c.store = store.clone();
            }
            c.ca_root = args.acme_ca_root.clone();
            c.challenges = args.challenges();
            c
        });
        let config = crate::tls::config::server_config(
            resolver.clone(),
            crate::tls::config::Options {
                acme_tls_alpn: acme_config
                    .as_ref()
                    .is_some_and(|c| c.challenges.contains(&ChallengeKind::TlsAlpn01)),
            },
        )
        .context("cannot set up TLS")?;
        Ok(Some(Https {
            bind,
            acceptor: TlsAcceptor::new(config),
            resolver,
            files,
            _watch: watch,
            http01: acme_config.as_ref().map(|_| Http01Tokens::new()),
            acme_config,
            acme: None,
            hsts: args.hsts_value()?,
            redirect: !args.no_redirect_http,
            redirect_port: args.redirect_port,
        }))
    }

    /// Starts ACME (if `--acme-domain` is given) on the current tokio runtime: certificates
    /// already in the store are installed at once, missing or due ones are ordered in the
    /// background.
    pub fn start_acme(&mut self) -> anyhow::Result<()> {
        let (Some(config), Some(http01)) = (self.acme_config.take(), self.http01.clone()) else {
            return Ok(());
        };
        let domains = config.domains.join(", ");
        let directory = config.directory.clone();
        let challenges: Vec<String> = config
            .challenges
            .iter()
            .map(|c| match c {
                ChallengeKind::TlsAlpn01 => format!("{c} on {}", self.bind),
                ChallengeKind::Http01 => format!("{c} on the plain listener"),
            })
            .collect();
        let acme = Acme::start(config, self.resolver.clone(), http01)?;
        tracing::info!(
            "ACME: certificates for {domains} from {directory}, kept in {}; answering {}",
            acme.store_dir().display(),
            challenges.join(", then ")
        );
        self.acme = Some(acme);
        Ok(())
    }

    /// Re-reads every `--tls-cert`/`--tls-key` pair (SIGHUP). A pair that fails its checks
    /// is refused with a log line and its certificate in use stays.
    pub fn reload_certificates(&self) {
        match &self.files {
            Some(files) => {
                let report = files.reload();
                tracing::info!(
                    "certificates re-read: {} replaced, {} refused, {} unchanged",
                    report.loaded.len(),
                    report.refused.len(),
                    files.pairs().len() - report.loaded.len() - report.refused.len()
                );
            }
            None => tracing::info!("no certificate files to re-read (ACME renews its own)"),
        }
    }

    /// What the plain listener does with HTTPS on (`https_port`: where HTTPS listens):
    /// answer ACME HTTP-01 challenges, and redirect the rest unless `--no-redirect-http`.
    pub fn plain_front(&self, https_port: u16) -> Front {
        Front {
            secure: false,
            hsts: None,
            http01: self.http01.clone(),
            redirect_port: self
                .redirect
                .then(|| self.redirect_port.unwrap_or(https_port)),
        }
    }

    /// What the TLS listener does: `https` requests, HSTS.
    pub fn tls_front(&self) -> Front {
        Front {
            secure: true,
            hsts: self.hsts.clone(),
            http01: None,
            redirect_port: None,
        }
    }
}

/// The per-worker service factory of the TLS listener (`settings.front` is
/// [`Https::tls_front`]'s).
pub fn factory(
    state: Arc<State>,
    settings: Settings,
    acceptor: TlsAcceptor,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = (), InitError = ()> {
    let settings = Rc::new(settings);
    fn_factory(move || {
        let (state, settings, acceptor) = (state.clone(), settings.clone(), acceptor.clone());
        async move {
            Ok(fn_service(move |tcp: TcpStream| {
                serve(tcp, acceptor.clone(), state.clone(), settings.clone())
            }))
        }
    })
}

async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    settings: Rc<Settings>,
) -> Result<(), ()> {
    // nginx's `tcp_nodelay on`, for the handshake's flights as for responses.
    let _ = tcp.set_nodelay(true);
    let _open = (metrics::Connection::open(), super::trim::Open::count());
    let local = tcp.local_addr().ok();
    let peer = tcp.peer_addr().ok();
    match acceptor.accept(tcp).await {
        Ok(Accepted::Http {
            stream,
            protocol: Protocol::H2,
            ..
        }) => {
            let ends = h2::Endpoints {
                local,
                peer: peer.map(|a| Peer::ip(a.ip())),
            };
            h2::serve(*stream, ends, &state, &settings).await;
        }
        Ok(Accepted::Http { stream, .. }) => {
            let io = TlsClient::new(*stream);
            let peer = peer.map(|a| Peer::ip(a.ip()));
            h1::serve_over(&io, peer, &state, &settings).await;
        }
        Ok(Accepted::AcmeValidation) => {}
        // The client's doing (no common version or ALPN, a name we have no certificate for,
        // a port scan, a timeout): nothing to answer.
        Err(e) => tracing::debug!(peer = ?peer, "TLS handshake failed: {e}"),
    }
    Ok(())
}
