//! h2load runs (nghttp2's HTTP/2 load generator): one load per call, its report parsed into the
//! same [`Sample`] as wrk's, with the server's CPU over the run from /proc. h2load reports no
//! percentiles, so `p99_ms` stays NaN (the report prints "-").

use super::cpu::{cpu_ticks, timed_output, us_per_request};
use super::wrk::Sample;
use std::process::Command;

/// `taskset -c CORE h2load -t1 -c CONNS -m STREAMS -D SECS [-H HEADER] URL`.
pub struct Load<'a> {
    pub core: &'a str,
    pub conns: u64,
    /// Concurrent streams per connection.
    pub streams: u64,
    pub secs: u64,
    pub url: String,
    pub header: Option<String>,
}

/// Requests/sec, requests done and what failed, from h2load's report.
pub fn parse(out: &str) -> Result<Sample, String> {
    let mut s = Sample {
        p99_ms: f64::NAN,
        ..Sample::default()
    };
    let mut got_rps = false;
    for line in out.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            // `finished in 5.00s, 12345.60 req/s, 1.23MB/s`
            let rps = rest
                .split(", ")
                .find_map(|p| p.strip_suffix(" req/s"))
                .ok_or("no req/s")?;
            s.rps = rps.trim().parse().map_err(|_| "bad req/s")?;
            got_rps = true;
        }
        if let Some(rest) = line.strip_prefix("requests: ") {
            // `N total, N started, N done, N succeeded, N failed, N errored, N timeout`
            let count = |what: &str| -> u64 {
                rest.split(", ")
                    .find_map(|p| p.strip_suffix(what))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            };
            s.requests = count(" succeeded");
            s.socket_errors = count(" failed") + count(" errored") + count(" timeout");
        }
        if let Some(rest) = line.strip_prefix("status codes: ") {
            let ok: u64 = rest
                .split(", ")
                .find_map(|p| p.strip_suffix(" 2xx"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            s.non2xx = s.requests.saturating_sub(ok);
        }
    }
    if !got_rps {
        return Err(format!("unparsable h2load output:\n{out}"));
    }
    Ok(s)
}

/// Runs `load` once; `server`: the processes whose CPU per request is sampled over the run.
pub fn run(load: &Load, server: &[i32]) -> Result<Sample, String> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", load.core, "h2load", "-t1"])
        .args(["-c", &load.conns.to_string()])
        .args(["-m", &load.streams.to_string()])
        .args(["-D", &load.secs.to_string()]);
    if let Some(h) = &load.header {
        cmd.arg("-H").arg(h);
    }
    cmd.arg(&load.url);
    let cpu0 = cpu_ticks(server);
    let h2 = timed_output(&mut cmd).map_err(|e| format!("h2load: {e}"))?;
    let cpu1 = cpu_ticks(server);
    let mut s = parse(&String::from_utf8_lossy(&h2.output.stdout))?;
    if s.requests > 0 {
        s.cpu_us_per_req = us_per_request(cpu1.saturating_sub(cpu0), s.requests);
    }
    s.wrk_cpu_pct = h2.cpu / h2.wall * 100.0;
    Ok(s)
}
