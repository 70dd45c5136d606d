//! Per-request deadlines, and a proxied request's client watch (nginx's 499), checked by one
//! ticker per worker thread instead of a tokio timer each.
//!
//! **Why a ticker.** A tokio timer armed per request takes the timer wheel's lock twice (arm,
//! cancel) and wakes the runtime's driver (an `eventfd` write, then an extra `epoll_wait`
//! return) whenever its deadline falls before the driver's next planned wake-up; with a 50 ms
//! timer for the client check and a `--read-timeout` one for the head, that was up to two
//! `eventfd` writes per proxied request (README, "Reverse proxy": 2 % of the proxy's CPU per
//! request in the benchmark's A/B). Here a guarded future only takes a slot in a
//! thread-local table; one task per worker thread wakes every [`TICK`] while the table has
//! entries (and for a second after), checks them and wakes the futures whose guard fired.
//! The price: a deadline fires up to one tick late, nothing for timeouts counted in seconds.
//! Users: the HTTP/1 loop's `--header-timeout`, `--keep-alive` and `--body-timeout`, the
//! proxy's `--read-timeout` and its client watch.
//!
//! **The client.** Nothing tells a handler that its client closed the connection: that is
//! learnt only when the response is written. A slow Django view would then hold the upstream
//! request (and a gunicorn worker's answer) for nothing. So while a proxied HTTP/1 request
//! waits for the upstream, the client's socket is checked with a zero-timeout
//! `poll(POLLRDHUP)`, first after 50 ms and then backing off (doubling to 500 ms): fast
//! requests are never checked, and a check is one syscall. The descriptor comes from the
//! HTTP/1 loop (`h1`), whose connection task owns the socket and the guarded future, so the
//! descriptor cannot be closed and reused while it is watched. HTTP/2 streams are separate
//! tasks that may outlive the socket: no check there.
//!
//! Deadlines are in [`Coarse`] time: the kernel tick's clock, a memory read where
//! `Instant::now` also reads the TSC (about 25 ns here, and a proxied request took seven).
//!
//! The ticker is spawned with `spawn_local`: the guarded futures run in actix-rt's workers,
//! each a current-thread runtime with a `LocalSet`, and never move between threads (a
//! [`Ticket`] is `!Send`, so the compiler holds them to that).

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Add;
use std::os::unix::io::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// A point of `CLOCK_MONOTONIC_COARSE` (a few milliseconds' resolution), in nanoseconds:
/// for deadlines checked every [`TICK`] and ages counted in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Coarse(u64);

impl Coarse {
    pub fn now() -> Coarse {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill; this clock exists on every Linux since 2.6.32.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) };
        Coarse(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
    }

    /// The time from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(self, earlier: Coarse) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Coarse {
    type Output = Coarse;
    fn add(self, d: Duration) -> Coarse {
        Coarse(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

/// How often the ticker looks: the resolution of every deadline here.
pub const TICK: Duration = Duration::from_millis(50);
/// The client check's first delay and its longest interval.
const FIRST_CHECK: Duration = Duration::from_millis(50);
const LONGEST_CHECK: Duration = Duration::from_millis(500);
/// Ticks the ticker keeps running with nothing to watch before it stops (so a server under
/// steady load does not start a task per request, and an idle one sleeps).
const IDLE_TICKS: u32 = 20;

/// Why a guarded future was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The deadline passed.
    TimedOut,
    /// The client closed or reset its connection.
    ClientGone,
}

/// Runs `work` unless `deadline` passes or the client on `fd` leaves first; then the reason
/// is returned, and `work` goes (cancelling what it had sent) with the guard, dropped by the
/// `.await` that took the answer. With neither, `work` simply runs.
pub fn guard<F: Future>(deadline: Option<Coarse>, fd: Option<RawFd>, work: F) -> Guard<F> {
    Guard {
        work,
        deadline,
        fd,
        ticket: None,
    }
}

/// [`guard`] with a deadline only: `Err(Fired::TimedOut)` once it passes.
pub fn within<F: Future>(deadline: Coarse, work: F) -> Guard<F> {
    guard(Some(deadline), None, work)
}

pin_project_lite::pin_project! {
    /// The future of [`guard`]. A struct rather than an `async fn`: that one held `work`
    /// twice (as its argument and pinned), so every guarded exchange was copied twice its
    /// size, per request, nested (`within` in `guard`).
    pub struct Guard<F> {
        #[pin]
        work: F,
        deadline: Option<Coarse>,
        fd: Option<RawFd>,
        // Taken at the first `Pending`: work ready at once (a head already buffered)
        // never touches the table.
        ticket: Option<Ticket>,
    }
}

impl<F: Future> Future for Guard<F> {
    type Output = Result<F::Output, Fired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // As `tokio::time::timeout`: work that is ready wins over a guard that fired.
        if let Poll::Ready(v) = this.work.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if this.deadline.is_none() && this.fd.is_none() {
            return Poll::Pending;
        }
        let (deadline, fd) = (*this.deadline, *this.fd);
        this.ticket
            .get_or_insert_with(|| Ticket::new(deadline, fd))
            .pending(cx.waker())
            .map(Err)
    }
}

/// One guarded request's entry in its thread's table; removed on drop.
struct Ticket {
    key: usize,
    /// Tied to the thread whose table holds the entry.
    _local: PhantomData<*const ()>,
}

impl Ticket {
    fn new(deadline: Option<Coarse>, fd: Option<RawFd>) -> Ticket {
        // Read only when a client is watched: a deadline alone needs no clock here.
        let next_check = match fd {
            Some(_) => Coarse::now() + FIRST_CHECK,
            None => deadline.unwrap_or(Coarse(0)),
        };
        let entry = Entry {
            deadline,
            fd,
            next_check,
            interval: FIRST_CHECK,
            waker: None,
            fired: None,
        };
        let (key, start) = TABLE.with_borrow_mut(|t| {
            let key = t.insert(entry);
            (key, !std::mem::replace(&mut t.ticking, true))
        });
        if start {
            tokio::task::spawn_local(tick());
        }
        Ticket {
            key,
            _local: PhantomData,
        }
    }

    /// `Ready` with the reason once the guard fired; otherwise keeps `waker` to be woken.
    fn pending(&self, waker: &Waker) -> Poll<Fired> {
        TABLE.with_borrow_mut(|t| {
            let e = t.entries[self.key].as_mut().expect("a live ticket's entry");
            if let Some(f) = e.fired {
                return Poll::Ready(f);
            }
            match &mut e.waker {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
            Poll::Pending
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        TABLE.with_borrow_mut(|t| t.remove(self.key));
    }
}

struct Entry {
    deadline: Option<Coarse>,
    fd: Option<RawFd>,
    next_check: Coarse,
    interval: Duration,
    waker: Option<Waker>,
    fired: Option<Fired>,
}

impl Entry {
    /// Checks what is due at `now`; whether the guard fired.
    fn check(&mut self, now: Coarse) -> bool {
        if self.fired.is_some() {
            return false;
        }
        if self.deadline.is_some_and(|d| d <= now) {
            self.fired = Some(Fired::TimedOut);
        } else if let Some(fd) = self.fd.filter(|_| self.next_check <= now) {
            if peer_closed(fd) {
                self.fired = Some(Fired::ClientGone);
            } else {
                self.interval = (self.interval * 2).min(LONGEST_CHECK);
                self.next_check = now + self.interval;
            }
        }
        self.fired.is_some()
    }
}

/// A thread's guarded requests: a slab (free slots reused) and whether its ticker runs.
#[derive(Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    live: usize,
    ticking: bool,
}

impl Table {
    fn insert(&mut self, e: Entry) -> usize {
        self.live += 1;
        match self.free.pop() {
            Some(k) => {
                self.entries[k] = Some(e);
                k
            }
            None => {
                self.entries.push(Some(e));
                self.entries.len() - 1
            }
        }
    }

    fn remove(&mut self, key: usize) {
        if self.entries[key].take().is_some() {
            self.live -= 1;
            self.free.push(key);
        }
    }

    /// The wakers of the entries whose guard fired at `now`.
    fn due(&mut self, now: Coarse) -> Vec<Waker> {
        self.entries
            .iter_mut()
            .flatten()
            .filter_map(|e| if e.check(now) { e.waker.take() } else { None })
            .collect()
    }
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::default();
}

/// The thread's ticker: runs while the table has entries, and [`IDLE_TICKS`] more.
async fn tick() {
    /// Clears `ticking` however the task ends (its runtime may drop it), so the next guard
    /// on this thread starts a new ticker.
    struct Stopped;
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = TABLE.try_with(|t| t.borrow_mut().ticking = false);
        }
    }
    let _stopped = Stopped;
    let mut idle = 0;
    let mut at = tokio::time::Instant::now();
    loop {
        at += TICK;
        tokio::time::sleep_until(at).await;
        let woken = TABLE.with_borrow_mut(|t| {
            if t.live == 0 {
                idle += 1;
                if idle >= IDLE_TICKS {
                    return None;
                }
            } else {
                idle = 0;
            }
            Some(t.due(Coarse::now()))
        });
        // Woken outside the borrow: a waker may be polled at once by some executors.
        match woken {
            None => return,
            Some(w) => w.into_iter().for_each(Waker::wake),
        }
        // A ticker that fell behind (a long stall of its thread) does not catch up in a burst.
        at = at.max(tokio::time::Instant::now() - TICK);
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
    // task (which owns the socket and the guarded future) exists.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::os::unix::io::AsRawFd;
    use std::time::Instant;

    /// Polls `cond` until it holds or 5 s pass.
    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on an open socket, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    #[test]
    fn sees_fin_and_not_data() {
        let (mut c, s) = pair();
        assert!(!peer_closed(s.as_raw_fd()));
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert!(eventually(|| readable(s.as_raw_fd())));
        assert!(!peer_closed(s.as_raw_fd()), "pending data is not a close");
        c.shutdown(Shutdown::Write).unwrap();
        assert!(eventually(|| peer_closed(s.as_raw_fd())));
    }

    /// Runs `f` on a current-thread runtime inside a `LocalSet`, as actix-rt's workers do.
    fn local<F: Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    #[test]
    fn the_coarse_clock_follows_the_monotonic_one() {
        let (a, i) = (Coarse::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(30));
        let (b, j) = (Coarse::now(), Instant::now());
        assert!(b > a);
        let drift = b
            .since(a)
            .as_millis()
            .abs_diff(j.duration_since(i).as_millis());
        assert!(drift <= 20, "coarse {:?}, precise {:?}", b.since(a), j - i);
        assert_eq!(a.since(b), Duration::ZERO);
    }

    #[test]
    fn work_that_finishes_first_is_returned_and_leaves_no_entry() {
        let (_c, s) = pair();
        let got = local(guard(
            Some(Coarse::now() + Duration::from_secs(5)),
            Some(s.as_raw_fd()),
            async { 7 },
        ));
        assert_eq!(got, Ok(7));
        assert_eq!(TABLE.with_borrow(|t| t.live), 0);
    }

    #[test]
    fn a_deadline_fires_within_a_tick_and_drops_the_work() {
        struct Flag<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Flag<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = std::cell::Cell::new(false);
        let start = Instant::now();
        let got = local(within(Coarse::now() + Duration::from_millis(120), async {
            let _f = Flag(&dropped);
            std::future::pending::<()>().await
        }));
        let took = start.elapsed();
        assert_eq!(got, Err(Fired::TimedOut));
        assert!(dropped.get(), "the work was dropped");
        // The coarse clock may lag the precise one by a kernel tick (4 ms at 250 Hz).
        assert!(took >= Duration::from_millis(110), "{took:?}");
        assert_eq!(TABLE.with_borrow(|t| t.live), 0);
    }

    #[test]
    fn a_client_that_closes_is_noticed_and_one_that_stays_is_not() {
        let (c, s) = pair();
        let (_stays, s2) = pair();
        let fd = s.as_raw_fd();
        let fd2 = s2.as_raw_fd();
        local(async move {
            let gone =
                tokio::task::spawn_local(guard(None, Some(fd), std::future::pending::<()>()));
            // Stays connected for the whole wait: its guard must not fire.
            let stays = guard(
                None,
                Some(fd2),
                tokio::time::sleep(Duration::from_millis(400)),
            );
            c.shutdown(Shutdown::Both).unwrap();
            assert_eq!(gone.await.unwrap(), Err(Fired::ClientGone));
            assert_eq!(stays.await, Ok(()));
        });
    }

    #[test]
    fn the_ticker_stops_when_idle_and_starts_again() {
        local(async {
            within(
                Coarse::now() + Duration::from_secs(1),
                tokio::task::yield_now(),
            )
            .await
            .unwrap();
            assert!(TABLE.with_borrow(|t| t.ticking));
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while TABLE.with_borrow(|t| t.ticking) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "ticker never stopped"
                );
                tokio::time::sleep(TICK).await;
            }
            let got = within(
                Coarse::now() + Duration::from_millis(60),
                std::future::pending::<()>(),
            )
            .await;
            assert_eq!(got, Err(Fired::TimedOut));
        });
    }
}
