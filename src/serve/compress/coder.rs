//! The encoders: gzip (zlib), br and zstd, fed piece by piece, flushed on demand (what has
//! been fed so far becomes decodable), and finished.
//!
//! Levels are chosen for speed, as nginx's `gzip_comp_level 1` default is: each response is
//! compressed once, while the client waits. Measured on the proxy benchmark's 20 KiB Django
//! page (sample_project `/page/`, 21,259 bytes) and a 24 KiB DRF-style JSON list: bytes out
//! and CPU per response (one thread, pinned, this module's warm states; a shared 2-core
//! machine at load 11, so compare within a column):
//!
//! | coding, level | HTML bytes | µs | JSON bytes | µs |
//! |---|---:|---:|---:|---:|
//! | gzip 1 | 3,652 | 56 | 6,812 | 120 |
//! | gzip 6 (nginx's common `gzip_comp_level 6`) | 3,319 | 200 | 6,482 | 482 |
//! | br 1 | 3,629 | 76 | 6,705 | 118 |
//! | br 2 | 3,434 | 136 | 6,296 | 250 |
//! | br 4 | 3,238 | 225 | 6,413 | 426 |
//! | br 5 | 2,940 | 319 | 6,008 | 638 |
//! | zstd 3 | 3,415 | 42 | 6,349 | 97 |
//!
//! So: gzip [`GZIP_LEVEL`] 1 (nginx's default level: the same bytes nginx sends), br
//! [`BROTLI_QUALITY`] 2 (about gzip 6's size for two thirds of its time or less; 4 costs half
//! as much again for 6 % fewer bytes on HTML and more bytes on JSON), zstd [`ZSTD_LEVEL`] 3
//! (zstd's own default: gzip 6's size in less time than gzip 1).
//!
//! zlib and zstd states are kept per worker thread and reset for the next response
//! ([`POOL_MAX`] of each): setting one up (zeroing zlib's 256 KiB, zstd's tables) cost more
//! than compressing the page itself. The brotli crate's encoder cannot be reset: its memory
//! is kept instead ([`super::memory`]).

use super::memory::{Mem, Pooled};
use crate::serve::negotiate::Encoding;
use brotli::enc::writer::CompressorWriterCustomAlloc;
use brotli::Allocator as _;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::cell::RefCell;
use std::io::{self, Write as _};
use zstd::zstd_safe::{self, CCtx, CParameter, InBuffer, OutBuffer, ResetDirective};

/// zlib level for gzip (nginx's `gzip_comp_level` default).
pub const GZIP_LEVEL: u32 = 1;
/// Brotli quality (0–11).
pub const BROTLI_QUALITY: u32 = 2;
/// Brotli window, log2: 256 KiB. Larger windows gain nothing on pages and cost memory per
/// open stream; smaller ones made this brotli implementation much slower at some qualities.
pub const BROTLI_WINDOW: u32 = 18;
/// zstd level (zstd's default).
pub const ZSTD_LEVEL: i32 = 3;
/// Idle encoder states kept per worker thread, per kind: what a worker compresses at once
/// as a rule. Each costs memory while idle: zlib's about 256 KiB, zstd's up to a few MiB
/// once it has compressed a stream of unknown length (its window, 2 MiB at level 3).
pub const POOL_MAX: usize = 4;

/// An encoder for one response; its state goes back to the thread's pool when dropped.
pub struct Encoder {
    kind: Kind,
}

enum Kind {
    Gzip {
        z: Option<Compress>,
        crc: Crc,
        started: bool,
    },
    Brotli(Option<Box<BrotliWriter>>),
    Zstd(Option<CCtx<'static>>),
}

/// brotli's streaming encoder, in memory kept per thread ([`super::memory`]).
type BrotliWriter = CompressorWriterCustomAlloc<Vec<u8>, Mem<u8>, Pooled>;

thread_local! {
    static DEFLATE: RefCell<Vec<Compress>> = const { RefCell::new(Vec::new()) };
    static ZSTD: RefCell<Vec<CCtx<'static>>> = const { RefCell::new(Vec::new()) };
}

/// The gzip header nginx writes: no name, no mtime, OS Unix.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

fn zstd_err(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)))
}

impl Encoder {
    /// An encoder for `coding` (not identity); `len` is the input's length when known
    /// (zstd writes it in its frame header and sizes its tables to it; brotli's
    /// parameters here do not depend on it).
    pub fn new(coding: Encoding, len: Option<u64>) -> io::Result<Encoder> {
        let kind = match coding {
            Encoding::Gzip => {
                let z = DEFLATE
                    .with_borrow_mut(Vec::pop)
                    .map(|mut z| {
                        z.reset();
                        z
                    })
                    .unwrap_or_else(|| Compress::new(Compression::new(GZIP_LEVEL), false));
                Kind::Gzip {
                    z: Some(z),
                    crc: Crc::new(),
                    started: false,
                }
            }
            Encoding::Brotli => {
                let buffer = Pooled.alloc_cell(4096);
                Kind::Brotli(Some(Box::new(CompressorWriterCustomAlloc::new(
                    Vec::new(),
                    buffer,
                    Pooled,
                    BROTLI_QUALITY,
                    BROTLI_WINDOW,
                ))))
            }
            Encoding::Zstd => {
                let mut c = match ZSTD.with_borrow_mut(Vec::pop) {
                    Some(mut c) => {
                        c.reset(ResetDirective::SessionOnly).map_err(zstd_err)?;
                        c
                    }
                    None => {
                        let mut c = CCtx::create();
                        c.set_parameter(CParameter::CompressionLevel(ZSTD_LEVEL))
                            .map_err(zstd_err)?;
                        c
                    }
                };
                c.set_pledged_src_size(len).map_err(zstd_err)?;
                Kind::Zstd(Some(c))
            }
            Encoding::Identity => return Err(io::Error::other("identity is not an encoder")),
            // Deltas need a dictionary: made at collect time, never on the fly.
            Encoding::Dcb | Encoding::Dcz => {
                return Err(io::Error::other("dcb/dcz are not streaming encoders"))
            }
        };
        Ok(Encoder { kind })
    }

    /// Compresses `input`, appending to `out` what the encoder already gives back (it may
    /// keep some until a flush or the end).
    pub fn write(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match &mut self.kind {
            Kind::Gzip { z, crc, started } => {
                start_gzip(started, out);
                crc.update(input);
                deflate(z.as_mut().expect("live"), input, out, FlushCompress::None)
            }
            Kind::Brotli(w) => {
                let w = w.as_mut().expect("live");
                w.write_all(input)?;
                out.append(w.get_mut());
                Ok(())
            }
            Kind::Zstd(c) => zstd_run(c.as_mut().expect("live"), input, out, Zop::Continue),
        }
    }

    /// Appends to `out` everything needed to decode all input so far.
    pub fn flush(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match &mut self.kind {
            Kind::Gzip { z, started, .. } => {
                start_gzip(started, out);
                deflate(z.as_mut().expect("live"), &[], out, FlushCompress::Sync)
            }
            Kind::Brotli(w) => {
                let w = w.as_mut().expect("live");
                w.flush()?;
                out.append(w.get_mut());
                Ok(())
            }
            Kind::Zstd(c) => zstd_run(c.as_mut().expect("live"), &[], out, Zop::Flush),
        }
    }

    /// Ends the stream: appends the rest and the coding's trailer to `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) -> io::Result<()> {
        match &mut self.kind {
            Kind::Gzip { z, crc, started } => {
                start_gzip(started, out);
                deflate(z.as_mut().expect("live"), &[], out, FlushCompress::Finish)?;
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&crc.amount().to_le_bytes());
                Ok(())
            }
            Kind::Brotli(w) => {
                out.append(&mut w.take().expect("live").into_inner());
                Ok(())
            }
            Kind::Zstd(c) => zstd_run(c.as_mut().expect("live"), &[], out, Zop::End),
        }
    }
}

impl Drop for Encoder {
    /// zlib and zstd states go back to the thread's pool (reset when taken out).
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Gzip { z, .. } => {
                if let Some(z) = z.take() {
                    DEFLATE.with_borrow_mut(|p| {
                        if p.len() < POOL_MAX {
                            p.push(z)
                        }
                    });
                }
            }
            Kind::Zstd(c) => {
                if let Some(c) = c.take() {
                    ZSTD.with_borrow_mut(|p| {
                        if p.len() < POOL_MAX {
                            p.push(c)
                        }
                    });
                }
            }
            Kind::Brotli(_) => {}
        }
    }
}

/// `data` compressed whole with `coding`.
pub fn compress(coding: Encoding, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = Encoder::new(coding, Some(data.len() as u64))?;
    // Page-sized output in one allocation: text shrinks at least threefold as a rule.
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    e.write(data, &mut out)?;
    e.finish(&mut out)?;
    Ok(out)
}

fn start_gzip(started: &mut bool, out: &mut Vec<u8>) {
    if !*started {
        out.extend_from_slice(&GZIP_HEADER);
        *started = true;
    }
}

/// Runs zlib over `input` until it is consumed and, for a flush or the end, until zlib has
/// nothing left to give.
fn deflate(
    z: &mut Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) -> io::Result<()> {
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(input.len() / 2 + 4096);
        }
        let before = z.total_in();
        let status = z
            .compress_vec(input, out, flush)
            .map_err(io::Error::other)?;
        input = &input[(z.total_in() - before) as usize..];
        let room = out.len() < out.capacity();
        match (status, flush) {
            (Status::StreamEnd, _) => return Ok(()),
            // No progress possible: nothing was pending.
            (Status::BufError, _) if room => return Ok(()),
            (_, FlushCompress::Finish) => {}
            // Everything taken, and zlib stopped short of filling the output: all given.
            _ if input.is_empty() && room => return Ok(()),
            _ => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Zop {
    Continue,
    Flush,
    End,
}

fn zstd_run(c: &mut CCtx<'static>, input: &[u8], out: &mut Vec<u8>, op: Zop) -> io::Result<()> {
    use zstd_safe::zstd_sys::ZSTD_EndDirective as D;
    let directive = match op {
        Zop::Continue => D::ZSTD_e_continue,
        Zop::Flush => D::ZSTD_e_flush,
        Zop::End => D::ZSTD_e_end,
    };
    let mut inb = InBuffer::around(input);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(input.len() / 2 + 4096);
        }
        let pos = out.len();
        let mut outb = OutBuffer::around_pos(out, pos);
        let left = c
            .compress_stream2(&mut outb, &mut inb, directive)
            .map_err(zstd_err)?;
        let consumed = inb.pos() == input.len();
        match op {
            Zop::Continue if consumed => return Ok(()),
            Zop::Flush | Zop::End if consumed && left == 0 => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(coding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Brotli => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
            Encoding::Identity | Encoding::Dcb | Encoding::Dcz => unreachable!(),
        }
        out
    }

    /// What a streaming decoder has produced from `data` so far (no end required).
    fn prefix(coding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let mut read = |r: &mut dyn Read| loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        };
        match coding {
            Encoding::Gzip => read(&mut flate2::read::GzDecoder::new(data)),
            Encoding::Brotli => read(&mut brotli::Decompressor::new(data, 4096)),
            Encoding::Zstd => read(&mut zstd::stream::read::Decoder::new(data).unwrap()),
            Encoding::Identity | Encoding::Dcb | Encoding::Dcz => unreachable!(),
        }
        out
    }

    const CODINGS: [Encoding; 3] = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip];

    fn page() -> Vec<u8> {
        (0..2000)
            .map(|i| format!("<li class=\"row\">note {i} by {}</li>\n", i % 7))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn whole_round_trips() {
        let p = page();
        for c in CODINGS {
            let z = compress(c, &p).unwrap();
            assert!(z.len() < p.len() / 4, "{c:?}: {}", z.len());
            assert_eq!(decode(c, &z), p, "{c:?}");
            assert_eq!(decode(c, &compress(c, b"").unwrap()), b"", "{c:?} empty");
        }
        assert_eq!(&compress(Encoding::Gzip, b"x").unwrap()[..10], &GZIP_HEADER);
    }

    /// After each flush the decoder has every byte written so far; pooled states (the second
    /// round) give the same output as new ones.
    #[test]
    fn flushes_make_everything_decodable() {
        let p = page();
        for round in 0..2 {
            for c in CODINGS {
                let mut e = Encoder::new(c, None).unwrap();
                let mut out = Vec::new();
                let mut fed = 0;
                for piece in p.chunks(7000) {
                    e.write(piece, &mut out).unwrap();
                    fed += piece.len();
                    e.flush(&mut out).unwrap();
                    let len = out.len();
                    e.flush(&mut out).unwrap();
                    if c == Encoding::Gzip {
                        assert!(out.len() - len <= 5, "a second flush adds little");
                    }
                    assert_eq!(prefix(c, &out), &p[..fed], "{c:?} round {round}");
                }
                e.finish(&mut out).unwrap();
                assert_eq!(decode(c, &out), p, "{c:?} round {round}");
            }
        }
    }

    #[test]
    fn a_dropped_encoder_leaves_a_clean_state() {
        for c in [Encoding::Gzip, Encoding::Zstd] {
            let mut e = Encoder::new(c, Some(100)).unwrap();
            e.write(b"abandoned half", &mut Vec::new()).unwrap();
            drop(e);
            let z = compress(c, b"next response").unwrap();
            assert_eq!(decode(c, &z), b"next response", "{c:?}");
        }
    }

    #[test]
    fn identity_has_no_encoder() {
        assert!(Encoder::new(Encoding::Identity, None).is_err());
    }
}
