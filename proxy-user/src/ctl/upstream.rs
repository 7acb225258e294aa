//! `rampart upstream list|drain|undrain|weight|switch`: the daemon's
//! upstream groups, changed for new requests at once and kept across
//! restarts in the state file.

use std::{fmt::Write, path::Path};

use anyhow::Result;

use super::Output;
use crate::{
    cli::UpstreamVerb,
    control_socket::{
        client::call,
        protocol::{Request, ServerView},
    },
};

/// How a change's answer is shown to people.
type Summary = Box<dyn Fn(&serde_json::Value) -> String>;

pub fn run(out: &Output, socket: &Path, verb: Option<&UpstreamVerb>) -> Result<()> {
    let (request, done): (Request, Summary) = match verb {
        None | Some(UpstreamVerb::List) => {
            let data = call(socket, &Request::UpstreamList)?;
            let servers: Vec<ServerView> = serde_json::from_value(data.clone())?;
            out.emit(&data, || table(&servers));
            return Ok(());
        }
        Some(UpstreamVerb::Drain { server }) => (
            Request::UpstreamDrain {
                server: server.clone(),
                drained: true,
            },
            Box::new(|d| {
                format!(
                    "{} drained: no new requests ({} in flight finish)\n",
                    d["server"].as_str().unwrap_or("?"),
                    d["in_flight"]
                )
            }),
        ),
        Some(UpstreamVerb::Undrain { server }) => (
            Request::UpstreamDrain {
                server: server.clone(),
                drained: false,
            },
            Box::new(|d| format!("{} back in rotation\n", d["server"].as_str().unwrap_or("?"))),
        ),
        Some(UpstreamVerb::Weight { server, weight }) => (
            Request::UpstreamWeight {
                server: server.clone(),
                weight: *weight,
            },
            Box::new(|d| {
                format!(
                    "{} weight {}\n",
                    d["server"].as_str().unwrap_or("?"),
                    d["weight"]
                )
            }),
        ),
        Some(UpstreamVerb::Switch { group, to }) => (
            Request::UpstreamSwitch {
                group: group.clone(),
                to: Some(to.clone()),
            },
            Box::new(|d| {
                format!(
                    "requests for {} now go to {}\n",
                    d["group"].as_str().unwrap_or("?"),
                    d["to"].as_str().unwrap_or("?")
                )
            }),
        ),
    };
    let data = call(socket, &request)?;
    out.emit(&data, || done(&data));
    Ok(())
}

fn table(servers: &[ServerView]) -> String {
    let mut s = format!(
        "{:<12} {:<24} {:<8} {:<7} {:>6} {:>9} {:>10} {:>9} {:>5}  {}\n",
        "GROUP",
        "SERVER",
        "STATE",
        "ROLE",
        "WEIGHT",
        "IN FLIGHT",
        "REQUESTS",
        "FAILURES",
        "IDLE",
        "SWITCHED TO"
    );
    for v in servers {
        let _ = writeln!(
            s,
            "{:<12} {:<24} {:<8} {:<7} {:>6} {:>9} {:>10} {:>9} {:>5}  {}",
            v.group,
            v.addr,
            v.state,
            if v.backup { "backup" } else { "primary" },
            v.weight,
            v.in_flight,
            v.requests,
            v.failures,
            v.idle_connections,
            v.switched_to.as_deref().unwrap_or("-")
        );
    }
    s
}
