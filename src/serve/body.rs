//! Response bodies: memory slices and file ranges, in any sequence.
//!
//! [`SegmentBody`] is the body actix-web writes (HTTP/2); the HTTP/1 loop sends the same
//! segments itself, files by `sendfile` (`socket`).
//!
//! One type covers a whole file, a single range and `multipart/byteranges` (part headers
//! are memory segments between file segments). File bytes are read in [`CHUNK`]-sized
//! `pread`s: first on the worker itself with `RWF_NOWAIT`, which only succeeds for data
//! already in the page cache (the usual case) and so never stalls the event loop; anything
//! that would touch the disk goes to the blocking pool.

use actix_web::body::{BodySize, MessageBody};
use actix_web::rt::task::{spawn_blocking, JoinHandle};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::io::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Bytes per read. actix copies each chunk into its write buffer right away, so a chunk
/// that stays in the CPU cache (and below malloc's mmap threshold) beats a big one.
pub const CHUNK: u64 = 64 * 1024;

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

impl Segment {
    pub fn size(&self) -> u64 {
        match self {
            Segment::Mem(b) => b.len() as u64,
            Segment::File { len, .. } => *len,
        }
    }
}

/// A sized body assembled from segments.
pub struct SegmentBody {
    segments: VecDeque<Segment>,
    file: Option<Arc<File>>,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    size: u64,
    /// Reused for every chunk once actix has dropped the previous one.
    buf: BytesMut,
    /// `RWF_NOWAIT` reads are worth trying (cleared when the kernel or filesystem refuses).
    nowait: bool,
}

impl SegmentBody {
    pub fn new(segments: Vec<Segment>, file: Option<File>) -> Self {
        let size = segments.iter().map(Segment::size).sum();
        SegmentBody {
            segments: segments.into(),
            file: file.map(Arc::new),
            pending: None,
            size,
            buf: BytesMut::new(),
            nowait: true,
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
            buf: BytesMut::new(),
            nowait: false,
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
                if this.nowait {
                    this.buf.reserve(n as usize);
                    match pread(&file, &mut this.buf, offset, n as usize, libc::RWF_NOWAIT) {
                        Ok(k) if k > 0 => {
                            let k = k as u64;
                            if len > k {
                                this.segments.push_front(Segment::File {
                                    offset: offset + k,
                                    len: len - k,
                                });
                            }
                            return Poll::Ready(Some(Ok(this.buf.split().freeze())));
                        }
                        // 0 (EOF: the file shrank) is left to the strict read below.
                        Ok(_) => {}
                        Err(e) => match e.raw_os_error() {
                            Some(libc::EAGAIN | libc::EINTR) => {}
                            Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
                                this.nowait = false;
                            }
                            _ => return Poll::Ready(Some(Err(e))),
                        },
                    }
                }
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

/// One `preadv2` of up to `n` bytes appended to `buf`'s spare capacity (never
/// zero-initialised: the kernel writes it, and only the bytes it wrote become part of `buf`).
/// Also the TLS connections' file reads (`stream`).
pub fn pread(
    file: &File,
    buf: &mut BytesMut,
    offset: u64,
    n: usize,
    flags: i32,
) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: n.min(spare.len()),
    };
    let off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: `iov` points into `buf`'s allocation, valid for `iov_len` bytes of writes.
    let r = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, off, flags) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let r = r as usize;
    // SAFETY: the kernel initialised the first `r` spare bytes.
    unsafe { buf.set_len(buf.len() + r) };
    Ok(r)
}

/// A short read means the file shrank under us: an error ends the response (the client sees
/// a truncated body rather than wrong bytes labelled with our Content-Length).
pub fn read_exact_at(file: &File, offset: u64, n: u64) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(n as usize);
    while (buf.len() as u64) < n {
        let got = buf.len() as u64;
        match pread(file, &mut buf, offset + got, (n - got) as usize, 0) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf.freeze())
}
