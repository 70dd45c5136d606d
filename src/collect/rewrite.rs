//! CSS/JS reference rewriting with Django 6.1's exact patterns (spec §2.3–§2.5). Pure: no I/O.
//!
//! The module reproduces `HashedFilesMixin`'s substitution step: the patterns of the file's group run one
//! after the other, each over the previous one's output, each with its ignored regions (comments, strings)
//! computed afresh, and each match goes through a port of Django's `url_converter`. Hash lookup is the
//! caller's job (`resolve`), so the fixed-point passes of `post_process` live elsewhere.

mod patterns;
mod pyclass;
mod pyurl;
mod rules;

use patterns::{Pattern, CSS, JS, JS_MODULES};
use pyurl::{dirname, join, normpath, py_strip, unquote, urldefrag, urlsplit};
pub use rules::Rules;
use std::borrow::Cow;

/// Which rewrite group applies; Django decides by fnmatchcase("*.css"/"*.js") on the path, case-sensitive
/// (so `.CSS`, `.mjs` are not adjustable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Css,
    Js,
}

/// `fnmatchcase(path, "*.css")` is a plain case-sensitive suffix test (`*` also matches `/` and the empty
/// string, so a file named just `.css` counts).
pub fn kind_of(rel_path: &str) -> Option<Kind> {
    if rel_path.ends_with(".css") {
        Some(Kind::Css)
    } else if rel_path.ends_with(".js") {
        Some(Kind::Js)
    } else {
        None
    }
}

#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// STATIC_URL as Django sees it at rewrite time, e.g. "/static/" (may be absolute like "https://cdn/x/").
    pub static_url: &'a str,
    /// support_js_module_import_aggregation: adds the 6.1 ES-module patterns to the JS group.
    pub js_modules: bool,
    /// The storage's own choice among Django's patterns (its `patterns` attribute), which then
    /// decides alone; `None`: Django's defaults, per `js_modules`.
    pub rules: Option<Rules>,
}

/// One reference found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The file it points at, as the key Django looks up in hashed_files: posixpath.normpath(unquote(target))
    /// where target = url_path.removeprefix(STATIC_URL) for static-absolute urls, else
    /// posixpath.join(dirname(name), url_path).
    ///
    /// When that key carries a `?query`, surrounding whitespace or tabs/newlines, Django misses its cache and
    /// falls back to `hashed_name()`, which looks at `urlsplit(key).path.strip()`; this field is then that
    /// cleaned path. Deliberate difference (spec §2.5 6b): for `x.css?v=1` Django hashes the *unprocessed*
    /// copy in STATIC_ROOT, we resolve to the processed file like any other reference. Not reproduced: the
    /// second `unquote` of that fallback (a doubly-escaped `%2561` stays `%61` here).
    pub target: String,
    /// 1-based line number of the match start. Like Django's error note, it counts lines in the text the
    /// pattern ran over, which is the original text unless an earlier pattern swallowed a newline
    /// (`url(\n a.png)` → `url("a.<h>.png")`).
    pub line: usize,
    /// The full matched text, e.g. `url('../img/a.png')`.
    pub matched: String,
    /// The text of that line (for error messages), cut after 80 characters: Django drops the line from its
    /// note as soon as `"\n<line>: <text>"` exceeds 79 characters, so more is never shown, and copying whole
    /// minified lines for every reference would be quadratic.
    pub line_text: String,
}

impl Reference {
    /// Django 6.1's note on a failed lookup (`url_converter`'s `add_note`), for the file at `name`:
    /// `'<name>' contains this reference '<matched>' on line \n<n>: <text>` (text dropped when too long).
    pub fn django_note(&self, name: &str) -> String {
        let mut at = format!("\n{}: {}", self.line, self.line_text);
        if at.chars().count() > 79 {
            at = format!("\n{}", self.line);
        }
        format!(
            "{} contains this reference {} on line {at}",
            py_repr(name),
            py_repr(&self.matched)
        )
    }
}

/// What a lookup key names in the collected tree, in the order Django's `_stored_name` asks:
/// its `hashed_files` first, then the destination storage (`hashed_name` → `exists`, `open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A collected file: its final hashed path (e.g. "cached/img/relative.acae32e4532b.png").
    File(String),
    /// A directory of the collected tree ([`directory_of`] the key), STATIC_ROOT itself included.
    /// Django's `hashed_name` finds it (`exists`), cannot `open` it, and returns the name unhashed:
    /// `url(../img)` → `url("../img")`, `url(.)` in `css/s.css` → `url("css")`,
    /// `/*# sourceMappingURL= */` → `/*# sourceMappingURL=  */`.
    Directory,
    /// Neither (Django: "The file ... could not be found"). The match is left unchanged; whether
    /// that is an error is the caller's decision.
    Missing,
}

/// The path Django's existence check tests for a lookup key that names no collected file:
/// `safe_join` normalises it (`posixpath.normpath`), so `css/`, `css/.` and `css` are all the
/// directory `css`, and `""`/`"."` is STATIC_ROOT itself (returned as `""`).
pub fn directory_of(key: &str) -> String {
    match normpath(key).as_str() {
        "." => String::new(),
        d => d.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference resolves outside STATIC_ROOT (Django: SuspiciousFileOperation). Message names file, line, reference.
    #[error("{name}:{}: reference {:?} resolves to {:?}, outside STATIC_ROOT", reference.line, reference.matched, reference.target)]
    Escapes { name: String, reference: Reference },
}

/// All references of `text` (the file at collected path `name`, e.g. "cached/css/window.css") that Django's
/// converter would try to resolve, in order, after Django's skip rules (scheme, //, absolute outside STATIC_URL,
/// empty path/fragment-only, ignored comment/string regions in 6.1, paths ending in '/').
///
/// The patterns still run in sequence over substituted text (a rewrite adds `"` quotes, which can change the
/// string regions later patterns ignore); each reference is substituted with its own target's file name,
/// which has the same quoting as the hashed name would.
pub fn references(
    name: &str,
    kind: Kind,
    text: &str,
    opts: &Options,
) -> Result<Vec<Reference>, Error> {
    let mut found = Vec::new();
    let mut visit = |r: Lazy<'_>| {
        let reference = r.build();
        let key = reference.target.clone();
        found.push(reference);
        Resolved::File(key)
    };
    substitute(name, kind, text, opts, &mut visit)?;
    Ok(found)
}

/// Django 6.1's substitution: apply every pattern of the group in Django's order, each over the output of the
/// previous one, with the ignored-region rule computed afresh per pattern. `resolve(target)` returns the final
/// what the lookup key names ([`Resolved`]). For a file, the rewritten URL keeps the author's directory part and
/// replaces only the last segment with the hashed name, restores query/fragment (incl. the "?#" case), unquotes,
/// and uses the template (`url("%s")`, `@import url("%s")`, `/*# sourceMappingURL=%s */`, ...). A directory gets
/// the same treatment with its own (normalised, unhashed) name. A missing target leaves the match unchanged (the
/// caller decides whether that is an error before calling this).
///
/// Paths ending in `/` are not looked up but still get the template (`url(../img/)` → `url("../img/")`).
pub fn rewrite(
    name: &str,
    kind: Kind,
    text: &str,
    opts: &Options,
    resolve: &dyn Fn(&str) -> Resolved,
) -> Result<String, Error> {
    let mut visit = |r: Lazy<'_>| resolve(r.target);
    substitute(name, kind, text, opts, &mut visit)
}

/// A reference whose `Reference` is only built when needed (error or `references()`): building it copies
/// the matched text and line, which `rewrite()` on a large minified file should not pay for every match.
struct Lazy<'t> {
    target: &'t str,
    matched: &'t str,
    content: &'t str,
    start: usize,
    line: usize,
}

impl Lazy<'_> {
    fn build(&self) -> Reference {
        let line_start = self.content[..self.start].rfind('\n').map_or(0, |i| i + 1);
        let line_text = self.content[line_start..]
            .chars()
            .take_while(|&c| c != '\n')
            .take(80)
            .collect();
        Reference {
            target: self.target.to_string(),
            line: self.line,
            matched: self.matched.to_string(),
            line_text,
        }
    }
}

/// Callback for each reference that needs a lookup: what its key names.
type Visit<'v> = dyn FnMut(Lazy<'_>) -> Resolved + 'v;

/// The patterns of a group, in Django's order (the module patterns are appended to the `*.js` list).
fn group(kind: Kind, opts: &Options) -> Vec<&'static Pattern> {
    if let Some(rules) = opts.rules {
        return rules.group(kind);
    }
    match kind {
        Kind::Css => CSS.iter().collect(),
        Kind::Js if opts.js_modules => JS.iter().chain(JS_MODULES.iter()).collect(),
        Kind::Js => JS.iter().collect(),
    }
}

/// Run every pattern of the group in turn. (Django first skips the group when no pattern matches at all;
/// that never changes the output, so it is not reproduced.)
fn substitute(
    name: &str,
    kind: Kind,
    text: &str,
    opts: &Options,
    visit: &mut Visit,
) -> Result<String, Error> {
    let mut content = Cow::Borrowed(text);
    for pattern in group(kind, opts) {
        if let Cow::Owned(next) = apply(pattern, name, &content, opts, visit)? {
            content = Cow::Owned(next);
        }
    }
    Ok(content.into_owned())
}

/// `pattern.sub(converter, content)`; borrows when nothing changes.
fn apply<'c>(
    pattern: &Pattern,
    name: &str,
    content: &'c str,
    opts: &Options,
    visit: &mut Visit,
) -> Result<Cow<'c, str>, Error> {
    let mut out = String::new();
    let mut copied = 0;
    let mut blocks: Option<Vec<(usize, usize)>> = None;
    let mut lines = LineCursor::default();
    for caps in pattern.re.captures_iter(content) {
        // The translated patterns have no back-references or look-arounds, so fancy_regex hands them to the
        // linear-time engine, which cannot fail at match time.
        let caps = caps.expect("rewrite patterns run on the non-backtracking engine");
        let whole = caps.get(0).expect("group 0 always participates");
        let blocks = blocks.get_or_insert_with(|| ignored_blocks(content, pattern.ignored));
        if in_ignored_block(whole.start(), blocks) {
            continue;
        }
        let url = ["url", "u1", "u2", "u3"]
            .iter()
            .find_map(|g| caps.name(g))
            .map_or("", |m| m.as_str());
        let clause = pattern
            .template
            .clause_group()
            .and_then(|g| caps.name(g))
            .map_or("", |m| m.as_str());
        let line = lines.line_at(content, whole.start());
        let found = Found {
            name,
            url,
            matched: whole.as_str(),
            content,
            start: whole.start(),
            line,
        };
        if let Some(new_url) = convert(&found, opts, visit)? {
            out.push_str(&content[copied..whole.start()]);
            out.push_str(&pattern.template.render(&new_url, clause));
            copied = whole.end();
        }
    }
    if copied == 0 {
        return Ok(Cow::Borrowed(content));
    }
    out.push_str(&content[copied..]);
    Ok(Cow::Owned(out))
}

/// Line numbers for increasing positions in one pass, counted incrementally (O(n) per pass, not per match).
#[derive(Default)]
struct LineCursor {
    pos: usize,
    newlines: usize,
}

impl LineCursor {
    fn line_at(&mut self, content: &str, pos: usize) -> usize {
        self.newlines += content.as_bytes()[self.pos..pos]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = pos;
        self.newlines + 1
    }
}

/// `get_ignored_blocks`: spans of every ignored-regex match, in order.
fn ignored_blocks(content: &str, re: &fancy_regex::Regex) -> Vec<(usize, usize)> {
    re.find_iter(content)
        .map(|m| m.expect("ignored-region regexes run on the non-backtracking engine"))
        .map(|m| (m.start(), m.end()))
        .collect()
}

/// `is_in_ignored_block`: strictly inside (`start < pos < end`), so a match that begins exactly where a
/// comment or string begins (`/*# sourceMappingURL=... */`, `//# sourceMappingURL=...`) is still rewritten.
/// The blocks are sorted and disjoint, so a binary search replaces Django's linear scan.
fn in_ignored_block(pos: usize, blocks: &[(usize, usize)]) -> bool {
    let i = blocks.partition_point(|&(start, _)| start < pos);
    i > 0 && pos < blocks[i - 1].1
}

/// One candidate match, as the converter sees it.
struct Found<'a> {
    name: &'a str,
    url: &'a str,
    matched: &'a str,
    content: &'a str,
    start: usize,
    line: usize,
}

/// What the converter decides to do with a url before any lookup.
enum Plan {
    /// A skip rule applies: Django returns the match verbatim.
    Keep,
    /// The path ends in `/`: Django does not hash it but still rewrites it through the template.
    Directory { transformed: String },
    /// Look `key` up; the rest rebuilds the URL around the hashed file name.
    Lookup {
        key: String,
        /// `posixpath.normpath` of the path before the key was cleaned (query and whitespace kept):
        /// the name Django's `hashed_name` hands back unchanged for a directory.
        normalized: String,
        /// What `_url` appends after the query: `?` for the "?#" hack, then `#fragment`.
        suffix: String,
        query: String,
        prefix: String,
        fragment: String,
    },
}

/// Django's `converter(matchobj)` after the ignored-block test. Returns the new url, or None to keep the match.
fn convert(found: &Found, opts: &Options, visit: &mut Visit) -> Result<Option<String>, Error> {
    match plan(found.name, found.url, opts.static_url) {
        Plan::Keep => Ok(None),
        Plan::Directory { transformed } => Ok(Some(unquote(&transformed))),
        Plan::Lookup {
            key,
            normalized,
            suffix,
            query,
            prefix,
            fragment,
        } => {
            let lazy = Lazy {
                target: &key,
                matched: found.matched,
                content: found.content,
                start: found.start,
                line: found.line,
            };
            // Django's storage refuses such a path (SuspiciousFileOperation) whether it would be
            // looked up as a file or tested as a directory.
            if escapes(&key) || escapes(&directory_of(&key)) {
                return Err(Error::Escapes {
                    name: found.name.to_string(),
                    reference: lazy.build(),
                });
            }
            let hashed_url = match visit(lazy) {
                Resolved::Missing => return Ok(None),
                Resolved::File(hashed) if query.is_empty() => {
                    format!("{}{suffix}", last_segment(&hashed))
                }
                Resolved::File(hashed) => format!("{}?{query}{suffix}", last_segment(&hashed)),
                // `hashed_name` returns the normalised name as it is (query and whitespace
                // included); `urljoin(STATIC_URL, ".")` drops a lone ".".
                Resolved::Directory => match last_segment(&normalized) {
                    "." => suffix,
                    seg => format!("{seg}{suffix}"),
                },
            };
            Ok(Some(unquote(&format!(
                "{prefix}{}{fragment}",
                last_segment(&hashed_url)
            ))))
        }
    }
}

/// Steps 2–5 of spec §2.5 plus the parts of `_url`/`_stored_name`/`hashed_name` that shape the key and the
/// text around the hashed name.
fn plan(name: &str, url: &str, static_url: &str) -> Plan {
    if has_lowercase_scheme(url)
        || url.starts_with("//")
        || (url.starts_with('/') && !url.starts_with(static_url))
    {
        return Plan::Keep;
    }
    let (url_path, fragment) = urldefrag(url);
    if url_path.is_empty() {
        return Plan::Keep;
    }
    // Django asserts the static prefix here; `removeprefix` semantics keep going if urldefrag altered it.
    let target_name = match url_path.strip_prefix('/') {
        Some(_) => url_path
            .strip_prefix(static_url)
            .unwrap_or(&url_path)
            .to_string(),
        None => join(dirname(name), &url_path),
    };
    let prefix = url_path
        .rfind('/')
        .map_or("", |i| &url_path[..=i])
        .to_string();
    let fragment = match fragment.is_empty() {
        true => String::new(),
        false if url.contains("?#") => format!("?#{fragment}"),
        false => format!("#{fragment}"),
    };
    // `_url(..., unquote(target_name))`: defragment again (an escaped %23 becomes a real fragment here), note
    // the "?#" hack, and leave directory paths alone.
    let unquoted = unquote(&target_name);
    let (clean, frag2) = urldefrag(&unquoted);
    let mut suffix = String::from(if unquoted.contains("?#") { "?" } else { "" });
    if !frag2.is_empty() {
        suffix = format!("{suffix}#{frag2}");
    }
    if urlsplit(&clean).path.ends_with('/') {
        let last = match last_segment(&unquoted) {
            "." | ".." => "",
            s => s,
        };
        let hashed_url = format!("{last}{suffix}");
        return Plan::Directory {
            transformed: format!("{prefix}{}{fragment}", last_segment(&hashed_url)),
        };
    }
    let normalized = normpath(&clean);
    let (key, query) = lookup_key(&normalized);
    Plan::Lookup {
        key,
        normalized,
        suffix,
        query,
        prefix,
        fragment,
    }
}

/// `_stored_name`: the normalised path is the cache key; if it holds a query or stray whitespace Django's
/// cache misses and `hashed_name` uses `urlsplit(...).path.strip()` and keeps the query (see `Reference::target`).
fn lookup_key(normalized: &str) -> (String, String) {
    let sp = urlsplit(normalized);
    let path = py_strip(&sp.path);
    if path == normalized {
        (normalized.to_string(), String::new())
    } else {
        (path.to_string(), sp.query)
    }
}

/// `re.match(r"^[a-z]+:", url)`, compiled without IGNORECASE: ASCII lowercase only, so `HTTP:` is not skipped.
fn has_lowercase_scheme(url: &str) -> bool {
    let letters = url.bytes().take_while(u8::is_ascii_lowercase).count();
    letters > 0 && url.as_bytes().get(letters) == Some(&b':')
}

/// `hashed_url.split("/")[-1]`.
fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// A key Django's storage would refuse (`safe_join` raises SuspiciousFileOperation): above the root or absolute.
fn escapes(key: &str) -> bool {
    key == ".." || key.starts_with("../") || key.starts_with('/')
}

/// Python's `repr()` of a `str`: single quotes unless the text has `'` and no `"`; backslash escapes for the
/// quote, `\\`, `\t`, `\n`, `\r` and other non-printable characters. Printability is decided for ASCII, the
/// C1 controls and the common Unicode separators/format characters, not for the full Unicode table.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => out.extend(['\\', c]),
            c if (c as u32) < 0x20 || ('\u{7f}'..='\u{a0}').contains(&c) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            '\u{1680}'
            | '\u{2000}'..='\u{200f}'
            | '\u{2028}'..='\u{202f}'
            | '\u{205f}'..='\u{2064}'
            | '\u{3000}'
            | '\u{feff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests;
