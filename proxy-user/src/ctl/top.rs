//! `rampart top`: the heaviest sources by packets, bytes or drops per
//! second, from the pinned per-source map (so it works while the daemon is
//! down), refreshed every second in the terminal. With `-j` it prints one
//! one-second sample and exits.
//!
//! `rampart top --fleet`: the whole fleet's heaviest sources, read from its
//! counts in Redis ([`crate::fleet::top`]), refreshed every second; `-j`
//! prints one reading.

use std::{collections::HashMap, fmt::Write, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use proxy_common::source::SourceState;
use serde_json::json;

use super::Output;
use crate::{
    cidr::Cidr,
    cli::TopOrder,
    config::Config,
    filter::{FilterMaps, monotonic_ns},
    fleet::top::{FleetTop, counters, read},
};

struct Row {
    source: Cidr,
    rate: [f64; 3],
    state: SourceState,
}

pub fn top(out: &Output, dir: &Path, by: TopOrder, limit: usize) -> Result<()> {
    let maps = FilterMaps::open(dir)?;
    let sample = |maps: &FilterMaps| -> Result<HashMap<Cidr, SourceState>> {
        Ok(maps
            .sources()?
            .into_iter()
            .map(|e| (e.source, e.state))
            .collect())
    };
    let mut before = sample(&maps)?;
    let mut then = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = sample(&maps)?;
        let secs = then.elapsed().as_secs_f64();
        then = std::time::Instant::now();
        let mut rows: Vec<Row> = now
            .iter()
            .map(|(source, s)| {
                let prev = before.get(source).copied().unwrap_or(*s);
                let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
                Row {
                    source: *source,
                    rate: [
                        per_sec(s.packets, prev.packets),
                        per_sec(s.bytes, prev.bytes),
                        per_sec(s.drops, prev.drops),
                    ],
                    state: *s,
                }
            })
            .collect();
        let key = by as usize;
        rows.sort_by(|a, b| {
            b.rate[key]
                .total_cmp(&a.rate[key])
                .then(total(&b.state, by).cmp(&total(&a.state, by)))
        });
        rows.truncate(limit);
        let clock = monotonic_ns();
        let value = json!(
            rows.iter()
                .map(|r| json!({
                    "source": r.source,
                    "packets_per_s": r.rate[0],
                    "bytes_per_s": r.rate[1],
                    "drops_per_s": r.rate[2],
                    "packets": r.state.packets,
                    "bytes": r.state.bytes,
                    "drops": r.state.drops,
                    "last_seen_s_ago": clock.saturating_sub(r.state.last_seen_ns) / 1_000_000_000,
                }))
                .collect::<Vec<_>>()
        );
        if out.json {
            println!("{value}");
            return Ok(());
        }
        let mut s = String::from("\x1b[2J\x1b[H");
        let _ = writeln!(
            s,
            "rampart top: {} sources tracked, by {} per second (Ctrl-C to quit)\n",
            now.len(),
            ["packets", "bytes", "drops"][key]
        );
        let _ = writeln!(
            s,
            "{:<43} {:>10} {:>12} {:>10} {:>12} {:>14} {:>10} {:>6}",
            "SOURCE", "PKT/S", "BYTES/S", "DROP/S", "PACKETS", "BYTES", "DROPS", "SEEN"
        );
        for r in &rows {
            let _ = writeln!(
                s,
                "{:<43} {:>10.0} {:>12.0} {:>10.0} {:>12} {:>14} {:>10} {:>5}s",
                r.source.to_string(),
                r.rate[0],
                r.rate[1],
                r.rate[2],
                r.state.packets,
                r.state.bytes,
                r.state.drops,
                clock.saturating_sub(r.state.last_seen_ns) / 1_000_000_000
            );
        }
        print!("{s}");
        before = now;
    }
}

fn total(s: &SourceState, by: TopOrder) -> u64 {
    match by {
        TopOrder::Packets => s.packets,
        TopOrder::Bytes => s.bytes,
        TopOrder::Drops => s.drops,
    }
}

/// `top --fleet`: every second (once with `-j`), the fleet's heaviest
/// sources of every counter the configuration holds fleet-wide.
pub fn fleet(out: &Output, config: &Config, limit: usize) -> Result<()> {
    let Some(settings) = &config.fleet else {
        bail!("this host is not in a fleet (no [fleet] in the configuration): try `rampart top`");
    };
    let counters = counters(config);
    if counters.is_empty() {
        bail!(
            "nothing is counted fleet-wide here: set [filter] fleet_pps or fleet_syn, or fleet = true on a \
             [limit.NAME] or [escalate.NAME] (docs/fleet.md)"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    loop {
        let top = runtime
            .block_on(read(settings, &counters, limit))
            .with_context(|| {
                format!(
                    "reading the fleet's counts from Redis {}:{}",
                    settings.host, settings.port
                )
            })?;
        if out.json {
            println!("{}", serde_json::to_value(&top)?);
            return Ok(());
        }
        print!("\x1b[2J\x1b[H{}", fleet_table(&top));
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn fleet_table(top: &FleetTop) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rampart top --fleet: fleet {}, {:.1}s into the 10 s window, by share of the limit \
         (Ctrl-C to quit){}\n",
        top.fleet,
        top.window_s,
        if top.skipped > 0 {
            format!("; {} unusable entries skipped", top.skipped)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        s,
        "{:<43} {:<22} {:>10} {:>12} {:>12} {:>9}",
        "SOURCE", "COUNTER", "PER S", "THIS WINDOW", "PREVIOUS", "OF LIMIT"
    );
    for r in &top.rows {
        let _ = writeln!(
            s,
            "{:<43} {:<22} {:>10.1} {:>12} {:>12} {:>8.0}%",
            r.source.to_string(),
            format!("{} ({})", r.counter, r.unit),
            r.per_s,
            r.window,
            r.previous,
            r.of_allowed * 100.0
        );
    }
    if top.rows.is_empty() {
        let _ = writeln!(
            s,
            "(no source reported by any host in the last two windows)"
        );
    }
    s
}
