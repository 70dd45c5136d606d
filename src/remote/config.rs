//! `[publish]` of `staticd.toml`: how to reach the store. Credentials never live here: they
//! come from the standard AWS variables (or the instance's role), as for every AWS tool.
//!
//! ```toml
//! [publish]
//! endpoint = "http://127.0.0.1:8333"   # an S3-compatible store; omit for AWS
//! region = "us-east-1"
//! path_style = true                    # bucket in the path, not the host name
//! allow_http = true                    # plain HTTP (tests, a store on the same host)
//! max_age = 60                         # Cache-Control max-age of unhashed names
//! jobs = 16                            # uploads in flight
//! multipart_threshold_mib = 16         # larger files are uploaded in parts
//! part_size_mib = 8
//! retries = 10                         # per request, with exponential backoff
//! retry_timeout_secs = 180             # give up on a request after this long
//! cache = "s3://ci-cache/variants"     # the variant cache's second level (as --cache)
//! ```
//!
//! The AWS variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`, …) override the file:
//! the file is the project's default, the environment the deployment's choice.
use super::error::RemoteError;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub allow_http: bool,
    pub max_age: u64,
    pub jobs: usize,
    pub multipart_threshold_mib: u64,
    pub part_size_mib: u64,
    pub retries: usize,
    pub retry_timeout_secs: u64,
    /// `--cache`'s default: the variant cache's second level.
    pub cache: Option<String>,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            endpoint: None,
            region: None,
            path_style: false,
            allow_http: false,
            // WhiteNoise's max_age outside DEBUG, and `staticd serve`'s.
            max_age: 60,
            jobs: 16,
            multipart_threshold_mib: 16,
            part_size_mib: 8,
            retries: 10,
            // object_store's default; requests are re-signed per attempt but not re-read.
            retry_timeout_secs: 180,
            cache: None,
        }
    }
}

/// The file as this module sees it: `[publish]` only; other keys are `django::config`'s to
/// validate, so they are ignored here (serde's default for unknown fields).
#[derive(Deserialize)]
struct File {
    #[serde(default)]
    publish: PublishConfig,
}

impl PublishConfig {
    /// `PROJECT/staticd.toml`'s `[publish]`, or the defaults when there is no file or table.
    pub fn load(project: &Path) -> Result<PublishConfig, RemoteError> {
        let path = project.join(crate::django::config::FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(RemoteError::Local { path, source }),
        }
    }

    /// Parses the `[publish]` table of a `staticd.toml` text; `path` is for messages. toml
    /// reports an unknown key with its line and column.
    pub fn parse(text: &str, path: &Path) -> Result<PublishConfig, RemoteError> {
        let err = |message: String| RemoteError::Config {
            path: path.to_path_buf(),
            message,
        };
        // A parse of the whole text: toml's errors then carry the file's line and column.
        let cfg = toml::from_str::<File>(text)
            .map_err(|e| err(e.to_string().trim().to_string()))?
            .publish;
        if cfg.jobs == 0 {
            return Err(err("jobs must be at least 1".into()));
        }
        if cfg.part_size_mib < 5 {
            return Err(err(format!(
                "part_size_mib = {} is below S3's 5 MiB minimum part size",
                cfg.part_size_mib
            )));
        }
        if cfg.multipart_threshold_mib < cfg.part_size_mib {
            return Err(err(format!(
                "multipart_threshold_mib = {} is below part_size_mib = {}",
                cfg.multipart_threshold_mib, cfg.part_size_mib
            )));
        }
        Ok(cfg)
    }

    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold_mib * MIB
    }

    pub fn part_size(&self) -> u64 {
        self.part_size_mib * MIB
    }

    pub fn retry_timeout(&self) -> Duration {
        Duration::from_secs(self.retry_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/proj/staticd.toml")
    }

    #[test]
    fn reads_only_the_publish_table() {
        let text = "static_root = \"s\"\n[collect]\nmissing = []\n[publish]\nendpoint = \"http://127.0.0.1:9\"\npath_style = true\nallow_http = true\njobs = 4\ncache = \"s3://c/v\"\n";
        let c = PublishConfig::parse(text, p()).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert!(c.path_style && c.allow_http);
        assert_eq!(c.jobs, 4);
        assert_eq!(c.cache.as_deref(), Some("s3://c/v"));
        assert_eq!(c.max_age, 60);
        assert_eq!(
            PublishConfig::parse("static_root = \"s\"\n", p()).unwrap(),
            PublishConfig::default()
        );
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let text = "static_root = \"s\"\n\n[publish]\nregion = \"eu-west-1\"\nendpont = \"x\"\n";
        let e = PublishConfig::parse(text, p()).unwrap_err().to_string();
        assert!(
            e.starts_with("invalid /proj/staticd.toml: [publish] "),
            "{e}"
        );
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("unknown field `endpont`"), "{e}");
        let e = PublishConfig::parse("[publish]\naccess_key = \"AKIA\"\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `access_key`"), "{e}");
        let e = PublishConfig::parse("[publish]\npart_size_mib = 1\n", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 MiB minimum"), "{e}");
    }
}
