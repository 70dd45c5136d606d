//! Prometheus metrics (`--metrics-bind`): counted on the request path with plain atomics,
//! encoded at scrape time through prometheus-client's own encoders (OpenMetrics, or the
//! Prometheus 0.0.4 text format for scrapers that do not ask for OpenMetrics).
//!
//! Why not prometheus-client's `Family<Labels, Counter>` on the request path: each
//! observation would hash the label set and take the family's lock, and its `Histogram`
//! takes a lock per observation. Here a request costs four relaxed atomic adds into fixed
//! arrays indexed by small enums (no hashing, no lock, no allocation), and nothing at all
//! unless metrics are on ([`enable`]). Rare events (an upstream failure, a table reload)
//! go through a mutex-guarded map, which also keeps their labels across a configuration
//! reload that replaces the proxy.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// What answered a request: the `route` label of the request metrics and the access log,
/// and the kinds header rules (`--header`) are given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouteKind {
    /// The static table under STATIC_URL, and the root files (`--root-files`).
    Static,
    /// `--media-root`.
    Media,
    /// The upstream (its answers, X-Accel-Redirect files, 502/504 pages, and the 404 of a
    /// server without one).
    Proxy,
    /// staticd's own answers: the health path, and requests refused before any route
    /// (malformed heads, timeouts, `OPTIONS *`, CONNECT, TRACE).
    #[default]
    Internal,
}

impl RouteKind {
    pub const ALL: [RouteKind; 4] = [
        RouteKind::Static,
        RouteKind::Media,
        RouteKind::Proxy,
        RouteKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Static => "static",
            RouteKind::Media => "media",
            RouteKind::Proxy => "proxy",
            RouteKind::Internal => "internal",
        }
    }
}

/// The content-coding of a response body (the `coding` label of the bytes counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Br,
    Zstd,
    /// Anything else an upstream may send (deflate, compress, a list of codings).
    Other,
}

impl Coding {
    const ALL: [Coding; 5] = [
        Coding::Identity,
        Coding::Gzip,
        Coding::Br,
        Coding::Zstd,
        Coding::Other,
    ];

    /// From a `Content-Encoding` value (`None`: no such field, identity).
    pub fn of(content_encoding: Option<&[u8]>) -> Coding {
        match content_encoding.map(<[u8]>::trim_ascii) {
            None => Coding::Identity,
            Some(v) if v.is_empty() || v.eq_ignore_ascii_case(b"identity") => Coding::Identity,
            Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => {
                Coding::Gzip
            }
            Some(v) if v.eq_ignore_ascii_case(b"br") => Coding::Br,
            Some(v) if v.eq_ignore_ascii_case(b"zstd") => Coding::Zstd,
            Some(_) => Coding::Other,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Other => "other",
        }
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// 1xx → 0 … 5xx → 4 (nginx's 499 is a 4xx; anything out of range is counted as 5xx).
fn class(status: u16) -> usize {
    (usize::from(status / 100)).clamp(1, 5) - 1
}

/// Upper bounds of the latency buckets, in seconds: from a memory hit (tens of µs, all in
/// the first bucket) to a slow Django view.
const BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram of atomics: one bucket add and one sum add per observation.
struct Histogram {
    /// Observations per bucket (not cumulative), the last one above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with `+Inf` last): what the encoders take
    /// (they make the buckets cumulative themselves).
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut out = Vec::with_capacity(BOUNDS.len() + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Relaxed);
            total += n;
            out.push((BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        (sum, total, out)
    }
}

/// A table's load count and reload results.
#[derive(Debug, Default, Clone, Copy)]
struct TableCounts {
    generation: u64,
    reloads_ok: u64,
    reloads_failed: u64,
}

/// Every counter staticd keeps.
struct Metrics {
    requests: [[AtomicU64; CLASSES.len()]; RouteKind::ALL.len()],
    bytes: [AtomicU64; Coding::ALL.len()],
    duration: [Histogram; RouteKind::ALL.len()],
    upstream_header: Histogram,
    upstream_failures: Mutex<BTreeMap<String, u64>>,
    connections: AtomicI64,
    tables: Mutex<BTreeMap<&'static str, TableCounts>>,
}

static METRICS: Metrics = Metrics {
    requests: [const { [const { AtomicU64::new(0) }; CLASSES.len()] }; RouteKind::ALL.len()],
    bytes: [const { AtomicU64::new(0) }; Coding::ALL.len()],
    duration: [const { Histogram::new() }; RouteKind::ALL.len()],
    upstream_header: Histogram::new(),
    upstream_failures: Mutex::new(BTreeMap::new()),
    connections: AtomicI64::new(0),
    tables: Mutex::new(BTreeMap::new()),
};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns counting on (`--metrics-bind`); until then every recording function returns at once.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Whether requests are counted (the front ends read the clock only when someone wants it).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// One answered request: its route, status, body bytes sent, their coding, and the time
/// from its head to the end of its answer (HTTP/1: the last byte written; HTTP/2: the
/// answer handed to actix's HTTP/2 writer, which streams the body after).
#[inline]
pub fn request(route: RouteKind, status: u16, bytes: u64, coding: Coding, took: Duration) {
    if !enabled() {
        return;
    }
    let m = &METRICS;
    m.requests[route as usize][class(status)].fetch_add(1, Relaxed);
    if bytes > 0 {
        m.bytes[coding as usize].fetch_add(bytes, Relaxed);
    }
    m.duration[route as usize].observe(took);
}

/// The time an upstream took to send its response head (connect included).
pub fn upstream_header(took: Duration) {
    if enabled() {
        METRICS.upstream_header.observe(took);
    }
}

/// An attempt at `upstream` failed (refused, timed out, broken): nginx's `fails`.
pub fn upstream_failed(upstream: &dyn std::fmt::Display) {
    if !enabled() {
        return;
    }
    let mut map = METRICS
        .upstream_failures
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    *map.entry(upstream.to_string()).or_default() += 1;
}

/// Counts an open client connection until dropped.
pub struct Connection(bool);

impl Connection {
    pub fn open() -> Connection {
        let on = enabled();
        if on {
            METRICS.connections.fetch_add(1, Relaxed);
        }
        Connection(on)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.0 {
            METRICS.connections.fetch_sub(1, Relaxed);
        }
    }
}

/// A table `name` was built: `reload` says whether it replaced a previous one, `ok` whether
/// the build succeeded (a failed reload keeps the previous generation).
pub fn table_built(name: &'static str, reload: bool, ok: bool) {
    let mut map = METRICS.tables.lock().unwrap_or_else(|e| e.into_inner());
    let t = map.entry(name).or_default();
    if ok {
        t.generation += 1;
    }
    match (reload, ok) {
        (false, _) => {}
        (true, true) => t.reloads_ok += 1,
        (true, false) => t.reloads_failed += 1,
    }
}

/// What is read from the running server at scrape time.
#[derive(Debug, Default)]
pub struct Now {
    /// Per table (`static`, `root_files`): URLs and bytes held in memory.
    pub tables: Vec<(&'static str, u64, u64)>,
    /// Per upstream: its address and whether it is up.
    pub upstreams: Vec<(String, bool)>,
}

/// The Content-Type of [`encode`]'s output.
pub fn content_type(openmetrics: bool) -> &'static str {
    if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    }
}

/// The exposition: OpenMetrics when the scraper asked for it, else the 0.0.4 text format.
pub fn encode(now: Now, openmetrics: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(now)));
    let mut out = String::with_capacity(8192);
    let r = if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    };
    // Writing into a String cannot fail, and every name and label here is valid.
    r.expect("metrics encode into a String");
    out
}

/// The collector of one scrape.
#[derive(Debug)]
struct Scrape(Now);

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &METRICS;
        let counter = |v: u64| prometheus_client::metrics::counter::ConstCounter::new(v);
        let gauge = |v: i64| prometheus_client::metrics::gauge::ConstGauge::new(v);

        {
            let mut e = enc.encode_descriptor(
                "staticd_http_requests",
                "Requests answered, by route kind and status class.",
                None,
                MetricType::Counter,
            )?;
            for route in RouteKind::ALL {
                for (c, name) in CLASSES.iter().enumerate() {
                    let v = m.requests[route as usize][c].load(Relaxed);
                    let labels = [("route", route.as_str()), ("status_class", name)];
                    counter(v).encode(e.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut e = enc.encode_descriptor(
                "staticd_http_response",
                "Response body bytes sent, by content-coding.",
                Some(&Unit::Bytes),
                MetricType::Counter,
            )?;
            for coding in Coding::ALL {
                let v = m.bytes[coding as usize].load(Relaxed);
                counter(v).encode(e.encode_family(&[("coding", coding.as_str())])?)?;
            }
        }
        {
            let mut e = enc.encode_descriptor(
                "staticd_http_request_duration",
                "Time from a request's head to its answer written (HTTP/2: handed to the HTTP/2 writer), by route kind.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for route in RouteKind::ALL {
                let (sum, count, buckets) = m.duration[route as usize].snapshot();
                e.encode_family(&[("route", route.as_str())])?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        {
            let (sum, count, buckets) = m.upstream_header.snapshot();
            enc.encode_descriptor(
                "staticd_upstream_header_duration",
                "Time from the start of the upstream attempt that answered (connect included) to its response head (nginx's $upstream_header_time).",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        {
            let mut e = enc.encode_descriptor(
                "staticd_upstream_up",
                "Whether the upstream is taken (1) or skipped after failures (0).",
                None,
                MetricType::Gauge,
            )?;
            for (addr, up) in &self.0.upstreams {
                gauge(i64::from(*up)).encode(e.encode_family(&[("upstream", addr.as_str())])?)?;
            }
        }
        {
            let failures = m
                .upstream_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let mut e = enc.encode_descriptor(
                "staticd_upstream_failures",
                "Failed attempts (refused, timed out, broken) per upstream.",
                None,
                MetricType::Counter,
            )?;
            // Every configured upstream appears, with 0 until its first failure.
            let mut all: BTreeMap<&str, u64> = self
                .0
                .upstreams
                .iter()
                .map(|(a, _)| (a.as_str(), 0))
                .collect();
            for (a, n) in &failures {
                all.insert(a.as_str(), *n);
            }
            for (addr, n) in all {
                counter(n).encode(e.encode_family(&[("upstream", addr)])?)?;
            }
        }
        gauge(m.connections.load(Relaxed)).encode(enc.encode_descriptor(
            "staticd_open_connections",
            "Client connections open now (HTTP/1 and h2c).",
            None,
            MetricType::Gauge,
        )?)?;

        let tables = m.tables.lock().unwrap_or_else(|e| e.into_inner()).clone();
        {
            let mut e = enc.encode_descriptor(
                "staticd_table_generation",
                "Tables built since start (1 once loaded; each successful reload adds one).",
                None,
                MetricType::Gauge,
            )?;
            for (name, t) in &tables {
                gauge(t.generation as i64).encode(e.encode_family(&[("table", *name)])?)?;
            }
        }
        {
            let mut e = enc.encode_descriptor(
                "staticd_table_reloads",
                "Table reloads, by result (a failed one keeps the previous generation).",
                None,
                MetricType::Counter,
            )?;
            for (name, t) in &tables {
                for (result, n) in [("ok", t.reloads_ok), ("failed", t.reloads_failed)] {
                    let labels = [("table", *name), ("result", result)];
                    counter(n).encode(e.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut e = enc.encode_descriptor(
                "staticd_table_assets",
                "URLs the current table answers.",
                None,
                MetricType::Gauge,
            )?;
            for (name, assets, _) in &self.0.tables {
                gauge(*assets as i64).encode(e.encode_family(&[("table", *name)])?)?;
            }
        }
        {
            let mut e = enc.encode_descriptor(
                "staticd_memory_cache",
                "File bytes the current table holds in memory (--mem-total-max).",
                Some(&Unit::Bytes),
                MetricType::Gauge,
            )?;
            for (name, _, mem) in &self.0.tables {
                gauge(*mem as i64).encode(e.encode_family(&[("table", *name)])?)?;
            }
        }
        Ok(())
    }
}

/// The sample names of every family [`encode`] writes (the README lists them too).
pub const FAMILIES: [&str; 11] = [
    "staticd_http_requests_total",
    "staticd_http_response_bytes_total",
    "staticd_http_request_duration_seconds",
    "staticd_upstream_header_duration_seconds",
    "staticd_upstream_up",
    "staticd_upstream_failures_total",
    "staticd_open_connections",
    "staticd_table_generation",
    "staticd_table_reloads_total",
    "staticd_table_assets",
    "staticd_memory_cache_bytes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_codings() {
        assert_eq!(class(101), 0);
        assert_eq!(class(200), 1);
        assert_eq!(class(304), 2);
        assert_eq!(class(499), 3);
        assert_eq!(class(504), 4);
        assert_eq!(class(999), 4);
        assert_eq!(Coding::of(None), Coding::Identity);
        assert_eq!(Coding::of(Some(b" br ")), Coding::Br);
        assert_eq!(Coding::of(Some(b"GZIP")), Coding::Gzip);
        assert_eq!(Coding::of(Some(b"zstd")), Coding::Zstd);
        assert_eq!(Coding::of(Some(b"gzip, br")), Coding::Other);
    }

    #[test]
    fn histogram_buckets_count_their_own_observations() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60.0031).abs() < 1e-9, "{sum}");
        assert_eq!(buckets[0], (0.0005, 1));
        assert_eq!(buckets[3], (0.005, 1));
        assert_eq!(buckets[BOUNDS.len() - 1], (10.0, 0));
        assert_eq!(*buckets.last().unwrap(), (f64::INFINITY, 1));
        assert_eq!(buckets.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }

    /// Both formats name every family this module documents.
    #[test]
    fn both_formats_carry_every_family() {
        table_built("static", false, true);
        let now = Now {
            tables: vec![("static", 3, 100)],
            upstreams: vec![("127.0.0.1:1".into(), true)],
        };
        for om in [true, false] {
            let text = encode(
                Now {
                    tables: now.tables.clone(),
                    upstreams: now.upstreams.clone(),
                },
                om,
            );
            for name in FAMILIES {
                assert!(
                    text.lines().any(|l| l.starts_with(name)),
                    "{name} missing (openmetrics: {om}):\n{text}"
                );
            }
            assert_eq!(text.ends_with("# EOF\n"), om, "{text}");
        }
    }
}
