//! The HTTP/1 request-head parser (request line, fields, Host, absolute-form, body framing):
//! never a panic; an accepted head lies inside the bytes it came from, and its ranges too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staticd::serve::h1::request::{fields, parse, Parse, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    let mut data = data.to_vec();
    if let Parse::NewerMinor(at) = parse(&data) {
        // Set to `1`, the line parses as HTTP/1.1 or is refused for something else.
        assert!(data[at].is_ascii_digit() && data[at] > b'1');
        data[at] = b'1';
        assert!(!matches!(parse(&data), Parse::NewerMinor(_)));
    }
    let data = &data[..];
    match parse(data) {
        Parse::Partial | Parse::NewerMinor(_) => {}
        Parse::Invalid(_, _) => {}
        Parse::Ready(head) => {
            assert!(head.len <= data.len() && head.len <= MAX_HEAD);
            for r in [&head.method, &head.target, &head.origin, &head.path] {
                assert!(r.start <= r.end && r.end <= head.len, "{r:?}");
            }
            let _ = head.request(data);
            let _ = head.host(data);
            let _ = fields(&head, data).get().len();
        }
    }
});
