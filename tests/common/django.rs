//! Real Django behind staticd: a migrated copy of sample_project, gunicorn serving it on a
//! free port, and the pair (gunicorn + `staticd serve --upstream`) most proxy tests use.

use super::http::{self, Response};
use super::project::run_collect_env;
use super::staticd::Staticd;
use super::{copy_tree, free_port, sample_project, venv_python, wait_for_port, ChildGuard};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The environment sample_project's settings read.
pub fn django_env() -> Vec<(&'static str, String)> {
    vec![
        ("DJANGO_ALLOWED_HOSTS", "*".into()),
        ("DJANGO_DEBUG", "0".into()),
        ("PYTHONDONTWRITEBYTECODE", "1".into()),
    ]
}

/// A migrated temp copy of sample_project.
pub struct SampleProject {
    pub dir: tempfile::TempDir,
}

impl SampleProject {
    pub fn new() -> SampleProject {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&sample_project(), dir.path());
        let _ = std::fs::remove_file(dir.path().join("db.sqlite3"));
        let p = SampleProject { dir };
        p.manage(&["migrate", "--noinput"]);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `staticd collect` into the project's STATIC_ROOT (Django's manifest storage needs
    /// its manifest with DEBUG off, e.g. for the admin pages); the JSON summary.
    pub fn collect(&self) -> serde_json::Value {
        let py = venv_python();
        let args = ["--python", py.to_str().unwrap()];
        run_collect_env(self.path(), &args, &django_env())
    }

    /// `manage.py shell -c CODE`.
    pub fn shell(&self, code: &str) {
        self.manage(&["shell", "-c", code]);
    }

    /// `manage.py ARGS`, which must succeed.
    pub fn manage(&self, args: &[&str]) {
        let out = Command::new(venv_python())
            .arg("manage.py")
            .args(args)
            .current_dir(self.path())
            .envs(django_env())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "manage.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// gunicorn serving the project on 127.0.0.1:`port`, its access log in a file.
pub struct Gunicorn {
    pub child: ChildGuard,
    pub port: u16,
    pub access_log: PathBuf,
}

impl Gunicorn {
    pub fn start(project: &SampleProject, port: u16) -> Gunicorn {
        let bin = venv_python().parent().unwrap().join("gunicorn");
        let access_log = project.path().join(format!("access-{port}.log"));
        let child = Command::new(bin)
            .args(["toyproject.wsgi", "--bind", &format!("127.0.0.1:{port}")])
            .args(["--workers", "2", "--timeout", "30", "--access-logfile"])
            .arg(&access_log)
            .current_dir(project.path())
            .envs(django_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("SERVE_TEST_VERBOSE").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn gunicorn");
        let g = Gunicorn {
            child: ChildGuard::new(child),
            port,
            access_log,
        };
        assert!(
            wait_for_port(port, Duration::from_secs(30)),
            "gunicorn did not listen on {port}"
        );
        g
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    /// Stops the arbiter and its workers at once (SIGQUIT) and reaps it.
    pub fn kill(&mut self) {
        // SAFETY: plain kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGQUIT);
        }
        let _ = self.child.wait();
    }
}

/// A gunicorn + staticd pair on sample_project.
pub struct Stack {
    pub project: SampleProject,
    pub gunicorn: Gunicorn,
    pub staticd: Staticd,
}

impl Stack {
    pub fn start(extra: &[&str]) -> Stack {
        Self::on(SampleProject::new(), extra)
    }

    pub fn on(project: SampleProject, extra: &[&str]) -> Stack {
        let port = free_port();
        let gunicorn = Gunicorn::start(&project, port);
        let up = format!("127.0.0.1:{port}");
        let mut args = vec!["--upstream", up.as_str()];
        args.extend_from_slice(extra);
        let staticd = Staticd::proxy(&args);
        Stack {
            project,
            gunicorn,
            staticd,
        }
    }

    pub fn get(&self, path: &str) -> Response {
        http::get(self.staticd.addr, path, &[])
    }
}
