//! Which of Django's rewrite patterns a storage runs. A project's storage subclass may set its
//! own `patterns`; the usual reason is to drop the `sourceMappingURL` ones, because a package
//! ships `//# sourceMappingURL=x.js.map` without the map and Django's collectstatic fails on
//! it. Discovery (discover.py) names each compiled pattern of `HashedFilesMixin._patterns`
//! that is one of Django's own, and refuses any other; these are those names.

use super::patterns::{Pattern, CSS, JS, JS_MODULES};
use super::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The names discovery gives Django's patterns, in Django's order: CSS, then JS, then the
/// module patterns (`_js_module_import_aggregation_patterns`, appended to the `*.js` list).
const NAMES: [(&str, Kind); 8] = [
    ("css_url", Kind::Css),
    ("css_import", Kind::Css),
    ("css_source_map", Kind::Css),
    ("js_source_map", Kind::Js),
    ("js_import_from", Kind::Js),
    ("js_export_from", Kind::Js),
    ("js_import_bare", Kind::Js),
    ("js_import_dynamic", Kind::Js),
];

/// A subset of Django's patterns, one bit per entry of [`NAMES`]. Running a subset in
/// Django's order is what Django does with such a `patterns`: each pattern runs over the
/// previous one's output, so dropping one changes nothing for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, Vec<String>>",
    into = "BTreeMap<String, Vec<String>>"
)]
pub struct Rules(u8);

impl Rules {
    /// The patterns of `kind`'s group, in Django's order.
    pub(super) fn group(self, kind: Kind) -> Vec<&'static Pattern> {
        let all = CSS.iter().chain(JS.iter()).chain(JS_MODULES.iter());
        all.zip(NAMES)
            .enumerate()
            .filter(|&(i, (_, (_, k)))| k == kind && self.0 & (1 << i) != 0)
            .map(|(_, (p, _))| p)
            .collect()
    }

    /// Whether Django post-processes files of `kind` at all: `matches_patterns(path,
    /// self._patterns)` has a glob only for a group with at least one pattern.
    pub fn adjusts(self, kind: Kind) -> bool {
        NAMES
            .iter()
            .enumerate()
            .any(|(i, &(_, k))| k == kind && self.0 & (1 << i) != 0)
    }
}

fn glob_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Css => "*.css",
        Kind::Js => "*.js",
    }
}

impl TryFrom<BTreeMap<String, Vec<String>>> for Rules {
    type Error = String;

    /// `{"*.css": [...], "*.js": [...]}` as discovery reports `_patterns`: each glob's names
    /// must be Django's patterns of that group, in Django's order (another order would
    /// rewrite differently, and staticd runs its patterns in Django's).
    fn try_from(map: BTreeMap<String, Vec<String>>) -> Result<Rules, String> {
        let mut bits = 0u8;
        for (glob, names) in &map {
            let mut last = None;
            for name in names {
                let Some(i) = NAMES
                    .iter()
                    .position(|&(n, k)| n == name && glob_of(k) == glob)
                else {
                    return Err(format!("{name:?} is not one of Django's {glob:?} patterns"));
                };
                if last.is_some_and(|l| l >= i) {
                    return Err(format!(
                        "the {glob:?} patterns are not in Django's order: {names:?}"
                    ));
                }
                last = Some(i);
                bits |= 1 << i;
            }
        }
        Ok(Rules(bits))
    }
}

impl From<Rules> for BTreeMap<String, Vec<String>> {
    fn from(r: Rules) -> Self {
        let mut map = BTreeMap::new();
        for (i, &(name, kind)) in NAMES.iter().enumerate() {
            if r.0 & (1 << i) != 0 {
                map.entry(glob_of(kind).to_string())
                    .or_insert_with(Vec::new)
                    .push(name.to_string());
            }
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, &[&str])]) -> Result<Rules, String> {
        let map: BTreeMap<String, Vec<String>> = pairs
            .iter()
            .map(|(g, ns)| (g.to_string(), ns.iter().map(|n| n.to_string()).collect()))
            .collect();
        Rules::try_from(map)
    }

    #[test]
    fn django_defaults_select_the_default_groups() {
        let r = rules(&[
            ("*.css", &["css_url", "css_import", "css_source_map"]),
            ("*.js", &["js_source_map"]),
        ])
        .unwrap();
        assert_eq!(r.group(Kind::Css).len(), 3);
        assert!(std::ptr::eq(r.group(Kind::Css)[2], &CSS[2]));
        assert_eq!(r.group(Kind::Js).len(), 1);
        assert!(std::ptr::eq(r.group(Kind::Js)[0], &JS[0]));
    }

    #[test]
    fn a_subset_without_source_maps_keeps_the_others_in_order() {
        let r = rules(&[("*.css", &["css_url", "css_import"])]).unwrap();
        let css = r.group(Kind::Css);
        assert!(std::ptr::eq(css[0], &CSS[0]) && std::ptr::eq(css[1], &CSS[1]));
        assert_eq!(css.len(), 2);
        assert!(r.group(Kind::Js).is_empty());
        assert!(r.adjusts(Kind::Css) && !r.adjusts(Kind::Js));
    }

    #[test]
    fn module_patterns_join_the_js_group() {
        let r = rules(&[("*.js", &["js_source_map", "js_import_dynamic"])]).unwrap();
        let js = r.group(Kind::Js);
        assert!(std::ptr::eq(js[1], &JS_MODULES[3]));
    }

    #[test]
    fn wrong_group_unknown_name_and_other_order_are_refused() {
        assert!(rules(&[("*.js", &["css_url"])])
            .unwrap_err()
            .contains("not one of"));
        assert!(rules(&[("*.scss", &["css_url"])]).is_err());
        assert!(rules(&[("*.css", &["url"])]).is_err());
        let e = rules(&[("*.css", &["css_import", "css_url"])]).unwrap_err();
        assert!(e.contains("order"), "{e}");
    }

    #[test]
    fn round_trips_through_the_discovery_json() {
        let r = rules(&[("*.css", &["css_url"]), ("*.js", &["js_import_from"])]).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"*.css":["css_url"],"*.js":["js_import_from"]}"#);
        assert_eq!(serde_json::from_str::<Rules>(&json).unwrap(), r);
    }
}
