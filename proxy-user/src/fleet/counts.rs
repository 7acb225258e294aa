//! Fleet-wide limits (docs/fleet.md): every host decides locally, at full
//! speed and with no Redis on the request path, and every `[fleet]
//! exchange` (200 ms) tells the fleet how many requests it served each
//! source of a `fleet = true` zone, reads back the fleet's totals, and
//! charges what the *other* hosts served into its own limiter. Every
//! host's bucket for a source thus fills with the whole fleet's requests
//! and drains at the zone's rate: the fleet holds the rate.
//!
//! In Redis, one sorted set per zone and wall-clock window
//! ([`WINDOW_MS`]), `rampart:{NAME}:count:ZONE:WINDOW`, member = source,
//! score = requests the fleet served it in the window; it expires two
//! windows later. One script per zone and exchange: `ZINCRBY` of each
//! reported source (whose new total comes back), then the fleet's
//! heaviest sources (`ZREVRANGEBYSCORE`, at most [`TOP`]) so that a host
//! charges a source the others see before it sees it itself.
//!
//! Each host remembers the fleet total it last saw per source in the
//! window (`seen`); what is new in a total, less its own report, is the
//! others' share since: each of their requests is charged exactly once.
//! A total lower than seen (Redis restarted empty, the key lost) charges
//! nothing. Everything read back is untrusted: a member that is not an
//! address or a score that is not a plausible count is counted and skipped.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
};

use log::{info, warn};
use redis::aio::ConnectionManager;

use super::{FleetError, FleetMetrics, store};
pub use crate::counted::Counted;
use crate::{config::FleetSettings, limit::Limiter};

impl Counted for Limiter {
    fn key(&self) -> String {
        format!("limit:{}", self.zone.name)
    }

    fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)> {
        Limiter::take_unreported(self, max)
    }

    fn charge(&self, ip: IpAddr, n: u64, now: tokio::time::Instant) {
        Limiter::charge(self, ip, n, now);
    }

    /// A tenth of what the zone allows a source in a window.
    fn heavy(&self) -> u64 {
        let per_window = u128::from(self.rate()) * u128::from(WINDOW_MS) / 1_000_000;
        u64::try_from(per_window / 10).unwrap_or(u64::MAX).max(1)
    }
}

/// The counting window: one sorted set per zone and window.
pub const WINDOW_MS: u64 = 10_000;
/// Most of the fleet's heaviest sources read back per exchange.
pub const TOP: usize = 256;
/// Sources a zone remembers fleet totals for in one window.
const MAX_SEEN: usize = 200_000;
/// A score above this is not a count (a window holds at most 10 s of
/// 1,000,000 r/s from 256 hosts).
const MAX_SCORE: f64 = 1e13;

/// `KEYS[1]` the window's set; `ARGV` ttl ms, top count, top minimum
/// score, then source, count pairs → `{{new totals}, {source, score...}}`.
/// Members longer than an address are blanked.
const EXCHANGE: &str = r"
local totals = {}
for i = 4, #ARGV, 2 do
  totals[#totals + 1] = redis.call('ZINCRBY', KEYS[1], ARGV[i + 1], ARGV[i])
end
if #ARGV >= 4 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local top = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[3], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #top, 2 do
  if #top[i] > 45 then top[i] = '' end
end
return {totals, top}
";

/// One zone's memory of the current window.
#[derive(Default)]
struct ZoneState {
    window: u64,
    /// Fleet total last seen per source in `window` (own reports included).
    seen: HashMap<IpAddr, u64>,
}

/// What one exchange did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exchanged {
    /// Sources this host reported.
    pub reported: usize,
    /// Requests other hosts served, charged here.
    pub charged: u64,
    /// Entries read back and skipped as unusable.
    pub skipped: u64,
}

/// This host's side of the fleet's counts: a connection and each zone's window.
pub struct Counts {
    con: ConnectionManager,
    prefix: String,
    script: redis::Script,
    max_sources: usize,
    zones: HashMap<String, ZoneState>,
}

impl Counts {
    pub fn new(s: &FleetSettings) -> Result<Counts, FleetError> {
        Ok(Counts {
            con: store::connect(s)?,
            prefix: format!("rampart:{{{}}}:count", s.name),
            script: redis::Script::new(EXCHANGE),
            max_sources: s.exchange_sources,
            zones: HashMap::new(),
        })
    }

    /// Reports what `counted` counted since the last exchange, and charges
    /// it what the other hosts counted. On an error the reports of this
    /// exchange are lost (the host went on deciding locally meanwhile).
    pub async fn exchange(&mut self, counted: &dyn Counted) -> Result<Exchanged, FleetError> {
        let reports = counted.take_unreported(self.max_sources);
        let now_ms = store::now_ms();
        let window = now_ms / WINDOW_MS;
        let name = counted.key();
        let key = format!("{}:{name}:{window}", self.prefix);
        let mut call = self.script.key(&key);
        call.arg(WINDOW_MS * 2).arg(TOP).arg(counted.heavy());
        for (ip, n) in &reports {
            call.arg(ip.to_string()).arg(*n);
        }
        let (totals, top): (Vec<String>, Vec<String>) = call.invoke_async(&mut self.con).await?;
        let state = self.zones.entry(name).or_default();
        if state.window != window {
            state.window = window;
            state.seen.clear();
        }
        let mut done = Exchanged {
            reported: reports.len(),
            ..Exchanged::default()
        };
        let now = tokio::time::Instant::now();
        let charge = |state: &mut ZoneState, ip: IpAddr, total: u64, own: u64| {
            let known = state.seen.get(&ip).copied();
            if known.is_none() && state.seen.len() >= MAX_SEEN {
                return 0;
            }
            state.seen.insert(ip, total);
            let others = total.saturating_sub(known.unwrap_or(0)).saturating_sub(own);
            if others > 0 {
                counted.charge(ip, others, now);
            }
            others
        };
        if totals.len() != reports.len() {
            return Err(FleetError::Protocol("one total per reported source"));
        }
        for ((ip, own), total) in reports.iter().zip(&totals) {
            match score(total) {
                Some(t) => done.charged += charge(state, *ip, t, u64::from(*own)),
                None => done.skipped += 1,
            }
        }
        let reported: std::collections::HashSet<IpAddr> = reports.iter().map(|r| r.0).collect();
        for pair in top.chunks(2).take(TOP) {
            let parsed = match pair {
                [m, s] => m.parse::<IpAddr>().ok().zip(score(s)),
                _ => None,
            };
            match parsed {
                // Its own reports are in the totals above.
                Some((ip, _)) if reported.contains(&ip) => {}
                Some((ip, t)) => done.charged += charge(state, ip, t, 0),
                None => done.skipped += 1,
            }
        }
        Ok(done)
    }

    /// Forgets zones and rules no longer configured.
    pub fn retain(&mut self, counted: &[Arc<dyn Counted>]) {
        let keep: Vec<String> = counted.iter().map(|c| c.key()).collect();
        self.zones.retain(|name, _| keep.contains(name));
    }
}

/// A score as Redis prints it: a non-negative whole count.
pub(crate) fn score(s: &str) -> Option<u64> {
    let v: f64 = s.parse().ok()?;
    (v.is_finite() && (0.0..=MAX_SCORE).contains(&v)).then_some(v as u64)
}

/// Runs the exchange every `settings.exchange` for what `zones` returns
/// (the configuration in force: reloads add and remove zones and rules).
/// Redis down: said once, retried at every period; the limits stay local.
pub fn spawn(
    settings: &FleetSettings,
    zones: impl Fn() -> Vec<Arc<dyn Counted>> + Send + 'static,
    metrics: Arc<FleetMetrics>,
) -> Result<(), FleetError> {
    let mut counts = Counts::new(settings)?;
    let period = settings.exchange;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let zones = zones();
            counts.retain(&zones);
            let prepared = zones.clone();
            // Blocking reads (the XDP maps) stay off the runtime's workers.
            let _ = tokio::task::spawn_blocking(move || {
                for l in &prepared {
                    l.prepare();
                }
            })
            .await;
            for l in &zones {
                let outcome = tokio::time::timeout(period * 5, counts.exchange(&**l)).await;
                match outcome {
                    Ok(Ok(done)) => {
                        if std::mem::take(&mut failing) {
                            info!("fleet: limits' counts exchanged again; fleet-wide limits hold");
                        }
                        metrics.limit_exchanges.fetch_add(1, Relaxed);
                        metrics
                            .limit_reported
                            .fetch_add(done.reported as u64, Relaxed);
                        metrics.limit_charged.fetch_add(done.charged, Relaxed);
                        metrics.skipped_malformed.fetch_add(done.skipped, Relaxed);
                    }
                    Ok(Err(e)) => failed(&mut failing, &metrics, &e.to_string()),
                    Err(_) => failed(&mut failing, &metrics, "timed out"),
                }
            }
        }
    });
    Ok(())
}

fn failed(failing: &mut bool, metrics: &FleetMetrics, e: &str) {
    metrics.limit_failures.fetch_add(1, Relaxed);
    if !std::mem::replace(failing, true) {
        warn!(
            "fleet: cannot exchange limits' counts ({e}); each host holds fleet = true limits \
             on its own traffic until Redis answers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::score;

    #[test]
    fn only_plausible_counts_are_scores() {
        assert_eq!(score("12"), Some(12));
        assert_eq!(score("3.0"), Some(3));
        for bad in ["-1", "nan", "inf", "1e300", "", "x", "12 "] {
            assert_eq!(score(bad), None, "{bad}");
        }
    }
}
