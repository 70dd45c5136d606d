//! A real S3-compatible store for the publish tests: SeaweedFS (`weed mini`, see
//! [`super::seaweed`], which the publish bench shares) with the tests' two identities and a
//! bucket [`BUCKET`], killed and restarted at will, read through its filer so a test sees
//! what was written without trusting the S3 client under test.
use super::seaweed::{s3_python as ci_s3, Identity, Options};
pub use super::seaweed::{written_between, Seaweed};
use std::path::PathBuf;
use std::sync::OnceLock;

pub const ACCESS_KEY: &str = "staticd-test";
pub const SECRET_KEY: &str = "staticd-test-secret";
pub const BUCKET: &str = "static";
/// An identity that may read and list but not write (for the denied-write test).
pub const READER_KEY: &str = "staticd-reader";
pub const READER_SECRET: &str = "staticd-reader-secret";

const IDENTITIES: &[Identity] = &[
    Identity {
        name: "admin",
        access_key: ACCESS_KEY,
        secret_key: SECRET_KEY,
        actions: &["Admin", "Read", "Write", "List", "Tagging"],
    },
    Identity {
        name: "reader",
        access_key: READER_KEY,
        secret_key: READER_SECRET,
        actions: &["Read", "List"],
    },
];

/// The python of the venv `.ci/s3` builds (SeaweedFS, django-storages, boto3, Django, moto),
/// built at most once per test process.
pub fn s3_python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| ci_s3().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

impl Seaweed {
    /// A store with the tests' identities and bucket [`BUCKET`], ready for signed writes.
    pub fn start() -> Seaweed {
        let weed = s3_python().parent().unwrap().join("weed");
        Seaweed::launch(
            &weed,
            &Options {
                bucket: BUCKET,
                identities: IDENTITIES,
                parent: None,
            },
        )
    }
}
