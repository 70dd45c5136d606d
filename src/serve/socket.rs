//! Socket I/O of a plain client connection, for the HTTP/1 loop (`h1`) and the tunnels it
//! opens (`proxy::tunnel`), through `stream::ClientIo`: gathered writes, `sendfile`, reads,
//! and the stream handed to actix's HTTP/2 service with the bytes already read in front of
//! it. A connection is TCP or a Unix socket ([`Client`]); its [`Peer`] is an address or, for
//! a Unix socket, just that.
//!
//! Every write first tries the socket directly (it is almost always writable) and only then
//! waits, bounded by [`SEND_TIMEOUT`] like nginx's `send_timeout`, so a client that stops
//! reading cannot hold a connection forever.

use bytes::{Buf, BytesMut};
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// An accepted client connection.
#[derive(Debug)]
pub enum Client {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// The same call on either kind of stream.
macro_rules! either {
    ($c:expr, $s:ident => $e:expr) => {
        match $c {
            Client::Tcp($s) => $e,
            Client::Unix($s) => $e,
        }
    };
}

impl From<TcpStream> for Client {
    fn from(s: TcpStream) -> Self {
        // nginx's `tcp_nodelay on`: a response in two writes must not wait for a delayed ACK.
        let _ = s.set_nodelay(true);
        Client::Tcp(s)
    }
}

impl From<UnixStream> for Client {
    fn from(s: UnixStream) -> Self {
        Client::Unix(s)
    }
}

impl Client {
    /// Who is at the other end.
    pub fn peer(&self) -> Option<Peer> {
        match self {
            Client::Tcp(s) => s.peer_addr().ok().map(|a| Peer::ip(a.ip())),
            Client::Unix(_) => Some(Peer::Unix),
        }
    }

    /// The address the client reached (TCP only).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Client::Tcp(s) => s.local_addr().ok(),
            Client::Unix(_) => None,
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        either!(self, s => s.try_write_vectored(bufs))
    }

    fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        either!(self, s => s.try_read_buf(buf))
    }

    fn try_io<R>(&self, interest: Interest, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        either!(self, s => s.try_io(interest, f))
    }

    async fn ready_to_write(&self) -> io::Result<()> {
        either!(self, s => s.writable().await)
    }

    async fn readable(&self) -> io::Result<()> {
        either!(self, s => s.readable().await)
    }
}

impl AsRawFd for Client {
    fn as_raw_fd(&self) -> RawFd {
        either!(self, s => s.as_raw_fd())
    }
}

/// The other end of a client connection, as logged and as X-Forwarded-For says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer (an IPv4 address reached over an IPv6 socket is given as IPv4).
    Ip(std::net::IpAddr),
    /// A Unix-socket peer: a process on this host, with no address. Logged as `unix:`
    /// (nginx's `$remote_addr` for one); X-Forwarded-For gets nothing appended for it.
    Unix,
}

impl Peer {
    pub fn ip(ip: std::net::IpAddr) -> Peer {
        Peer::Ip(match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        })
    }

    /// The address, for a TCP peer.
    pub fn addr(self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Ip(a) => Some(a),
            Peer::Unix => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(a) => write!(f, "{a}"),
            Peer::Unix => f.write_str("unix:"),
        }
    }
}

/// Longest wait for the client to take more bytes (nginx's `send_timeout` default).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

async fn writable(io: &Client) -> io::Result<()> {
    match tokio::time::timeout(SEND_TIMEOUT, io.ready_to_write()).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Writes a response head and a body held in memory (one `writev`, as a rule).
pub async fn write_all(io: &Client, head: &[u8], body: &[u8]) -> io::Result<()> {
    write_slices(io, &mut [IoSlice::new(head), IoSlice::new(body)]).await
}

/// Writes one chunk of a `Transfer-Encoding: chunked` body (size line, data, CRLF).
pub async fn write_chunk(io: &Client, data: &[u8]) -> io::Result<()> {
    let size = format!("{:x}\r\n", data.len());
    write_slices(
        io,
        &mut [
            IoSlice::new(size.as_bytes()),
            IoSlice::new(data),
            IoSlice::new(b"\r\n"),
        ],
    )
    .await
}

async fn write_slices(io: &Client, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut rest = slices;
    // Empty slices (a response without a body, nothing to pass on yet) write nothing.
    while rest.iter().any(|s| !s.is_empty()) {
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
pub async fn send_more(io: &Client, mut bytes: &[u8]) -> io::Result<()> {
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

/// Bytes per `sendfile` call (and per page-cache check): one big file cannot hold the
/// worker for long.
const SEND_CHUNK: u64 = 1 << 20;

/// Sends `len` bytes of `file` from `offset` with `sendfile`: no copy through user space.
/// A file that shrank under us ends the response with an error (the client sees a short
/// body, never wrong bytes under our Content-Length).
///
/// `sendfile` reads the disk on the worker when the bytes are not in the page cache, which
/// would stall every connection of that worker. So each chunk is first checked with
/// `cachestat`, and a cold one is read into the cache on the blocking pool (`readahead`)
/// before it is sent.
pub async fn send_file(io: &Client, file: &File, mut offset: u64, mut len: u64) -> io::Result<()> {
    let (sock, src) = (io.as_raw_fd(), file.as_raw_fd());
    let (checked_start, mut checked_to) = (offset, offset);
    while len > 0 {
        if offset >= checked_to {
            if offset > checked_start {
                // A MiB went out without the socket pushing back: let the worker's other
                // connections have a turn before the next one.
                tokio::task::yield_now().await;
            }
            let span = len.min(SEND_CHUNK);
            if !cached(file, offset, span) {
                warm(file, offset, span).await?;
            }
            checked_to = offset + span;
        }
        let r = io.try_io(Interest::WRITABLE, || {
            let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
            let count = len.min(checked_to - offset) as usize;
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

/// `cachestat(2)` answers ENOSYS before Linux 6.5: stop asking.
static NO_CACHESTAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether every page of `len` bytes from `offset` is in the page cache. `true` when the
/// kernel cannot tell (before 6.5): then `sendfile` behaves as nginx's does.
fn cached(file: &File, offset: u64, len: u64) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    if len == 0 || NO_CACHESTAT.load(Relaxed) {
        return true;
    }
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    /// The same number on every architecture (the unified table for calls after 424).
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: valid descriptor and pointers to live, correctly laid out structs.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0,
        )
    };
    if r != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_CACHESTAT.store(true, Relaxed);
        }
        return true;
    }
    let page = page_size();
    let pages = (offset + len - 1) / page - offset / page + 1;
    stat.nr_cache >= pages
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Reads a range into the page cache on the blocking pool (`readahead` returns once the
/// pages are in).
async fn warm(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let file = file.try_clone()?;
    tokio::task::spawn_blocking(move || {
        let off = libc::off64_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: a valid descriptor owned by this closure.
        let r = unsafe { libc::readahead(file.as_raw_fd(), off, len as usize) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    })
    .await
    .map_err(io::Error::other)?
}

/// Ends our side after a `Connection: close` response (the peer sees EOF once the bytes are
/// through; the socket itself closes when dropped).
pub fn finish(io: &Client) {
    // SAFETY: a valid descriptor; shutdown only changes the connection's state.
    unsafe { libc::shutdown(io.as_raw_fd(), libc::SHUT_WR) };
}

/// Room offered to each read of a request head: 8 KiB, so a head with a small body (a form,
/// a JSON POST of a few KiB) arrives in one read, its body is taken from the buffer as it
/// is, without a copy, and no second `recv` is made for the rest (a POST with a 4 KiB body
/// took two at 4 KiB). The buffer is held only while a request is being read (an idle
/// connection holds none), so the size costs no memory per idle connection.
pub const HEAD_READ: usize = 8 * 1024;

/// Room offered to each read of a request body (heads get [`HEAD_READ`] at a time).
pub const BODY_READ: usize = 64 * 1024;

/// Reads what the socket has into `buf`; `Ok(0)` is the peer's end of stream.
pub async fn read_some(io: &Client, buf: &mut BytesMut) -> io::Result<usize> {
    read_more(io, buf, HEAD_READ).await
}

/// [`read_some`] offering at least `reserve` bytes when less than a quarter of it is free.
///
/// A read that did not fill the space offered drained the socket, so its readiness is
/// cleared at once: the next call then waits for epoll instead of spending a `recv` on
/// EAGAIN first (edge-triggered epoll reports any byte that arrives after this read).
///
/// An empty `buf` is let go of while the socket has nothing to read, and taken again when
/// it has (as nginx frees a keep-alive connection's header buffer): an idle connection,
/// new or between requests, holds no buffer. The buffers let go of wait in a short list per
/// worker ([`SPARE`]) for the next connection that reads: without it each request on a
/// keep-alive connection paid a `free` and a `malloc` of 8 KiB, which glibc serves from
/// its general bins (its per-thread cache stops at 1 KiB), about 700 instructions of a
/// proxied request's 29,000 (`benches/proxy/instructions.sh`).
pub async fn read_more(io: &Client, buf: &mut BytesMut, reserve: usize) -> io::Result<usize> {
    loop {
        if buf.capacity() - buf.len() < reserve / 4 {
            if buf.is_empty() {
                io.readable().await?;
            }
            take_spare(buf, reserve);
        }
        let offered = buf.capacity() - buf.len();
        match io.try_read_buf(buf) {
            Ok(n) => {
                if n > 0 && n < offered {
                    let _ = io.try_io(Interest::READABLE, || {
                        Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                    });
                }
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    let_go(buf);
                }
                io.readable().await?;
            }
            Err(e) => return Err(e),
        }
    }
}

thread_local! {
    /// Per worker: head buffers that idle connections let go of, each empty and of
    /// [`HEAD_READ`] to twice as many bytes, for the next connection that reads.
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// At most this many spare buffers per worker (at most 256 KiB): one worker reads one
/// request at a time, so a few cover any number of keep-alive connections, and a burst of
/// connections leaves no more than this behind.
const SPARE_MAX: usize = 16;

/// Room for `reserve` more bytes in `buf`: a spare buffer when `buf` has none.
fn take_spare(buf: &mut BytesMut, reserve: usize) {
    if buf.capacity() == 0 && reserve <= HEAD_READ {
        if let Some(spare) = SPARE.with_borrow_mut(Vec::pop) {
            *buf = spare;
            return;
        }
    }
    buf.reserve(reserve);
}

/// Lets go of an empty `buf`: into [`SPARE`] when its memory is its own (no request body
/// split off it still alive) and of the head size; freed otherwise (a buffer a large body
/// grew is not kept).
fn let_go(buf: &mut BytesMut) {
    let mut b = std::mem::take(buf);
    if b.try_reclaim(HEAD_READ) && b.capacity() <= 2 * HEAD_READ {
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < SPARE_MAX {
                spare.push(b);
            }
        });
    }
}

/// An h2c connection as handed to actix: the bytes the loop read (the preface, perhaps
/// more) come first, then the socket.
pub struct Prefixed {
    pre: BytesMut,
    io: Client,
}

impl Prefixed {
    pub fn new(pre: BytesMut, io: Client) -> Self {
        Prefixed { pre, io }
    }

    pub fn fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.io.local_addr()
    }

    pub fn peer(&self) -> Option<Peer> {
        self.io.peer()
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
        either!(&mut self.io, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(&mut self.io, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(&mut self.io, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        either!(&self.io, s => s.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(&mut self.io, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(&mut self.io, s => Pin::new(s).poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A head buffer let go of is the next one taken (its memory, not a new allocation); one
    /// whose memory a split-off body still holds, or that a body grew, is not kept; at most
    /// [`SPARE_MAX`] wait.
    #[test]
    fn head_buffers_are_reused_within_bounds() {
        let take = || {
            let mut b = BytesMut::new();
            take_spare(&mut b, HEAD_READ);
            b
        };
        let mut b = take();
        let at = b.as_ptr();
        b.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        b.advance(b.len());
        let_go(&mut b);
        assert_eq!(b.capacity(), 0, "an idle connection holds nothing");
        let again = take();
        assert_eq!(again.as_ptr(), at);
        assert!(again.capacity() >= HEAD_READ);

        // A body split off and still alive: its memory is not the buffer's to give.
        let mut shared = take();
        shared.extend_from_slice(&[1; 100]);
        let body = shared.split_to(100).freeze();
        let_go(&mut shared);
        assert!(SPARE.with_borrow(Vec::is_empty));
        drop(body);

        // A buffer a large body grew is freed, not kept.
        let mut big = BytesMut::with_capacity(BODY_READ);
        let_go(&mut big);
        assert!(SPARE.with_borrow(Vec::is_empty));

        for _ in 0..SPARE_MAX + 5 {
            let mut b = BytesMut::with_capacity(HEAD_READ);
            let_go(&mut b);
        }
        assert_eq!(SPARE.with_borrow(Vec::len), SPARE_MAX);
    }

    /// Evicted pages are seen as cold and `warm` brings them back (skipped where the kernel
    /// has no `cachestat`).
    #[tokio::test]
    async fn cold_ranges_are_detected_and_warmed() {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; 3 << 20]).unwrap();
        f.as_file().sync_all().unwrap();
        let file = File::open(f.path()).unwrap();
        // SAFETY: a valid descriptor; DONTNEED only drops clean cached pages.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if cached(&file, 0, 3 << 20) {
            assert!(
                NO_CACHESTAT.load(std::sync::atomic::Ordering::Relaxed),
                "evicted pages reported as cached"
            );
            return;
        }
        warm(&file, 1 << 20, 1 << 20).await.unwrap();
        assert!(cached(&file, 1 << 20, 1 << 20));
        assert!(cached(&file, (1 << 20) + 10, 100));
        assert!(!cached(&file, 0, 3 << 20), "only the warmed range is in");
    }

    #[tokio::test]
    async fn prefixed_reads_the_kept_bytes_first() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().await.unwrap();
        std::io::Write::write_all(&mut c, b" world").unwrap();
        drop(c);
        let mut p = Prefixed::new(BytesMut::from(&b"hello"[..]), s.into());
        let mut all = String::new();
        p.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
