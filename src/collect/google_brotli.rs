//! Google's C brotli encoder, driven exactly as Python's `brotli.compress` drives it.
//!
//! WhiteNoise calls `brotli.compress(data)` (quality 11, window 22, generic mode), which feeds the
//! whole input with `BROTLI_OPERATION_PROCESS` and then `BROTLI_OPERATION_FINISH`. Doing the
//! same with the same C library gives the same bytes, so staticd's `.br` files, and the 95 %
//! keep/skip decisions made on their sizes, equal WhiteNoise's. The pure-Rust `brotli` crate
//! is a port of an older encoder and differs on about one file in eight by a few bytes (a
//! handful of files per 50,000 then land on the other side of 95 %). Speed is no reason either
//! way: both encode about 0.63 MB/s at quality 11 on one core here (README "Compression").
use compu_brotli_sys as ffi;

/// `data` encoded at `quality` and window `lgwin`, as `brotli.compress(data, quality=quality,
/// lgwin=lgwin)` encodes it. Panics only if the encoder cannot allocate its state, like any
/// other allocation failure.
pub fn compress(data: &[u8], quality: u32, lgwin: u32) -> Vec<u8> {
    let mut enc = Encoder::new(quality, lgwin);
    let mut out = Vec::with_capacity(data.len() / 3 + 64);
    enc.run(
        ffi::BrotliEncoderOperation_BROTLI_OPERATION_PROCESS,
        data,
        &mut out,
    );
    enc.run(
        ffi::BrotliEncoderOperation_BROTLI_OPERATION_FINISH,
        &[],
        &mut out,
    );
    out
}

/// Owns one `BrotliEncoderState`; destroyed on drop, unwinding included.
struct Encoder(*mut ffi::BrotliEncoderState);

impl Encoder {
    fn new(quality: u32, lgwin: u32) -> Encoder {
        // SAFETY: null allocator functions select the library's malloc/free.
        let state = unsafe { ffi::BrotliEncoderCreateInstance(None, None, std::ptr::null_mut()) };
        assert!(!state.is_null(), "brotli: cannot allocate the encoder");
        let enc = Encoder(state);
        for (param, value) in [
            (
                ffi::BrotliEncoderParameter_BROTLI_PARAM_MODE,
                ffi::BrotliEncoderMode_BROTLI_MODE_GENERIC as u32,
            ),
            (ffi::BrotliEncoderParameter_BROTLI_PARAM_QUALITY, quality),
            (ffi::BrotliEncoderParameter_BROTLI_PARAM_LGWIN, lgwin),
        ] {
            // SAFETY: a live state, before any input (the only time parameters may change).
            let ok = unsafe { ffi::BrotliEncoderSetParameter(enc.0, param, value) };
            assert!(ok != 0, "brotli: parameter {param} = {value} rejected");
        }
        enc
    }

    /// Runs `op` until `input` is consumed and, for FINISH, the stream is complete, appending
    /// everything the encoder emits to `out`.
    fn run(&mut self, op: ffi::BrotliEncoderOperation, input: &[u8], out: &mut Vec<u8>) {
        let mut avail_in = input.len();
        let mut next_in = input.as_ptr();
        loop {
            let mut avail_out = 0usize;
            // SAFETY: `next_in`/`avail_in` describe the unread rest of `input`, which outlives
            // the call; with no output buffer (0 bytes, null) the encoder keeps its output
            // internally for BrotliEncoderTakeOutput.
            let ok = unsafe {
                ffi::BrotliEncoderCompressStream(
                    self.0,
                    op,
                    &mut avail_in,
                    &mut next_in,
                    &mut avail_out,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            // The encoder fails only on misuse (an operation out of order), never on data.
            assert!(ok != 0, "brotli: encoder error");
            let mut n = 0usize;
            // SAFETY: the returned pointer is valid for `n` bytes until the next call on this
            // state; they are copied out at once.
            let taken = unsafe { ffi::BrotliEncoderTakeOutput(self.0, &mut n) };
            if n > 0 {
                out.extend_from_slice(unsafe { std::slice::from_raw_parts(taken, n) });
            }
            // SAFETY: a live state.
            let (more, finished) = unsafe {
                (
                    ffi::BrotliEncoderHasMoreOutput(self.0) != 0,
                    ffi::BrotliEncoderIsFinished(self.0) != 0,
                )
            };
            let done = if op == ffi::BrotliEncoderOperation_BROTLI_OPERATION_FINISH {
                finished
            } else {
                avail_in == 0 && !more
            };
            if done {
                return;
            }
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by BrotliEncoderCreateInstance, destroyed once.
        unsafe { ffi::BrotliEncoderDestroyInstance(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(br: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut out).expect("valid brotli");
        out
    }

    #[test]
    fn round_trips_empty_small_and_beyond_the_window() {
        assert_eq!(decode(&compress(b"", 11, 22)), b"");
        let css = "body { color: red; }\n".repeat(300);
        let br = compress(css.as_bytes(), 11, 22);
        assert!(br.len() < css.len() / 20, "{} bytes", br.len());
        assert_eq!(decode(&br), css.as_bytes());
        // More than the 4 MiB window, and not repetitive: every output chunk is collected.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let big: Vec<u8> = (0..(5 << 20))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"abcdefghij {};:\n"[(x % 16) as usize]
            })
            .collect();
        assert_eq!(decode(&compress(&big, 5, 22)), big);
    }

    #[test]
    fn the_empty_stream_is_googles() {
        // `brotli.compress(b"")` is the single byte 0x3b (ISLAST, ISLASTEMPTY, window 22).
        assert_eq!(compress(b"", 11, 22), [0x3b]);
    }
}
