//! Django's ignore rules: `fnmatch.fnmatchcase` on a file's basename and on its path relative to
//! the storage root; directories by basename only (spec §1.2).
//!
//! `fnmatchcase` is case-sensitive and its `*` also matches `/`, which is why `*/vendor/*.js`
//! works on relative paths. Implemented directly (no regex) because it runs once per file of
//! every source tree.

/// A compiled list of patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<Vec<Token>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    Any,
    AnySeq,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl IgnoreRules {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        IgnoreRules {
            patterns: patterns.iter().map(|p| compile(p.as_ref())).collect(),
        }
    }

    /// `matches_patterns(path, patterns)`.
    pub fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        self.patterns.iter().any(|p| match_tokens(p, &chars))
    }

    /// A file is skipped when its basename or its storage-relative path matches.
    pub fn ignores_file(&self, rel: &str) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        self.matches(base) || (base.len() != rel.len() && self.matches(rel))
    }

    /// A directory is skipped when its basename matches (its path is never tested).
    pub fn ignores_dir(&self, basename: &str) -> bool {
        self.matches(basename)
    }
}

/// Python's `fnmatch.translate` rules: `*`, `?`, `[seq]`, `[!seq]`; an unclosed `[` is literal.
fn compile(pat: &str) -> Vec<Token> {
    let p: Vec<char> = pat.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        match c {
            '*' => {
                if out.last() != Some(&Token::AnySeq) {
                    out.push(Token::AnySeq)
                }
            }
            '?' => out.push(Token::Any),
            '[' => {
                let mut j = i;
                if j < p.len() && p[j] == '!' {
                    j += 1;
                }
                if j < p.len() && p[j] == ']' {
                    j += 1;
                }
                while j < p.len() && p[j] != ']' {
                    j += 1;
                }
                if j >= p.len() {
                    out.push(Token::Char('['));
                    continue;
                }
                let mut body = &p[i..j];
                i = j + 1;
                let negated = body.first() == Some(&'!');
                if negated {
                    body = &body[1..];
                }
                let mut items = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        // Python drops reversed ranges such as `z-a`.
                        if body[k] <= body[k + 2] {
                            items.push((body[k], body[k + 2]));
                        }
                        k += 3;
                    } else {
                        items.push((body[k], body[k]));
                        k += 1;
                    }
                }
                out.push(Token::Class { negated, items });
            }
            c => out.push(Token::Char(c)),
        }
    }
    out
}

/// Iterative wildcard matching with single-star backtracking (linear in practice).
fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let (mut ti, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match tokens.get(ti) {
            Some(Token::AnySeq) => {
                star = Some((ti, si));
                ti += 1;
                continue;
            }
            Some(Token::Any) => true,
            Some(Token::Char(c)) => *c == s[si],
            Some(Token::Class { negated, items }) => {
                items.iter().any(|(a, b)| *a <= s[si] && s[si] <= *b) != *negated
            }
            None => false,
        };
        if step {
            ti += 1;
            si += 1;
        } else if let Some((st, ss)) = star {
            ti = st + 1;
            si = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return false;
        }
    }
    tokens[ti..].iter().all(|t| *t == Token::AnySeq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        IgnoreRules::new(&[p]).matches(s)
    }

    #[test]
    fn fnmatchcase_semantics() {
        assert!(m("*.css", "a/b/c.css"));
        assert!(m("*/vendor/*.js", "test/vendor/module.js"));
        assert!(!m("*/vendor/*.js", "vendor/module.js"));
        assert!(m(".*", ".hidden"));
        assert!(!m(".*", "a.hidden"));
        assert!(m("*~", "backup~"));
        assert!(m("CVS", "CVS"));
        assert!(!m("CVS", "cvs"), "case-sensitive");
        assert!(m("?.txt", "a.txt"));
        assert!(!m("?.txt", "ab.txt"));
        assert!(m("[ab].txt", "b.txt"));
        assert!(!m("[!ab].txt", "b.txt"));
        assert!(m("[!ab].txt", "c.txt"));
        assert!(m("[a-c]x", "bx"));
        assert!(m("[]]x", "]x"));
        assert!(m("[x", "[x"), "unclosed bracket is literal");
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("*", ""));
        assert!(!m("a", ""));
    }

    #[test]
    fn file_and_dir_rules() {
        let r = IgnoreRules::new(&["*.ignoreme", "CVS", ".*", "*~", "*/vendor/*.js"]);
        assert!(r.ignores_file("test/test.ignoreme"));
        assert!(r.ignores_file("test/.hidden"));
        assert!(r.ignores_file("test/vendor/module.js"));
        assert!(!r.ignores_file("vendor/module.js"));
        assert!(!r.ignores_file("test/file.txt"));
        assert!(r.ignores_dir("CVS"));
        assert!(r.ignores_dir(".git"));
        assert!(!r.ignores_dir("vendor"));
    }
}
