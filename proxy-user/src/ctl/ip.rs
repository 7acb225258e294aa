//! `rampart ip show ADDR`: one source, seen from both tiers.

use std::{fmt::Write, net::IpAddr, path::Path};

use anyhow::Result;
use serde_json::Value;

use super::Output;
use crate::control_socket::{client::call, protocol::Request};

pub fn show(out: &Output, socket: &Path, addr: IpAddr) -> Result<()> {
    let data = call(socket, &Request::IpShow { addr })?;
    out.emit(&data, || describe(&data));
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn describe(d: &Value) -> String {
    let mut s = format!("{}\n", text(&d["addr"]));
    if d["acted_on"].is_string() && d["acted_on"] != d["addr"] {
        // An IPv6 address is limited and banned as part of its prefix.
        let _ = writeln!(s, "  source: {}", text(&d["acted_on"]));
    }
    let k = d;
    {
        let _ = writeln!(
            s,
            "  verdict ({}): {}",
            text(&k["enforced_in"]),
            text(&k["verdict"])
        );
        for (what, list) in [("allowlist", &k["allow"]), ("blocklist", &k["block"])] {
            for e in list.as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "  {what}: {} (from {}{}, reason {}, expires in {}s)",
                    text(&e["cidr"]),
                    text(&e["origin"]),
                    on_host(&e["host"]),
                    text(&e["reason"]),
                    text(&e["expires_in"])
                );
            }
        }
        if !k["ban"].is_null() {
            let b = &k["ban"];
            let _ = writeln!(
                s,
                "  ban of {}: from {}{}, reason {}, expires in {}s",
                text(&b["source"]),
                text(&b["origin"]),
                on_host(&b["host"]),
                text(&b["reason"]),
                text(&b["expires_in"])
            );
        }
        match &k["source"] {
            Value::Null => {
                s.push_str("  not seen by the kernel (or evicted from the source map)\n")
            }
            src => {
                let _ = writeln!(
                    s,
                    "  seen: {} packets ({} SYNs), {} bytes, {} dropped by limits, last {}s ago",
                    text(&src["packets"]),
                    text(&src["syns"]),
                    text(&src["bytes"]),
                    text(&src["drops"]),
                    text(&src["last_seen_s_ago"])
                );
                for name in ["pps_budget", "syn_budget"] {
                    let b = &src[name];
                    if b["limit"] == "off" {
                        let _ = writeln!(s, "  {name}: no limit");
                    } else {
                        let _ = writeln!(
                            s,
                            "  {name}: {} of {} left ({}/s)",
                            text(&b["left"]),
                            text(&b["burst"]),
                            text(&b["rate_per_s"])
                        );
                    }
                }
            }
        }
    }
    for z in d["l7_limits"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  L7 zone {}: {} queued of a burst of {}",
            text(&z["zone"]),
            z["queued"]
                .as_f64()
                .map_or("none".into(), |q| format!("{q:.1}")),
            text(&z["burst"])
        );
    }
    s
}

/// ` on HOST` for an entry that came from another fleet host.
fn on_host(v: &Value) -> String {
    v.as_str().map_or(String::new(), |h| format!(" on {h}"))
}
