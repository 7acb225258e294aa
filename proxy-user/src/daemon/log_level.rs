//! `rampart log level [LEVEL]`: the level of the daemon's log, changed at
//! run time, and the XDP program's half of it. One level governs both: the
//! program records only the events the daemon would print, so with logging
//! off an event never reaches the ring buffer.
//!
//! Where the level comes from, first match wins: the CLI (until `reset` or
//! a restart; reloads keep it), RUST_LOG when the daemon was started with
//! it, the configuration's `[log] level`.

use anyhow::Result;
use log::{info, warn};
use proxy_common::log::TARGET;
use serde_json::json;

use super::Daemon;
use crate::logging::{self, Level};

impl Daemon {
    /// Puts the level in force on both sides; after a start, a reload and
    /// a change from the CLI.
    pub fn apply_log(&mut self) {
        logging::set_level(self.wanted_level());
        self.write_xdp_log();
    }

    fn wanted_level(&self) -> Option<Level> {
        self.log_override
            .or_else(|| (!logging::from_env()).then_some(self.config.log.level))
    }

    /// The program records what the daemon would print for its target.
    fn write_xdp_log(&mut self) {
        let level = logging::level_for(TARGET);
        let rate = self.config.log.xdp_rate;
        let Some(xdp) = self.filter.as_mut().and_then(|f| f.log.as_mut()) else {
            return;
        };
        if let Err(e) = xdp.set(level.filter() as u32, rate) {
            warn!("the XDP program's log level stays as it was: {e}");
        }
    }

    /// `level`: set it; `reset`: back to RUST_LOG or the configuration;
    /// neither: show it.
    pub(super) fn log_level(
        &mut self,
        level: Option<Level>,
        reset: bool,
    ) -> Result<serde_json::Value> {
        if reset || level.is_some() {
            self.log_override = level.filter(|_| !reset);
            let said = match self.wanted_level() {
                Some(l) if reset => format!("log level back to {}", l.name()),
                None => "log level back to RUST_LOG's filter".to_string(),
                Some(l) => format!("log level {} (from the CLI)", l.name()),
            };
            // Said at whichever of the two levels is more verbose, so that
            // both `off` and the way back from it are on record.
            let before = log::max_level();
            if self.wanted_level().is_some_and(|l| l.filter() < before) {
                info!("{said}");
                self.apply_log();
            } else {
                self.apply_log();
                info!("{said}");
            }
        }
        self.log_show()
    }

    fn log_show(&self) -> Result<serde_json::Value> {
        let from = if self.log_override.is_some() {
            "cli"
        } else if logging::from_env() {
            "RUST_LOG"
        } else {
            "config"
        };
        let xdp = match self.filter.as_ref().and_then(|f| f.log.as_ref()) {
            Some(x) => {
                let s = x.settings()?;
                json!({
                    "level": Level::ALL.get(s.level as usize).map_or("?", |l| l.name()),
                    "rate": s.rate,
                    "suppressed_pending": x.pending_suppressed()?,
                })
            }
            None => serde_json::Value::Null,
        };
        Ok(json!({
            "level": Level::of(log::max_level()).name(),
            "from": from,
            "xdp": xdp,
        }))
    }
}
