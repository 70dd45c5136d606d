//! wrk runs: one load per call, its output parsed, the CPU the measured processes spent over
//! the run sampled from /proc, and medians over the repetitions.

use super::cpu::{cpu_ticks, timed_output, us_per_request};
use super::median;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Between two measured runs: the previous run's connections close and its server settles
/// before the next run starts. A breather, not a readiness wait (every server was checked
/// before the first run).
pub const PAUSE: Duration = Duration::from_millis(300);

/// One load: `taskset -c CORE wrk -t1 -c CONNS -d SECSs --timeout 5s --latency [-H HEADER]
/// [-s SCRIPT] URL` (one thread, keep-alive connections).
pub struct Load<'a> {
    pub core: &'a str,
    pub conns: u64,
    pub secs: u64,
    pub url: String,
    pub header: Option<String>,
    /// A wrk Lua script (e.g. setting `wrk.method` and `wrk.body` for a POST).
    pub script: Option<PathBuf>,
}

#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub rps: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// CPU µs per request of the server wrk loads (0 when no processes were given).
    pub cpu_us_per_req: f64,
    /// The same for the processes behind it (the proxy bench's upstream).
    pub upstream_cpu_us_per_req: f64,
    /// Share of its core wrk used, in %.
    pub wrk_cpu_pct: f64,
    pub non2xx: u64,
    pub socket_errors: u64,
    /// Bytes wrk read over the run (heads, framing and bodies: what came over the wire).
    pub bytes_read: f64,
    /// New upstream connections per 1000 requests (set by the proxy bench, fast upstream only).
    pub up_conns_per_k: Option<f64>,
}

impl Sample {
    /// Share of its core the server used during the run, in % (CPU per request × rate).
    pub fn server_cpu_pct(&self) -> f64 {
        self.cpu_us_per_req * self.rps / 1e4
    }

    /// `  non-2xx N  socket errors M` for a run's line, naming only what happened (non-2xx
    /// only when asked: the serve bench's 404 scenario answers nothing else).
    pub fn errors_note(&self, non2xx: bool) -> String {
        let mut s = String::new();
        if non2xx && self.non2xx > 0 {
            s += &format!("  non-2xx {}", self.non2xx);
        }
        if self.socket_errors > 0 {
            s += &format!("  socket errors {}", self.socket_errors);
        }
        s
    }
}

/// `1.23ms`, `850.00us`, `2.00s` as wrk prints durations, in ms.
pub fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        "h" => v * 3_600_000.0,
        _ => return None,
    })
}

/// `7.85MB` as wrk prints what it read (`%.2f` and a binary unit), in bytes.
pub fn parse_bytes(s: &str) -> Option<f64> {
    let s = s.trim().strip_suffix('B')?;
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024f64),
        'M' => (&s[..s.len() - 1], 1024f64.powi(2)),
        'G' => (&s[..s.len() - 1], 1024f64.powi(3)),
        'T' => (&s[..s.len() - 1], 1024f64.powi(4)),
        _ => (s, 1.0),
    };
    Some(num.parse::<f64>().ok()? * mult)
}

/// Requests/sec, p99 (from `--latency`), requests, bytes read, non-2xx/3xx and socket errors
/// of wrk's report.
pub fn parse(out: &str) -> Result<Sample, String> {
    let mut s = Sample::default();
    let mut in_dist = false;
    let mut got_rps = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist && t.starts_with("99%") {
            s.p99_ms = parse_duration_ms(t.trim_start_matches("99%")).ok_or("bad p99")?;
            in_dist = false;
        }
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse().map_err(|_| "bad Requests/sec")?;
            got_rps = true;
        }
        if t.contains(" requests in ") {
            s.requests = t
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            // `2000 requests in 2.00s, 7.85MB read`
            s.bytes_read = t
                .split(", ")
                .nth(1)
                .and_then(|r| r.strip_suffix(" read"))
                .and_then(parse_bytes)
                .unwrap_or(0.0);
        }
        if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            s.non2xx = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = t.strip_prefix("Socket errors:") {
            s.socket_errors = v
                .split(',')
                .filter_map(|p| {
                    p.split_whitespace()
                        .last()
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum();
        }
    }
    if !got_rps {
        return Err(format!("unparsable wrk output:\n{out}"));
    }
    Ok(s)
}

/// Runs `load` once. `server` and `upstream` are the processes whose CPU per request is sampled
/// over the run (either may be empty).
pub fn run(load: &Load, server: &[i32], upstream: &[i32]) -> Result<Sample, String> {
    let d = format!("{}s", load.secs);
    let c = load.conns.to_string();
    let mut cmd = Command::new("taskset");
    cmd.args([
        "-c",
        load.core,
        "wrk",
        "-t1",
        "-c",
        &c,
        "-d",
        &d,
        "--timeout",
        "5s",
        "--latency",
    ]);
    if let Some(h) = &load.header {
        cmd.arg("-H").arg(h);
    }
    if let Some(s) = &load.script {
        cmd.arg("-s").arg(s);
    }
    cmd.arg(&load.url);
    let cpu0 = cpu_ticks(server);
    let ucpu0 = cpu_ticks(upstream);
    let wrk = timed_output(&mut cmd).map_err(|e| format!("wrk: {e}"))?;
    let cpu1 = cpu_ticks(server);
    let ucpu1 = cpu_ticks(upstream);
    let mut s = parse(&String::from_utf8_lossy(&wrk.output.stdout))?;
    if s.requests > 0 {
        s.cpu_us_per_req = us_per_request(cpu1.saturating_sub(cpu0), s.requests);
        s.upstream_cpu_us_per_req = us_per_request(ucpu1.saturating_sub(ucpu0), s.requests);
    }
    s.wrk_cpu_pct = wrk.cpu / wrk.wall * 100.0;
    Ok(s)
}

/// Medians over the repetitions of one server and scenario.
#[derive(Default)]
pub struct Agg {
    pub rps: f64,
    pub p99_ms: f64,
    pub cpu_us: f64,
    pub up_cpu_us: f64,
    /// Share of its core the server used during the run, in %.
    pub server_cpu: f64,
    pub wrk_cpu: f64,
    pub up_conns_per_k: Option<f64>,
    /// Bytes read per request (wire bytes: head, framing, body).
    pub bytes_per_req: f64,
    /// Summed over the runs.
    pub non2xx: u64,
    pub socket_errors: u64,
    /// Every run's req/s, in run order.
    pub rps_all: Vec<f64>,
}

impl Agg {
    /// The report's last cell: every run's req/s, then ` (non-2xx N)` (when asked) and
    /// ` (socket errors M)` summed over the runs, as far as there were any.
    pub fn runs_cell(&self, non2xx: bool) -> String {
        let mut s = self
            .rps_all
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        if non2xx && self.non2xx > 0 {
            s += &format!(" (non-2xx {})", self.non2xx);
        }
        if self.socket_errors > 0 {
            s += &format!(" (socket errors {})", self.socket_errors);
        }
        s
    }
}

pub fn aggregate(samples: &[Sample]) -> Agg {
    let med = |f: fn(&Sample) -> f64| {
        median(&samples.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let conns: Vec<f64> = samples.iter().filter_map(|s| s.up_conns_per_k).collect();
    Agg {
        rps: med(|s| s.rps),
        p99_ms: med(|s| s.p99_ms),
        cpu_us: med(|s| s.cpu_us_per_req),
        up_cpu_us: med(|s| s.upstream_cpu_us_per_req),
        server_cpu: med(Sample::server_cpu_pct),
        wrk_cpu: med(|s| s.wrk_cpu_pct),
        up_conns_per_k: median(&conns),
        bytes_per_req: med(|s| {
            if s.requests > 0 {
                s.bytes_read / s.requests as f64
            } else {
                f64::NAN
            }
        }),
        non2xx: samples.iter().map(|s| s.non2xx).sum(),
        socket_errors: samples.iter().map(|s| s.socket_errors).sum(),
        rps_all: samples.iter().map(|s| s.rps).collect(),
    }
}
