//! `rampart map list|dump`: the pinned maps, decoded into typed rows (as
//! bpftool does for BTF maps, but with addresses and durations spelled out).

use std::{fmt::Write, path::Path};

use anyhow::{Result, bail};
use aya::maps::MapInfo;
use proxy_common::{config as kcfg, list, pin, stats::VERDICT_NAMES};
use serde_json::{Value, json};

use super::Output;
use crate::filter::{
    FilterMaps, Index, List, SynCookieMaps, XdpLog, probe_lens, rate_of, syn_mode_name,
};

pub fn origin_name(origin: u32) -> &'static str {
    match origin {
        list::ORIGIN_CONFIG => "config",
        list::ORIGIN_CLI => "cli",
        list::ORIGIN_ESCALATION => "escalation",
        _ => "unknown",
    }
}

pub fn list(out: &Output, dir: &Path) -> Result<()> {
    let maps = FilterMaps::open(dir)?;
    let mut rows = Vec::new();
    for name in pin::ALL_MAPS {
        let path = dir.join(name);
        if !path.exists()
            && matches!(
                name,
                pin::LOG | pin::LOG_SUPPRESSED | pin::NEW_SOURCES | pin::LISTED
            )
        {
            // Pinned by an older daemon, which had no such maps.
            continue;
        }
        let info = MapInfo::from_pin(&path)?;
        let entries = match name {
            pin::CONFIG
            | pin::VERDICTS
            | pin::LOG
            | pin::LOG_SUPPRESSED
            | pin::NEW_SOURCES
            | pin::LISTED => info.max_entries() as usize,
            _ => dump_rows(&maps, name)?.len(),
        };
        rows.push(json!({
            "name": name,
            "id": info.id(),
            "type": format!("{:?}", info.map_type()?).to_lowercase(),
            "max_entries": info.max_entries(),
            "entries": entries,
            "key_size": info.key_size(),
            "value_size": info.value_size(),
            "pinned": path,
        }));
    }
    let value = json!(rows);
    out.emit(&value, || {
        let mut s = format!(
            "{:<14} {:>5} {:<14} {:>10} {:>10}  PINNED\n",
            "NAME", "ID", "TYPE", "ENTRIES", "MAX"
        );
        for r in &rows {
            let _ = writeln!(
                s,
                "{:<14} {:>5} {:<14} {:>10} {:>10}  {}",
                r["name"].as_str().unwrap_or(""),
                r["id"],
                r["type"].as_str().unwrap_or(""),
                r["entries"],
                r["max_entries"],
                r["pinned"].as_str().unwrap_or("")
            );
        }
        s
    });
    Ok(())
}

pub fn dump(out: &Output, dir: &Path, name: &str) -> Result<()> {
    if !pin::ALL_MAPS.contains(&name) {
        bail!(
            "no map called `{name}`; `rampart map list` shows them: {}",
            pin::ALL_MAPS.join(", ")
        );
    }
    let maps = FilterMaps::open(dir)?;
    let rows = dump_rows(&maps, name)?;
    let value = json!(rows);
    out.emit(&value, || {
        let mut s = String::new();
        for r in &rows {
            let fields: Vec<String> = r
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| {
                            format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(s, "{}", fields.join("  "));
        }
        if rows.is_empty() {
            s.push_str("(empty)\n");
        }
        s
    });
    Ok(())
}

/// The entries of one map as JSON objects.
fn dump_rows(maps: &FilterMaps, name: &str) -> Result<Vec<Value>> {
    let lists = |list: List, v4: bool, host: Option<bool>| -> Result<Vec<Value>> {
        Ok(maps
            .entries(list)?
            .into_iter()
            .filter(|(c, _)| c.addr().is_ipv4() == v4 && host.is_none_or(|h| c.is_host() == h))
            .map(|(c, o)| json!({ "network": c.to_string(), "origin": origin_name(o) }))
            .collect())
    };
    Ok(match name {
        pin::CONFIG => {
            let c = maps.config()?;
            let limit = |i, t| rate_of(i, t).map(|(rate, burst)| json!({ "rate": rate, "burst": burst }));
            vec![json!({
                "enabled": c.has(kcfg::FLAG_ENABLED),
                "track_sources": c.has(kcfg::FLAG_TRACK_SOURCES),
                "pps": limit(c.pps_interval_ns, c.pps_tolerance_ns),
                "syn": limit(c.syn_interval_ns, c.syn_tolerance_ns),
                "pps_interval_ns": c.pps_interval_ns,
                "syn_interval_ns": c.syn_interval_ns,
                "ipv6_prefix": c.v6_prefix_len,
                "range_probes_v4": c.has(kcfg::FLAG_RANGES_INDEXED_V4).then(|| probe_lens(&c, true)),
                "range_probes_v6": c.has(kcfg::FLAG_RANGES_INDEXED_V6).then(|| probe_lens(&c, false)),
                "index_v4": c.has(kcfg::FLAG_INDEX_V4).then(|| json!({
                    "address_buckets": c.index_mask_v4 + 1, "address_overflow": c.has(kcfg::FLAG_INDEX_OVERFLOW_V4),
                    "range_buckets": c.range_mask_v4 + 1, "range_overflow": c.has(kcfg::FLAG_RANGE_OVERFLOW_V4),
                })),
                "index_v6": c.has(kcfg::FLAG_INDEX_V6).then(|| json!({
                    "address_buckets": c.index_mask_v6 + 1, "address_overflow": c.has(kcfg::FLAG_INDEX_OVERFLOW_V6),
                    "range_buckets": c.range_mask_v6 + 1, "range_overflow": c.has(kcfg::FLAG_RANGE_OVERFLOW_V6),
                })),
                "flags": format!("{:#x}", c.flags),
            })]
        }
        pin::VERDICTS => maps
            .verdicts()?
            .iter()
            .enumerate()
            .map(|(i, c)| json!({ "verdict": VERDICT_NAMES[i], "packets": c.packets, "bytes": c.bytes }))
            .collect(),
        pin::ALLOW_V4 => lists(List::Allow, true, None)?,
        pin::ALLOW_V6 => lists(List::Allow, false, None)?,
        pin::BLOCK_V4 => lists(List::Block, true, Some(false))?,
        pin::BLOCK_V6 => lists(List::Block, false, Some(false))?,
        pin::BLOCK_ADDR_V4 => lists(List::Block, true, Some(true))?,
        pin::BLOCK_ADDR_V6 => lists(List::Block, false, Some(true))?,
        pin::BLOCK_INDEX_V4 | pin::BLOCK_INDEX_V6 | pin::RANGE_INDEX_V4 | pin::RANGE_INDEX_V6 => {
            let which = if name.starts_with("range") { Index::Ranges } else { Index::Addresses };
            maps.index_buckets(which, name.ends_with("v4"))?
                .into_iter()
                .map(|(slot, held)| json!({ "bucket": slot, "entries": held }))
                .collect()
        }
        pin::BANS_V4 | pin::BANS_V6 => maps
            .bans()?
            .into_iter()
            .filter(|b| b.addr.is_ipv4() == (name == pin::BANS_V4))
            .map(|b| {
                json!({
                    "addr": b.addr.to_string(),
                    "expires_in_s": b.remaining.map(|d| d.as_secs_f64()),
                    "origin": origin_name(b.origin),
                })
            })
            .collect(),
        pin::BAN_INDEX_V4 | pin::BAN_INDEX_V6 => maps
            .ban_index_buckets(name == pin::BAN_INDEX_V4)?
            .into_iter()
            .map(|(bucket, held)| json!({ "bucket": bucket, "sources": held }))
            .collect(),
        pin::SOURCES_V4 | pin::SOURCES_V6 => {
            let now = crate::filter::monotonic_ns();
            maps.sources()?
                .into_iter()
                .filter(|s| s.source.addr().is_ipv4() == (name == pin::SOURCES_V4))
                .map(|s| {
                    json!({
                        "source": s.source.to_string(),
                        "packets": s.state.packets,
                        "bytes": s.state.bytes,
                        "drops": s.state.drops,
                        "last_seen_ms_ago": now.saturating_sub(s.state.last_seen_ns) / 1_000_000,
                    })
                })
                .collect()
        }
        pin::SYN_COOKIE | pin::SYN_STATE | pin::SYN_PORTS | pin::SYN_WINDOW | pin::SYN_STATS => {
            syn_rows(maps.dir(), name)?
        }
        pin::LOG => {
            let s = XdpLog::open(maps.dir())?.settings()?;
            vec![json!({
                "level": crate::logging::Level::ALL.get(s.level as usize).map_or("?", |l| l.name()),
                "rate": s.rate,
                "interval_ns": s.interval_ns,
                "tolerance_ns": s.tolerance_ns,
                "tat_ns": s.tat_ns,
            })]
        }
        pin::LOG_SUPPRESSED => XdpLog::open(maps.dir())?
            .suppressed_per_cpu()?
            .into_iter()
            .enumerate()
            .map(|(cpu, n)| json!({ "cpu": cpu, "suppressed_pending": n }))
            .collect(),
        pin::NEW_SOURCES => {
            let v = crate::filter::NewSourceMap::open(maps.dir())?.get()?;
            let now = crate::filter::monotonic_ns();
            vec![json!({
                "rate": v.rate,
                "burst": v.burst,
                "hold_s": v.hold_ns as f64 / 1e9,
                "attack_mode": v.attacking(now),
                "attacks": v.attacks,
                "tat_ahead_ms": v.tat_ns.saturating_sub(now) / 1_000_000,
            })]
        }
        pin::LISTED => match maps.listed() {
            Some(l) => vec![json!({
                "on": l.is_on(),
                "active": l.active(),
                "bits": l.size(),
                "set": l.fill(),
            })],
            None => Vec::new(),
        },
        other => bail!("no map called `{other}`"),
    })
}

/// The `syn_*` maps (SYN cookies). The cookie key is never shown.
fn syn_rows(dir: &Path, name: &str) -> Result<Vec<Value>> {
    use proxy_common::syncookie::{self as sc, STAT_NAMES};
    let maps = SynCookieMaps::open(dir)?;
    let now = crate::filter::monotonic_ns();
    Ok(match name {
        pin::SYN_COOKIE => {
            let c = maps.config()?;
            vec![json!({
                "mode": syn_mode_name(c.mode),
                "threshold_per_cpu": c.threshold_per_cpu,
                "hold_s": c.hold_ns as f64 / 1e9,
                "timestamps": c.flags & sc::FLAG_TIMESTAMPS != 0,
                "sack": c.flags & sc::FLAG_SACK != 0,
                "window_scaling": c.flags & sc::FLAG_WSCALE != 0,
                "ecn": c.flags & sc::FLAG_ECN != 0,
                "mss_v4": c.mss_v4,
                "mss_v6": c.mss_v6,
                "window_scale": c.rcv_wscale,
                "key": if c.key == [0, 0] { "unset" } else { "set (not shown)" },
            })]
        }
        pin::SYN_STATE => {
            let s = maps.state()?;
            vec![json!({
                "cookies_now": maps.active(now)?,
                "flood_until_s": (s.attack_until_ns > now).then(|| (s.attack_until_ns - now) as f64 / 1e9),
                "last_cookie_s_ago": (s.last_cookie_ns != 0).then(|| now.saturating_sub(s.last_cookie_ns) as f64 / 1e9),
            })]
        }
        pin::SYN_PORTS => maps.ports()?.into_iter().map(|p| json!({ "port": p })).collect(),
        pin::SYN_WINDOW => maps
            .windows()?
            .into_iter()
            .enumerate()
            .map(|(cpu, w)| json!({ "cpu": cpu, "syns_this_second": w.count, "second_started_s_ago": now.saturating_sub(w.start_ns) as f64 / 1e9 }))
            .collect(),
        _ => maps
            .stats()?
            .into_iter()
            .enumerate()
            .map(|(i, v)| json!({ "counter": STAT_NAMES[i], "value": v }))
            .collect(),
    })
}
