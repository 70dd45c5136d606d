//! Google's C brotli encoder, driven exactly as Python's `brotli.compress` drives it.
//!
//! WhiteNoise calls `brotli.compress(data)` (quality 11, window 22, generic mode), which feeds the
//! whole input with `BROTLI_OPERATION_PROCESS` and then `BROTLI_OPERATION_FINISH`. Doing the
//! same with the same C library gives the same bytes, so staticd's `.br` files, and the 95 %
//! keep/skip decisions made on their sizes, equal WhiteNoise's. The pure-Rust `brotli` crate
//! is a port of an older encoder and differs on about one file in eight by a few bytes (a
//! handful of files per 50,000 then land on the other side of 95 %). Speed is no reason either
//! way: both encode about 0.63 MB/s at quality 11 on one core here (README "Compression").
//!
//! On CPUs with x86-64-v3 the same sources built with `-march=x86-64-v3` (build.rs) run
//! instead, 2–4 % faster and byte for byte the same (tested below); [`Api`] is the switch.
use compu_brotli_sys as ffi;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

type State = ffi::BrotliEncoderState;

/// The encoder entry points staticd calls, from one of the two builds.
#[derive(Clone, Copy)]
struct Api {
    create: unsafe extern "C" fn(
        ffi::brotli_alloc_func,
        ffi::brotli_free_func,
        *mut c_void,
    ) -> *mut State,
    set: unsafe extern "C" fn(*mut State, ffi::BrotliEncoderParameter, u32) -> c_int,
    stream: unsafe extern "C" fn(
        *mut State,
        ffi::BrotliEncoderOperation,
        *mut usize,
        *mut *const u8,
        *mut usize,
        *mut *mut u8,
        *mut usize,
    ) -> c_int,
    take: unsafe extern "C" fn(*mut State, *mut usize) -> *const u8,
    has_more: unsafe extern "C" fn(*mut State) -> c_int,
    finished: unsafe extern "C" fn(*mut State) -> c_int,
    destroy: unsafe extern "C" fn(*mut State),
}

/// compu-brotli-sys's build, for any x86-64 (or other architecture).
const BASELINE: Api = Api {
    create: ffi::BrotliEncoderCreateInstance,
    set: ffi::BrotliEncoderSetParameter,
    stream: ffi::BrotliEncoderCompressStream,
    take: ffi::BrotliEncoderTakeOutput,
    has_more: ffi::BrotliEncoderHasMoreOutput,
    finished: ffi::BrotliEncoderIsFinished,
    destroy: ffi::BrotliEncoderDestroyInstance,
};

/// build.rs's `-march=x86-64-v3` build of the same sources, its symbols prefixed.
#[cfg(staticd_brotli_v3)]
mod v3 {
    use super::{ffi, Api, State};
    use std::ffi::{c_int, c_void};

    extern "C" {
        #[link_name = "staticd_v3_BrotliEncoderCreateInstance"]
        fn create(
            a: ffi::brotli_alloc_func,
            f: ffi::brotli_free_func,
            o: *mut c_void,
        ) -> *mut State;
        #[link_name = "staticd_v3_BrotliEncoderSetParameter"]
        fn set(s: *mut State, p: ffi::BrotliEncoderParameter, v: u32) -> c_int;
        #[link_name = "staticd_v3_BrotliEncoderCompressStream"]
        fn stream(
            s: *mut State,
            op: ffi::BrotliEncoderOperation,
            avail_in: *mut usize,
            next_in: *mut *const u8,
            avail_out: *mut usize,
            next_out: *mut *mut u8,
            total_out: *mut usize,
        ) -> c_int;
        #[link_name = "staticd_v3_BrotliEncoderTakeOutput"]
        fn take(s: *mut State, size: *mut usize) -> *const u8;
        #[link_name = "staticd_v3_BrotliEncoderHasMoreOutput"]
        fn has_more(s: *mut State) -> c_int;
        #[link_name = "staticd_v3_BrotliEncoderIsFinished"]
        fn finished(s: *mut State) -> c_int;
        #[link_name = "staticd_v3_BrotliEncoderDestroyInstance"]
        fn destroy(s: *mut State);
    }

    pub const API: Api = Api {
        create,
        set,
        stream,
        take,
        has_more,
        finished,
        destroy,
    };

    /// Everything `-march=x86-64-v3` lets the compiler use.
    pub fn supported() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
            && std::arch::is_x86_feature_detected!("lzcnt")
            && std::arch::is_x86_feature_detected!("movbe")
            && std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("sse4.2")
            && std::arch::is_x86_feature_detected!("xsave")
    }
}

/// The build this CPU runs: the x86-64-v3 one where it can.
fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        #[cfg(staticd_brotli_v3)]
        if v3::supported() {
            return v3::API;
        }
        BASELINE
    })
}

/// `data` encoded at `quality` and window `lgwin`, as `brotli.compress(data, quality=quality,
/// lgwin=lgwin)` encodes it. Panics only if the encoder cannot allocate its state, like any
/// other allocation failure.
pub fn compress(data: &[u8], quality: u32, lgwin: u32) -> Vec<u8> {
    compress_with(api(), data, quality, lgwin)
}

fn compress_with(api: &'static Api, data: &[u8], quality: u32, lgwin: u32) -> Vec<u8> {
    let mut enc = Encoder::new(api, quality, lgwin);
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

/// Owns one `BrotliEncoderState` of `api`'s build; destroyed on drop, unwinding included.
struct Encoder {
    api: &'static Api,
    state: *mut State,
}

impl Encoder {
    fn new(api: &'static Api, quality: u32, lgwin: u32) -> Encoder {
        // SAFETY: null allocator functions select the library's malloc/free.
        let state = unsafe { (api.create)(None, None, std::ptr::null_mut()) };
        assert!(!state.is_null(), "brotli: cannot allocate the encoder");
        let enc = Encoder { api, state };
        for (param, value) in [
            (
                ffi::BrotliEncoderParameter_BROTLI_PARAM_MODE,
                ffi::BrotliEncoderMode_BROTLI_MODE_GENERIC as u32,
            ),
            (ffi::BrotliEncoderParameter_BROTLI_PARAM_QUALITY, quality),
            (ffi::BrotliEncoderParameter_BROTLI_PARAM_LGWIN, lgwin),
        ] {
            // SAFETY: a live state, before any input (the only time parameters may change).
            let ok = unsafe { (api.set)(enc.state, param, value) };
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
                (self.api.stream)(
                    self.state,
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
            let taken = unsafe { (self.api.take)(self.state, &mut n) };
            if n > 0 {
                out.extend_from_slice(unsafe { std::slice::from_raw_parts(taken, n) });
            }
            // SAFETY: a live state.
            let (more, finished) = unsafe {
                (
                    (self.api.has_more)(self.state) != 0,
                    (self.api.finished)(self.state) != 0,
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
        unsafe { (self.api.destroy)(self.state) }
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

    /// Real text (this crate's README and sources), generated CSS, bytes with little
    /// structure: the x86-64-v3 build emits exactly the baseline's bytes at every quality the
    /// cost model changes with, so it keeps WhiteNoise's `.br` files and 95 % decisions.
    #[cfg(staticd_brotli_v3)]
    #[test]
    fn the_x86_64_v3_build_emits_the_baseline_bytes() {
        assert!(
            v3::supported(),
            "this CPU lacks x86-64-v3: the build is not exercised here"
        );
        assert_eq!(
            api().stream as usize,
            v3::API.stream as usize,
            "this CPU runs the x86-64-v3 build"
        );
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8 & 0x3f
            })
            .collect();
        let css = (0..3000)
            .map(|i| {
                format!(
                    ".c{i} {{ margin: {}px; color: #{:06x}; }}\n",
                    i % 17,
                    i * 7919
                )
            })
            .collect::<String>();
        let inputs: [&[u8]; 5] = [
            include_bytes!("../../README.md"),
            include_bytes!("rewrite.rs"),
            include_bytes!("../serve/h1/mod.rs"),
            css.as_bytes(),
            &noise,
        ];
        for input in inputs {
            for (quality, lgwin) in [(11, 22), (10, 22), (9, 20), (5, 18)] {
                assert!(
                    compress_with(&v3::API, input, quality, lgwin)
                        == compress_with(&BASELINE, input, quality, lgwin),
                    "{} bytes at quality {quality}, window {lgwin}",
                    input.len()
                );
            }
        }
    }

    #[test]
    fn the_empty_stream_is_googles() {
        // `brotli.compress(b"")` is the single byte 0x3b (ISLAST, ISLASTEMPTY, window 22).
        assert_eq!(compress(b"", 11, 22), [0x3b]);
    }
}
