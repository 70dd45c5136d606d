//! An upstream response: the head (`take_head`, framing rules), then the body by the framing
//! the head declared, fed in arbitrary pieces. Never a panic; never more body out than in; a
//! Content-Length body is exactly its length.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use staticd::serve::proxy::client::{take_head, Asked, BodyState, Framing, Piece};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let asked = Asked {
        head: flags & 1 != 0,
        upgrade: flags & 2 != 0,
    };
    let step = usize::from(flags >> 2).max(1);
    let mut buf = BytesMut::from(rest);
    let Ok(Some(head)) = take_head(&mut buf, asked) else {
        return;
    };
    let body = buf.split().freeze();
    let mut state = BodyState::new(head.framing);
    let (mut fed, mut out) = (0, 0usize);
    loop {
        match state.next(&mut buf, fed == body.len()) {
            Ok(Piece::Data(d)) => {
                out += d.len();
                assert!(out <= fed);
            }
            Ok(Piece::End) => {
                if let Framing::Length(n) = head.framing {
                    assert_eq!(out as u64, n);
                }
                break;
            }
            Ok(Piece::NeedMore) => {
                assert!(fed < body.len(), "NeedMore at the end of the input");
                let n = step.min(body.len() - fed);
                buf.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
            Err(_) => break,
        }
    }
});
