//! [`staticd::fuzzing::static_headers`]: the body and what it checks are in the crate, so the normal
//! build compiles them and `cargo test` replays this target's seeds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| staticd::fuzzing::static_headers(data));
