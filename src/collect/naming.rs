//! Fingerprinted names, with Django's `hashed_name` rules (spec §2.1). Pure.
use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;

/// Which digest goes into the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlgo {
    /// 12 lowercase hex of blake3: fast, the default.
    #[default]
    Blake3,
    /// 12 lowercase hex of md5: Django's exact names, so existing URLs stay valid.
    Md5,
}

impl HashAlgo {
    /// The 12-hex fingerprint of `content`.
    pub fn fingerprint(self, content: &[u8]) -> String {
        match self {
            HashAlgo::Blake3 => blake3::hash(content).to_hex()[..12].to_string(),
            HashAlgo::Md5 => {
                let digest = Md5::digest(content);
                let mut s = String::with_capacity(12);
                for b in &digest[..6] {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
        }
    }
}

/// `HashedFilesMixin.hashed_name(name)` for a known fingerprint.
///
/// Django unquotes the name and splits off `?query`/`#fragment` first, so a file literally
/// named `%2F.txt` is hashed as `/.txt` (spec §2.1 table); the extension is
/// `os.path.splitext` of the basename, so only the last one moves behind the hash and a leading
/// dot belongs to the stem.
pub fn hashed_name(name: &str, fingerprint: &str) -> String {
    let unquoted = percent_decode_str(name).decode_utf8_lossy();
    let (path_part, rest) = match unquoted.find(['?', '#']) {
        Some(i) => (&unquoted[..i], &unquoted[i..]),
        None => (&unquoted[..], ""),
    };
    let clean = path_part.trim();
    let (dir, file) = split(clean);
    let (root, ext) = splitext(file);
    let hashed_file = format!("{root}.{fingerprint}{ext}");
    let mut out = if dir.is_empty() {
        hashed_file
    } else {
        format!("{dir}/{hashed_file}")
    };
    out.push_str(rest);
    if name.contains("?#") && !rest.starts_with('?') {
        out.push('?');
    }
    out
}

/// `os.path.split`: the head loses its trailing slashes unless it is only slashes.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        None => ("", path),
        Some(i) => {
            let head = &path[..=i];
            let trimmed = head.trim_end_matches('/');
            (
                if trimmed.is_empty() { head } else { trimmed },
                &path[i + 1..],
            )
        }
    }
}

/// `os.path.splitext` on a basename: leading dots are part of the root.
pub fn splitext(file: &str) -> (&str, &str) {
    let leading = file.len() - file.trim_start_matches('.').len();
    match file[leading..].rfind('.') {
        Some(i) => file.split_at(leading + i),
        None => (file, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_hashed_name_table() {
        let h = "0123456789ab";
        assert_eq!(hashed_name("css/site.css", h), "css/site.0123456789ab.css");
        assert_eq!(
            hashed_name("jquery.min.js", h),
            "jquery.min.0123456789ab.js"
        );
        assert_eq!(hashed_name("app.js.map", h), "app.js.0123456789ab.map");
        assert_eq!(
            hashed_name("archive.tar.gz", h),
            "archive.tar.0123456789ab.gz"
        );
        assert_eq!(hashed_name("LICENSE", h), "LICENSE.0123456789ab");
        assert_eq!(hashed_name(".htaccess", h), ".htaccess.0123456789ab");
        assert_eq!(hashed_name("file.", h), "file.0123456789ab.");
        assert_eq!(hashed_name("test/%2F.txt", h), "test/.txt.0123456789ab");
        assert_eq!(hashed_name("test/⊗.txt", h), "test/⊗.0123456789ab.txt");
        assert_eq!(hashed_name("a/b/..c", h), "a/b/..c.0123456789ab");
        assert_eq!(hashed_name("a..b", h), "a..0123456789ab.b");
    }

    #[test]
    fn fingerprints() {
        // md5("") = d41d8cd98f00..., Django's name for an empty file.
        assert_eq!(HashAlgo::Md5.fingerprint(b""), "d41d8cd98f00");
        assert_eq!(HashAlgo::Md5.fingerprint(b"foo"), "acbd18db4cc2");
        let b = HashAlgo::Blake3.fingerprint(b"foo");
        assert_eq!(b.len(), 12);
        assert!(b
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(b, blake3::hash(b"foo").to_hex()[..12]);
    }
}
