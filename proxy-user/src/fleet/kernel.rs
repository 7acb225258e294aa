//! The kernel tier's fleet-wide thresholds (`[filter] fleet_pps` and
//! `fleet_syn`, docs/fleet.md "Kernel thresholds"): the packets and SYNs
//! each source sent this host, read from the XDP program's per-source LRU
//! maps, are exchanged like a `fleet = true` escalation rule's responses
//! ([`super::counts`]). A host whose window for a source (its own count
//! plus what the others reported) passes `count` bans it through the
//! escalation path, which shares the ban with every host (and so puts it
//! in every host's XDP maps).
//!
//! The program keeps one more counter per source (`SourceState::syns`)
//! and nothing else: no new map. One read of the maps serves both
//! thresholds; it is done in bounded slices ([`SCAN_BUDGET`] entries per
//! family and exchange, `filter/source_scan.rs`), off the async runtime
//! (the exchange runs [`Counted::prepare`] on a blocking thread). Only a
//! source that sent this host at least [`KernelRules::min_report`] within
//! one period of `within` enters a rule's window (and so Redis): the many
//! small sources cost neither memory in the rule nor Redis traffic. That
//! floor is `count / (16 x N)` for the N hosts heard from (at least 2), so
//! the fleet as a whole under-counts a source by less than `count / 8`
//! whatever its size (the bound in docs/fleet.md).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
};

use log::{info, warn};
use tokio::time::Instant;

use super::counts::Counted;
use crate::{
    config::{EscalateRule, FleetThreshold},
    escalate::{RuleState, Sink},
    filter::source_scan::{Delta, SourceDeltas},
    metrics::fleet::FleetMetrics,
};

/// Entries of each family's map read per exchange, at most: about 5 ms of
/// CPU per exchange with both maps full (320 ns an entry, release build),
/// and a full pass of the default 65,536-entry maps in four exchanges.
pub const SCAN_BUDGET: usize = 16_384;
/// Each host holds back less than `2 x count / (SHARE x N)` of a source for
/// N hosts: the fleet, less than `2 / SHARE` of `count`.
pub const SHARE: u64 = 16;

/// What a kernel threshold counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// `fleet_pps`: every packet.
    Packets,
    /// `fleet_syn`: TCP SYNs without ACK.
    Syns,
}

impl Counter {
    /// The name in bans' reasons (`escalate.rs` words the reason by it).
    pub fn name(self) -> &'static str {
        match self {
            Counter::Packets => "filter.fleet_pps",
            Counter::Syns => "filter.fleet_syn",
        }
    }

    /// The name in Redis keys and `top --fleet`.
    pub fn key(self) -> &'static str {
        match self {
            Counter::Packets => "kernel:pps",
            Counter::Syns => "kernel:syn",
        }
    }

    fn of(self, d: &Delta) -> u64 {
        match self {
            Counter::Packets => d.packets,
            Counter::Syns => d.syns,
        }
    }
}

/// One threshold and its rule's windows.
struct Rule {
    counter: Counter,
    threshold: FleetThreshold,
    state: RuleState,
}

struct Scan {
    maps: Box<dyn SourceDeltas>,
    /// Per rule, what each source sent not yet in the rule's window, in
    /// the current period of the rule's `within` (cleared when it changes).
    pending: Vec<(u64, HashMap<IpAddr, u64>)>,
    failing: bool,
}

/// `[filter] fleet_pps` and `fleet_syn` on this host, fed by one scan.
pub struct KernelRules {
    rules: Vec<Rule>,
    sink: Sink,
    scan: Mutex<Scan>,
    started: Instant,
    metrics: Arc<FleetMetrics>,
}

impl KernelRules {
    /// `maps`: the sources maps this host's XDP program fills (a
    /// [`crate::filter::source_scan::SourceScan`]); bans go to `sink`.
    /// None without a threshold.
    pub fn new(
        thresholds: &[(Counter, FleetThreshold)],
        maps: Box<dyn SourceDeltas>,
        sink: Sink,
        metrics: Arc<FleetMetrics>,
    ) -> Option<Arc<KernelRules>> {
        if thresholds.is_empty() {
            return None;
        }
        let rules: Vec<Rule> = thresholds
            .iter()
            .map(|&(counter, threshold)| Rule {
                counter,
                threshold,
                state: RuleState::new(EscalateRule {
                    name: counter.name().into(),
                    // No statuses: the reason says packets or SYNs.
                    statuses: Vec::new(),
                    count: threshold.count,
                    within: threshold.within,
                    ban: threshold.ban,
                    fleet: true,
                }),
            })
            .collect();
        let pending = rules.iter().map(|_| (0, HashMap::new())).collect();
        Some(Arc::new(KernelRules {
            rules,
            sink,
            scan: Mutex::new(Scan {
                maps,
                pending,
                failing: false,
            }),
            started: Instant::now(),
            metrics,
        }))
    }

    /// The least a source must send this host in a period to be counted
    /// under the rule of `count`, with `hosts` hosts heard from.
    pub fn min_report(count: u64, hosts: u64) -> u64 {
        (count / (SHARE * hosts.max(2))).max(1)
    }

    /// Hosts heard from lately (this one included).
    fn hosts(&self) -> u64 {
        self.metrics.hosts_live.load(Relaxed)
    }

    /// Each rule's threshold and reporting floor now, for the log.
    pub fn describe(&self) -> Vec<(Counter, FleetThreshold, u64)> {
        let hosts = self.hosts();
        self.rules
            .iter()
            .map(|r| {
                let floor = Self::min_report(r.threshold.count, hosts);
                (r.counter, r.threshold, floor)
            })
            .collect()
    }

    /// Reads the maps (a bounded slice, blocking syscalls) and counts what
    /// the sources sent in every rule.
    fn read_maps(&self, now: Instant) {
        let mut scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        let scan = &mut *scan;
        let (read_before, passes_before) = scan.maps.progress();
        let deltas = match scan.maps.read(SCAN_BUDGET) {
            Ok(d) => {
                if std::mem::take(&mut scan.failing) {
                    info!("fleet: the XDP sources maps are read again (fleet_pps, fleet_syn)");
                }
                d
            }
            Err(e) => {
                self.metrics.kernel_scan_failures.fetch_add(1, Relaxed);
                if !std::mem::replace(&mut scan.failing, true) {
                    warn!(
                        "fleet: cannot read the XDP sources maps ({e}); fleet_pps and fleet_syn count only what the other hosts report"
                    );
                }
                Vec::new()
            }
        };
        let (read, passes) = scan.maps.progress();
        self.metrics
            .kernel_scanned
            .fetch_add(read - read_before, Relaxed);
        self.metrics
            .kernel_passes
            .fetch_add(passes - passes_before, Relaxed);
        let hosts = self.hosts();
        let elapsed = now.duration_since(self.started).as_millis();
        for (rule, (period, pending)) in self.rules.iter().zip(&mut scan.pending) {
            let within = rule.threshold.within.as_millis().max(1);
            let now_period = u64::try_from(elapsed / within).unwrap_or(u64::MAX);
            if *period != now_period {
                *period = now_period;
                pending.clear();
            }
            let min = Self::min_report(rule.threshold.count, hosts);
            for (ip, d) in &deltas {
                let n = rule.counter.of(d);
                if n == 0 {
                    continue;
                }
                let held = pending.entry(*ip).or_insert(0);
                *held = held.saturating_add(n);
                if *held >= min {
                    let n = std::mem::take(held);
                    rule.state
                        .count_and_report(rule.counter.name(), &self.sink, *ip, n, true, now);
                }
            }
            pending.retain(|_, n| *n > 0);
        }
    }
}

/// One rule of [`KernelRules`] as the fleet's exchange sees it.
struct RuleCounted {
    rules: Arc<KernelRules>,
    index: usize,
}

impl RuleCounted {
    fn rule(&self) -> &Rule {
        &self.rules.rules[self.index]
    }
}

impl Counted for RuleCounted {
    fn key(&self) -> String {
        self.rule().counter.key().into()
    }

    /// The first rule reads the maps for all (the exchange prepares every
    /// counted before exchanging any).
    fn prepare(&self) {
        if self.index == 0 {
            self.rules.read_maps(Instant::now());
        }
    }

    fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)> {
        self.rule().state.take_unreported(max)
    }

    fn charge(&self, ip: IpAddr, n: u64, now: Instant) {
        let rule = self.rule();
        rule.state
            .count_and_report(rule.counter.name(), &self.rules.sink, ip, n, false, now);
    }

    /// A tenth of the threshold: such a source is charged on every host.
    fn heavy(&self) -> u64 {
        (self.rule().threshold.count / 10).max(1)
    }
}

/// Each rule, shared as a [`Counted`] with the fleet's exchange.
pub fn counted(rules: &Arc<KernelRules>) -> Vec<Arc<dyn Counted>> {
    (0..rules.rules.len())
        .map(|index| {
            Arc::new(RuleCounted {
                rules: rules.clone(),
                index,
            }) as Arc<dyn Counted>
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{
        net::IpAddr,
        sync::{Arc, Mutex},
        time::Duration,
    };

    use super::{Counter, KernelRules, counted};
    use crate::{
        config::FleetThreshold,
        escalate::Sink,
        filter::{
            FilterError,
            source_scan::{Delta, SourceDeltas},
        },
        metrics::fleet::FleetMetrics,
    };

    /// What a scan of the maps would give, fed by the test.
    struct Fed(Arc<Mutex<Vec<(IpAddr, Delta)>>>);

    impl SourceDeltas for Fed {
        fn read(&mut self, _budget: usize) -> Result<Vec<(IpAddr, Delta)>, FilterError> {
            Ok(std::mem::take(&mut *self.0.lock().unwrap()))
        }

        fn progress(&self) -> (u64, u64) {
            (0, 0)
        }
    }

    #[tokio::test]
    async fn counts_from_any_source_of_deltas_are_reported_over_the_floor_and_ban_over_the_threshold()
     {
        let feed = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut bans) = tokio::sync::mpsc::channel(16);
        let sink = Sink {
            queue: tx,
            metrics: Arc::default(),
        };
        let t = FleetThreshold {
            count: 320,
            within: Duration::from_secs(10),
            ban: Duration::from_secs(60),
        };
        let rules = KernelRules::new(
            &[(Counter::Syns, t)],
            Box::new(Fed(feed.clone())),
            sink,
            Arc::new(FleetMetrics::default()),
        )
        .unwrap();
        let rule = &counted(&rules)[0];
        let (small, big): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let syns = |n| Delta {
            packets: n,
            syns: n,
        };
        // No host heard from yet: the floor is 320 / 32 = 10 SYNs.
        feed.lock()
            .unwrap()
            .extend([(small, syns(9)), (big, syns(50))]);
        rule.prepare();
        assert_eq!(rule.take_unreported(100), vec![(big, 50)]);
        assert!(bans.try_recv().is_err());
        // The small source reaches the floor; the big one passes the threshold.
        feed.lock()
            .unwrap()
            .extend([(small, syns(1)), (big, syns(300))]);
        rule.prepare();
        let mut reported = rule.take_unreported(100);
        reported.sort();
        assert_eq!(reported, vec![(small, 10), (big, 300)]);
        let ban = bans.try_recv().expect("a ban");
        assert_eq!((ban.addr, ban.count), (big, 350));
        assert_eq!(ban.rule, "filter.fleet_syn");
        assert!(bans.try_recv().is_err());
    }

    #[test]
    fn the_reporting_floor_shrinks_with_the_fleet_so_the_fleet_holds_back_under_an_eighth() {
        // Before any heartbeat, and for one or two hosts: count / 32.
        assert_eq!(KernelRules::min_report(3000, 0), 93);
        assert_eq!(KernelRules::min_report(3000, 2), 93);
        assert_eq!(KernelRules::min_report(3000, 3), 62);
        assert_eq!(KernelRules::min_report(10, 100), 1);
        for hosts in [2u64, 3, 16, 50, 256] {
            let count = 1_000_000;
            // Each host holds back less than two floors (one pending in
            // the current period, one lost when the period turns).
            let fleet_held = 2 * hosts * KernelRules::min_report(count, hosts);
            assert!(fleet_held <= count / 8, "{hosts} hosts: {fleet_held}");
        }
    }
}
