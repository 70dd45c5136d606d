//! A streamed body compressed as it passes: nothing is buffered beyond what the encoder
//! keeps, and nothing is held back when the source pauses.
//!
//! When to flush: everything the source has ready is compressed without a flush (flushes
//! cost ratio: a few bytes each for gzip and zstd, a new meta-block for br); the moment the
//! source has nothing more ready, the encoder is flushed and what it gives is sent. A page
//! that arrives at once is compressed as one piece; a page generated slowly, or an event
//! stream, goes out piece by piece as the upstream writes it, each piece decodable on its
//! own arrival. Output is also handed on whenever [`YIELD_AT`] bytes have gathered.

use super::coder::Encoder;
use crate::serve::message::Stream;
use bytes::Bytes;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Compressed bytes handed on without waiting for the source to pause.
pub const YIELD_AT: usize = 16 * 1024;

/// `inner`, compressed by `encoder`.
pub struct Compressed {
    inner: Stream,
    encoder: Option<Encoder>,
    out: Vec<u8>,
    /// Input given to the encoder since its last flush.
    unflushed: bool,
}

impl Compressed {
    pub fn new(inner: Stream, encoder: Encoder) -> Compressed {
        Compressed {
            inner,
            encoder: Some(encoder),
            out: Vec::new(),
            unflushed: false,
        }
    }

    fn take(&mut self) -> Poll<Option<std::io::Result<Bytes>>> {
        Poll::Ready(Some(Ok(Bytes::from(std::mem::take(&mut self.out)))))
    }
}

impl futures_util::Stream for Compressed {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    if data.is_empty() {
                        continue;
                    }
                    if let Err(e) = encoder.write(&data, &mut this.out) {
                        this.encoder = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                    this.unflushed = true;
                    if this.out.len() >= YIELD_AT {
                        return this.take();
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    // The body is cut short: no trailer, so the client cannot take the
                    // truncated stream for a whole one.
                    this.encoder = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let encoder = this.encoder.take().expect("checked above");
                    if let Err(e) = encoder.finish(&mut this.out) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return this.take();
                }
                Poll::Pending => {
                    if this.unflushed {
                        this.unflushed = false;
                        if let Err(e) = encoder.flush(&mut this.out) {
                            this.encoder = None;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    if this.out.is_empty() {
                        return Poll::Pending;
                    }
                    // The source's waker is registered: it wakes this task for what follows.
                    return this.take();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::negotiate::Encoding;
    use futures_util::Stream as _;
    use std::io::Read as _;

    /// A source the test feeds by hand: each `Some` is a piece, `None` a pause.
    fn source(pieces: Vec<Option<&'static [u8]>>) -> Stream {
        let mut it = pieces.into_iter();
        Box::pin(futures_util::stream::poll_fn(move |cx| match it.next() {
            Some(Some(p)) => Poll::Ready(Some(Ok(Bytes::from_static(p)))),
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }))
    }

    fn poll(s: &mut Compressed) -> Poll<Option<std::io::Result<Bytes>>> {
        let waker = futures_util::task::noop_waker();
        Pin::new(s).poll_next(&mut Context::from_waker(&waker))
    }

    fn gunzip_prefix(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(data);
        let mut buf = [0u8; 1024];
        while let Ok(n) = d.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// A pause in the source flushes: the first half is decodable before the second exists.
    #[test]
    fn a_pause_flushes_what_came_before() {
        let src = source(vec![
            Some(b"<p>first "),
            Some(b"half</p>"),
            None,
            Some(b"<p>second half</p>"),
        ]);
        let mut s = Compressed::new(src, Encoder::new(Encoding::Gzip, None).unwrap());
        let Poll::Ready(Some(Ok(first))) = poll(&mut s) else {
            panic!("the first half must come out at the pause")
        };
        assert_eq!(gunzip_prefix(&first), b"<p>first half</p>");
        let mut all = first.to_vec();
        loop {
            match poll(&mut s) {
                Poll::Ready(Some(Ok(b))) => all.extend_from_slice(&b),
                Poll::Ready(None) => break,
                Poll::Ready(Some(Err(e))) => panic!("{e}"),
                Poll::Pending => {}
            }
        }
        assert_eq!(gunzip_prefix(&all), b"<p>first half</p><p>second half</p>");
        let mut whole = Vec::new();
        flate2::read::GzDecoder::new(&all[..])
            .read_to_end(&mut whole)
            .expect("a complete gzip stream with its trailer");
    }

    /// A pause with nothing new since the last flush is a plain Pending.
    #[test]
    fn pauses_without_input_pass_through() {
        let src = source(vec![None, None, Some(b"x"), None, None]);
        let mut s = Compressed::new(src, Encoder::new(Encoding::Zstd, None).unwrap());
        assert!(poll(&mut s).is_pending());
        assert!(poll(&mut s).is_pending());
        // `x`, then the pause that flushes it.
        assert!(matches!(poll(&mut s), Poll::Ready(Some(Ok(_)))));
        assert!(poll(&mut s).is_pending());
        let Poll::Ready(Some(Ok(end))) = poll(&mut s) else {
            panic!("the frame's end")
        };
        assert!(!end.is_empty());
        assert!(matches!(poll(&mut s), Poll::Ready(None)));
    }

    #[test]
    fn an_upstream_error_ends_without_a_trailer() {
        let src: Stream = Box::pin(futures_util::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("upstream reset")),
        ]));
        let mut s = Compressed::new(src, Encoder::new(Encoding::Brotli, None).unwrap());
        let mut items = Vec::new();
        while let Poll::Ready(Some(i)) = poll(&mut s) {
            items.push(i.is_ok());
        }
        assert_eq!(items, [false]);
        assert!(matches!(poll(&mut s), Poll::Ready(None)));
    }
}
