//! The userspace gate: when the XDP filter cannot run (no CAP_BPF, a kernel
//! or interface that refuses it, or a configuration without `[filter]`
//! interfaces), the same allowlist, blocklist, bans and per-source
//! connection rate (`[filter] syn`) are enforced here, at accept time,
//! before any TLS work: a refused connection is closed at once.
//!
//! The gate is inactive while XDP enforces (the kernel already dropped
//! those packets), and then costs one atomic load per accepted connection.

mod lists;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Mutex, RwLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
};

use proxy_common::{gcra, list::ORIGIN_CONFIG};
use tokio::time::Instant;

use lists::Lists;

use crate::{cidr::Cidr, config::RateLimit, source};

/// Sources whose connection rate is tracked; beyond this the least
/// indebted are forgotten first ([`make_room`]).
const MAX_SOURCES: usize = 65_536;

/// What the gate decided for a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Pass,
    Allowlisted,
    Blocklisted,
    Banned,
    RateLimited,
}

impl Admission {
    pub fn admitted(self) -> bool {
        matches!(self, Admission::Pass | Admission::Allowlisted)
    }

    pub const ALL: [Admission; 5] = [
        Admission::Pass,
        Admission::Allowlisted,
        Admission::Blocklisted,
        Admission::Banned,
        Admission::RateLimited,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Admission::Pass => "pass",
            Admission::Allowlisted => "allowlisted",
            Admission::Blocklisted => "blocklisted",
            Admission::Banned => "banned",
            Admission::RateLimited => "syn_limited",
        }
    }
}

#[derive(Debug, Default)]
struct Rate {
    /// GCRA interval and tolerance (ns); interval 0: no limit.
    interval: u64,
    tolerance: u64,
    /// Theoretical arrival time per source ([`source::key`]), ns since `start`.
    tat: HashMap<IpAddr, u64>,
}

/// The gate, shared by every worker's accept loops.
#[derive(Debug)]
pub struct Gate {
    active: AtomicBool,
    /// The IPv6 prefix that is one source, for bans and the connection rate.
    ipv6_prefix: AtomicU8,
    lists: RwLock<Lists>,
    rate: Mutex<Rate>,
    start: Instant,
    /// Connections by [`Admission`], in [`Admission::ALL`] order.
    counts: [AtomicU64; 5],
    /// Requests refused at L7 because the client a trusted proxy named is
    /// banned or blocklisted ([`Gate::refuses`]).
    refused_behind_proxy: AtomicU64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            active: AtomicBool::new(false),
            ipv6_prefix: AtomicU8::new(source::DEFAULT_IPV6_PREFIX),
            lists: RwLock::default(),
            rate: Mutex::default(),
            start: Instant::now(),
            counts: Default::default(),
            refused_behind_proxy: AtomicU64::new(0),
        }
    }
}

impl Gate {
    /// Starts enforcing (the kernel filter is not running).
    pub fn activate(&self) {
        self.active.store(true, Ordering::Release);
    }

    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Decides one accepted connection from `ip`.
    pub fn admit(&self, ip: IpAddr) -> Admission {
        if !self.active() {
            return Admission::Pass;
        }
        let verdict = self.decide(ip, Instant::now());
        let i = Admission::ALL
            .iter()
            .position(|a| *a == verdict)
            .unwrap_or(0);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        verdict
    }

    /// The source `ip` belongs to.
    fn key(&self, ip: IpAddr) -> IpAddr {
        source::key(ip, self.ipv6_prefix.load(Ordering::Relaxed))
    }

    /// The network one ban or budget covers, as views show it.
    pub fn source(&self, ip: IpAddr) -> Cidr {
        source::prefix(ip, self.ipv6_prefix.load(Ordering::Relaxed))
    }

    fn decide(&self, ip: IpAddr, now: Instant) -> Admission {
        let key = self.key(ip);
        {
            let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
            if lists.allow_set.contains(ip) {
                return Admission::Allowlisted;
            }
            if let Some((expiry, _)) = lists.bans.get(&key)
                && expiry.is_none_or(|t| now < t)
            {
                return Admission::Banned;
            }
            if lists.block_set.contains(ip) {
                return Admission::Blocklisted;
            }
        }
        let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        if rate.interval == 0 {
            return Admission::Pass;
        }
        let now_ns = now.duration_since(self.start).as_nanos() as u64;
        if rate.tat.len() >= MAX_SOURCES && !rate.tat.contains_key(&key) {
            make_room(&mut rate.tat, now_ns);
        }
        let (interval, tolerance) = (rate.interval, rate.tolerance);
        let tat = rate.tat.entry(key).or_insert(0);
        match gcra::admit(*tat, now_ns, interval, tolerance) {
            Some(next) => {
                *tat = next;
                Admission::Pass
            }
            None => Admission::RateLimited,
        }
    }

    /// Whether a client that a trusted proxy named is banned or blocklisted
    /// (and not allowlisted), counted when it is. The gate holds a copy of
    /// the lists and bans whichever tier enforces them at accept time
    /// ([`crate::enforcer::Tiers`]), so this works with XDP running too.
    pub fn refuses(&self, ip: IpAddr) -> bool {
        let key = self.key(ip);
        let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
        let refused = !lists.allow_set.contains(ip)
            && (lists
                .bans
                .get(&key)
                .is_some_and(|(expiry, _)| expiry.is_none_or(|t| Instant::now() < t))
                || lists.block_set.contains(ip));
        if refused {
            self.refused_behind_proxy.fetch_add(1, Ordering::Relaxed);
        }
        refused
    }

    /// Requests refused by [`Gate::refuses`].
    pub fn refused_behind_proxy(&self) -> u64 {
        self.refused_behind_proxy.load(Ordering::Relaxed)
    }

    /// Connections counted by admission, for `stats`.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        Admission::ALL
            .iter()
            .zip(&self.counts)
            .map(|(a, c)| (a.name(), c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Puts in force the configuration's lists (`allow`, `block`; entries
    /// added at runtime stay), the per-source connection rate (`None`: no
    /// limit) and what one IPv6 source is, all at once.
    pub fn configure(
        &self,
        allow: &[Cidr],
        block: &[Cidr],
        rate: Option<RateLimit>,
        ipv6_prefix: u8,
    ) {
        let mut lists = self.lists.write().unwrap_or_else(|p| p.into_inner());
        lists.allow.retain(|_, o| *o != ORIGIN_CONFIG);
        lists.block.retain(|_, o| *o != ORIGIN_CONFIG);
        for c in allow {
            lists.allow.insert(*c, ORIGIN_CONFIG);
        }
        for c in block {
            lists.block.insert(*c, ORIGIN_CONFIG);
        }
        lists.rebuild();
        // Under the lists' lock: no admission sees the new lists with the
        // old rate once this returns, nor the other way round.
        let mut state = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        (state.interval, state.tolerance) = rate.map_or((0, 0), |l| gcra::params(l.rate, l.burst));
        if self.ipv6_prefix.swap(ipv6_prefix, Ordering::Relaxed) != ipv6_prefix {
            // Budgets keyed by the old prefix would never be met again.
            state.tat.retain(|k, _| k.is_ipv4());
        }
    }

    /// The connection rate in force: (per second, burst).
    pub fn rate(&self) -> Option<(u64, u64)> {
        let rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        crate::filter::rate_of(rate.interval, rate.tolerance)
    }
}

/// Makes room in a full source table as the kernel's LRU map does, never
/// by forgetting everyone (which would hand every source, the heaviest
/// included, a full budget again). First the sources whose budget is full
/// again go (their theoretical arrival time has passed: forgetting them
/// changes nothing); if that is not enough, the eighth with the least debt
/// (the earliest TAT, the ones that would be forgiven soonest). A heavy
/// source, far in debt, keeps its exhausted budget. O(n), once per
/// `MAX_SOURCES / 8` new sources at most.
fn make_room(tat: &mut HashMap<IpAddr, u64>, now_ns: u64) {
    tat.retain(|_, t| *t > now_ns);
    if tat.len() < MAX_SOURCES {
        return;
    }
    let mut tats: Vec<u64> = tat.values().copied().collect();
    let cut = tats.len() / 8;
    let (_, threshold, _) = tats.select_nth_unstable(cut);
    let threshold = *threshold;
    let mut over = tat.len() - (MAX_SOURCES - MAX_SOURCES / 8);
    tat.retain(|_, t| {
        if over > 0 && *t <= threshold {
            over -= 1;
            return false;
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{config::Config, filter::List};

    /// Configures `g` as the daemon does for `[filter]` written `text`.
    fn configure(g: &Gate, text: &str) {
        let s = Config::parse(text, "t.toml".as_ref())
            .unwrap()
            .filter
            .unwrap();
        g.configure(&s.allow, &s.block, s.syn, s.ipv6_prefix);
    }

    #[tokio::test(start_paused = true)]
    async fn same_decisions_as_the_kernel_order() {
        let g = Gate::default();
        assert_eq!(
            g.admit("192.0.2.1".parse().unwrap()),
            Admission::Pass,
            "inactive"
        );
        configure(
            &g,
            "[filter]\nallow = [\"10.1.0.0/16\"]\nblock = [\"10.0.0.0/8\", \"192.0.2.7\", \"2001:db8::/32\"]\nsyn = { rate = 1, burst = 2 }\n",
        );
        g.activate();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            g.admit(ip("10.1.2.3")),
            Admission::Allowlisted,
            "allow wins"
        );
        assert_eq!(g.admit(ip("10.2.3.4")), Admission::Blocklisted);
        assert_eq!(g.admit(ip("192.0.2.7")), Admission::Blocklisted);
        assert_eq!(g.admit(ip("2001:db8::5")), Admission::Blocklisted);
        g.ban(ip("198.51.100.1"), Some(Duration::from_secs(10)), 1);
        assert_eq!(g.admit(ip("198.51.100.1")), Admission::Banned);
        tokio::time::advance(Duration::from_secs(11)).await;
        // Expired: the rate limit applies again (burst 2, then refused).
        assert_eq!(g.admit(ip("198.51.100.1")), Admission::Pass);
        assert_eq!(g.admit(ip("198.51.100.1")), Admission::Pass);
        assert_eq!(g.admit(ip("198.51.100.1")), Admission::RateLimited);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            g.admit(ip("198.51.100.1")),
            Admission::Pass,
            "one per second"
        );
        assert_eq!(g.sweep_bans(), 1);
        // Runtime entries survive a new configuration; config ones follow it.
        g.insert(List::Block, "203.0.113.0/24".parse().unwrap(), 1);
        configure(&g, "[filter]\n");
        assert_eq!(g.admit(ip("10.2.3.4")), Admission::Pass);
        assert_eq!(g.admit(ip("203.0.113.9")), Admission::Blocklisted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_source_table_evicts_and_keeps_the_heavy_sources_budget() {
        let g = Gate::default();
        configure(&g, "[filter]\nsyn = { rate = 1, burst = 5 }\n");
        g.activate();
        let heavy: IpAddr = "198.51.100.1".parse().unwrap();
        while g.admit(heavy).admitted() {}
        // Rotating sources fill the table, and more come.
        for i in 0..(MAX_SOURCES as u32 + MAX_SOURCES as u32 / 4) {
            let ip = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
            assert_eq!(g.admit(ip), Admission::Pass);
        }
        let tracked = g.rate.lock().unwrap().tat.len();
        println!(
            "after {} new sources: {tracked} tracked",
            MAX_SOURCES + MAX_SOURCES / 4
        );
        assert!(tracked <= MAX_SOURCES, "{tracked} tracked");
        assert_eq!(
            g.admit(heavy),
            Admission::RateLimited,
            "the heavy source's budget was not reset"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ipv6_ban_and_budget_cover_the_whole_prefix() {
        let g = Gate::default();
        configure(&g, "[filter]\nsyn = { rate = 1, burst = 2 }\n");
        g.activate();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        g.ban(ip("2001:db8:1:2::1"), None, 1);
        assert_eq!(g.admit(ip("2001:db8:1:2::1")), Admission::Banned);
        assert_eq!(
            g.admit(ip("2001:db8:1:2:ffff::2")),
            Admission::Banned,
            "another address of the banned /64"
        );
        assert_eq!(g.bans()[0].addr, ip("2001:db8:1:2::"), "kept by source");
        assert!(
            g.unban(ip("2001:db8:1:2::99")),
            "lifted by any address of it"
        );
        // One connection budget per /64; the next /64 has its own.
        assert_eq!(g.admit(ip("2001:db8:1:2::1")), Admission::Pass);
        assert_eq!(g.admit(ip("2001:db8:1:2::2")), Admission::Pass);
        assert_eq!(g.admit(ip("2001:db8:1:2::3")), Admission::RateLimited);
        assert_eq!(g.admit(ip("2001:db8:1:3::1")), Admission::Pass);
        // With `ipv6_prefix = 128` an address is a source.
        configure(&g, "[filter]\nipv6_prefix = 128\n");
        g.ban(ip("2001:db8:5::1"), None, 1);
        assert_eq!(g.admit(ip("2001:db8:5::2")), Admission::Pass);
        assert_eq!(g.admit(ip("2001:db8:5::1")), Admission::Banned);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_ipv6_prefix_starts_ipv6_budgets_afresh() {
        let g = Gate::default();
        configure(&g, "[filter]\nsyn = { rate = 1, burst = 1 }\n");
        g.activate();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for a in ["2001:db8:1:2::1", "192.0.2.1"] {
            while g.admit(ip(a)).admitted() {}
        }
        configure(
            &g,
            "[filter]\nsyn = { rate = 1, burst = 1 }\nipv6_prefix = 48\n",
        );
        assert_eq!(
            g.rate.lock().unwrap().tat.len(),
            1,
            "only the IPv4 budget is kept"
        );
        assert_eq!(g.admit(ip("2001:db8:1:2::1")), Admission::Pass);
        assert_eq!(g.admit(ip("192.0.2.1")), Admission::RateLimited);
    }
}
