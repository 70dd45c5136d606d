//! Response bodies: memory slices and file ranges, in any sequence.
//!
//! One type covers a whole file, a single range and `multipart/byteranges` (part headers
//! are memory segments between file segments). Disk reads run on the blocking pool in
//! [`CHUNK`]-sized `pread`s so a slow disk never stalls a worker's event loop.

use actix_web::body::{BodySize, MessageBody};
use actix_web::rt::task::{spawn_blocking, JoinHandle};
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Bytes per blocking read: large enough to amortise the pool hop, small enough to keep
/// per-connection memory bounded.
pub const CHUNK: u64 = 256 * 1024;

/// A piece of the body.
#[derive(Debug)]
pub enum Segment {
    Mem(Bytes),
    /// `len` bytes of the body's file from `offset`.
    File {
        offset: u64,
        len: u64,
    },
}

/// A sized body assembled from segments.
pub struct SegmentBody {
    segments: VecDeque<Segment>,
    file: Option<Arc<File>>,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    size: u64,
}

impl SegmentBody {
    pub fn new(segments: Vec<Segment>, file: Option<File>) -> Self {
        let size = segments
            .iter()
            .map(|s| match s {
                Segment::Mem(b) => b.len() as u64,
                Segment::File { len, .. } => *len,
            })
            .sum();
        SegmentBody {
            segments: segments.into(),
            file: file.map(Arc::new),
            pending: None,
            size,
        }
    }

    /// A body that declares `size` but yields nothing: for HEAD, where actix writes
    /// `Content-Length` from the declared size and never sends content.
    pub fn head(size: u64) -> Self {
        SegmentBody {
            segments: VecDeque::new(),
            file: None,
            pending: None,
            size,
        }
    }
}

impl MessageBody for SegmentBody {
    type Error = io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = &mut *self;
        if let Some(task) = this.pending.as_mut() {
            let res = ready!(Pin::new(task).poll(cx));
            this.pending = None;
            return Poll::Ready(Some(match res {
                Ok(r) => r,
                Err(e) => Err(io::Error::other(e)),
            }));
        }
        match this.segments.pop_front() {
            None => Poll::Ready(None),
            Some(Segment::Mem(b)) => Poll::Ready(Some(Ok(b))),
            Some(Segment::File { offset, len }) => {
                let Some(file) = this.file.clone() else {
                    return Poll::Ready(Some(Err(io::Error::other("file segment without file"))));
                };
                let n = len.min(CHUNK);
                if len > n {
                    this.segments.push_front(Segment::File {
                        offset: offset + n,
                        len: len - n,
                    });
                }
                this.pending = Some(spawn_blocking(move || read_exact_at(&file, offset, n)));
                // Poll the new task right away so its waker is registered.
                Pin::new(this).poll_next(cx)
            }
        }
    }
}

/// A short read means the file shrank under us: an error ends the response (the client sees
/// a truncated body rather than wrong bytes labelled with our Content-Length).
fn read_exact_at(file: &File, offset: u64, n: u64) -> io::Result<Bytes> {
    let mut buf = vec![0u8; n as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}
