//! Access log and diagnostics through `tracing`.
//!
//! Access lines go under the `staticd::access` target to stdout or a file (`--access-log`),
//! either as nginx/Apache "combined" lines (existing log tooling keeps working) or one JSON
//! object per request. A file is opened in append mode and each line is one `write(2)`, so
//! after logrotate renames it and SIGUSR1 calls [`reopen_logs`], every line lands whole in
//! exactly one of the two files: writes already under way finish into the renamed file,
//! later ones go to the new one. Everything else (reloads, warnings) goes to stderr, as
//! text or JSON (`--error-log-format`), at `--log-level` (else `RUST_LOG`, else `info`).

use super::socket::Peer;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
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
    /// One JSON object per request, with the request time, route, and upstream.
    Json,
    /// No access log (benchmarks; a load balancer that already logs).
    Off,
}

/// Diagnostics format (`--error-log-format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiagFormat {
    /// tracing's human-readable lines.
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, message, fields).
    Json,
}

/// Diagnostics level (`--log-level`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl DiagLevel {
    fn filter(self) -> LevelFilter {
        match self {
            DiagLevel::Error => LevelFilter::ERROR,
            DiagLevel::Warn => LevelFilter::WARN,
            DiagLevel::Info => LevelFilter::INFO,
            DiagLevel::Debug => LevelFilter::DEBUG,
            DiagLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// How diagnostics are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Diagnostics {
    /// `None`: `RUST_LOG`, else `info`.
    pub level: Option<DiagLevel>,
    pub format: DiagFormat,
}

/// Where access lines go (`--access-log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessTarget {
    Stdout,
    /// Appended to; reopened by [`reopen_logs`].
    File(PathBuf),
}

impl AccessTarget {
    /// `-` and `stdout` are standard output; anything else a file path.
    pub fn parse(s: &str) -> AccessTarget {
        match s {
            "-" | "stdout" => AccessTarget::Stdout,
            path => AccessTarget::File(PathBuf::from(path)),
        }
    }
}

pub const ACCESS_TARGET: &str = "staticd::access";
/// JSON access lines: a target of their own below [`ACCESS_TARGET`], so both layers can be
/// installed at once and each request picks its format (a reload can change it).
const JSON_TARGET: &str = "staticd::access::json";

/// Where access lines are written now; swapped whole by [`reopen_logs`] and
/// [`set_access_target`].
enum Sink {
    Stdout,
    File { path: PathBuf, file: std::fs::File },
}

static SINK: LazyLock<ArcSwap<Sink>> = LazyLock::new(|| ArcSwap::from_pointee(Sink::Stdout));

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

/// Whether the server could open `path` as its access log ([`set_access_target`]), for
/// `staticd check`, leaving no trace: an existing file is opened for appending (never
/// truncated, nothing written); for a missing one, which serve would create, its directory
/// must exist and let this user create files (`faccessat` with `AT_EACCESS`, which also
/// reports a read-only file system). The file is not created here: one made by a check run
/// as root would belong to root, and creating then removing it could remove the file a
/// running server just opened.
pub fn probe_access_log(path: &Path) -> Result<(), String> {
    let shown = |e: std::io::Error| format!("access log {}: {e}", path.display());
    match std::fs::OpenOptions::new().append(true).open(path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(shown(e)),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let in_dir = |e: std::io::Error| {
        format!(
            "access log {}: directory {}: {e}",
            path.display(),
            dir.display()
        )
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(in_dir(std::io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        Err(e) => return Err(in_dir(e)),
    }
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| in_dir(std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: a NUL-terminated path; faccessat only reads it.
    let r = unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if r != 0 {
        return Err(in_dir(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Sends access lines to `target` from the next line on (the start, and a configuration
/// reload). A file that cannot be opened is an error naming it; the current target stays.
pub fn set_access_target(target: &AccessTarget) -> std::io::Result<()> {
    let sink = match target {
        AccessTarget::Stdout => Sink::Stdout,
        AccessTarget::File(path) => Sink::File {
            file: open_append(path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?,
            path: path.clone(),
        },
    };
    SINK.store(Arc::new(sink));
    Ok(())
}

/// SIGUSR1 (logrotate's `postrotate`): opens the access log file again under its path, so
/// lines go to the new file once the old one was renamed. Nothing to do for stdout. On
/// failure the old file stays in use and the error names the path.
pub fn reopen_logs() -> std::io::Result<()> {
    let current = SINK.load();
    let Sink::File { path, .. } = &**current else {
        return Ok(());
    };
    set_access_target(&AccessTarget::File(path.clone()))?;
    tracing::info!("reopened the access log {}", path.display());
    Ok(())
}

/// The access layers' writer: whatever [`SINK`] holds when a line is written.
struct AccessWriter;

/// One line's writer, holding the sink it started with (a reopen meanwhile does not split
/// the line).
struct AccessLine(arc_swap::Guard<Arc<Sink>>);

impl std::io::Write for AccessLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &**self.0 {
            Sink::Stdout => std::io::stdout().write(buf),
            Sink::File { file, .. } => (&*file).write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &**self.0 {
            // One lock for the whole line.
            Sink::Stdout => std::io::stdout().lock().write_all(buf),
            Sink::File { file, .. } => (&*file).write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &**self.0 {
            Sink::Stdout => std::io::stdout().flush(),
            Sink::File { .. } => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AccessWriter {
    type Writer = AccessLine;

    fn make_writer(&'a self) -> AccessLine {
        AccessLine(SINK.load())
    }
}

/// Installs the subscriber with access lines on stdout and default diagnostics; a no-op if
/// the binary already installed one.
pub fn init() {
    init_with(Diagnostics::default());
}

/// Installs the subscriber; a no-op if the binary already installed one. The access lines'
/// target is [`set_access_target`]'s (stdout until it is called).
///
/// Both access-log layers are installed and [`access`] writes to the one of the format
/// asked for, so `--log-format` takes effect on a reload (SIGHUP) without a new subscriber.
///
/// Every filter here states its maximum level (no closures), so the subscriber knows the
/// most verbose level anyone wants: `log` records of dependencies (actix emits `trace!`
/// calls for every request) are then dropped at the macro's level check instead of being
/// built and offered to each filter, which cost 2 % of the proxy's CPU.
pub fn init_with(diagnostics: Diagnostics) {
    let env = match diagnostics.level {
        Some(level) => EnvFilter::new(level.filter().to_string()),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let env = env.add_directive(
        format!("{ACCESS_TARGET}=off")
            .parse()
            .expect("a valid directive"),
    );
    let diag: Box<dyn Layer<_> + Send + Sync> = match diagnostics.format {
        DiagFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .with_filter(env)
            .boxed(),
        DiagFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(env)
            .boxed(),
    };
    let combined = tracing_subscriber::fmt::layer()
        .with_writer(AccessWriter)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_ansi(false)
        .with_filter(
            Targets::new()
                .with_target(ACCESS_TARGET, Level::INFO)
                .with_target(JSON_TARGET, LevelFilter::OFF),
        );
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(AccessWriter)
        .with_target(false)
        .with_filter(Targets::new().with_target(JSON_TARGET, Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(diag)
        .with(combined)
        .with(json)
        .try_init();
}

/// One request, as logged.
pub struct Entry<'a> {
    pub remote: Option<Peer>,
    pub method: &'a str,
    pub target: &'a str,
    pub version: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub referer: &'a str,
    pub user_agent: &'a str,
    pub elapsed: Duration,
    /// What answered (`static`, `media`, `proxy`, `internal`).
    pub route: &'a str,
    /// The upstream that answered a proxied request, and the time it took to its response
    /// head (nginx's `$upstream_addr` and `$upstream_header_time`).
    pub upstream: Option<(&'a str, Duration)>,
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
                target: JSON_TARGET,
                remote = e.remote.map(|a| a.to_string()),
                method = e.method,
                uri = e.target,
                protocol = e.version,
                status = e.status,
                bytes = e.bytes,
                referer = e.referer,
                user_agent = e.user_agent,
                request_time = e.elapsed.as_secs_f64(),
                route = e.route,
                upstream_addr = e.upstream.map(|(a, _)| a),
                upstream_time = e.upstream.map(|(_, t)| t.as_secs_f64()),
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
    fn access_log_probe_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // An existing file: opened for appending, left exactly as it was.
        let log = dir.path().join("access.log");
        std::fs::write(&log, "old line\n").unwrap();
        assert_eq!(probe_access_log(&log), Ok(()));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "old line\n");
        // A missing file in a directory this user can write: fine, and not created.
        let new = dir.path().join("new.log");
        assert_eq!(probe_access_log(&new), Ok(()));
        assert!(!new.exists(), "the probe created the file");
        // A missing directory, a directory given as the file, a file given as the directory.
        let gone = dir.path().join("gone/access.log");
        let e = probe_access_log(&gone).unwrap_err();
        assert_eq!(
            e,
            format!(
                "access log {}: directory {}: No such file or directory (os error 2)",
                gone.display(),
                dir.path().join("gone").display()
            )
        );
        let e = probe_access_log(dir.path()).unwrap_err();
        assert!(
            e.starts_with(&format!("access log {}: ", dir.path().display())),
            "{e}"
        );
        let under_file = log.join("x.log");
        let e = probe_access_log(&under_file).unwrap_err();
        assert!(e.ends_with("Not a directory (os error 20)"), "{e}");
    }

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
