//! Fleet-wide limits' counts: each simulated host is what a daemon has: a
//! `fleet = true` limit zone ([`Limiter`], 100 r/s burst 20) and its own
//! fleet client ([`Counts`], its own Redis connection), exchanging every
//! 200 ms (hosts staggered over the period, as real hosts are). One abuser
//! is spread evenly over all hosts at 3x the limit, decided by the real
//! limiter (what the fleet must hold); and every host reports, each
//! period, `sources` clients of its own that it served once (what Redis
//! must absorb: their reports are made up, not decided, so that the
//! simulation of 50 hosts keeps up).
//!
//! Then the request path: nanoseconds per limit decision with `fleet` on
//! and off (the only extra work is one counter in the source's bucket).

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use proxy_user::{
    config::{LimitZone, units::Rate},
    fleet::counts::{Counted, Counts},
    limit::{self, Decision, Limiter},
};

/// A host's zone as the exchange sees it: the real limiter's reports (the
/// abuser) and `sources` made-up clients served once per period.
struct SimZone {
    limiter: Arc<Limiter>,
    host: usize,
    sources: usize,
}

impl Counted for SimZone {
    fn key(&self) -> String {
        Counted::key(&*self.limiter)
    }

    fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)> {
        let mut out = self.limiter.take_unreported(max);
        let room = max.saturating_sub(out.len()).min(self.sources);
        out.extend((0..room).map(|i| (benign(self.host, i), 1)));
        out
    }

    fn charge(&self, ip: IpAddr, n: u64, now: tokio::time::Instant) {
        // Only the abuser is decided; the made-up clients' charges are
        // what the real limiter would do with any other source.
        if !matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10) {
            self.limiter.charge(ip, n, now);
        }
    }

    fn heavy(&self) -> u64 {
        self.limiter.heavy()
    }
}
use tests::redis::Redis;

use crate::common::{Cost, PERIOD, TICK, benign, info, settings};

pub const RATE: u64 = 100;
pub const BURST: u64 = 20;

fn zone(fleet: bool, max_clients: usize) -> LimitZone {
    LimitZone {
        name: "api".into(),
        rate: Rate {
            per_1000s: RATE * 1000,
        },
        burst: BURST,
        delay_after: BURST,
        dry_run: false,
        status: 429,
        max_clients,
        fleet,
    }
}

pub struct Row {
    pub hosts: usize,
    pub sources: usize,
    pub members: u64,
    pub cost: Cost,
    pub reported: f64,
    /// Exchanges that failed (their reports lost, as in the daemon).
    pub failed: usize,
    pub held: f64,
}

pub async fn simulate(redis: &Redis, hosts: usize, sources: usize, secs: u64) -> Row {
    let name = format!("bench{hosts}x{sources}");
    let mut fleet: Vec<(Counts, SimZone)> = (0..hosts)
        .map(|h| {
            let counts = Counts::new(&settings(redis.port, &name, h)).expect("a fleet client");
            let limiter = Arc::new(Limiter::new(zone(true, 1000)));
            (
                counts,
                SimZone {
                    limiter,
                    host: h,
                    sources,
                },
            )
        })
        .collect();
    let abuser: IpAddr = "198.18.0.1".parse().unwrap();
    let per_period = (PERIOD.as_millis() / TICK.as_millis()) as usize;
    let ticks = secs as usize * 1000 / TICK.as_millis() as usize;
    // Each host's share of the abuser, by the wall clock (a row whose
    // simulation falls behind still offers 3x the limit in real time).
    let share = 3.0 * RATE as f64 / hosts as f64;
    let mut offered = vec![0u64; hosts];
    let (mut served, mut reported, mut failed) = (0u64, 0u64, 0usize);
    let before = info(redis);
    let start = Instant::now();
    let t0 = tokio::time::Instant::now();
    for t in 0..ticks {
        tokio::time::sleep_until(t0 + TICK * t as u32).await;
        let now = tokio::time::Instant::now();
        for (h, (counts, zone)) in fleet.iter_mut().enumerate() {
            let due = (share * now.duration_since(t0).as_secs_f64()) as u64;
            while offered[h] < due {
                offered[h] += 1;
                if limit::check(&[&*zone.limiter], abuser, now) == Decision::Pass {
                    served += 1;
                }
            }
            if t % per_period == h % per_period {
                match counts.exchange(&*zone).await {
                    Ok(done) => reported += done.reported as u64,
                    Err(_) => failed += 1,
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = info(redis);
    let window = proxy_user::fleet::store::now_ms() / proxy_user::fleet::counts::WINDOW_MS;
    let key = format!("rampart:{{{name}}}:count:limit:api:{window}");
    let members = redis.cli(&["ZCARD", &key]).parse().unwrap_or(0);
    Row {
        hosts,
        sources,
        members,
        cost: Cost::between(before, after, hosts, elapsed),
        failed,
        reported: reported as f64 / elapsed,
        held: served as f64 / (RATE as f64 * elapsed + (BURST + 1) as f64),
    }
}

/// Nanoseconds per decision for one zone, `fleet` on or off: `n`
/// requests from 1000 clients, the clock moving 1 ms every 1000.
pub fn decide_ns(fleet: bool, n: u32) -> f64 {
    let l = Limiter::new(zone(fleet, 10_000));
    let t0 = tokio::time::Instant::now();
    let start = Instant::now();
    for i in 0..n {
        let ip = IpAddr::from((0x0a00_0000 | (i % 1000)).to_be_bytes());
        let now = t0 + Duration::from_millis(u64::from(i / 1000));
        std::hint::black_box(limit::check(&[&l], ip, now));
        if fleet && i % 20_000 == 0 {
            // As the exchange does every period.
            std::hint::black_box(l.take_unreported(2000));
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}
