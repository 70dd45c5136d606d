//! Request bodies: how one is delimited (RFC 9112 §6.1–6.3, strictly) and an incremental
//! decoder for `Content-Length` and chunked bodies, bounded by `--max-body`.
//!
//! Hand-written rather than borrowed from a framework, because the rules are where request
//! smuggling lives and must be exactly these: one Content-Length field of digits only; a
//! Transfer-Encoding of exactly `chunked` (and never beside a Content-Length, never in
//! HTTP/1.0); chunk sizes of hex digits only, overflow-checked; chunk extensions parsed by
//! their grammar; every chunk line and trailer line ended by CRLF (a bare LF or CR is an
//! error here, where a peer that reads lines differently would see another message).

use bytes::{Buf, BytesMut};

/// How a request's body is delimited.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// No body (no framing header, or `Content-Length: 0`).
    #[default]
    None,
    Length(u64),
    Chunked,
}

/// A request whose framing cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("Content-Length and Transfer-Encoding together")]
    LengthAndChunked,
    #[error("more than one Content-Length")]
    DuplicateLength,
    #[error("Content-Length is not a decimal number")]
    BadLength,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    ChunkedHttp10,
    #[error("more than one Transfer-Encoding line")]
    DuplicateCoding,
    #[error("Transfer-Encoding does not end with chunked")]
    ChunkedNotFinal,
    /// A coding before `chunked` (`gzip, chunked`): valid, but not implemented (501).
    #[error("transfer coding other than chunked")]
    UnsupportedCoding,
}

/// What the framing fields of one request said, gathered while its head is read.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// The first Content-Length value, and how many lines there were.
    pub content_length: Option<&'a [u8]>,
    pub content_lengths: usize,
    /// The first Transfer-Encoding value, and how many lines there were.
    pub transfer_encoding: Option<&'a [u8]>,
    pub transfer_encodings: usize,
}

/// The body's framing from the request's fields.
pub fn framing(f: &Fields<'_>, http10: bool) -> Result<BodyLen, FramingError> {
    if f.transfer_encodings > 0 {
        if f.content_lengths > 0 {
            return Err(FramingError::LengthAndChunked);
        }
        if http10 {
            return Err(FramingError::ChunkedHttp10);
        }
        if f.transfer_encodings > 1 {
            return Err(FramingError::DuplicateCoding);
        }
        let codings = f.transfer_encoding.unwrap_or(b"");
        let mut tokens = codings
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty());
        let last = tokens.next_back();
        if !last.is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")) {
            return Err(FramingError::ChunkedNotFinal);
        }
        if tokens.next().is_some() {
            return Err(FramingError::UnsupportedCoding);
        }
        return Ok(BodyLen::Chunked);
    }
    match (f.content_lengths, f.content_length) {
        (0, _) | (_, None) => Ok(BodyLen::None),
        (1, Some(v)) => match decimal(v) {
            Some(0) => Ok(BodyLen::None),
            Some(n) => Ok(BodyLen::Length(n)),
            None => Err(FramingError::BadLength),
        },
        _ => Err(FramingError::DuplicateLength),
    }
}

/// `1*DIGIT` as a u64: no sign, no spaces, no list, no overflow.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than --max-body")]
    TooLarge,
    #[error("chunk size is not hexadecimal")]
    ChunkSize,
    #[error("chunk size overflows")]
    ChunkOverflow,
    #[error("malformed chunk extension")]
    ChunkExtension,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("line ended by a bare LF or containing a bare CR")]
    BareLineEnd,
    #[error("chunk line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("trailer section larger than {MAX_TRAILERS} bytes")]
    TrailersTooLarge,
    #[error("malformed trailer field")]
    Trailer,
}

/// Longest chunk-size line (with its extensions).
pub const MAX_LINE: usize = 4096;
/// Largest trailer section.
pub const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// Decodes one body incrementally.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Largest body accepted (0: no limit).
    max: u64,
    total: u64,
}

impl Decoder {
    /// For a body of `len` (not [`BodyLen::None`]); a declared length over `max` is refused
    /// before anything is read.
    pub fn new(len: BodyLen, max: u64) -> Result<Decoder, BodyError> {
        let state = match len {
            BodyLen::None => State::Done,
            BodyLen::Length(n) if max > 0 && n > max => return Err(BodyError::TooLarge),
            BodyLen::Length(n) => State::Length(n),
            BodyLen::Chunked => State::Size,
        };
        Ok(Decoder {
            state,
            max,
            total: 0,
        })
    }

    /// Moves what it can of the body from the front of `input` into `out`; `Ok(true)` once
    /// the body is complete (what follows it stays in `input`).
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Length(n) => {
                    let k = (input.len() as u64).min(n);
                    out.extend_from_slice(&input[..k as usize]);
                    input.advance(k as usize);
                    self.state = if k == n {
                        State::Done
                    } else {
                        State::Length(n - k)
                    };
                    if k < n {
                        return Ok(false);
                    }
                }
                State::Size => {
                    let Some(line) = take_line(input, MAX_LINE, BodyError::LineTooLong)? else {
                        return Ok(false);
                    };
                    let n = chunk_size(&line)?;
                    self.total = self.total.checked_add(n).ok_or(BodyError::ChunkOverflow)?;
                    if self.max > 0 && self.total > self.max {
                        return Err(BodyError::TooLarge);
                    }
                    self.state = if n == 0 {
                        State::Trailers(0)
                    } else {
                        State::Data(n)
                    };
                }
                State::Data(n) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let k = (input.len() as u64).min(n);
                    out.extend_from_slice(&input[..k as usize]);
                    input.advance(k as usize);
                    self.state = if k == n {
                        State::DataEnd
                    } else {
                        State::Data(n - k)
                    };
                }
                State::DataEnd => match input.get(..2) {
                    None if input.first().is_none_or(|&b| b == b'\r') => return Ok(false),
                    Some(b"\r\n") => {
                        input.advance(2);
                        self.state = State::Size;
                    }
                    _ => return Err(BodyError::ChunkEnd),
                },
                State::Trailers(seen) => {
                    let room = MAX_TRAILERS - seen;
                    let Some(line) = take_line(input, room, BodyError::TrailersTooLarge)? else {
                        return Ok(false);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    } else {
                        trailer(&line)?;
                        self.state = State::Trailers(seen + line.len() + 2);
                    }
                }
            }
        }
    }
}

/// Takes one CRLF-ended line off `input` (without the CRLF); `None` until it is complete.
/// A line longer than `max` fails with `too_long`, complete or not.
fn take_line(
    input: &mut BytesMut,
    max: usize,
    too_long: BodyError,
) -> Result<Option<BytesMut>, BodyError> {
    let Some(lf) = input.iter().position(|&b| b == b'\n') else {
        if input.len() > max {
            return Err(too_long);
        }
        // A CR can only be the first half of the CRLF still to come.
        if input.iter().rev().skip(1).any(|&b| b == b'\r') {
            return Err(BodyError::BareLineEnd);
        }
        return Ok(None);
    };
    if lf == 0 || input[lf - 1] != b'\r' || input[..lf - 1].contains(&b'\r') {
        return Err(BodyError::BareLineEnd);
    }
    if lf - 1 > max {
        return Err(too_long);
    }
    let mut line = input.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, then extensions.
fn chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError::ChunkSize);
    }
    let mut n: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).ok_or(BodyError::ChunkSize)?;
        n = n
            .checked_mul(16)
            .and_then(|n| n.checked_add(u64::from(d)))
            .ok_or(BodyError::ChunkOverflow)?;
    }
    extensions(&line[digits..])?;
    Ok(n)
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

fn token(s: &[u8]) -> Result<&[u8], BodyError> {
    let n = s.iter().take_while(|&&b| tchar(b)).count();
    if n == 0 {
        return Err(BodyError::ChunkExtension);
    }
    Ok(&s[n..])
}

/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn extensions(mut s: &[u8]) -> Result<(), BodyError> {
    loop {
        s = skip_ws(s);
        match s.split_first() {
            None => return Ok(()),
            Some((b';', rest)) => s = token(skip_ws(rest))?,
            Some(_) => return Err(BodyError::ChunkExtension),
        }
        let after = skip_ws(s);
        if let Some((b'=', rest)) = after.split_first() {
            let v = skip_ws(rest);
            s = if v.first() == Some(&b'"') {
                quoted(&v[1..])?
            } else {
                token(v)?
            };
        }
    }
}

/// The rest after a quoted-string whose opening quote is already consumed.
fn quoted(s: &[u8]) -> Result<&[u8], BodyError> {
    let visible = |c: u8| c == b'\t' || c >= 0x20 && c != 0x7f;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok(&s[i + 1..]),
            b'\\' => match s.get(i + 1) {
                Some(&c) if visible(c) => i += 2,
                _ => return Err(BodyError::ChunkExtension),
            },
            c if visible(c) => i += 1,
            _ => return Err(BodyError::ChunkExtension),
        }
    }
    Err(BodyError::ChunkExtension)
}

/// A trailer field line: `token ":" value` with no control characters but HTAB.
fn trailer(line: &[u8]) -> Result<(), BodyError> {
    let rest = token(line).map_err(|_| BodyError::Trailer)?;
    match rest.split_first() {
        Some((b':', value)) if value.iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f) => {
            Ok(())
        }
        _ => Err(BodyError::Trailer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(cl: &[&'a str], te: &[&'a str]) -> Fields<'a> {
        Fields {
            content_length: cl.first().map(|v| v.as_bytes()),
            content_lengths: cl.len(),
            transfer_encoding: te.first().map(|v| v.as_bytes()),
            transfer_encodings: te.len(),
        }
    }

    #[test]
    fn framing_rules() {
        use FramingError::*;
        let f = |cl: &[&str], te: &[&str]| framing(&fields(cl, te), false);
        assert_eq!(f(&[], &[]), Ok(BodyLen::None));
        assert_eq!(f(&["0"], &[]), Ok(BodyLen::None));
        assert_eq!(f(&["00012"], &[]), Ok(BodyLen::Length(12)));
        assert_eq!(
            f(&["18446744073709551615"], &[]),
            Ok(BodyLen::Length(u64::MAX))
        );
        assert_eq!(f(&["18446744073709551616"], &[]), Err(BadLength));
        for bad in ["+5", "-5", "5, 5", "5,5", "0x5", "", "5 5", "1e3", "٣"] {
            assert_eq!(f(&[bad], &[]), Err(BadLength), "{bad:?}");
        }
        assert_eq!(f(&["5", "5"], &[]), Err(DuplicateLength));
        assert_eq!(f(&["5", "6"], &[]), Err(DuplicateLength));
        assert_eq!(f(&[], &["chunked"]), Ok(BodyLen::Chunked));
        assert_eq!(f(&[], &["Chunked"]), Ok(BodyLen::Chunked));
        assert_eq!(f(&[], &[" chunked , "]), Ok(BodyLen::Chunked));
        assert_eq!(f(&["5"], &["chunked"]), Err(LengthAndChunked));
        assert_eq!(f(&[], &["chunked, gzip"]), Err(ChunkedNotFinal));
        assert_eq!(f(&[], &["gzip"]), Err(ChunkedNotFinal));
        assert_eq!(f(&[], &[""]), Err(ChunkedNotFinal));
        assert_eq!(f(&[], &["chunked", "chunked"]), Err(DuplicateCoding));
        assert_eq!(f(&[], &["gzip", "chunked"]), Err(DuplicateCoding));
        assert_eq!(f(&[], &["xchunked"]), Err(ChunkedNotFinal));
        assert_eq!(f(&[], &["gzip, chunked"]), Err(UnsupportedCoding));
        assert_eq!(f(&[], &["chunked, chunked"]), Err(UnsupportedCoding));
        assert_eq!(
            framing(&fields(&[], &["chunked"]), true),
            Err(ChunkedHttp10)
        );
        assert_eq!(framing(&fields(&["3"], &[]), true), Ok(BodyLen::Length(3)));
    }

    /// Decodes `raw` fed in pieces of `step` bytes: the body and what was left over (the
    /// next request's bytes), or `<incomplete>` when the body did not end.
    fn run(
        raw: &[u8],
        len: BodyLen,
        max: u64,
        step: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let mut d = Decoder::new(len, max)?;
        let (mut input, mut out) = (BytesMut::new(), BytesMut::new());
        let mut at = 0;
        while at < raw.len() {
            let end = (at + step.max(1)).min(raw.len());
            input.extend_from_slice(&raw[at..end]);
            at = end;
            if d.decode(&mut input, &mut out)? {
                input.extend_from_slice(&raw[at..]);
                return Ok((out.to_vec(), input.to_vec()));
            }
        }
        Ok((out.to_vec(), b"<incomplete>".to_vec()))
    }

    fn all_steps(raw: &[u8], len: BodyLen, max: u64) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let whole = run(raw, len, max, raw.len());
        for step in 1..raw.len() {
            assert_eq!(run(raw, len, max, step), whole, "step {step}");
        }
        whole
    }

    fn ok(body: &str, rest: &str) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        Ok((body.as_bytes().to_vec(), rest.as_bytes().to_vec()))
    }

    #[test]
    fn content_length() {
        assert_eq!(
            all_steps(b"helloGET", BodyLen::Length(5), 0),
            ok("hello", "GET")
        );
        assert_eq!(
            run(b"hel", BodyLen::Length(5), 0, 3),
            ok("hel", "<incomplete>")
        );
        assert_eq!(
            Decoder::new(BodyLen::Length(11), 10).unwrap_err(),
            BodyError::TooLarge
        );
        assert!(Decoder::new(BodyLen::Length(10), 10).is_ok());
    }

    #[test]
    fn chunked_valid() {
        let c = BodyLen::Chunked;
        assert_eq!(
            all_steps(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", c, 0),
            ok("hello world", "NEXT")
        );
        assert_eq!(
            all_steps(b"000A\r\n0123456789\r\n0\r\n\r\n", c, 0),
            ok("0123456789", "")
        );
        assert_eq!(
            all_steps(
                b"5 ;a=1; b =\"q \\\" d\" ;c\r\nhello\r\n0;last\r\nX-T: 1\r\nY:\r\n\r\n",
                c,
                0
            ),
            ok("hello", "")
        );
        assert_eq!(all_steps(b"0\r\n\r\n", c, 0), ok("", ""));
    }

    #[test]
    fn chunked_invalid() {
        use BodyError::*;
        let c = BodyLen::Chunked;
        for (raw, e) in [
            (&b"+5\r\nhello\r\n0\r\n\r\n"[..], ChunkSize),
            (b"-5\r\nhello\r\n0\r\n\r\n", ChunkSize),
            (b"0x5\r\nhello\r\n0\r\n\r\n", ChunkExtension),
            (b" 5\r\nhello\r\n0\r\n\r\n", ChunkSize),
            (b"\r\nhello\r\n0\r\n\r\n", ChunkSize),
            (b"5 x\r\nhello\r\n0\r\n\r\n", ChunkExtension),
            (b"5;\r\nhello\r\n0\r\n\r\n", ChunkExtension),
            (b"5;a=\r\nhello\r\n0\r\n\r\n", ChunkExtension),
            (b"5;a=\"x\r\nhello\r\n0\r\n\r\n", ChunkExtension),
            (b"5;a\x01\r\nhello\r\n0\r\n\r\n", ChunkExtension),
            (b"10000000000000000\r\n", ChunkOverflow),
            (b"5\nhello\r\n0\r\n\r\n", BareLineEnd),
            (b"5;a\rb\r\nhello\r\n0\r\n\r\n", BareLineEnd),
            (b"5\r\nhelloXY0\r\n\r\n", ChunkEnd),
            (b"5\r\nhello\n0\r\n\r\n", ChunkEnd),
            (b"5\r\nhello\r\n0\r\n\n", BareLineEnd),
            (b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", Trailer),
            (b"5\r\nhello\r\n0\r\n: x\r\n\r\n", Trailer),
            (b"5\r\nhello\r\n0\r\nX: a\x00\r\n\r\n", Trailer),
        ] {
            let shown = String::from_utf8_lossy(raw);
            let whole = run(raw, c, 0, raw.len());
            assert_eq!(whole, Err(e), "{shown:?}");
            for step in 1..raw.len() {
                assert_eq!(run(raw, c, 0, step), whole, "{shown:?} step {step}");
            }
        }
        let long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(MAX_LINE));
        assert_eq!(run(long.as_bytes(), c, 0, 100), Err(LineTooLong));
        let trailers = format!("0\r\n{}\r\n", "X-A: b\r\n".repeat(MAX_TRAILERS / 8 + 1));
        assert_eq!(run(trailers.as_bytes(), c, 0, 50), Err(TrailersTooLarge));
    }

    #[test]
    fn chunked_counts_against_max() {
        let c = BodyLen::Chunked;
        assert_eq!(run(b"5\r\nhello\r\n0\r\n\r\n", c, 5, 1), ok("hello", ""));
        assert_eq!(
            run(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n", c, 5, 1),
            Err(BodyError::TooLarge)
        );
        // Refused at the size line, before any of the chunk's data is taken.
        assert_eq!(
            run(b"ffffffff\r\n", c, 1 << 20, 1),
            Err(BodyError::TooLarge)
        );
    }
}
