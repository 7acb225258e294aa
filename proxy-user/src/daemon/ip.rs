//! `rampart ip show ADDR`: everything the daemon knows about one source.

use std::net::IpAddr;

use anyhow::Result;
use serde_json::{Value, json};

use super::Daemon;
use crate::{
    cidr::Cidr,
    control_socket::protocol::ServerView,
    filter::{List, monotonic_ns, origin_name},
    source,
    state_file::{ListName, unix_now},
};

/// A GCRA budget as operators read it: cells used of the burst, from the
/// source's theoretical arrival time.
fn budget(tat: u64, now: u64, interval: u64, tolerance: u64) -> Value {
    if interval == 0 {
        return json!({ "limit": "off" });
    }
    let burst = tolerance / interval + 1;
    let used = tat.saturating_sub(now).div_ceil(interval).min(burst);
    json!({
        "rate_per_s": 1_000_000_000 / interval,
        "burst": burst,
        "used": used,
        "left": burst - used,
    })
}

impl Daemon {
    pub(super) fn ip_show(&self, addr: IpAddr) -> Result<Value> {
        let now_unix = unix_now();
        let e = self.enforcer_ref();
        let matching = |list: List, name: ListName| -> Result<Vec<Value>> {
            Ok(e.entries(list)?
                .into_iter()
                .filter(|(c, _)| c.contains(addr))
                .map(|(cidr, origin)| {
                    let known = self.runtime.entry(name, cidr);
                    json!({
                        "cidr": cidr,
                        "origin": known.map_or(origin_name(origin).to_string(), |e| e.origin.clone()),
                        "reason": known.and_then(|e| e.reason.clone()),
                        "host": known.and_then(|e| e.host.clone()),
                        "expires_in": known.and_then(|e| e.remaining(now_unix)).map(|d| d.as_secs()),
                    })
                })
                .collect())
        };
        let allow = matching(List::Allow, ListName::Allow)?;
        let block = matching(List::Block, ListName::Block)?;
        // Bans, limits and counters act on the source: for IPv6 its prefix.
        let prefix = self.config.ipv6_prefix();
        let key = source::key(addr, prefix);
        let ban = e
            .bans()?
            .into_iter()
            .find(|b| b.addr == key && b.remaining != Some(std::time::Duration::ZERO))
            .map(|b| {
                let known = self.runtime.entry(ListName::Block, Cidr::host(key));
                json!({
                    "source": source::prefix(key, prefix),
                    "origin": known.map_or(origin_name(b.origin).to_string(), |e| e.origin.clone()),
                    "reason": known.and_then(|e| e.reason.clone()),
                    "host": known.and_then(|e| e.host.clone()),
                    "expires_in": b.remaining.map(|d| d.as_secs()),
                })
            });
        let verdict = if !allow.is_empty() {
            "allowed (never filtered)"
        } else if ban.is_some() {
            "banned"
        } else if !block.is_empty() {
            "blocked"
        } else {
            "filtered by the rate limits only"
        };
        let mut out = json!({
            "addr": addr,
            "acted_on": source::prefix(addr, prefix),
            "enforced_in": e.tier(),
            "verdict": verdict,
            "allow": allow,
            "block": block,
            "ban": ban,
            "source": null,
            // Never banned in the kernel tier; its clients are refused at
            // L7 by their own addresses (docs/kernel-tier.md).
            "trusted_proxy": self
                .config
                .http
                .real_ip
                .as_ref()
                .is_some_and(|r| r.trusts(addr)),
        });
        if let Some(f) = self.reconciler.filter() {
            let cfg = f.maps.config()?;
            let clock = monotonic_ns();
            out["source"] = f.maps.source(addr)?.map_or(Value::Null, |s| {
                json!({
                    "packets": s.packets,
                    "syns": s.syns,
                    "bytes": s.bytes,
                    "drops": s.drops,
                    "last_seen_s_ago": clock.saturating_sub(s.last_seen_ns) / 1_000_000_000,
                    "pps_budget": budget(s.pps_tat, clock, cfg.pps_interval_ns, cfg.pps_tolerance_ns),
                    "syn_budget": budget(s.syn_tat, clock, cfg.syn_interval_ns, cfg.syn_tolerance_ns),
                })
            });
        }
        let state = self.shared.load();
        let now = tokio::time::Instant::now();
        let l7: Vec<Value> = state
            .limiters
            .iter()
            .map(|(name, l)| {
                json!({
                    "zone": name,
                    "queued": l.queued(key, now),
                    "burst": l.burst(),
                })
            })
            .collect();
        out["l7_limits"] = json!(l7);
        Ok(out)
    }
}

impl Daemon {
    pub(super) fn l7_stats(&self) -> Result<Value> {
        let state = self.shared.load();
        let names = state.route_names();
        let routes: Vec<Value> = names
            .iter()
            .map(|name| {
                let totals = state.services.metrics.route(name).totals().classes;
                let mut v = json!({ "route": name });
                for (class, n) in crate::metrics::route::CLASSES.iter().zip(totals) {
                    v[*class] = json!(n);
                }
                v
            })
            .collect();
        let now = tokio::time::Instant::now();
        let upstreams: Vec<ServerView> = state
            .groups
            .iter()
            .flat_map(|(group, g)| {
                g.backends()
                    .to_vec()
                    .into_iter()
                    .map(move |b| ServerView::of(group, &b, None, now))
            })
            .collect();
        let gate = self.reconciler.gate();
        let gate = gate.active().then(|| {
            let counts: serde_json::Map<String, Value> = gate
                .counts()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Value::Object(counts)
        });
        Ok(json!({ "routes": routes, "upstreams": upstreams, "userspace_gate": gate }))
    }
}
