//! Where serve's settings come from, in order of precedence: the command line, the
//! environment (`STATICD_…`), `staticd.toml`, the built-in defaults. clap already puts flags
//! over environment variables over defaults; the file goes in as the defaults
//! ([`config_file::Layer::apply`]), after a first parse has said which file to read and what
//! the command line and environment set. [`parse`] does it for `staticd serve`, `dev` and
//! `check` alike, at start and again on each reload (SIGHUP), with the same `argv`.
//!
//! Also here: where STATIC_ROOT and STATIC_URL come from ([`locate`]): the options, else
//! the Django project (PROJECT, by default the current directory).

use super::config::ServeArgs;
use super::config_file::{self, Layer, Place, Problem};
use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, FromArgMatches as _};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The settings of a serve-like command, as resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub args: ServeArgs,
    /// Each option's values as resolved (file key's clap id → raw values): what a reload
    /// compares to say what changed.
    pub values: BTreeMap<String, Vec<OsString>>,
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
}

/// Why the settings cannot be used.
#[derive(Debug)]
pub enum Failure {
    /// The command line itself (clap's own message and exit code).
    Clap(clap::Error),
    /// The file or the environment: every problem found, each with its place.
    Problems(Vec<Problem>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Clap(e) => {
                let text = e.render().to_string();
                f.write_str(
                    text.lines()
                        .next()
                        .unwrap_or("")
                        .trim_start_matches("error: "),
                )
            }
            Failure::Problems(p) => {
                let lines: Vec<String> = p.iter().map(|p| p.to_string()).collect();
                f.write_str(&lines.join("; "))
            }
        }
    }
}

/// Parses `argv` with `cmd` (staticd's whole command line). For a subcommand that takes
/// serve's options (it has `--config`), its configuration file and the environment are
/// checked and the file's values become the options' defaults; the settings come back
/// with the matches. Any other subcommand is parsed as it is.
pub fn parse(cmd: Command, argv: &[OsString]) -> Result<(ArgMatches, Option<Loaded>), Failure> {
    // Without the environment: a bad variable is reported below with the file's problems,
    // all at once, rather than by clap alone.
    let first = match without_env(cmd.clone()).try_get_matches_from(argv) {
        Ok(m) => m,
        // `--help`, or a command-line error: as the whole command (with its variables)
        // says it.
        Err(e) => {
            return Err(Failure::Clap(
                cmd.try_get_matches_from(argv).err().unwrap_or(e),
            ))
        }
    };
    let Some((name, sub)) = first.subcommand() else {
        return Ok((first, None));
    };
    let name = name.to_string();
    let subcmd = cmd
        .find_subcommand(&name)
        .cloned()
        .expect("the subcommand just parsed");
    // Asked of the command, not of the matches: `try_get_one` reports an id the command
    // does not have only in debug builds (release builds answer `Ok(None)`).
    if !subcmd.get_arguments().any(|a| a.get_id() == "config") {
        return Ok((first, None));
    }
    let config = sub.get_one::<PathBuf>("config");
    // Its variable (STATICD_CONFIG) too: the first parse ignored the environment.
    let config = config.cloned().or_else(|| {
        let arg = subcmd.get_arguments().find(|a| a.get_id() == "config")?;
        let v = std::env::var_os(arg.get_env()?)?;
        (!v.is_empty()).then(|| PathBuf::from(v))
    });
    let file = match config {
        Some(path) => Some(path),
        None => {
            let project = sub
                .get_one::<PathBuf>("project")
                .cloned()
                .unwrap_or_else(|| PathBuf::from("."));
            Some(project.join(crate::django::config::FILE_NAME)).filter(|p| p.is_file())
        }
    };
    let mut problems = Vec::new();
    let layer = match &file {
        None => Layer::default(),
        Some(path) => match read_file(&subcmd, path) {
            Ok(layer) => layer,
            Err(p) => {
                problems.extend(p);
                Layer::default()
            }
        },
    };
    problems.extend(env_problems(&subcmd));
    if !problems.is_empty() {
        return Err(Failure::Problems(problems));
    }
    let in_env: Vec<String> = subcmd
        .get_arguments()
        .filter(|a| {
            a.get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| !v.is_empty())
        })
        .map(|a| a.get_id().to_string())
        .collect();
    let set_elsewhere = |id: &str| {
        sub.value_source(id) == Some(ValueSource::CommandLine) || in_env.iter().any(|e| e == id)
    };
    let cmd = cmd.mut_subcommand(&name, |c| layer.apply(c, &set_elsewhere));
    let matches = cmd.try_get_matches_from(argv).map_err(Failure::Clap)?;
    let sub = matches
        .subcommand_matches(&name)
        .expect("the same subcommand");
    let args = ServeArgs::from_arg_matches(sub).map_err(Failure::Clap)?;
    let values = subcmd
        .get_arguments()
        .filter(|a| config_file::key_of(a.get_id().as_str()).is_some())
        .map(|a| {
            let id = a.get_id().as_str();
            let raw = sub
                .get_raw(id)
                .map(|r| r.map(|v| v.to_os_string()).collect())
                .unwrap_or_default();
            (id.to_string(), raw)
        })
        .collect();
    let loaded = Loaded { args, values, file };
    Ok((matches, Some(loaded)))
}

/// `cmd` with no environment variable behind any option of its subcommands.
fn without_env(cmd: Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    names.iter().fold(cmd, |c, n| {
        c.mut_subcommand(n, |s| s.mut_args(|a| a.env(None::<&'static str>)))
    })
}

/// The serve sections of the file at `path` (and collect's part of it, checked by its own
/// reader), or every problem in it.
pub fn read_file(cmd: &Command, path: &Path) -> Result<Layer, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem {
            place: Place::Whole(path.to_path_buf()),
            message: format!("cannot read: {e}"),
        }]
    })?;
    let layer = config_file::read(cmd, path, &text)?;
    if let Err(e) = crate::django::config::parse_facts(&text, path) {
        let message = format!("{e:#}");
        return Err(vec![Problem {
            place: Place::Whole(path.to_path_buf()),
            message: message
                .strip_prefix(&format!("invalid {}: ", path.display()))
                .unwrap_or(&message)
                .to_string(),
        }]);
    }
    Ok(layer)
}

/// Every `STATICD_…` variable set to a value its option refuses.
fn env_problems(cmd: &Command) -> Vec<Problem> {
    let mut out = Vec::new();
    for a in cmd.get_arguments() {
        let Some(var) = a.get_env() else { continue };
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let name = var.to_string_lossy().into_owned();
        let Some(value) = value.to_str() else {
            out.push(Problem {
                place: Place::Env(name),
                message: "not UTF-8".into(),
            });
            continue;
        };
        if value.is_empty() {
            continue; // clap ignores an empty variable
        }
        let parts: Vec<&str> = match a.get_value_delimiter() {
            Some(d) => value.split(d).collect(),
            None => vec![value],
        };
        for part in parts {
            if let Err(message) = config_file::check(a, part) {
                out.push(Problem {
                    place: Place::Env(name.clone()),
                    message,
                });
            }
        }
    }
    out
}

/// STATIC_ROOT and STATIC_URL: from the options, else from the Django project (PROJECT,
/// by default the current directory, as for collect).
pub fn locate(args: &ServeArgs) -> anyhow::Result<(PathBuf, String)> {
    if args.origin.is_some() {
        // The files come from the store: no STATIC_ROOT, no Django project to ask. The
        // root stays empty (nothing is scanned or watched).
        return Ok((
            PathBuf::new(),
            args.static_url.clone().unwrap_or_else(|| "/static/".into()),
        ));
    }
    if let (Some(root), Some(url)) = (&args.root, &args.static_url) {
        return Ok((root.clone(), url.clone()));
    }
    if args.project.is_none() && args.root.is_some() {
        return Ok((
            args.root.clone().unwrap_or_default(),
            args.static_url.clone().unwrap_or_else(|| "/static/".into()),
        ));
    }
    let project = args.project.clone().unwrap_or_else(|| PathBuf::from("."));
    let d = crate::django::discover(&crate::django::DiscoverOptions {
        project: project.clone(),
        python: args.python.clone(),
        settings: args.settings.clone(),
        ..Default::default()
    })
    .with_context(|| {
        format!(
            "STATIC_ROOT: give --root (or [static] root), or a Django project to find it in \
             ({} is not one)",
            project.display()
        )
    })?;
    Ok((
        args.root.clone().unwrap_or(d.static_root),
        args.static_url.clone().unwrap_or(d.static_url),
    ))
}
