//! Plain HTTP/1.1 by hand: the sanity checks before a run (does every server give the same
//! answer?) and the proxy bench's fixed upstream. Not load; wrk does that.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length of a request or response head; 0 without one.
pub fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

pub struct Response {
    pub status: u16,
    /// Status line and headers, with the blank line that ends them.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// `GET path` to 127.0.0.1:`port` over a fresh connection, with `headers` ("Name: value", sent
/// as given, Host included); reads the head and Content-Length bytes of body (fewer if the
/// server closes first).
pub fn get(
    port: u16,
    path: &str,
    headers: &[String],
    timeout: Duration,
) -> Result<Response, String> {
    request(port, "GET", path, headers, None, timeout)
}

/// `METHOD path` as [`get`] does it; with `body`, a `Content-Length` line is added and the
/// body sent after the head.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for h in headers {
        req.extend_from_slice(h.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        req.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body.unwrap_or_default());
    s.write_all(&req).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the response head".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = status_of(&head)?;
    let len = content_length(head.as_bytes());
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..].to_vec();
    Ok(Response { status, head, body })
}

/// The status code of a response head.
fn status_of(head: &str) -> Result<u16, String> {
    head.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no status line".to_string())
}

/// `GET path` with `Connection: close`, read until the server closes: the response (a chunked
/// body de-chunked) and the bytes that came over the wire for it.
pub fn get_whole(
    port: u16,
    path: &str,
    headers: &[String],
    timeout: Duration,
) -> Result<(Response, usize), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).ok();
    let mut req = format!("GET {path} HTTP/1.1\r\n").into_bytes();
    for h in headers {
        req.extend_from_slice(h.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    s.write_all(&req).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let head_end = find(&buf, b"\r\n\r\n").ok_or("no complete head")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = status_of(&head)?;
    let mut r = Response {
        status,
        head,
        body: Vec::new(),
    };
    let raw = &buf[head_end..];
    r.body = if r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(raw)?
    } else {
        raw.to_vec()
    };
    Ok((r, buf.len()))
}

/// A complete chunked body, de-chunked (trailers ignored).
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n").ok_or("a chunk size line cut short")?;
        let line = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {line:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("a chunk cut short".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}
