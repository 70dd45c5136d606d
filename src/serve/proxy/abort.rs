//! Noticing a client that went away while its request waits on the upstream (nginx's 499).
//!
//! Nothing tells a handler that its client closed the connection: that is learnt only
//! when the response is written. A slow Django view would then hold the upstream request
//! (and a gunicorn worker's answer) for nothing. So while a proxied HTTP/1 request waits
//! for the upstream, the client's socket is checked with a zero-timeout `poll(POLLRDHUP)`
//! on a backing-off tick (50 ms doubling to 500 ms): fast requests never reach the first
//! tick, and the check is one syscall per tick.
//!
//! The descriptor comes from the HTTP/1 loop (`h1`), whose connection task owns the socket
//! and this future, so the descriptor cannot be closed and reused while it is watched.
//! HTTP/2 streams are spawned as separate tasks that may outlive the socket: no check
//! there.

use futures_util::future::{select, Either};
use std::future::Future;
use std::os::unix::io::RawFd;
use std::time::Duration;

/// Runs `work` unless the client on `fd` goes first: `None` means the client closed (or
/// reset) its connection before `work` finished, and `work` was dropped (cancelling what it
/// had sent). Without a descriptor, `work` simply runs.
pub async fn unless_client_leaves<T>(
    fd: Option<RawFd>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let Some(fd) = fd else {
        return Some(work.await);
    };
    let work = std::pin::pin!(work);
    let gone = std::pin::pin!(client_gone(fd));
    match select(work, gone).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(((), _)) => None,
    }
}

/// Resolves once the peer of `fd` has closed or reset the connection.
async fn client_gone(fd: RawFd) {
    let mut tick = Duration::from_millis(50);
    loop {
        tokio::time::sleep(tick).await;
        if peer_closed(fd) {
            return;
        }
        tick = (tick * 2).min(Duration::from_millis(500));
    }
}

/// Whether the peer shut its side of `fd` down (FIN: `POLLRDHUP`) or reset it.
fn peer_closed(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; `fd` is open for as long as the connection's
    // task (which owns the socket and this future) exists.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::peer_closed;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::io::AsRawFd;

    #[test]
    fn sees_fin_and_not_data() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        assert!(!peer_closed(s.as_raw_fd()));
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!peer_closed(s.as_raw_fd()), "pending data is not a close");
        c.shutdown(Shutdown::Write).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(peer_closed(s.as_raw_fd()));
    }
}
