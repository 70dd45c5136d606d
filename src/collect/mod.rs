//! `staticd collect`: plan → fingerprint → rewrite → compress → publish.
pub mod rewrite;
