//! `rampart upstream list|drain|undrain|weight|switch`: the daemon's
//! upstream groups, changed for new requests at once. A change is kept in
//! the state file and is part of the desired state ([`super::desired`]):
//! the reconciler puts it in force now, and in the groups every reload
//! builds before they serve.

use std::sync::Arc;

use anyhow::{Result, bail};
use log::info;
use serde_json::json;

use super::Daemon;
use crate::{control_socket::protocol::ServerView, upstream::Backend};

impl Daemon {
    /// `GROUP/ADDR` or a bare `ADDR` that only one group has.
    fn find_server(&self, server: &str) -> Result<(String, Arc<Backend>)> {
        let state = self.shared.load();
        // A socket's path has slashes of its own: `unix:/run/app.sock`
        // alone names no group.
        let (group, addr) = match server.split_once('/') {
            Some((g, a)) if !g.ends_with(':') => (Some(g), a),
            _ => (None, server),
        };
        let mut found = Vec::new();
        for (name, g) in &state.groups {
            if group.is_some_and(|want| want != name) {
                continue;
            }
            for b in g.backends().iter() {
                if b.addr.to_string() == addr {
                    found.push((name.clone(), b.clone()));
                }
            }
        }
        match found.len() {
            0 => bail!("no upstream server {server} (see `rampart upstream list`)"),
            1 => Ok(found.remove(0)),
            _ => bail!(
                "{addr} is in several groups ({}); name one as GROUP/{addr}",
                found
                    .iter()
                    .map(|(g, _)| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    pub(super) fn upstream_list(&self) -> Vec<ServerView> {
        let state = self.shared.load();
        let now = tokio::time::Instant::now();
        let mut out = Vec::new();
        for (name, g) in &state.groups {
            let switched_to = state.services.switches.get(name);
            for b in g.backends().iter() {
                out.push(ServerView::of(name, b, switched_to.clone(), now));
            }
            for (addr, weight, backup) in g.unresolved() {
                out.push(ServerView::unresolved(
                    name,
                    addr,
                    weight,
                    backup,
                    switched_to.clone(),
                ));
            }
        }
        out
    }

    pub(super) fn drain(&mut self, server: &str, drained: bool) -> Result<serde_json::Value> {
        let (group, b) = self.find_server(server)?;
        let key = format!("{group}/{}", b.addr);
        self.change(|r| {
            r.drained.retain(|k| *k != key);
            if drained {
                r.drained.push(key.clone());
            }
        })?;
        info!(
            "upstream {key} {}",
            if drained {
                "drained: no new requests"
            } else {
                "back in rotation"
            }
        );
        self.save();
        Ok(json!({ "server": key, "drained": drained, "in_flight": b.active() }))
    }

    pub(super) fn weight(&mut self, server: &str, weight: u32) -> Result<serde_json::Value> {
        if !(1..=1000).contains(&weight) {
            bail!("weight {weight}: expected 1 to 1000 (to stop traffic, drain the server)");
        }
        let (group, b) = self.find_server(server)?;
        let key = format!("{group}/{}", b.addr);
        self.change(|r| {
            if weight == b.config_weight {
                r.weights.remove(&key);
            } else {
                r.weights.insert(key.clone(), weight);
            }
        })?;
        info!("upstream {key} weight {weight}");
        self.save();
        Ok(json!({ "server": key, "weight": weight }))
    }

    pub(super) fn switch(&mut self, group: &str, to: Option<&str>) -> Result<serde_json::Value> {
        let state = self.shared.load();
        if !state.groups.contains_key(group) {
            bail!("no upstream group {group}");
        }
        if let Some(t) = to
            && !state.groups.contains_key(t)
        {
            bail!("no upstream group {t} to switch to");
        }
        let to = to.filter(|t| *t != group);
        self.change(|r| match to {
            Some(t) => drop(r.switches.insert(group.to_string(), t.to_string())),
            None => drop(r.switches.remove(group)),
        })?;
        match to {
            Some(t) => info!("upstream switch: {group} -> {t}"),
            None => info!("upstream switch: {group} back to itself"),
        }
        self.save();
        Ok(json!({ "group": group, "to": to.unwrap_or(group) }))
    }
}
