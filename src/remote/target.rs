//! `s3://bucket/prefix`: where a publish goes. Pure.
use super::error::RemoteError;
use std::fmt;

/// A bucket and a key prefix (no leading or trailing slash; empty = the bucket's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
}

impl Target {
    /// Parses `s3://bucket[/prefix]`. Only S3 URLs: the store is built for S3 (and the
    /// S3-compatible stores behind an `endpoint`), so another scheme is a mistake to report,
    /// not a guess to make.
    pub fn parse(url: &str) -> Result<Target, RemoteError> {
        let bad = |why: &str| RemoteError::Target {
            url: url.to_string(),
            reason: why.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules (3–63 of a-z 0-9 . -, starting and ending alphanumeric),
        // loosened to upper case and `_`, which some S3-compatible stores accept.
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if bucket.is_empty() {
            return Err(bad("no bucket name"));
        }
        if !bucket.chars().all(ok_char) || bucket.len() > 63 {
            return Err(bad("a bucket name has at most 63 of a-z, 0-9, '.', '-'"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|s| s == "." || s == "..")
            || prefix.contains("//")
            || prefix.contains('\\')
        {
            return Err(bad("the prefix must be plain path segments"));
        }
        Ok(Target {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The object key of `rel` (a `/`-separated path under the prefix).
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// `rel` of a listed key, if it is under the prefix.
    pub fn rel<'a>(&self, key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }
    }

    /// `s3://bucket/key` of `rel`, for messages.
    pub fn url(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(rel))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keys() {
        let t = Target::parse("s3://static/site/v1/").unwrap();
        assert_eq!(t.bucket, "static");
        assert_eq!(t.prefix, "site/v1");
        assert_eq!(t.key("css/a.css"), "site/v1/css/a.css");
        assert_eq!(t.rel("site/v1/css/a.css"), Some("css/a.css"));
        assert_eq!(t.rel("site/v10/a.css"), None);
        assert_eq!(t.url("a.css"), "s3://static/site/v1/a.css");
        assert_eq!(t.to_string(), "s3://static/site/v1");
        let root = Target::parse("s3://b").unwrap();
        assert_eq!(root.key("a"), "a");
        assert_eq!(root.rel("x/y"), Some("x/y"));
        assert_eq!(root.to_string(), "s3://b");
    }

    #[test]
    fn rejects_what_is_not_s3() {
        for bad in [
            "gs://b/p",
            "static/p",
            "s3:///p",
            "s3://b a/p",
            "s3://b/../p",
            "s3://b/a//c",
        ] {
            let e = Target::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
