//! `rampart limit show|set|reset`: the kernel's per-source packet (`pps`)
//! and new-connection (`syn`) limits and the L7 `[limit.NAME]` zones. A
//! CLI value is kept in the state file and is part of the desired state
//! ([`super::desired`]) until `reset`: the reconciler puts it in force now,
//! and again over the configuration after every start and reload.

use anyhow::{Result, bail};
use log::info;
use serde_json::json;

use super::{Daemon, desired::check_limit};
use crate::{
    config::units::Rate, control_socket::protocol::LimitView, filter::rate_of,
    state_file::LimitOverride,
};

impl Daemon {
    /// The limits in force: the kernel's as its config map holds them.
    pub(super) fn limit_show(&self) -> Result<serde_json::Value> {
        let mut out = Vec::new();
        if let Some(f) = self.reconciler.filter() {
            let cfg = f.maps.config()?;
            for (name, interval, tolerance) in [
                ("pps", cfg.pps_interval_ns, cfg.pps_tolerance_ns),
                ("syn", cfg.syn_interval_ns, cfg.syn_tolerance_ns),
            ] {
                out.push(self.limit_view(name, "kernel", rate_of(interval, tolerance)));
            }
        } else {
            out.push(self.limit_view("syn", "userspace", self.reconciler.gate().rate()));
        }
        let state = self.shared.load();
        for (name, l) in &state.limiters {
            let rate = Rate {
                per_1000s: l.rate(),
            };
            out.push(LimitView {
                name: name.clone(),
                tier: "l7".into(),
                rate: Some(rate.to_string()),
                burst: Some(l.burst()),
                source: self.source_of(name),
            });
        }
        Ok(serde_json::to_value(out)?)
    }

    fn limit_view(&self, name: &str, tier: &str, now: Option<(u64, u64)>) -> LimitView {
        LimitView {
            name: name.into(),
            tier: tier.into(),
            rate: now.map(|(r, _)| format!("{r}r/s")),
            burst: now.map(|(_, b)| b),
            source: self.source_of(name),
        }
    }

    fn source_of(&self, name: &str) -> String {
        if self.runtime.state.limits.contains_key(name) {
            "cli".into()
        } else {
            "config".into()
        }
    }

    pub(super) fn limit_set(
        &mut self,
        name: &str,
        rate: Option<String>,
        burst: Option<u64>,
    ) -> Result<serde_json::Value> {
        let change = LimitOverride { rate, burst };
        check_limit(&self.config, name, &change)?;
        if name == "pps" && self.reconciler.filter().is_none() {
            bail!(
                "without the XDP filter there is no packet rate limit (only syn, at accept time)"
            );
        }
        self.change(|r| drop(r.limits.insert(name.to_string(), change)))?;
        info!("limit {name} set from the CLI");
        self.save();
        self.limit_show()
    }

    pub(super) fn limit_reset(&mut self, name: &str) -> Result<serde_json::Value> {
        if !self.runtime.state.limits.contains_key(name) {
            bail!("limit {name} was not changed from the CLI");
        }
        self.change(|r| drop(r.limits.remove(name)))?;
        info!("limit {name} back to the configuration");
        self.save();
        Ok(json!({ "reset": name }))
    }
}
