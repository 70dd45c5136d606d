//! Pebble, Let's Encrypt's ACME test server, on 127.0.0.1 (installed by `.ci/pebble`).
//!
//! - Its ACME API is HTTPS with a certificate from a [`TestCa`] made here; the ACME client
//!   trusts that CA only (`AcmeConfig::ca_root`).
//! - It issues from a CA of its own, regenerated at every start; [`Pebble::issuer_root`] saves
//!   it for the test clients (curl, openssl), which trust nothing else.
//! - It validates for real: HTTP-01 at `http://<name>:<http_port>/…` and TLS-ALPN-01 at
//!   `<name>:<tls_port>`, the ports of the test's own listeners. Names resolve to 127.0.0.1
//!   through `pebble-challtestsrv`'s DNS server (`-dnsserver`), which answers 127.0.0.1 to
//!   every A query (and nothing to AAAA, so no attempt goes to ::1). Chosen over Pebble's
//!   `PEBBLE_VA_ALWAYS_VALID`, which validates nothing, and over a DNS responder of our own,
//!   since the same Debian package ships one.
//! - `PEBBLE_VA_NOSLEEP=1` (no artificial validation delay), `PEBBLE_WFE_NONCEREJECT=0` (no
//!   random badNonce), `PEBBLE_AUTHZREUSE=0` (every order is validated anew).

use super::tls::{curl, TestCa};
use super::{ci_installed, free_port, wait_until};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Pebble's binary (`.ci/pebble` installs it if missing), once per test process.
pub fn pebble_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| ci_installed("pebble", "for the ACME tests"))
        .clone()
}

/// A running Pebble (and its DNS server); both stop when dropped.
pub struct Pebble {
    dir: tempfile::TempDir,
    pub directory_url: String,
    /// PEM of the CA behind Pebble's own HTTPS (for `AcmeConfig::ca_root`).
    pub api_ca: PathBuf,
    acme_port: u16,
    mgmt_port: u16,
    dns_port: u16,
    pebble: Option<Child>,
    dns: Child,
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn connects(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl Pebble {
    /// Starts Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`,
    /// issuing certificates valid `validity` (Pebble's default, 5 years, if `None`).
    pub fn start(http_port: u16, tls_port: u16, validity: Option<Duration>) -> Pebble {
        let bin = pebble_bin();
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("staticd test: Pebble API CA");
        let api_ca = ca.write(dir.path());
        ca.leaf(&["127.0.0.1", "localhost"])
            .write(dir.path(), "pebble-api");

        // The DNS server first: Pebble needs it for every validation.
        let challtestsrv = bin.with_file_name("pebble-challtestsrv");
        let (dns, dns_port) = retry_ports(
            "pebble-challtestsrv",
            |log| {
                let dns_port = free_port();
                let mgmt = free_port();
                let child = Command::new(&challtestsrv)
                    .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                    .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                    .args(["-management", &format!("127.0.0.1:{mgmt}")])
                    .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", challtestsrv.display()));
                // Its DNS listener (UDP and TCP) starts with the management one.
                (child, dns_port, mgmt)
            },
            dir.path(),
        );

        let mut p = Pebble {
            directory_url: String::new(),
            api_ca,
            acme_port: 0,
            mgmt_port: 0,
            dns_port,
            pebble: None,
            dns,
            dir,
        };
        p.launch(http_port, tls_port, validity, true);
        p
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("pebble.json")
    }

    /// Starts the pebble process (choosing new API ports if `new_ports`).
    fn launch(
        &mut self,
        http_port: u16,
        tls_port: u16,
        validity: Option<Duration>,
        new_ports: bool,
    ) {
        let bin = pebble_bin();
        let dir = self.dir.path().to_path_buf();
        for attempt in 0.. {
            if new_ports {
                self.acme_port = free_port();
                self.mgmt_port = free_port();
                let mut cfg = serde_json::json!({
                    "listenAddress": format!("127.0.0.1:{}", self.acme_port),
                    "managementListenAddress": format!("127.0.0.1:{}", self.mgmt_port),
                    "certificate": dir.join("pebble-api.crt"),
                    "privateKey": dir.join("pebble-api.key"),
                    "httpPort": http_port,
                    "tlsPort": tls_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": false,
                });
                if let Some(v) = validity {
                    cfg["certificateValidityPeriod"] = v.as_secs().into();
                }
                std::fs::write(
                    self.config_path(),
                    serde_json::to_vec(&serde_json::json!({ "pebble": cfg })).unwrap(),
                )
                .unwrap();
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("pebble.log"))
                .unwrap();
            let mut child = Command::new(&bin)
                .arg("-config")
                .arg(self.config_path())
                .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
                .arg("-strict=false")
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let (acme, mgmt) = (self.acme_port, self.mgmt_port);
            let up = wait_until("pebble to listen or exit", Duration::from_secs(30), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                (connects(acme) && connects(mgmt)).then_some(true)
            });
            if up {
                self.pebble = Some(child);
                self.directory_url = format!("https://127.0.0.1:{acme}/dir");
                return;
            }
            kill(&mut child);
            assert!(
                new_ports && attempt < 3,
                "pebble did not start; its log:\n{}",
                self.log()
            );
        }
    }

    /// Pebble's log so far (and the DNS server's), for failure messages.
    pub fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "{}\n--- pebble-challtestsrv ---\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    /// Saves the root of Pebble's issuing CA (new at each start) and returns its path.
    pub fn issuer_root(&self) -> PathBuf {
        let path = self.dir.path().join("pebble-issuer-root.pem");
        let (ok, body, err) = curl(&[
            "--cacert",
            self.api_ca.to_str().unwrap(),
            &format!("https://127.0.0.1:{}/roots/0", self.mgmt_port),
        ]);
        assert!(
            ok && body.contains("BEGIN CERTIFICATE"),
            "roots/0: {err}{body}"
        );
        std::fs::write(&path, body).unwrap();
        path
    }

    /// Stops Pebble (the CA is then unreachable: connections are refused).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            kill(&mut c);
        }
    }

    /// Starts Pebble again on the same ports (a new CA, and no memory of accounts).
    pub fn restart(&mut self, http_port: u16, tls_port: u16, validity: Option<Duration>) {
        self.stop();
        self.launch(http_port, tls_port, validity, false);
    }
}

/// Starts a helper whose ports are picked by `spawn`, retrying with new ports if it exits
/// at once (its port taken anyway, or any early exit); waits for its management port.
fn retry_ports(
    what: &str,
    spawn: impl Fn(std::fs::File) -> (Child, u16, u16),
    dir: &Path,
) -> (Child, u16) {
    for attempt in 0..4 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("challtestsrv.log"))
            .unwrap();
        let (mut child, port, mgmt) = spawn(log);
        let up = wait_until(
            &format!("{what} to listen or exit"),
            Duration::from_secs(30),
            || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                connects(mgmt).then_some(true)
            },
        );
        if up {
            return (child, port);
        }
        kill(&mut child);
        assert!(
            attempt < 3,
            "{what} did not start: {}",
            std::fs::read_to_string(dir.join("challtestsrv.log")).unwrap_or_default()
        );
    }
    unreachable!()
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        kill(&mut self.dns);
    }
}
