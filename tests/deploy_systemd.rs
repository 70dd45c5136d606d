//! deploy/staticd.service and deploy/staticd.socket, tested without systemd as PID 1:
//! `systemd-analyze verify` and `security --offline` read them as systemd would; the
//! service's command line is checked against `staticd serve --help` and the socket's
//! `ListenStream`; and the ExecStart is run the way systemd runs it (the socket bound by
//! the test and passed at descriptor 3 with `LISTEN_FDS`, the unit's paths under a
//! temporary root), then reloaded by the ExecReload command and stopped by KillSignal;
//! and under strace, every system call a serving staticd makes is in the unit's
//! SystemCallFilter.

use crate::common::echo::Upstream;
use crate::common::fixture::write_manifest;
use crate::common::http;
use crate::common::staticd::{socket_activation, Staticd, WAIT};
use crate::common::{ci_installed, help_flags, repo_root, wait_until, write_file};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;

/// Where the service runs staticd from (`cargo install --path . --root /usr/local`).
const BINARY: &str = "/usr/local/bin/staticd";

/// A unit file: `(section, key, value)` in order, continuation lines joined.
struct Unit(Vec<(String, String, String)>);

impl Unit {
    fn read(name: &str) -> Unit {
        let path = repo_root().join("deploy").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        Unit::parse(&text)
    }

    /// systemd.syntax(7): `[Section]`, `Key=value`, `#` and `;` comments, a trailing `\`
    /// continues a line (comment lines inside a continued line are skipped).
    fn parse(text: &str) -> Unit {
        let mut out = Vec::new();
        let mut section = String::new();
        let mut cur: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('#') || t.starts_with(';') || (t.is_empty() && cur.is_none()) {
                continue;
            }
            let mut whole = cur.take().unwrap_or_default();
            match t.strip_suffix('\\') {
                Some(part) => {
                    whole.push_str(part);
                    whole.push(' ');
                    cur = Some(whole);
                    continue;
                }
                None => whole.push_str(t),
            }
            if let Some(name) = whole.strip_prefix('[') {
                section = name
                    .strip_suffix(']')
                    .unwrap_or_else(|| panic!("line {}: {whole}", n + 1))
                    .to_string();
                continue;
            }
            let (k, v) = whole
                .split_once('=')
                .unwrap_or_else(|| panic!("line {}: not Key=value: {whole}", n + 1));
            assert!(!section.is_empty(), "line {}: outside a section", n + 1);
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
        assert!(cur.is_none(), "a continuation at the end of the file");
        Unit(out)
    }

    fn all(&self, section: &str, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(s, k, _)| s == section && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The one value of `key` (given once).
    fn one(&self, section: &str, key: &str) -> &str {
        match self.all(section, key)[..] {
            [v] => v,
            ref vs => panic!("[{section}] {key}: {} values: {vs:?}", vs.len()),
        }
    }
}

/// A command line (ExecStart, ExecReload) as words. The unit's lines use no quotes, so
/// splitting on whitespace is systemd's own splitting; `%L` is the log directory root.
fn words(line: &str, log_root: &Path) -> Vec<String> {
    assert!(
        !line.contains('"') && !line.contains('\''),
        "quotes: extend this splitter first: {line}"
    );
    line.split_whitespace()
        .map(|w| {
            let w = w.replace("%L", log_root.to_str().unwrap());
            assert!(!w.contains('%'), "a specifier this test does not know: {w}");
            w
        })
        .collect()
}

/// The values of `--flag` in a command line.
fn values<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
    argv.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

/// `10s`, `1min 30s`, `500ms` or plain seconds (systemd.time(7), the units used here).
fn seconds(span: &str) -> f64 {
    let mut total = 0.0;
    for part in span.split_whitespace() {
        let at = part
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(part.len());
        let (n, unit) = part.split_at(at);
        let n: f64 = n.parse().unwrap_or_else(|_| panic!("{span:?}"));
        total += n * match unit {
            "" | "s" | "sec" => 1.0,
            "ms" | "msec" => 0.001,
            "min" | "m" => 60.0,
            other => panic!("unit {other:?} in {span:?}"),
        };
    }
    total
}

/// The `--bind` value that listens where a `ListenStream=` does (with `BindIPv6Only=both`).
fn as_bind(listen: &str) -> String {
    if listen.starts_with('/') {
        format!("unix:{listen}")
    } else if listen.parse::<u16>().is_ok() {
        // Every address, IPv4 and IPv6: staticd's `:PORT`.
        format!(":{listen}")
    } else {
        listen.to_string()
    }
}

#[test]
fn unit_parser_reads_systemd_syntax() {
    let u = Unit::parse(
        "# comment\n[Unit]\nDescription=x y\n\n[Service]\n; other comment\nExecStart=/bin/a \\\n    --b c \\\n# inside\n    --d\nCapabilityBoundingSet=\nX=1\nX=2\n",
    );
    assert_eq!(u.one("Unit", "Description"), "x y");
    assert_eq!(u.one("Service", "ExecStart"), "/bin/a  --b c  --d");
    assert_eq!(u.one("Service", "CapabilityBoundingSet"), "");
    assert_eq!(u.all("Service", "X"), ["1", "2"]);
    assert!(u.all("Unit", "X").is_empty());
    let argv = words("/bin/a  --b %L/c  --d", Path::new("/var/log"));
    assert_eq!(argv, ["/bin/a", "--b", "/var/log/c", "--d"]);
    assert_eq!(values(&argv, "--b"), ["/var/log/c"]);
    assert_eq!(seconds("15s"), 15.0);
    assert_eq!(seconds("1min 30s"), 90.0);
    assert_eq!(seconds("500ms"), 0.5);
    assert_eq!(as_bind("80"), ":80");
    assert_eq!(as_bind("/run/s.sock"), "unix:/run/s.sock");
    assert_eq!(as_bind("127.0.0.1:80"), "127.0.0.1:80");
}

/// Both units in a directory of their own, the service's binary the one under test
/// (`verify` wants an executable there).
fn units_in(dir: &Path) {
    let service = std::fs::read_to_string(repo_root().join("deploy/staticd.service")).unwrap();
    assert!(service.contains(BINARY));
    let service = service.replace(BINARY, env!("CARGO_BIN_EXE_staticd"));
    std::fs::write(dir.join("staticd.service"), service).unwrap();
    std::fs::copy(
        repo_root().join("deploy/staticd.socket"),
        dir.join("staticd.socket"),
    )
    .unwrap();
}

fn analyze(dir: &Path, args: &[&str]) -> (bool, String) {
    let tool = ci_installed("systemd", "to check the unit files");
    let o = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// `systemd-analyze verify` accepts both units with no warning at all (an unknown or
/// misspelt key is only a warning to it, so any output fails the test), and the sandbox's
/// exposure, as `systemd-analyze security` rates it offline, stays in its "OK" band.
#[test]
fn systemd_analyze_accepts_the_units() {
    let dir = tempfile::tempdir().unwrap();
    units_in(dir.path());
    let verify = [
        "verify",
        "--man=no",
        "./staticd.socket",
        "./staticd.service",
    ];
    let (ok, out) = analyze(dir.path(), &verify);
    assert!(ok && out.is_empty(), "systemd-analyze verify:\n{out}");

    // The same check sees a misspelt key: an empty output above means something.
    let service = dir.path().join("staticd.service");
    let text = std::fs::read_to_string(&service).unwrap();
    std::fs::write(&service, text.replace("\nKillSignal=", "\nKilSignal=")).unwrap();
    let (_, out) = analyze(dir.path(), &verify);
    assert!(out.contains("Unknown key 'KilSignal'"), "{out}");
    std::fs::write(&service, text).unwrap();

    // systemd rates exposure from 0 (locked down) to 10; --threshold is in tenths, and a
    // rating above it fails. 2.0 and below is what it calls "OK".
    let (ok, out) = analyze(
        dir.path(),
        &[
            "security",
            "--offline=true",
            "--threshold=20",
            "./staticd.service",
        ],
    );
    let overall = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall rating:\n{out}"));
    assert!(ok, "exposure above 2.0: {overall}\n{out}");
    assert!(overall.contains(" OK"), "{overall}");
}

/// What the service's ExecStart gives staticd exists in `serve --help`; its `--bind` is
/// where the socket listens; stop and reload are staticd's signals with systemd waiting
/// longer than staticd drains; the sandbox leaves the service the paths it writes and
/// reads.
#[test]
fn service_command_line_and_socket_agree() {
    let service = Unit::read("staticd.service");
    let socket = Unit::read("staticd.socket");
    let log_root = Path::new("/var/log");
    let argv = words(service.one("Service", "ExecStart"), log_root);
    assert_eq!(argv[..2], [BINARY, "serve"]);
    let known = help_flags("serve");
    assert!(
        known.contains("--bind") && known.contains("--access-log"),
        "{known:?}"
    );
    for flag in argv.iter().filter(|a| a.starts_with("--")) {
        let name = flag.split('=').next().unwrap();
        assert!(known.contains(name), "staticd serve has no {name}");
    }

    // The socket: what systemd binds is what staticd would bind by itself.
    assert_eq!(socket.one("Socket", "Service"), "staticd.service");
    assert_eq!(socket.one("Socket", "BindIPv6Only"), "both");
    assert!(!socket.one("Socket", "FileDescriptorName").is_empty());
    let listens: BTreeSet<String> = socket
        .all("Socket", "ListenStream")
        .into_iter()
        .map(as_bind)
        .collect();
    let binds: BTreeSet<String> = values(&argv, "--bind")
        .into_iter()
        .map(String::from)
        .collect();
    assert!(!listens.is_empty());
    assert_eq!(listens, binds, "ListenStream and --bind differ");
    assert!(service
        .one("Unit", "Requires")
        .split_whitespace()
        .any(|u| u == "staticd.socket"));

    // Stop: SIGTERM, and systemd's SIGKILL only after staticd's own drain.
    assert_eq!(service.one("Service", "KillSignal"), "SIGTERM");
    let drain = values(&argv, "--shutdown-timeout");
    assert_eq!(drain.len(), 1, "the drain is given, not left to a default");
    assert!(
        seconds(service.one("Service", "TimeoutStopSec")) > seconds(drain[0]),
        "TimeoutStopSec must exceed --shutdown-timeout {}",
        drain[0]
    );
    // Reload: SIGHUP to the main process.
    assert_eq!(
        words(service.one("Service", "ExecReload"), log_root),
        ["/bin/kill", "-HUP", "$MAINPID"]
    );

    // The sandbox.
    for (key, want) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("StateDirectory", "staticd"),
        ("LogsDirectory", "staticd"),
    ] {
        assert_eq!(service.one("Service", key), want, "{key}");
    }
    let families: BTreeSet<&str> = service
        .one("Service", "RestrictAddressFamilies")
        .split_whitespace()
        .collect();
    assert_eq!(families, BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]));
    // The access log is the one place written (everything else is read-only): under the
    // LogsDirectory systemd makes writable for the service.
    let access = values(&argv, "--access-log");
    assert_eq!(access.len(), 1);
    assert!(
        Path::new(access[0]).starts_with(log_root.join(service.one("Service", "LogsDirectory"))),
        "{access:?}"
    );
    // STATIC_ROOT's directory is read-only by name, and not STATIC_ROOT itself: collect
    // swaps STATIC_ROOT with a rename, which a bind mount on it would hide.
    let read_only: Vec<&str> = service
        .all("Service", "ReadOnlyPaths")
        .into_iter()
        .flat_map(|v| v.split_whitespace())
        .map(|p| p.trim_start_matches('-'))
        .collect();
    for root in values(&argv, "--root")
        .into_iter()
        .chain(values(&argv, "--media-root"))
    {
        let root = Path::new(root);
        assert!(
            read_only
                .iter()
                .any(|p| root.starts_with(p) && root != Path::new(p)),
            "{} is not below a ReadOnlyPaths entry: {read_only:?}",
            root.display()
        );
    }
}

/// The ExecStart, run as systemd runs it: the socket of staticd.socket bound by the test
/// (on a free loopback port instead of 80) at descriptor 3 with `LISTEN_FDS`, the paths
/// the units name under a temporary root, gunicorn's address an upstream of the test's.
/// It serves from the inherited socket (not its `--bind`), static, media, health and the
/// upstream, logs to the file; `staticd check` accepts the same options; the ExecReload
/// command reloads it, and KillSignal stops it cleanly.
#[test]
fn the_service_runs_as_systemd_starts_it() {
    let service = Unit::read("staticd.service");
    let socket = Unit::read("staticd.socket");
    let sys = tempfile::tempdir().unwrap();
    let log_root = sys.path().join("var/log");
    // systemd makes the LogsDirectory before it starts the service.
    std::fs::create_dir_all(log_root.join(service.one("Service", "LogsDirectory"))).unwrap();
    let up = Upstream::start();
    let argv: Vec<String> = words(service.one("Service", "ExecStart"), &log_root)
        .into_iter()
        .map(|a| {
            if a.starts_with("/srv/") {
                format!("{}{a}", sys.path().display())
            } else {
                a
            }
        })
        .collect();
    let upstreams = values(&argv, "--upstream");
    assert_eq!(upstreams.len(), 1);
    let argv: Vec<String> = argv
        .iter()
        .map(|a| {
            if a == upstreams[0] {
                up.addr.clone()
            } else {
                a.clone()
            }
        })
        .collect();
    // What collect and the uploads would have put there.
    let root = Path::new(values(&argv, "--root")[0]).to_path_buf();
    let media = Path::new(values(&argv, "--media-root")[0]).to_path_buf();
    write_file(&root, "app.css", b"body{}");
    write_manifest(&root, &[("app.css", "app.css")]);
    write_file(&media, "up.txt", b"uploaded");

    // `staticd check` (nginx -t) with the same options: all well, nothing created.
    let access = Path::new(values(&argv, "--access-log")[0]).to_path_buf();
    let o = Command::new(env!("CARGO_BIN_EXE_staticd"))
        .arg("check")
        .args(&argv[2..])
        .current_dir(sys.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!access.exists(), "check created the access log");

    // Started by systemd: the socket at descriptor 3, named by FileDescriptorName.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let name = socket.one("Socket", "FileDescriptorName");
    let mut cmd = socket_activation(l.as_raw_fd(), &format!("LISTEN_FDNAMES={name}"));
    cmd.args(&argv[1..]).current_dir(sys.path());
    let mut s = Staticd::start(cmd);
    assert_eq!(
        s.addr, a,
        "it listens on the inherited socket, not on --bind"
    );
    s.stderr.wait("the socket's name", |line| {
        line.ends_with(&format!("http://{a}: socket \"{name}\" from systemd"))
    });
    let r = http::get(a, "/static/app.css", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "body{}"));
    assert_eq!(http::get(a, "/media/up.txt", &[]).text(), "uploaded");
    let r = http::get(a, "/.staticd/health/ready", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(http::get(a, "/page", &[]).text(), "GET /page 0");
    up.wait_for("/page");
    // The access log is the file the unit names, in the combined format.
    wait_until("the access log file to hold /page", WAIT, || {
        let text = std::fs::read_to_string(&access).ok()?;
        text.lines()
            .any(|l| l.contains("\"GET /page HTTP/1.1\" 200"))
            .then_some(())
    });

    // `systemctl reload`: the ExecReload command, $MAINPID staticd's pid.
    let pid = s.child.id().to_string();
    let reload: Vec<String> = words(service.one("Service", "ExecReload"), &log_root)
        .into_iter()
        .map(|w| w.replace("$MAINPID", &pid))
        .collect();
    let st = Command::new(&reload[0])
        .args(&reload[1..])
        .status()
        .unwrap();
    assert!(st.success(), "{reload:?}");
    let mut from = 0;
    s.stderr.wait_from(&mut from, "the SIGHUP", WAIT, |l| {
        l.contains("SIGHUP: reloading the configuration")
    });
    s.stderr
        .wait_from(&mut from, "the reload's outcome", WAIT, |l| {
            l.contains("configuration reloaded from")
        });
    assert_eq!(http::get(a, "/static/app.css", &[]).status, 200);

    // `systemctl stop`: KillSignal, then a clean exit (systemd would wait TimeoutStopSec).
    let signal = service.one("Service", "KillSignal");
    let kill = Command::new("kill")
        .args([&format!("-{}", signal.trim_start_matches("SIG")), &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let st = s.wait_exit(WAIT);
    assert!(st.success(), "{st:?}\n{}", s.stderr.text());
}

/// README's "Use it on your own project" gives the service's options as a staticd.toml:
/// read by staticd's own reader, the file sets exactly what the ExecStart's flags set.
#[test]
fn readme_file_says_what_exec_start_says() {
    use clap::Args;
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let fence = "```toml\n# /srv/app/staticd.toml\n";
    let start = readme.find(fence).expect("the file in README.md");
    let body = &readme[start + "```toml\n".len()..];
    let text = &body[..body.find("```").unwrap()];
    let cmd = staticd::serve::config::ServeArgs::augment_args(clap::Command::new("serve"));
    let path = Path::new("/srv/app/staticd.toml");
    let file: BTreeMap<String, Vec<String>> = staticd::serve::config_file::read(&cmd, path, text)
        .unwrap_or_else(|p| panic!("{p:#?}"))
        .values
        .into_iter()
        .collect();

    let service = Unit::read("staticd.service");
    let argv = words(service.one("Service", "ExecStart"), Path::new("/var/log"));
    let mut flags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in argv[2..].chunks(2) {
        let long = pair[0].strip_prefix("--").expect("--flag VALUE pairs");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .unwrap_or_else(|| panic!("no --{long}"));
        flags
            .entry(arg.get_id().to_string())
            .or_default()
            .push(pair[1].clone());
    }
    assert_eq!(file, flags);
}

/// Every system call in the groups of `filter` (`@system-service`, as systemd-analyze
/// expands it, nested groups included).
fn allowed_calls(filter: &str) -> BTreeSet<String> {
    let tool = ci_installed("systemd", "to expand the unit's SystemCallFilter");
    let o = Command::new(tool)
        .args(["syscall-filter", "--no-pager"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with('@') {
            current = Some(line.trim().to_string());
            groups.entry(line.trim().to_string()).or_default();
            continue;
        }
        let t = line.trim();
        if let Some(g) = current
            .as_ref()
            .filter(|_| !t.is_empty() && !t.starts_with('#'))
        {
            groups.get_mut(g).unwrap().push(t.to_string());
        }
    }
    fn expand(g: &str, groups: &BTreeMap<String, Vec<String>>, out: &mut BTreeSet<String>) {
        let members = groups.get(g).unwrap_or_else(|| panic!("no group {g}"));
        for m in members {
            if m.starts_with('@') {
                expand(m, groups, out);
            } else {
                out.insert(m.clone());
            }
        }
    }
    let mut out = BTreeSet::new();
    for entry in filter.split_whitespace() {
        assert!(
            !entry.starts_with('~'),
            "a deny list: extend this test: {entry}"
        );
        if entry.starts_with('@') {
            expand(entry, &groups, &mut out);
        } else {
            out.insert(entry.to_string());
        }
    }
    out
}

/// Kills a process this test started (through strace) if it is still there at the end.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the staticd this test started.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

/// systemd kills (or fails, with `SystemCallErrorNumber=EPERM`) a service that makes a
/// call outside its `SystemCallFilter`, and only under systemd, so the filter is held
/// against what staticd does: under `strace -f` it serves a file as identity and br, over
/// h2c, proxies, is scraped, picks up a new file, reloads on SIGHUP, reopens its log on
/// SIGUSR1 and drains on SIGTERM; every call it made is in the unit's filter.
#[test]
fn every_system_call_of_a_serving_staticd_is_in_the_filter() {
    use crate::common::fixture::StaticRoot;
    let service = Unit::read("staticd.service");
    let allowed = allowed_calls(service.one("Service", "SystemCallFilter"));
    assert!(allowed.contains("openat") && !allowed.contains("reboot"));

    let strace = ci_installed("strace", "to record staticd's system calls");
    let fx = StaticRoot::new();
    fx.write_with_variants("app.css", &crate::common::fixture::text(4000, "filter"));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("access.log");
    let trace = logs.path().join("trace");
    let up = Upstream::start();
    let mut cmd = Command::new(strace);
    cmd.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_staticd"))
        .arg("serve")
        .arg("--root")
        .arg(&fx.root)
        .args(["--static-url", "/static/", "--bind", "127.0.0.1:0"])
        .args(["--upstream", &up.addr, "--metrics-bind", "127.0.0.1:0"])
        .arg("--access-log")
        .arg(&log);
    let s = Staticd::start(cmd);
    // strace's one child is staticd: the signals go to it, not to strace.
    let tracer = s.child.id();
    let children = format!("/proc/{tracer}/task/{tracer}/children");
    let pid: i32 = wait_until("staticd under strace", WAIT, || {
        std::fs::read_to_string(&children).ok()?.trim().parse().ok()
    });
    let _reap = KillOnDrop(pid);
    let signal = |sig| {
        // SAFETY: kill(2) on the staticd this test started.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    };

    let r = http::get(s.addr, "/static/app.css", &[("Accept-Encoding", "br")]);
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("br")));
    assert_eq!(http::get(s.addr, "/static/app.css", &[]).status, 200);
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(s.url("/static/app.css")).send().unwrap();
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    assert_eq!(http::get(s.addr, "/page", &[]).text(), "GET /page 0");
    let line = s.stderr.wait("the metrics address", |l| {
        l.starts_with("staticd serve: metrics on http://")
    });
    let metrics: std::net::SocketAddr = line["staticd serve: metrics on http://".len()..]
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    assert_eq!(http::get(metrics, "/metrics", &[]).status, 200);
    fx.write("new.css", b"p{}");
    wait_until("the new file served", WAIT, || {
        (http::get(s.addr, "/static/new.css", &[]).status == 200).then_some(())
    });
    let mut from = 0;
    signal(libc::SIGHUP);
    s.stderr.wait_from(&mut from, "the reload", WAIT, |l| {
        l.contains("configuration reloaded from")
    });
    std::fs::rename(&log, logs.path().join("access.log.1")).unwrap();
    signal(libc::SIGUSR1);
    s.stderr
        .wait_from(&mut from, "the log reopened", WAIT, |l| {
            l.contains("reopened the access log")
        });
    assert_eq!(http::get(s.addr, "/static/new.css", &[]).status, 200);
    signal(libc::SIGTERM);
    let mut s = s;
    let st = s.wait_exit(WAIT);
    assert!(st.success(), "strace: {st:?}\n{}", s.stderr.text());

    // `PID name(args…` and `PID <... name resumed>`: the name of each call.
    let text = std::fs::read_to_string(&trace).unwrap();
    let used: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let rest = l.split_once(' ')?.1.trim_start();
            let rest = rest.strip_prefix("<... ").unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect();
    assert!(
        used.contains("accept4") && used.contains("epoll_wait"),
        "{used:?}"
    );
    let outside: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        outside.is_empty(),
        "system calls outside SystemCallFilter: {outside:?} (of {} used)",
        used.len()
    );
    eprintln!("{} distinct system calls, all in the filter", used.len());
}
