//! Which certificate answers which TLS server name (SNI): pure lookup, no I/O.
//!
//! Rules (RFC 6125 §6.4, as browsers apply them to subjectAltName DNS names):
//! - names compare case-insensitively and without a trailing dot (`Example.COM.` is
//!   `example.com`);
//! - `*.example.com` matches exactly one extra left-most label: `a.example.com`, not
//!   `example.com` and not `a.b.example.com`;
//! - an exact name beats a wildcard; between two certificates naming the same thing, the one
//!   inserted first wins (the first `--tls-cert` on the command line);
//! - a handshake without SNI (old clients, a bare IP address) or with a name no certificate
//!   covers gets the default certificate, the first one inserted. That is nginx's
//!   `default_server` behaviour; a client that asked for another name then fails the name
//!   check itself, which says more than a handshake alert would.

use std::collections::HashMap;

/// A name table mapping server names to `T` (a certificate), with a default.
#[derive(Debug, Clone)]
pub struct NameTable<T> {
    exact: HashMap<String, T>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, T>,
    default: Option<T>,
}

impl<T> Default for NameTable<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        }
    }
}

/// `name` lower-cased, without a trailing dot; `None` if nothing is left.
pub fn normalize(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

impl<T: Clone> NameTable<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` for each of `names` (as found in a certificate: exact or `*.` wildcard)
    /// where no earlier value claimed the name; the first value ever added is the default.
    pub fn insert<'a>(&mut self, names: impl IntoIterator<Item = &'a str>, value: T) {
        for name in names {
            let Some(name) = normalize(name) else {
                continue;
            };
            let (map, key) = match name.strip_prefix("*.") {
                Some(parent) if !parent.is_empty() => (&mut self.wildcard, parent.to_string()),
                _ => (&mut self.exact, name),
            };
            map.entry(key).or_insert_with(|| value.clone());
        }
        if self.default.is_none() {
            self.default = Some(value);
        }
    }

    /// The value for the server name a client sent (`None`: no SNI).
    pub fn lookup(&self, sni: Option<&str>) -> Option<&T> {
        self.lookup_name(sni).or(self.default.as_ref())
    }

    /// The value covering `sni` by name alone, without falling back to the default.
    pub fn lookup_name(&self, sni: Option<&str>) -> Option<&T> {
        let name = normalize(sni?)?;
        if let Some(v) = self.exact.get(&name) {
            return Some(v);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        self.wildcard.get(parent)
    }

    pub fn is_empty(&self) -> bool {
        self.default.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> NameTable<&'static str> {
        let mut t = NameTable::new();
        t.insert(["a.test", "www.a.test"], "a");
        t.insert(["*.wild.test"], "wild");
        t.insert(["b.test", "*.a.test"], "b");
        t
    }

    #[test]
    fn exact_names_choose_their_certificate() {
        let t = table();
        assert_eq!(t.lookup(Some("a.test")), Some(&"a"));
        assert_eq!(t.lookup(Some("www.a.test")), Some(&"a"));
        assert_eq!(t.lookup(Some("b.test")), Some(&"b"));
    }

    #[test]
    fn names_compare_without_case_and_trailing_dot() {
        let t = table();
        assert_eq!(t.lookup_name(Some("B.Test.")), Some(&"b"));
        assert_eq!(t.lookup_name(Some("X.WILD.test")), Some(&"wild"));
    }

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        let t = table();
        assert_eq!(t.lookup_name(Some("x.wild.test")), Some(&"wild"));
        assert_eq!(t.lookup_name(Some("wild.test")), None);
        assert_eq!(t.lookup_name(Some("x.y.wild.test")), None);
        assert_eq!(t.lookup_name(Some(".wild.test")), None);
    }

    #[test]
    fn an_exact_name_beats_a_wildcard_and_the_first_certificate_wins() {
        let mut t = table();
        // `www.a.test` is exact in "a", `*.a.test` is b's wildcard.
        assert_eq!(t.lookup_name(Some("www.a.test")), Some(&"a"));
        assert_eq!(t.lookup_name(Some("api.a.test")), Some(&"b"));
        t.insert(["a.test", "*.wild.test"], "late");
        assert_eq!(t.lookup_name(Some("a.test")), Some(&"a"));
        assert_eq!(t.lookup_name(Some("z.wild.test")), Some(&"wild"));
    }

    #[test]
    fn no_sni_or_an_unknown_name_gets_the_first_certificate() {
        let t = table();
        assert_eq!(t.lookup(None), Some(&"a"));
        assert_eq!(t.lookup(Some("unknown.example")), Some(&"a"));
        assert_eq!(t.lookup_name(Some("unknown.example")), None);
        assert!(NameTable::<u8>::new().lookup(Some("a.test")).is_none());
    }
}
