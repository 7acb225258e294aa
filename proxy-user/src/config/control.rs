//! `[control]`: where the daemon listens for the CLI and keeps runtime state.

use std::path::PathBuf;

use super::{ConfigError, error::Locator, file::FileControl};

/// Default control socket: root-only, like the daemon itself.
pub const DEFAULT_SOCKET: &str = "/run/rampart/control.sock";
/// Default state file: runtime changes (CLI list entries, bans and their
/// reasons, drained servers, weights, switches) survive a reboot in it.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/rampart/state.json";

#[derive(Clone, Debug, PartialEq)]
pub struct ControlSettings {
    /// Unix socket the CLI talks to (mode 0600); nothing listens on the
    /// network for control.
    pub socket: PathBuf,
    /// JSON file of runtime changes, rewritten atomically on each change.
    pub state_file: PathBuf,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: PathBuf::from(DEFAULT_SOCKET),
            state_file: PathBuf::from(DEFAULT_STATE_FILE),
        }
    }
}

pub(super) fn control(
    loc: &Locator,
    base: &std::path::Path,
    c: Option<FileControl>,
) -> Result<ControlSettings, ConfigError> {
    let mut out = ControlSettings::default();
    let Some(c) = c else { return Ok(out) };
    if let Some(s) = c.socket {
        if s.get_ref().is_empty() {
            return Err(loc.error(s.span(), "socket: expected a path"));
        }
        out.socket = base.join(s.get_ref());
    }
    if let Some(s) = c.state_file {
        if s.get_ref().is_empty() {
            return Err(loc.error(s.span(), "state_file: expected a path"));
        }
        out.state_file = base.join(s.get_ref());
    }
    Ok(out)
}
