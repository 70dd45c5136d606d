//! Socket I/O for the fast path: gathered writes, `sendfile`, and the stream handed to
//! actix with the bytes already read in front of it.
//!
//! Every write first tries the socket directly (it is almost always writable) and only then
//! waits, bounded by [`SEND_TIMEOUT`] like nginx's `send_timeout`, so a client that stops
//! reading cannot hold a connection forever.

use bytes::{Buf, BytesMut};
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Longest wait for the client to take more bytes (nginx's `send_timeout` default).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

async fn writable(io: &TcpStream) -> io::Result<()> {
    match tokio::time::timeout(SEND_TIMEOUT, io.writable()).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Writes a response head and a body held in memory (one `writev`, as a rule).
pub async fn write_all(io: &TcpStream, head: &[u8], body: &[u8]) -> io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(body)];
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match io.try_write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(io).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `bytes` with `MSG_MORE`: the kernel holds a short head back to share a packet with
/// the file bytes that follow it.
pub async fn send_more(io: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    let fd = io.as_raw_fd();
    while !bytes.is_empty() {
        let r = io.try_io(Interest::WRITABLE, || {
            // SAFETY: `bytes` is valid for reads of its length.
            let n = unsafe {
                libc::send(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(io).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `offset` with `sendfile`: no copy through user space.
/// A file that shrank under us ends the response with an error (the client sees a short
/// body, never wrong bytes under our Content-Length).
pub async fn send_file(
    io: &TcpStream,
    file: &File,
    mut offset: u64,
    mut len: u64,
) -> io::Result<()> {
    let (sock, src) = (io.as_raw_fd(), file.as_raw_fd());
    while len > 0 {
        let r = io.try_io(Interest::WRITABLE, || {
            let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
            // Bounded per call so one big file cannot hold the worker for long.
            let count = len.min(1 << 20) as usize;
            // SAFETY: valid descriptors; `off` is a local the kernel updates.
            let n = unsafe { libc::sendfile(sock, src, &mut off, count) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match r {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                offset += n;
                len -= n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(io).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Ends our side after a `Connection: close` response (the peer sees EOF once the bytes are
/// through; the socket itself closes when dropped).
pub fn finish(io: &TcpStream) {
    // SAFETY: a valid descriptor; shutdown only changes the connection's state.
    unsafe { libc::shutdown(io.as_raw_fd(), libc::SHUT_WR) };
}

/// Reads what the socket has into `buf`; `Ok(0)` is the peer's end of stream.
pub async fn read_some(io: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    loop {
        match io.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.readable().await?,
            r => return r,
        }
    }
}

/// The connection as handed to actix: the bytes the fast path read but did not answer come
/// first, then the socket.
pub struct Prefixed {
    pre: BytesMut,
    io: TcpStream,
}

impl Prefixed {
    pub fn new(pre: BytesMut, io: TcpStream) -> Self {
        Prefixed { pre, io }
    }

    pub fn fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.io.local_addr()
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            buf.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn prefixed_reads_the_kept_bytes_first() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().await.unwrap();
        std::io::Write::write_all(&mut c, b" world").unwrap();
        drop(c);
        let mut p = Prefixed::new(BytesMut::from(&b"hello"[..]), s);
        let mut all = String::new();
        p.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
