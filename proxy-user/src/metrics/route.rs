//! One route's measures: requests by status class, total and upstream
//! latency, bytes in and out. Each worker counts in its own cache line (no
//! contention on the request path); scrapes sum the slots.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use super::histogram::Histogram;
use crate::worker::{SLOTS, slot};

/// Status classes 1xx to 5xx.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[repr(align(64))]
#[derive(Debug, Default)]
struct Slot {
    classes: [AtomicU64; 5],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// What one request of a route left behind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observed {
    pub status: u16,
    pub total: Duration,
    /// Time to the upstream's response head, for proxied requests.
    pub upstream: Option<Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug)]
pub struct RouteMetrics {
    slots: Box<[Slot]>,
    pub total: Histogram,
    pub upstream: Histogram,
}

impl Default for RouteMetrics {
    fn default() -> Self {
        RouteMetrics {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            total: Histogram::default(),
            upstream: Histogram::default(),
        }
    }
}

/// A route's totals, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub classes: [u64; 5],
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl RouteMetrics {
    pub fn observe(&self, o: &Observed) {
        let s = &self.slots[slot()];
        let class = (o.status / 100).clamp(1, 5) as usize - 1;
        s.classes[class].fetch_add(1, Ordering::Relaxed);
        if o.bytes_in > 0 {
            s.bytes_in.fetch_add(o.bytes_in, Ordering::Relaxed);
        }
        if o.bytes_out > 0 {
            s.bytes_out.fetch_add(o.bytes_out, Ordering::Relaxed);
        }
        self.total.observe(o.total);
        if let Some(u) = o.upstream {
            self.upstream.observe(u);
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for s in self.slots.iter() {
            for (o, c) in t.classes.iter_mut().zip(&s.classes) {
                *o += c.load(Ordering::Relaxed);
            }
            t.bytes_in += s.bytes_in.load(Ordering::Relaxed);
            t.bytes_out += s.bytes_out.load(Ordering::Relaxed);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_class_bytes_and_latency() {
        let r = RouteMetrics::default();
        for s in [200, 204, 301, 404, 429, 502, 99, 700] {
            r.observe(&Observed {
                status: s,
                total: Duration::from_millis(1),
                bytes_out: 10,
                ..Default::default()
            });
        }
        let t = r.totals();
        assert_eq!(t.classes, [1, 2, 1, 2, 2]);
        assert_eq!(t.bytes_out, 80);
        assert_eq!(r.total.snapshot().count, 8);
        assert_eq!(r.upstream.snapshot().count, 0);
    }
}
