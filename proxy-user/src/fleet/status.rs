//! What the fleet shows: [`Status`] for `rampart fleet status` (this host,
//! Redis's health, lag, every host's last heartbeat) and [`FleetMetrics`]
//! for `/metrics` (`rampart_fleet_*`, docs/metrics.md).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

use crate::config::FleetSettings;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub fleet: String,
    pub host: String,
    pub redis: String,
    /// "connecting", "up" or "down".
    pub health: String,
    /// The last error, while down.
    pub error: Option<String>,
    /// Unix ms of the last change of `health`.
    pub since_ms: u64,
    /// This host's position in the log (`epoch/id`).
    pub cursor: Option<String>,
    /// How far behind the newest log entry this host is (by publish time).
    pub lag_ms: u64,
    /// This host's changes not yet in Redis.
    pub pending: u64,
    /// Entries this host shares.
    pub own: u64,
    pub hosts: Vec<HostView>,
}

/// One host's heartbeat, as written every second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beat {
    pub at_ms: u64,
    pub lag_ms: u64,
    pub own: u64,
    pub pending: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HostView {
    pub host: String,
    /// Milliseconds since its last heartbeat (by this host's clock).
    pub last_heard_ms: u64,
    pub lag_ms: u64,
    pub own: u64,
    pub pending: u64,
}

impl Status {
    pub fn new(s: &FleetSettings) -> Status {
        Status {
            fleet: s.name.clone(),
            host: s.host_id.clone(),
            redis: format!("{}:{}", s.host, s.port),
            health: "connecting".into(),
            ..Status::default()
        }
    }
}

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
        ]
    }
}

/// Writes this host's heartbeat and reads every host's (values checked:
/// a record that is not a heartbeat is counted as malformed and skipped).
pub(super) async fn exchange(
    store: &mut super::store::Store,
    host: &str,
    beat: &Beat,
    metrics: &FleetMetrics,
) -> Result<Vec<HostView>, super::FleetError> {
    let record = serde_json::to_string(beat).unwrap_or_default();
    store.beat(host, &record).await?;
    let now = super::store::now_ms();
    let mut hosts = Vec::new();
    for (k, v) in store.hosts().await? {
        let (Ok(host), Ok(b)) = (String::from_utf8(k), serde_json::from_slice::<Beat>(&v)) else {
            metrics.skipped_malformed.fetch_add(1, Relaxed);
            continue;
        };
        if !crate::config::fleet::is_name(&host) {
            metrics.skipped_malformed.fetch_add(1, Relaxed);
            continue;
        }
        hosts.push(HostView {
            host,
            last_heard_ms: now.saturating_sub(b.at_ms),
            lag_ms: b.lag_ms,
            own: b.own,
            pending: b.pending,
        });
    }
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(hosts)
}
