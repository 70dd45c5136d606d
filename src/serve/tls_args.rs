//! `staticd serve`'s HTTPS flags (one clap group, flattened into `ServeArgs`), and their
//! checks.
//!
//! The listeners, decided here and written in the README ("HTTPS"):
//! - `--https-bind ADDR` is the TLS listener (HTTP/2 and HTTP/1.1 by ALPN). HTTPS is on when
//!   certificates are given (`--tls-cert`/`--tls-key` pairs, `--acme-domain`), and then
//!   `--https-bind` is required: no default port, as `--bind`'s default is a loopback one
//!   and 443 needs privileges; saying where HTTPS listens is part of turning it on.
//! - `--bind` stays the plain-HTTP listener. With HTTPS on it answers ACME HTTP-01
//!   challenges and redirects everything else to HTTPS (308), unless `--no-redirect-http`
//!   keeps it serving as without HTTPS (a load balancer's health check on a private
//!   network, say; the challenges are still answered).

use crate::tls::acme::{ChallengeKind, LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
use std::net::SocketAddr;
use std::path::PathBuf;

/// HTTPS: TLS with certificates from files or ACME, the redirect, HSTS.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "HTTPS")]
pub struct TlsArgs {
    /// Address of the HTTPS listener (TLS 1.2/1.3; HTTP/2 or HTTP/1.1 by ALPN). Required
    /// with --tls-cert or --acme-domain; --bind then redirects to it (see --no-redirect-http).
    #[arg(id = "serve.https_bind", long = "https-bind", value_name = "ADDR")]
    pub https_bind: Option<SocketAddr>,

    /// Certificate chain (PEM, leaf first), repeatable: one certificate per --tls-cert, its
    /// key the --tls-key in the same position. Chosen by SNI; the first is the default.
    /// Reloaded when the files change and on SIGHUP.
    #[arg(id = "tls.cert", long = "tls-cert", value_name = "PEM")]
    pub tls_certs: Vec<PathBuf>,

    /// Private key (PEM) of the --tls-cert in the same position.
    #[arg(id = "tls.key", long = "tls-key", value_name = "PEM")]
    pub tls_keys: Vec<PathBuf>,

    /// Obtain and renew a certificate for this name through ACME (repeatable: one
    /// certificate per name). The CA connects to port 443 (TLS-ALPN-01) or 80 (HTTP-01) of
    /// the name: --https-bind or --bind must be reachable there.
    #[arg(
        id = "acme.domains",
        long = "acme-domain",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub acme_domains: Vec<String>,

    /// Contact address for the ACME account (the CA's expiry and policy mail).
    #[arg(id = "acme.email", long = "acme-email", value_name = "EMAIL")]
    pub acme_email: Option<String>,

    /// ACME directory URL.
    #[arg(id = "acme.directory", long = "acme-directory", value_name = "URL", default_value = LETS_ENCRYPT)]
    pub acme_directory: String,

    /// Let's Encrypt's staging directory (certificates no browser trusts, generous rate
    /// limits): for trying a setup out.
    #[arg(id = "acme.staging", long = "acme-staging")]
    pub acme_staging: bool,

    /// Where the ACME account and certificates are kept (0700; keys 0600). Replicas may
    /// share it. Default: $STATE_DIRECTORY/acme, $XDG_DATA_HOME/staticd/acme,
    /// ~/.local/share/staticd/acme or /var/lib/staticd/acme.
    #[arg(id = "acme.store", long = "acme-store", value_name = "DIR")]
    pub acme_store: Option<PathBuf>,

    /// CA certificate(s) (PEM) to trust for the ACME server's own HTTPS instead of the
    /// system's: a private CA (step-ca), or Pebble in tests.
    #[arg(id = "acme.ca_root", long = "acme-ca-root", value_name = "PEM")]
    pub acme_ca_root: Option<PathBuf>,

    /// ACME challenge types to answer, in order of preference (each failed attempt moves to
    /// the next): tls-alpn-01 needs --https-bind reachable on port 443, http-01 needs --bind
    /// reachable on port 80.
    #[arg(
        id = "acme.challenges",
        long = "acme-challenge",
        value_name = "TYPE",
        value_enum,
        value_delimiter = ',',
        default_value = "tls-alpn-01,http-01"
    )]
    pub acme_challenges: Vec<Challenge>,

    /// Send `Strict-Transport-Security: max-age=SECONDS` on HTTPS responses. Off by default:
    /// browsers then refuse plain HTTP to the name for that long, whatever happens to the
    /// certificate; start small (300) and raise it once HTTPS is known to work.
    #[arg(id = "tls.hsts", long = "hsts", value_name = "SECONDS")]
    pub hsts: Option<u64>,

    /// Add `includeSubDomains` to HSTS: every subdomain must serve HTTPS too.
    #[arg(id = "tls.hsts_include_subdomains", long = "hsts-include-subdomains")]
    pub hsts_include_subdomains: bool,

    /// Add `preload` to HSTS (needs --hsts-include-subdomains and --hsts ≥ 31536000). Being
    /// on the browsers' preload list is hard to undo.
    #[arg(id = "tls.hsts_preload", long = "hsts-preload")]
    pub hsts_preload: bool,

    /// With HTTPS on, keep --bind serving as without HTTPS instead of redirecting to HTTPS
    /// (ACME challenges are answered either way).
    #[arg(id = "tls.no_redirect_http", long = "no-redirect-http")]
    pub no_redirect_http: bool,

    /// The port redirects name, when clients reach HTTPS on another port than
    /// --https-bind's (a container's port mapping). Default: --https-bind's.
    #[arg(id = "tls.redirect_port", long = "redirect-port", value_name = "PORT")]
    pub redirect_port: Option<u16>,
}

/// `--acme-challenge` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Challenge {
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
    #[value(name = "http-01")]
    Http01,
}

impl From<Challenge> for ChallengeKind {
    fn from(c: Challenge) -> Self {
        match c {
            Challenge::TlsAlpn01 => ChallengeKind::TlsAlpn01,
            Challenge::Http01 => ChallengeKind::Http01,
        }
    }
}

/// A combination of HTTPS flags that cannot work (what clap's own rules do not cover).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsArgsError {
    #[error("--tls-cert is given {certs} times and --tls-key {keys}: give one key per certificate, in the same order")]
    Unpaired { certs: usize, keys: usize },
    #[error(
        "--https-bind is needed with {0}: the address of the HTTPS listener (0.0.0.0:443, say)"
    )]
    NoHttpsBind(&'static str),
    #[error("--https-bind needs certificates: --tls-cert/--tls-key, or --acme-domain")]
    NoCertificates,
    #[error("{0} needs HTTPS (--https-bind with --tls-cert or --acme-domain)")]
    NeedsHttps(&'static str),
    #[error("{0} needs --acme-domain (it only affects certificates obtained through ACME)")]
    NeedsAcme(&'static str),
    #[error("{0} needs --hsts")]
    NeedsHsts(&'static str),
    #[error("--acme-staging and --acme-directory both say which ACME server to use: give one")]
    StagingAndDirectory,
    #[error(transparent)]
    Hsts(#[from] super::https::HstsError),
}

impl TlsArgs {
    /// Whether HTTPS is on (the flags having been [`TlsArgs::check`]ed).
    pub fn enabled(&self) -> bool {
        self.https_bind.is_some()
    }

    /// The challenge types, most preferred first, each once.
    pub fn challenges(&self) -> Vec<ChallengeKind> {
        let mut kinds: Vec<ChallengeKind> = Vec::new();
        for c in &self.acme_challenges {
            let k = ChallengeKind::from(*c);
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        kinds
    }

    /// The ACME directory: `--acme-directory`, or Let's Encrypt's staging one.
    pub fn directory(&self) -> &str {
        if self.acme_staging {
            LETS_ENCRYPT_STAGING
        } else {
            &self.acme_directory
        }
    }

    /// Refuses the combinations that cannot work, naming the flags.
    pub fn check(&self) -> Result<(), TlsArgsError> {
        let (certs, keys) = (self.tls_certs.len(), self.tls_keys.len());
        if certs != keys {
            return Err(TlsArgsError::Unpaired { certs, keys });
        }
        let has_certs = certs > 0 || !self.acme_domains.is_empty();
        match (self.https_bind.is_some(), has_certs) {
            (false, true) if certs > 0 => return Err(TlsArgsError::NoHttpsBind("--tls-cert")),
            (false, true) => return Err(TlsArgsError::NoHttpsBind("--acme-domain")),
            (true, false) => return Err(TlsArgsError::NoCertificates),
            _ => {}
        }
        if !self.enabled() {
            for (given, flag) in [
                (self.hsts.is_some(), "--hsts"),
                (self.no_redirect_http, "--no-redirect-http"),
                (self.redirect_port.is_some(), "--redirect-port"),
            ] {
                if given {
                    return Err(TlsArgsError::NeedsHttps(flag));
                }
            }
        }
        // What clap's `requires` would say, here because a value from staticd.toml is a
        // default to clap and would not count as given.
        if self.acme_domains.is_empty() {
            for (given, flag) in [
                (self.acme_email.is_some(), "--acme-email"),
                (self.acme_staging, "--acme-staging"),
                (self.acme_directory != LETS_ENCRYPT, "--acme-directory"),
                (self.acme_store.is_some(), "--acme-store"),
                (self.acme_ca_root.is_some(), "--acme-ca-root"),
            ] {
                if given {
                    return Err(TlsArgsError::NeedsAcme(flag));
                }
            }
        }
        if self.acme_staging && self.acme_directory != LETS_ENCRYPT {
            return Err(TlsArgsError::StagingAndDirectory);
        }
        if self.hsts.is_none() {
            for (given, flag) in [
                (self.hsts_include_subdomains, "--hsts-include-subdomains"),
                (self.hsts_preload, "--hsts-preload"),
            ] {
                if given {
                    return Err(TlsArgsError::NeedsHsts(flag));
                }
            }
        }
        self.hsts_value()?;
        Ok(())
    }

    /// The `Strict-Transport-Security` value, when `--hsts` is given.
    pub fn hsts_value(
        &self,
    ) -> Result<Option<actix_web::http::header::HeaderValue>, super::https::HstsError> {
        self.hsts
            .map(|max_age| {
                super::https::hsts_value(max_age, self.hsts_include_subdomains, self.hsts_preload)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        tls: TlsArgs,
    }

    fn parse(args: &[&str]) -> Result<TlsArgs, String> {
        let cli = Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.tls.check().map_err(|e| e.to_string())?;
        Ok(cli.tls)
    }

    #[test]
    fn https_is_off_by_default_and_on_with_a_listener_and_certificates() {
        let off = parse(&[]).unwrap();
        assert!(!off.enabled());
        assert_eq!(off.directory(), LETS_ENCRYPT);
        let on = parse(&[
            "--https-bind",
            "127.0.0.1:8443",
            "--tls-cert",
            "a.crt",
            "--tls-key",
            "a.key",
            "--tls-cert",
            "b.crt",
            "--tls-key",
            "b.key",
        ])
        .unwrap();
        assert!(on.enabled());
        assert_eq!(on.tls_certs.len(), 2);
        let acme = parse(&[
            "--https-bind",
            "0.0.0.0:443",
            "--acme-domain",
            "example.com",
            "--acme-staging",
        ])
        .unwrap();
        assert_eq!(acme.directory(), LETS_ENCRYPT_STAGING);
        assert_eq!(
            acme.challenges(),
            [ChallengeKind::TlsAlpn01, ChallengeKind::Http01]
        );
        let http = parse(&[
            "--https-bind",
            "0.0.0.0:443",
            "--acme-domain",
            "example.com",
            "--acme-challenge",
            "http-01",
        ])
        .unwrap();
        assert_eq!(http.challenges(), [ChallengeKind::Http01]);
    }

    #[test]
    fn impossible_combinations_are_refused_naming_the_flags() {
        let e = parse(&["--tls-cert", "a", "--tls-key", "k"]).unwrap_err();
        assert!(e.contains("--https-bind is needed with --tls-cert"), "{e}");
        let e = parse(&["--acme-domain", "a.test"]).unwrap_err();
        assert!(
            e.contains("--https-bind is needed with --acme-domain"),
            "{e}"
        );
        let e = parse(&["--https-bind", "127.0.0.1:1"]).unwrap_err();
        assert!(e.contains("--https-bind needs certificates"), "{e}");
        let e = parse(&[
            "--https-bind",
            "127.0.0.1:1",
            "--tls-cert",
            "a",
            "--tls-cert",
            "b",
            "--tls-key",
            "k",
        ])
        .unwrap_err();
        assert!(
            e.contains("--tls-cert is given 2 times and --tls-key 1"),
            "{e}"
        );
        let e = parse(&["--hsts", "300"]).unwrap_err();
        assert!(e.contains("--hsts needs HTTPS"), "{e}");
        let e = parse(&["--no-redirect-http"]).unwrap_err();
        assert!(e.contains("--no-redirect-http needs HTTPS"), "{e}");
        let e = parse(&[
            "--https-bind",
            "127.0.0.1:1",
            "--acme-domain",
            "a.test",
            "--hsts",
            "300",
            "--hsts-preload",
        ])
        .unwrap_err();
        assert!(e.contains("--hsts-preload needs"), "{e}");
        // clap's own rules: an ACME option without a domain, a key without a certificate.
        assert!(parse(&["--acme-email", "a@b.c"]).is_err());
        assert!(parse(&["--tls-key", "k"]).is_err());
        assert!(parse(&["--hsts-preload"]).is_err());
    }
}
