//! Reloads: a new configuration (re-read from the file, or given as a
//! value through [`super::Handle::reload`]) is checked in everything that
//! can fail before anything changes (new sockets, certificates); then the
//! new snapshot is built off to the side, gets the runtime state from the
//! reconciler, and is installed whole. A failed reload changes nothing.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use log::{error, info, warn};

use super::Daemon;
use crate::{config::Config, http::State};

impl Daemon {
    /// Re-reads the configuration file and applies it, or keeps the running one.
    pub(super) fn reload_file(&mut self) -> Result<String> {
        let next = match &self.source {
            None => Err(anyhow!(
                "running the built-in configuration; there is no file to re-read"
            )),
            Some(path) => Config::load(path).map_err(Into::into),
        };
        let result = next.and_then(|next| self.try_reload(next));
        self.reported(result)
    }

    /// Applies `next`, or keeps the running configuration.
    pub(super) fn reload(&mut self, next: Config) -> Result<String> {
        let result = self.try_reload(next);
        self.reported(result)
    }

    fn reported(&self, result: Result<String>) -> Result<String> {
        let state = self.shared.load();
        let reloads = &state.services.metrics.reloads;
        match &result {
            Ok(summary) => {
                reloads.applied();
                info!("reload: {summary}");
            }
            Err(e) => {
                reloads.failed();
                error!("reload failed, keeping the running configuration: {e:#}");
            }
        }
        result.map_err(|e| anyhow!("reload failed, the running configuration stays: {e:#}"))
    }

    fn try_reload(&mut self, next: Config) -> Result<String> {
        let next = Arc::new(next);
        let mut notes: Vec<String> = Vec::new();
        // Everything that can fail first (new sockets, certificates), so a
        // failed reload changes nothing.
        let plan = self.listeners.prepare(&next)?;
        if next.control != self.config.control {
            notes.push("[control] changes need a restart".into());
        }
        if next.fleet != self.config.fleet {
            notes.push("[fleet] changes need a restart".into());
        }
        let kernel =
            |c: &Config| (c.filter.as_ref()).map_or((None, None), |f| (f.fleet_pps, f.fleet_syn));
        if kernel(&next) != kernel(&self.config) {
            notes.push("[filter] fleet_pps and fleet_syn changes need a restart".into());
        }
        match (self.reconciler.filter(), next.filter.as_ref()) {
            (Some(_), Some(settings)) => {
                let current = self.config.filter.as_ref();
                if current.is_some_and(|c| {
                    c.interfaces != settings.interfaces || c.pin_dir != settings.pin_dir
                }) {
                    notes.push("filter interface or pin_dir changes need a restart".into());
                }
            }
            (None, Some(s)) if !s.interfaces.is_empty() => {
                notes.push("attaching XDP to new interfaces needs a restart".into());
            }
            _ => {}
        }
        // The new snapshot gets the runtime state before anyone sees it; the
        // kernel and the gate get the new configuration with the runtime's
        // limits over it, each value written once.
        let previous = self.shared.load();
        let state = State::build(next.clone(), previous.services.clone(), Some(&previous));
        self.reconcile_into(next.clone(), &state)?;
        notes.extend(self.listeners.commit(plan));
        // Installed: new connections serve with it; what it brings (health
        // checks of new groups, a new access log's writer) starts.
        state.start(Some(&previous));
        self.shared.store(state);
        let before = std::mem::replace(&mut self.config, next);
        // The enforcer keys IPv6 sources by the new prefix now: its bans too.
        let (was, now) = (before.ipv6_prefix(), self.config.ipv6_prefix());
        match self.rekey_bans(was, now) {
            Ok(note) => notes.extend(note),
            Err(e) => warn!("reload: keying bans by ipv6_prefix /{now}: {e:#}"),
        }
        self.apply_log();
        // Sources the new lists refuse lose their open connections too.
        if let Err(e) = self.kick_reloaded(&before) {
            warn!("reload: closing refused sources' connections: {e:#}");
        }
        Ok(if notes.is_empty() {
            "configuration applied".to_string()
        } else {
            format!("configuration applied ({})", notes.join("; "))
        })
    }
}
