//! Latency histograms with fixed buckets, fine enough to read p50, p90 and
//! p99 from (Prometheus `histogram_quantile`). Each worker observes into its
//! own cache line; scrapes sum the slots.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::worker::{SLOTS, slot};

/// Upper bounds in seconds (then +Inf): from 250 µs to 30 s, about three
/// buckets per decade where proxies' latencies live.
pub const BOUNDS: [f64; 18] = [
    0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
    15.0, 20.0, 30.0,
];
const BUCKETS: usize = BOUNDS.len() + 1;

#[repr(align(64))]
#[derive(Debug)]
struct Slot {
    buckets: [AtomicU64; BUCKETS],
    /// Sum of observations in microseconds.
    sum_us: AtomicU64,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

#[derive(Debug)]
pub struct Histogram {
    slots: Box<[Slot]>,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

/// A histogram's totals: per-bucket counts (not cumulative), count, sum.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub buckets: [u64; BUCKETS],
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BOUNDS.len());
        let s = &self.slots[slot()];
        s.buckets[i].fetch_add(1, Ordering::Relaxed);
        s.sum_us.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut buckets = [0u64; BUCKETS];
        let mut sum_us = 0u64;
        for s in self.slots.iter() {
            for (b, c) in buckets.iter_mut().zip(&s.buckets) {
                *b += c.load(Ordering::Relaxed);
            }
            sum_us += s.sum_us.load(Ordering::Relaxed);
        }
        Snapshot {
            count: buckets.iter().sum(),
            buckets,
            sum_seconds: sum_us as f64 / 1e6,
        }
    }
}

impl Snapshot {
    /// The `q` quantile (0 to 1), as Prometheus estimates it: linear within
    /// the bucket it falls in. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            if *n > 0 && (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                let upper = *BOUNDS.get(i).unwrap_or(&BOUNDS[BOUNDS.len() - 1]);
                let within = (rank - seen as f64) / *n as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += n;
        }
        BOUNDS.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_and_quantiles() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.observe(Duration::from_micros(800)); // (0.5 ms, 1 ms]
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(150)); // (100 ms, 200 ms]
        }
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.buckets[2], 90);
        assert_eq!(s.buckets[9], 10);
        let p50 = s.quantile(0.5).unwrap();
        assert!(p50 > 0.0005 && p50 <= 0.001, "{p50}");
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > 0.1 && p99 <= 0.2, "{p99}");
        assert!((s.sum_seconds - (0.072 + 1.5)).abs() < 1e-6);
    }
}
