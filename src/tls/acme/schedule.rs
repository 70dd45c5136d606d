//! When to renew and when to retry: pure arithmetic, the clock and the dice come from outside.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// Renew at two thirds of the lifetime: 60 days into Let's Encrypt's 90, 4 days into its
/// 6-day certificates. That leaves a third of the lifetime for retries, as Let's Encrypt's
/// integration guide and certbot do.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + life * 2 / 3
}

/// Exponential backoff between failed attempts, with jitter so that replicas (or every
/// staticd behind one CA outage) do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 min, 2, 4, … up to 6 h: quick recovery from a blip, and at most four tries a day
    /// against a CA that is down or refusing us (its rate limits count failures).
    fn default() -> Self {
        Self {
            first: Duration::from_secs(60),
            max: Duration::from_secs(6 * 3600),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (≥ 1). `jitter` in [0, 1) picks a point
    /// in the upper half of the step ("equal jitter"): never less than half the step, so the
    /// backoff still grows.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        let step = self
            .first
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// A number in [0, 1) that differs between calls and processes. std's `RandomState` is
/// seeded from the OS per process and advanced per instance: enough for spreading retries,
/// and no RNG crate just for this.
pub fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime() {
        let nb = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(renew_at(nb, nb + 90 * day), nb + 60 * day);
        assert_eq!(
            renew_at(nb, nb + Duration::from_secs(9)),
            nb + Duration::from_secs(6)
        );
        // A certificate that ends before it begins is due at once.
        assert_eq!(renew_at(nb, nb - day), nb);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_in_the_upper_half() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, 0.0), Duration::from_secs(30));
        assert_eq!(b.delay(1, 0.999_999).as_secs(), 59);
        assert_eq!(b.delay(2, 0.0), Duration::from_secs(60));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(120));
        assert_eq!(b.delay(9, 0.0), Duration::from_secs(7680));
        assert_eq!(b.delay(10, 0.0), Duration::from_secs(3 * 3600));
        assert_eq!(b.delay(11, 0.0), Duration::from_secs(3 * 3600));
        assert_eq!(b.delay(1000, 0.5), Duration::from_secs(3 * 3600 + 5400));
        assert_eq!(b.delay(0, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..50).map(|_| jitter()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }
}
