//! `staticd.toml`'s serve sections: read with the position of every key, checked against
//! the options of the command, and turned into those options' defaults (so flags and
//! environment variables, which clap puts above defaults, win over the file).
//!
//! Nothing here names an option: where each one sits in the file is its clap id
//! ([`key_of`]), so an option declared with `#[arg(id = "section.key", …)]` is in the file
//! with no other change:
//! - `section.key`: `[section]` then `key = value`. A repeatable option takes an array (or
//!   one value).
//! - `section[].key`: `[[section]]` entries, each giving one value of a repeatable option in
//!   `key` (`[[upstream]] address = "…"`); `section[].a=b` assembles `A=B` from two keys
//!   (`[[internal]] url = "/p/" root = "/srv/p"` is `--internal /p/=/srv/p`).
//! - an id without a dot (`project`, `config`) is not in the file.
//!
//! Every value is checked with the option's own clap value parser, so the file accepts
//! exactly what the flag accepts, and every problem (unknown section or key, wrong type,
//! bad value) is reported with `path:line:column`, all of them at once. The top-level keys
//! of collect's Django facts ([`crate::django::config::KEYS`]) are collect's: skipped here.
//!
//! Relative paths in the file are relative to the file's directory (as collect's
//! `static_root` is): a value whose parser makes a `PathBuf`, a `unix:` socket path, the
//! directory of an `A=B` entry, and the access log's file (`-` and `stdout` stay as they are).

use clap::{Arg, ArgAction, Command};
use std::fmt;
use std::path::{Path, PathBuf};
use toml_edit::{Item, Value};

/// Where an option sits in the file, read from its clap id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// `[section] key = …`
    Table { section: &'a str, key: &'a str },
    /// `[[section]]` entries; one key, or two assembled as `A=B`.
    Entries {
        section: &'a str,
        keys: Vec<&'a str>,
    },
}

impl Key<'_> {
    pub fn section(&self) -> &str {
        match self {
            Key::Table { section, .. } | Key::Entries { section, .. } => section,
        }
    }
}

impl fmt::Display for Key<'_> {
    /// As the README's table and `--help` show it: `[static] max_age`, `[[upstream]] address`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Table { section, key } => write!(f, "[{section}] {key}"),
            Key::Entries { section, keys } => write!(f, "[[{section}]] {}", keys.join(", ")),
        }
    }
}

/// The file key of the option with clap id `id`; `None` for a command-line-only option.
pub fn key_of(id: &str) -> Option<Key<'_>> {
    let (section, key) = id.split_once('.')?;
    match section.strip_suffix("[]") {
        Some(section) => Some(Key::Entries {
            section,
            keys: key.split('=').collect(),
        }),
        None => Some(Key::Table { section, key }),
    }
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A place in a file, 1-based; `key` is the dotted TOML key (`static.max_age`,
    /// `upstream[2].address`) when there is one.
    File {
        path: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
    },
    /// An environment variable.
    Env(String),
    /// The command line.
    CommandLine,
    /// The file as a whole (it cannot be read).
    Whole(PathBuf),
}

/// One thing wrong with the configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub place: Place,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::File {
                path,
                line,
                column,
                key,
            } => {
                write!(f, "{}:{line}:{column}: ", path.display())?;
                if let Some(k) = key {
                    write!(f, "{k}: ")?;
                }
            }
            Place::Env(var) => write!(f, "environment variable {var}: ")?,
            Place::CommandLine => f.write_str("command line: ")?,
            Place::Whole(path) => write!(f, "{}: ", path.display())?,
        }
        f.write_str(&self.message)
    }
}

/// Line and column (1-based, in characters) of byte `offset` of `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// What the file sets: option id → values, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    pub values: Vec<(String, Vec<String>)>,
}

impl Layer {
    /// `cmd` with the file's values as its options' defaults, except for the options
    /// `set_elsewhere` names (given as a flag or an environment variable: those win, and so
    /// does anything they conflict with, e.g. `--cors-origin` over the file's `no_cors`).
    pub fn apply(&self, mut cmd: Command, set_elsewhere: &dyn Fn(&str) -> bool) -> Command {
        let mut built = cmd.clone();
        built.build();
        let conflict = |a: &Arg, b: &str| {
            built
                .get_arg_conflicts_with(a)
                .iter()
                .any(|c| c.get_id() == b)
        };
        let blocked: Vec<String> = self
            .values
            .iter()
            .filter(|(id, _)| {
                let mine = built.get_arguments().find(|a| a.get_id() == id.as_str());
                set_elsewhere(id)
                    || built.get_arguments().any(|a| {
                        let other = a.get_id().as_str();
                        set_elsewhere(other)
                            && (conflict(a, id) || mine.is_some_and(|m| conflict(m, other)))
                    })
            })
            .map(|(id, _)| id.clone())
            .collect();
        for (id, values) in &self.values {
            if blocked.contains(id) {
                continue;
            }
            let values = values.clone();
            cmd = cmd.mut_arg(id, move |a| a.default_values(values));
        }
        cmd
    }
}

/// Reads the serve sections of `text` (the file at `path`) for the options of `cmd`.
pub fn read(cmd: &Command, path: &Path, text: &str) -> Result<Layer, Vec<Problem>> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut r = Reader {
        path,
        text,
        dir: path.parent().unwrap_or(Path::new("")),
        values: Vec::new(),
        problems: Vec::new(),
    };
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(d) => d,
        Err(e) => {
            // One line per problem: toml's message may have several.
            let message: Vec<&str> = e
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            r.problem(e.span(), None, message.join("; "));
            return Err(r.problems);
        }
    };
    let args: Vec<(&Arg, Key<'_>)> = cmd
        .get_arguments()
        .filter_map(|a| Some((a, key_of(a.get_id().as_str())?)))
        .collect();
    for (name, item) in doc.as_table().iter() {
        if crate::django::config::KEYS.contains(&name) {
            continue;
        }
        let key_span = doc.as_table().key(name).and_then(|k| k.span());
        let here: Vec<&(&Arg, Key<'_>)> =
            args.iter().filter(|(_, k)| k.section() == name).collect();
        match here.first().map(|(_, k)| k) {
            None => {
                let mut known: Vec<String> = Vec::new();
                for (_, k) in &args {
                    let s = match k {
                        Key::Table { section, .. } => format!("[{section}]"),
                        Key::Entries { section, .. } => format!("[[{section}]]"),
                    };
                    if !known.contains(&s) {
                        known.push(s);
                    }
                }
                r.problem(
                    key_span,
                    Some(name.to_string()),
                    format!(
                        "unknown section; the sections are {} (and collect's keys {})",
                        known.join(", "),
                        crate::django::config::KEYS.join(", ")
                    ),
                );
            }
            Some(Key::Table { .. }) => r.table(name, item, &here),
            Some(Key::Entries { .. }) => r.entries(name, item, &here),
        }
    }
    if r.problems.is_empty() {
        Ok(Layer {
            path: path.to_path_buf(),
            values: r.values,
        })
    } else {
        Err(r.problems)
    }
}

struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
    dir: &'a Path,
    values: Vec<(String, Vec<String>)>,
    problems: Vec<Problem>,
}

/// How a TOML value is shown in messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

impl Reader<'_> {
    fn problem(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        key: Option<String>,
        message: String,
    ) {
        let (line, column) = line_column(self.text, span.map_or(0, |s| s.start));
        self.problems.push(Problem {
            place: Place::File {
                path: self.path.to_path_buf(),
                line,
                column,
                key,
            },
            message,
        });
    }

    /// `[section]`: every key an option's.
    fn table(&mut self, section: &str, item: &Item, args: &[&(&Arg, Key<'_>)]) {
        let Some(t) = item.as_table_like() else {
            let span = item.span();
            self.problem(
                span,
                Some(section.to_string()),
                format!("expected a table ([{section}])"),
            );
            return;
        };
        for (name, value) in t.iter() {
            let dotted = format!("{section}.{name}");
            let span = t.get_key_value(name).and_then(|(k, _)| k.span());
            let arg = args
                .iter()
                .find(|(_, k)| matches!(k, Key::Table { key, .. } if *key == name));
            let Some((arg, _)) = arg else {
                let keys: Vec<&str> = args
                    .iter()
                    .filter_map(|(_, k)| match k {
                        Key::Table { key, .. } => Some(*key),
                        Key::Entries { .. } => None,
                    })
                    .collect();
                self.problem(
                    span,
                    Some(dotted),
                    format!("unknown key; [{section}] has {}", keys.join(", ")),
                );
                continue;
            };
            let Some(v) = value.as_value() else {
                self.problem(
                    value.span().or(span),
                    Some(dotted),
                    "expected a value, not a table".into(),
                );
                continue;
            };
            if let Some(values) = self.values_of(arg, v, &dotted) {
                self.values.push((arg.get_id().to_string(), values));
            }
        }
    }

    /// `[[section]]`: each entry one value of each option whose keys it has.
    fn entries(&mut self, section: &str, item: &Item, args: &[&(&Arg, Key<'_>)]) {
        let tables: Vec<(&dyn toml_edit::TableLike, Option<std::ops::Range<usize>>)> = match item {
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|t| (t as &dyn toml_edit::TableLike, t.span()))
                .collect(),
            Item::Value(Value::Array(a)) if a.iter().all(|v| v.is_inline_table()) => a
                .iter()
                .filter_map(|v| {
                    v.as_inline_table()
                        .map(|t| (t as &dyn toml_edit::TableLike, v.span()))
                })
                .collect(),
            _ => {
                self.problem(
                    item.span(),
                    Some(section.to_string()),
                    format!("expected [[{section}]] entries"),
                );
                return;
            }
        };
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        for (n, (t, span)) in tables.into_iter().enumerate() {
            let at = format!("{section}[{}]", n + 1);
            for (name, value) in t.iter() {
                let known = args
                    .iter()
                    .any(|(_, k)| matches!(k, Key::Entries { keys, .. } if keys.contains(&name)));
                if !known || value.as_value().is_none() {
                    let span = t.get_key_value(name).and_then(|(k, _)| k.span());
                    let all: Vec<&str> = args
                        .iter()
                        .flat_map(|(_, k)| match k {
                            Key::Entries { keys, .. } => keys.clone(),
                            Key::Table { .. } => Vec::new(),
                        })
                        .collect();
                    let msg = if known {
                        "expected a value, not a table".to_string()
                    } else {
                        format!("unknown key; [[{section}]] entries have {}", all.join(", "))
                    };
                    self.problem(span, Some(format!("{at}.{name}")), msg);
                }
            }
            for (arg, k) in args {
                let Key::Entries { keys, .. } = k else {
                    continue;
                };
                let mut parts = Vec::new();
                for (i, key) in keys.iter().enumerate() {
                    let dotted = format!("{at}.{key}");
                    let Some(v) = t.get(key).and_then(Item::as_value) else {
                        self.problem(span.clone(), Some(at.clone()), format!("missing `{key}`"));
                        continue;
                    };
                    let Some(s) = self.scalar(v, &dotted) else {
                        continue;
                    };
                    // The second part of `A=B` is a directory.
                    parts.push(if i == 1 { self.rebase(&s) } else { s });
                }
                if parts.len() != keys.len() {
                    continue;
                }
                let value = parts.join("=");
                let dotted = format!("{at}.{}", keys.join("="));
                if let Err(m) = check(arg, &value) {
                    let vspan = t.get(keys[0]).and_then(Item::span);
                    self.problem(vspan, Some(dotted), m);
                    continue;
                }
                let id = arg.get_id().to_string();
                match found.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, v)) => v.push(value),
                    None => found.push((id, vec![value])),
                }
            }
        }
        self.values.extend(found);
    }

    /// A string, number or boolean as the flag would take it.
    fn scalar(&mut self, v: &Value, dotted: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.value().clone()),
            Value::Integer(i) => Some(i.value().to_string()),
            Value::Float(f) => Some(f.value().to_string()),
            Value::Boolean(b) => Some(b.value().to_string()),
            other => {
                self.problem(
                    other.span(),
                    Some(dotted.to_string()),
                    format!("expected a string, number or boolean, not {}", kind(other)),
                );
                None
            }
        }
    }

    /// A relative path made relative to the file's directory.
    fn rebase(&self, p: &str) -> String {
        let path = Path::new(p);
        if path.is_absolute() || p.is_empty() {
            return p.to_string();
        }
        self.dir.join(path).to_string_lossy().into_owned()
    }

    /// The values `v` gives `arg` (checked), or `None` after reporting why not.
    fn values_of(&mut self, arg: &Arg, v: &Value, dotted: &str) -> Option<Vec<String>> {
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let many = matches!(arg.get_action(), ArgAction::Append);
        if flag && !v.is_bool() {
            self.problem(
                v.span(),
                Some(dotted.into()),
                format!("expected true or false, not {}", kind(v)),
            );
            return None;
        }
        let items: Vec<&Value> = match v {
            Value::Array(a) if many => a.iter().collect(),
            Value::Array(_) => {
                self.problem(
                    v.span(),
                    Some(dotted.into()),
                    "takes one value, not an array".into(),
                );
                return None;
            }
            one => vec![one],
        };
        let is_path = arg.get_value_parser().type_id() == std::any::TypeId::of::<PathBuf>();
        // `[log] access_log` parses to a target, not a `PathBuf`, but a file is a path too.
        let is_log_file = arg.get_id() == ACCESS_LOG_ID;
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(s) = self.scalar(item, dotted) else {
                ok = false;
                continue;
            };
            let s = if is_path || (is_log_file && !matches!(s.as_str(), "-" | "stdout")) {
                self.rebase(&s)
            } else if let Some(p) = s.strip_prefix("unix:") {
                format!("unix:{}", self.rebase(p))
            } else {
                s
            };
            if let Err(m) = check(arg, &s) {
                self.problem(item.span(), Some(dotted.into()), m);
                ok = false;
                continue;
            }
            out.push(s);
        }
        ok.then_some(out)
    }
}

/// The id of `--access-log`, whose file (not `-`, stdout) is relative to the file's directory.
const ACCESS_LOG_ID: &str = "log.access_log";

/// Whether `value` is one `arg` accepts, by its own value parser; the reason if not (the
/// parser's own message, without clap's framing of a command line).
pub fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let probe = Arg::new("value")
        .long("value")
        .action(ArgAction::Set)
        .allow_hyphen_values(true)
        .value_parser(arg.get_value_parser().clone());
    let r = Command::new("check")
        .no_binary_name(true)
        .disable_help_flag(true)
        .arg(probe)
        .try_get_matches_from([format!("--value={value}")]);
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(reason(&e, arg, value)),
    }
}

/// The reason a value was refused, without clap's `error: invalid value … for '--x'`.
fn reason(e: &clap::Error, arg: &Arg, value: &str) -> String {
    if let Some(source) = std::error::Error::source(e) {
        let s = source.to_string();
        // The parsers of this crate quote the value themselves; std's do not.
        return if s.contains(value) {
            s
        } else {
            format!("{value:?}: {s}")
        };
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect();
    if !possible.is_empty() {
        return format!("{value:?} is not one of {}", possible.join(", "));
    }
    let text = e.render().to_string();
    text.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dur(s: &str) -> Result<Duration, String> {
        match s.strip_suffix('s').unwrap_or(s).parse::<u64>() {
            Ok(n) => Ok(Duration::from_secs(n)),
            Err(_) => Err(format!("{s:?} is not a duration")),
        }
    }

    #[derive(clap::ValueEnum, Clone, Debug)]
    enum Mode {
        Fast,
        Slow,
    }

    /// A command shaped as serve's: every form of key.
    fn cmd() -> Command {
        Command::new("serve")
            .arg(Arg::new("project"))
            .arg(
                Arg::new("serve.bind")
                    .long("bind")
                    .action(ArgAction::Append),
            )
            .arg(
                Arg::new("serve.workers")
                    .long("workers")
                    .value_parser(clap::value_parser!(u16)),
            )
            .arg(
                Arg::new("static.root")
                    .long("root")
                    .value_parser(clap::value_parser!(PathBuf)),
            )
            .arg(Arg::new("static.timeout").long("timeout").value_parser(dur))
            .arg(
                Arg::new("static.cors")
                    .long("cors")
                    .conflicts_with("static.no_cors"),
            )
            .arg(
                Arg::new("static.no_cors")
                    .long("no-cors")
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("proxy.mode")
                    .long("mode")
                    .value_parser(clap::value_parser!(Mode)),
            )
            .arg(
                Arg::new("upstream[].address")
                    .long("upstream")
                    .action(ArgAction::Append),
            )
            .arg(
                Arg::new("internal[].url=root")
                    .long("internal")
                    .action(ArgAction::Append),
            )
            .arg(Arg::new(ACCESS_LOG_ID).long("access-log"))
    }

    fn p() -> &'static Path {
        Path::new("/etc/staticd/staticd.toml")
    }

    #[test]
    fn keys_from_ids() {
        assert_eq!(key_of("project"), None);
        assert_eq!(
            key_of("static.max_age"),
            Some(Key::Table {
                section: "static",
                key: "max_age"
            })
        );
        assert_eq!(
            key_of("internal[].url=root"),
            Some(Key::Entries {
                section: "internal",
                keys: vec!["url", "root"]
            })
        );
        assert_eq!(
            key_of("upstream[].address").unwrap().to_string(),
            "[[upstream]] address"
        );
        assert_eq!(
            key_of("static.max_age").unwrap().to_string(),
            "[static] max_age"
        );
        assert_eq!(line_column("ab\ncdé\nx", 7), (2, 4));
        assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_column("ab", 0), (1, 1));
    }

    #[test]
    fn every_form_read() {
        let text = r#"
static_root = "collected"     # collect's: skipped
[serve]
bind = ["127.0.0.1:8080", "unix:run/s.sock"]
workers = 4
[static]
root = "public"
timeout = "5s"
no_cors = true
[proxy]
mode = "fast"
[[upstream]]
address = "127.0.0.1:8000"
[[upstream]]
address = "unix:/run/g.sock"
[[internal]]
url = "/protected/"
root = "files"
[log]
access_log = "logs/access.log"
"#;
        let l = read(&cmd(), p(), text).unwrap();
        let v: Vec<(&str, Vec<&str>)> = l
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            v,
            [
                (
                    "serve.bind",
                    vec!["127.0.0.1:8080", "unix:/etc/staticd/run/s.sock"]
                ),
                ("serve.workers", vec!["4"]),
                ("static.root", vec!["/etc/staticd/public"]),
                ("static.timeout", vec!["5s"]),
                ("static.no_cors", vec!["true"]),
                ("proxy.mode", vec!["fast"]),
                (
                    "upstream[].address",
                    vec!["127.0.0.1:8000", "unix:/run/g.sock"]
                ),
                (
                    "internal[].url=root",
                    vec!["/protected/=/etc/staticd/files"]
                ),
                (ACCESS_LOG_ID, vec!["/etc/staticd/logs/access.log"]),
            ]
        );
        // Standard output is no path.
        for out in ["-", "stdout"] {
            let l = read(&cmd(), p(), &format!("[log]\naccess_log = {out:?}\n")).unwrap();
            assert_eq!(l.values[0], (ACCESS_LOG_ID.into(), vec![out.into()]));
        }
        // Inline forms too, and one value for a repeatable option.
        let l = read(
            &cmd(),
            p(),
            "serve = { bind = \":80\" }\nupstream = [{ address = \"a:1\" }]\n",
        )
        .unwrap();
        assert_eq!(l.values[0], ("serve.bind".into(), vec![":80".into()]));
        assert_eq!(
            l.values[1],
            ("upstream[].address".into(), vec!["a:1".into()])
        );
    }

    #[test]
    fn every_problem_with_its_place() {
        let text = r#"[serve]
workers = "many"
bind = 8080
colour = "red"
[static]
timeout = "soon"
no_cors = "yes"
root = ["a", "b"]
[proxy]
mode = "medium"
[statik]
root = "x"
[[upstream]]
adress = "a:1"
[[internal]]
url = "/p/"
"#;
        let e = read(&cmd(), p(), text).unwrap_err();
        let lines: Vec<String> = e.iter().map(|p| p.to_string()).collect();
        let f = "/etc/staticd/staticd.toml";
        assert_eq!(
            lines,
            [
                format!("{f}:2:11: serve.workers: \"many\": invalid digit found in string"),
                format!("{f}:4:1: serve.colour: unknown key; [serve] has bind, workers"),
                format!("{f}:6:11: static.timeout: \"soon\" is not a duration"),
                format!("{f}:7:11: static.no_cors: expected true or false, not a string"),
                format!("{f}:8:8: static.root: takes one value, not an array"),
                format!("{f}:10:8: proxy.mode: \"medium\" is not one of fast, slow"),
                format!("{f}:11:2: statik: unknown section; the sections are [serve], [static], [proxy], [[upstream]], [[internal]], [log] (and collect's keys static_root, static_url, ignore, sources, storage, whitenoise, collect, publish)"),
                format!("{f}:14:1: upstream[1].adress: unknown key; [[upstream]] entries have address"),
                format!("{f}:13:1: upstream[1]: missing `address`"),
                format!("{f}:15:1: internal[1]: missing `root`"),
            ]
        );
        // `bind = 8080` is a number the flag's parser takes as text: accepted here.
        let e = read(&cmd(), p(), "[serve\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].to_string().starts_with(&format!("{f}:1:7: ")),
            "{}",
            e[0]
        );
    }

    #[test]
    fn flags_and_environment_win_over_the_file() {
        let l = read(
            &cmd(),
            p(),
            "[serve]\nworkers = 4\nbind = [\"a:1\", \"b:2\"]\n[static]\nno_cors = true\n",
        )
        .unwrap();
        let m = l
            .apply(cmd(), &|_| false)
            .try_get_matches_from(["serve"])
            .unwrap();
        assert_eq!(m.get_one::<u16>("serve.workers"), Some(&4));
        assert_eq!(
            m.get_many::<String>("serve.bind")
                .unwrap()
                .collect::<Vec<_>>(),
            ["a:1", "b:2"]
        );
        assert!(m.get_flag("static.no_cors"));
        // Given on the command line: the flag's value, and a conflicting file value dropped.
        let argv = ["serve", "--workers", "2", "--cors", "*"];
        let first = cmd().try_get_matches_from(argv).unwrap();
        let elsewhere = |id: &str| {
            matches!(
                first.value_source(id),
                Some(
                    clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable
                )
            )
        };
        let m = l
            .apply(cmd(), &elsewhere)
            .try_get_matches_from(argv)
            .unwrap();
        assert_eq!(m.get_one::<u16>("serve.workers"), Some(&2));
        assert!(!m.get_flag("static.no_cors"));
        assert_eq!(m.get_many::<String>("serve.bind").unwrap().count(), 2);
    }
}
