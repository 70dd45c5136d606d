//! CPU time: what a running server spent (utime + stime from /proc, summed over its processes,
//! so nginx's master and worker count together) and what a finished child took (getrusage).

use std::process::{Command, Output};
use std::time::Instant;

/// Fields of /proc/PID/stat after the `(comm)`: index 0 is `state` (field 3).
pub fn proc_stat_fields(pid: i32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime in clock ticks, summed over `pids`.
pub fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|&p| proc_stat_fields(p))
        .map(|f| f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0))
        .sum()
}

pub fn clk_tck() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// CPU µs per request from the ticks spent over a run that served `requests`.
pub fn us_per_request(ticks: u64, requests: u64) -> f64 {
    ticks as f64 / clk_tck() * 1e6 / requests as f64
}

/// The processes whose parent is `pid` (nginx's worker, gunicorn's workers).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some(fields) = proc_stat_fields(p) {
                if fields.get(1).and_then(|s| s.parse::<i32>().ok()) == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// A `kB` line of /proc/PID/status (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: i32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// User + system CPU seconds of all waited-for children so far.
pub fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// A finished command: its output, wall seconds, and the CPU seconds (user + sys) it and the
/// children it waited for used.
pub struct Timed {
    pub output: Output,
    pub wall: f64,
    pub cpu: f64,
}

/// Runs `cmd` to its end and times it. Nothing else may be reaped meanwhile for `cpu` to be
/// this command's alone (the benches run one command at a time).
pub fn timed_output(cmd: &mut Command) -> std::io::Result<Timed> {
    let cpu0 = children_cpu_secs();
    let t0 = Instant::now();
    let output = cmd.output()?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = children_cpu_secs() - cpu0;
    Ok(Timed { output, wall, cpu })
}

/// The first `fields` load averages (1, 5, 15 minutes), space-separated: how noisy the machine
/// was around a run.
pub fn loadavg(fields: usize) -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            s.split_whitespace()
                .take(fields)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".into())
}
