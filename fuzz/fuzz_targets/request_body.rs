//! The request-body decoder (Content-Length and chunked), fed in arbitrary pieces: never a
//! panic, never more out than in, never past `--max-body`, and a length body is exact.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use staticd::serve::h1::body::{BodyLen, Decoder};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let len = match data[0] % 2 {
        0 => BodyLen::Length(u64::from(data[1]) * 7),
        _ => BodyLen::Chunked,
    };
    let max = u64::from(data[2]) * 16;
    let step = usize::from(data[3]).max(1);
    let input = &data[4..];
    let Ok(mut d) = Decoder::new(len, max) else {
        return;
    };
    let (mut buf, mut out, mut fed) = (BytesMut::new(), BytesMut::new(), 0);
    loop {
        match d.decode(&mut buf, &mut out) {
            Ok(true) => {
                if let BodyLen::Length(n) = len {
                    assert_eq!(out.len() as u64, n);
                }
                break;
            }
            Ok(false) if fed == input.len() => break,
            Ok(false) => {
                let n = step.min(input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + n]);
                fed += n;
            }
            Err(_) => break,
        }
        assert!(out.len() <= fed);
        assert!(
            max == 0 || out.len() as u64 <= max,
            "{} > --max-body {max}",
            out.len()
        );
    }
});
