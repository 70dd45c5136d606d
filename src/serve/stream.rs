//! A client connection as the HTTP/1 loop (`h1`) and its tunnels (`proxy::tunnel`) drive
//! it, plain TCP or TLS: [`ClientIo`] is the handful of operations they use, and each kind of
//! connection does them its own way.
//!
//! - **Plain** (`socket::Client`, TCP or a Unix socket): `socket`'s syscalls. A response held in memory is one
//!   `writev`; a file goes by `sendfile`, its head sent with `MSG_MORE` to share a packet.
//! - **TLS** ([`TlsClient`], rustls through tokio-rustls): every byte must pass through
//!   rustls to be encrypted, so `sendfile` is impossible. What replaces it: the file is read
//!   in [`FILE_CHUNK`] pieces into one reused buffer (`preadv2` with `RWF_NOWAIT` on the
//!   worker when the pages are cached, which is the rule; the blocking pool otherwise, as
//!   HTTP/2's `body::SegmentBody` does), and each piece is written through rustls (one copy
//!   into its record buffer, encrypted in place, one `write` of the records). A response head
//!   given to [`ClientIo::send_more`] is held back and written with the first bytes of the
//!   body, so a small file's head and body share one TLS record and one `write`, as they
//!   share one `writev` on plain TCP. (Kernel TLS would give `sendfile` back: rustls can hand
//!   its keys over. Not done: it needs the `tls` kernel module, and the small files that
//!   dominate a static tier come from memory anyway; README "HTTPS" has the figures.)
//!
//! Every wait for the client to take bytes is bounded by [`socket::SEND_TIMEOUT`], TLS or
//! not. Reads are not bounded here: the loop has its own timeouts for heads and bodies.

use super::body;
use super::socket::{self, Client, SEND_TIMEOUT};
use bytes::{Bytes, BytesMut};
use futures_util::future::select;
use std::cell::RefCell;
use std::fs::File;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection. `&self` everywhere: a tunnel reads and writes the client at once
/// from two futures of one task.
// Connections are served on their worker's thread from accept to close and never sent
// elsewhere, so the futures need not be `Send` (the TLS one is not: it borrows a RefCell).
#[allow(async_fn_in_trait)]
pub trait ClientIo {
    /// The TCP socket underneath (TLS or not): the 499 watch polls it for the peer's FIN.
    fn fd(&self) -> RawFd;

    /// The address the client reached.
    fn local_addr(&self) -> Option<SocketAddr>;

    /// Writes a response head and a body held in memory.
    async fn write_all(&self, head: &[u8], body: &[u8]) -> io::Result<()>;

    /// Writes one chunk of a `Transfer-Encoding: chunked` body (size line, data, CRLF).
    async fn write_chunk(&self, data: &[u8]) -> io::Result<()>;

    /// Writes `bytes` that a file range follows ([`ClientIo::send_file`]): they may be held
    /// back to share a packet (or a TLS record) with it.
    async fn send_more(&self, bytes: &[u8]) -> io::Result<()>;

    /// Sends `len` bytes of `file` from `offset`. A file that shrank under us ends the
    /// response with an error (the client sees a short body, never wrong bytes).
    async fn send_file(&self, file: &File, offset: u64, len: u64) -> io::Result<()>;

    /// Reads what has arrived into `buf`, offering at least `reserve` bytes when less than a
    /// quarter of it is free; `Ok(0)` is the peer's end of stream.
    async fn read_more(&self, buf: &mut BytesMut, reserve: usize) -> io::Result<usize>;

    /// [`ClientIo::read_more`] for request heads ([`socket::HEAD_READ`] at a time).
    async fn read_some(&self, buf: &mut BytesMut) -> io::Result<usize> {
        self.read_more(buf, socket::HEAD_READ).await
    }

    /// Ends our side after a `Connection: close` response (the peer sees the end once the
    /// bytes are through; the socket itself closes when dropped).
    async fn finish(&self);

    /// nginx's lingering close, after a response that refused a request before reading all
    /// of it (413 while a body is still coming): our side is already ended
    /// ([`ClientIo::finish`]); what the client still sends is read and dropped until it
    /// closes, pauses [`LINGER_TIMEOUT`], or [`LINGER_TIME`] has passed. Closing at once
    /// with unread bytes would reset the connection, and a reset can destroy the response
    /// before the client reads it.
    ///
    /// `stop` (the server's graceful shutdown) cuts it short: the response has been
    /// written, and a shutdown must not wait up to [`LINGER_TIME`] for a client that keeps
    /// sending.
    async fn linger(&self, stop: impl Future<Output = ()>) {
        let drain = async {
            let end = tokio::time::Instant::now() + LINGER_TIME;
            let mut scratch = BytesMut::with_capacity(socket::BODY_READ);
            loop {
                scratch.clear();
                let by = end.min(tokio::time::Instant::now() + LINGER_TIMEOUT);
                let read = self.read_more(&mut scratch, socket::BODY_READ);
                match tokio::time::timeout_at(by, read).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
        };
        select(pin!(drain), pin!(stop)).await;
    }
}

/// nginx's `lingering_timeout` and `lingering_time`.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);
pub const LINGER_TIME: Duration = Duration::from_secs(30);

impl ClientIo for Client {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Client::local_addr(self)
    }

    async fn write_all(&self, head: &[u8], body: &[u8]) -> io::Result<()> {
        socket::write_all(self, head, body).await
    }

    async fn write_chunk(&self, data: &[u8]) -> io::Result<()> {
        socket::write_chunk(self, data).await
    }

    async fn send_more(&self, bytes: &[u8]) -> io::Result<()> {
        socket::send_more(self, bytes).await
    }

    async fn send_file(&self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        socket::send_file(self, file, offset, len).await
    }

    async fn read_more(&self, buf: &mut BytesMut, reserve: usize) -> io::Result<usize> {
        socket::read_more(self, buf, reserve).await
    }

    async fn finish(&self) {
        socket::finish(self)
    }
}

/// File bytes read per step under TLS: four full TLS records (16 KiB each), so every record
/// but a file's last is full, and the buffer stays in the CPU cache while rustls encrypts it.
pub const FILE_CHUNK: u64 = 64 * 1024;

/// An HTTP/1.1 connection over TLS, after its handshake.
pub struct TlsClient {
    stream: RefCell<TlsStream<TcpStream>>,
    fd: RawFd,
    /// Bytes given to `send_more`, written in front of the next ones.
    held: RefCell<Vec<u8>>,
}

impl TlsClient {
    pub fn new(stream: TlsStream<TcpStream>) -> Self {
        let fd = stream.get_ref().0.as_raw_fd();
        TlsClient {
            stream: RefCell::new(stream),
            fd,
            held: RefCell::new(Vec::new()),
        }
    }

    /// Runs one poll of the stream (the borrow lasts that poll only: a tunnel's two
    /// directions poll it in turn).
    fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        f: impl FnOnce(Pin<&mut TlsStream<TcpStream>>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        f(Pin::new(&mut *self.stream.borrow_mut()), cx)
    }

    /// Runs a write-side operation: tried once at once (the socket almost always takes the
    /// bytes, and no timer is set up for nothing), then waited for within
    /// [`SEND_TIMEOUT`].
    async fn bounded<T>(
        &self,
        mut op: impl FnMut(&mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> io::Result<T> {
        if let Poll::Ready(r) = op(&mut Context::from_waker(Waker::noop())) {
            return r;
        }
        match tokio::time::timeout(SEND_TIMEOUT, poll_fn(op)).await {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes every slice (after the held bytes) through rustls and flushes the records.
    async fn write_slices(&self, slices: &[&[u8]]) -> io::Result<()> {
        let mut held = std::mem::take(&mut *self.held.borrow_mut());
        let result = {
            let mut all: Vec<IoSlice<'_>> = Vec::with_capacity(slices.len() + 1);
            all.push(IoSlice::new(&held));
            all.extend(slices.iter().map(|s| IoSlice::new(s)));
            let mut rest = &mut all[..];
            async {
                while rest.iter().any(|s| !s.is_empty()) {
                    let n = self
                        .bounded(|cx| self.poll(cx, |s, cx| s.poll_write_vectored(cx, rest)))
                        .await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    IoSlice::advance_slices(&mut rest, n);
                }
                self.bounded(|cx| self.poll(cx, |s, cx| s.poll_flush(cx)))
                    .await
            }
            .await
        };
        // The buffer's capacity is kept for the next head.
        held.clear();
        let mut slot = self.held.borrow_mut();
        if slot.is_empty() {
            *slot = held;
        }
        result
    }
}

impl ClientIo for TlsClient {
    fn fd(&self) -> RawFd {
        self.fd
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.borrow().get_ref().0.local_addr().ok()
    }

    async fn write_all(&self, head: &[u8], body: &[u8]) -> io::Result<()> {
        self.write_slices(&[head, body]).await
    }

    async fn write_chunk(&self, data: &[u8]) -> io::Result<()> {
        let size = format!("{:x}\r\n", data.len());
        self.write_slices(&[size.as_bytes(), data, b"\r\n"]).await
    }

    async fn send_more(&self, bytes: &[u8]) -> io::Result<()> {
        self.held.borrow_mut().extend_from_slice(bytes);
        Ok(())
    }

    /// The buffer lives for one response: an idle keep-alive connection holds none.
    async fn send_file(&self, file: &File, mut offset: u64, mut len: u64) -> io::Result<()> {
        let mut buf = BytesMut::with_capacity(len.min(FILE_CHUNK) as usize);
        let mut nowait = true;
        while len > 0 {
            let n = len.min(FILE_CHUNK);
            let piece = read_file(file, &mut buf, offset, n, &mut nowait).await?;
            self.write_slices(&[&piece]).await?;
            offset += piece.len() as u64;
            len -= piece.len() as u64;
        }
        Ok(())
    }

    async fn read_more(&self, buf: &mut BytesMut, reserve: usize) -> io::Result<usize> {
        if buf.capacity() - buf.len() < reserve / 4 {
            buf.reserve(reserve);
        }
        poll_fn(|cx| {
            let spare = buf.spare_capacity_mut();
            let mut rb = ReadBuf::uninit(spare);
            match self.poll(cx, |s, cx| s.poll_read(cx, &mut rb)) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    // SAFETY: `poll_read` initialised the first `n` spare bytes.
                    unsafe { buf.set_len(buf.len() + n) };
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// TLS's end of data (`close_notify`), then the TCP half-close.
    async fn finish(&self) {
        let _ = self
            .bounded(|cx| self.poll(cx, |s, cx| s.poll_shutdown(cx)))
            .await;
    }
}

/// One piece of a file (HTTP/1 over TLS, HTTP/2): from the page cache on the worker, else on the blocking pool.
pub(crate) async fn read_file(
    file: &File,
    buf: &mut BytesMut,
    offset: u64,
    n: u64,
    nowait: &mut bool,
) -> io::Result<Bytes> {
    buf.clear();
    buf.reserve(n as usize);
    if *nowait {
        match body::pread(file, buf, offset, n as usize, libc::RWF_NOWAIT) {
            Ok(k) if k > 0 => return Ok(buf.split().freeze()),
            // 0 (EOF: the file shrank) is left to the strict read below.
            Ok(_) => {}
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => {}
                Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => *nowait = false,
                _ => return Err(e),
            },
        }
    }
    let file = file.try_clone()?;
    tokio::task::spawn_blocking(move || body::read_exact_at(&file, offset, n))
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::testing::{self_signed, AcceptAnything};
    use crate::tls::{Accepted, SniResolver, Source, TlsAcceptor, TlsAlpnChallenges};
    use rustls::pki_types::ServerName;
    use std::io::{Read as _, Write as _};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A [`TlsClient`] on loopback and, on the other end, the raw TCP socket with the
    /// client's TLS state beside it: the test sees the records as they leave the server.
    /// The server sends no session tickets, so nothing but what the test writes follows the
    /// handshake.
    async fn pair() -> (TlsClient, TcpStream, rustls::ClientConnection) {
        let made = self_signed(&["s.test"], 2020, 2090);
        let loaded = crate::tls::certs::from_pem(
            made.cert_pem.as_bytes(),
            std::path::Path::new("s.crt"),
            made.key_pem.as_bytes(),
            std::path::Path::new("s.key"),
            std::time::SystemTime::now(),
        )
        .unwrap();
        let resolver = SniResolver::new(TlsAlpnChallenges::new());
        resolver.set(Source::File(0), loaded);
        let mut config = crate::tls::config::server_config(resolver, Default::default()).unwrap();
        Arc::get_mut(&mut config).unwrap().send_tls13_tickets = 0;
        let acceptor = TlsAcceptor::new(config);
        let client_config =
            rustls::ClientConfig::builder_with_provider(crate::tls::certs::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything))
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (server, client) = tokio::join!(
            async { acceptor.accept(l.accept().await.unwrap().0).await.unwrap() },
            async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let name = ServerName::try_from("s.test").unwrap();
                connector.connect(name, tcp).await.unwrap()
            }
        );
        let Accepted::Http { stream, .. } = server else {
            panic!("not an HTTP connection");
        };
        let (tcp, conn) = client.into_inner();
        (TlsClient::new(*stream), tcp, conn)
    }

    /// Gives `bytes` to the client's TLS state (`read_tls` takes a few KiB per call).
    fn feed(conn: &mut rustls::ClientConnection, mut bytes: &[u8]) -> rustls::IoState {
        let mut state = conn.process_new_packets().unwrap();
        while !bytes.is_empty() {
            conn.read_tls(&mut bytes).unwrap();
            state = conn.process_new_packets().unwrap();
        }
        state
    }

    /// Reads records until `want` bytes of plaintext have come: (records, plaintext).
    async fn records(
        tcp: &mut TcpStream,
        conn: &mut rustls::ClientConnection,
        want: usize,
    ) -> (usize, Vec<u8>) {
        let (mut raw, mut plain, mut count) = (Vec::new(), Vec::new(), 0);
        let mut chunk = vec![0u8; 65536];
        while plain.len() < want {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {} bytes of {want}", plain.len());
            raw.extend_from_slice(&chunk[..n]);
            // Whole records only: 5-byte header (type, version, length), then the payload.
            while raw.len() >= 5 {
                let len = u16::from_be_bytes([raw[3], raw[4]]) as usize;
                if raw.len() < 5 + len {
                    break;
                }
                assert_eq!(raw[0], 23, "application data");
                let record: Vec<u8> = raw.drain(..5 + len).collect();
                count += 1;
                feed(conn, &record);
                let mut got = Vec::new();
                let _ = conn.reader().read_to_end(&mut got);
                plain.extend_from_slice(&got);
            }
        }
        assert!(raw.is_empty(), "a partial record left");
        (count, plain)
    }

    #[tokio::test]
    async fn a_head_and_its_body_share_records_and_reads_and_the_close_work() {
        let (io, mut tcp, mut conn) = pair().await;

        // A head and a body from memory: one record.
        let head = vec![b'h'; 100];
        let body = vec![b'b'; 700];
        io.write_all(&head, &body).await.unwrap();
        let (n, plain) = records(&mut tcp, &mut conn, 800).await;
        assert_eq!(n, 1);
        assert_eq!(plain, [&head[..], &body[..]].concat());

        // A head held back (`send_more`), then a file range: the head rides in the first
        // record with the file's first bytes, and every record but the last is full.
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        f.write_all(&data).unwrap();
        io.send_more(&head).await.unwrap();
        io.send_file(&f, 5, 40_000).await.unwrap();
        let (n, plain) = records(&mut tcp, &mut conn, 40_100).await;
        assert_eq!(n, 40_100usize.div_ceil(16_384));
        assert_eq!(plain, [&head[..], &data[5..40_005]].concat());
        // A file that ends before the range does: an error, not wrong bytes.
        let e = io.send_file(&f, 45_000, 10_000).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        // Reads: what the client sends arrives whole.
        conn.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        AsyncWriteExt::write_all(&mut tcp, &out).await.unwrap();
        let mut buf = BytesMut::new();
        while buf.len() < 18 {
            assert!(io.read_some(&mut buf).await.unwrap() > 0);
        }
        assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n\r\n");

        // The close: close_notify, then the end of the TCP stream.
        io.finish().await;
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await.unwrap();
        assert!(feed(&mut conn, &rest).peer_has_closed());
    }
}
