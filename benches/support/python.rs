//! The Python with Django, DRF, WhiteNoise, brotli and gunicorn that `.ci/venv` builds.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `bash .ci/venv [DIR]`: builds the venv once (its progress goes to our stderr) and prints
/// its python as the last line.
pub fn venv_python(dir: Option<&OsStr>) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join(".ci").join("venv"));
    if let Some(d) = dir {
        cmd.arg(d);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!(".ci/venv: {e}"))?;
    if !out.status.success() {
        return Err(format!(".ci/venv failed ({})", out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let py = PathBuf::from(
        stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim(),
    );
    if py.is_file() {
        Ok(py)
    } else {
        Err(format!(".ci/venv printed {py:?}, not a python"))
    }
}

/// `STATICD_BENCH_PYTHON`, else the venv's python: the collect benches cannot run without
/// Django, so a failure here ends the bench.
pub fn bench_python() -> PathBuf {
    if let Some(p) = std::env::var_os("STATICD_BENCH_PYTHON") {
        return p.into();
    }
    eprintln!("bench: preparing the Python venv (.ci/venv)");
    venv_python(None).unwrap_or_else(|e| panic!("{e}"))
}
