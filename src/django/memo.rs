//! Remembered discoveries. Starting Python and `django.setup()` costs about half a second,
//! which would be most of an unchanged re-collect; the facts only change when their inputs do.
//!
//! A discovery is reused only while it is provably the same:
//!
//! - **The inputs** ([`Inputs`]) must be equal: staticd's version and discovery program, the
//!   project directory (Python's working directory), the interpreter as resolved (`--python`,
//!   `$VIRTUAL_ENV`, `PROJECT/.venv`, `python3`), the settings module as resolved (`--settings`,
//!   `manage.py`, `$DJANGO_SETTINGS_MODULE`), the ignore options, and every environment variable
//!   (a few shell bookkeeping ones aside: `_`, `OLDPWD`, `SHLVL`, `COLUMNS`, `LINES`, `TERM`).
//! - **Everything Python touched** ([`Depends`], recorded by `discover.py`) must look as it did:
//!   each path stat'ed the same (type; and for anything but a directory, device, inode, size,
//!   mtime and ctime), each directory listed the same names, each small file read the same
//!   bytes (md5), each absent path still absent. That covers the settings module and every
//!   other module imported, `.env`-style files read, app and `static/` directories probed,
//!   the interpreter, `pyvenv.cfg`, `.pth` files and the `sys.path` directories.
//!
//! A discovery is not remembered when it depended on something no record covers (a
//! subprocess, the network), when anything recorded changed while Python ran, or when a
//! stat-only record is too recent to be trusted: a file rewritten twice within one tick of
//! the filesystem's clock keeps its times, so a file whose ctime is less than [`slack`]
//! before the run began might change again unseen. (Content and listing records do not
//! depend on clocks.) Anything unreadable is a miss; a miss just runs Python.
use super::{DiscoverOptions, Discovery};
use md5::{Digest, Md5};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bump when the entry format or the meaning of a record changes.
const FORMAT: u32 = 2;

/// Shell bookkeeping that never reaches Django's settings in practice.
const VOLATILE_ENV: &[&str] = &["_", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TERM"];

/// Largest file `discover.py` records by content.
const CONTENT_MAX: u64 = 256 * 1024;

/// How a path looked: `"-"` absent, `"d"` a directory, `"o"` a device, FIFO or socket (only
/// their type counts: `/dev/null`'s times change all the time), `"e<errno>"` another error,
/// else `[type, dev, ino, size, mtime_ns, ctime_ns]` (`f` regular file, `l` symlink).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Obs {
    Tag(String),
    Meta(String, u64, u64, u64, i64, i64),
}

impl Obs {
    /// What `os.stat` (`follow`) or `os.lstat` gives for `path` now, in `discover.py`'s terms.
    pub fn of(path: &Path, follow: bool) -> Obs {
        let m = if follow {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        };
        match m {
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => Obs::Tag("-".into()),
                Some(n) => Obs::Tag(format!("e{n}")),
                None => Obs::Tag("e".into()),
            },
            Ok(m) if m.is_dir() => Obs::Tag("d".into()),
            Ok(m) if !(m.is_file() || m.is_symlink()) => Obs::Tag("o".into()),
            Ok(m) => {
                let kind = if m.is_symlink() { "l" } else { "f" };
                Obs::Meta(
                    kind.into(),
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                )
            }
        }
    }

    fn ctime_ns(&self) -> Option<i64> {
        match self {
            Obs::Meta(_, _, _, _, _, ctime) => Some(*ctime),
            Obs::Tag(_) => None,
        }
    }
}

/// What a discovery was derived from, as `discover.py` recorded it (see the top of that file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depends {
    /// `(path, follow_symlinks, observation)`.
    #[serde(default)]
    pub stat: Vec<(PathBuf, bool, Obs)>,
    /// `(directory, md5 of its names, observed late, name left out)`.
    #[serde(default)]
    pub listing: Vec<(PathBuf, String, bool, Option<String>)>,
    /// `(file, size, md5, observed late)`.
    #[serde(default)]
    pub content: Vec<(PathBuf, u64, String, bool)>,
    /// Why this discovery must not be reused (a subprocess, the network…).
    #[serde(default)]
    pub unmemo: Vec<String>,
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// md5 of a directory's sorted names (`/` appended to directories'), as `discover.py` computes
/// it: staticd's own `.NAME.staticd-*` files and `skip` left out.
pub fn listing_digest(dir: &Path, skip: Option<&str>) -> std::io::Result<String> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.starts_with(b".") && name.windows(9).any(|w| w == b".staticd-") {
            continue;
        }
        if skip.is_some_and(|s| s.as_bytes() == name) {
            continue;
        }
        let mut n = name.to_vec();
        if entry.file_type()?.is_dir() {
            n.push(b'/');
        }
        names.push(n);
    }
    names.sort();
    Ok(md5_hex(&names.join(&b'\0')))
}

/// `(size, md5)` of a small file; `None` when unreadable or larger than recorded files are.
fn content_digest(path: &Path) -> Option<(u64, String)> {
    let m = std::fs::metadata(path).ok()?;
    if !m.is_file() || m.len() > CONTENT_MAX {
        return None;
    }
    let data = std::fs::read(path).ok()?;
    Some((data.len() as u64, md5_hex(&data)))
}

fn ctime_now(p: &Path) -> Option<i64> {
    let m = std::fs::metadata(p).ok()?;
    Some(m.ctime() * 1_000_000_000 + m.ctime_nsec())
}

fn changed(p: &Path, before: &Obs, now: &Obs) -> String {
    let what = |o: &Obs| match o {
        Obs::Tag(t) if t == "-" => "absent".to_string(),
        Obs::Tag(t) if t == "d" => "a directory".to_string(),
        Obs::Tag(t) if t == "o" => "a device, FIFO or socket".to_string(),
        Obs::Tag(t) => format!("unreadable ({t})"),
        Obs::Meta(..) => "present".to_string(),
    };
    match (before, now) {
        (Obs::Meta(..), Obs::Meta(..)) => format!("{} changed", p.display()),
        _ => format!("{} was {}, is {}", p.display(), what(before), what(now)),
    }
}

/// How old a file must be before its timestamps are trusted to show its next change: one
/// tick of the kernel's coarse clock is a few ms, so 100 ms; 2 s on filesystems that keep
/// whole seconds (a ctime with no nanoseconds: ext3, FAT, many network mounts).
pub fn slack(ctime_ns: i64) -> Duration {
    if ctime_ns % 1_000_000_000 == 0 {
        Duration::from_secs(2)
    } else {
        Duration::from_millis(100)
    }
}

impl Depends {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.stat.len() + self.listing.len() + self.content.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first record that no longer holds, as a sentence; `None` when all hold.
    pub fn stale(&self) -> Option<String> {
        let stat = self.stat.par_iter().find_map_any(|(p, follow, obs)| {
            let now = Obs::of(p, *follow);
            (now != *obs).then(|| changed(p, obs, &now))
        });
        if stat.is_some() {
            return stat;
        }
        let listing =
            self.listing.par_iter().find_map_any(|(p, md5, _, skip)| {
                match listing_digest(p, skip.as_deref()) {
                    Ok(d) if d == *md5 => None,
                    Ok(_) => Some(format!("{} has other entries", p.display())),
                    Err(e) => Some(format!("{} cannot be listed: {e}", p.display())),
                }
            });
        if listing.is_some() {
            return listing;
        }
        self.content
            .par_iter()
            .find_map_any(|(p, size, md5, _)| match content_digest(p) {
                Some((s, d)) if s == *size && d == *md5 => None,
                _ => Some(format!("{} changed", p.display())),
            })
    }

    /// Why this record cannot be trusted later, if it cannot: something no record covers,
    /// a change while Python ran (each record is checked again now), or a file too recent
    /// for its times to tell a later change (see [`slack`]). `started`: when Python began.
    pub fn untrustworthy(&self, started: SystemTime) -> Option<String> {
        if let Some(why) = self.unmemo.first() {
            return Some(format!("the settings {why}"));
        }
        if let Some(why) = self.stale() {
            return Some(format!("{why} while Django was asked"));
        }
        let start_ns = started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let recent = |p: &Path, ctime: i64| -> Option<String> {
            let age = start_ns - ctime;
            (age < slack(ctime).as_nanos() as i64).then(|| {
                format!(
                    "{} changed {} ms before Django was asked, too recently for its \
                     timestamps to show the next change",
                    p.display(),
                    age.max(0) / 1_000_000
                )
            })
        };
        // A file also recorded by content needs no timestamps: a rewrite within one tick
        // either changes its bytes (seen) or leaves everything Python could see the same.
        let by_content: std::collections::HashSet<&Path> =
            self.content.iter().map(|c| c.0.as_path()).collect();
        self.stat
            .iter()
            .filter(|(p, follow, _)| !(*follow && by_content.contains(p.as_path())))
            .find_map(|(p, _, obs)| obs.ctime_ns().and_then(|c| recent(p, c)))
            .or_else(|| {
                self.listing
                    .iter()
                    .filter(|l| l.2)
                    .find_map(|(p, ..)| ctime_now(p).and_then(|c| recent(p, c)))
            })
            .or_else(|| {
                self.content
                    .iter()
                    .filter(|c| c.3)
                    .find_map(|(p, ..)| ctime_now(p).and_then(|c| recent(p, c)))
            })
    }
}

/// Everything a discovery was asked with. Equal inputs and unchanged [`Depends`] give an
/// equal discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub staticd: String,
    /// blake3 of `discover.py`.
    pub program: String,
    /// Canonical; Python's working directory.
    pub project: PathBuf,
    /// As run (absolute unless found on `PATH`).
    pub python: PathBuf,
    pub settings: String,
    pub extra_ignore: Vec<String>,
    pub no_default_ignore: bool,
    /// blake3 of the environment (sorted `K=V\0`, volatile shell variables left out).
    pub env: String,
}

impl Inputs {
    pub fn new(opts: &DiscoverOptions, project: &Path, python: &Path, settings: &str) -> Inputs {
        Inputs::with_env(opts, project, python, settings, std::env::vars_os())
    }

    pub fn with_env(
        opts: &DiscoverOptions,
        project: &Path,
        python: &Path,
        settings: &str,
        env: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Inputs {
        let mut env: Vec<_> = env
            .into_iter()
            .filter(|(k, _)| !VOLATILE_ENV.iter().any(|v| k.as_bytes() == v.as_bytes()))
            .collect();
        env.sort();
        let mut h = blake3::Hasher::new();
        for (k, v) in env {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\0");
        }
        Inputs {
            staticd: env!("CARGO_PKG_VERSION").to_string(),
            program: blake3::hash(super::DISCOVER_PY.as_bytes())
                .to_hex()
                .to_string(),
            project: project.to_path_buf(),
            python: python.to_path_buf(),
            settings: settings.to_string(),
            extra_ignore: opts.extra_ignore.clone(),
            no_default_ignore: opts.no_default_ignore,
            env: h.finalize().to_hex().to_string(),
        }
    }

    /// The entry's file name: one per project and options, whatever the environment (so a
    /// changing environment replaces the entry instead of adding one per value).
    fn slot(&self) -> String {
        let text = format!(
            "{}|{}|{:?}|{:?}|{}|{:?}|{}",
            self.staticd,
            self.program,
            self.project,
            self.python,
            self.settings,
            self.extra_ignore,
            self.no_default_ignore
        );
        blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    inputs: Inputs,
    depends: Depends,
    discovery: Discovery,
}

/// `$XDG_CACHE_HOME/staticd/discovery` (or `~/.cache/…`).
pub fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|x| !x.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("staticd/discovery"))
}

fn path(inputs: &Inputs) -> Option<PathBuf> {
    Some(dir()?.join(format!("{}.json", inputs.slot())))
}

/// What looking for a remembered discovery found.
pub enum Lookup {
    /// Valid: the discovery and the number of records checked.
    Hit(Discovery, usize),
    /// Nothing usable; why.
    Miss(String),
}

pub fn load(inputs: &Inputs) -> Lookup {
    let Some(path) = path(inputs) else {
        return Lookup::Miss("no cache directory ($XDG_CACHE_HOME, $HOME)".into());
    };
    let Ok(bytes) = std::fs::read(&path) else {
        return Lookup::Miss("none remembered".into());
    };
    let entry: Entry = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(_) => return Lookup::Miss("the remembered one is unreadable".into()),
    };
    if entry.format != FORMAT {
        return Lookup::Miss("the remembered one has an older format".into());
    }
    if entry.inputs != *inputs {
        let why = if entry.inputs.env != inputs.env {
            "the environment changed"
        } else {
            "the inputs changed"
        };
        return Lookup::Miss(why.into());
    }
    if entry.depends.is_empty() {
        return Lookup::Miss("the remembered one has no record".into());
    }
    match entry.depends.stale() {
        Some(why) => Lookup::Miss(why),
        None => Lookup::Hit(entry.discovery, entry.depends.len()),
    }
}

/// Remembers `d` unless its record cannot be trusted ([`Depends::untrustworthy`]); `Err`
/// says why it was not. `started`: when Python was started.
pub fn store(
    inputs: &Inputs,
    d: &Discovery,
    depends: &Depends,
    started: SystemTime,
) -> Result<usize, String> {
    let path = path(inputs).ok_or("no cache directory ($XDG_CACHE_HOME, $HOME)")?;
    let why_not = if depends.is_empty() {
        Some("nothing was recorded".to_string())
    } else {
        depends.untrustworthy(started)
    };
    if let Some(why) = why_not {
        // An older entry for these inputs is stale: it just missed.
        let _ = std::fs::remove_file(&path);
        return Err(why);
    }
    let entry = Entry {
        format: FORMAT,
        inputs: inputs.clone(),
        depends: depends.clone(),
        discovery: d.clone(),
    };
    let bytes = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(depends.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `dir` as `discover.py` would make it: `.env` read, `settings.py` stat'ed,
    /// `local.py` probed and absent, the directory listed.
    fn record(dir: &Path) -> Depends {
        let env = dir.join(".env");
        let settings = dir.join("settings.py");
        let local = dir.join("local.py");
        let (size, md5) = content_digest(&env).unwrap();
        Depends {
            stat: vec![
                (settings.clone(), true, Obs::of(&settings, true)),
                (local.clone(), true, Obs::of(&local, true)),
                (dir.to_path_buf(), false, Obs::of(dir, false)),
            ],
            listing: vec![(
                dir.to_path_buf(),
                listing_digest(dir, Some("static")).unwrap(),
                false,
                Some("static".into()),
            )],
            content: vec![(env, size, md5, false)],
            unmemo: vec![],
        }
    }

    fn project() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        std::fs::write(dir.join(".env"), "APPS=a\n").unwrap();
        std::fs::write(dir.join("settings.py"), "X = 1\n").unwrap();
        (t, dir)
    }

    #[test]
    fn observations_match_pythons_terms() {
        let (_t, dir) = project();
        assert_eq!(Obs::of(&dir.join("nope"), true), Obs::Tag("-".into()));
        assert_eq!(
            Obs::of(&dir.join("settings.py/x"), true),
            Obs::Tag("-".into()),
            "NotADirectoryError counts as absent, as in discover.py"
        );
        assert_eq!(Obs::of(&dir, true), Obs::Tag("d".into()));
        assert_eq!(Obs::of(Path::new("/dev/null"), true), Obs::Tag("o".into()));
        std::os::unix::fs::symlink("settings.py", dir.join("link")).unwrap();
        let Obs::Meta(kind, ..) = Obs::of(&dir.join("link"), false) else {
            panic!("a symlink")
        };
        assert_eq!(kind, "l");
        let Obs::Meta(kind, _, _, size, ..) = Obs::of(&dir.join("link"), true) else {
            panic!("its target")
        };
        assert_eq!((kind.as_str(), size), ("f", 6));
        // The JSON discover.py writes.
        let o: Obs = serde_json::from_str(r#"["f", 1, 2, 3, 4, 5]"#).unwrap();
        assert_eq!(o, Obs::Meta("f".into(), 1, 2, 3, 4, 5));
        let o: Obs = serde_json::from_str(r#""-""#).unwrap();
        assert_eq!(o, Obs::Tag("-".into()));
    }

    #[test]
    fn listing_digest_leaves_out_staticd_files_and_static_root() {
        let (_t, dir) = project();
        let before = listing_digest(&dir, Some("static")).unwrap();
        std::fs::create_dir(dir.join("static")).unwrap();
        std::fs::write(dir.join(".static.staticd-state.json"), "{}").unwrap();
        std::fs::write(dir.join(".static.staticd-lock"), "").unwrap();
        assert_eq!(listing_digest(&dir, Some("static")).unwrap(), before);
        assert_ne!(listing_digest(&dir, None).unwrap(), before);
        std::fs::write(dir.join("local.py"), "").unwrap();
        assert_ne!(listing_digest(&dir, Some("static")).unwrap(), before);
        // Python's digest of the same names: sorted bytes, "/" after directories, NUL between.
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("b")).unwrap();
        std::fs::write(t.path().join("a"), "").unwrap();
        assert_eq!(listing_digest(t.path(), None).unwrap(), md5_hex(b"a\0b/"));
    }

    #[test]
    fn validation_sees_every_kind_of_change() {
        let (_t, dir) = project();
        let rec = record(&dir);
        assert_eq!(rec.stale(), None, "nothing changed yet");

        // .env rewritten with the same size within the same clock tick: content decides.
        std::fs::write(dir.join(".env"), "APPS=b\n").unwrap();
        let why = rec.stale().expect(".env rewrite seen");
        assert!(why.contains(".env changed"), "{why}");
        std::fs::write(dir.join(".env"), "APPS=a\n").unwrap();
        assert_eq!(
            rec.stale(),
            None,
            "the same bytes again: the same discovery"
        );

        // A probed path appearing.
        std::fs::write(dir.join("local.py"), "").unwrap();
        let why = rec.stale().expect("new file seen");
        assert!(why.contains("local.py was absent, is present"), "{why}");
        std::fs::remove_file(dir.join("local.py")).unwrap();
        assert_eq!(rec.stale(), None);

        // A stat'ed file replaced by one of the same size and mtime (a new inode).
        let settings = dir.join("settings.py");
        let mtime = std::fs::metadata(&settings).unwrap().modified().unwrap();
        std::fs::write(dir.join("new.py"), "X = 2\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join("new.py"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::rename(dir.join("new.py"), &settings).unwrap();
        let why = rec.stale().expect("replaced settings seen");
        assert!(why.contains("settings.py changed"), "{why}");
    }

    #[test]
    fn a_new_directory_entry_is_seen() {
        let (_t, dir) = project();
        let rec = record(&dir);
        std::fs::create_dir(dir.join("newapp")).unwrap();
        let why = rec.stale().expect("listing change seen");
        assert!(why.contains("has other entries"), "{why}");
    }

    #[test]
    fn trust_needs_old_enough_files_and_no_unrecordable_inputs() {
        let (_t, dir) = project();
        let rec = record(&dir);
        // settings.py was written just now: its ctime may not show a rewrite within the tick.
        let why = rec.untrustworthy(SystemTime::now()).expect("too recent");
        assert!(why.contains("settings.py changed"), "{why}");
        assert!(why.contains("too recently"), "{why}");
        // Python started a minute after the files were written: trusted.
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(rec.untrustworthy(later), None);
        // .env is checked by content: its age does not matter, even where it was stat'ed
        // too (python-decouple's `os.path.isfile` before `open`).
        let mut only_env = rec.clone();
        let env = dir.join(".env");
        only_env.stat = vec![(env.clone(), true, Obs::of(&env, true))];
        assert_eq!(only_env.untrustworthy(SystemTime::now()), None);
        only_env.content.clear();
        assert!(only_env.untrustworthy(SystemTime::now()).is_some());
        // A change while Python ran.
        std::fs::write(dir.join(".env"), "APPS=c\n").unwrap();
        let why = rec.untrustworthy(later).expect("changed meanwhile");
        assert!(why.contains("while Django was asked"), "{why}");
        std::fs::write(dir.join(".env"), "APPS=a\n").unwrap();
        // Something no record covers.
        let mut sub = rec.clone();
        sub.unmemo = vec!["started a subprocess".into()];
        assert_eq!(
            sub.untrustworthy(later).as_deref(),
            Some("the settings started a subprocess")
        );
    }

    #[test]
    fn slack_is_longer_on_whole_second_filesystems() {
        assert_eq!(slack(1_700_000_000_000_000_000), Duration::from_secs(2));
        assert_eq!(slack(1_700_000_000_123_456_789), Duration::from_millis(100));
    }

    #[test]
    fn inputs_follow_the_environment_but_not_shell_bookkeeping() {
        let opts = DiscoverOptions::default();
        let (p, py) = (Path::new("/p"), Path::new("/py"));
        let env = |kv: &[(&str, &str)]| -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
            kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        let a = Inputs::with_env(&opts, p, py, "s", env(&[("A", "1"), ("SHLVL", "1")]));
        let b = Inputs::with_env(&opts, p, py, "s", env(&[("SHLVL", "2"), ("A", "1")]));
        let c = Inputs::with_env(&opts, p, py, "s", env(&[("A", "2")]));
        let d = Inputs::with_env(&opts, p, py, "t", env(&[("A", "1")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a.slot(),
            c.slot(),
            "one entry per project, whatever the environment"
        );
        assert_ne!(a.slot(), d.slot());
    }
}
