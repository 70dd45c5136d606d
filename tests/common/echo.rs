//! An HTTP/1.1 upstream that answers what it was asked and records the exact bytes it
//! receives (`upstream` is the one whose answers each test scripts), so a test can say
//! what reached the upstream (a body whole and re-framed, the forwarding headers, nothing
//! refused or smuggled), whatever protocol the client spoke to staticd.

use super::staticd::{Staticd, WAIT};
use super::wait_until;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The exact bytes, head and body.
    pub raw: Vec<u8>,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "{name} sent {} times: {all:?}", all.len());
        all.first().copied()
    }
}

/// A keep-alive upstream on a std listener, one thread per connection. Every request is
/// recorded before it is answered:
/// - `/hang…`: never answered (the connection is held until staticd closes it);
/// - `/ws…` with an `Upgrade` field: `101`, then every byte is echoed back (under
///   `/ws-unasked…`, a `101` to `unasked`, a protocol the request did not offer);
/// - `/stream…`: `200`, chunked, the body in two parts with a pause between them (so
///   staticd relays it as a stream of unknown length);
/// - anything else: `200` with the body `METHOD TARGET BODY-LENGTH` (no body for HEAD).
pub struct Upstream {
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections staticd closed.
    pub closed: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicUsize::new(0));
        let (s2, c2) = (seen.clone(), closed.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().map_while(Result::ok) {
                let (seen, closed) = (s2.clone(), c2.clone());
                std::thread::spawn(move || {
                    serve_upstream(conn, &seen);
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { addr, seen, closed }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn targets(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.target).collect()
    }

    /// Every request so far, once one for `target` has arrived.
    pub fn wait_for(&self, target: &str) -> Vec<Seen> {
        wait_until(&format!("the upstream to receive {target}"), WAIT, || {
            let seen = self.seen();
            seen.iter().any(|s| s.target == target).then_some(seen)
        })
    }

    /// Sends a marker request through `s` and returns every target the upstream saw up to
    /// it: what the requests before it left there (anything refused must be absent).
    pub fn targets_before_marker(&self, s: &Staticd, marker: &str) -> Vec<String> {
        assert_eq!(s.get(marker, &[]).status, 200);
        let seen = self.wait_for(marker);
        seen.into_iter()
            .map(|s| s.target)
            .take_while(|t| t != marker)
            .collect()
    }
}

/// Reads more of `s` into `buf`; `false` at end of stream.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16384];
    match s.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn serve_upstream(mut s: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let mut buf = Vec::new();
    loop {
        let (head_len, method, target, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 256];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let (m, t) = (req.method.unwrap(), req.path.unwrap());
                    break (n, m.to_string(), t.to_string(), headers);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => panic!(
                    "the upstream got a malformed head ({e}): {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            }
            if !fill(&mut s, &mut buf) {
                return;
            }
        };
        let field = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        // staticd buffers every body and sends it with a length.
        assert!(field("transfer-encoding").is_none(), "{headers:?}");
        let len: usize = field("content-length").map_or(0, |v| v.parse().unwrap());
        while buf.len() < head_len + len {
            if !fill(&mut s, &mut buf) {
                return;
            }
        }
        let raw: Vec<u8> = buf.drain(..head_len + len).collect();
        let upgrade = field("upgrade");
        seen.lock().unwrap().push(Seen {
            body: raw[head_len..].to_vec(),
            raw,
            target: target.clone(),
            headers,
        });
        if target.starts_with("/hang") {
            while fill(&mut s, &mut buf) {}
            return;
        }
        if let (true, Some(proto)) = (target.starts_with("/ws"), upgrade) {
            let proto = match target.starts_with("/ws-unasked") {
                true => "unasked".to_string(),
                false => proto,
            };
            let head = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {proto}\r\nConnection: Upgrade\r\n\r\n"
            );
            if s.write_all(head.as_bytes()).is_err() || s.write_all(&buf).is_err() {
                return;
            }
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = s.read(&mut chunk) {
                if s.write_all(&chunk[..n]).is_err() {
                    return;
                }
            }
            return;
        }
        if target.starts_with("/stream") {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            if s.write_all(head.as_bytes()).is_err() {
                return;
            }
            if method == "HEAD" {
                continue;
            }
            if s.write_all(b"5\r\nfirst\r\n").is_err() {
                return;
            }
            // An upstream pausing mid-body is what makes the answer a stream.
            std::thread::sleep(Duration::from_millis(50));
            if s.write_all(b"6\r\nsecond\r\n0\r\n\r\n").is_err() {
                return;
            }
            continue;
        }
        let body = format!("{method} {target} {len}");
        let mut answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if method != "HEAD" {
            answer.push_str(&body);
        }
        if s.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
