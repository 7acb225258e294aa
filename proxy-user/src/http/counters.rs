//! Request counters per route, by status class, for `rampart stats`.
//!
//! Each worker counts in its own cache line (no cross-worker contention on
//! the request path); readers sum the slots. Counters are kept by route
//! (its matcher, as `rampart stats` names it) across reloads.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::upstream::{SLOTS, slot};

/// Status classes 1xx to 5xx.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[repr(align(64))]
#[derive(Debug, Default)]
struct Slot([AtomicU64; 5]);

/// One route's counters.
#[derive(Debug)]
pub struct RouteCounters {
    slots: Box<[Slot]>,
}

impl Default for RouteCounters {
    fn default() -> Self {
        RouteCounters {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
        }
    }
}

impl RouteCounters {
    pub fn count(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.slots[slot()].0[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests by class, summed over the workers.
    pub fn totals(&self) -> [u64; 5] {
        let mut out = [0; 5];
        for s in self.slots.iter() {
            for (o, c) in out.iter_mut().zip(&s.0) {
                *o += c.load(Ordering::Relaxed);
            }
        }
        out
    }
}

/// Every route's counters by name, shared by all snapshots.
#[derive(Debug, Default)]
pub struct Counters {
    routes: Mutex<HashMap<String, Arc<RouteCounters>>>,
}

impl Counters {
    /// The counters of the route named `name` (made on first use).
    pub fn route(&self, name: &str) -> Arc<RouteCounters> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_class_and_keeps_routes_by_name() {
        let c = Counters::default();
        let a = c.route("/api/");
        for s in [200, 204, 301, 404, 429, 502, 99, 700] {
            a.count(s);
        }
        assert_eq!(a.totals(), [1, 2, 1, 2, 2]);
        assert!(Arc::ptr_eq(&a, &c.route("/api/")));
    }
}
