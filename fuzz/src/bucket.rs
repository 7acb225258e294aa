//! nginx's `limit_req` leaky bucket, as rampart's `[limit.NAME]` zones
//! promise it (docs/configuration.md), for the `limit` target.
//!
//! Per client the zone keeps `excess`, the queue in thousandths of a request,
//! and the millisecond of the last accepted request. A request at `now`:
//!
//! ```text
//! excess' = 0                                         for a client not tracked
//!         = max(0, excess - rate * (now - last) / 1000 + 1000)   otherwise
//!           (rate in requests per 1000 s, so 1000 per request)
//! excess' >  burst * 1000        -> reject; retry after the time the queue
//!                                   takes to drain back to the burst, rounded
//!                                   up to a second, at least 1 s
//! excess' >  delay_after * 1000  -> delay by the time the queue takes to
//!                                   drain back to delay_after
//! otherwise                      -> pass
//! ```
//!
//! `delay_after` is `delay=N` (at most the burst in force), `burst` for
//! `nodelay`. A rejected request is not recorded. Several zones on one route
//! decide together: the first zone (in order) that rejects rejects the
//! request and no zone records it; otherwise every zone records it and the
//! longest delay applies. A dry-run zone never rejects or delays, and records
//! what it would not have rejected.
//!
//! Memory: at most `max_clients` clients. A new client arriving at a full
//! zone first forgets every client whose queue has drained; if none has, the
//! eighth (at least one) seen longest ago (ties: lower address first).
//!
//! Arithmetic here is in `u128`, wide enough for any rate, burst and time a
//! zone accepts, so this model cannot overflow where the real one might.

use std::{collections::BTreeMap, net::IpAddr};

/// A zone as configured.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Requests per 1000 seconds.
    pub rate: u64,
    pub burst: u64,
    /// As configured: `burst` for nodelay, N for delay=N, else 0.
    pub delay_after: u64,
    pub dry_run: bool,
    pub status: u16,
    pub max_clients: usize,
}

/// What a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    DelayMs(u128),
    Reject { status: u16, retry_after_s: u128 },
}

#[derive(Clone, Copy, Debug)]
struct Client {
    excess: u128,
    last_ms: u64,
}

/// One zone's state in the model.
#[derive(Debug)]
pub struct Zone {
    spec: Spec,
    rate: u64,
    burst: u64,
    clients: BTreeMap<IpAddr, Client>,
    /// Passed, delayed, rejected, would-be-rejected (dry run).
    pub counts: [u64; 4],
}

impl Zone {
    pub fn new(spec: Spec) -> Zone {
        Zone {
            spec,
            rate: spec.rate,
            burst: spec.burst,
            clients: BTreeMap::new(),
            counts: [0; 4],
        }
    }

    /// `rampart limit set`: a new rate and burst in force (`None`: the zone's).
    pub fn set(&mut self, rate: Option<u64>, burst: Option<u64>) {
        self.rate = rate.unwrap_or(self.spec.rate).max(1);
        self.burst = burst.unwrap_or(self.spec.burst);
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    fn delay_after(&self) -> u64 {
        if self.spec.delay_after >= self.spec.burst {
            self.burst
        } else {
            self.spec.delay_after.min(self.burst)
        }
    }

    fn drained(&self, c: &Client, now_ms: u64) -> u128 {
        u128::from(self.rate) * u128::from(now_ms.saturating_sub(c.last_ms)) / 1000
    }

    /// The queue this request would leave, and what it gets.
    fn evaluate(&self, ip: IpAddr, now_ms: u64) -> (u128, Outcome) {
        let excess = match self.clients.get(&ip) {
            None => 0,
            Some(c) => (c.excess + 1000).saturating_sub(self.drained(c, now_ms)),
        };
        let rate = u128::from(self.rate);
        let burst = u128::from(self.burst) * 1000;
        let delay_after = u128::from(self.delay_after()) * 1000;
        let outcome = if excess > burst {
            let wait_ms = (excess - burst) * 1000 / rate;
            Outcome::Reject {
                status: self.spec.status,
                retry_after_s: wait_ms.div_ceil(1000).max(1),
            }
        } else if excess > delay_after {
            Outcome::DelayMs((excess - delay_after) * 1000 / rate)
        } else {
            Outcome::Pass
        };
        (excess, outcome)
    }

    fn record(&mut self, ip: IpAddr, excess: u128, now_ms: u64) {
        if self.clients.len() >= self.spec.max_clients && !self.clients.contains_key(&ip) {
            let drained: Vec<IpAddr> = self
                .clients
                .iter()
                .filter(|(_, c)| c.excess <= self.drained(c, now_ms))
                .map(|(ip, _)| *ip)
                .collect();
            for gone in drained {
                self.clients.remove(&gone);
            }
            if self.clients.len() >= self.spec.max_clients {
                let mut by_age: Vec<(u64, IpAddr)> = self
                    .clients
                    .iter()
                    .map(|(ip, c)| (c.last_ms, *ip))
                    .collect();
                by_age.sort();
                let n = (self.clients.len() / 8).max(1);
                for (_, gone) in by_age.into_iter().take(n) {
                    self.clients.remove(&gone);
                }
            }
        }
        self.clients.insert(
            ip,
            Client {
                excess,
                last_ms: now_ms,
            },
        );
    }
}

/// A request from `ip` at `now_ms` on a route with these zones.
pub fn check(zones: &mut [Zone], ip: IpAddr, now_ms: u64) -> Outcome {
    let verdicts: Vec<(u128, Outcome)> = zones.iter().map(|z| z.evaluate(ip, now_ms)).collect();
    let mut outcome = Outcome::Pass;
    for (z, (_, o)) in zones.iter_mut().zip(&verdicts) {
        match (*o, z.spec.dry_run) {
            (Outcome::Reject { .. }, true) => z.counts[3] += 1,
            (Outcome::Reject { .. }, false) => {
                z.counts[2] += 1;
                return *o;
            }
            (Outcome::DelayMs(d), false) => {
                if !matches!(outcome, Outcome::DelayMs(longer) if longer >= d) {
                    outcome = Outcome::DelayMs(d);
                }
            }
            _ => {}
        }
    }
    for (z, (excess, o)) in zones.iter_mut().zip(verdicts) {
        match o {
            Outcome::Reject { .. } => {}
            Outcome::DelayMs(_) => {
                z.record(ip, excess, now_ms);
                z.counts[1] += 1;
            }
            Outcome::Pass => {
                z.record(ip, excess, now_ms);
                z.counts[0] += 1;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate_per_s: u64, burst: u64, delay_after: u64) -> Spec {
        Spec {
            rate: rate_per_s * 1000,
            burst,
            delay_after,
            dry_run: false,
            status: 429,
            max_clients: 100,
        }
    }

    #[test]
    fn nodelay_serves_one_plus_burst_at_once() {
        let mut z = [Zone::new(spec(100, 50, 50))];
        let ip = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..51 {
            assert_eq!(check(&mut z, ip, 0), Outcome::Pass);
        }
        assert!(matches!(check(&mut z, ip, 0), Outcome::Reject { .. }));
        // 10 ms drain one request at 100 r/s.
        assert_eq!(check(&mut z, ip, 10), Outcome::Pass);
    }

    #[test]
    fn without_nodelay_the_burst_waits_its_turn() {
        let mut z = [Zone::new(spec(10, 5, 0))];
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(check(&mut z, ip, 0), Outcome::Pass);
        assert_eq!(check(&mut z, ip, 0), Outcome::DelayMs(100));
        assert_eq!(check(&mut z, ip, 0), Outcome::DelayMs(200));
    }

    #[test]
    fn a_full_zone_forgets_someone() {
        let mut s = spec(1, 0, 0);
        s.max_clients = 3;
        let mut z = [Zone::new(s)];
        for i in 0..10u8 {
            check(&mut z, IpAddr::from([192, 0, 2, i]), u64::from(i));
            assert!(z[0].clients() <= 3);
        }
    }
}
