//! The book of escalation's bans: which sources escalation banned, by
//! expiry, so that they stay within `[filter.maps] autobans` whatever an
//! attacker rotating sources triggers. At the bound, the soonest-expiring
//! auto-ban gives way (it had the least time left to serve). The
//! operator's bans are never in the book, so they are never evicted, and
//! the rest of the ban table (`bans - autobans` per family) is always
//! theirs (issue 13, item 6).
//!
//! Work per ban is O(log n); the book never walks the ban table.

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::time::Instant;

use crate::metrics::autoban::AutoBanMetrics;

/// How often, at most, the daemon says that escalation cannot keep up.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct AutoBans {
    /// At most this many auto-bans at once.
    bound: usize,
    /// (expiry, source key), soonest first.
    by_expiry: BTreeSet<(Instant, IpAddr)>,
    expiry: HashMap<IpAddr, Instant>,
    metrics: Arc<AutoBanMetrics>,
    /// Counter totals at the last report, and when it was.
    reported: [u64; 4],
    last_report: Option<Instant>,
}

impl AutoBans {
    pub fn new(metrics: Arc<AutoBanMetrics>) -> AutoBans {
        AutoBans {
            bound: crate::config::MapSizes::default().autobans as usize,
            by_expiry: BTreeSet::new(),
            expiry: HashMap::new(),
            reported: metrics.totals(),
            metrics,
            last_report: None,
        }
    }

    pub fn metrics(&self) -> &AutoBanMetrics {
        &self.metrics
    }

    pub fn set_bound(&mut self, bound: u32) {
        self.bound = bound as usize;
    }

    pub fn bound(&self) -> usize {
        self.bound
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    pub fn contains(&self, key: IpAddr) -> bool {
        self.expiry.contains_key(&key)
    }

    /// The auto-ban to lift so that one more fits, if the book is full.
    pub fn over_bound(&self) -> Option<IpAddr> {
        (self.len() >= self.bound.max(1))
            .then(|| self.soonest().map(|(_, k)| k))
            .flatten()
    }

    /// The soonest-expiring auto-ban and its expiry.
    pub fn soonest(&self) -> Option<(Instant, IpAddr)> {
        self.by_expiry.first().copied()
    }

    /// When an auto-ban made at `now` for `ttl` expires, as the book orders it.
    pub fn expiry(ttl: Option<Duration>, now: Instant) -> Instant {
        // Far enough to sort after every real expiry.
        let far = now + Duration::from_secs(100 * 365 * 86_400);
        ttl.and_then(|t| now.checked_add(t)).unwrap_or(far).min(far)
    }

    /// Records an auto-ban of `key` for `ttl` (`None`: no expiry).
    pub fn insert(&mut self, key: IpAddr, ttl: Option<Duration>, now: Instant) {
        self.remove(key);
        let at = Self::expiry(ttl, now);
        self.by_expiry.insert((at, key));
        self.expiry.insert(key, at);
        self.set_active();
    }

    /// Forgets `key` (lifted, expired, or now the operator's); whether it was an auto-ban.
    pub fn remove(&mut self, key: IpAddr) -> bool {
        let Some(at) = self.expiry.remove(&key) else {
            return false;
        };
        self.by_expiry.remove(&(at, key));
        self.set_active();
        true
    }

    /// Forgets the auto-bans that expired by `now` (the sweep lifts them).
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry.remove(&key);
        }
        self.set_active();
    }

    fn set_active(&self) {
        self.metrics
            .active
            .store(self.len() as u64, Ordering::Relaxed);
    }

    /// Once per [`REPORT_EVERY`] at most: what went wrong since the last
    /// report (evictions, refusals, dropped reports), as one log line.
    pub fn report(&mut self, now: Instant) -> Option<String> {
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < REPORT_EVERY)
        {
            return None;
        }
        let totals = self.metrics.totals();
        let [made, evicted, failed, dropped] =
            std::array::from_fn(|i| totals[i] - self.reported[i]);
        if evicted + failed + dropped == 0 {
            return None;
        }
        self.reported = totals;
        let since = self.last_report.replace(now);
        Some(format!(
            "escalation cannot keep up{}: {made} auto-ban(s) made, {evicted} evicted at the bound of {} \
             (soonest-expiring first), {failed} refused, {dropped} report(s) dropped by a full queue; \
             {} in force. The operator's bans are unaffected",
            since.map_or(String::new(), |t| format!(
                " in the last {}s",
                now.duration_since(t).as_secs()
            )),
            self.bound,
            self.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[tokio::test(start_paused = true)]
    async fn the_soonest_expiring_gives_way_at_the_bound() {
        let metrics = Arc::new(AutoBanMetrics::default());
        let mut book = AutoBans::new(metrics.clone());
        book.set_bound(3);
        let now = Instant::now();
        book.insert(ip(1), Some(Duration::from_secs(300)), now);
        book.insert(ip(2), Some(Duration::from_secs(100)), now);
        assert_eq!(book.over_bound(), None);
        book.insert(ip(3), None, now);
        assert_eq!(book.over_bound(), Some(ip(2)), "the soonest expiring");
        assert_eq!(metrics.active.load(Ordering::Relaxed), 3);
        assert!(book.remove(ip(2)));
        assert!(!book.remove(ip(2)));
        assert_eq!(book.over_bound(), None);
        tokio::time::advance(Duration::from_secs(301)).await;
        book.expire(Instant::now());
        assert_eq!((book.len(), book.contains(ip(3))), (1, true));
    }

    #[tokio::test(start_paused = true)]
    async fn reports_once_per_interval_and_only_when_something_went_wrong() {
        let metrics = Arc::new(AutoBanMetrics::default());
        let mut book = AutoBans::new(metrics.clone());
        AutoBanMetrics::add(&metrics.made, 5);
        assert_eq!(book.report(Instant::now()), None, "nothing went wrong");
        AutoBanMetrics::add(&metrics.evicted, 1000);
        let line = book.report(Instant::now()).unwrap();
        assert!(line.contains("1000 evicted"), "{line}");
        AutoBanMetrics::add(&metrics.evicted, 1000);
        assert_eq!(book.report(Instant::now()), None, "within the interval");
        tokio::time::advance(REPORT_EVERY).await;
        let line = book.report(Instant::now()).unwrap();
        assert!(
            line.contains("in the last 10s") && line.contains("1000 evicted"),
            "{line}"
        );
    }
}
