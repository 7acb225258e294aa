//! `rampart fleet status`: this host's view of the fleet (docs/fleet.md).

use std::{fmt::Write, path::Path};

use anyhow::Result;

use super::Output;
use crate::{
    control_socket::{client::call, protocol::Request},
    fleet::Status,
};

pub fn status(out: &Output, socket: &Path) -> Result<()> {
    let data = call(socket, &Request::FleetStatus)?;
    let s: Status = serde_json::from_value(data.clone())?;
    out.emit(&data, || table(&s));
    Ok(())
}

fn table(s: &Status) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "fleet {} as host {}: Redis {} {}{}",
        s.fleet,
        s.host,
        s.redis,
        s.health,
        s.error
            .as_ref()
            .map_or(String::new(), |e| format!(" ({e})"))
    );
    let _ = writeln!(
        t,
        "lag {} ms, {} own shared entries, {} changes waiting for Redis, log position {}",
        s.lag_ms,
        s.own,
        s.pending,
        s.cursor.as_deref().unwrap_or("-")
    );
    if s.hosts.is_empty() {
        t.push_str("no host heartbeats read yet\n");
        return t;
    }
    let _ = writeln!(
        t,
        "{:<24} {:>14} {:>10} {:>8} {:>8}",
        "HOST", "LAST HEARD", "LAG MS", "OWN", "PENDING"
    );
    for h in &s.hosts {
        let _ = writeln!(
            t,
            "{:<24} {:>12.1}s {:>10} {:>8} {:>8}",
            h.host,
            h.last_heard_ms as f64 / 1000.0,
            h.lag_ms,
            h.own,
            h.pending
        );
    }
    t
}
