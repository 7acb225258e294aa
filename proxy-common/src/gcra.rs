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

/// [`admit`] with two readings of one clock: `coarse`, which may lag real
/// time but never leads it, and `exact`, called only when `coarse` cannot
/// decide: when the cell is over the limit by the coarse reading.
///
/// A TAT no more than `tolerance` ahead of the coarse time is no more than
/// that ahead of real time either, so the cell conforms; its new TAT is
/// taken from the coarse time, which gives the source at most the lag as
/// extra tolerance (the TAT line never falls further behind real time than
/// the lag). Everything else is decided on the exact time, so a flood is
/// held to its rate: a coarse clock alone would restart the TAT at each
/// jump of the clock and throw away the credit of the time jumped.
#[inline(always)]
pub fn admit_lagging(
    tat: u64,
    coarse: u64,
    exact: &mut impl FnMut() -> u64,
    interval: u64,
    tolerance: u64,
) -> Option<u64> {
    if tat <= coarse.saturating_add(tolerance) {
        admit(tat, coarse, interval, tolerance)
    } else {
        admit(tat, exact(), interval, tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    enum Clock {
        Exact,
        Coarse,
        Lagging,
    }

    /// One cell every `gap` ns for one second, with a coarse clock that
    /// stands still and jumps by 4 to 36 ms; returns the cells passed and
    /// the exact-clock reads.
    fn lagging(rate: u64, burst: u64, gap: u64, clock: Clock) -> (u64, u64) {
        let (interval, tolerance) = params(rate, burst);
        let (mut tat, mut passed, mut reads) = (0, 0, 0);
        let start = 5_000_000_000u64;
        let (mut coarse, mut next_jump, mut jump) = (start, start, 4_000_000);
        for i in 0..1_000_000_000 / gap {
            let real = start + i * gap;
            if real >= next_jump {
                coarse = next_jump;
                jump = jump % 36_000_000 + 4_000_000;
                next_jump += jump;
            }
            let got = match clock {
                Clock::Exact => admit(tat, real, interval, tolerance),
                Clock::Coarse => admit(tat, coarse, interval, tolerance),
                Clock::Lagging => {
                    let mut exact = || {
                        reads += 1;
                        real
                    };
                    admit_lagging(tat, coarse, &mut exact, interval, tolerance)
                }
            };
            if let Some(t) = got {
                tat = t;
                passed += 1;
            }
        }
        (passed, reads)
    }

    #[test]
    fn a_lagging_clock_keeps_the_rate_and_reads_the_exact_one_only_when_needed() {
        for (rate, burst) in [(10, 1), (1_000, 10), (100_000, 100), (1_000_000, 1_000)] {
            let (want, _) = lagging(rate, burst, 100, Clock::Exact);
            let (passed, _) = lagging(rate, burst, 100, Clock::Lagging);
            // At most the lag (36 ms) of the rate on top, never less.
            let most = want + rate * 36 / 1000 + 1;
            assert!(
                (want..=most).contains(&passed),
                "rate {rate}: passed {passed}, exact clock {want}"
            );
            // The coarse clock alone loses the credit of every jump.
            let (coarse_only, _) = lagging(rate, burst, 100, Clock::Coarse);
            if rate >= 100_000 {
                assert!(
                    coarse_only < want / 2,
                    "rate {rate}: coarse alone passed {coarse_only}"
                );
            }
        }
        // A source at half its rate, with a burst longer than the lag: the
        // coarse clock decides every cell.
        let (passed, reads) = lagging(1_000, 100, 2_000_000, Clock::Lagging);
        assert_eq!((passed, reads), (500, 0));
    }

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
