//! Automatic certificates (ACME, RFC 8555) for `--acme-domain`s, through instant-acme.
//!
//! One certificate per domain, as Caddy does: a domain whose validation fails never holds
//! back the others, and each renews on its own schedule. For each domain a task on the
//! tokio runtime:
//! 1. takes the domain's lock in the store (`flock`, see [`store`]), so that replicas sharing
//!    the store never place two orders for one domain;
//! 2. loads the stored certificate if it is valid and not yet due (written by an earlier run
//!    or by another replica: that replica's order is ours too);
//! 3. otherwise orders one, answering HTTP-01 or TLS-ALPN-01 (first of
//!    [`AcmeConfig::challenges`], the next one after each failure), stores it (0600) and
//!    installs it in the [`SniResolver`];
//! 4. sleeps until two thirds of the lifetime ([`schedule::renew_at`]), at most an hour at a
//!    time (the store is looked at again then: another replica may have renewed), or after a
//!    failure for a jittered exponential backoff ([`schedule::Backoff`]).
//!
//! A failure never touches the resolver: the certificate in use stays until a new one has
//! been obtained and checked ([`crate::tls::certs::certified`]). Certificates already in
//! the store are installed by [`Acme::start`] itself, before any network, so a restart
//! serves HTTPS at once even when the CA is down.

pub mod challenge;
mod order;
pub mod schedule;
pub mod store;

pub use challenge::{Http01Tokens, TlsAlpnChallenges};
pub use schedule::Backoff;

use super::certs::{self, CertError, Loaded};
use super::resolver::{SniResolver, Source};
use instant_acme::{Account, AccountBuilder, NewAccount};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use store::{Store, StoreError};
use tokio::sync::Notify;

/// Let's Encrypt's production directory (the default of `--acme-directory`).
pub const LETS_ENCRYPT: &str = instant_acme::LetsEncrypt::Production.url();
/// Let's Encrypt's staging directory (`--acme-staging`): untrusted certificates, generous
/// rate limits; for trying a setup out.
pub const LETS_ENCRYPT_STAGING: &str = instant_acme::LetsEncrypt::Staging.url();

/// Longest sleep between two looks at a domain, whatever its renewal date.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// An order that takes longer than this (a CA that accepts connections and then hangs) is
/// abandoned and counts as a failure.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// The challenge types staticd answers. DNS-01 needs a DNS provider's API, so no wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// Port 80: `/.well-known/acme-challenge/<token>` ([`Http01Tokens`]).
    Http01,
    /// Port 443: ALPN `acme-tls/1` ([`TlsAlpnChallenges`]).
    TlsAlpn01,
}

impl ChallengeKind {
    fn acme_type(self) -> instant_acme::ChallengeType {
        match self {
            Self::Http01 => instant_acme::ChallengeType::Http01,
            Self::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        })
    }
}

/// Everything ACME needs to know.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// `--acme-domain` (repeatable): one certificate each.
    pub domains: Vec<String>,
    /// `--acme-email`: the account's contact, for the CA's expiry and policy mail.
    pub email: Option<String>,
    /// `--acme-directory` (default [`LETS_ENCRYPT`]; `--acme-staging` gives
    /// [`LETS_ENCRYPT_STAGING`]).
    pub directory: String,
    /// `--acme-store` (default [`store::default_store`]).
    pub store: PathBuf,
    /// Challenge types to answer, most preferred first; attempt n uses entry n mod len.
    /// Phase 2 lists the ones its listeners can answer (TLS-ALPN-01 needs the TLS listener on
    /// port 443, HTTP-01 the plain one on port 80).
    pub challenges: Vec<ChallengeKind>,
    /// PEM root(s) to trust for the ACME server's own HTTPS instead of the system's (a
    /// private CA such as step-ca, or Pebble in tests).
    pub ca_root: Option<PathBuf>,
    pub backoff: Backoff,
}

impl AcmeConfig {
    /// Defaults: Let's Encrypt production, the default store, TLS-ALPN-01 then HTTP-01 (the
    /// first needs nothing but the HTTPS port itself).
    pub fn new(domains: Vec<String>) -> Self {
        Self {
            domains,
            email: None,
            directory: LETS_ENCRYPT.to_string(),
            store: store::default_store(),
            challenges: vec![ChallengeKind::TlsAlpn01, ChallengeKind::Http01],
            ca_root: None,
            backoff: Backoff::default(),
        }
    }
}

/// What went wrong; every variant names the domain, file or option.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("--acme-domain {domain:?}: {reason}")]
    Domain { domain: String, reason: String },
    #[error("ACME: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ACME account at {directory}: cannot {step}: {source}")]
    Account {
        directory: String,
        step: &'static str,
        source: instant_acme::Error,
    },
    #[error("{domain}: ACME: cannot {step}: {source}")]
    Protocol {
        domain: String,
        step: &'static str,
        source: instant_acme::Error,
    },
    #[error("{domain}: ACME: {reason}")]
    Validation { domain: String, reason: String },
    #[error("{domain}: cannot make a key or CSR: {source}")]
    Key {
        domain: String,
        source: rcgen::Error,
    },
    #[error("{domain}: the CA issued a certificate that is refused: {source}")]
    Issued { domain: String, source: CertError },
    #[error("{domain}: ACME: no answer from the CA within {secs} s", secs = ORDER_TIMEOUT.as_secs())]
    Timeout { domain: String },
}

/// What one domain's task has done, for logs, tests and a status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainStatus {
    /// The certificate installed in the resolver.
    pub serial: Option<String>,
    pub not_after: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    /// Orders this process placed with the CA.
    pub orders: u32,
    /// Certificates this process obtained from the CA.
    pub issued: u32,
    /// Certificates this process took from the store (an earlier run's or another
    /// replica's).
    pub loaded: u32,
    /// Consecutive failed attempts (0 after a success).
    pub failures: u32,
    pub last_error: Option<String>,
    /// The challenge type of the last order.
    pub last_challenge: Option<ChallengeKind>,
    /// When the task looks at the domain again.
    pub next_attempt: Option<SystemTime>,
}

/// Normalized, checked `--acme-domain`.
pub fn check_domain(domain: &str) -> Result<String, AcmeError> {
    let bad = |reason: &str| AcmeError::Domain {
        domain: domain.to_string(),
        reason: reason.to_string(),
    };
    let d = super::names::normalize(domain.trim()).ok_or_else(|| bad("empty"))?;
    if d.starts_with("*.") {
        return Err(bad(
            "a wildcard needs the DNS-01 challenge, which staticd does not answer; list each name",
        ));
    }
    if d.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad("an IP address, not a domain name"));
    }
    if d.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each dot-separated label must have 1 to 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label cannot start or end with '-'"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "only letters, digits, '-' and '.' (write internationalized names in xn-- form)",
            ));
        }
    }
    Ok(d)
}

struct Shared {
    config: AcmeConfig,
    store: Store,
    resolver: Arc<SniResolver>,
    http01: Arc<Http01Tokens>,
    /// The account, with the bytes of the account file it came from (to tell, when the CA
    /// says it does not know the account, whether another replica already made a new one).
    account: tokio::sync::Mutex<Option<(Account, Vec<u8>)>>,
    status: Mutex<HashMap<String, DomainStatus>>,
    wake: HashMap<String, Arc<Notify>>,
}

/// The running ACME tasks. Dropping it stops them (an order in flight is abandoned; its
/// challenge answers are withdrawn).
pub struct AcmeHandle {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for AcmeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeHandle")
            .field("domains", &self.shared.config.domains)
            .finish()
    }
}

/// Entry point: see [`Acme::start`].
pub struct Acme;

impl Acme {
    /// Checks `config`, opens the store, installs the stored certificates that are still
    /// valid into `resolver`, then spawns one task per domain on the current tokio runtime
    /// (call it from within one, e.g. inside actix's `System`). `http01` is what the
    /// plain-HTTP listener answers from; TLS-ALPN-01 certificates go to
    /// `resolver.challenges()`.
    pub fn start(
        config: AcmeConfig,
        resolver: Arc<SniResolver>,
        http01: Arc<Http01Tokens>,
    ) -> Result<AcmeHandle, AcmeError> {
        let mut config = config;
        let mut domains = Vec::new();
        for d in &config.domains {
            let d = check_domain(d)?;
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        if domains.is_empty() {
            return Err(AcmeError::Config("no --acme-domain given".into()));
        }
        if config.challenges.is_empty() {
            return Err(AcmeError::Config("no challenge type enabled".into()));
        }
        if let Some(root) = &config.ca_root {
            if let Err(e) = std::fs::metadata(root) {
                return Err(AcmeError::Config(format!(
                    "{}: cannot read the ACME server's CA certificate: {e}",
                    root.display()
                )));
            }
        }
        config.domains = domains;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            AcmeError::Config("Acme::start must be called on a tokio runtime".into())
        })?;
        // instant-acme's HTTPS client asks rustls for the process default provider; make
        // it ours rather than depend on which rustls features the build happens to enable.
        let _ = rustls::crypto::CryptoProvider::install_default(super::config::crypto_provider());
        let store = Store::open(&config.store, &config.directory)?;
        let answers = store.root().join("challenges");
        http01.share_through(answers.join("http-01"))?;
        resolver
            .challenges()
            .share_through(answers.join("tls-alpn-01"))?;

        let mut status = HashMap::new();
        for d in &config.domains {
            let mut st = DomainStatus::default();
            // Without the lock: a half-written pair is refused here and looked at again,
            // locked, by the task.
            if let Ok(l) = certs::load_pair(&store.cert_pair(d), SystemTime::now()) {
                tracing::info!(
                    "{d}: using the stored certificate (serial {}, expires {})",
                    l.serial,
                    httpdate::fmt_http_date(l.not_after)
                );
                note_installed(&mut st, &l);
                st.loaded += 1;
                resolver.set(Source::Acme(d.clone()), l);
            }
            status.insert(d.clone(), st);
        }
        let wake = config
            .domains
            .iter()
            .map(|d| (d.clone(), Arc::new(Notify::new())))
            .collect();
        let shared = Arc::new(Shared {
            config,
            store,
            resolver,
            http01,
            account: tokio::sync::Mutex::new(None),
            status: Mutex::new(status),
            wake,
        });
        let tasks = shared
            .config
            .domains
            .iter()
            .map(|d| runtime.spawn(domain_task(shared.clone(), d.clone())))
            .collect();
        Ok(AcmeHandle { shared, tasks })
    }
}

impl AcmeHandle {
    /// The managed domains, normalized.
    pub fn domains(&self) -> &[String] {
        &self.shared.config.domains
    }

    /// The store directory of this ACME directory.
    pub fn store_dir(&self) -> &std::path::Path {
        self.shared.store.root()
    }

    pub fn status(&self, domain: &str) -> Option<DomainStatus> {
        self.shared.status.lock().unwrap().get(domain).cloned()
    }

    /// Renews `domain` now even if its certificate is not due (unless another replica has
    /// renewed it meanwhile: that one is loaded instead). Returns false for an unknown domain.
    pub fn renew_now(&self, domain: &str) -> bool {
        match self.shared.wake.get(domain) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }
}

impl Drop for AcmeHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn note_installed(st: &mut DomainStatus, l: &Loaded) {
    st.serial = Some(l.serial.clone());
    st.not_after = Some(l.not_after);
    st.renew_at = Some(schedule::renew_at(l.not_before, l.not_after));
}

async fn domain_task(shared: Arc<Shared>, domain: String) {
    let wake = shared.wake[&domain].clone();
    let mut force = false;
    loop {
        let failures = shared.update(&domain, |s| s.failures);
        let wait = match shared.ensure(&domain, force, failures).await {
            Ok(loaded) => {
                // A forced renewal stays asked for until one succeeds.
                force = false;
                shared.update(&domain, |s| {
                    s.failures = 0;
                    s.last_error = None;
                });
                let due = schedule::renew_at(loaded.not_before, loaded.not_after);
                due.duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
            }
            Err(e) => {
                let failures = shared.update(&domain, |s| {
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                    s.failures
                });
                let delay = shared.config.backoff.delay(failures, schedule::jitter());
                let keeping = shared
                    .resolver
                    .get(&Source::Acme(domain.clone()))
                    .map(|l| format!("; still serving serial {}", l.serial))
                    .unwrap_or_default();
                tracing::error!(
                    "{e} (attempt {failures}; next in {} s{keeping})",
                    delay.as_secs()
                );
                delay
            }
        };
        let wait = wait.min(MAX_SLEEP);
        shared.update(&domain, |s| s.next_attempt = Some(SystemTime::now() + wait));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => force = true,
        }
    }
}

impl Shared {
    fn update<T>(&self, domain: &str, f: impl FnOnce(&mut DomainStatus) -> T) -> T {
        let mut all = self.status.lock().unwrap();
        f(all.entry(domain.to_string()).or_default())
    }

    /// Makes sure `domain` has a good certificate installed: the stored one if fresh (and,
    /// when `force`d, not the one already in use), else a new one from the CA.
    async fn ensure(&self, domain: &str, force: bool, failures: u32) -> Result<Loaded, AcmeError> {
        let _lock = self.store.lock(domain).await?;
        let pair = self.store.cert_pair(domain);
        let now = SystemTime::now();
        let source = Source::Acme(domain.to_string());
        let current = self.resolver.get(&source);
        match certs::load_pair(&pair, now) {
            Ok(stored) => {
                let due = now >= schedule::renew_at(stored.not_before, stored.not_after);
                let other = current.as_ref().is_none_or(|c| c.serial != stored.serial);
                if !due && (!force || other) {
                    if other {
                        tracing::info!(
                            "{domain}: loaded the certificate in the store (serial {}, expires {})",
                            stored.serial,
                            httpdate::fmt_http_date(stored.not_after)
                        );
                        self.update(domain, |s| {
                            note_installed(s, &stored);
                            s.loaded += 1;
                        });
                        self.resolver.set(source, stored.clone());
                    }
                    return Ok(stored);
                }
            }
            Err(CertError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{e}; ordering a new certificate"),
        }

        let kind = self.config.challenges[failures as usize % self.config.challenges.len()];
        self.update(domain, |s| {
            s.orders += 1;
            s.last_challenge = Some(kind);
        });
        tracing::info!("{domain}: ordering a certificate ({kind})");
        let issued = match tokio::time::timeout(ORDER_TIMEOUT, self.order(domain, kind)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(AcmeError::Timeout {
                    domain: domain.to_string(),
                })
            }
        };
        let loaded = certs::from_pem(
            issued.chain_pem.as_bytes(),
            &pair.cert,
            issued.key_pem.as_bytes(),
            &pair.key,
            SystemTime::now(),
        )
        .map_err(|source| AcmeError::Issued {
            domain: domain.to_string(),
            source,
        })?;
        self.store
            .write_cert(domain, &issued.chain_pem, &issued.key_pem)?;
        tracing::info!(
            "{domain}: new certificate (serial {}, expires {})",
            loaded.serial,
            httpdate::fmt_http_date(loaded.not_after)
        );
        self.update(domain, |s| {
            note_installed(s, &loaded);
            s.issued += 1;
        });
        self.resolver.set(source, loaded.clone());
        Ok(loaded)
    }

    /// One order, with one retry on a fresh account if the CA no longer knows ours.
    async fn order(&self, domain: &str, kind: ChallengeKind) -> Result<order::Issued, AcmeError> {
        let challenges = self.resolver.challenges().clone();
        let (account, file) = self.account(None).await?;
        match order::obtain(&account, domain, kind, &self.http01, &challenges).await {
            Err(AcmeError::Protocol {
                source: instant_acme::Error::Api(p),
                ..
            }) if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist") => {
                tracing::warn!(
                    "the ACME server does not know our account any more; registering again"
                );
                let (account, _) = self.account(Some(file)).await?;
                order::obtain(&account, domain, kind, &self.http01, &challenges).await
            }
            r => r,
        }
    }

    /// The account: cached, else from the store, else registered (under the account lock,
    /// so replicas share one). `stale`: the CA refused the account read from these bytes.
    async fn account(&self, stale: Option<Vec<u8>>) -> Result<(Account, Vec<u8>), AcmeError> {
        let mut cached = self.account.lock().await;
        if let (Some((a, bytes)), None) = (&*cached, &stale) {
            return Ok((a.clone(), bytes.clone()));
        }
        *cached = None;
        let _lock = self.store.lock("account").await?;
        let path = self.store.account_path();
        let on_disk = std::fs::read(&path).ok();
        let directory = self.config.directory.clone();
        let err = |step| {
            let directory = directory.clone();
            move |source| AcmeError::Account {
                directory,
                step,
                source,
            }
        };
        let reuse = match (&on_disk, &stale) {
            (Some(bytes), Some(stale)) => bytes != stale,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let (account, bytes) = if reuse {
            let creds = self.store.read_account()?.expect("read just now");
            let a = self
                .builder()?
                .from_credentials(creds)
                .await
                .map_err(err("load the stored account"))?;
            (a, on_disk.unwrap_or_default())
        } else {
            self.store.remove_account()?;
            let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
            let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
            let (a, creds) = self
                .builder()?
                .create(
                    &NewAccount {
                        contact: &contact,
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    self.config.directory.clone(),
                    None,
                )
                .await
                .map_err(err("register an account"))?;
            self.store.write_account(&creds)?;
            tracing::info!(
                "registered ACME account {} at {}",
                a.id(),
                self.config.directory
            );
            (a, std::fs::read(&path).unwrap_or_default())
        };
        *cached = Some((account.clone(), bytes.clone()));
        Ok((account, bytes))
    }

    fn builder(&self) -> Result<AccountBuilder, AcmeError> {
        let directory = self.config.directory.clone();
        match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        }
        .map_err(|source| AcmeError::Account {
            directory,
            step: "set up the HTTPS client",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_normalized() {
        assert_eq!(check_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            check_domain("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "*.example.com",
            "127.0.0.1",
            "a..b",
            "-a.b",
            "a_b.c",
            "bücher.de",
        ] {
            let e = check_domain(bad).unwrap_err();
            assert!(e.to_string().starts_with("--acme-domain"), "{bad}: {e}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(check_domain(&long).is_err());
    }

    #[test]
    fn start_refuses_bad_configs_before_touching_anything() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let resolver = SniResolver::new(TlsAlpnChallenges::new());
        let start = |c: AcmeConfig| {
            let _g = rt.enter();
            Acme::start(c, resolver.clone(), Http01Tokens::new()).map(|_| ())
        };
        let mut c = AcmeConfig::new(vec![]);
        c.store = tmp.path().join("store");
        assert!(matches!(start(c.clone()), Err(AcmeError::Config(_))));
        c.domains = vec!["*.x.test".into()];
        assert!(matches!(start(c.clone()), Err(AcmeError::Domain { .. })));
        c.domains = vec!["a.test".into()];
        c.challenges.clear();
        assert!(matches!(start(c.clone()), Err(AcmeError::Config(_))));
        assert!(!c.store.exists());
        // Outside a runtime.
        c.challenges = vec![ChallengeKind::Http01];
        let e = Acme::start(c, resolver.clone(), Http01Tokens::new()).unwrap_err();
        assert!(e.to_string().contains("tokio runtime"), "{e}");
    }
}
