//! A STATIC_ROOT written straight to disk (files, precompressed siblings, a manifest) for the
//! serve tests, and the deterministic contents and codecs they use.

use staticd::manifest::Manifest;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A STATIC_ROOT (`static/`) under a temp dir.
pub struct StaticRoot {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl StaticRoot {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(&root).unwrap();
        StaticRoot { dir, root }
    }

    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        super::write_file(&self.root, rel, data)
    }

    /// Writes `rel` plus `.br`, `.gz`, `.zst` siblings compressed from `data`.
    pub fn write_with_variants(&self, rel: &str, data: &[u8]) {
        write_variants(&self.root, rel, data);
    }

    pub fn manifest(&self, pairs: &[(&str, &str)]) {
        write_manifest(&self.root, pairs);
    }
}

pub fn write_variants(root: &Path, rel: &str, data: &[u8]) {
    super::write_file(root, rel, data);
    super::write_file(root, &format!("{rel}.br"), &br(data));
    super::write_file(root, &format!("{rel}.gz"), &gz(data));
    super::write_file(
        root,
        &format!("{rel}.zst"),
        &zstd::encode_all(data, 3).unwrap(),
    );
}

/// Publishes a manifest the way collect does: temp name, then rename over.
pub fn write_manifest(root: &Path, pairs: &[(&str, &str)]) {
    let paths: BTreeMap<String, String> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let tmp = root.join(".staticfiles.json.tmp");
    std::fs::write(&tmp, Manifest::new(paths).to_bytes()).unwrap();
    std::fs::rename(&tmp, root.join("staticfiles.json")).unwrap();
}

pub fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    w.write_all(data).unwrap();
    drop(w);
    out
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn unbr(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(data, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn ungz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Compressible text of about `n` bytes.
pub fn text(n: usize, seed: &str) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            ".{seed}-{i} {{ color: #{:06x}; }}\n",
            i * 7919 % 0xffffff
        ));
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

/// Incompressible bytes (deterministic).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
