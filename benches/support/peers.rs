//! The peers staticd is measured against (nginx, Caddy) and the load generator (wrk): installed
//! with apt when missing and run as root (a missing one is skipped, never fatal), started from
//! the config templates next to each bench (`{{NAME}}` placeholders).

use super::spawn::{free_port, Launch, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// `cmd` is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs what is missing with apt-get, running `apt-get update` at most once per bench.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// `apt-get install -y PKG`, once with the current lists and once after `apt-get update`.
    pub fn install(&mut self, pkg: &str) -> bool {
        if !is_root() || !have("apt-get") {
            println!("  {pkg}: missing and cannot install (not root or no apt-get)");
            return false;
        }
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", pkg])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        println!("  installing {pkg} ...");
        if install() {
            return true;
        }
        if !self.updated {
            self.updated = true;
            let _ = Command::new("apt-get")
                .args(["update"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if install() {
                return true;
            }
        }
        println!("  {pkg}: not installable here; skipping what needs it");
        false
    }

    /// The command `cmd` is there, installing the package of the same name if need be.
    pub fn ensure(&mut self, cmd: &str) -> bool {
        have(cmd) || (self.install(cmd) && have(cmd))
    }
}

/// Debian's ngx_brotli static module (libnginx-mod-http-brotli-static), if installed.
pub fn brotli_module_path() -> Option<PathBuf> {
    ["/usr/lib/nginx/modules/ngx_http_brotli_static_module.so"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `template` with each `{{KEY}}` replaced by its value.
pub fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

/// Recreates `dir` (last run's logs and state go) with `dir/file`: `template` filled with
/// `vars`. Returns that file's path.
fn fresh_conf(
    dir: &Path,
    file: &str,
    template: &str,
    vars: &[(&str, String)],
) -> Result<String, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join(file);
    std::fs::write(&path, fill(template, vars)).map_err(|e| e.to_string())?;
    Ok(path.display().to_string())
}

/// nginx from `template` under `work/nginx/`, pinned to `core`: `{{USER}}` (root runs it as
/// root, so it may read the corpus), `{{PREFIX}}` and `{{PORT}}` are filled here, `vars` are
/// the bench's. Its worker counts with the master.
pub fn start_nginx(
    work: &Path,
    core: &str,
    template: &str,
    vars: &[(&str, String)],
) -> Result<Server, String> {
    let prefix = work.join("nginx");
    let port = free_port();
    let p = prefix.display().to_string();
    let user = if is_root() { "user root root;" } else { "" };
    let mut all = vec![
        ("USER", user.to_string()),
        ("PREFIX", p.clone()),
        ("PORT", port.to_string()),
    ];
    all.extend(vars.iter().cloned());
    let c = fresh_conf(&prefix, "nginx.conf", template, &all)?;
    Launch::new(
        "nginx",
        core,
        "nginx",
        &["-p", &p, "-c", &c],
        &prefix.join("stderr.log"),
    )
    .workers(1)
    .start(port)
}

/// Caddy from the Caddyfile `template` under `work/caddy/`, pinned to `core`; `{{PORT}}` is
/// filled here, `vars` are the bench's. HOME and XDG point inside that directory, so Caddy's
/// storage and autosave stay there.
pub fn start_caddy(
    work: &Path,
    core: &str,
    template: &str,
    vars: &[(&str, String)],
) -> Result<Server, String> {
    let dir = work.join("caddy");
    let port = free_port();
    let mut all = vec![("PORT", port.to_string())];
    all.extend(vars.iter().cloned());
    let c = fresh_conf(&dir, "Caddyfile", template, &all)?;
    let d = dir.display().to_string();
    Launch::new(
        "caddy",
        core,
        "caddy",
        &["run", "--config", &c, "--adapter", "caddyfile"],
        &dir.join("stderr.log"),
    )
    .env(&[("HOME", &d), ("XDG_DATA_HOME", &d), ("XDG_CONFIG_HOME", &d)])
    .start(port)
}
