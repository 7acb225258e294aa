//! The kernel tier's fleet-wide threshold (`[filter] fleet_pps`,
//! docs/fleet.md "Kernel thresholds"): the packets each source sent this
//! host, read from the XDP program's per-source LRU maps, are exchanged
//! like a `fleet = true` escalation rule's responses ([`super::counts`]).
//! A host whose window for a source (its own packets plus what the others
//! reported) passes `count` bans it through the escalation path, which
//! shares the ban with every host (and so puts it in every host's XDP maps).
//!
//! The XDP program is not touched: no new map, no per-packet cost. The maps
//! are read in bounded slices ([`SCAN_BUDGET`] entries per family and
//! exchange, `filter/source_scan.rs`). Only a source that sent this host at
//! least `count / 32` packets within one period of `within` enters the
//! rule's window (and so Redis): the many small sources cost neither memory
//! in the rule nor Redis traffic, and each host under-counts a source by
//! less than `2 x count / 32` (the bound in docs/fleet.md).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
};

use log::{info, warn};
use tokio::time::Instant;

use super::counts::Counted;
use crate::{
    config::{EscalateRule, FleetPps},
    escalate::{RuleState, Sink},
    filter::source_scan::SourceScan,
    metrics::fleet::FleetMetrics,
};

/// Entries of each family's map read per exchange, at most: about 5 ms of
/// CPU per exchange with both maps full (320 ns an entry, release build),
/// and a full pass of the default 65,536-entry maps in four exchanges.
pub const SCAN_BUDGET: usize = 16_384;
/// A source enters the fleet's counts once it sent this host `count / MIN_SHARE`
/// within one period of `within`.
pub const MIN_SHARE: u64 = 32;
/// The name in bans' reasons and in Redis keys.
const NAME: &str = "filter.fleet_pps";

struct Scan {
    maps: SourceScan,
    /// Packets per source not yet in the rule's window, in the current
    /// period of `within` (cleared when the period changes).
    pending: HashMap<IpAddr, u64>,
    period: u64,
    failing: bool,
}

/// `[filter] fleet_pps` on this host.
pub struct KernelRule {
    threshold: FleetPps,
    state: Arc<RuleState>,
    sink: Sink,
    scan: Mutex<Scan>,
    started: Instant,
    metrics: Arc<FleetMetrics>,
}

impl KernelRule {
    /// `maps`: the sources maps this host's XDP program fills; bans go to `sink`.
    pub fn new(
        threshold: FleetPps,
        maps: SourceScan,
        sink: Sink,
        metrics: Arc<FleetMetrics>,
    ) -> KernelRule {
        let rule = EscalateRule {
            name: NAME.into(),
            // No statuses: the reason says packets.
            statuses: Vec::new(),
            count: threshold.count,
            within: threshold.within,
            ban: threshold.ban,
            fleet: true,
        };
        KernelRule {
            threshold,
            state: Arc::new(RuleState::new(rule)),
            sink,
            scan: Mutex::new(Scan {
                maps,
                pending: HashMap::new(),
                period: 0,
                failing: false,
            }),
            started: Instant::now(),
            metrics,
        }
    }

    /// The least a source must send this host in a period to be counted.
    pub fn min_report(&self) -> u64 {
        (self.threshold.count / MIN_SHARE).max(1)
    }

    /// Reads the maps (a bounded slice) and counts what the sources sent.
    fn read_maps(&self, now: Instant) {
        let mut scan = self.scan.lock().unwrap_or_else(|p| p.into_inner());
        let within = self.threshold.within.as_millis().max(1);
        let period = u64::try_from(now.duration_since(self.started).as_millis() / within)
            .unwrap_or(u64::MAX);
        if scan.period != period {
            scan.period = period;
            scan.pending.clear();
        }
        let (read_before, passes_before) = (scan.maps.entries_read, scan.maps.passes);
        let deltas = match scan.maps.read(SCAN_BUDGET) {
            Ok(d) => {
                if std::mem::take(&mut scan.failing) {
                    info!("fleet: the XDP sources maps are read again (fleet_pps)");
                }
                d
            }
            Err(e) => {
                self.metrics.kernel_scan_failures.fetch_add(1, Relaxed);
                if !std::mem::replace(&mut scan.failing, true) {
                    warn!(
                        "fleet: cannot read the XDP sources maps ({e}); fleet_pps counts only what the other hosts report"
                    );
                }
                Vec::new()
            }
        };
        self.metrics
            .kernel_scanned
            .fetch_add(scan.maps.entries_read - read_before, Relaxed);
        self.metrics
            .kernel_passes
            .fetch_add(scan.maps.passes - passes_before, Relaxed);
        let min = self.min_report();
        for (ip, n) in deltas {
            let pending = scan.pending.entry(ip).or_insert(0);
            *pending = pending.saturating_add(n);
            if *pending >= min {
                let n = std::mem::take(pending);
                self.state
                    .count_and_report(NAME, &self.sink, ip, n, true, now);
            }
        }
    }
}

impl Counted for KernelRule {
    fn key(&self) -> String {
        "kernel:pps".into()
    }

    fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)> {
        self.read_maps(Instant::now());
        self.state.take_unreported(max)
    }

    fn charge(&self, ip: IpAddr, n: u64, now: Instant) {
        self.state
            .count_and_report(NAME, &self.sink, ip, n, false, now);
    }

    /// A tenth of the threshold: such a source is charged on every host.
    fn heavy(&self) -> u64 {
        (self.threshold.count / 10).max(1)
    }
}

/// Shared as a [`Counted`] with the fleet's exchange.
pub fn counted(rule: &Arc<KernelRule>) -> Arc<dyn Counted> {
    rule.clone()
}
