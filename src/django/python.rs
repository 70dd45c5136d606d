//! Running `discover.py` with the project's interpreter, and the errors of discovery.
use super::config::{self, EXAMPLE};
use super::interpreter::{choose_python, choose_settings, InterpreterSource};
use super::memo::Depends;
use super::{DiscoverOptions, Discovery, DISCOVER_PY};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why discovery failed. Every message says what to do about it.
#[derive(Debug)]
pub enum DiscoverError {
    /// The project directory does not exist.
    NoProjectDir { project: PathBuf, error: String },
    /// Neither `manage.py` nor `staticd.toml` (nor a settings module) to go by.
    NoProject { project: PathBuf },
    /// `manage.py` exists but names no settings module, and none was given.
    NoSettingsModule { project: PathBuf },
    /// The interpreter could not be started.
    PythonNotFound {
        python: PathBuf,
        source: InterpreterSource,
        project: PathBuf,
        error: String,
    },
    /// `import django` failed.
    DjangoNotImportable {
        python: PathBuf,
        source: InterpreterSource,
        project: PathBuf,
        error: String,
    },
    /// Importing the settings / `django.setup()` failed.
    Settings {
        settings: String,
        python: PathBuf,
        error: String,
        traceback: String,
    },
    /// Like Django's `ImproperlyConfigured` (e.g. STATIC_ROOT unset).
    ImproperlyConfigured { settings: String, message: String },
    /// The staticfiles storage is a class of the project's own whose output staticd cannot
    /// reproduce (it overrides a method that makes the output, or has patterns of its own).
    UnsupportedStorage { settings: String, message: String },
    /// Django's staticfiles system checks reported errors (E001–E005).
    Checks { settings: String, messages: String },
    /// The discovery program itself failed or printed nothing usable.
    Internal {
        python: PathBuf,
        message: String,
        stderr: String,
    },
}

impl std::error::Error for DiscoverError {}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Drop importlib's `File "<frozen importlib._bootstrap>"` frames: noise in a settings traceback.
fn without_frozen_frames(traceback: &str) -> String {
    traceback
        .lines()
        .filter(|l| !l.trim_start().starts_with("File \"<frozen "))
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Display for DiscoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoverError::NoProjectDir { project, error } => {
                write!(f, "project directory {} cannot be used: {error}", project.display())
            }
            DiscoverError::NoProject { project } => write!(
                f,
                "no manage.py and no staticd.toml in {p}.\n\
                 staticd needs one of:\n  \
                 - a Django project: point staticd at the directory that holds manage.py (or pass --settings MODULE), \
                 and give it the project's interpreter with --python, e.g. `staticd collect PROJECT --python PROJECT/.venv/bin/python`;\n  \
                 - a {p}/staticd.toml that describes the files, e.g.:\n\n{EXAMPLE}",
                p = project.display()
            ),
            DiscoverError::NoSettingsModule { project } => write!(
                f,
                "cannot tell the Django settings module: {}/manage.py has no \
                 os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", ...) and $DJANGO_SETTINGS_MODULE is not set.\n\
                 Pass --settings mysite.settings (or set DJANGO_SETTINGS_MODULE).",
                project.display()
            ),
            DiscoverError::PythonNotFound { python, source, project, error } => write!(
                f,
                "cannot run the Python interpreter {} ({}): {error}\n\
                 Fix: pass the project's interpreter with --python /path/to/venv/bin/python, activate the project's \
                 virtualenv, or describe the files in {}/staticd.toml.",
                python.display(),
                source.describe(),
                project.display()
            ),
            DiscoverError::DjangoNotImportable { python, source, project, error } => write!(
                f,
                "Django is not importable with the Python interpreter {py} ({}): {error}\n\
                 Fix one of:\n  \
                 - pass the interpreter of the virtualenv where Django is installed: --python /path/to/venv/bin/python\n  \
                 - activate that virtualenv (staticd uses $VIRTUAL_ENV/bin/python), or create {proj}/.venv\n  \
                 - install the project's requirements: {py} -m pip install -r requirements.txt\n  \
                 - or describe the files in {proj}/staticd.toml, e.g.:\n\n{EXAMPLE}",
                source.describe(),
                py = python.display(),
                proj = project.display()
            ),
            DiscoverError::Settings { settings, python, error, traceback } => write!(
                f,
                "cannot load the Django settings module '{settings}' with {}: {error}\n\
                 Python's traceback (last lines):\n{}\n\
                 Check the settings module (--settings, or DJANGO_SETTINGS_MODULE in manage.py) and that the project's \
                 dependencies are installed for this interpreter.",
                python.display(),
                tail(&without_frozen_frames(traceback), 8)
            ),
            DiscoverError::ImproperlyConfigured { settings, message } => {
                write!(f, "ImproperlyConfigured (settings module '{settings}'): {message}")
            }
            DiscoverError::UnsupportedStorage { settings, message } => {
                write!(f, "unsupported STORAGES[\"staticfiles\"] (settings module '{settings}'): {message}")
            }
            DiscoverError::Checks { settings, messages } => write!(
                f,
                "SystemCheckError: Django's staticfiles checks failed (settings module '{settings}'):\n{messages}"
            ),
            DiscoverError::Internal { python, message, stderr } => {
                write!(f, "staticd's discovery program failed with {}: {message}", python.display())?;
                if !stderr.trim().is_empty() {
                    write!(f, "\nPython's stderr (last lines):\n{}", tail(stderr, 20))?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Deserialize)]
struct ErrorDoc {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    kind: String,
    message: String,
    #[serde(default)]
    detail: String,
}

/// Outcome of running the program.
enum Run {
    Ok(Box<(Discovery, Option<Depends>)>),
    /// `import django` failed (or the interpreter is missing): a `staticd.toml` may stand in.
    NoDjango(DiscoverError),
}

/// Where the facts will come from, decided without running anything.
pub(super) enum Plan {
    /// `staticd.toml` (no `manage.py` and no settings module, or no way to name one).
    Toml(Discovery),
    /// Ask Django.
    Python(PythonRun),
}

/// A discovery by Python, all of its inputs resolved.
pub(super) struct PythonRun {
    pub project: PathBuf,
    /// As it will be run (a relative `--python dir/python` made absolute).
    pub python: PathBuf,
    pub source: InterpreterSource,
    pub settings: String,
    toml: Option<config::Config>,
}

pub(super) fn plan(
    opts: &DiscoverOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Plan> {
    let project =
        std::fs::canonicalize(&opts.project).map_err(|e| DiscoverError::NoProjectDir {
            project: opts.project.clone(),
            error: e.to_string(),
        })?;
    if !project.is_dir() {
        return Err(DiscoverError::NoProjectDir {
            project,
            error: "not a directory".into(),
        }
        .into());
    }
    let manage_py = std::fs::read_to_string(project.join("manage.py")).ok();
    let toml = config::load(&project)?;
    let from_toml = |cfg: &config::Config| {
        cfg.to_discovery(&project, &opts.extra_ignore, opts.no_default_ignore)
    };

    let explicit_settings = opts.settings.as_deref().filter(|s| !s.is_empty()).is_some();
    if manage_py.is_none() && !explicit_settings {
        if let Some(cfg) = &toml {
            return Ok(Plan::Toml(from_toml(cfg)?));
        }
    }
    let Some(settings) = choose_settings(opts.settings.as_deref(), manage_py.as_deref(), env)
    else {
        if let Some(cfg) = &toml {
            return Ok(Plan::Toml(from_toml(cfg)?));
        }
        return Err(if manage_py.is_some() {
            DiscoverError::NoSettingsModule { project }
        } else {
            DiscoverError::NoProject { project }
        }
        .into());
    };

    let (python, source) = choose_python(&project, opts.python.as_deref(), env);
    Ok(Plan::Python(PythonRun {
        python: absolute_program(&python),
        project,
        source,
        settings,
        toml,
    }))
}

/// Runs the discovery program; the facts and, from Django, what they were derived from.
pub(super) fn run_python(
    r: &PythonRun,
    opts: &DiscoverOptions,
) -> anyhow::Result<(Discovery, Option<Depends>)> {
    match run(&r.project, &r.python, r.source, &r.settings, opts)? {
        Run::Ok(found) => Ok(*found),
        Run::NoDjango(err) => match &r.toml {
            Some(cfg) => {
                tracing::warn!("{err}\nusing {}/staticd.toml instead", r.project.display());
                Ok((
                    cfg.to_discovery(&r.project, &opts.extra_ignore, opts.no_default_ignore)?,
                    None,
                ))
            }
            None => Err(err.into()),
        },
    }
}

/// Make a relative `--python some/dir/python` independent of the child's cwd.
fn absolute_program(python: &Path) -> PathBuf {
    if python.is_relative() && python.components().count() > 1 {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(python);
        }
    }
    python.to_path_buf()
}

fn run(
    project: &Path,
    python: &Path,
    source: InterpreterSource,
    settings: &str,
    opts: &DiscoverOptions,
) -> Result<Run, DiscoverError> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(DISCOVER_PY).arg(project);
    if opts.no_default_ignore {
        cmd.arg("--no-default-ignore");
    }
    for p in &opts.extra_ignore {
        cmd.arg("--ignore").arg(p);
    }
    cmd.current_dir(project)
        .env("DJANGO_SETTINGS_MODULE", settings)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            return Ok(Run::NoDjango(DiscoverError::PythonNotFound {
                python: python.to_path_buf(),
                source,
                project: project.to_path_buf(),
                error: e.to_string(),
            }))
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");

    // What the project printed, Django's check warnings (e.g. staticfiles.W004): never swallowed.
    // (Internal errors carry it in their message instead.)
    let forward = |stderr: &str| {
        if !stderr.trim().is_empty() {
            eprint!("{stderr}");
            if !stderr.ends_with('\n') {
                eprintln!();
            }
        }
    };
    if out.status.success() {
        forward(&stderr);
        let unreadable = |e: serde_json::Error, stderr: String| DiscoverError::Internal {
            python: python.to_path_buf(),
            message: format!("unreadable result ({e}): {}", tail(&stdout, 5)),
            stderr,
        };
        let mut doc: serde_json::Value =
            serde_json::from_str(last).map_err(|e| unreadable(e, stderr.clone()))?;
        let depends = doc
            .as_object_mut()
            .and_then(|o| o.remove("depends"))
            .map(serde_json::from_value::<Depends>)
            .transpose()
            .map_err(|e| unreadable(e, stderr.clone()))?;
        let d = serde_json::from_value::<Discovery>(doc).map_err(|e| unreadable(e, stderr))?;
        return Ok(Run::Ok(Box::new((d, depends))));
    }

    let Ok(doc) = serde_json::from_str::<ErrorDoc>(last) else {
        return Err(DiscoverError::Internal {
            python: python.to_path_buf(),
            message: format!("exited with {} without a result", out.status),
            stderr,
        });
    };
    let ErrorBody {
        kind,
        message,
        detail,
    } = doc.error;
    if kind != "internal" {
        forward(&stderr);
    }
    let python = python.to_path_buf();
    let settings = settings.to_string();
    Err(match kind.as_str() {
        "django_import" => {
            return Ok(Run::NoDjango(DiscoverError::DjangoNotImportable {
                python,
                source,
                project: project.to_path_buf(),
                error: message,
            }))
        }
        "settings" => DiscoverError::Settings {
            settings,
            python,
            error: message,
            traceback: detail,
        },
        "improperly_configured" => DiscoverError::ImproperlyConfigured { settings, message },
        "unsupported_storage" => DiscoverError::UnsupportedStorage { settings, message },
        "checks" => DiscoverError::Checks {
            settings,
            messages: message,
        },
        _ => DiscoverError::Internal {
            python,
            message: format!("{message}\n{}", tail(&detail, 12)),
            stderr,
        },
    })
}
