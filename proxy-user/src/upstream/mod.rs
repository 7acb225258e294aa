//! Upstream groups: servers, their load and health, and the lease that
//! counts a request in flight.
//!
//! Health is passive (nginx `max_fails` failures within `fail_timeout` take a
//! server out for `fail_timeout`) and, when configured, active (`health.rs`).

mod balance;
mod health;
mod pool;
mod target;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

pub use balance::{Candidate, choose};
pub use health::spawn_checks;
pub use pool::{Conn, Pool, SLOTS, SURPLUS_IDLE, SendError, set_worker, slot};
pub use target::{MAX_UNIX_PATH, Target, TargetError};
use tokio::time::Instant;

use crate::config::{Balance, Upstream};

/// One server of a group, shared by every request that uses it.
#[derive(Debug)]
pub struct Backend {
    pub addr: Target,
    /// The weight the configuration gives it...
    pub config_weight: u32,
    /// ...and the one in force (`rampart upstream weight` changes it).
    weight: AtomicU32,
    /// Drained: takes no new requests; those in flight finish.
    drained: AtomicBool,
    /// Requests in flight (least_conn's measure), kept by [`Lease`].
    active: AtomicUsize,
    /// Passive health: failures in the current window, and until when the server is out.
    passive: Mutex<Passive>,
    /// Active health: false while checks say the server is down.
    healthy: AtomicBool,
    /// Requests sent, and failures seen, for views and metrics.
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    /// Its responses by status class, and their time to the response head.
    pub responses: crate::metrics::RouteMetrics,
    /// Keep-alive connections to it.
    pub pool: Pool,
}

#[derive(Debug, Default)]
struct Passive {
    fails: u32,
    window_start: Option<Instant>,
    down_until: Option<Instant>,
}

impl Backend {
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Sets the weight in force (at least 1: use [`Backend::set_drained`] to stop traffic).
    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    pub fn drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    pub fn set_drained(&self, drained: bool) {
        self.drained.store(drained, Ordering::Relaxed);
    }

    /// "drained", "down" (failed, or failing health checks) or "up".
    pub fn state(&self, now: Instant) -> &'static str {
        if self.drained() {
            "drained"
        } else if self.available(now) {
            "up"
        } else {
            "down"
        }
    }

    /// Whether it may take requests at `now`.
    pub fn available(&self, now: Instant) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && !self.drained()
            && self
                .passive
                .lock()
                .unwrap()
                .down_until
                .is_none_or(|until| now >= until)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }
}

/// A group of servers with its settings.
#[derive(Debug)]
pub struct Group {
    pub config: Upstream,
    pub backends: Vec<Arc<Backend>>,
    /// Retry budget in thousandths of a retry: every request adds
    /// [`BUDGET_PER_REQUEST`], a retry after a response or a timeout spends
    /// 1000. Retries on an overloaded group then add at most 20% to its load
    /// instead of multiplying it. (A failed connect reached nobody: its
    /// retries are free.)
    budget: AtomicU64,
    /// Requests retried on another server, for metrics.
    pub retries: AtomicU64,
}

/// 20% of a retry per request.
const BUDGET_PER_REQUEST: u64 = 200;
/// The budget a group starts with and never exceeds: 10 retries.
const BUDGET_CAP: u64 = 10_000;

thread_local! {
    /// Round-robin position and tie breaker, per worker thread.
    static TURN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// xorshift state for random_two, per worker thread.
    static RANDOM: std::cell::Cell<u64> = const { std::cell::Cell::new(0x9E37_79B9_7F4A_7C15) };
}

/// Two random words: balancing needs spread, not secrecy.
fn random() -> [u64; 2] {
    RANDOM.with(|r| {
        let mut x = r.get();
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let out = [next(), next()];
        r.set(x);
        out
    })
}

/// A request in flight to a backend; dropping it ends the request's count.
#[derive(Debug)]
pub struct Lease {
    pub backend: Arc<Backend>,
    pub index: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Group {
    pub fn new(config: Upstream) -> Group {
        Group::carrying(config, None)
    }

    /// A group for `config` on reload: servers that `previous` also had,
    /// with the same weight and pool size, keep their state (health,
    /// failures, in-flight count, keep-alive connections).
    pub fn carrying(config: Upstream, previous: Option<&Group>) -> Group {
        let backends = config
            .servers
            .iter()
            .map(|s| {
                let kept = previous.and_then(|p| {
                    p.backends
                        .iter()
                        .find(|b| {
                            b.addr == s.addr
                                && b.config_weight == s.weight
                                && p.config.keepalive == config.keepalive
                        })
                        .cloned()
                });
                if let Some(b) = kept {
                    return b;
                }
                Arc::new(Backend {
                    addr: s.addr.clone(),
                    config_weight: s.weight,
                    weight: AtomicU32::new(s.weight),
                    drained: AtomicBool::new(false),
                    active: AtomicUsize::new(0),
                    passive: Mutex::new(Passive::default()),
                    healthy: AtomicBool::new(true),
                    requests: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    responses: Default::default(),
                    pool: Pool::new(s.addr.clone(), config.keepalive),
                })
            })
            .collect();
        Group {
            config,
            backends,
            budget: AtomicU64::new(BUDGET_CAP),
            retries: AtomicU64::new(0),
        }
    }

    /// Adds one request's share to the retry budget.
    pub fn earn_retry(&self) {
        // Usually full: then this is a plain read, with no write for the
        // workers to bounce between them.
        if self.budget.load(Ordering::Relaxed) < BUDGET_CAP {
            let _ = self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some((b + BUDGET_PER_REQUEST).min(BUDGET_CAP))
                });
        }
    }

    /// Takes one retry from the budget, if there is one.
    pub fn spend_retry(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_sub(1000)
            })
            .is_ok()
    }

    /// Leases an available server not in `tried`, or `None` if there is none.
    pub fn pick(&self, tried: &[usize], now: Instant) -> Option<Lease> {
        let candidates: Vec<Candidate> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(i, b)| !tried.contains(i) && b.available(now))
            .map(|(index, b)| Candidate {
                index,
                active: b.active(),
                weight: b.weight(),
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        // Per worker thread: no shared counter for the workers to contend on.
        let turn = TURN.with(|t| {
            let v = t.get();
            t.set(v.wrapping_add(1));
            v
        });
        let random = if self.config.balance == Balance::RandomTwo {
            random()
        } else {
            [0, 0]
        };
        let index = choose(self.config.balance, &candidates, turn, random);
        let backend = self.backends[index].clone();
        backend.active.fetch_add(1, Ordering::Relaxed);
        backend.requests.fetch_add(1, Ordering::Relaxed);
        Some(Lease { backend, index })
    }

    /// Records a failed attempt (connect error, timeout, 502-504) on a server.
    pub fn failed(&self, index: usize, now: Instant) {
        let b = &self.backends[index];
        b.failures.fetch_add(1, Ordering::Relaxed);
        let max = self.config.max_fails;
        if max == 0 {
            return;
        }
        let window = self.config.fail_timeout;
        let mut p = b.passive.lock().unwrap();
        if p.window_start
            .is_none_or(|start| now.duration_since(start) > window)
        {
            p.window_start = Some(now);
            p.fails = 0;
        }
        p.fails += 1;
        if p.fails >= max {
            p.down_until = Some(crate::later::Later::later(now, window));
            p.fails = 0;
            p.window_start = None;
            log::warn!(
                "upstream {}: {} marked failed for {:?} after {max} failure(s)",
                self.config.name,
                b.addr,
                window
            );
        }
    }

    /// Records a successful response: the failure count starts again.
    pub fn succeeded(&self, index: usize) {
        let mut p = self.backends[index].passive.lock().unwrap();
        p.fails = 0;
        p.window_start = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Balance, Server};

    fn group(n: u16, max_fails: u32) -> Group {
        Group::new(Upstream {
            name: "app".into(),
            servers: (0..n)
                .map(|i| Server {
                    addr: Target::Tcp(format!("127.0.0.1:{}", 8001 + i).parse().unwrap()),
                    weight: 1,
                })
                .collect(),
            balance: Balance::LeastConn,
            max_fails,
            fail_timeout: Duration::from_secs(30),
            keepalive: 4,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            send_timeout: Duration::from_secs(1),
            retries: 1,
            health_check: None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn leases_count_in_flight_requests() {
        let g = group(2, 3);
        let now = Instant::now();
        let a = g.pick(&[], now).unwrap();
        let b = g.pick(&[], now).unwrap();
        assert_ne!(a.index, b.index, "least_conn spreads two requests");
        let c = g.pick(&[], now).unwrap();
        assert_eq!(g.backends[c.index].active(), 2);
        drop((a, b, c));
        assert!(g.backends.iter().all(|b| b.active() == 0));
    }

    #[tokio::test(start_paused = true)]
    async fn max_fails_within_fail_timeout_takes_a_server_out_for_fail_timeout() {
        let g = group(2, 3);
        let t0 = Instant::now();
        for _ in 0..2 {
            g.failed(0, t0);
        }
        assert!(g.backends[0].available(t0), "two failures of three");
        g.failed(0, t0 + Duration::from_secs(1));
        assert!(!g.backends[0].available(t0 + Duration::from_secs(2)));
        assert_eq!(
            g.pick(&[], t0 + Duration::from_secs(2)).unwrap().index,
            1,
            "only the healthy one"
        );
        assert!(
            g.backends[0].available(t0 + Duration::from_secs(32)),
            "back after fail_timeout"
        );
        // Failures spread wider than fail_timeout do not add up.
        g.failed(1, t0);
        g.failed(1, t0 + Duration::from_secs(31));
        g.failed(1, t0 + Duration::from_secs(62));
        assert!(g.backends[1].available(t0 + Duration::from_secs(63)));
    }

    #[test]
    fn retries_are_budgeted_at_a_fifth_of_requests() {
        let g = group(2, 1);
        // The reserve: ten retries.
        assert_eq!((0..20).filter(|_| g.spend_retry()).count(), 10);
        // Then one retry per five requests.
        for _ in 0..50 {
            g.earn_retry();
        }
        assert_eq!((0..20).filter(|_| g.spend_retry()).count(), 10);
        // Never more saved than the reserve.
        for _ in 0..1000 {
            g.earn_retry();
        }
        assert_eq!((0..20).filter(|_| g.spend_retry()).count(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn no_available_server_gives_none() {
        let g = group(1, 1);
        let now = Instant::now();
        g.failed(0, now);
        assert!(g.pick(&[], now).is_none());
        let g = group(2, 1);
        assert!(g.pick(&[0, 1], now).is_none(), "all tried");
    }
}
