//! Checks the dependency order written in `serve/mod.rs`'s module doc against the sources:
//! every serve module is in exactly one layer, and no file uses a serve module of its own
//! layer or a later one. Source text is read, not compiled: `super::X` and
//! `crate::serve::X` outside comments are what a module uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn serve_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/serve")
}

/// The layers listed under "Modules, in dependency order": `N. …` starts a layer, each
/// `- `name`, `name`: …` line below it adds the names before its colon.
fn layers(doc: &str) -> HashMap<String, usize> {
    let mut at = HashMap::new();
    let mut layer = None;
    let mut inside = false;
    for line in doc.lines().filter_map(|l| l.strip_prefix("//!")) {
        let line = line.trim();
        if line.starts_with("## ") {
            inside = line == "## Modules, in dependency order";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((n, _)) = line.split_once(". ") {
            if let Ok(n) = n.parse::<usize>() {
                layer = Some(n);
                continue;
            }
        }
        if let (Some(item), Some(n)) = (line.strip_prefix("- "), layer) {
            let names = item.split_once(':').map_or(item, |(names, _)| names);
            for name in names.split(',') {
                let name = name.trim().trim_matches('`');
                let before = at.insert(name.to_string(), n);
                assert!(before.is_none(), "`{name}` listed twice in serve/mod.rs");
            }
        }
    }
    at
}

/// The serve modules a source file names, with `super::` meaning serve itself (a file at
/// serve's top level, or a directory module's `mod.rs`) or a sibling (any other file, whose
/// `super::` is not counted).
fn uses(source: &str, super_is_serve: bool) -> Vec<String> {
    let mut found = Vec::new();
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut prefixes = vec!["crate::serve::"];
    if super_is_serve {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            // `foo_super::` or `xsuper::` is not a path start.
            let boundary = rest[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            rest = &rest[i + prefix.len()..];
            if !boundary {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `super::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push(std::mem::take(&mut item));
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                found.push(item);
            } else {
                found.push(rest.to_string());
            }
        }
    }
    found
        .iter()
        .map(|p| {
            p.trim()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")
                .to_string()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_uses_only_earlier_layers() {
    let dir = serve_dir();
    let doc = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
    let layer = layers(&doc);
    assert!(
        layer.len() > 10,
        "no layers found in serve/mod.rs: {layer:?}"
    );

    // Every `pub mod` of serve is placed, and nothing else is.
    let declared: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    for m in &declared {
        assert!(
            layer.contains_key(*m),
            "serve::{m} is in no layer of serve/mod.rs"
        );
    }
    for m in layer.keys() {
        assert!(
            declared.contains(&m.as_str()),
            "`{m}` is listed but not a serve module"
        );
    }

    let mut files = Vec::new();
    sources(&dir, &mut files);
    let mut checked = 0;
    for file in files {
        let rel = file.strip_prefix(&dir).unwrap();
        let parts: Vec<_> = rel.iter().map(|p| p.to_str().unwrap()).collect();
        let module = parts[0].trim_end_matches(".rs");
        if module == "mod" || module == "dependency_order" {
            continue; // `run` uses everything; this check uses nothing
        }
        let super_is_serve = parts.len() == 1 || parts[1..] == ["mod.rs"];
        let own = layer[module];
        let source = std::fs::read_to_string(&file).unwrap();
        for used in uses(&source, super_is_serve) {
            let Some(&theirs) = layer.get(&used) else {
                continue; // an item of the file itself (`super::*` in its tests)
            };
            assert!(
                used == module || theirs < own,
                "src/serve/{} (layer {own}) uses serve::{used} (layer {theirs}): \
                 a module may use only earlier layers (see serve/mod.rs)",
                rel.display()
            );
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} files checked");
}

#[test]
fn uses_reads_paths_and_groups() {
    let src = "use super::{headers, log::{self, LogFormat}, proxy};\n\
               // use super::app;\n\
               let x = crate::serve::table::Table::default();\n\
               use super::state::State;";
    assert_eq!(
        uses(src, true),
        ["table", "headers", "log", "proxy", "state"]
    );
    assert_eq!(uses(src, false), ["table"]);
}
