//! Django 6.1.3's rewrite patterns (`HashedFilesMixin.patterns`, `_js_module_import_aggregation_patterns`)
//! and ignored-region regexes (`_css_ignored_re`, `_js_ignored_re`), compiled once.
//!
//! Translation from Python `re` (all patterns are compiled with `re.IGNORECASE`):
//! - `re.IGNORECASE` is not used; each keyword letter is spelled as the class of characters Python folds it
//!   with (`ci()`), because Rust's `(?i)` and Python's differ on U+0130/U+0131. Only the keywords contain
//!   letters, so this is the whole effect of the flag; `(?-i:sourceMappingURL)` simply stays a literal.
//! - `\s` and `\w` become Python's exact sets (`pyclass`); `.` already means "anything but `\n`" in both.
//! - The url() back-reference `(?P<quote>['"]{0,1})...(?P=quote)` becomes a three-way alternation in the
//!   order Python's backtracking tries it (`'`, `"`, then no quote). Leftmost-first alternation gives the
//!   same match, and without a back-reference the regex runs on the linear-time engine (no backtrack limit,
//!   no quadratic blow-up on huge minified lines). A test checks it against the literal back-reference form.

use super::pyclass::{ci, SPACE, WORD};
use fancy_regex::Regex;
use std::sync::LazyLock;

/// How a pattern's replacement is written (Django's `template % matches`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Template {
    /// `url("%(url)s")` (Django's `default_template`)
    Url,
    /// `@import url("%(url)s")`
    CssImport,
    /// `/*# sourceMappingURL=%(url)s */`
    CssSourceMap,
    /// `//# sourceMappingURL=%(url)s`
    JsSourceMap,
    /// `import%(import)s from "%(url)s"`
    ImportFrom,
    /// `export%(exports)s from "%(url)s"`
    ExportFrom,
    /// `import"%(url)s"` (the space after `import` is dropped, as in Django)
    ImportBare,
    /// `import("%(url)s")`
    ImportDynamic,
}

impl Template {
    /// Render with the converted `url`; `clause` is the `import`/`exports` group where the template has one.
    pub(super) fn render(self, url: &str, clause: &str) -> String {
        match self {
            Template::Url => format!("url(\"{url}\")"),
            Template::CssImport => format!("@import url(\"{url}\")"),
            Template::CssSourceMap => format!("/*# sourceMappingURL={url} */"),
            Template::JsSourceMap => format!("//# sourceMappingURL={url}"),
            Template::ImportFrom => format!("import{clause} from \"{url}\""),
            Template::ExportFrom => format!("export{clause} from \"{url}\""),
            Template::ImportBare => format!("import\"{url}\""),
            Template::ImportDynamic => format!("import(\"{url}\")"),
        }
    }

    /// The name of the non-url group the template copies, if any.
    pub(super) fn clause_group(self) -> Option<&'static str> {
        match self {
            Template::ImportFrom => Some("import"),
            Template::ExportFrom => Some("exports"),
            _ => None,
        }
    }
}

/// One rewrite rule: regex, replacement template, and the ignored-region regex Django pairs with it.
pub(super) struct Pattern {
    pub re: Regex,
    pub template: Template,
    pub ignored: &'static Regex,
}

/// Translate a Python pattern written with `{keyword}` placeholders (see the module doc).
fn py(pattern: &str) -> Regex {
    let mut p = pattern
        .replace(r"\s", &format!("[{SPACE}]"))
        .replace(r"\w", &format!("[{WORD}]"));
    for kw in ["url", "import", "export", "from", "as"] {
        p = p.replace(&format!("{{{kw}}}"), &ci(kw));
    }
    Regex::new(&p).unwrap_or_else(|e| panic!("bad translated pattern {pattern:?}: {e}"))
}

/// `_css_ignored_re`: block comments, `\x` escapes, single- and double-quoted strings (re.DOTALL).
pub(super) static CSS_IGNORED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?s)/\*.*?\*/|\\.|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*""#)
        .expect("css ignored regex")
});

/// `_js_ignored_re`: as CSS plus `//` line comments and template literals (re.DOTALL).
pub(super) static JS_IGNORED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?s)/\*.*?\*/|//[^\n]*|\\.|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`"#,
    )
    .expect("js ignored regex")
});

/// The `"*.css"` group, in Django's order. The url() group is named `u1`/`u2`/`u3` by quote kind.
pub(super) static CSS: LazyLock<[Pattern; 3]> = LazyLock::new(|| {
    [
        Pattern {
            re: py(r#"{url}\((?:'\s*(?P<u1>.*?)'|"\s*(?P<u2>.*?)"|\s*(?P<u3>.*?))\)"#),
            template: Template::Url,
            ignored: &CSS_IGNORED,
        },
        Pattern {
            re: py(r#"@{import}\s*["']\s*(?P<url>.*?)["']"#),
            template: Template::CssImport,
            ignored: &CSS_IGNORED,
        },
        Pattern {
            re: py(r"(?m)^/\*#[ \t]sourceMappingURL=(?P<url>.*)[ \t]*\*/$"),
            template: Template::CssSourceMap,
            ignored: &CSS_IGNORED,
        },
    ]
});

/// The `"*.js"` group without module support.
pub(super) static JS: LazyLock<[Pattern; 1]> = LazyLock::new(|| {
    [Pattern {
        re: py(r"(?m)^//# sourceMappingURL=(?P<url>.*)$"),
        template: Template::JsSourceMap,
        ignored: &JS_IGNORED,
    }]
});

/// Django 6.1's `_js_module_import_aggregation_patterns`, appended to the JS group when
/// `support_js_module_import_aggregation` is on.
pub(super) static JS_MODULES: LazyLock<[Pattern; 4]> = LazyLock::new(|| {
    let p = |re: &str, template| Pattern {
        re: py(re),
        template,
        ignored: &JS_IGNORED,
    };
    [
        p(
            r#"{import}(?P<import>[\s\{][^;]*?|\*\s*{as}\s*\w+)\s*{from}\s*['"](?P<url>[./].*?)["']"#,
            Template::ImportFrom,
        ),
        p(
            r#"{export}(?P<exports>[\s\{][^;]*?)\s*{from}\s*["'](?P<url>[./].*?)["']"#,
            Template::ExportFrom,
        ),
        p(
            r#"{import}\s*['"](?P<url>[./].*?)["']"#,
            Template::ImportBare,
        ),
        p(
            r#"{import}\(["'](?P<url>[./].*?)["']\)"#,
            Template::ImportDynamic,
        ),
    ]
});
