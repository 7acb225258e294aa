//! Escalation's bans, as the daemon keeps them within `[filter.maps]
//! autobans`: how many are in force, made, evicted to make room, refused
//! by the enforcer, and reports the daemon's queue could not take. Written
//! by the daemon's main loop and by escalation, read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct AutoBanMetrics {
    /// Auto-bans in force now.
    pub active: AtomicU64,
    /// Auto-bans made.
    pub made: AtomicU64,
    /// Auto-bans lifted early, soonest-expiring first, to make room at the bound.
    pub evicted: AtomicU64,
    /// Auto-bans the enforcer refused (a kernel map error).
    pub failed: AtomicU64,
    /// Escalation reports dropped because the daemon's queue was full (the
    /// source is reported again on its next counted response).
    pub dropped: AtomicU64,
}

impl AutoBanMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// (made, evicted, failed, dropped), for reports.
    pub fn totals(&self) -> [u64; 4] {
        [&self.made, &self.evicted, &self.failed, &self.dropped].map(|c| c.load(Ordering::Relaxed))
    }
}
