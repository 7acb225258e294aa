//! `rampart stats`: packets and bytes by verdict, read from the pinned
//! per-CPU counters and summed.

use std::{fmt::Write, path::Path, time::Duration};

use anyhow::Result;
use proxy_common::stats::{VERDICT_NAMES, is_drop};
use serde_json::{Map, json};

use super::Output;
use crate::filter::FilterMaps;

pub fn stats(out: &Output, dir: &Path, watch: Option<u64>) -> Result<()> {
    let maps = FilterMaps::open(dir)?;
    loop {
        let counters = maps.verdicts()?;
        let mut value = Map::new();
        for (i, c) in counters.iter().enumerate() {
            value.insert(
                VERDICT_NAMES[i].into(),
                json!({ "packets": c.packets, "bytes": c.bytes }),
            );
        }
        out.emit(&json!({ "verdicts": value }), || {
            let mut s = format!(
                "{:<12} {:>6} {:>16} {:>18}\n",
                "VERDICT", "ACTION", "PACKETS", "BYTES"
            );
            for (i, c) in counters.iter().enumerate() {
                let action = if is_drop(i as u32) { "drop" } else { "pass" };
                let _ = writeln!(
                    s,
                    "{:<12} {:>6} {:>16} {:>18}",
                    VERDICT_NAMES[i], action, c.packets, c.bytes
                );
            }
            s
        });
        match watch {
            None => return Ok(()),
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
        }
    }
}
