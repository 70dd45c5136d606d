//! Longest-processing-time-first scheduling of jobs that arrive while others run.
//!
//! `par_iter` over a list sorted by size splits it in halves: one thread gets the biggest
//! jobs back to back while the other runs out of small ones and idles (measured: 1.24 of 2
//! cores busy on a cold collect). Here every worker takes the most expensive job queued, so
//! the pool stays busy until the last job and the wall time approaches max(largest job, total
//! work / cores). Jobs can be pushed at any time: a collect compresses each content as soon as
//! its bytes are final (an image as soon as it is read) while CSS/JS is still being
//! rewritten, instead of starting only when every file is done.
//!
//! The workers are threads of their own, not rayon's: they wait for jobs, and a rayon worker
//! that waits starves the parallel stages feeding the queue. While those stages run the cores
//! are shared between them and the compressions; the stages are short (hashing and rewriting
//! are a few percent of a cold collect's CPU).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A pool of threads running pushed jobs, most expensive queued job first.
pub struct Pool<J: Send + 'static> {
    shared: Arc<Shared<J>>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared<J> {
    queue: Mutex<Queue<J>>,
    ready: Condvar,
}

struct Queue<J> {
    heap: BinaryHeap<Queued<J>>,
    /// Pushes so far: ties in cost run in the order they were pushed.
    pushed: u64,
    /// No more jobs will come: workers exit once the heap is empty.
    closed: bool,
}

struct Queued<J> {
    cost: u64,
    seq: u64,
    job: J,
}

impl<J> PartialEq for Queued<J> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<J> Eq for Queued<J> {}

impl<J> PartialOrd for Queued<J> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<J> Ord for Queued<J> {
    /// The greatest is the most expensive, then the earliest pushed.
    fn cmp(&self, other: &Self) -> Ordering {
        self.cost
            .cmp(&other.cost)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl<J: Send + 'static> Pool<J> {
    /// Starts `threads` workers (at least one), each running `run` on the jobs it takes.
    pub fn new(name: &str, threads: usize, run: impl Fn(J) + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                pushed: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let run = Arc::new(run);
        let threads = (0..threads.max(1))
            .map(|i| {
                let (shared, run) = (shared.clone(), run.clone());
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        while let Some(job) = shared.next() {
                            run(job);
                        }
                    })
                    .expect("spawn a worker thread")
            })
            .collect();
        Pool { shared, threads }
    }

    /// Queues a job of estimated `cost` (only the order of costs matters).
    pub fn push(&self, cost: u64, job: J) {
        let mut q = self.shared.queue.lock().expect("job queue");
        let seq = q.pushed;
        q.pushed += 1;
        q.heap.push(Queued { cost, seq, job });
        drop(q);
        self.shared.ready.notify_one();
    }

    /// Waits until every job pushed has run.
    pub fn finish(mut self) {
        self.shared.close(false);
        for t in std::mem::take(&mut self.threads) {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl<J> Shared<J> {
    /// The next job for a worker, waiting for one; `None` once closed and drained.
    fn next(&self) -> Option<J> {
        let mut q = self.queue.lock().expect("job queue");
        loop {
            if let Some(queued) = q.heap.pop() {
                return Some(queued.job);
            }
            if q.closed {
                return None;
            }
            q = self.ready.wait(q).expect("job queue");
        }
    }

    fn close(&self, drop_queued: bool) {
        let mut q = self.queue.lock().expect("job queue");
        q.closed = true;
        if drop_queued {
            q.heap.clear();
        }
        drop(q);
        self.ready.notify_all();
    }
}

impl<J: Send + 'static> Drop for Pool<J> {
    /// A pool dropped unfinished (the collect failed) runs no more jobs; the ones running
    /// complete on their own, without holding up the caller.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shared.close(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::mpsc;

    /// A pool of one worker that reports each job it runs; the jobs listed in `gates` first
    /// say they started, then wait until their gate's sender sends (or is dropped).
    fn gated(gates: &[u64]) -> (Pool<u64>, HashMap<u64, mpsc::Sender<()>>, Receivers) {
        let (ran_tx, ran) = mpsc::channel();
        let (started_tx, started) = mpsc::channel();
        let mut open = HashMap::new();
        let mut wait = HashMap::new();
        for &g in gates {
            let (tx, rx) = mpsc::channel();
            open.insert(g, tx);
            wait.insert(g, rx);
        }
        let wait = Mutex::new(wait);
        let (ran_tx, started_tx) = (Mutex::new(ran_tx), Mutex::new(started_tx));
        let pool = Pool::new("test", 1, move |c: u64| {
            let gate = wait.lock().unwrap().remove(&c);
            if let Some(gate) = gate {
                started_tx.lock().unwrap().send(c).unwrap();
                let _ = gate.recv();
            }
            ran_tx.lock().unwrap().send(c).unwrap();
        });
        (pool, open, Receivers { ran, started })
    }

    struct Receivers {
        ran: mpsc::Receiver<u64>,
        started: mpsc::Receiver<u64>,
    }

    #[test]
    fn every_job_runs_once() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let pool = Pool::new("test", 3, move |j: u64| {
            tx.lock().unwrap().send(j * 2).unwrap()
        });
        for j in 0..100 {
            pool.push(j % 7, j);
        }
        pool.finish();
        let mut got: Vec<u64> = rx.iter().collect();
        got.sort();
        assert_eq!(got, (0..100).map(|j| j * 2).collect::<Vec<_>>());
        Pool::new("test", 2, |_: ()| ()).finish();
    }

    #[test]
    fn the_most_expensive_queued_job_runs_first_even_if_pushed_late() {
        let (pool, mut open, r) = gated(&[100, 9]);
        pool.push(100, 100);
        assert_eq!(r.started.recv().unwrap(), 100);
        // The one worker is busy: these queue up, and run most expensive first.
        for c in [3, 9, 1, 5] {
            pool.push(c, c);
        }
        open.remove(&100).unwrap().send(()).unwrap();
        assert_eq!(r.started.recv().unwrap(), 9);
        // Pushed while 9 runs: next, before the cheaper ones queued earlier.
        pool.push(7, 7);
        open.remove(&9).unwrap().send(()).unwrap();
        pool.finish();
        assert_eq!(r.ran.iter().collect::<Vec<_>>(), [100, 9, 7, 5, 3, 1]);
    }

    #[test]
    fn a_dropped_pool_runs_no_more_jobs() {
        let (pool, mut open, r) = gated(&[100]);
        pool.push(100, 100);
        assert_eq!(r.started.recv().unwrap(), 100);
        for c in 0..10 {
            pool.push(c, c);
        }
        drop(pool);
        drop(open.remove(&100));
        // The running job completes; the queued ones never run. (The channel ends when the
        // worker exits, dropping its closure.)
        assert_eq!(r.ran.iter().collect::<Vec<_>>(), [100]);
    }
}
