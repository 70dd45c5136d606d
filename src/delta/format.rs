//! The two dictionary-compressed formats of RFC 9842 and their encoders. Pure: bytes in,
//! bytes out.
//!
//! - dcb: `FF 44 43 42`, the SHA-256 of the dictionary, then a brotli stream compressed with
//!   the dictionary as a raw ("prefix") shared dictionary.
//! - dcz: `5E 2A 4D 18 20 00 00 00` (a zstd skippable frame of 32 bytes, so plain zstd
//!   decoders skip it), the SHA-256, then a zstd frame compressed with the dictionary loaded
//!   as raw content (not a trained zstd dictionary: no dictionary ID in the frame).
//!
//! Window limits (RFC 9842 §4 and §5): a dcb stream's window is at most 16 MB (brotli's
//! `lgwin` 24); a dcz decoder must accept a window of at least max(8 MB, 1.25 × dictionary)
//! and at most 128 MB, and may reject a larger one. The encoders stay within both, and use
//! no more window than the dictionary plus the new bytes need.
use std::io::{self, Read};

/// `FF 44 43 42`: the dcb header's magic ("\xffDCB").
pub const DCB_MAGIC: [u8; 4] = [0xff, 0x44, 0x43, 0x42];
/// `5E 2A 4D 18 20 00 00 00`: a zstd skippable frame (magic 0x184D2A5E) of 32 bytes.
pub const DCZ_MAGIC: [u8; 8] = [0x5e, 0x2a, 0x4d, 0x18, 0x20, 0x00, 0x00, 0x00];

/// brotli quality of dcb: the densest, as for the ordinary `.br` (this runs at build time).
const BROTLI_QUALITY: i32 = 11;
/// zstd level of dcz: the ordinary `.zst`'s.
const ZSTD_LEVEL: i32 = 19;
/// RFC 9842 §4: a dcb window is at most 16 MB; brotli's largest standard window is 2^24.
const BROTLI_MAX_LGWIN: u32 = 24;
/// brotli's smallest window.
const BROTLI_MIN_LGWIN: u32 = 10;
/// brotli keeps 16 bytes of its window out of reach (`BROTLI_WINDOW_GAP`).
const BROTLI_WINDOW_GAP: usize = 16;
/// RFC 9842 §5: every dcz decoder accepts at least an 8 MB window ...
const ZSTD_MIN_LIMIT: u64 = 8 << 20;
/// ... and none need accept more than 128 MB.
const ZSTD_MAX_LIMIT: u64 = 128 << 20;
/// zstd's smallest window.
const ZSTD_MIN_WINDOW_LOG: u32 = 10;

/// One of the two dictionary-compressed content codings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coding {
    /// Dictionary-compressed brotli.
    Dcb,
    /// Dictionary-compressed zstd.
    Dcz,
}

impl Coding {
    pub const ALL: [Coding; 2] = [Coding::Dcb, Coding::Dcz];

    /// The `Content-Encoding` token, also the file extension of the delta.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Dcb => "dcb",
            Coding::Dcz => "dcz",
        }
    }

    pub fn magic(self) -> &'static [u8] {
        match self {
            Coding::Dcb => &DCB_MAGIC,
            Coding::Dcz => &DCZ_MAGIC,
        }
    }

    /// Length of the header (magic + SHA-256) before the compressed stream.
    pub fn header_len(self) -> usize {
        self.magic().len() + 32
    }

    /// Position in [`Coding::ALL`].
    pub fn index(self) -> usize {
        match self {
            Coding::Dcb => 0,
            Coding::Dcz => 1,
        }
    }

    pub fn from_token(t: &str) -> Option<Coding> {
        Coding::ALL.into_iter().find(|c| c.token() == t)
    }
}

/// SHA-256 of `data`: how RFC 9842 names a dictionary.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The dictionary hash a delta's header names, if `bytes` starts with a well-formed header
/// of `coding`.
pub fn dictionary_of(coding: Coding, bytes: &[u8]) -> Option<[u8; 32]> {
    let magic = coding.magic();
    let rest = bytes.strip_prefix(magic)?;
    rest.get(..32)?.try_into().ok()
}

/// `data` compressed against `dict` as `coding`, with its RFC 9842 header; `None` for a
/// dcb stream the reference decoder would refuse (see [`brotli_with_dictionary`]).
pub fn encode(coding: Coding, data: &[u8], dict: &[u8]) -> Option<Vec<u8>> {
    let mut out = coding.magic().to_vec();
    out.extend_from_slice(&sha256(dict));
    match coding {
        Coding::Dcb => {
            brotli_with_dictionary(data, dict, &mut out);
            let stream = &out[coding.header_len()..];
            let mut back = Vec::with_capacity(data.len());
            let ok = brotli_reader(stream, dict).read_to_end(&mut back).is_ok() && back == data;
            ok.then_some(out)
        }
        Coding::Dcz => {
            zstd_with_prefix(data, dict, &mut out);
            Some(out)
        }
    }
}

/// The bytes a delta decodes to against `dict`; an error when the header does not name
/// `dict` or the stream is damaged. (staticd never decodes what it serves: this is for the
/// tests and the benchmark, and for anyone checking a delta by hand.)
pub fn decode(coding: Coding, delta: &[u8], dict: &[u8]) -> io::Result<Vec<u8>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let named = dictionary_of(coding, delta).ok_or_else(|| bad("no dcb/dcz header"))?;
    if named != sha256(dict) {
        return Err(bad("the header names another dictionary"));
    }
    let stream = &delta[coding.header_len()..];
    let mut out = Vec::new();
    match coding {
        Coding::Dcb => {
            brotli_reader(stream, dict).read_to_end(&mut out)?;
        }
        Coding::Dcz => {
            let mut d = zstd::stream::raw::Decoder::with_ref_prefix(dict)?;
            d.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(27))?;
            let mut r = zstd::stream::zio::Reader::new(io::BufReader::new(stream), d);
            r.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// A brotli decoder of `stream` with `dict` attached as a raw dictionary (the crate's
/// port of the reference decoder's `BrotliDecoderAttachDictionary`).
fn brotli_reader<'s>(stream: &'s [u8], dict: &[u8]) -> impl Read + 's {
    use brotli::{Allocator, SliceWrapperMut};
    let mut alloc = brotli::enc::StandardAlloc::default();
    let mut d = <brotli::enc::StandardAlloc as Allocator<u8>>::alloc_cell(&mut alloc, dict.len());
    d.slice_mut().copy_from_slice(dict);
    brotli::Decompressor::new_with_custom_dict(stream, 4096, d)
}

/// brotli's window for a delta: the smallest that holds the dictionary and the new bytes
/// (so every byte of both stays reachable), at most RFC 9842's 16 MB. Beyond that the
/// stream is still correct, only the start of a huge dictionary is out of reach.
pub fn brotli_lgwin(dict_len: usize, data_len: usize) -> u32 {
    let need = dict_len + data_len + BROTLI_WINDOW_GAP;
    let bits = usize::BITS - need.saturating_sub(1).leading_zeros();
    bits.clamp(BROTLI_MIN_LGWIN, BROTLI_MAX_LGWIN)
}

/// zstd's window log for a delta: the largest window every dcz decoder must accept for a
/// dictionary of `dict_len` bytes (max(8 MB, 1.25 × dictionary), at most 128 MB), rounded
/// down to the power of two a frame header can state; zstd itself shrinks it to what the
/// dictionary plus the new bytes need. While the output stays within the window the whole
/// dictionary is reachable (RFC 8878 §5).
pub fn zstd_window_log(dict_len: usize) -> u32 {
    let limit = (dict_len as u64 + dict_len as u64 / 4).clamp(ZSTD_MIN_LIMIT, ZSTD_MAX_LIMIT);
    (u64::BITS - 1 - limit.leading_zeros()).max(ZSTD_MIN_WINDOW_LOG)
}

/// Raw-dictionary brotli for the reference decoder's `BROTLI_SHARED_DICTIONARY_RAW` (what
/// Chromium attaches). The crate (9.x) seeds no literal context from the dictionary and makes
/// no static-dictionary references while one is set, as that model wants; but its encoder
/// still sees the dictionary as the start of its window, so it may emit a copy that starts
/// in the dictionary and runs on into the new bytes, which the reference decoder refuses
/// (a dictionary reference must end inside the dictionary). [`encode`] therefore decodes
/// each dcb with the crate's port of the reference decoder, which refuses the same copies,
/// and keeps only the streams that come back intact (checked against Google's C decoder in
/// the tests).
fn brotli_with_dictionary(data: &[u8], dict: &[u8], out: &mut Vec<u8>) {
    brotli_custom(data, dict, brotli_lgwin(dict.len(), data.len()), out);
}

/// brotli 11 of `data` with `dict` set as the crate's custom dictionary, window `lgwin`.
fn brotli_custom(data: &[u8], dict: &[u8], lgwin: u32, out: &mut Vec<u8>) {
    let params = brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: lgwin as i32,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut nop =
        |_: &mut brotli::interface::PredictionModeContextMap<brotli::InputReferenceMut>,
         _: &mut [brotli::interface::StaticCommand],
         _: brotli::InputPair,
         _: &mut brotli::enc::StandardAlloc| ();
    brotli::enc::BrotliCompressCustomIoCustomDict(
        &mut brotli::IoReaderWrapper(&mut &data[..]),
        &mut brotli::IoWriterWrapper(out),
        &mut [0; 4096],
        &mut [0; 4096],
        &params,
        brotli::enc::StandardAlloc::default(),
        &mut nop,
        dict,
        io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected end"),
    )
    .expect("in-memory brotli");
}

/// zstd with the dictionary referenced as a prefix: raw content, no dictionary ID in the
/// frame, the content size stated (so a small file's frame is a single segment).
fn zstd_with_prefix(data: &[u8], dict: &[u8], out: &mut Vec<u8>) {
    use zstd::zstd_safe::{CCtx, CParameter};
    let mut cctx = CCtx::create();
    let set = |cctx: &mut CCtx, p| cctx.set_parameter(p).map(|_| ());
    set(&mut cctx, CParameter::CompressionLevel(ZSTD_LEVEL)).expect("zstd level");
    set(
        &mut cctx,
        CParameter::WindowLog(zstd_window_log(dict.len())),
    )
    .expect("zstd window");
    set(&mut cctx, CParameter::ContentSizeFlag(true)).expect("zstd content size");
    set(&mut cctx, CParameter::ChecksumFlag(false)).expect("zstd checksum");
    cctx.ref_prefix(dict).expect("zstd prefix");
    let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut frame, data).expect("in-memory zstd");
    out.extend_from_slice(&frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text that changes a little between versions, like a bundle between deploys.
    pub fn versions() -> (Vec<u8>, Vec<u8>) {
        let mut v1 = String::new();
        for i in 0..2000 {
            v1.push_str(&format!(
                "function f{i}(a, b) {{ return a * {i} + b - {}; }}\n",
                i % 7
            ));
        }
        let v2 = v1.replace("return a * 1000 +", "return a * 1001 + 2 *");
        (v1.into_bytes(), v2.into_bytes())
    }

    #[test]
    fn both_codings_round_trip_with_their_header() {
        let (v1, v2) = versions();
        for c in Coding::ALL {
            let d = encode(c, &v2, &v1).unwrap();
            assert_eq!(&d[..c.magic().len()], c.magic());
            assert_eq!(dictionary_of(c, &d), Some(sha256(&v1)));
            assert_eq!(decode(c, &d, &v1).unwrap(), v2, "{c:?}");
            // A fraction of the plain compressed size: the dictionary did the work.
            let plain = crate::collect::compress::Encoder::Brotli.run(&v2).unwrap();
            assert!(
                d.len() * 20 < plain.len(),
                "{c:?}: {} vs {}",
                d.len(),
                plain.len()
            );
            // Another dictionary is refused by name, before any decoding.
            let err = decode(c, &d, &v2).unwrap_err();
            assert!(err.to_string().contains("another dictionary"), "{err}");
        }
    }

    #[test]
    fn empty_and_unrelated_inputs_round_trip() {
        let (v1, _) = versions();
        for c in Coding::ALL {
            for (data, dict) in [
                (&b""[..], &v1[..]),
                (&v1[..], &b"x"[..]),
                (&b"abc"[..], &b"abc"[..]),
            ] {
                let d = encode(c, data, dict).unwrap();
                assert_eq!(decode(c, &d, dict).unwrap(), data, "{c:?}");
            }
        }
    }

    /// Once the new bytes pass the window, a brotli stream must not reach the dictionary
    /// through the ring buffer (the pre-9 crate's model) in a way the reference decoder
    /// would read differently: a dictionary and file larger than the 1 KiB window do that.
    #[test]
    fn dcb_decodes_when_dictionary_and_file_outgrow_a_small_window() {
        let (v1, v2) = versions();
        let mut out = Vec::new();
        brotli_custom(&v2, &v1, 10, &mut out);
        let mut back = Vec::new();
        brotli_reader(&out, &v1).read_to_end(&mut back).unwrap();
        assert_eq!(back, v2);
    }

    /// The new version is the old one followed by its own start: the crate's
    /// encoder copies across the dictionary's end there, which the reference decoder
    /// refuses, so no dcb is kept (the dcz is fine).
    #[test]
    fn a_dcb_the_reference_decoder_would_refuse_is_not_kept() {
        let old: Vec<u8> = (0..40_000u32)
            .flat_map(|i| format!("x{} ", i * 7919 % 100_003).into_bytes())
            .collect();
        let mut new = old.clone();
        new.extend_from_slice(&old[..old.len() / 2]);
        assert_eq!(encode(Coding::Dcb, &new, &old), None);
        let dcz = encode(Coding::Dcz, &new, &old).unwrap();
        assert_eq!(decode(Coding::Dcz, &dcz, &old).unwrap(), new);
    }

    #[test]
    fn windows_stay_within_rfc_9842() {
        assert_eq!(brotli_lgwin(0, 0), 10);
        assert_eq!(brotli_lgwin(1000, 8), 10);
        assert_eq!(brotli_lgwin(1000, 9), 11, "1025 bytes need 2^11");
        assert_eq!(brotli_lgwin(3 << 20, 1 << 20), 23);
        assert_eq!(brotli_lgwin(100 << 20, 100 << 20), 24, "16 MB at most");
        assert_eq!(zstd_window_log(0), 23, "8 MB is always allowed");
        assert_eq!(zstd_window_log(6 << 20), 23, "7.5 MB: the 8 MB floor");
        assert_eq!(zstd_window_log(16 << 20), 24, "20 MB allowed: 16 MB window");
        assert_eq!(zstd_window_log(1 << 30), 27, "128 MB at most");
    }

    #[test]
    fn zstd_frame_states_no_dictionary_id_and_a_window_within_the_limit() {
        let (v1, v2) = versions();
        let d = encode(Coding::Dcz, &v2, &v1).unwrap();
        let frame = &d[Coding::Dcz.header_len()..];
        assert_eq!(
            &frame[..4],
            &[0x28, 0xb5, 0x2f, 0xfd],
            "a zstd frame follows"
        );
        // Frame_Header_Descriptor: Dictionary_ID_flag (bits 0-1) is 0.
        assert_eq!(frame[4] & 0b11, 0);
        let size = zstd::zstd_safe::get_frame_content_size(frame).unwrap();
        assert_eq!(size, Some(v2.len() as u64));
    }
}
