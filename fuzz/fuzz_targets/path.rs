//! Request path → table key: never a panic, and a key is always a canonical relative path
//! (no empty, `.`-led or trailing segment, no backslash, no control character), whatever
//! the percent-encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staticd::serve::path::{route, Route};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Route::Static(Some(key)) = route(raw, "/static/") {
        assert!(
            !key.is_empty() && !key.starts_with('/') && !key.ends_with('/'),
            "{key:?}"
        );
        for seg in key.split('/') {
            assert!(!seg.is_empty() && !seg.starts_with('.'), "{key:?}");
        }
        assert!(
            !key.contains('\\') && !key.chars().any(char::is_control),
            "{key:?}"
        );
    }
});
