//! The fleet task's counters (`rampart_fleet_*`, docs/metrics.md): the
//! fleet task ([`crate::fleet`]) counts, `/metrics` renders.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One metric family: name, type, help, and its samples (an optional
/// label and the value).
pub type Family = (
    &'static str,
    &'static str,
    &'static str,
    Vec<(Option<(&'static str, &'static str)>, u64)>,
);

/// Counters of the fleet task.
#[derive(Debug, Default)]
pub struct FleetMetrics {
    /// 1 while Redis answers.
    pub up: AtomicU64,
    pub published: AtomicU64,
    /// Changes read from the log or snapshot and handed to the main loop.
    pub received: AtomicU64,
    pub skipped_malformed: AtomicU64,
    pub skipped_oversize: AtomicU64,
    /// Redis errors (each failed step counts once).
    pub errors: AtomicU64,
    pub resyncs_log: AtomicU64,
    pub resyncs_snapshot: AtomicU64,
    /// Own entries published again (at start, or Redis lost them).
    pub republished: AtomicU64,
    pub lag_ms: AtomicU64,
    pub pending: AtomicU64,
    /// Fleet-wide limits: exchanges of counts done and failed, sources
    /// reported, and requests of other hosts charged here.
    pub limit_exchanges: AtomicU64,
    pub limit_failures: AtomicU64,
    pub limit_reported: AtomicU64,
    pub limit_charged: AtomicU64,
    /// `[filter] fleet_pps`: entries of the XDP sources maps read, full
    /// passes over them, and reads that failed.
    pub kernel_scanned: AtomicU64,
    pub kernel_passes: AtomicU64,
    pub kernel_scan_failures: AtomicU64,
    /// Hosts whose heartbeat is at most 10 s old (`fleet/status.rs`,
    /// `LIVE_MS`), this one included (0 before the first heartbeat).
    pub hosts_live: AtomicU64,
}

impl FleetMetrics {
    /// `(name, type, help, samples)` for the renderer.
    pub fn families(&self) -> Vec<Family> {
        let g = |a: &AtomicU64| a.load(Relaxed);
        vec![
            (
                "rampart_fleet_up",
                "gauge",
                "1 while the fleet's Redis answers",
                vec![(None, g(&self.up))],
            ),
            (
                "rampart_fleet_published_total",
                "counter",
                "changes of this host's entries published to the fleet",
                vec![(None, g(&self.published))],
            ),
            (
                "rampart_fleet_received_total",
                "counter",
                "changes read from the fleet's log or snapshot",
                vec![(None, g(&self.received))],
            ),
            (
                "rampart_fleet_skipped_total",
                "counter",
                "entries read from Redis and skipped as unusable",
                vec![
                    (Some(("reason", "malformed")), g(&self.skipped_malformed)),
                    (Some(("reason", "oversize")), g(&self.skipped_oversize)),
                ],
            ),
            (
                "rampart_fleet_errors_total",
                "counter",
                "failed exchanges with Redis (the host keeps enforcing its state)",
                vec![(None, g(&self.errors))],
            ),
            (
                "rampart_fleet_resyncs_total",
                "counter",
                "resynchronisations after a start or an outage, by how",
                vec![
                    (Some(("from", "log")), g(&self.resyncs_log)),
                    (Some(("from", "snapshot")), g(&self.resyncs_snapshot)),
                ],
            ),
            (
                "rampart_fleet_republished_total",
                "counter",
                "own entries published again (at start, or Redis lost them)",
                vec![(None, g(&self.republished))],
            ),
            (
                "rampart_fleet_lag_milliseconds",
                "gauge",
                "how far this host is behind the newest entry of the fleet's log",
                vec![(None, g(&self.lag_ms))],
            ),
            (
                "rampart_fleet_hosts",
                "gauge",
                "hosts of the fleet heard from in the last 10 s, this one included",
                vec![(None, g(&self.hosts_live))],
            ),
            (
                "rampart_fleet_pending",
                "gauge",
                "this host's changes not yet in Redis",
                vec![(None, g(&self.pending))],
            ),
            (
                "rampart_fleet_limit_exchanges_total",
                "counter",
                "exchanges of fleet-wide limits' counts with Redis, by result",
                vec![
                    (Some(("result", "ok")), g(&self.limit_exchanges)),
                    (Some(("result", "failed")), g(&self.limit_failures)),
                ],
            ),
            (
                "rampart_fleet_limit_reported_total",
                "counter",
                "sources whose requests this host reported for fleet-wide limits",
                vec![(None, g(&self.limit_reported))],
            ),
            (
                "rampart_fleet_limit_charged_total",
                "counter",
                "requests other hosts served that this host charged to fleet-wide limits",
                vec![(None, g(&self.limit_charged))],
            ),
            (
                "rampart_fleet_kernel_scanned_total",
                "counter",
                "entries of the XDP sources maps read for fleet_pps and fleet_syn",
                vec![(None, g(&self.kernel_scanned))],
            ),
            (
                "rampart_fleet_kernel_passes_total",
                "counter",
                "full passes over the XDP sources maps for fleet_pps and fleet_syn, by result",
                vec![
                    (Some(("result", "ok")), g(&self.kernel_passes)),
                    (Some(("result", "failed")), g(&self.kernel_scan_failures)),
                ],
            ),
        ]
    }
}
