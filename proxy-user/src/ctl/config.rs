//! `rampart config check|show`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::Output;
use crate::config::{AttachMode, Config};

pub fn check(out: &Output, path: &Path) -> Result<()> {
    let cfg = Config::load(path)?;
    out.emit(
        &json!({ "file": path, "valid": true, "filter": cfg.filter.is_some() }),
        || format!("{}: configuration is valid\n", path.display()),
    );
    Ok(())
}

pub fn show(out: &Output, cfg: &Config) -> Result<()> {
    let value = match &cfg.filter {
        None => json!({ "filter": null }),
        Some(f) => json!({ "filter": {
            "enabled": f.enabled,
            "interfaces": f.interfaces,
            "mode": match f.mode { AttachMode::Auto => "auto", AttachMode::Native => "native", AttachMode::Skb => "skb" },
            "pin_dir": f.pin_dir,
            "allow": f.allow.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "block": f.block.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "pps": f.pps.map(|l| json!({ "rate": l.rate, "burst": l.burst })),
            "syn": f.syn.map(|l| json!({ "rate": l.rate, "burst": l.burst })),
            "ipv6_prefix": f.ipv6_prefix,
            "track_sources": f.track_sources,
            "maps": {
                "sources": f.maps.sources, "bans": f.maps.bans, "allow": f.maps.allow,
                "block_ranges": f.maps.block_ranges, "block_addrs": f.maps.block_addrs,
            },
        }}),
    };
    out.emit(&value, || {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    });
    Ok(())
}
