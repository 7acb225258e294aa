//! The kernel tier's thresholds (`[filter] fleet_pps`, `fleet_syn`) as the
//! daemon runs them: each simulated host has the product's
//! [`KernelRules`] (both thresholds, their windows and reporting floor),
//! exchanged by its own fleet client ([`Counts`]) like the daemon's
//! exchange task does (prepare, which reads the maps, then one exchange
//! per rule), and its fleet task ([`Hosts`]) through which a ban it
//! decides reaches the others. Only the maps are simulated: the rules read
//! the per-source deltas a scan of the XDP maps would give
//! ([`SourceDeltas`]) from what the simulation sent the host.
//!
//! Traffic per host and exchange: `sources` benign sources of its own,
//! each just over the reporting floor for both thresholds (so each is
//! counted and reported: what Redis must absorb; a source comes back every
//! tenth period, so none nears a threshold), and [`ABUSERS`] sources spread
//! evenly over all hosts at 2x a threshold (half send SYNs, half other
//! packets; one starting every 130 ms), each below the floor on some hosts
//! in some periods. A host that bans an abuser stops counting it (XDP
//! drops it before counting).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use proxy_user::{
    cidr::Cidr,
    config::FleetThreshold,
    escalate::{AutoBan, QUEUE, Sink},
    filter::{
        FilterError,
        source_scan::{Delta, SourceDeltas},
    },
    fleet::{
        counts::Counts,
        kernel::{self, Counter, KernelRules},
    },
};
use tests::redis::Redis;
use tokio::sync::mpsc;

use crate::{
    common::{Cost, PERIOD, TICK, benign, info, quantile, settings},
    hosts::Hosts,
};

/// Abusers (half SYN floods, half other packets).
pub const ABUSERS: usize = 10;
/// `fleet_pps` (as in `tests/kernel/fleet_pps.rs`).
pub const PPS: FleetThreshold = FleetThreshold {
    count: 3000,
    within: Duration::from_secs(10),
    ban: Duration::from_secs(600),
};
/// `fleet_syn` (as in `tests/kernel/fleet_syn.rs`).
pub const SYN: FleetThreshold = FleetThreshold {
    count: 1500,
    within: Duration::from_secs(10),
    ban: Duration::from_secs(600),
};
/// Abusers' rate to the whole fleet, in thresholds per `within`.
const OVER: f64 = 2.0;

/// What the host's XDP program counted since the rules last read it.
#[derive(Clone, Default)]
struct Maps(Arc<Mutex<HashMap<IpAddr, Delta>>>);

impl Maps {
    fn add(&self, ip: IpAddr, packets: u64, syns: u64) {
        let mut m = self.0.lock().unwrap();
        let d = m.entry(ip).or_default();
        d.packets += packets;
        d.syns += syns;
    }
}

impl SourceDeltas for Maps {
    fn read(&mut self, _budget: usize) -> Result<Vec<(IpAddr, Delta)>, FilterError> {
        Ok(self.0.lock().unwrap().drain().collect())
    }

    fn progress(&self) -> (u64, u64) {
        (0, 0)
    }
}

pub struct Row {
    pub hosts: usize,
    pub sources: usize,
    /// Sources reported a second over the fleet (both rules).
    pub reported: f64,
    /// Exchanges that failed (their reports lost, as in the daemon).
    pub failed: usize,
    pub cost: Cost,
    /// Abusers banned on every host, of [`ABUSERS`].
    pub banned_everywhere: usize,
    /// Benign sources banned anywhere (none should be).
    pub wrongly_banned: usize,
    /// From the moment an abuser's fleet total passed its threshold to
    /// its ban on the last host.
    pub p50: Duration,
    pub max: Duration,
}

fn abuser(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 1, i as u8))
}

pub async fn simulate(redis: &Redis, hosts: usize, sources: usize, secs: u64) -> Row {
    let name = format!("kernel{hosts}x{sources}");
    let fleet = Hosts::start(redis.port, &name, hosts).await;
    let mut sim = Vec::new();
    for h in 0..hosts {
        let maps = Maps::default();
        let (tx, rx) = mpsc::channel::<AutoBan>(QUEUE);
        let sink = Sink {
            queue: tx,
            metrics: Arc::default(),
        };
        let thresholds = [(Counter::Packets, PPS), (Counter::Syns, SYN)];
        let rules = KernelRules::new(
            &thresholds,
            Box::new(maps.clone()),
            sink,
            fleet.metrics[h].clone(),
        )
        .expect("two thresholds");
        let counts = Counts::new(&settings(redis.port, &name, h)).expect("a fleet client");
        sim.push((maps, kernel::counted(&rules), counts, rx));
    }
    let per_period = (PERIOD.as_millis() / TICK.as_millis()) as usize;
    let ticks = secs as usize * 1000 / TICK.as_millis() as usize;
    // Each host's share of an abuser a second.
    let threshold = |i: usize| if i.is_multiple_of(2) { SYN } else { PPS };
    let share = |i: usize| {
        let t = threshold(i);
        OVER * t.count as f64 / t.within.as_secs_f64() / hosts as f64
    };
    // Abuser `i` starts `i x 130 ms` in, so that the abusers pass their
    // thresholds at different points of the hosts' exchange periods.
    let begins = |i: usize| Duration::from_millis(130 * i as u64);
    let floor = |t: FleetThreshold| KernelRules::min_report(t.count, hosts as u64);
    let mut offered = vec![vec![0u64; ABUSERS]; hosts];
    let mut reported = 0u64;
    let (mut wrong, mut failed) = (0usize, 0usize);
    let before = info(redis);
    let start = Instant::now();
    let t0 = tokio::time::Instant::now();
    for t in 0..ticks {
        tokio::time::sleep_until(t0 + TICK * t as u32).await;
        let now = tokio::time::Instant::now();
        let since = now.duration_since(t0).as_secs_f64();
        for (h, (maps, counted, counts, bans)) in sim.iter_mut().enumerate() {
            let enforced: Vec<bool> = (0..ABUSERS)
                .map(|i| fleet.enforced(&Cidr::host(abuser(i)))[h].is_some())
                .collect();
            for (i, sent) in offered[h].iter_mut().enumerate() {
                let due = (share(i) * (since - begins(i).as_secs_f64()).max(0.0)) as u64;
                if !enforced[i] && due > *sent {
                    let syns = if i.is_multiple_of(2) { due - *sent } else { 0 };
                    maps.add(abuser(i), due - *sent, syns);
                }
                *sent = due;
            }
            if t % per_period != h % per_period {
                continue;
            }
            // This period's benign sources: each back every tenth period.
            let round = t / per_period;
            for i in 0..sources {
                let ip = benign(h, (round * sources + i) % (sources * 10));
                maps.add(ip, floor(PPS), floor(SYN));
            }
            // As `fleet::counts::spawn`: read the maps, then exchange.
            for c in counted.iter() {
                c.prepare();
            }
            for c in counted.iter() {
                match counts.exchange(&**c).await {
                    Ok(done) => reported += done.reported as u64,
                    Err(_) => failed += 1,
                }
            }
            // As the daemon's main loop: ban, and share the ban.
            while let Ok(ban) = bans.try_recv() {
                if !matches!(ban.addr, IpAddr::V4(v4) if v4.octets()[..3] == [198, 18, 1]) {
                    wrong += 1;
                }
                fleet.ban(h, Cidr::host(ban.addr), ban.reason());
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = info(redis);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut delays = Vec::new();
    for i in 0..ABUSERS {
        let at = fleet.enforced(&Cidr::host(abuser(i)));
        let passed = start
            + begins(i)
            + Duration::from_secs_f64(threshold(i).count as f64 / (share(i) * hosts as f64));
        if at.iter().all(Option::is_some) {
            let last = at.iter().flatten().max().copied().unwrap_or(passed);
            delays.push(last.saturating_duration_since(passed));
        }
    }
    delays.sort();
    fleet.stop().await;
    Row {
        hosts,
        sources,
        reported: reported as f64 / elapsed,
        failed,
        cost: Cost::between(before, after, hosts, elapsed),
        banned_everywhere: delays.len(),
        wrongly_banned: wrong,
        p50: quantile(&delays, 0.5),
        max: delays.last().copied().unwrap_or_default(),
    }
}
