//! `cargo bench --bench serve`: staticd's static tier against nginx and Caddy on one core each.
//!
//! What it does (everything in one run; the machine is noisy, only compare figures from one run):
//! 1. Installs what is missing (Debian: nginx, libnginx-mod-http-brotli-static, caddy, wrk) when run
//!    as root; a peer whose package is unavailable is skipped, never fatal.
//! 2. Builds a corpus (cached under `target/bench-serve/`) with `staticd collect` from a
//!    `staticd.toml`: a ~2 KB CSS, a 100 KB JS, a 1 MiB random `.png`, and filler up to ~9k source
//!    files (for the RSS figure).
//! 3. Starts nginx (1 worker), Caddy, staticd (`--workers 1`) and a minimal actix-web handler
//!    answering the small CSS's bytes from memory (this same binary, `--ref-server`), each pinned
//!    to core 0; wrk runs pinned to core 1 (`-t1 -c32 --latency`, keep-alive).
//! 4. Runs four requests (small hashed CSS with br, 100 KB JS with gzip, 1 MiB image identity,
//!    a 404), servers interleaved, each run repeated, and reports medians of req/s, p99 and the
//!    server's CPU time per request (utime+stime from /proc over the run; nginx: master+worker).
//! 5. Runs the same again with every server but Caddy in its own cgroup capped at half a core
//!    (`support/cgroup.rs`, needs root): wrk's own cost per request is about the fastest
//!    servers', so at full cores one wrk core is what runs out first; on an equal budget the
//!    server is the bound, and the req/s verdicts use this phase when it was measured.
//! 6. Prints the tables, the staticd/nginx ratios against the targets (met/missed, never aborts),
//!    staticd's RSS, which rows wrk's own core bounded (≥ 95% used on staticd's runs), and writes
//!    the same as markdown to `target/bench-serve.md`.
//!
//! 7. Then the same over HTTPS (`serve/tls.rs`: HTTPS/1.1 and h2 on the small asset, the image
//!    over HTTPS/1.1, new TLS 1.3 handshakes; nginx `ssl http2` and Caddy on one certificate),
//!    reported in `target/bench-serve-tls.md`.
//!
//! Knobs: `SERVE_BENCH_SECS` (default 10), `SERVE_BENCH_REPS` (default 3),
//! `SERVE_BENCH_FILLER` (filler files, default 8997), `SERVE_BENCH_ONLY` (`plain` or `tls`:
//! one half).
//! Only 127.0.0.1 is loaded; every server started here is killed on exit, also on panic.

mod support;
#[path = "serve/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::corpus::{self, StaticCorpus};
use support::cpu::{loadavg, proc_status_kib};
use support::peers::{self, have, Apt};
use support::spawn::{free_port, start_staticd, Launch, Server};
use support::wrk::{self, aggregate, Agg, Sample};
use support::{env_num, http, target_dir, version_of, yes, STATICD};

/// Every server runs on this core, wrk on the other.
const SERVER_CORE: &str = "0";
const LOAD_CORE: &str = "1";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--ref-server") {
        ref_server(&args[2], Path::new(&args[3]));
        return;
    }
    if support::filtered_out("serve") {
        return;
    }
    if let Err(e) = run() {
        eprintln!("serve bench: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reference point: a minimal actix-web handler returning fixed bytes from memory.

fn ref_server(bind: &str, body_file: &Path) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let body = bytes::Bytes::from(std::fs::read(body_file).expect("reference body"));
    let bind: SocketAddr = bind.parse().expect("bind address");
    actix_web::rt::System::new()
        .block_on(async move {
            HttpServer::new(move || {
                let body = body.clone();
                App::new().default_service(web::to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .insert_header(("content-type", "text/css; charset=utf-8"))
                            .insert_header(("content-encoding", "br"))
                            .insert_header(("vary", "Accept-Encoding"))
                            .body(body)
                    }
                }))
            })
            .workers(1)
            .keep_alive(Duration::from_secs(75))
            .bind(bind)?
            .run()
            .await
        })
        .expect("reference server");
}

// ---------------------------------------------------------------------------------------------
// Servers.

struct Tools {
    wrk: bool,
    nginx: bool,
    brotli_module: Option<PathBuf>,
    caddy: bool,
    h2load: bool,
}

fn ensure_tools() -> Tools {
    println!("tools:");
    let mut apt = Apt::default();
    let wrk = apt.ensure("wrk");
    let nginx = apt.ensure("nginx");
    let brotli_module = if nginx {
        peers::brotli_module_path().or_else(|| {
            apt.install("libnginx-mod-http-brotli-static");
            peers::brotli_module_path()
        })
    } else {
        None
    };
    let caddy = apt.ensure("caddy");
    // h2load comes with nghttp2's clients (the TLS cases' HTTP/2 load).
    let h2load = have("h2load") || (apt.install("nghttp2-client") && have("h2load"));
    println!(
        "  wrk: {}, nginx: {}, ngx_brotli static: {}, caddy: {}, h2load: {}, taskset: {}",
        yes(wrk),
        yes(nginx),
        yes(brotli_module.is_some()),
        yes(caddy),
        yes(h2load),
        yes(have("taskset"))
    );
    Tools {
        wrk,
        nginx,
        brotli_module,
        caddy,
        h2load,
    }
}

fn start_nginx(
    work: &Path,
    corpus: &StaticCorpus,
    brotli: Option<&Path>,
) -> Result<Server, String> {
    peers::start_nginx(
        work,
        SERVER_CORE,
        include_str!("serve/nginx.conf.in"),
        &nginx_vars(corpus, brotli),
    )
}

/// The serve templates' corpus and brotli placeholders.
fn nginx_vars(corpus: &StaticCorpus, brotli: Option<&Path>) -> Vec<(&'static str, String)> {
    let load_brotli = brotli.map_or(String::new(), |p| format!("load_module {};", p.display()));
    let brotli_static = if brotli.is_some() {
        "            brotli_static on;".into()
    } else {
        String::new()
    };
    vec![
        ("PARENT", corpus.parent.display().to_string()),
        ("LOAD_BROTLI", load_brotli),
        ("BROTLI_STATIC", brotli_static),
    ]
}

fn start_caddy(work: &Path, corpus: &StaticCorpus) -> Result<Server, String> {
    peers::start_caddy(
        work,
        SERVER_CORE,
        include_str!("serve/Caddyfile.in"),
        &[("PARENT", corpus.parent.display().to_string())],
    )
}

fn start_ref(work: &Path, body: &Path) -> Result<Server, String> {
    let port = free_port();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bind = format!("127.0.0.1:{port}");
    Launch::new(
        "actix-ref",
        SERVER_CORE,
        &exe.display().to_string(),
        &["--ref-server", &bind, &body.display().to_string()],
        &work.join("actix-ref.log"),
    )
    .start(port)
}

// ---------------------------------------------------------------------------------------------
// Requests.

struct Req {
    key: &'static str,
    label: &'static str,
    path: String,
    accept_encoding: Option<&'static str>,
    want_status: u16,
    want_encoding: Option<&'static str>,
}

/// One request over a fresh connection: (status, content-encoding, content-length).
fn probe(port: u16, req: &Req) -> Result<(u16, Option<String>, Option<u64>), String> {
    let mut headers = vec!["Host: 127.0.0.1".to_string()];
    headers.extend(req.accept_encoding.map(|a| format!("Accept-Encoding: {a}")));
    headers.push("Connection: close".into());
    let r = http::get(port, &req.path, &headers, Duration::from_secs(5))?;
    Ok((
        r.status,
        r.header("content-encoding").map(str::to_string),
        r.header("content-length").and_then(|v| v.parse().ok()),
    ))
}

fn run_wrk(server: &Server, req: &Req, secs: u64) -> Result<Sample, String> {
    let load = wrk::Load {
        core: LOAD_CORE,
        conns: 32,
        secs,
        url: format!("http://127.0.0.1:{}{}", server.port, req.path),
        header: req
            .accept_encoding
            .map(|ae| format!("Accept-Encoding: {ae}")),
        script: None,
    };
    wrk::run(&load, &server.pids, &[])
}

type Samples<'a> = BTreeMap<(&'a str, &'a str), Vec<Sample>>;

/// Measured runs: repetitions outermost, servers rotated so none always runs first; the
/// reference handler joins the small-asset runs. `phase` prefixes each printed line.
fn measure<'a>(
    servers: &[&'a Server],
    reference: Option<&'a Server>,
    reqs: &'a [Req],
    reps: usize,
    secs: u64,
    phase: &str,
) -> Samples<'a> {
    let mut samples = Samples::new();
    let total = reps * (reqs.len() * servers.len() + reference.is_some() as usize);
    let mut done = 0;
    for rep in 0..reps {
        for req in reqs {
            let mut order: Vec<&Server> = servers.to_vec();
            if req.key == "small" {
                order.extend(reference);
            }
            let k = order.len();
            order.rotate_left((rep + done) % k);
            for s in order {
                done += 1;
                match run_wrk(s, req, secs) {
                    Ok(sample) => {
                        println!(
                            "  {phase}[{done:>3}/{total}] rep {} {:<9} {:<22} {:>9.0} req/s  p99 {:>7.2} ms  {:>6.2} µs CPU/req  srv {:>3.0}%  wrk {:>3.0}%{}",
                            rep + 1,
                            s.name,
                            req.label,
                            sample.rps,
                            sample.p99_ms,
                            sample.cpu_us_per_req,
                            sample.server_cpu_pct(),
                            sample.wrk_cpu_pct,
                            sample.errors_note(false)
                        );
                        samples.entry((s.name, req.key)).or_default().push(sample);
                    }
                    Err(e) => println!("  {} {}: {e}", s.name, req.label),
                }
                wrk::settle(s.port);
            }
        }
    }
    samples
}

/// Share of one core each server gets in the equal-budget phase: low enough that wrk, on
/// its own core, stays well below its limit against the fastest server.
const CAP_PERCENT: u32 = 50;

/// The equal-budget phase: staticd, nginx and the reference, each in its own cgroup capped
/// at [`CAP_PERCENT`] of a core, measured like the full-core phase. Caddy is left out: at full
/// cores it is several times slower than the others, and its runs would add minutes.
fn capped_phase<'a>(
    servers: &'a [Server],
    reference: Option<&'a Server>,
    reqs: &'a [Req],
    reps: usize,
    secs: u64,
) -> Result<(u32, Samples<'a>), String> {
    let chosen: Vec<&Server> = servers.iter().filter(|s| s.name != "caddy").collect();
    let mut caps = Vec::new();
    for s in chosen.iter().copied().chain(reference) {
        let cap = support::cgroup::CpuCap::new(&format!("staticd-bench-{}", s.name), CAP_PERCENT)?;
        cap.add(&s.pids)?;
        caps.push((s.name, cap));
    }
    println!("equal budget: each server capped at {CAP_PERCENT}% of core {SERVER_CORE}");
    // Warm-up under the cap: the first run after the move measured low on staticd and nginx.
    for s in chosen.iter().copied().chain(reference) {
        let _ = run_wrk(s, &reqs[0], 2);
    }
    let samples = measure(&chosen, reference, reqs, reps, secs, "cap ");
    for (name, cap) in &caps {
        if cap.throttled() == 0 {
            return Err(format!("{name} was never throttled: the cap did not apply"));
        }
    }
    Ok((CAP_PERCENT, samples))
}

/// The per-server table of one phase; returns its aggregates by (server, request).
fn write_table<'a>(
    md: &mut String,
    reqs: &'a [Req],
    names: &[&'a str],
    samples: &Samples<'a>,
) -> BTreeMap<(&'a str, &'a str), Agg> {
    let _ = writeln!(
        md,
        "| request | server | req/s | p99 ms | CPU µs/req | server CPU | wrk CPU | runs (req/s) |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---|");
    let mut aggs = BTreeMap::new();
    for req in reqs {
        for &name in names {
            let Some(v) = samples.get(&(name, req.key)) else {
                continue;
            };
            let a = aggregate(v);
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0}% | {:.0}% | {} |",
                req.label,
                name,
                a.rps,
                a.p99_ms,
                a.cpu_us,
                a.server_cpu,
                a.wrk_cpu,
                a.runs_cell(false)
            );
            aggs.insert((name, req.key), a);
        }
    }
    aggs
}

fn run() -> Result<(), String> {
    let secs = env_num("SERVE_BENCH_SECS", 10);
    let reps = env_num("SERVE_BENCH_REPS", 3).max(1) as usize;
    let filler = env_num("SERVE_BENCH_FILLER", 8997) as usize;
    println!("serve bench: {secs}s per run, {reps} runs per server and request (medians)");
    let tools = ensure_tools();
    if !tools.wrk {
        println!("serve bench: wrk unavailable; nothing to measure");
        return Ok(());
    }
    if !have("taskset") {
        println!("serve bench: taskset unavailable; nothing to measure");
        return Ok(());
    }
    let base = target_dir().join("bench-serve");
    let corpus = corpus::build_static(&base.join("corpus"), filler)?;
    let work = base.join("run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    println!(
        "corpus: {} source files; STATIC_ROOT {} files, {:.1} MiB; small {} js {} image {}",
        corpus.source_files,
        corpus.root_files,
        corpus.root_bytes as f64 / 1048576.0,
        corpus.small_url,
        corpus.js_url,
        corpus.image_url
    );
    // `SERVE_BENCH_ONLY=tls` (or `plain`): one half of the bench.
    let only = std::env::var("SERVE_BENCH_ONLY").unwrap_or_default();
    if only != "tls" {
        plain(&tools, &corpus, &work, secs, reps)?;
    }
    if only != "plain" {
        tls::run(&tools, &corpus, &work.join("tls"), secs, reps)?;
    }
    Ok(())
}

/// The plain-HTTP cases (`bench-serve.md`).
fn plain(
    tools: &Tools,
    corpus: &StaticCorpus,
    work: &Path,
    secs: u64,
    reps: usize,
) -> Result<(), String> {
    let reqs = vec![
        Req {
            key: "small",
            label: "small hashed CSS, br",
            path: corpus.small_url.clone(),
            accept_encoding: Some("br"),
            want_status: 200,
            want_encoding: Some("br"),
        },
        Req {
            key: "js",
            label: "100 KB JS, gzip",
            path: corpus.js_url.clone(),
            accept_encoding: Some("gzip"),
            want_status: 200,
            want_encoding: Some("gzip"),
        },
        Req {
            key: "image",
            label: "1 MiB image, identity",
            path: corpus.image_url.clone(),
            accept_encoding: None,
            want_status: 200,
            want_encoding: None,
        },
        Req {
            key: "404",
            label: "404",
            path: "/static/css/missing.0123456789ab.css".into(),
            accept_encoding: Some("br"),
            want_status: 404,
            want_encoding: None,
        },
    ];

    // Start everything (each pinned to core 0). Drop kills them, also on panic.
    let mut servers: Vec<Server> = Vec::new();
    match start_staticd(work, SERVER_CORE, &corpus.static_root, None) {
        Ok(s) => servers.push(s),
        Err(e) => return Err(format!("staticd: {e}")),
    }
    if tools.nginx {
        match start_nginx(work, corpus, tools.brotli_module.as_deref()) {
            Ok(s) => servers.push(s),
            Err(e) => println!("nginx: cannot start, skipped: {e}"),
        }
    }
    if tools.caddy {
        match start_caddy(work, corpus) {
            Ok(s) => servers.push(s),
            Err(e) => println!("caddy: cannot start, skipped: {e}"),
        }
    }
    let small_br = corpus
        .static_root
        .join(format!("{}.br", &corpus.small_url["/static/".len()..]));
    let reference = if small_br.exists() {
        match start_ref(work, &small_br) {
            Ok(s) => Some(s),
            Err(e) => {
                println!("actix-ref: cannot start: {e}");
                None
            }
        }
    } else {
        println!("actix-ref: no {} to serve; skipped", small_br.display());
        None
    };

    // Sanity: every server answers every request as intended (same bytes on the wire).
    println!("check (status, content-encoding, content-length):");
    let mut notes: Vec<String> = Vec::new();
    for req in &reqs {
        for s in &servers {
            match probe(s.port, req) {
                Ok((st, enc, len)) => {
                    let ok = st == req.want_status && enc.as_deref() == req.want_encoding;
                    println!(
                        "  {:<9} {:<22} {st} {:<5} {:>8} {}",
                        s.name,
                        req.label,
                        enc.clone().unwrap_or_else(|| "-".into()),
                        len.map_or("-".into(), |l| l.to_string()),
                        if ok { "ok" } else { "UNEXPECTED" }
                    );
                    if !ok {
                        notes.push(format!(
                            "{} answers `{}` with {st} {} (expected {} {}): not the same work as the others",
                            s.name,
                            req.label,
                            enc.unwrap_or_else(|| "identity".into()),
                            req.want_status,
                            req.want_encoding.unwrap_or("identity")
                        ));
                    }
                }
                Err(e) => notes.push(format!("{} `{}`: probe failed: {e}", s.name, req.label)),
            }
        }
    }
    if let Some(r) = &reference {
        if let Ok((st, enc, len)) = probe(r.port, &reqs[0]) {
            println!(
                "  {:<9} {:<22} {st} {:<5} {:>8}",
                r.name,
                reqs[0].label,
                enc.unwrap_or_default(),
                len.unwrap_or(0)
            );
        }
    }

    // Warm-up: page cache, nginx's open_file_cache, staticd's table, connection setup paths.
    let warm = Duration::from_secs(2).as_secs();
    for req in &reqs {
        for s in &servers {
            let _ = run_wrk(s, req, warm);
        }
    }
    if let Some(r) = &reference {
        let _ = run_wrk(r, &reqs[0], warm);
    }
    let load_before = loadavg(3);
    let staticd_pid = servers[0].pid();
    let rss_warm = proc_status_kib(staticd_pid, "VmRSS:");

    // Full cores: the servers' own speed where wrk can ask faster than they answer.
    let all: Vec<&Server> = servers.iter().collect();
    let samples = measure(&all, reference.as_ref(), &reqs, reps, secs, "");
    // Equal budget: the same cap on every server, so that the server runs out before wrk does.
    let capped = capped_phase(&servers, reference.as_ref(), &reqs, reps, secs);
    let rss_end = proc_status_kib(staticd_pid, "VmRSS:");
    let hwm_end = proc_status_kib(staticd_pid, "VmHWM:");
    let load_after = loadavg(3);
    let staticd_log = std::fs::read_to_string(work.join("staticd.log")).unwrap_or_default();

    // ----- Report.
    let mut md = String::new();
    let _ = writeln!(md, "# staticd serve benchmark\n");
    let _ = writeln!(
        md,
        "One core per server (`taskset -c 0`), wrk on the other (`taskset -c 1 wrk -t1 -c32 -d{secs}s --latency`, keep-alive); \
         medians of {reps} interleaved runs; CPU = server utime+stime from /proc over the run / requests (nginx: master+worker).\n"
    );
    let _ = writeln!(
        md,
        "Versions: {} · nginx {} (ngx_brotli static: {}) · {} · {}. Kernel {}.\n",
        version_of(STATICD, &["--version"]),
        version_of("nginx", &["-v"]).trim_start_matches("nginx version: "),
        yes(tools.brotli_module.is_some()),
        if tools.caddy {
            format!("Caddy {}", version_of("caddy", &["version"]))
        } else {
            "Caddy: skipped".into()
        },
        version_of("wrk", &["-v"]),
        version_of("uname", &["-r"])
    );
    let _ = writeln!(
        md,
        "Machine: {} cores, load average {load_before} before the measured runs, {load_after} after. \
         \"server CPU\" / \"wrk CPU\" = share of their core they got: well below 100% for both means the run was \
         limited by other load on the machine, not by either side; CPU µs/req is then the steadier figure.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        md,
        "Corpus: {} source files collected by `staticd collect` (manifest + br/gz): STATIC_ROOT holds {} files, {:.1} MiB.\n",
        corpus.source_files,
        corpus.root_files,
        corpus.root_bytes as f64 / 1048576.0
    );
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s.name)
        .chain(reference.as_ref().map(|r| r.name))
        .collect();
    let aggs = write_table(&mut md, &reqs, &names, &samples);
    let capped_aggs = match &capped {
        Ok((percent, c)) => {
            let _ = writeln!(
                md,
                "\n## Equal CPU budget: {percent}% of core {SERVER_CORE} each\n\n\
                 wrk alone on core {LOAD_CORE} costs about as much CPU per request as the fastest servers here, so at full \
                 cores it, not the server, can be what runs out (see the caution below). Here each server runs in \
                 its own cgroup capped at {percent}% of one core (CFS quota, 10 ms period), the way a container \
                 with a CPU limit runs; wrk is then well below its limit and req/s is the server's own capacity \
                 on that budget. Caddy is left out of this part (it is far from the others at full cores). \
                 p99 here includes the quota's stalls, so p99 and CPU/req verdicts come from the full-core table.\n"
            );
            write_table(&mut md, &reqs, &names, c)
        }
        Err(e) => {
            let _ = writeln!(md, "\nEqual CPU budget: not measured ({e}).");
            BTreeMap::new()
        }
    };

    let _ = writeln!(md, "\n## staticd / nginx\n");
    let mut verdicts: Vec<(String, bool)> = Vec::new();
    if aggs.keys().any(|k| k.0 == "nginx") {
        let _ = writeln!(
            md,
            "req/s is the equal-budget ratio where it was measured (full cores in brackets), p99 and CPU/req the full-core ones.\n"
        );
        let _ = writeln!(md, "| request | req/s | p99 | CPU/req | target | verdict |");
        let _ = writeln!(md, "|---|---:|---:|---:|---|---|");
        for req in &reqs {
            let (Some(s), Some(n)) = (
                aggs.get(&("staticd", req.key)),
                aggs.get(&("nginx", req.key)),
            ) else {
                continue;
            };
            let full_rr = s.rps / n.rps;
            let rr = match (
                capped_aggs.get(&("staticd", req.key)),
                capped_aggs.get(&("nginx", req.key)),
            ) {
                (Some(cs), Some(cn)) => cs.rps / cn.rps,
                _ => full_rr,
            };
            let rr_cell = if capped_aggs.is_empty() {
                format!("{rr:.2}x")
            } else {
                format!("{rr:.2}x ({full_rr:.2}x)")
            };
            let pr = s.p99_ms / n.p99_ms;
            let cr = s.cpu_us / n.cpu_us;
            let (target, met): (&str, Option<bool>) = match req.key {
                "small" | "404" => (
                    "req/s ≥ 1.3x, p99 ≤ 1.0x, CPU ≤ 0.8x",
                    Some(rr >= 1.3 && pr <= 1.0 && cr <= 0.8),
                ),
                "image" => ("req/s ≥ 0.95x", Some(rr >= 0.95)),
                _ => ("(none)", None),
            };
            let verdict = match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "-",
            };
            if let Some(m) = met {
                let mut why = Vec::new();
                if req.key != "image" {
                    if rr < 1.3 {
                        why.push(format!("req/s {rr:.3}x < 1.3x"));
                    }
                    if pr > 1.0 {
                        why.push(format!("p99 {pr:.3}x > 1.0x"));
                    }
                    if cr > 0.8 {
                        why.push(format!("CPU {cr:.3}x > 0.8x"));
                    }
                } else if rr < 0.95 {
                    why.push(format!("req/s {rr:.3}x < 0.95x"));
                }
                verdicts.push((
                    format!(
                        "{}: {}{}",
                        req.label,
                        verdict,
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", why.join(", "))
                        }
                    ),
                    m,
                ));
            }
            let _ = writeln!(
                md,
                "| {} | {rr_cell} | {pr:.2}x | {cr:.2}x | {target} | {verdict} |",
                req.label
            );
        }
    } else {
        let _ = writeln!(md, "nginx was not measured: no ratios.");
    }
    let rss_mib = rss_warm.map(|k| k as f64 / 1024.0);
    let rss_ok = rss_mib.map(|m| m <= 64.0);
    let _ = writeln!(
        md,
        "\nstaticd RSS with the {}-file corpus loaded: {} after warm-up, {} at the end (peak {}); target ≤ 64 MiB: {}",
        corpus.source_files,
        rss_warm.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        rss_end.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        hwm_end.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
        match rss_ok {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "unknown",
        }
    );
    if let Some(ok) = rss_ok {
        verdicts.push((format!("RSS: {}", if ok { "met" } else { "MISSED" }), ok));
    }
    if let (Some(r), Some(n)) = (
        aggs.get(&("actix-ref", "small")),
        aggs.get(&("nginx", "small")),
    ) {
        let _ = writeln!(
            md,
            "\nReference: a minimal actix-web handler returning the small asset's br bytes from memory: {:.0} req/s ({:.2}x nginx), {:.2} µs CPU/req, wrk at {:.0}% of its core: the load generator is {}.",
            r.rps,
            r.rps / n.rps,
            r.cpu_us,
            r.wrk_cpu,
            if r.wrk_cpu < 95.0 { "not the limit at these rates" } else { "close to its own limit here (treat ratios above ~this rate with care)" }
        );
    }
    if let Some(line) = staticd_log.lines().find(|l| l.contains("loaded")) {
        let _ = writeln!(md, "\nstaticd: `{}`", line.trim());
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\nNotes:");
        for n in &notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let starved: Vec<&str> = reqs
        .iter()
        .filter(|r| {
            ["staticd", "nginx"]
                .iter()
                .all(|n| aggs.get(&(*n, r.key)).is_some_and(|a| a.server_cpu < 90.0))
        })
        .map(|r| r.label)
        .collect();
    if !starved.is_empty() {
        let _ = writeln!(
            md,
            "\nCaution: neither staticd nor nginx got 90% of its core on: {}. Those req/s and p99 ratios measure \
             the machine's other load more than the servers; compare CPU µs/req there (req/s at saturation ≈ 1e6 / CPU µs/req).",
            starved.join(", ")
        );
    }
    // wrk has one core: when it is (nearly) all used on staticd's runs, staticd answered as
    // fast as wrk could ask, and its req/s ratio says how much faster wrk is than nginx, not
    // staticd. The equal-budget phase exists for this; where it was not measured (or wrk was
    // the bound there too) the verdict stays as measured and this says what bounded it.
    for (phase, table) in [("full cores", &aggs), ("equal budget", &capped_aggs)] {
        let load_bound: Vec<String> = reqs
            .iter()
            .filter_map(|r| {
                let a = table.get(&("staticd", r.key))?;
                (a.wrk_cpu >= 95.0).then(|| format!("{} (wrk {:.0}%)", r.label, a.wrk_cpu))
            })
            .collect();
        if !load_bound.is_empty() {
            let _ = writeln!(
                md,
                "\nCaution ({phase}): wrk used 95% or more of its core on staticd's runs of: {}. There staticd's \
                 req/s is bounded by the load generator, so that req/s ratio is a lower bound; \
                 its CPU µs/req is the comparable figure.",
                load_bound.join(", ")
            );
        }
    }
    let _ = writeln!(
        md,
        "\nTargets: {}",
        verdicts
            .iter()
            .map(|v| v.0.clone())
            .collect::<Vec<_>>()
            .join("; ")
    );

    support::publish(&md, "bench-serve.md");
    drop(reference);
    drop(servers);
    Ok(())
}
