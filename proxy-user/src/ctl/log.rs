//! `rampart log level [LEVEL]`.

use std::path::Path;

use anyhow::Result;

use super::Output;
use crate::{
    cli::{LevelArg, LogVerb},
    control_socket::{client::call, protocol::Request},
    logging::Level,
};

pub fn run(out: &Output, socket: &Path, verb: Option<&LogVerb>) -> Result<()> {
    let arg = match verb {
        None | Some(LogVerb::Level { level: None }) => None,
        Some(LogVerb::Level { level: Some(l) }) => Some(*l),
    };
    let data = call(socket, &request(arg))?;
    out.emit(&data, || text(&data));
    Ok(())
}

fn request(arg: Option<LevelArg>) -> Request {
    let level = |l| Request::LogLevel {
        level: Some(l),
        reset: false,
    };
    match arg {
        None => Request::LogLevel {
            level: None,
            reset: false,
        },
        Some(LevelArg::Reset) => Request::LogLevel {
            level: None,
            reset: true,
        },
        Some(LevelArg::Off) => level(Level::Off),
        Some(LevelArg::Error) => level(Level::Error),
        Some(LevelArg::Warn) => level(Level::Warn),
        Some(LevelArg::Info) => level(Level::Info),
        Some(LevelArg::Debug) => level(Level::Debug),
        Some(LevelArg::Trace) => level(Level::Trace),
    }
}

fn text(data: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
    let from = match data["from"].as_str() {
        Some("cli") => "set from the CLI; `rampart log level reset` goes back".to_string(),
        Some("RUST_LOG") => "RUST_LOG's filter, the most verbose of its levels".to_string(),
        _ => "the configuration's [log] level".to_string(),
    };
    let mut out = format!("level  {} ({from})\n", s(&data["level"]));
    let xdp = &data["xdp"];
    if xdp.is_null() {
        out.push_str("xdp    no XDP program (its events are not recorded)\n");
    } else {
        out.push_str(&format!(
            "xdp    {}, at most {} records/s (target rampart::xdp; {} suppressed, not yet reported)\n",
            s(&xdp["level"]),
            xdp["rate"],
            xdp["suppressed_pending"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_argument_becomes_its_request() {
        assert_eq!(
            request(None),
            Request::LogLevel {
                level: None,
                reset: false
            }
        );
        assert_eq!(
            request(Some(LevelArg::Reset)),
            Request::LogLevel {
                level: None,
                reset: true
            }
        );
        assert_eq!(
            request(Some(LevelArg::Off)),
            Request::LogLevel {
                level: Some(Level::Off),
                reset: false
            }
        );
        assert_eq!(
            request(Some(LevelArg::Trace)),
            Request::LogLevel {
                level: Some(Level::Trace),
                reset: false
            }
        );
    }

    #[test]
    fn the_table_says_where_the_level_comes_from() {
        let data = serde_json::json!({
            "level": "warn", "from": "cli",
            "xdp": { "level": "warn", "rate": 5, "suppressed_pending": 3 },
        });
        let t = text(&data);
        assert!(t.contains("level  warn (set from the CLI"), "{t}");
        assert!(t.contains("xdp    warn, at most 5 records/s"), "{t}");
        let t = text(&serde_json::json!({ "level": "info", "from": "config", "xdp": null }));
        assert!(
            t.contains("[log] level") && t.contains("no XDP program"),
            "{t}"
        );
    }
}
