//! Access log (stdout) and diagnostics (stderr) through `tracing`.
//!
//! Access lines go to stdout under the `staticd::access` target, either as nginx/Apache
//! "combined" lines (existing log tooling keeps working) or one JSON object per request.
//! Everything else (reloads, warnings) goes to stderr, filtered by `RUST_LOG`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Access log format (`--log-format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Apache/nginx "combined" lines, so existing log tooling keeps working.
    Combined,
    /// One JSON object per request, with the request time.
    Json,
    /// No access log (benchmarks; a load balancer that already logs).
    Off,
}

pub const ACCESS_TARGET: &str = "staticd::access";

/// Installs the subscriber; a no-op if the binary already installed one.
///
/// Every filter here states its maximum level (no closures), so the subscriber knows the
/// most verbose level anyone wants: `log` records of dependencies (actix emits `trace!`
/// calls for every request) are then dropped at the macro's level check instead of being
/// built and offered to each filter, which cost 2 % of the proxy's CPU.
pub fn init(format: LogFormat) {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let diag = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(
            env.add_directive(
                format!("{ACCESS_TARGET}=off")
                    .parse()
                    .expect("a valid directive"),
            ),
        );
    let is_access = || Targets::new().with_target(ACCESS_TARGET, Level::INFO);
    let access: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Combined => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stdout)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .with_filter(is_access())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .with_target(false)
            .with_filter(is_access())
            .boxed(),
        LogFormat::Off => tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(LevelFilter::OFF)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(diag)
        .with(access)
        .try_init();
}

/// One request, as logged.
pub struct Entry<'a> {
    pub remote: Option<std::net::IpAddr>,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub elapsed: Duration,
}

/// Emits one access-log event in `format`.
pub fn access(format: LogFormat, e: &Entry<'_>) {
    match format {
        LogFormat::Off => {}
        LogFormat::Combined => {
            let remote = e.remote.map_or_else(|| "-".to_string(), |a| a.to_string());
            let line = format!(
                "{remote} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"",
                clf_time(SystemTime::now()),
                e.method,
                escape(e.target),
                e.version,
                e.status,
                e.bytes,
                escape(or_dash(e.referer)),
                escape(or_dash(e.user_agent)),
            );
            tracing::info!(target: ACCESS_TARGET, "{line}");
        }
        LogFormat::Json => {
            tracing::info!(
                target: ACCESS_TARGET,
                remote = e.remote.map(|a| a.to_string()),
                method = e.method,
                uri = e.target,
                protocol = e.version,
                status = e.status,
                bytes = e.bytes,
                referer = e.referer,
                user_agent = e.user_agent,
                request_time = e.elapsed.as_secs_f64(),
            );
        }
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// nginx escapes `"`, `\` and non-printables as `\xHH` so a request cannot forge log lines.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out.into()
}

/// `10/Oct/2000:13:55:36 +0000` (UTC).
fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days → (year, month, day) for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clf_dates() {
        assert_eq!(clf_time(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(971_186_136)),
            "10/Oct/2000:13:55:36 +0000"
        );
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "29/Feb/2024:12:34:56 +0000"
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(escape("/a b"), "/a b");
        assert_eq!(escape("/a\"b\n"), "/a\\x22b\\x0A");
    }
}
