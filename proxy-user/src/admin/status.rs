//! `/status.json`: what the status page draws, in one document. Counters
//! are totals; the page turns them into rates between two polls (and the
//! latency buckets into a recent p99), so the daemon keeps no history.

use serde_json::{Value, json};

use super::Admin;
use crate::{
    cidr::Cidr,
    control_socket::protocol::ServerView,
    filter::{BanEntry, FilterMaps, origin_name},
    http::State,
    metrics::histogram::BOUNDS,
    state_file::{ListName, RuntimeState},
};

/// Sources listed in the page's top table.
const TOP: usize = 10;
/// Bans listed (`bans_total` counts them all): the page is for a glance,
/// `rampart block list` for the whole table.
const BANS_SHOWN: usize = 1000;

pub fn status(admin: &Admin, state: &State) -> Value {
    let names = state.route_names();
    let mut requests = 0u64;
    let mut buckets = vec![0u64; BOUNDS.len() + 1];
    for name in &names {
        let m = state.services.metrics.route(name);
        requests += m.totals().classes.iter().sum::<u64>();
        for (b, n) in buckets.iter_mut().zip(m.total.snapshot().buckets) {
            *b += n;
        }
    }
    let limited: u64 = state
        .limiters
        .values()
        .map(|l| l.counts[2].load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let listeners = state.services.metrics.listeners();
    let connections: i64 = listeners.iter().map(|(_, m)| m.active()).sum();
    let (backlog, backlog_max) = listeners
        .iter()
        .map(|(_, m)| m.backlog())
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    let now = tokio::time::Instant::now();
    let upstreams: Vec<Value> = state
        .groups
        .iter()
        .flat_map(|(group, g)| {
            g.backends().to_vec().into_iter().map(move |b| {
                let mut v =
                    serde_json::to_value(ServerView::of(group, &b, None, now)).unwrap_or_default();
                v["p99_ms"] = json!(
                    b.responses
                        .total
                        .snapshot()
                        .quantile(0.99)
                        .map(|s| s * 1000.0)
                );
                v
            })
        })
        .collect();
    let maps = admin
        .kernel
        .as_ref()
        .and_then(|s| FilterMaps::open(&s.pin_dir).ok());
    let mut drops = serde_json::Map::new();
    let mut top = Vec::new();
    let bans: Vec<BanEntry> = match &maps {
        Some(m) => {
            if let Ok(v) = m.verdicts() {
                for (i, c) in v.iter().enumerate() {
                    if proxy_common::stats::is_drop(i as u32) {
                        drops.insert(
                            proxy_common::stats::VERDICT_NAMES[i].into(),
                            json!(c.packets),
                        );
                    }
                }
            }
            let mut sources = m.sources().unwrap_or_default();
            sources.sort_by_key(|s| std::cmp::Reverse(s.state.packets));
            top = sources
                .iter()
                .take(TOP)
                .map(|s| {
                    json!({
                        "source": s.source.to_string(),
                        "packets": s.state.packets,
                        "bytes": s.state.bytes,
                        "drops": s.state.drops,
                    })
                })
                .collect();
            m.bans().unwrap_or_default()
        }
        None => state.services.gate.bans(),
    };
    // Reasons live in the state file (the kernel keeps only the origin).
    let runtime = RuntimeState::read(&state.config.control.state_file);
    let live = bans
        .iter()
        .filter(|b| b.remaining != Some(std::time::Duration::ZERO));
    let bans_total = live.clone().count();
    let bans: Vec<Value> = live
        .take(BANS_SHOWN)
        .map(|b| {
            let known = runtime
                .as_ref()
                .and_then(|r| r.entries.get(ListName::Block, Cidr::host(b.addr)));
            json!({
                "addr": b.addr.to_string(),
                "origin": known.map_or(origin_name(b.origin).to_string(), |e| e.origin.clone()),
                "reason": known.and_then(|e| e.reason.clone()),
                "expires_in": b.remaining.map(|d| d.as_secs()),
            })
        })
        .collect();
    let xdp: Vec<Value> = state
        .services
        .metrics
        .xdp()
        .into_iter()
        .map(|(interface, mode)| json!({ "interface": interface, "mode": mode }))
        .collect();
    json!({
        "time_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "requests": requests,
        "latency": { "bounds": BOUNDS, "buckets": buckets },
        "limited": limited,
        "connections": connections,
        "backlog": backlog,
        "backlog_max": backlog_max,
        "drops": drops,
        "xdp": xdp,
        "gate": state.services.gate.active(),
        "upstreams": upstreams,
        "bans": bans,
        "bans_total": bans_total,
        "top": top,
    })
}
