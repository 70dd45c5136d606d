//! Object storage: `staticd publish s3://bucket/prefix` (and `collect --publish`) puts the
//! current generation of STATIC_ROOT on an S3-compatible store for a CDN, and `staticd prune
//! --remote` removes what no kept generation names there; `collect --cache s3://…` puts the
//! variant cache's second level there ([`cache`]); `staticd serve --origin` serves a
//! published generation from there, fetching objects on first request ([`fetch`]) into a
//! bounded disk cache ([`object_cache`]).
//!
//! The store is reached through the `object_store` crate. Everything staticd publishes is
//! content-addressed except the unhashed originals and the manifest, so the only write that
//! needs care is the manifest's: it goes last, conditionally ([`publish`]).
pub mod cache;
pub mod config;
pub mod error;
pub mod fetch;
pub mod object_cache;
pub mod objects;
pub mod prune;
pub mod publish;
pub mod record;
pub mod store;
pub mod target;

pub use config::PublishConfig;
pub use error::RemoteError;
pub use publish::{publish, PublishOptions, PublishSummary};
pub use target::Target;
