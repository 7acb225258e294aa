//! `rampart limit show|set|reset`.

use std::{fmt::Write, path::Path};

use anyhow::Result;

use super::Output;
use crate::{
    cli::LimitVerb,
    control_socket::{
        client::call,
        protocol::{LimitView, Request},
    },
};

pub fn run(out: &Output, socket: &Path, verb: Option<&LimitVerb>) -> Result<()> {
    let request = match verb {
        None | Some(LimitVerb::Show) => Request::LimitShow,
        Some(LimitVerb::Set {
            name,
            rate,
            burst,
            off,
        }) => Request::LimitSet {
            name: name.clone(),
            rate: if *off { None } else { rate.clone() },
            burst: *burst,
        },
        Some(LimitVerb::Reset { name }) => Request::LimitReset { name: name.clone() },
    };
    let data = call(socket, &request)?;
    if let Some(name) = data.get("reset").and_then(|v| v.as_str()) {
        out.emit(&data, || {
            format!("limit {name} back to the configuration\n")
        });
        return Ok(());
    }
    let limits: Vec<LimitView> = serde_json::from_value(data.clone())?;
    out.emit(&data, || table(&limits));
    Ok(())
}

fn table(limits: &[LimitView]) -> String {
    let mut s = format!(
        "{:<14} {:<7} {:>12} {:>10}  {}\n",
        "LIMIT", "TIER", "RATE", "BURST", "FROM"
    );
    for l in limits {
        let _ = writeln!(
            s,
            "{:<14} {:<7} {:>12} {:>10}  {}",
            l.name,
            l.tier,
            l.rate.as_deref().unwrap_or("off"),
            l.burst.map_or("-".into(), |b| b.to_string()),
            l.source
        );
    }
    s
}
