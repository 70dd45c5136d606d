//! The HTTP/1 request-head parser (request line, fields, Host, absolute-form, body framing):
//! never a panic; an accepted head lies inside the bytes it came from, and its ranges too;
//! the field lines forwarded upstream (`RawFields`) are httparse's own, in order.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staticd::serve::h1::request::{parse, Parse, RawFields, MAX_FIELDS, MAX_HEAD};

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
            let mut slots = vec![httparse::EMPTY_HEADER; MAX_FIELDS];
            let mut req = httparse::Request::new(&mut slots);
            assert!(matches!(req.parse(data), Ok(httparse::Status::Complete(n)) if n == head.len));
            let want: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
            let got: Vec<(&str, &[u8])> = RawFields::of(&head, data).iter().collect();
            assert_eq!(got, want);
        }
    }
});
