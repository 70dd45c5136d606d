//! An origin's table (`serve --origin`): the published manifest plus one listing of the
//! prefix make the same URL table a scan of STATIC_ROOT makes, without reading an object.
//! Pure.
//!
//! - The same admission as the scan: no hidden component (so neither the generation record
//!   nor the variant cache), and the manifest itself is not a URL.
//! - The same grouping: `x.br`, `x.zst`, `x.gz` are variants of `x` when `x` is listed.
//!   A variant key publish filled with the identity bytes (a name a CDN negotiates whose
//!   compression did not pay) has the base's size and ETag: it is not a variant, as no file
//!   stood there in STATIC_ROOT.
//! - The same Content-Type, Cache-Control and immutability (WhiteNoise's test against the
//!   published manifest).
//! - Validators from the listing, so every replica sends the same ones: the ETag is 96 bits
//!   of the object's identity (the store's ETag and the size, [`identity`]), Last-Modified
//!   the time the store stored the identity object. Never a local time.
//! - Old generations' hashed names answer as long as the store holds them, as old files in
//!   STATIC_ROOT do: the listing has them.
use crate::manifest::Manifest;
use crate::remote::object_cache::identity;
use crate::remote::store::Entry;
use crate::serve::negotiate::Encoding;
use crate::serve::table::{is_immutable, BuildOptions, FileId, Interned, Source, Table, Variant};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Whether a key can be a URL: what the scan of STATIC_ROOT admits. RFC 9842 deltas
/// (`x.<hex>.dcb`, published beside their file) are not URLs of their own, as in the scan;
/// an origin does not serve them (its table has no dictionaries: the full dictionary hash a
/// delta answers for is inside the object, and the listing gives only the name's prefix).
fn admitted(key: &str, manifest_name: &str) -> bool {
    key != manifest_name
        && crate::delta::parse_file_name(key).is_none()
        && !key.contains(['\\', '\0'])
        && key.split('/').all(|c| !c.is_empty() && !c.starts_with('.'))
}

/// The identity of a listed object; without an ETag, its key and the time it was stored
/// (what changes when it is written again).
fn object_id(key: &str, e: &Entry) -> [u8; 32] {
    match &e.etag {
        Some(etag) => identity(e.size, etag),
        None => identity(e.size, &format!("{key}@{}", e.modified)),
    }
}

/// Builds the table of one published generation.
pub fn build(manifest: &Manifest, listing: &HashMap<String, Entry>, opts: &BuildOptions) -> Table {
    let keys: HashSet<&str> = listing
        .keys()
        .map(String::as_str)
        .filter(|k| admitted(k, &opts.manifest_name))
        .collect();
    let mut groups: HashMap<&str, [Option<(&str, &Entry)>; 4]> = HashMap::new();
    for &k in &keys {
        let e = &listing[k];
        let mut placed = false;
        for enc in [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip] {
            if let Some(base) = k.strip_suffix(enc.suffix().unwrap_or_default()) {
                if keys.contains(base) {
                    groups.entry(base).or_default()[enc.index()] = Some((k, e));
                    placed = true;
                }
            }
        }
        if !placed {
            groups.entry(k).or_default()[Encoding::Identity.index()] = Some((k, e));
        }
    }
    let mut interned = Interned::new(opts.max_age);
    let mut assets = HashMap::with_capacity(groups.len());
    for (name, g) in &groups {
        let Some((_, base)) = g[Encoding::Identity.index()] else {
            continue;
        };
        let mut variants = Vec::with_capacity(4);
        let mut slots = [u8::MAX; 4];
        for (i, slot) in g.iter().enumerate() {
            let Some((key, e)) = slot else { continue };
            let enc = Encoding::PREFERENCE[i];
            let filled = enc != Encoding::Identity
                && e.size == base.size
                && e.etag.is_some()
                && e.etag == base.etag;
            if filled {
                continue;
            }
            let hash = object_id(key, e);
            slots[i] = variants.len() as u8;
            variants.push(Variant {
                encoding: enc,
                len: e.size,
                etag: interned.etags.etag(&hash),
                id: FileId {
                    dev: 0,
                    ino: 0,
                    len: e.size,
                    mtime_ns: e.modified.saturating_mul(1_000_000_000),
                },
                hash,
                source: Source::Remote {
                    store_etag: e.etag.as_deref().map(Box::from),
                },
                kept: Default::default(),
            });
        }
        let name: Arc<str> = Arc::from(*name);
        let imm = is_immutable(&name, manifest);
        let asset = interned.asset(name.clone(), &name, base.modified, variants, slots, imm);
        assets.insert(name, Arc::new(asset));
    }
    Table::remote(assets, opts.prefix.clone(), manifest.paths.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(size: u64, etag: &str, modified: i64) -> Entry {
        Entry {
            size,
            etag: Some(format!("\"{etag}\"")),
            modified,
        }
    }

    fn opts() -> BuildOptions {
        BuildOptions::for_tests(std::path::Path::new(""))
    }

    #[test]
    fn the_listing_makes_the_table_a_scan_would() {
        let m = Manifest::new(BTreeMap::from([(
            "css/app.css".into(),
            "css/app.0123456789ab.css".into(),
        )]));
        let listing: HashMap<String, Entry> = [
            ("staticfiles.json", entry(50, "m", 1)),
            (".staticd-generations.json", entry(50, "r", 1)),
            ("css/app.0123456789ab.css", entry(900, "a", 1_700_000_000)),
            (
                "css/app.0123456789ab.css.br",
                entry(300, "b", 1_700_000_001),
            ),
            (
                "css/app.0123456789ab.css.gz",
                entry(400, "c", 1_700_000_002),
            ),
            ("css/app.css", entry(900, "a", 1_700_000_003)),
            // Filled by publish: the identity bytes under a variant key.
            ("css/app.css.br", entry(900, "a", 1_700_000_003)),
            ("css/.hidden", entry(1, "h", 1)),
            ("dump.tar.gz", entry(7, "d", 1)),
        ]
        .into_iter()
        .map(|(k, e)| (k.to_string(), e))
        .collect();
        let t = build(&m, &listing, &opts());
        let mut names: Vec<&str> = t.assets.keys().map(|k| &**k).collect();
        names.sort();
        assert_eq!(
            names,
            ["css/app.0123456789ab.css", "css/app.css", "dump.tar.gz"]
        );
        assert!(t.remote && t.dir.is_none());
        assert_eq!(t.prefix, "/static/");

        let h = t.get("css/app.0123456789ab.css").unwrap();
        assert!(h.immutable && h.has_variants);
        assert_eq!(h.cache_control, "max-age=31536000, immutable");
        assert_eq!(h.content_type, "text/css; charset=utf-8");
        assert_eq!(h.last_modified.as_ref().unwrap().0, 1_700_000_000);
        let br = h.variant(Encoding::Brotli).unwrap();
        assert_eq!(br.len, 300);
        assert!(h.variant(Encoding::Zstd).is_none());
        let id = h.variant(Encoding::Identity).unwrap();
        assert_ne!(br.etag, id.etag);
        assert_eq!(id.hash, identity(900, "a"));

        let o = t.get("css/app.css").unwrap();
        assert!(
            !o.immutable && !o.has_variants,
            "the filled .br is no variant"
        );
        assert_eq!(o.cache_control, "max-age=60");
        assert_eq!(
            o.variant(Encoding::Identity).unwrap().etag,
            id.etag,
            "the same bytes, the same ETag"
        );
        let d = t.get("dump.tar.gz").unwrap();
        assert!(!d.has_variants, "a .gz without its base is a file");

        // Every replica builds the same validators from the same listing.
        let again = build(&m, &listing, &opts());
        let a2 = again.get("css/app.0123456789ab.css").unwrap();
        assert_eq!(a2.variant(Encoding::Brotli).unwrap().etag, br.etag);
        assert_eq!(
            a2.last_modified.as_ref().unwrap().1,
            h.last_modified.as_ref().unwrap().1
        );
    }

    #[test]
    fn admission_is_the_scans() {
        assert!(admitted("a/b.css", "staticfiles.json"));
        assert!(!admitted("staticfiles.json", "staticfiles.json"));
        assert!(!admitted(".staticd-generations.json", "staticfiles.json"));
        assert!(!admitted("a/.git/x", "staticfiles.json"));
        assert!(!admitted("a//b", "staticfiles.json"));
        assert!(!admitted("a\\b", "staticfiles.json"));
    }
}
