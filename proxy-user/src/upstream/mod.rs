//! Upstream groups: servers, their load and health, and the lease that
//! counts a request in flight; and rampart's HTTP/1 client to them
//! (`pool`, `request_head`, `exchange`, `response_body`; docs/http1.md).
//!
//! Health is passive (nginx `max_fails` failures within `fail_timeout` take a
//! server out for `fail_timeout`) and, when configured, active (`health.rs`).

mod balance;
mod conn;
mod exchange;
mod head;
mod health;
mod pool;
pub mod request_head;
mod resolve;
mod response_body;
mod stall;
mod stream;
mod tried;
mod view;

use std::sync::{
    Arc, Mutex, RwLock,
    atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
};

pub use crate::config::target::{MAX_UNIX_PATH, Target, TargetError};
pub use balance::{Candidate, choose};
pub use conn::Conn;
pub use exchange::SendError;
pub use head::MAX_HEAD;
#[cfg(test)]
pub use head::head_of;
pub use head::{Answer, Head};
pub use health::spawn_checks;
pub use pool::{Pool, SURPLUS_IDLE};
pub use resolve::{spawn_resolution, unresolved_names};
pub use response_body::{BodyError, ResponseBody};
pub use stall::WriteStall;
pub use stream::Stream;
use tokio::time::Instant;
pub use tried::Tried;

use crate::config::{Address, Balance, Upstream};

/// One server of a group, shared by every request that uses it.
#[derive(Debug)]
pub struct Backend {
    pub addr: Target,
    /// The `host:port` it was resolved from, for a server written as a name.
    pub name: Option<Arc<str>>,
    /// The weight the configuration gives it...
    pub config_weight: u32,
    /// ...and the one in force (`rampart upstream weight` changes it).
    weight: AtomicU32,
    /// A standby: picked only when no primary server is available
    /// (nginx `backup`).
    pub backup: bool,
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
    fn new(
        addr: Target,
        name: Option<Arc<str>>,
        weight: u32,
        backup: bool,
        keepalive: usize,
    ) -> Backend {
        Backend {
            pool: Pool::new(addr, keepalive),
            addr,
            name,
            config_weight: weight,
            weight: AtomicU32::new(weight),
            backup,
            drained: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            passive: Mutex::new(Passive::default()),
            healthy: AtomicBool::new(true),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            responses: Default::default(),
        }
    }

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
    servers: Servers,
    /// Retry budget in thousandths of a retry: every request adds
    /// [`BUDGET_PER_REQUEST`], a retry after a response or a timeout spends
    /// 1000. Retries on an overloaded group then add at most 20% to its load
    /// instead of multiplying it. (A failed connect reached nobody: its
    /// retries are free.)
    budget: AtomicU64,
    /// Requests retried on another server, for metrics.
    pub retries: AtomicU64,
}

/// A group's servers.
#[derive(Debug)]
enum Servers {
    /// Every server written as an address or socket: the set never changes.
    Fixed(Arc<Vec<Arc<Backend>>>),
    /// Some written as names: the set is replaced whole when one resolves
    /// to other addresses (`resolve.rs`); a request uses the set it found.
    Resolved(RwLock<Arc<Vec<Arc<Backend>>>>),
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
}

impl Lease {
    /// Which server it is, for [`Group::pick`]'s `tried` (the set of a
    /// group with names may change between two attempts: no indices).
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.backend) as usize
    }
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
    /// failures, in-flight count, keep-alive connections); so do the
    /// addresses a name resolved to, until it is resolved again.
    pub fn carrying(config: Upstream, previous: Option<&Group>) -> Group {
        let before = previous
            .filter(|p| p.config.keepalive == config.keepalive)
            .map(|p| p.backends());
        let mut backends = Vec::new();
        for s in &config.servers {
            let same = |b: &&Arc<Backend>| b.config_weight == s.weight && b.backup == s.backup;
            match &s.addr {
                Address::Fixed(t) => backends.push(
                    before
                        .iter()
                        .flat_map(|l| l.iter())
                        .filter(same)
                        .find(|b| b.name.is_none() && b.addr == *t)
                        .cloned()
                        .unwrap_or_else(|| {
                            Arc::new(Backend::new(*t, None, s.weight, s.backup, config.keepalive))
                        }),
                ),
                Address::Name { .. } => {
                    let name = s.addr.to_string();
                    backends.extend(
                        before
                            .iter()
                            .flat_map(|l| l.iter())
                            .filter(same)
                            .filter(|b| b.name.as_deref() == Some(name.as_str()))
                            .cloned(),
                    )
                }
            }
        }
        let named = config
            .servers
            .iter()
            .any(|s| matches!(s.addr, Address::Name { .. }));
        let backends = Arc::new(backends);
        Group {
            config,
            servers: if named {
                Servers::Resolved(RwLock::new(backends))
            } else {
                Servers::Fixed(backends)
            },
            budget: AtomicU64::new(BUDGET_CAP),
            retries: AtomicU64::new(0),
        }
    }

    /// The servers now (a snapshot: a name's new addresses replace the set).
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        match &self.servers {
            Servers::Fixed(list) => list.clone(),
            Servers::Resolved(set) => set.read().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Replaces the servers of a group with names (see `resolve.rs`).
    fn replace_backends(&self, list: Vec<Arc<Backend>>) {
        if let Servers::Resolved(set) = &self.servers {
            *set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(list);
        }
    }

    /// Whether `backend` is one of its servers now.
    pub fn has(&self, backend: &Arc<Backend>) -> bool {
        self.backends().iter().any(|b| Arc::ptr_eq(b, backend))
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

    /// Leases an available server not in `tried` ([`Lease::id`]s), or
    /// `None` if there is none. Backups are considered only when no
    /// primary is (nginx: a request goes to the backups once every
    /// primary is down or has been tried).
    pub fn pick(&self, tried: &[usize], now: Instant) -> Option<Lease> {
        match &self.servers {
            Servers::Fixed(list) => self.pick_in(list, tried, now),
            Servers::Resolved(set) => {
                let list = set.read().unwrap_or_else(|p| p.into_inner()).clone();
                self.pick_in(&list, tried, now)
            }
        }
    }

    #[inline]
    fn pick_in(&self, list: &[Arc<Backend>], tried: &[usize], now: Instant) -> Option<Lease> {
        let usable =
            |b: &Arc<Backend>| !tried.contains(&(Arc::as_ptr(b) as usize)) && b.available(now);
        // The candidates on the stack for a group of up to `INLINE`
        // servers (no allocation per request), in a `Vec` past that.
        const INLINE: usize = 16;
        let mut room = [Candidate::default(); INLINE];
        let mut spilled = Vec::new();
        let mut gather = |backup: bool| -> usize {
            let mut n = 0;
            for (index, b) in list.iter().enumerate() {
                if b.backup != backup || !usable(b) {
                    continue;
                }
                let c = Candidate {
                    index,
                    active: b.active(),
                    weight: b.weight(),
                };
                if list.len() <= INLINE {
                    room[n] = c;
                } else {
                    spilled.push(c);
                }
                n += 1;
            }
            n
        };
        let mut n = gather(false);
        if n == 0 {
            n = gather(true);
        }
        if n == 0 {
            return None;
        }
        let candidates = if list.len() <= INLINE {
            &room[..n]
        } else {
            &spilled[..]
        };
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
        let index = choose(self.config.balance, candidates, turn, random);
        let backend = list[index].clone();
        backend.active.fetch_add(1, Ordering::Relaxed);
        backend.requests.fetch_add(1, Ordering::Relaxed);
        Some(Lease { backend })
    }

    /// Records a failed attempt (connect error, timeout, 502-504) on a server.
    pub fn failed(&self, b: &Backend, now: Instant) {
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
    pub fn succeeded(&self, b: &Backend) {
        let mut p = b.passive.lock().unwrap();
        p.fails = 0;
        p.window_start = None;
    }
}

#[cfg(test)]
mod tests;
