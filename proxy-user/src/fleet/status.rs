//! What the fleet shows: [`Status`] for `rampart fleet status` (this host,
//! Redis's health, lag, every host's last heartbeat). Its counters for
//! `/metrics` are [`crate::metrics::fleet::FleetMetrics`].

use std::sync::atomic::Ordering::Relaxed;

use serde::{Deserialize, Serialize};

use crate::{config::FleetSettings, metrics::fleet::FleetMetrics};

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

/// A host heard from within this long counts in the fleet's size
/// (`rampart_fleet_hosts`; the kernel thresholds' reporting floor): ten
/// heartbeats.
pub const LIVE_MS: u64 = 10_000;

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
    let live = hosts.iter().filter(|h| h.last_heard_ms <= LIVE_MS).count();
    metrics.hosts_live.store(live as u64, Relaxed);
    Ok(hosts)
}
