//! staticd: Django's `collectstatic` and the static tier of a Django deployment in one binary.
//!
//! Data flows one way: `django` (discovery) → `collect` (plan → fingerprint → rewrite →
//! compress → publish) → `manifest` → `serve` (table → responses). `collect` and `serve`
//! meet only in the manifest and STATIC_ROOT. `tls` (certificates, ACME, the handshake)
//! knows no HTTP; `serve` puts it in front of its listeners.
pub mod alloc;
pub mod collect;
pub mod delta;
pub mod django;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod manifest;
pub mod media_type;
pub mod remote;
pub mod serve;
pub mod tls;
