//! `rampart stats`: kernel counters by verdict (the pinned per-CPU counters,
//! summed; they work while the daemon is down), then the daemon's L7
//! counters (requests by status class per route, upstream servers, and the
//! userspace gate when it enforces).

use std::{fmt::Write, path::Path, time::Duration};

use anyhow::Result;
use proxy_common::{
    stats::{self, VERDICT_NAMES},
    syncookie::STAT_NAMES,
};
use serde_json::{Map, Value, json};

use super::Output;
use crate::{
    control_socket::{client::call, protocol::Request},
    filter::{FilterMaps, NewSourceMap, SynCookieMaps, syn_mode_name},
    metrics::route::CLASSES,
};

/// The SYN cookie state and counters (null without the `syn_*` maps: an
/// older filter).
fn syn_cookies(dir: &Path) -> Value {
    let Ok(maps) = SynCookieMaps::open(dir) else {
        return Value::Null;
    };
    let (Ok(config), Ok(counters)) = (maps.config(), maps.stats()) else {
        return Value::Null;
    };
    let counters: Map<String, Value> = counters
        .iter()
        .enumerate()
        .map(|(i, v)| (STAT_NAMES[i].to_string(), json!(v)))
        .collect();
    json!({
        "mode": syn_mode_name(config.mode),
        "now": maps.active(crate::filter::monotonic_ns()).unwrap_or(false),
        "counters": counters,
    })
}

/// The new-source budget, attack mode and what it dropped (null without the
/// `new_sources` map: an older filter).
fn new_sources(dir: &Path, dropped: Option<u64>) -> Value {
    let Ok(value) = NewSourceMap::open(dir).and_then(|m| m.get()) else {
        return Value::Null;
    };
    let now = crate::filter::monotonic_ns();
    json!({
        "rate": value.rate,
        "burst": value.burst,
        "attack_mode": value.attacking(now),
        "attacks": value.attacks,
        "attack_for_secs": value.attacking(now).then(|| now.saturating_sub(value.attack_since_ns) / 1_000_000_000),
        "dropped": dropped,
    })
}

pub fn stats(out: &Output, dir: &Path, socket: &Path, watch: Option<u64>) -> Result<()> {
    loop {
        let kernel = FilterMaps::open(dir).and_then(|maps| maps.verdicts());
        let l7 = call(socket, &Request::Stats);
        if let (Err(k), Err(l)) = (&kernel, &l7) {
            anyhow::bail!("no kernel counters ({k}) and no daemon ({l:#})");
        }
        let mut verdicts = Map::new();
        if let Ok(counters) = &kernel {
            for (i, c) in counters.iter().enumerate() {
                verdicts.insert(
                    VERDICT_NAMES[i].into(),
                    json!({ "packets": c.packets, "bytes": c.bytes }),
                );
            }
        }
        let syn = syn_cookies(dir);
        let dropped = kernel
            .as_ref()
            .ok()
            .map(|c| c[stats::NEW_LIMITED as usize].packets);
        let value = json!({
            "verdicts": if kernel.is_ok() { Value::Object(verdicts) } else { Value::Null },
            "syn_cookies": syn,
            "new_sources": new_sources(dir, dropped),
            "l7": l7.as_ref().ok(),
        });
        out.emit(&value, || {
            let mut s = String::new();
            match &kernel {
                Ok(counters) => {
                    let _ = writeln!(
                        s,
                        "{:<12} {:>6} {:>16} {:>18}",
                        "VERDICT", "ACTION", "PACKETS", "BYTES"
                    );
                    for (i, c) in counters.iter().enumerate() {
                        let action = stats::action(i as u32);
                        let _ = writeln!(
                            s,
                            "{:<12} {:>6} {:>16} {:>18}",
                            VERDICT_NAMES[i], action, c.packets, c.bytes
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(s, "kernel: {e}");
                }
            }
            if let Some(v) = value.get("syn_cookies").filter(|v| !v.is_null()) {
                let n = |k: &str| v["counters"][k].as_u64().unwrap_or(0);
                let _ = writeln!(
                    s,
                    "SYN cookies: mode {}, {} now; ACKs accepted {}, refused {}; floods {}",
                    v["mode"].as_str().unwrap_or("?"),
                    if v["now"].as_bool() == Some(true) {
                        "sent"
                    } else {
                        "not sent"
                    },
                    n("acks_accepted"),
                    n("acks_refused"),
                    n("attacks"),
                );
            }
            if let Some(v) = value.get("new_sources").filter(|v| !v.is_null()) {
                let budget = match v["rate"].as_u64() {
                    Some(0) | None => "no budget".to_string(),
                    Some(r) => format!("{r}/s, burst {}", v["burst"]),
                };
                let _ = writeln!(
                    s,
                    "New sources: budget {budget}; attack mode {}; attacks {}; dropped {}",
                    if v["attack_mode"].as_bool() == Some(true) {
                        format!("ON for {} s", v["attack_for_secs"])
                    } else {
                        "off".to_string()
                    },
                    v["attacks"],
                    v["dropped"],
                );
            }
            match &l7 {
                Ok(v) => l7_table(&mut s, v),
                Err(e) => {
                    let _ = writeln!(s, "\nL7: {e:#}");
                }
            }
            s
        });
        match watch {
            None => return Ok(()),
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
        }
    }
}

fn l7_table(s: &mut String, v: &Value) {
    let _ = write!(s, "\n{:<40}", "ROUTE");
    for c in CLASSES {
        let _ = write!(s, " {c:>10}");
    }
    s.push('\n');
    for r in v["routes"].as_array().into_iter().flatten() {
        let _ = write!(s, "{:<40}", r["route"].as_str().unwrap_or("?"));
        for c in CLASSES {
            let _ = write!(s, " {:>10}", r[c]);
        }
        s.push('\n');
    }
    let servers = v["upstreams"].as_array().map_or(&[][..], |a| a.as_slice());
    if !servers.is_empty() {
        let _ = writeln!(
            s,
            "\n{:<12} {:<24} {:>10} {:>9} {:>9}",
            "UPSTREAM", "SERVER", "REQUESTS", "FAILURES", "IN FLIGHT"
        );
        for u in servers {
            let _ = writeln!(
                s,
                "{:<12} {:<24} {:>10} {:>9} {:>9}",
                u["group"].as_str().unwrap_or("?"),
                u["addr"].as_str().unwrap_or("?"),
                u["requests"],
                u["failures"],
                u["in_flight"]
            );
        }
    }
    if let Some(gate) = v["userspace_gate"].as_object() {
        s.push_str("\nuserspace gate (no XDP), connections:");
        for (k, n) in gate {
            let _ = write!(s, " {k} {n}");
        }
        s.push('\n');
    }
}
