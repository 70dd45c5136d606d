//! Which Python runs discovery, and which settings module it loads.
use std::path::{Path, PathBuf};

/// Why an interpreter was chosen (named in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpreterSource {
    /// `--python`.
    Flag,
    /// `$VIRTUAL_ENV/bin/python`.
    VirtualEnv,
    /// `PROJECT/.venv/bin/python`.
    ProjectVenv,
    /// `python3` from `PATH`.
    Default,
}

impl InterpreterSource {
    pub fn describe(self) -> &'static str {
        match self {
            InterpreterSource::Flag => "given with --python",
            InterpreterSource::VirtualEnv => "from $VIRTUAL_ENV",
            InterpreterSource::ProjectVenv => "the project's .venv",
            InterpreterSource::Default => {
                "default: python3 on PATH; no --python, no $VIRTUAL_ENV, no PROJECT/.venv"
            }
        }
    }
}

/// The interpreter to run: `--python`, else `$VIRTUAL_ENV/bin/python`, else
/// `PROJECT/.venv/bin/python`, else `python3`. `env` looks up environment variables.
pub fn choose_python(
    project: &Path,
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> (PathBuf, InterpreterSource) {
    if let Some(p) = flag {
        return (p.to_path_buf(), InterpreterSource::Flag);
    }
    if let Some(venv) = env("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let p = Path::new(&venv).join("bin").join("python");
        if p.exists() {
            return (p, InterpreterSource::VirtualEnv);
        }
    }
    let p = project.join(".venv").join("bin").join("python");
    if p.exists() {
        return (p, InterpreterSource::ProjectVenv);
    }
    (PathBuf::from("python3"), InterpreterSource::Default)
}

/// The `DJANGO_SETTINGS_MODULE` default that `manage.py` sets:
/// `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "x.y")` with either quote style.
pub fn settings_from_manage_py(source: &str) -> Option<String> {
    let re = fancy_regex::Regex::new(
        r#"setdefault\(\s*(["'])DJANGO_SETTINGS_MODULE\1\s*,\s*(["'])([A-Za-z_][A-Za-z0-9_.]*)\2\s*\)"#,
    )
    .expect("valid regex");
    for line in source.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Ok(Some(c)) = re.captures(line) {
            return Some(c[3].to_string());
        }
    }
    None
}

/// `--settings`, else `manage.py`'s default, else `$DJANGO_SETTINGS_MODULE`.
pub fn choose_settings(
    flag: Option<&str>,
    manage_py: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(s) = flag.filter(|s| !s.is_empty()) {
        return Some(s.to_string());
    }
    if let Some(s) = manage_py.and_then(settings_from_manage_py) {
        return Some(s);
    }
    env("DJANGO_SETTINGS_MODULE").filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn manage_py_both_quote_styles() {
        let dq = r#"    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toyproject.settings")"#;
        let sq = "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'a.b.settings_prod')";
        let mixed = "os.environ.setdefault( 'DJANGO_SETTINGS_MODULE' ,\"x.y\" )";
        assert_eq!(
            settings_from_manage_py(dq).as_deref(),
            Some("toyproject.settings")
        );
        assert_eq!(
            settings_from_manage_py(sq).as_deref(),
            Some("a.b.settings_prod")
        );
        assert_eq!(settings_from_manage_py(mixed).as_deref(), Some("x.y"));
        let commented = "# os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'old.settings')\n\
                         os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'new.settings')";
        assert_eq!(
            settings_from_manage_py(commented).as_deref(),
            Some("new.settings")
        );
        assert_eq!(settings_from_manage_py("import os\n"), None);
        // mismatched quotes are not a Python string
        assert_eq!(
            settings_from_manage_py(r#"setdefault('DJANGO_SETTINGS_MODULE", "x.y")"#),
            None
        );
    }

    #[test]
    fn settings_precedence() {
        let env = |k: &str| (k == "DJANGO_SETTINGS_MODULE").then(|| "env.settings".to_string());
        let mp = "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mp.settings')";
        assert_eq!(
            choose_settings(Some("flag.s"), Some(mp), &env).as_deref(),
            Some("flag.s")
        );
        assert_eq!(
            choose_settings(None, Some(mp), &env).as_deref(),
            Some("mp.settings")
        );
        assert_eq!(
            choose_settings(None, Some("pass"), &env).as_deref(),
            Some("env.settings")
        );
        assert_eq!(choose_settings(None, None, &no_env), None);
    }

    #[test]
    fn python_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("proj");
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        std::fs::create_dir_all(project.join(".venv/bin")).unwrap();

        let (p, s) = choose_python(&project, Some(Path::new("/opt/py")), &no_env);
        assert_eq!((p, s), (PathBuf::from("/opt/py"), InterpreterSource::Flag));

        let venv_s = venv.to_string_lossy().to_string();
        let env = move |k: &str| (k == "VIRTUAL_ENV").then(|| venv_s.clone());
        let (p, s) = choose_python(&project, None, &env);
        assert_eq!(
            (p, s),
            (venv.join("bin/python"), InterpreterSource::VirtualEnv)
        );

        // no project .venv python yet
        let (p, s) = choose_python(&project, None, &no_env);
        assert_eq!(
            (p, s),
            (PathBuf::from("python3"), InterpreterSource::Default)
        );

        std::fs::write(project.join(".venv/bin/python"), "").unwrap();
        let (p, s) = choose_python(&project, None, &no_env);
        assert_eq!(
            (p, s),
            (
                project.join(".venv/bin/python"),
                InterpreterSource::ProjectVenv
            )
        );
    }
}
