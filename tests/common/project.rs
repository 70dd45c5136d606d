//! Projects for `staticd collect`: a `staticd.toml` project built file by file (no Python
//! needed), and `run_collect`, which runs the real binary and returns its `--format json`
//! summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `staticd.toml` every fixture project starts from: sources in `assets/`, output in
/// `static/`, manifest storage on. `storage` adds lines to `[storage]` (e.g. `compress = true`).
fn staticd_toml(storage: &str) -> String {
    format!(
        "static_root = \"static\"\nstatic_url = \"/static/\"\n[[sources]]\nroot = \"assets\"\n[storage]\nmanifest = true\n{storage}"
    )
}

/// A `staticd.toml` project in a temp dir: `dir/assets/…` in, `dir/static/` out, and a
/// variant cache of its own (never the user's `~/.cache/staticd`).
pub struct Project {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub cache: PathBuf,
}

impl Project {
    pub fn new() -> Project {
        Self::with_storage("")
    }

    /// With extra `[storage]` lines.
    pub fn with_storage(storage: &str) -> Project {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("proj");
        let cache = tmp.path().join("cache");
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("staticd.toml"), staticd_toml(storage)).unwrap();
        Project {
            _tmp: tmp,
            dir,
            cache,
        }
    }

    /// Adds source files (builder style).
    pub fn files(self, files: &[(&str, &[u8])]) -> Project {
        for (rel, bytes) in files {
            self.write(rel, bytes);
        }
        self
    }

    /// Writes `assets/REL`, creating directories.
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        super::write_file(&self.dir.join("assets"), rel, bytes);
    }

    /// Appends `text` to the project's `staticd.toml` (e.g. a `[collect]` section).
    pub fn append_config(&self, text: &str) {
        let path = self.dir.join("staticd.toml");
        let mut toml = std::fs::read_to_string(&path).unwrap();
        toml.push('\n');
        toml.push_str(text);
        std::fs::write(&path, toml).unwrap();
    }

    /// The project's STATIC_ROOT.
    pub fn root(&self) -> PathBuf {
        self.dir.join("static")
    }

    /// `staticd collect DIR ARGS` with the project's own cache; the raw output.
    pub fn collect(&self, args: &[&str]) -> Output {
        collect_output(&self.dir, args, &self.env())
    }

    /// A collect that must succeed; its JSON summary.
    pub fn run_collect(&self, args: &[&str]) -> serde_json::Value {
        run_collect_env(&self.dir, args, &self.env())
    }

    /// `staticd prune DIR ARGS`, which must succeed; its stdout.
    pub fn prune(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_staticd"))
            .arg("prune")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run staticd prune");
        assert!(
            out.status.success(),
            "staticd prune {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn env(&self) -> [(&'static str, String); 1] {
        [("XDG_CACHE_HOME", self.cache.display().to_string())]
    }

    /// The published manifest's `paths`.
    pub fn manifest(&self) -> BTreeMap<String, String> {
        manifest_paths(&self.root())
    }

    /// The hashed name the published manifest gives `key`.
    pub fn hashed(&self, key: &str) -> String {
        self.manifest()
            .remove(key)
            .unwrap_or_else(|| panic!("{key} is not in the manifest"))
    }
}

/// `staticd collect PROJECT ARGS` with `env` set; the raw output.
pub fn collect_output(project: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_staticd"))
        .arg("collect")
        .arg(project)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run staticd collect")
}

/// `staticd collect PROJECT ARGS --format json`, which must succeed: the parsed summary.
pub fn run_collect(project: &Path, args: &[&str]) -> serde_json::Value {
    run_collect_env(project, args, &[])
}

/// [`run_collect`] with `env` set.
pub fn run_collect_env(project: &Path, args: &[&str], env: &[(&str, String)]) -> serde_json::Value {
    summary(project, collect_output(project, &with_json(args), env))
}

fn with_json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut a = args.to_vec();
    if !a.contains(&"--format") {
        a.extend(["--format", "json"]);
    }
    a
}

fn summary(project: &Path, out: Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "staticd collect {} failed ({}):\n{stderr}\n{stdout}",
        project.display(),
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("collect's summary is not JSON ({e}): {stdout}\n{stderr}"))
}

/// `paths` of `ROOT/staticfiles.json`.
pub fn manifest_paths(root: &Path) -> BTreeMap<String, String> {
    let path = root.join("staticfiles.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    v["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("{} has no paths", path.display()))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}
