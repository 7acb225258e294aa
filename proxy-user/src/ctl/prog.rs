//! `rampart prog show`: the loaded rampart XDP programs, from the kernel.

use std::fmt::Write;

use anyhow::Result;
use aya::programs::loaded_programs;
use serde_json::json;

use super::Output;

pub fn show(out: &Output) -> Result<()> {
    let mut rows = Vec::new();
    for info in loaded_programs() {
        let info = info?;
        if info.name_as_str() != Some(proxy_common::pin::PROGRAM) {
            continue;
        }
        let loaded_at = info
            .loaded_at()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        rows.push(json!({
            "id": info.id(),
            "name": proxy_common::pin::PROGRAM,
            "type": "xdp",
            "loaded_at_unix": loaded_at,
            "verified_insns": info.verified_instruction_count(),
            "xlated_bytes": info.size_translated(),
            "map_ids": info.map_ids().ok().flatten(),
        }));
    }
    let value = json!(rows);
    out.emit(&value, || {
        if rows.is_empty() {
            return "no rampart XDP program is loaded\n".into();
        }
        let mut s = String::new();
        for r in &rows {
            let _ = writeln!(
                s,
                "{}: xdp  name {}  loaded_at {}  verified_insns {}  xlated {}B  map_ids {}",
                r["id"],
                r["name"].as_str().unwrap_or(""),
                r["loaded_at_unix"],
                r["verified_insns"],
                r["xlated_bytes"],
                r["map_ids"]
            );
        }
        s
    });
    Ok(())
}
