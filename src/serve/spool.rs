//! Bodies held on their way through: a request body going to an upstream ([`Spool`]) and a
//! response read ahead of a slow client ([`Backlog`], driven by [`ReadAhead`]).
//!
//! Request bodies on their way to an upstream: kept in memory up to [`IN_MEMORY`] bytes and
//! beyond that in a nameless temporary file, as nginx keeps them in `client_body_buffer_size`
//! and then in `client_body_temp_path`. Bodies are read whole before the upstream is
//! contacted (a slow client never ties up a sync worker), so without the file an upload
//! would cost its size in memory: `--max-body 4G` and a few concurrent uploads would take
//! the host's memory.
//!
//! The file is made with `O_TMPFILE` in `$TMPDIR` (default `/tmp`): it has no name, so it
//! is gone when closed, also when staticd is killed. Where the filesystem cannot make such
//! a file, a named one is made and unlinked at once. It is written and read with plain
//! blocking calls on the worker thread, as nginx writes its temp files (without
//! `aio threads`): the writes go to the page cache.

use bytes::{Bytes, BytesMut};
use futures_util::future::{select, Either};
use futures_util::StreamExt as _;
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most of a body kept in memory (nginx's `client_body_buffer_size` is 16 KiB; a
/// form post or a JSON API call stays well below this, a file upload does not).
pub const IN_MEMORY: usize = 64 * 1024;

/// A complete request body.
#[derive(Debug)]
pub enum Spooled {
    Mem(Bytes),
    /// `len` bytes from the start of `file`.
    File {
        file: File,
        len: u64,
    },
}

impl Spooled {
    pub fn empty() -> Spooled {
        Spooled::Mem(Bytes::new())
    }

    pub fn len(&self) -> u64 {
        match self {
            Spooled::Mem(b) => b.len() as u64,
            Spooled::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes when the body is in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        match self {
            Spooled::Mem(b) => Some(b),
            Spooled::File { .. } => None,
        }
    }

    /// Reads into `buf` from `offset`; the bytes read (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let end = self.len();
        if offset >= end {
            return Ok(0);
        }
        let want = buf.len().min((end - offset) as usize);
        match self {
            Spooled::Mem(b) => {
                buf[..want].copy_from_slice(&b[offset as usize..offset as usize + want]);
                Ok(want)
            }
            Spooled::File { file, .. } => file.read_at(&mut buf[..want], offset),
        }
    }
}

/// A body being read: bytes go to [`Spool::buf`], then [`Spool::settle`] moves them to the
/// file once memory holds more than [`IN_MEMORY`].
pub struct Spool {
    mem: BytesMut,
    file: Option<(File, u64)>,
}

impl Spool {
    /// `hint`: the declared length, if any (memory is reserved up to [`IN_MEMORY`]).
    pub fn new(hint: u64) -> Spool {
        Spool {
            mem: BytesMut::with_capacity(hint.min(IN_MEMORY as u64) as usize),
            file: None,
        }
    }

    /// Where the next decoded bytes go.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.mem
    }

    /// The bytes taken so far.
    pub fn len(&self) -> u64 {
        self.file.as_ref().map_or(0, |(_, n)| *n) + self.mem.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the bytes in memory to the file once they are over [`IN_MEMORY`].
    pub fn settle(&mut self) -> Result<(), SpoolError> {
        if self.mem.len() > IN_MEMORY {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SpoolError> {
        let dir = std::env::temp_dir();
        if self.file.is_none() {
            let file = temp_file(&dir).map_err(|e| SpoolError {
                dir: dir.clone(),
                e,
            })?;
            self.file = Some((file, 0));
        }
        let (file, written) = self.file.as_mut().expect("just made");
        file.write_all(&self.mem).map_err(|e| SpoolError {
            dir: dir.clone(),
            e,
        })?;
        *written += self.mem.len() as u64;
        self.mem.clear();
        Ok(())
    }

    /// The whole body.
    pub fn finish(mut self) -> Result<Spooled, SpoolError> {
        if self.file.is_none() {
            return Ok(Spooled::Mem(self.mem.freeze()));
        }
        self.flush()?;
        let (file, len) = self.file.take().expect("a file");
        Ok(Spooled::File { file, len })
    }
}

/// A response body read ahead of a slow client, as nginx's `proxy_buffering` holds it
/// (`proxy_buffers`, then `proxy_temp_path` up to `proxy_max_temp_file_size`, 1 GiB): the
/// upstream's answer is taken as fast as the upstream sends it, so a client on a slow
/// link does not hold a gunicorn sync worker for as long as it takes to download. Up to
/// [`AHEAD_IN_MEMORY`] bytes wait in memory, more in a nameless temporary file (as
/// [`Spool`]'s), [`AHEAD_MAX`] in all; past that the upstream is read no faster than the
/// client. Nothing is delayed: the client is written what is there as soon as it can take
/// it, so a server-sent event stream flows as before. If the file cannot be made or
/// written (a full `$TMPDIR`), the response goes on without reading ahead: a warning, not
/// a cut answer.
#[derive(Default)]
pub struct Backlog {
    /// The oldest bytes, in order.
    mem: VecDeque<Bytes>,
    mem_len: usize,
    /// Newer bytes than all of `mem`'s, between `read` and `written` in the file.
    file: Option<File>,
    read: u64,
    written: u64,
    /// The file failed: no more is read ahead for this response.
    broken: bool,
    /// The bytes that came as the file failed, the newest of all.
    stuck: VecDeque<Bytes>,
    stuck_len: usize,
}

/// What a [`Backlog`] keeps in memory before it uses a file.
pub const AHEAD_IN_MEMORY: usize = 256 * 1024;
/// The most a [`Backlog`] holds (nginx's `proxy_max_temp_file_size`).
pub const AHEAD_MAX: u64 = 1 << 30;
/// The most taken from the file at once.
const AHEAD_READ: usize = 64 * 1024;

impl Backlog {
    pub fn len(&self) -> u64 {
        (self.mem_len + self.stuck_len) as u64 + (self.written - self.read)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No more is taken in: the upstream waits for the client.
    pub fn is_full(&self) -> bool {
        self.broken || self.len() >= AHEAD_MAX
    }

    /// Adds `bytes` after everything held. Should the file fail, they are kept in memory
    /// and the backlog is full from then on (the failure is logged).
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let on_file = self.written > self.read;
        if !self.broken && !on_file && self.mem_len + bytes.len() <= AHEAD_IN_MEMORY {
            self.mem_len += bytes.len();
            self.mem.push_back(bytes);
            return;
        }
        if !self.broken {
            match self.write_to_file(&bytes) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!("{e}: the rest of this response is read from the upstream no faster than the client takes it");
                    self.broken = true;
                }
            }
        }
        self.stuck_len += bytes.len();
        self.stuck.push_back(bytes);
    }

    fn write_to_file(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        let dir = std::env::temp_dir();
        let failed = |e| SpoolError {
            dir: dir.clone(),
            e,
        };
        if self.file.is_none() {
            self.file = Some(temp_file(&dir).map_err(failed)?);
        }
        let file = self.file.as_ref().expect("just made");
        file.write_all_at(bytes, self.written).map_err(failed)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// The oldest bytes held, if any.
    pub fn take(&mut self) -> io::Result<Option<Bytes>> {
        if let Some(b) = self.mem.pop_front() {
            self.mem_len -= b.len();
            return Ok(Some(b));
        }
        let (Some(file), true) = (self.file.as_ref(), self.written > self.read) else {
            let b = self.stuck.pop_front();
            self.stuck_len -= b.as_ref().map_or(0, Bytes::len);
            return Ok(b);
        };
        let n = ((self.written - self.read) as usize).min(AHEAD_READ);
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, self.read)?;
        self.read += n as u64;
        if self.read == self.written {
            // Drained: the file is written from its start again.
            (self.read, self.written) = (0, 0);
        }
        Ok(Some(buf.into()))
    }
}

/// A streamed answer on its way to a client, read ahead of it into a [`Backlog`]: the one
/// relay loop of HTTP/1 and h2, which differ only in how they write a piece.
pub struct ReadAhead<'a, S: ?Sized> {
    stream: &'a mut S,
    backlog: Backlog,
    /// The stream's end, or its failure: given out once what came before it is.
    ended: Option<io::Result<()>>,
    /// `X-Accel-Buffering: no`: the upstream is read no faster than the client takes it.
    unbuffered: bool,
}

impl<'a, S: futures_util::Stream<Item = io::Result<Bytes>> + Unpin + ?Sized> ReadAhead<'a, S> {
    pub fn new(stream: &'a mut S, unbuffered: bool) -> ReadAhead<'a, S> {
        ReadAhead {
            stream,
            backlog: Backlog::default(),
            ended: None,
            unbuffered,
        }
    }

    /// The next piece to write, never empty: what is held first, then the stream's. `None`
    /// at the stream's end; an error once the stream failed (after every piece that came
    /// before the failure) or when held bytes cannot be read back.
    pub async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            let piece = match self.backlog.take() {
                Ok(Some(b)) => Ok(b),
                Ok(None) => match self.ended.take() {
                    Some(Ok(())) => return None,
                    Some(Err(e)) => Err(e),
                    None => self.stream.next().await?,
                },
                Err(e) => Err(io::Error::new(
                    e.kind(),
                    format!("reading back a response held for a slow client: {e}"),
                )),
            };
            match piece {
                Ok(b) if b.is_empty() => continue,
                piece => return Some(piece),
            }
        }
    }

    /// Drives `write` (of a piece [`next`](Self::next) gave) to its end, reading the stream
    /// ahead meanwhile, unless the backlog is full, the stream has ended, or the upstream
    /// asked for no buffering. Nothing waits for the read-ahead: the write's end ends it.
    pub async fn while_writing<T>(&mut self, write: impl Future<Output = T>) -> T {
        let mut write = std::pin::pin!(write);
        loop {
            if self.unbuffered || self.ended.is_some() || self.backlog.is_full() {
                return write.await;
            }
            match select(write.as_mut(), self.stream.next()).await {
                Either::Left((done, _)) => return done,
                Either::Right((Some(Ok(b)), _)) => self.backlog.push(b),
                Either::Right((Some(Err(e)), _)) => self.ended = Some(Err(e)),
                Either::Right((None, _)) => self.ended = Some(Ok(())),
            }
        }
    }
}

/// The temporary file could not be made or written.
#[derive(Debug)]
pub struct SpoolError {
    pub dir: PathBuf,
    pub e: io::Error,
}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot keep a request body in a temporary file in {} ($TMPDIR): {}",
            self.dir.display(),
            self.e
        )
    }
}

/// A file in `dir` that has no name.
fn temp_file(dir: &Path) -> io::Result<File> {
    let opts = || {
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).mode(0o600);
        o
    };
    match opts().custom_flags(libc::O_TMPFILE).open(dir) {
        Ok(f) => return Ok(f),
        // Filesystems without O_TMPFILE say so in one of these ways.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) => {}
        Err(e) => return Err(e),
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".staticd-body-{}-{n}", std::process::id()));
        match opts().create_new(true).open(&path) {
            Ok(f) => {
                std::fs::remove_file(&path)?;
                return Ok(f);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::Stream;
    use std::cell::Cell;
    use std::rc::Rc;

    fn read_all(s: &Spooled) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            let n = s.read_at(&mut buf, out.len() as u64).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_small_body_stays_in_memory() {
        let mut s = Spool::new(5);
        s.buf().extend_from_slice(b"hello");
        s.settle().unwrap();
        let body = s.finish().unwrap();
        assert_eq!(body.in_memory(), Some(&b"hello"[..]));
        assert_eq!(read_all(&body), b"hello");
    }

    #[test]
    fn a_large_body_goes_to_a_file_with_every_byte_in_order() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut s = Spool::new(data.len() as u64);
        for piece in data.chunks(10_000) {
            s.buf().extend_from_slice(piece);
            s.settle().unwrap();
            assert!(s.buf().len() <= IN_MEMORY + 10_000, "memory stays bounded");
        }
        assert_eq!(s.len(), data.len() as u64);
        let body = s.finish().unwrap();
        assert!(matches!(body, Spooled::File { .. }));
        assert_eq!(body.len(), data.len() as u64);
        assert_eq!(read_all(&body), data);
    }

    /// Everything pushed comes out in order, across memory and the file, also when
    /// taking and pushing interleave.
    #[test]
    fn a_backlog_keeps_the_order_across_memory_and_file() {
        let mut b = Backlog::default();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut n = 0u32;
        for round in 0..40 {
            for _ in 0..(round % 7 + 1) {
                let piece: Vec<u8> = (0..50_000).map(|i| ((n + i) % 253) as u8).collect();
                n += 1;
                expected.extend_from_slice(&piece);
                b.push(piece.into());
            }
            for _ in 0..(round % 5) {
                if let Some(x) = b.take().unwrap() {
                    got.extend_from_slice(&x);
                }
            }
        }
        assert!(b.file.is_some(), "the file was never used");
        while let Some(x) = b.take().unwrap() {
            got.extend_from_slice(&x);
        }
        assert!(b.is_empty());
        assert!(got == expected, "bytes out of order or lost");
    }

    /// A file that cannot be written: what was pushed still comes out, in order, and the
    /// backlog takes no more.
    #[test]
    fn a_backlog_whose_file_fails_keeps_every_byte_and_stops() {
        let mut b = Backlog::default();
        let first = Bytes::from(vec![1u8; AHEAD_IN_MEMORY]);
        b.push(first.clone());
        assert!(!b.is_full());
        // A file open for reading only: every write to it fails.
        b.file = Some(File::open("/proc/self/status").unwrap());
        let second = Bytes::from(vec![2u8; 1000]);
        b.push(second.clone());
        assert!(b.is_full(), "still reading ahead after the file failed");
        assert_eq!(b.take().unwrap(), Some(first));
        assert_eq!(b.take().unwrap(), Some(second));
        assert_eq!(b.take().unwrap(), None);
        assert!(b.is_full());
    }

    /// A stream of `pieces` (an `Err` for each `None`), and how many it has given.
    fn stream_of(
        pieces: &[Option<&'static [u8]>],
    ) -> (
        impl Stream<Item = io::Result<Bytes>> + Unpin,
        Rc<Cell<usize>>,
    ) {
        let given = Rc::new(Cell::new(0));
        let counted = given.clone();
        let items: Vec<_> = pieces
            .iter()
            .map(|p| {
                p.map(Bytes::from_static)
                    .ok_or_else(|| io::Error::other("cut"))
            })
            .collect();
        let stream =
            futures_util::stream::iter(items).inspect(move |_| counted.set(counted.get() + 1));
        (stream, given)
    }

    /// A write that is not done until it has been polled `polls` times.
    fn slow_write(polls: usize) -> impl Future<Output = &'static str> {
        let mut left = polls;
        std::future::poll_fn(move |cx| {
            if left == 0 {
                return std::task::Poll::Ready("written");
            }
            left -= 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn read_ahead_takes_the_stream_while_a_write_waits_and_gives_it_back_in_order() {
        let pieces = [
            Some(&b"a"[..]),
            Some(b""),
            Some(b"b"),
            Some(b"c"),
            Some(b"d"),
        ];
        let (mut stream, given) = stream_of(&pieces);
        run(async {
            let mut ahead = ReadAhead::new(&mut stream, false);
            assert_eq!(ahead.next().await.unwrap().unwrap(), "a");
            // The write is polled first each time: it is pending twice, so two more
            // pieces are read meanwhile (the empty one is held as nothing).
            assert_eq!(ahead.while_writing(slow_write(2)).await, "written");
            assert_eq!(given.get(), 3);
            let mut rest = Vec::new();
            while let Some(p) = ahead.next().await {
                rest.push(p.unwrap());
            }
            assert_eq!(rest, ["b", "c", "d"]);
        });
    }

    #[test]
    fn read_ahead_gives_a_failure_after_what_came_before_it() {
        let (mut stream, _) = stream_of(&[Some(b"a"), Some(b"b"), None, Some(b"never")]);
        run(async {
            let mut ahead = ReadAhead::new(&mut stream, false);
            assert_eq!(ahead.next().await.unwrap().unwrap(), "a");
            ahead.while_writing(slow_write(5)).await;
            assert_eq!(ahead.next().await.unwrap().unwrap(), "b");
            assert_eq!(ahead.next().await.unwrap().unwrap_err().to_string(), "cut");
        });
    }

    #[test]
    fn unbuffered_reads_no_further_than_the_client() {
        let (mut stream, given) = stream_of(&[Some(b"a"), Some(b"b"), Some(b"c")]);
        run(async {
            let mut ahead = ReadAhead::new(&mut stream, true);
            assert_eq!(ahead.next().await.unwrap().unwrap(), "a");
            ahead.while_writing(slow_write(5)).await;
            assert_eq!(given.get(), 1);
            assert_eq!(ahead.next().await.unwrap().unwrap(), "b");
        });
    }

    #[test]
    fn the_file_has_no_name() {
        let f = temp_file(&std::env::temp_dir()).unwrap();
        let link = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&f)
        ))
        .unwrap();
        assert!(!link.exists(), "{} is still reachable", link.display());
    }
}
