//! What can go wrong talking to the store, each naming the bucket and key it concerns.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid store URL {url:?}: {reason}")]
    Target { url: String, reason: String },

    #[error("invalid {path}: [publish] {message}")]
    Config { path: PathBuf, message: String },

    /// The store answered that the bucket does not exist (object_store cannot create one).
    #[error("bucket {bucket:?} does not exist at {endpoint} (while {op} s3://{bucket}/{key}); create it first")]
    NoSuchBucket {
        bucket: String,
        key: String,
        op: &'static str,
        endpoint: String,
    },

    /// The signature or the access key was rejected: a wrong credential.
    #[error("the store rejected the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) while {op} s3://{bucket}/{key}: {detail}")]
    Credentials {
        bucket: String,
        key: String,
        op: &'static str,
        detail: String,
    },

    /// Authenticated, but not allowed (a policy denying the write, say).
    #[error("access denied while {op} s3://{bucket}/{key}: {detail}")]
    Denied {
        bucket: String,
        key: String,
        op: &'static str,
        detail: String,
    },

    /// The manifest changed between this publish reading it and writing it: another publish
    /// won. Nothing this publish named is lost (objects are content-addressed), and the
    /// manifest is the winner's, whole.
    #[error("another publish changed s3://{bucket}/{key} since this one read it; its manifest was left as the other publish wrote it (run again to publish on top of it)")]
    Conflict { bucket: String, key: String },

    /// Bytes read back do not match what was written (checksum or size).
    #[error("corrupt object s3://{bucket}/{key}: {detail}")]
    Corrupt {
        bucket: String,
        key: String,
        detail: String,
    },

    /// Anything else the store or the network said, after object_store's retries.
    #[error("{op} s3://{bucket}/{key} failed: {detail}")]
    Store {
        bucket: String,
        key: String,
        op: &'static str,
        detail: String,
    },

    #[error("cannot read {path}: {source}")]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{0}")]
    Other(String),
}

/// The S3 error code in an error body (`<Code>SignatureDoesNotMatch</Code>`), if any.
pub fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// `Code: Message` of an S3 error body, the part of a long error chain a person needs.
pub fn s3_summary(text: &str) -> Option<String> {
    let code = s3_code(text)?;
    let message = text
        .find("<Message>")
        .map(|i| &text[i + "<Message>".len()..])
        .and_then(|t| t.find("</Message>").map(|j| &t[..j]));
    let status = text
        .find(" status code: ")
        .map(|i| &text[i + " status code: ".len()..])
        .and_then(|t| t.find(':').map(|j| &t[..j]));
    Some(match (status, message) {
        (Some(s), Some(m)) => format!("{s}, {code}: {m}"),
        (None, Some(m)) => format!("{code}: {m}"),
        (Some(s), None) => format!("{s}, {code}"),
        (None, None) => code.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_code() {
        let body = "Client error with status 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        assert_eq!(s3_code(body), Some("SignatureDoesNotMatch"));
        assert_eq!(s3_code("timeout"), None);
        let chain = "Error performing GET http://h/b/k in 1ms - Server returned non-2xx status code: 403 Forbidden: <?xml?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message></Error>";
        assert_eq!(
            s3_summary(chain).unwrap(),
            "403 Forbidden, SignatureDoesNotMatch: The request signature we calculated does not match."
        );
    }
}
