//! Precompressed variants with WhiteNoise's rules (spec §3.2). Pure: bytes in, bytes out.
//!
//! Brotli runs first at quality 11, window 22, byte-identical to Python's `brotli.compress`
//! because both run Google's C encoder the same way; if it is not effective, no gzip is written
//! either (WhiteNoise's shortcut, kept so both produce the same set of files). gzip is level 9
//! with a zero mtime and no file name, byte-identical to Python's `gzip.GzipFile(mtime=0)`
//! because both use zlib. A variant is kept only when it is at most 95 % of the original. zstd is extra
//! (no Django tool writes it) and off by default: see README "Compression".
use std::io::Write;

/// Names the encoders and their settings, for whatever remembers their output (the variant
/// cache's keys, the incremental state): change it whenever any encoder's bytes may change, so
/// output of the old encoders is never taken for the new ones'. `google` = Google's C brotli
/// (before it, the pure-Rust crate, whose bytes differ for some contents).
pub const ENCODERS: &str = "br=google-q11w22 gz=zlib-9 zst=19";

/// WhiteNoise 6.12's `SKIP_COMPRESS_EXTENSIONS`: formats that are already compressed.
pub const DEFAULT_SKIP: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "zip", "gz", "tgz", "bz2", "tbz", "xz", "br", "swf",
    "flv", "woff", "woff2", "3gp", "3gpp", "asf", "avi", "m4v", "mov", "mp4", "mpeg", "mpg",
    "webm", "wmv",
];

/// What to produce.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    pub brotli: bool,
    pub gzip: bool,
    pub zstd: bool,
    /// Lowercase extensions without the dot; matched case-insensitively on the path's end.
    pub skip_extensions: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            brotli: true,
            gzip: true,
            zstd: false,
            skip_extensions: DEFAULT_SKIP.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The variants worth keeping for one content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variants {
    pub br: Option<Vec<u8>>,
    pub gz: Option<Vec<u8>>,
    pub zst: Option<Vec<u8>>,
}

impl Variants {
    pub fn count(&self) -> usize {
        [&self.br, &self.gz, &self.zst]
            .iter()
            .filter(|v| v.is_some())
            .count()
    }

    /// `(suffix, bytes)` for each kept variant.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        [(".br", &self.br), (".gz", &self.gz), (".zst", &self.zst)]
            .into_iter()
            .filter_map(|(s, v)| v.as_deref().map(|b| (s, b)))
    }
}

impl Settings {
    /// WhiteNoise's `re.search(r"\.(ext|...)$", path, re.IGNORECASE)`.
    pub fn skips(&self, path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        self.skip_extensions.iter().any(|ext| {
            lower.len() > ext.len()
                && lower.ends_with(&ext.to_ascii_lowercase())
                && lower.as_bytes()[lower.len() - ext.len() - 1] == b'.'
        })
    }

    /// True when any encoder is on.
    pub fn enabled(&self) -> bool {
        self.brotli || self.gzip || self.zstd
    }

    /// The encoders to run on `data`, each independent of the others so that one big file's
    /// encoders can run on different cores ([`Settings::assemble`] applies the rules that
    /// tie them together). Empty content is never compressed.
    pub fn encoders(&self, data: &[u8]) -> Vec<Encoder> {
        if data.is_empty() {
            return Vec::new();
        }
        [
            (self.brotli, Encoder::Brotli),
            (self.gzip, Encoder::Gzip),
            (self.zstd, Encoder::Zstd),
        ]
        .into_iter()
        .filter_map(|(on, e)| on.then_some(e))
        .collect()
    }

    /// The variants kept from each encoder's result (`None`: not effective), with
    /// WhiteNoise's shortcut: when brotli did not help, no gzip either.
    pub fn assemble(&self, results: Vec<(Encoder, Option<Vec<u8>>)>) -> Variants {
        let mut v = Variants::default();
        for (e, out) in results {
            match e {
                Encoder::Brotli => v.br = out,
                Encoder::Gzip => v.gz = out,
                Encoder::Zstd => v.zst = out,
            }
        }
        if self.brotli && v.br.is_none() {
            v.gz = None;
        }
        v
    }

    /// Compresses `data` on this thread (every encoder in turn).
    pub fn compress(&self, data: &[u8]) -> Variants {
        let results = self
            .encoders(data)
            .into_iter()
            .map(|e| (e, e.run(data)))
            .collect();
        self.assemble(results)
    }
}

/// One encoder at WhiteNoise's (and staticd's) settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    Brotli,
    Gzip,
    Zstd,
}

impl Encoder {
    /// Estimated CPU cost of encoding `len` bytes, in arbitrary units: only the order
    /// matters (the longest jobs are started first). Throughput on this kind of machine, one
    /// core, CSS/JS text: brotli 11 about 1 MB/s, zstd 19 about 3 MB/s, gzip 9 about 25 MB/s.
    pub fn cost(self, len: usize) -> u64 {
        let per_byte = match self {
            Encoder::Brotli => 25,
            Encoder::Zstd => 8,
            Encoder::Gzip => 1,
        };
        len as u64 * per_byte
    }

    /// The encoded bytes, if effective (at most 95 % of `data`).
    pub fn run(self, data: &[u8]) -> Option<Vec<u8>> {
        let out = match self {
            Encoder::Brotli => brotli_11(data),
            Encoder::Gzip => gzip_9(data),
            Encoder::Zstd => zstd_19(data),
        };
        effective(data.len(), out.len()).then_some(out)
    }
}

/// WhiteNoise's `is_compressed_effectively`: at most 95 % of a non-empty original.
pub fn effective(orig: usize, compressed: usize) -> bool {
    orig != 0 && (compressed as f64) / (orig as f64) <= 0.95
}

/// WhiteNoise's `brotli.compress(data)`, byte for byte (see [`super::google_brotli`]).
fn brotli_11(data: &[u8]) -> Vec<u8> {
    super::google_brotli::compress(data, 11, 22)
}

fn gzip_9(data: &[u8]) -> Vec<u8> {
    // GzipBuilder without filename and mtime 0 gives header 1f 8b 08 00 00000000 02 ff.
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(
            Vec::with_capacity(data.len() / 3 + 32),
            flate2::Compression::best(),
        );
    enc.write_all(data).expect("in-memory gzip");
    enc.finish().expect("in-memory gzip")
}

fn zstd_19(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 19).expect("in-memory zstd")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn ninety_five_percent_rule() {
        assert!(effective(100, 95));
        assert!(!effective(100, 96));
        assert!(!effective(0, 0));
        assert!(effective(20, 19));
        assert!(!effective(19, 19));
    }

    #[test]
    fn skip_list_is_case_insensitive_suffix() {
        let s = Settings::default();
        assert!(s.skips("img/a.PNG"));
        assert!(s.skips("font.woff2"));
        assert!(!s.skips("app.css"));
        assert!(!s.skips("png"), "needs the dot");
        assert!(!s.skips("a.xpng"));
        let none = Settings {
            skip_extensions: vec![],
            ..Settings::default()
        };
        assert!(!none.skips("a.png"));
    }

    #[test]
    fn variants_round_trip_and_gzip_header() {
        let data = "body { color: red; }\n".repeat(200);
        let v = Settings::default().compress(data.as_bytes());
        let gz = v.gz.as_ref().unwrap();
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff]);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &v.br.as_ref().unwrap()[..], &mut out).unwrap();
        assert_eq!(out, data.as_bytes());
        assert!(v.zst.is_none(), "zstd is off by default");
    }

    #[test]
    fn tiny_and_empty_inputs() {
        let s = Settings {
            zstd: true,
            ..Settings::default()
        };
        assert_eq!(s.compress(b""), Variants::default());
        // 26 bytes of CSS: neither variant is effective (WhiteNoise observed the same).
        let v = s.compress(b"@import url('other.css');\n");
        assert_eq!(v.count(), 0);
    }

    #[test]
    fn no_gzip_when_brotli_did_not_help() {
        let s = Settings {
            zstd: true,
            ..Settings::default()
        };
        let v = s.assemble(vec![
            (Encoder::Brotli, None),
            (Encoder::Gzip, Some(vec![1])),
            (Encoder::Zstd, Some(vec![2])),
        ]);
        assert_eq!((v.br, v.gz, v.zst), (None, None, Some(vec![2])));
        let no_br = Settings {
            brotli: false,
            ..Settings::default()
        };
        let v = no_br.assemble(vec![(Encoder::Gzip, Some(vec![1]))]);
        assert_eq!(v.gz, Some(vec![1]));
        assert_eq!(no_br.encoders(b"x"), [Encoder::Gzip]);
        assert!(s.encoders(b"").is_empty());
    }
}
