//! The generic cell rate algorithm (GCRA), shared by the XDP program and the
//! userspace model.
//!
//! Each limiter keeps one number per source, the *theoretical arrival time*
//! (TAT): when the source's budget would be back to empty if it kept sending
//! at exactly the configured rate. A packet conforms if the TAT is no more than
//! `tolerance` ahead of now; conforming moves the TAT one `interval` further.
//!
//! Why this shape: the state is a single u64, so the kernel can update it with
//! one compare-and-exchange and packets of one source on several CPUs share a
//! single budget; there are no fractional tokens to truncate (time is the
//! budget); and a long idle cannot overflow anything because the TAT restarts
//! from `now`.

/// Emission interval and tolerance for `rate` per second and a burst of
/// `burst` back-to-back cells (at least 1). Returns `(0, 0)` for rate 0 (off).
pub const fn params(rate_per_sec: u64, burst: u64) -> (u64, u64) {
    if rate_per_sec == 0 {
        return (0, 0);
    }
    let mut interval = 1_000_000_000 / rate_per_sec;
    if interval == 0 {
        interval = 1;
    }
    let burst = if burst == 0 { 1 } else { burst };
    (interval, (burst - 1).saturating_mul(interval))
}

/// Decides one cell arriving at `now`. Returns the new TAT when the cell
/// conforms, or `None` when it is over the limit (and the TAT must not move).
#[inline(always)]
pub const fn admit(tat: u64, now: u64, interval: u64, tolerance: u64) -> Option<u64> {
    let base = if tat > now { tat } else { now };
    if base - now > tolerance {
        None
    } else {
        Some(base.saturating_add(interval))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `n` cells evenly spaced over `span_ns` and counts the conforming ones.
    fn run(rate: u64, burst: u64, start: u64, span_ns: u64, n: u64) -> u64 {
        let (interval, tolerance) = params(rate, burst);
        let mut tat = 0;
        let mut passed = 0;
        for i in 0..n {
            let now = start + span_ns * i / n;
            if let Some(t) = admit(tat, now, interval, tolerance) {
                tat = t;
                passed += 1;
            }
        }
        passed
    }

    #[test]
    fn burst_then_rate() {
        // 10/s, burst 5, 1000 cells offered in one second: 5 at once plus ~10 more.
        let passed = run(10, 5, 1_000_000_000, 1_000_000_000, 1000);
        assert!((14..=16).contains(&passed), "passed {passed}");
    }

    #[test]
    fn accurate_from_ten_to_a_million_per_second() {
        for rate in [10, 100, 1_000, 10_000, 100_000, 1_000_000] {
            let offered = (rate * 4).max(10_000);
            let passed = run(rate, 1, 5_000_000_000, 2_000_000_000, offered);
            let want = rate * 2;
            let err = passed.abs_diff(want) as f64 / want as f64;
            assert!(err < 0.01, "rate {rate}: passed {passed}, want {want}");
        }
    }

    #[test]
    fn no_overflow_after_long_idle() {
        let (interval, tolerance) = params(1000, 10);
        // A TAT from near boot, then a packet decades later.
        let tat = admit(0, 1, interval, tolerance).unwrap();
        let later = u64::MAX / 2;
        let next = admit(tat, later, interval, tolerance).unwrap();
        assert_eq!(next, later + interval);
        // Even at the end of the clock the TAT saturates rather than wraps.
        assert_eq!(admit(0, u64::MAX, interval, tolerance), Some(u64::MAX));
    }

    #[test]
    fn over_limit_does_not_move_tat() {
        let (interval, tolerance) = params(1, 1);
        let tat = admit(0, 100, interval, tolerance).unwrap();
        assert_eq!(admit(tat, 101, interval, tolerance), None);
        assert_eq!(
            admit(tat, 100 + interval, interval, tolerance),
            Some(100 + 2 * interval)
        );
    }

    #[test]
    fn zero_rate_is_off() {
        assert_eq!(params(0, 10), (0, 0));
        assert_eq!(params(2_000_000_000, 1), (1, 0));
    }
}
