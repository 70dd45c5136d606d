//! A scripted upstream: exact bytes per request, optionally held at a [`Gate`] midway, with
//! a record of each connection (the requests read on it, and whether staticd closed it).

use super::staticd::WAIT;
use super::wait_until;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};

/// A switch the test flips to let the upstream go on (no sleeps: the upstream waits on it).
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        let (m, cv) = &*self.0;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }

    pub fn wait(&self) {
        let (m, cv) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            let (g, t) = cv.wait_timeout(open, WAIT).unwrap();
            assert!(!t.timed_out(), "the test never opened the gate");
            open = g;
        }
    }
}

/// What the upstream writes for one request.
#[derive(Clone)]
pub enum Answer {
    Bytes(Vec<u8>),
    /// The first part, then (once the gate opens) the second.
    Gated(Vec<u8>, Gate, Vec<u8>),
}

/// One connection as the upstream saw it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// `METHOD path` of each request read on it.
    pub requests: Vec<String>,
    /// staticd closed it (the upstream read EOF).
    pub closed: bool,
}

pub struct Upstream {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    /// Answers by `"METHOD /path"` first, then by `"/path"`; anything else is a 404.
    pub fn start<K: Into<String>>(routes: Vec<(K, Answer)>) -> Upstream {
        let routes: Arc<HashMap<String, Answer>> =
            Arc::new(routes.into_iter().map(|(k, a)| (k.into(), a)).collect());
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = conns.clone();
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let i = {
                    let mut c = log.lock().unwrap();
                    c.push(Seen::default());
                    c.len() - 1
                };
                let (log, routes) = (log.clone(), routes.clone());
                std::thread::spawn(move || serve(s, i, &log, &routes));
            }
        });
        Upstream { addr, conns }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.conns.lock().unwrap().clone()
    }

    /// Waits until staticd has closed connection `i`; what was read on it.
    pub fn wait_closed(&self, i: usize) -> Seen {
        wait_until(
            &format!("staticd to close upstream connection {i}"),
            WAIT,
            || self.seen().get(i).filter(|c| c.closed).cloned(),
        )
    }
}

/// Requests on one connection until staticd closes it.
fn serve(s: TcpStream, i: usize, log: &Mutex<Vec<Seen>>, routes: &HashMap<String, Answer>) {
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            log.lock().unwrap()[i].closed = true;
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut length = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).unwrap();
        log.lock().unwrap()[i]
            .requests
            .push(format!("{method} {path}"));
        let answer = routes
            .get(&format!("{method} {path}"))
            .or_else(|| routes.get(&path))
            .cloned()
            .unwrap_or_else(|| {
                Answer::Bytes(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec())
            });
        // Write errors are staticd closing first, which the log records on the next read.
        match answer {
            Answer::Bytes(b) => {
                let _ = w.write_all(&b);
            }
            Answer::Gated(first, gate, rest) => {
                let _ = w.write_all(&first);
                gate.wait();
                let _ = w.write_all(&rest);
            }
        }
    }
}

pub fn bytes(s: &str) -> Answer {
    Answer::Bytes(s.as_bytes().to_vec())
}

/// An upstream that answers one request with `len` bytes of [`pattern`] at once and says
/// when its write has returned: only a peer that takes the bytes lets it finish, since
/// `len` is more than the sockets' buffers hold. `(address, finished)`.
pub fn large_answer(len: usize) -> (String, Arc<std::sync::atomic::AtomicBool>) {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let finished = done.clone();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        assert!(skip_head(&mut c), "no request head");
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&pattern(len)).unwrap();
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        // Held open until staticd closes it.
        let _ = c.read(&mut [0u8; 1]);
    });
    (addr, done)
}

/// `len` bytes that show a lost, doubled or reordered piece.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// An upstream that reads each request's head (never its body), writes `answer` and closes
/// the connection: with a body left unread, the kernel resets it. Its address.
pub fn answer_and_close(answer: &'static [u8]) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            if skip_head(&mut c) {
                let _ = c.write_all(answer);
            }
        }
    });
    addr
}

/// Reads up to the end of a request head (and whatever came with it); `false` if the
/// connection ended first.
fn skip_head(c: &mut TcpStream) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    true
}
