//! The TLS cases of `cargo bench --bench serve` (issue 13): staticd's `--https-bind` against
//! nginx (`ssl http2`) and Caddy, the same ECDSA P-256 certificate (made here) and the same
//! core budget as the plain cases (server on core 0, load on core 1).
//!
//! Four loads:
//! - `https1-small`: the small br asset over keep-alive HTTPS/1.1 (wrk, 32 connections);
//! - `h2-small`: the same over HTTP/2 (h2load, 32 connections × 4 streams);
//! - `https1-image`: the 1 MiB image over keep-alive HTTPS/1.1: what replaces `sendfile` under
//!   TLS (reading the file through rustls; nginx cannot `sendfile` under TLS either);
//! - `handshake`: a new TLS 1.3 connection per request (wrk with `Connection: close`: a full
//!   handshake each time, wrk never resumes a session), i.e. handshakes per second.
//!
//! Targets (staticd / nginx): req/s ≥ 1.0x on both small cases, ≥ 0.9x on handshakes.
//! Report: `target/bench-serve-tls.md`.

use crate::support::corpus::StaticCorpus;
use crate::support::cpu::loadavg;
use crate::support::peers;
use crate::support::spawn::{free_port, Launch, Server};
use crate::support::wrk::{self, aggregate, Agg, Sample};
use crate::support::{h2load, version_of, yes, STATICD};
use crate::{nginx_vars, Tools, LOAD_CORE, SERVER_CORE};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a case loads the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Wrk,
    H2load,
}

struct Case {
    key: &'static str,
    label: &'static str,
    client: Client,
    path: String,
    accept_encoding: Option<&'static str>,
    /// A new connection per request.
    close: bool,
    /// staticd / nginx req/s target.
    target: Option<f64>,
}

/// A self-signed ECDSA P-256 certificate for `localhost` and 127.0.0.1 (what browsers and
/// Let's Encrypt's ECDSA chains use), written as `cert.pem` and `key.pem`.
fn certificate(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| e.to_string())?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&k, key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok((c, k))
}

fn start_staticd(work: &Path, root: &Path, cert: &Path, key: &Path) -> Result<Server, String> {
    let (port, plain) = (free_port(), free_port());
    let https = format!("127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{plain}");
    let (root, cert, key) = (
        root.display().to_string(),
        cert.display().to_string(),
        key.display().to_string(),
    );
    let args = [
        "serve",
        "--root",
        &root,
        "--static-url",
        "/static/",
        "--bind",
        &bind,
        "--https-bind",
        &https,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--workers",
        "1",
        "--log-format",
        "off",
    ];
    Launch::new(
        "staticd",
        SERVER_CORE,
        STATICD,
        &args,
        &work.join("staticd.log"),
    )
    .start(port)
}

/// One request with curl over HTTPS (certificate not checked: self-signed):
/// (HTTP version, status, content-encoding).
fn probe(port: u16, case: &Case) -> Result<(String, u16, String), String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-o", "/dev/null", "--max-time", "5"]);
    cmd.arg(if case.client == Client::H2load {
        "--http2"
    } else {
        "--http1.1"
    });
    if let Some(ae) = case.accept_encoding {
        cmd.args(["-H", &format!("Accept-Encoding: {ae}")]);
    }
    cmd.args([
        "-w",
        "%{http_version} %{http_code} %header{content-encoding}",
    ]);
    cmd.arg(format!("https://127.0.0.1:{port}{}", case.path));
    let out = cmd.output().map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut w = text.split(' ');
    let version = w.next().unwrap_or("").to_string();
    let status = w.next().and_then(|s| s.parse().ok()).ok_or(text.clone())?;
    Ok((version, status, w.next().unwrap_or("").trim().to_string()))
}

/// `case` on `server` for `secs`; `close`: the wrk script that asks for `Connection: close`
/// (wrk takes one `-H`, the case's `Accept-Encoding`).
fn load(server: &Server, case: &Case, secs: u64, close: &Path) -> Result<Sample, String> {
    let url = format!("https://127.0.0.1:{}{}", server.port, case.path);
    let ae = case
        .accept_encoding
        .map(|a| format!("Accept-Encoding: {a}"));
    match case.client {
        Client::Wrk => {
            let l = wrk::Load {
                core: LOAD_CORE,
                conns: 32,
                secs,
                url,
                header: ae,
                script: case.close.then(|| close.to_path_buf()),
            };
            wrk::run(&l, &server.pids, &[])
        }
        Client::H2load => {
            let l = h2load::Load {
                core: LOAD_CORE,
                conns: 32,
                streams: 4,
                secs,
                url,
                header: ae,
            };
            h2load::run(&l, &server.pids)
        }
    }
}

pub fn run(
    tools: &Tools,
    corpus: &StaticCorpus,
    work: &Path,
    secs: u64,
    reps: usize,
) -> Result<(), String> {
    println!("\nTLS cases:");
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).map_err(|e| e.to_string())?;
    let (cert, key) = certificate(work)?;
    let close = work.join("close.lua");
    std::fs::write(&close, "wrk.headers[\"Connection\"] = \"close\"\n")
        .map_err(|e| e.to_string())?;
    let mut cases = vec![
        Case {
            key: "https1-small",
            label: "small CSS, br, HTTPS/1.1",
            client: Client::Wrk,
            path: corpus.small_url.clone(),
            accept_encoding: Some("br"),
            close: false,
            target: Some(1.0),
        },
        Case {
            key: "h2-small",
            label: "small CSS, br, h2",
            client: Client::H2load,
            path: corpus.small_url.clone(),
            accept_encoding: Some("br"),
            close: false,
            target: Some(1.0),
        },
        Case {
            key: "https1-image",
            label: "1 MiB image, HTTPS/1.1",
            client: Client::Wrk,
            path: corpus.image_url.clone(),
            accept_encoding: None,
            close: false,
            target: None,
        },
        Case {
            key: "handshake",
            label: "new TLS 1.3 connection",
            client: Client::Wrk,
            path: corpus.small_url.clone(),
            accept_encoding: Some("br"),
            close: true,
            target: Some(0.9),
        },
    ];
    if !tools.h2load {
        println!("  h2load unavailable: no h2 case");
        cases.retain(|c| c.client != Client::H2load);
    }

    let mut servers: Vec<Server> = Vec::new();
    match start_staticd(work, &corpus.static_root, &cert, &key) {
        Ok(s) => servers.push(s),
        Err(e) => return Err(format!("staticd (TLS): {e}")),
    }
    let certs = [
        ("CERT", cert.display().to_string()),
        ("KEY", key.display().to_string()),
    ];
    if tools.nginx {
        let mut vars = nginx_vars(corpus, tools.brotli_module.as_deref());
        vars.extend(certs.iter().cloned());
        match peers::start_nginx(work, SERVER_CORE, include_str!("nginx-tls.conf.in"), &vars) {
            Ok(s) => servers.push(s),
            Err(e) => println!("nginx (TLS): cannot start, skipped: {e}"),
        }
    }
    if tools.caddy {
        let mut vars = vec![("PARENT", corpus.parent.display().to_string())];
        vars.extend(certs.iter().cloned());
        match peers::start_caddy(work, SERVER_CORE, include_str!("Caddyfile-tls.in"), &vars) {
            Ok(s) => servers.push(s),
            Err(e) => println!("caddy (TLS): cannot start, skipped: {e}"),
        }
    }

    println!("check (HTTP version, status, content-encoding):");
    let mut notes = Vec::new();
    for case in &cases {
        for s in &servers {
            match probe(s.port, case) {
                Ok((v, st, enc)) => {
                    let want_v = if case.client == Client::H2load {
                        "2"
                    } else {
                        "1.1"
                    };
                    let ok = v == want_v
                        && st == 200
                        && enc == case.accept_encoding.map_or("", |_| "br");
                    println!(
                        "  {:<9} {:<26} HTTP/{v} {st} {:<5} {}",
                        s.name,
                        case.label,
                        if enc.is_empty() { "-" } else { &enc },
                        if ok { "ok" } else { "UNEXPECTED" }
                    );
                    if !ok {
                        notes.push(format!(
                            "{} answers `{}` with HTTP/{v} {st} {enc}: not the same work as the others",
                            s.name, case.label
                        ));
                    }
                }
                Err(e) => notes.push(format!("{} `{}`: probe failed: {e}", s.name, case.label)),
            }
        }
    }
    // Warm-up: page cache, session state, connection setup paths.
    for case in &cases {
        for s in &servers {
            let _ = load(s, case, 2, &close);
        }
    }
    let load_before = loadavg(3);
    let mut samples: BTreeMap<(&str, &str), Vec<Sample>> = BTreeMap::new();
    let total = reps * cases.len() * servers.len();
    let mut done = 0;
    for rep in 0..reps {
        for case in &cases {
            let mut order: Vec<&Server> = servers.iter().collect();
            let k = order.len();
            order.rotate_left((rep + done) % k);
            for s in order {
                done += 1;
                match load(s, case, secs, &close) {
                    Ok(sample) => {
                        println!(
                            "  [{done:>3}/{total}] rep {} {:<9} {:<26} {:>9.0} req/s  {:>7.2} µs CPU/req  srv {:>3.0}%  client {:>3.0}%{}",
                            rep + 1,
                            s.name,
                            case.label,
                            sample.rps,
                            sample.cpu_us_per_req,
                            sample.server_cpu_pct(),
                            sample.wrk_cpu_pct,
                            sample.errors_note(true)
                        );
                        samples.entry((s.name, case.key)).or_default().push(sample);
                    }
                    Err(e) => println!("  {} {}: {e}", s.name, case.label),
                }
                std::thread::sleep(wrk::PAUSE);
            }
        }
    }
    let load_after = loadavg(3);

    let mut md = String::new();
    let _ = writeln!(md, "# staticd serve benchmark: HTTPS\n");
    let _ = writeln!(
        md,
        "One core per server (`taskset -c 0`), the client on the other: wrk (`-t1 -c32`, keep-alive; \
         `Connection: close` for the handshake case: a full TLS 1.3 handshake per request, never resumed) \
         and h2load (`-t1 -c32 -m4`). One ECDSA P-256 certificate for all. Medians of {reps} interleaved \
         runs of {secs} s; CPU = server utime+stime from /proc over the run / requests.\n"
    );
    let _ = writeln!(
        md,
        "Versions: {} · nginx {} · {} · {} · {} · {}. Load average {load_before} before the measured runs, {load_after} after.\n",
        version_of(STATICD, &["--version"]),
        version_of("nginx", &["-v"]).trim_start_matches("nginx version: "),
        if tools.caddy {
            format!("Caddy {}", version_of("caddy", &["version"]))
        } else {
            "Caddy: skipped".into()
        },
        version_of("wrk", &["-v"]),
        version_of("h2load", &["--version"]),
        version_of("openssl", &["version"])
    );
    let _ = writeln!(
        md,
        "| case | server | req/s | p99 ms | CPU µs/req | server CPU | client CPU | runs (req/s) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    let mut aggs: BTreeMap<(&str, &str), Agg> = BTreeMap::new();
    for case in &cases {
        for s in &servers {
            let Some(v) = samples.get(&(s.name, case.key)) else {
                continue;
            };
            let a = aggregate(v);
            let p99 = if a.p99_ms.is_nan() {
                "-".to_string()
            } else {
                format!("{:.2}", a.p99_ms)
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {p99} | {:.2} | {:.0}% | {:.0}% | {} |",
                case.label,
                s.name,
                a.rps,
                a.cpu_us,
                a.server_cpu,
                a.wrk_cpu,
                a.runs_cell(true)
            );
            aggs.insert((s.name, case.key), a);
        }
    }
    let _ = writeln!(md, "\n## staticd / nginx\n");
    let _ = writeln!(md, "| case | req/s | CPU/req | target | verdict |");
    let _ = writeln!(md, "|---|---:|---:|---|---|");
    let mut verdicts = Vec::new();
    for case in &cases {
        let (Some(s), Some(n)) = (
            aggs.get(&("staticd", case.key)),
            aggs.get(&("nginx", case.key)),
        ) else {
            continue;
        };
        let (rr, cr) = (s.rps / n.rps, s.cpu_us / n.cpu_us);
        let (target, verdict) = match case.target {
            Some(t) => {
                let met = rr >= t;
                verdicts.push(format!(
                    "{}: {}",
                    case.label,
                    if met {
                        "met".to_string()
                    } else {
                        format!("MISSED (req/s {rr:.3}x < {t}x)")
                    }
                ));
                (format!("req/s ≥ {t}x"), if met { "met" } else { "MISSED" })
            }
            None => ("(none)".to_string(), "-"),
        };
        let _ = writeln!(
            md,
            "| {} | {rr:.2}x | {cr:.2}x | {target} | {verdict} |",
            case.label
        );
    }
    let starved: Vec<&str> = cases
        .iter()
        .filter(|c| {
            ["staticd", "nginx"]
                .iter()
                .all(|n| aggs.get(&(*n, c.key)).is_some_and(|a| a.server_cpu < 90.0))
        })
        .map(|c| c.label)
        .collect();
    if !starved.is_empty() {
        let _ = writeln!(
            md,
            "\nCaution: neither staticd nor nginx got 90% of its core on: {}. There the client or the \
             machine's other load set the rate; compare CPU µs/req (req/s at saturation ≈ 1e6 / CPU µs/req).",
            starved.join(", ")
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\nNotes:");
        for n in &notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let _ = writeln!(
        md,
        "\nTargets: {}; h2load/wrk binaries: {} / {}",
        verdicts.join("; "),
        yes(tools.h2load),
        yes(tools.wrk)
    );
    crate::support::publish(&md, "bench-serve-tls.md");
    drop(servers);
    Ok(())
}
