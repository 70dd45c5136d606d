//! `staticd check`: what `nginx -t` is to nginx. The settings were resolved as `serve`
//! would resolve them (`resolve::parse`: file, environment, flags; their problems are
//! listed before this runs); here the rest of what serve needs is checked: STATIC_ROOT and
//! STATIC_URL found (from the options or the Django project), STATIC_ROOT a directory
//! with a manifest that parses, the media and internal directories there, the directory of
//! each Unix socket to listen on there, the access log file one serve can open, the CORS
//! value a valid header. Nothing is bound or connected to, and nothing is written.

use super::listen::Bind;
use super::log::{self, AccessTarget};
use super::reconfigure;
use super::resolve::Loaded;
use std::path::Path;

/// Every problem, or the one-line summary of a configuration that passes.
pub fn check(loaded: &Loaded) -> Result<String, Vec<String>> {
    let args = &loaded.args;
    let mut problems = Vec::new();
    let dir = |what: &str, p: &Path, problems: &mut Vec<String>| match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            problems.push(format!("{what} {}: not a directory", p.display()));
            false
        }
        Err(e) => {
            problems.push(format!("{what} {}: {e}", p.display()));
            false
        }
    };
    let prepared = match reconfigure::prepare(args, args.max_body) {
        Ok(p) => Some(p),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let mut static_line = String::new();
    if let (Some(p), Some(origin)) = (&prepared, &args.origin) {
        // The store is not contacted: a check reads files, and `serve` itself stops with an
        // error naming the bucket and key when the store cannot be reached.
        static_line = format!("origin {origin} under {} (not contacted)", p.build.prefix);
    } else if let Some(p) = &prepared {
        let root = &p.build.root;
        if dir("STATIC_ROOT", root, &mut problems) {
            let manifest = root.join(&p.build.manifest_name);
            match crate::manifest::Manifest::read(&manifest) {
                Ok(Some(m)) => {
                    static_line = format!(
                        "STATIC_ROOT {} under {} ({} manifest entries)",
                        root.display(),
                        p.build.prefix,
                        m.paths.len()
                    )
                }
                Ok(None) => problems.push(format!(
                    "{}: no manifest (run staticd collect, or give --manifest-name)",
                    manifest.display()
                )),
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    if let Some(m) = &args.media_root {
        dir("media root", m, &mut problems);
    }
    for m in &args.internal {
        dir(
            &format!("internal mount {}", m.prefix),
            &m.dir,
            &mut problems,
        );
    }
    for b in &args.bind {
        if let Bind::Unix(p) = b {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(d) = parent {
                dir(&format!("directory of {b}"), d, &mut problems);
            }
        }
    }
    if let AccessTarget::File(path) = &args.observe.access_log {
        if let Err(e) = log::probe_access_log(path) {
            problems.push(e);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let file = loaded.file.as_ref().map_or_else(
        || "no configuration file".to_string(),
        |f| f.display().to_string(),
    );
    let binds: Vec<String> = args.bind.iter().map(|b| b.to_string()).collect();
    let upstreams = match args.upstreams.len() {
        0 => "no upstream".to_string(),
        1 => format!("upstream {}", args.upstreams[0]),
        n => format!("{n} upstreams"),
    };
    Ok(format!(
        "{file}: OK: listen on {}; {static_line}; {upstreams}",
        binds.join(", ")
    ))
}
