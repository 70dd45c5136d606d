//! The one raw HTTP/1.1 client of the tests: it sends exactly the bytes a test gives (no path
//! normalisation, no header rewriting) and reads responses strictly by RFC 9112 §6.3, so a
//! server that frames a response wrongly fails the test instead of being papered over.
//!
//! Checked on every response: the status line; that Content-Length and Transfer-Encoding do
//! not appear together; a single valid Content-Length that the body matches; chunked framing
//! (sizes, extensions, CRLFs, trailers); no body on HEAD, 1xx, 204 and 304; and, for a
//! one-shot request, that nothing follows the response before the server closes.
//! Heads are parsed by `httparse`, as in hyper and in staticd itself.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a read may block before the test fails: generous, so a loaded machine is slow,
/// not red.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How the body of a response was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body by rule (HEAD, 1xx, 204, 304).
    None,
    Length(usize),
    Chunked,
    /// Read until the server closed (no length, HTTP/1.0 style).
    Close,
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    /// Every header line, in order, names as sent (duplicates stay visible).
    pub headers: Vec<(String, String)>,
    /// The body with chunked framing removed.
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Interim (1xx other than 101) responses that came before this one.
    pub interim: Vec<u16>,
    /// The exact bytes of this response (interim ones included) as they came off the wire.
    pub raw: Vec<u8>,
}

impl Response {
    /// The single value of `name`; panics if it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "{name} appears {} times: {all:?}",
            all.len()
        );
        all.first().copied()
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Headers minus `Date` (which may tick between two requests), lowercased and sorted.
    pub fn comparable_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("date"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    }

    /// Cookie `name`'s value from the Set-Cookie lines.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.all("set-cookie").into_iter().find_map(|c| {
            c.split(';')
                .next()?
                .trim()
                .strip_prefix(&format!("{name}="))
        })
    }
}

/// A framing violation (or a response cut short), with what was read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The head is not a valid HTTP/1.x status line and fields.
    Head(String),
    /// Content-Length and Transfer-Encoding in one response (RFC 9112 §6.2).
    LengthAndChunked,
    /// A Content-Length that is not one non-negative decimal number.
    BadLength(String),
    /// Transfer-Encoding whose final coding is not `chunked`.
    BadTransferEncoding(String),
    /// A malformed chunk size line, or data not followed by CRLF.
    BadChunk(String),
    /// The connection ended before the framing said the response was complete.
    Truncated {
        framing: Framing,
        have: usize,
    },
    /// Bytes after a complete response where none may follow.
    Trailing(Vec<u8>),
    Io(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Trailing(b) => write!(
                f,
                "{} bytes after the response: {:?}",
                b.len(),
                String::from_utf8_lossy(&b[..b.len().min(200)])
            ),
            other => write!(f, "{other:?}"),
        }
    }
}

/// What the client knows about the request a response answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    /// The request was HEAD: the response has no body whatever its headers say.
    pub head: bool,
}

impl Expect {
    pub fn for_method(method: &str) -> Expect {
        Expect {
            head: method.eq_ignore_ascii_case("HEAD"),
        }
    }
}

/// Parses the first complete response at the front of `buf`. `Ok(None)`: more bytes are
/// needed (unless `eof`, then a response read until close ends at the end of `buf`).
/// On success, also returns how many bytes of `buf` it used.
pub fn parse(buf: &[u8], expect: Expect, eof: bool) -> Result<Option<(Response, usize)>, Error> {
    let mut at = 0;
    let mut interim = Vec::new();
    loop {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut head = httparse::Response::new(&mut slots);
        let head_len = match head.parse(&buf[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if eof => {
                return Err(Error::Truncated {
                    framing: Framing::None,
                    have: buf.len() - at,
                })
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => {
                let shown = &buf[at..buf.len().min(at + 300)];
                return Err(Error::Head(format!(
                    "{e}: {:?}",
                    String::from_utf8_lossy(shown)
                )));
            }
        };
        let status = head.code.expect("complete head has a code");
        let version = head.version.expect("complete head has a version");
        let reason = head.reason.unwrap_or("").to_string();
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect();
        let body_at = at + head_len;
        if (100..200).contains(&status) && status != 101 {
            interim.push(status);
            at = body_at;
            continue;
        }
        let framing = framing(status, &headers, expect)?;
        let (body, trailers, end) = match framing {
            Framing::None => (Vec::new(), Vec::new(), body_at),
            Framing::Length(n) => {
                if buf.len() - body_at < n {
                    if eof {
                        return Err(Error::Truncated {
                            framing,
                            have: buf.len() - body_at,
                        });
                    }
                    return Ok(None);
                }
                (buf[body_at..body_at + n].to_vec(), Vec::new(), body_at + n)
            }
            Framing::Chunked => match dechunk(&buf[body_at..])? {
                Some((body, trailers, used)) => (body, trailers, body_at + used),
                None if eof => {
                    return Err(Error::Truncated {
                        framing,
                        have: buf.len() - body_at,
                    })
                }
                None => return Ok(None),
            },
            Framing::Close if eof => (buf[body_at..].to_vec(), Vec::new(), buf.len()),
            Framing::Close => return Ok(None),
        };
        let response = Response {
            version,
            status,
            reason,
            headers,
            body,
            framing,
            trailers,
            interim,
            raw: buf[..end].to_vec(),
        };
        return Ok(Some((response, end)));
    }
}

/// RFC 9112 §6.3, strictly: what a correct server's response must look like.
fn framing(status: u16, headers: &[(String, String)], expect: Expect) -> Result<Framing, Error> {
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    if !te.is_empty() && !cl.is_empty() {
        return Err(Error::LengthAndChunked);
    }
    if expect.head || status == 204 || status == 304 || (100..200).contains(&status) {
        // A HEAD answer may carry the GET's Content-Length; it must still be well-formed.
        if let Some(v) = cl.first() {
            length(&cl).map_err(|_| Error::BadLength(v.to_string()))?;
        }
        return Ok(Framing::None);
    }
    if !te.is_empty() {
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| v.split(','))
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        return match codings.last().map(String::as_str) {
            Some("chunked") if codings.iter().filter(|c| *c == "chunked").count() == 1 => {
                Ok(Framing::Chunked)
            }
            _ => Err(Error::BadTransferEncoding(te.join(", "))),
        };
    }
    if cl.is_empty() {
        return Ok(Framing::Close);
    }
    length(&cl).map(Framing::Length)
}

/// One Content-Length: a single field with digits only (a list, a sign or a second line is
/// rejected: a strict client must not guess).
fn length(values: &[&str]) -> Result<usize, Error> {
    match values {
        [v] if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map_err(|_| Error::BadLength(v.to_string()))
        }
        _ => Err(Error::BadLength(values.join(", "))),
    }
}

/// A chunked body at the front of `b`: (data, trailers, bytes used), or `None` if incomplete.
#[allow(clippy::type_complexity)]
fn dechunk(b: &[u8]) -> Result<Option<(Vec<u8>, Vec<(String, String)>, usize)>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let Some(nl) = find(&b[at..], b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&b[at..at + nl])
            .map_err(|_| Error::BadChunk(format!("{:?}", &b[at..at + nl])))?;
        let size_text = line
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if size_text.is_empty() || !size_text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::BadChunk(line.to_string()));
        }
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| Error::BadChunk(line.to_string()))?;
        at += nl + 2;
        if size == 0 {
            // Trailer section: fields, then an empty line.
            let mut trailers = Vec::new();
            loop {
                let Some(nl) = find(&b[at..], b"\r\n") else {
                    return Ok(None);
                };
                if nl == 0 {
                    return Ok(Some((out, trailers, at + 2)));
                }
                let field = String::from_utf8_lossy(&b[at..at + nl]).into_owned();
                let (k, v) = field
                    .split_once(':')
                    .ok_or_else(|| Error::BadChunk(format!("trailer {field:?}")))?;
                trailers.push((k.to_string(), v.trim().to_string()));
                at += nl + 2;
            }
        }
        if b.len() < at + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&b[at..at + size]);
        if &b[at + size..at + size + 2] != b"\r\n" {
            return Err(Error::BadChunk(format!(
                "chunk of {size} bytes not followed by CRLF"
            )));
        }
        at += size + 2;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One client connection: send bytes, read responses one at a time (pipelining works: the
/// bytes after one response stay buffered for the next).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        Self::try_open(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// [`Conn::open`] for a caller that records a failed connect instead of panicking (a
    /// client thread whose panic would lose the reason).
    pub fn try_open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        })
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// The next response; a framing error fails the test, showing the bytes.
    pub fn response(&mut self, expect: Expect) -> Response {
        self.try_response(expect).unwrap_or_else(|e| {
            panic!(
                "bad response: {e}\nread: {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(600)])
            )
        })
    }

    pub fn try_response(&mut self, expect: Expect) -> Result<Response, Error> {
        loop {
            if let Some((r, used)) = parse(&self.buf, expect, self.eof)? {
                self.buf.drain(..used);
                return Ok(r);
            }
            self.fill()?;
        }
    }

    /// Reads until the server closes; everything not yet consumed.
    pub fn rest(&mut self) -> Vec<u8> {
        while !self.eof {
            if let Err(e) = self.fill() {
                panic!("reading to the end: {e}");
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// The server closed the connection with nothing more sent (fails the test otherwise).
    pub fn expect_closed(&mut self) {
        let rest = self.rest();
        assert!(rest.is_empty(), "{}", Error::Trailing(rest));
    }

    fn fill(&mut self) -> Result<(), Error> {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => self.eof = true,
            Err(e) => return Err(Error::Io(e.to_string())),
        }
        Ok(())
    }
}

/// Builds `METHOD path HTTP/1.1` with `Host: testserver` (unless `headers` has one),
/// `Connection: close`, the given header lines and, for a body (or a POST), its length.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: testserver\r\n");
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if (!body.is_empty() || method == "POST")
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on its own connection (`Connection: close`): the response, and a check that
/// nothing follows it before the server closes.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    raw(
        addr,
        &request_bytes(method, path, headers, body),
        Expect::for_method(method),
    )
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"")
}

/// One request over a Unix socket (`Connection: close`): the response, and a check that
/// nothing follows it before the server closes.
pub fn unix_request(
    path: &std::path::Path,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.write_all(&request_bytes(method, target, headers, b""))
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let (r, used) = parse(&all, Expect::for_method(method), true)
        .unwrap()
        .expect("a whole response");
    assert_eq!(used, all.len(), "bytes after the response");
    r
}

pub fn unix_get(path: &std::path::Path, target: &str, headers: &[(&str, &str)]) -> Response {
    unix_request(path, "GET", target, headers)
}

/// Sends `bytes` as they are; reads one response, then expects the server to close with
/// nothing more (so the request must ask for the close, or be HTTP/1.0).
pub fn raw(addr: SocketAddr, bytes: &[u8], expect: Expect) -> Response {
    let mut c = Conn::open(addr);
    c.send(bytes);
    let r = c.response(expect);
    c.expect_closed();
    r
}

/// Sends `bytes` and returns everything the server sent until it closed.
pub fn raw_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut c = Conn::open(addr);
    c.send(bytes);
    c.rest()
}

/// Parses a `multipart/byteranges` body into (Content-Range, bytes) parts.
pub fn multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let d = delim.as_bytes();
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let at = find(rest, d).expect("delimiter");
        rest = &rest[at + d.len()..];
        if rest.starts_with(b"--") {
            assert_eq!(rest, b"--\r\n", "closing delimiter");
            return parts;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_string();
        rest = &rest[head_end + 4..];
        let next = find(rest, d).expect("next delimiter");
        parts.push((cr, rest[..next].to_vec()));
        rest = &rest[next..];
    }
}

/// The client's own checks, against hand-written responses.
#[cfg(test)]
mod tests {
    use super::*;

    const GET: Expect = Expect { head: false };
    const HEAD: Expect = Expect { head: true };

    fn one(bytes: &[u8], expect: Expect) -> Result<Response, Error> {
        let (r, used) = parse(bytes, expect, true)?.expect("complete at eof");
        if used != bytes.len() {
            return Err(Error::Trailing(bytes[used..].to_vec()));
        }
        Ok(r)
    }

    #[test]
    fn content_length_body() {
        let r = one(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello",
            GET,
        )
        .unwrap();
        assert_eq!((r.version, r.status, r.reason.as_str()), (1, 200, "OK"));
        assert_eq!(r.body, b"hello");
        assert_eq!(r.framing, Framing::Length(5));
        assert_eq!(r.all("x-a"), ["1", "2"]);
    }

    #[test]
    fn wrong_content_length_is_caught() {
        // Longer than the body: the connection ends early.
        assert_eq!(
            one(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", GET).unwrap_err(),
            Error::Truncated {
                framing: Framing::Length(10),
                have: 5
            }
        );
        // Shorter than the body: bytes are left over.
        assert_eq!(
            one(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhello", GET).unwrap_err(),
            Error::Trailing(b"lo".to_vec())
        );
        // Not waiting for eof: more bytes are needed, not an answer.
        assert!(parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            GET,
            false
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn malformed_lengths_are_errors() {
        for cl in ["+5", "-1", "5, 5", "0x5", "", " 5 5"] {
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\nhello");
            assert!(
                matches!(one(resp.as_bytes(), GET), Err(Error::BadLength(_))),
                "{cl:?}"
            );
        }
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello";
        assert!(matches!(one(two, GET), Err(Error::BadLength(_))));
    }

    #[test]
    fn length_and_chunked_together_are_an_error() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(one(r, GET).unwrap_err(), Error::LengthAndChunked);
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r = one(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n1\r\n!\r\n0\r\nX-T: 1\r\n\r\n",
            GET,
        )
        .unwrap();
        assert_eq!(r.body, b"hello!");
        assert_eq!(r.framing, Framing::Chunked);
        assert_eq!(r.trailers, [("X-T".to_string(), "1".to_string())]);
    }

    #[test]
    fn bad_chunks_are_errors() {
        let bad = [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
        ];
        for b in bad {
            assert!(
                matches!(one(b, GET), Err(Error::BadChunk(_))),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        assert!(matches!(one(cut, GET), Err(Error::Truncated { .. })));
        let gzip_only = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx";
        assert!(matches!(
            one(gzip_only, GET),
            Err(Error::BadTransferEncoding(_))
        ));
        let twice = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n";
        assert!(matches!(
            one(twice, GET),
            Err(Error::BadTransferEncoding(_))
        ));
    }

    #[test]
    fn no_body_on_head_204_304() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let r = one(head, HEAD).unwrap();
        assert_eq!((r.framing, r.body.len()), (Framing::None, 0));
        // A body after a HEAD answer is a framing error.
        assert_eq!(
            one(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", HEAD).unwrap_err(),
            Error::Trailing(b"hello".to_vec())
        );
        for status in ["204 No Content", "304 Not Modified"] {
            let r = format!("HTTP/1.1 {status}\r\n\r\nbody");
            assert_eq!(
                one(r.as_bytes(), GET).unwrap_err(),
                Error::Trailing(b"body".to_vec()),
                "{status}"
            );
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_recorded() {
        let r = one(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            GET,
        )
        .unwrap();
        assert_eq!((r.status, r.interim.clone()), (200, vec![100, 103]));
        assert!(r.raw.starts_with(b"HTTP/1.1 100"));
    }

    #[test]
    fn until_close_and_pipelined() {
        let r = one(b"HTTP/1.0 200 OK\r\n\r\nall of it", GET).unwrap();
        assert_eq!((r.version, r.framing), (0, Framing::Close));
        assert_eq!(r.body, b"all of it");
        assert!(parse(b"HTTP/1.0 200 OK\r\n\r\nall", GET, false)
            .unwrap()
            .is_none());

        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let (a, used) = parse(two, GET, false).unwrap().unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"a"[..]));
        let (b, rest) = parse(&two[used..], GET, false).unwrap().unwrap();
        assert_eq!((b.status, used + rest), (404, two.len()));
    }

    #[test]
    fn garbage_head_is_an_error() {
        assert!(matches!(
            one(b"HTTP/9 200 OK\r\n\r\n", GET),
            Err(Error::Head(_))
        ));
        assert!(matches!(one(b"hello\r\n\r\n", GET), Err(Error::Head(_))));
        assert!(matches!(
            one(b"HTTP/1.1 200 OK\r\n", GET),
            Err(Error::Truncated { .. })
        ));
    }
}
