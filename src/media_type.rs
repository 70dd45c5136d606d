//! The Content-Type of a static file from its name: one rule for everything staticd hands
//! out, whether it serves the file itself or publishes it to a store behind a CDN.
//!
//! `serve::table` and `remote` both call it: `mime_guess`, corrected for the web types it gets
//! wrong for a static tier, and `charset=utf-8` on text so browsers never sniff.

/// Python's `os.path.splitext` extension (leading dots of the last component do not start one).
fn extension(name: &str) -> &str {
    let base = &name[name.rfind('/').map_or(0, |i| i + 1)..];
    let stem = base.trim_start_matches('.');
    stem.rfind('.').map_or("", |i| &stem[i + 1..])
}

/// The Content-Type header value for a file named `name`.
pub fn content_type(name: &str) -> String {
    let ext = extension(name).to_ascii_lowercase();
    let essence: String = match ext.as_str() {
        "mjs" | "js" => "text/javascript".into(),
        "map" => "application/json".into(),
        _ => mime_guess::from_ext(&ext)
            .first()
            .map(|m| m.essence_str().to_string())
            .unwrap_or_else(|| "application/octet-stream".into()),
    };
    let texty = essence.starts_with("text/")
        || matches!(
            essence.as_str(),
            "application/javascript" | "application/json" | "application/manifest+json"
        );
    if texty {
        format!("{essence}; charset=utf-8")
    } else {
        essence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("d/a.b.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.json"), "application/json; charset=utf-8");
        assert_eq!(content_type("a.js.map"), "application/json; charset=utf-8");
        assert_eq!(content_type("a.PNG"), "image/png");
        assert_eq!(content_type("a.woff2"), "font/woff2");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
        assert_eq!(content_type(".htaccess"), "application/octet-stream");
        assert_eq!(content_type("x.d/file"), "application/octet-stream");
    }
}
