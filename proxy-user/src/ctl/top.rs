//! `rampart top`: the heaviest sources by packets, bytes or drops per
//! second, from the pinned per-source map (so it works while the daemon is
//! down), refreshed every second in the terminal. With `-j` it prints one
//! one-second sample and exits.

use std::{collections::HashMap, fmt::Write, path::Path, time::Duration};

use anyhow::Result;
use proxy_common::source::SourceState;
use serde_json::json;

use super::Output;
use crate::{
    cidr::Cidr,
    cli::TopOrder,
    filter::{FilterMaps, monotonic_ns},
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
