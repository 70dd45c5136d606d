//! Longest-processing-time-first scheduling on rayon's pool.
//!
//! `par_iter` over a list sorted by size splits it in halves: one thread gets the biggest
//! jobs back to back while the other runs out of small ones and idles (measured: 1.24 of 2
//! cores busy on a cold collect). Here every worker takes the next job, largest estimated
//! cost first, from one shared counter, so the pool stays busy until the last job and the
//! wall time approaches max(largest job, total work / cores).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Runs `run` on every job, most expensive first (by `cost`), on all of rayon's threads;
/// the results come back in the jobs' order.
pub fn longest_first<J, T>(
    jobs: &[J],
    cost: impl Fn(&J) -> u64,
    run: impl Fn(&J) -> T + Sync,
) -> Vec<T>
where
    J: Sync,
    T: Send + Sync,
{
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost(&jobs[i])));
    let slots: Vec<OnceLock<T>> = jobs.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(&i) = order.get(k) else { break };
        let _ = slots[i].set(run(&jobs[i]));
    };
    let workers = rayon::current_num_threads().min(jobs.len());
    rayon::scope(|s| {
        for _ in 1..workers {
            s.spawn(|_| work());
        }
        // The calling thread works too (it is one of the pool's when called from rayon).
        work();
    });
    slots
        .into_iter()
        .map(|s| s.into_inner().expect("every job ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_job_once_results_in_order() {
        let jobs: Vec<u64> = (0..100).collect();
        let started = Mutex::new(Vec::new());
        let out = longest_first(
            &jobs,
            |&j| j % 7,
            |&j| {
                started.lock().unwrap().push(j);
                j * 2
            },
        );
        assert_eq!(out, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
        let mut seen = started.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, jobs);
        assert!(longest_first(&[] as &[u8], |_| 0, |_| ()).is_empty());
    }

    #[test]
    fn biggest_first_on_one_thread() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let order = Mutex::new(Vec::new());
        pool.install(|| {
            longest_first(&[3u64, 9, 1, 5], |&c| c, |&c| order.lock().unwrap().push(c));
        });
        assert_eq!(order.into_inner().unwrap(), [9, 5, 3, 1]);
    }
}
