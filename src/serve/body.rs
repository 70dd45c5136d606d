//! Response bodies: memory slices and file ranges, in any sequence.
//!
//! The HTTP/1 loop sends the segments itself, files by `sendfile` (`socket`); TLS and
//! HTTP/2 read files in `stream::FILE_CHUNK` pieces with [`pread`]: first on the worker
//! itself with `RWF_NOWAIT`, which only succeeds for data already in the page cache (the
//! usual case) and so never stalls the event loop; anything that would touch the disk goes
//! to the blocking pool ([`read_exact_at`]).
//!
//! One type covers a whole file, a single range and `multipart/byteranges` (part headers
//! are memory segments between file segments).

use bytes::{Bytes, BytesMut};
use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

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
