//! The missing-reference policy: what collect does with a CSS/JS reference whose target is
//! neither a collected file nor a directory holding one.
//!
//! Django fails collectstatic on such a reference, and that stays the default (`error`). Rules
//! `ACTION:PATTERN` (`--missing`, repeatable, and `[collect] missing = [...]` in `staticd.toml`)
//! relax it per target: `warn` leaves the reference as written and reports it, `ignore` leaves
//! it without a word. The motivating case is a third-party package that ships a
//! `sourceMappingURL` to a map it does not ship (Django ticket #33353, DRF #8609, django-filer
//! #1381): `--missing warn:'*.map'`.
//!
//! A pattern is matched against the target, the path under STATIC_ROOT the reference resolves
//! to (what the error message names, e.g. `rest_framework/css/bootstrap.min.css.map`), like a
//! `-i` pattern: against that path and against its basename, with `fnmatchcase` rules (`*` also
//! matches `/`). Relative references resolve inside the referencing package's own directory, so
//! the target already tells which package a reference belongs to (`warn:rest_framework/*`);
//! matching one thing keeps a rule's meaning unambiguous. The last matching rule wins, and the
//! command line's rules come after the file's, so a flag overrides the file.
use super::ignore::IgnoreRules;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// What to do with a missing reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Fail the collect, naming file, line and reference (Django's behaviour; the default).
    Error,
    /// Leave the reference as written, print a warning naming file, line and reference.
    Warn,
    /// Leave the reference as written, silently (counted in the JSON summary only).
    Ignore,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Error => "error",
            Action::Warn => "warn",
            Action::Ignore => "ignore",
        }
    }
}

/// One `ACTION:PATTERN` rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: Action,
    pub pattern: String,
    glob: IgnoreRules,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        (self.action, &self.pattern) == (other.action, &other.pattern)
    }
}

impl Eq for Rule {}

impl Rule {
    pub fn new(action: Action, pattern: &str) -> Rule {
        Rule {
            action,
            pattern: pattern.to_string(),
            glob: IgnoreRules::new(&[pattern]),
        }
    }

    /// The pattern matches the target's path or its basename.
    pub fn matches(&self, target: &str) -> bool {
        self.glob.ignores_file(target)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.action.name(), self.pattern)
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(s: &str) -> Result<Rule, String> {
        let Some((action, pattern)) = s.split_once(':') else {
            return Err(format!(
                "expected ACTION:PATTERN (ACTION is error, warn or ignore), e.g. warn:*.map; got {s:?}"
            ));
        };
        let action = match action {
            "error" => Action::Error,
            "warn" => Action::Warn,
            "ignore" => Action::Ignore,
            other => {
                return Err(format!(
                    "unknown action {other:?} in {s:?}: expected error, warn or ignore"
                ))
            }
        };
        if pattern.is_empty() {
            return Err(format!(
                "empty pattern in {s:?}: use {}:* to match every target",
                action.name()
            ));
        }
        Ok(Rule::new(action, pattern))
    }
}

/// Where a rule was given (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `[collect] missing` in this `staticd.toml`.
    File(PathBuf),
    /// `--missing`.
    CommandLine,
}

/// The rules in force, in order: the file's, then the command line's. No rule: every missing
/// reference is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<(Rule, Origin)>,
}

impl Policy {
    /// `file`: the `[collect] missing` strings of `path`, validated here; `cli`: `--missing`.
    pub fn new(file: Option<(&Path, &[String])>, cli: Vec<Rule>) -> anyhow::Result<Policy> {
        let mut rules = Vec::new();
        if let Some((path, strings)) = file {
            for s in strings {
                let rule = s.parse::<Rule>().map_err(|e| {
                    anyhow::anyhow!("invalid {}: [collect] missing: {e}", path.display())
                })?;
                rules.push((rule, Origin::File(path.to_path_buf())));
            }
        }
        rules.extend(cli.into_iter().map(|r| (r, Origin::CommandLine)));
        Ok(Policy { rules })
    }

    /// The rule deciding `target`'s fate (the last one matching), if any; none means `error`.
    pub fn rule_for(&self, target: &str) -> Option<&(Rule, Origin)> {
        self.rules.iter().rev().find(|(r, _)| r.matches(target))
    }

    pub fn action(&self, target: &str) -> Action {
        self.rule_for(target)
            .map_or(Action::Error, |(r, _)| r.action)
    }

    /// What changes output, for the incremental state's settings digest.
    pub fn key(&self) -> String {
        let rules: Vec<String> = self.rules.iter().map(|(r, _)| r.to_string()).collect();
        rules.join("\n")
    }

    /// How a rule is named in a warning: `--missing warn:*.map` or `warn:*.map in staticd.toml`.
    pub fn describe(&self, target: &str) -> String {
        match self.rule_for(target) {
            Some((r, Origin::CommandLine)) => format!("--missing {r}"),
            Some((r, Origin::File(p))) => format!("{r} in {}", p.display()),
            None => "the default, error".to_string(),
        }
    }
}

/// A reference whose target is neither a collected file nor a directory holding one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingReference {
    /// The referencing file (its collected path).
    pub path: String,
    /// 1-based line of the reference in it.
    pub line: usize,
    /// The reference as written (the whole match, e.g. `url('../img/a.png')`).
    pub reference: String,
    /// The path under STATIC_ROOT it resolves to (what the policy's patterns are matched against).
    pub target: String,
    /// The start of its line, for context in error messages.
    #[serde(skip)]
    pub line_text: String,
}

impl fmt::Display for MissingReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} references '{}', which is not a collected static file",
            self.path, self.line, self.reference, self.target
        )
    }
}

/// A missing reference some rule let through, as reported (warned) and counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    #[serde(flatten)]
    pub reference: MissingReference,
    pub action: Action,
    /// The rule that applied, e.g. `warn:*.map`.
    pub rule: String,
}

impl Unresolved {
    pub fn new(reference: MissingReference, policy: &Policy) -> Unresolved {
        let (action, rule) = match policy.rule_for(&reference.target) {
            Some((r, _)) => (r.action, r.to_string()),
            None => (Action::Error, String::new()),
        };
        Unresolved {
            reference,
            action,
            rule,
        }
    }

    /// The warning line: `warning: FILE:LINE: REF references 'TARGET', which is not a collected
    /// static file; left unchanged (--missing warn:*.map)`.
    pub fn warning(&self, policy: &Policy) -> String {
        format!(
            "warning: {}; left unchanged ({})",
            self.reference,
            policy.describe(&self.reference.target)
        )
    }
}

/// The suggestion in the error message: a rule that would cover every missing target.
pub fn suggested_rule(missing: &[MissingReference]) -> String {
    let ext = |t: &str| {
        let base = t.rsplit('/').next().unwrap_or(t);
        let stem = base.trim_start_matches('.');
        stem.rfind('.').map(|i| stem[i..].to_string())
    };
    let pattern = match missing.first().map(|m| ext(&m.target)) {
        Some(Some(e)) if missing.iter().all(|m| ext(&m.target).as_ref() == Some(&e)) => {
            format!("*{e}")
        }
        _ if missing.len() == 1 => missing[0].target.clone(),
        // Mixed or no extensions (ES module imports name `./utils`, not `./utils.js`): the
        // directory they share, whose `*` (fnmatch's, crossing `/`) covers them all.
        _ => match common_dir(missing.iter().map(|m| m.target.as_str())) {
            Some(dir) => format!("{dir}/*"),
            None => "*".to_string(),
        },
    };
    format!("warn:{pattern}")
}

/// The longest directory every target lies under (`a/b` for `a/b/c` and `a/b/d/e`), if any.
fn common_dir<'a>(mut targets: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = targets.next()?;
    let mut dir = first.rsplit_once('/')?.0;
    for t in targets {
        while !(t.starts_with(dir) && t.as_bytes().get(dir.len()) == Some(&b'/')) {
            dir = dir.rsplit_once('/')?.0;
        }
    }
    Some(dir)
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The hint after the list of missing references.
pub fn hint(missing: &[MissingReference]) -> String {
    let rule = suggested_rule(missing);
    let (action, pattern) = rule.split_once(':').expect("ACTION:PATTERN");
    format!(
        "(fix the reference or collect the file; to leave such references unchanged instead, use \
         --missing {action}:{} or [collect] missing = [{}] in staticd.toml)",
        shell_quote(pattern),
        toml_string(&rule)
    )
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_and_print() {
        assert_eq!(rule("warn:*.map"), Rule::new(Action::Warn, "*.map"));
        assert_eq!(rule("ignore:a:b"), Rule::new(Action::Ignore, "a:b"));
        assert_eq!(rule("error:*").to_string(), "error:*");
        let e = "wern:*.map".parse::<Rule>().unwrap_err();
        assert!(
            e.contains("unknown action \"wern\"") && e.contains("warn"),
            "{e}"
        );
        let e = "*.map".parse::<Rule>().unwrap_err();
        assert!(e.contains("ACTION:PATTERN"), "{e}");
        let e = "warn:".parse::<Rule>().unwrap_err();
        assert!(e.contains("warn:*"), "{e}");
        assert!(
            "Warn:*.map".parse::<Rule>().is_err(),
            "actions are lower case"
        );
    }

    #[test]
    fn patterns_match_path_or_basename_like_ignore_patterns() {
        let r = rule("warn:*.map");
        assert!(r.matches("rest_framework/css/bootstrap.min.css.map"));
        assert!(r.matches("a.map"));
        assert!(!r.matches("a.map.css"));
        assert!(
            rule("warn:bootstrap.min.css.map").matches("rest_framework/css/bootstrap.min.css.map")
        );
        assert!(rule("warn:rest_framework/*").matches("rest_framework/css/x.css.map"));
        assert!(!rule("warn:rest_framework/*").matches("admin/css/x.css.map"));
        assert!(!rule("warn:*.MAP").matches("a.map"), "case-sensitive");
    }

    #[test]
    fn last_matching_rule_wins_and_the_command_line_comes_last() {
        let path = Path::new("/p/staticd.toml");
        let file = vec!["warn:*.map".to_string(), "ignore:vendor/*".to_string()];
        let p = Policy::new(Some((path, &file)), vec![rule("error:vendor/x.js.map")]).unwrap();
        assert_eq!(p.action("a.css.map"), Action::Warn);
        assert_eq!(p.action("vendor/y.js.map"), Action::Ignore);
        assert_eq!(p.action("vendor/x.js.map"), Action::Error);
        assert_eq!(p.action("img/a.png"), Action::Error, "no rule: error");
        assert_eq!(p.describe("a.css.map"), "warn:*.map in /p/staticd.toml");
        assert_eq!(
            p.describe("vendor/x.js.map"),
            "--missing error:vendor/x.js.map"
        );
        assert_eq!(Policy::default().action("x"), Action::Error);
        assert_ne!(p.key(), Policy::default().key());
    }

    #[test]
    fn bad_file_rules_name_the_file_and_key() {
        let path = Path::new("/p/staticd.toml");
        let e = Policy::new(Some((path, &["warn*.map".to_string()])), vec![])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("invalid /p/staticd.toml: [collect] missing: expected ACTION:PATTERN"),
            "{e}"
        );
    }

    fn missing(target: &str) -> MissingReference {
        MissingReference {
            path: "css/a.css".into(),
            line: 3,
            reference: format!("url({target})"),
            target: target.into(),
            line_text: String::new(),
        }
    }

    #[test]
    fn the_hint_suggests_a_rule_covering_the_missing_targets() {
        let maps = [missing("css/a.css.map"), missing("js/b.js.map")];
        assert_eq!(suggested_rule(&maps), "warn:*.map");
        assert_eq!(
            hint(&maps),
            "(fix the reference or collect the file; to leave such references unchanged instead, \
             use --missing warn:'*.map' or [collect] missing = [\"warn:*.map\"] in staticd.toml)"
        );
        assert_eq!(suggested_rule(&[missing("img/nodir")]), "warn:img/nodir");
        // Nothing shared: only `*` covers them.
        assert_eq!(
            suggested_rule(&[missing("a.png"), missing("b.map")]),
            "warn:*"
        );
        // Extensionless ES module imports (django-baton's sources): their common directory.
        let imports = [
            missing("baton/app/src/core/i18n"),
            missing("baton/app/src/core/AI"),
            missing("baton/app/src/index"),
        ];
        assert_eq!(suggested_rule(&imports), "warn:baton/app/src/*");
        let p = Policy::new(None, vec![rule(&suggested_rule(&imports))]).unwrap();
        assert!(imports.iter().all(|m| p.rule_for(&m.target).is_some()));
        assert_eq!(common_dir(["a/bc/d", "a/b/e"].into_iter()), Some("a"));
        assert_eq!(common_dir(["a/b", "c/d"].into_iter()), None);
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn warnings_name_file_line_reference_and_rule() {
        let p = Policy::new(None, vec![rule("warn:*.map")]).unwrap();
        let u = Unresolved::new(missing("css/a.css.map"), &p);
        assert_eq!((u.action, u.rule.as_str()), (Action::Warn, "warn:*.map"));
        assert_eq!(
            u.warning(&p),
            "warning: css/a.css:3: url(css/a.css.map) references 'css/a.css.map', which is not a \
             collected static file; left unchanged (--missing warn:*.map)"
        );
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["path"], "css/a.css");
        assert_eq!(json["line"], 3);
        assert_eq!(json["action"], "warn");
        assert!(json.get("line_text").is_none());
    }
}
