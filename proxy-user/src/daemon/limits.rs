//! `rampart limit show|set|reset`: the kernel's per-source packet (`pps`)
//! and new-connection (`syn`) limits, written in place into the pinned
//! config map, and the L7 `[limit.NAME]` zones. CLI values are kept in the
//! state file and applied again after every start and reload, so they hold
//! until `reset`.

use anyhow::{Result, anyhow, bail};
use log::info;
use proxy_common::gcra;
use serde_json::json;

use super::Daemon;
use crate::{
    config::{RateLimit, units::Rate},
    control::protocol::LimitView,
    filter::rate_of,
    runtime::LimitOverride,
};

const KERNEL: [&str; 2] = ["pps", "syn"];

/// A kernel rate written `5000` or `5000r/s`.
fn kernel_rate(text: &str) -> Result<u64> {
    let n = text.strip_suffix("r/s").unwrap_or(text);
    n.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=1_000_000_000).contains(n))
        .ok_or_else(|| anyhow!("rate `{text}`: expected packets per second, 1 to 1000000000"))
}

impl Daemon {
    pub(super) fn limit_show(&self) -> Result<serde_json::Value> {
        let mut out = Vec::new();
        if let Some(f) = &self.filter {
            let cfg = f.maps.config()?;
            for (name, interval, tolerance) in [
                ("pps", cfg.pps_interval_ns, cfg.pps_tolerance_ns),
                ("syn", cfg.syn_interval_ns, cfg.syn_tolerance_ns),
            ] {
                let now = rate_of(interval, tolerance);
                out.push(LimitView {
                    name: name.into(),
                    tier: "kernel".into(),
                    rate: now.map(|(r, _)| format!("{r}r/s")),
                    burst: now.map(|(_, b)| b),
                    source: self.source_of(name),
                });
            }
        } else {
            let now = self.gate.rate();
            out.push(LimitView {
                name: "syn".into(),
                tier: "userspace".into(),
                rate: now.map(|(r, _)| format!("{r}r/s")),
                burst: now.map(|(_, b)| b),
                source: self.source_of("syn"),
            });
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
        self.apply_limit(name, &change)?;
        self.runtime.state.limits.insert(name.to_string(), change);
        info!("limit {name} set from the CLI");
        self.save();
        self.limit_show()
    }

    pub(super) fn limit_reset(&mut self, name: &str) -> Result<serde_json::Value> {
        if self.runtime.state.limits.remove(name).is_none() {
            bail!("limit {name} was not changed from the CLI");
        }
        if KERNEL.contains(&name) {
            if let (Some(f), Some(settings)) = (self.filter.as_mut(), self.config.filter.as_ref()) {
                let c = crate::filter::kernel_config(settings);
                let gcra = if name == "pps" {
                    (c.pps_interval_ns, c.pps_tolerance_ns)
                } else {
                    (c.syn_interval_ns, c.syn_tolerance_ns)
                };
                write_kernel_limit(&mut f.maps, name, gcra)?;
            } else if self.filter.is_none() && name == "syn" {
                // The gate's connection rate, back to the configuration's.
                let syn = self.config.filter.as_ref().and_then(|f| f.syn);
                self.gate.set_rate(syn, self.config.ipv6_prefix());
            }
        } else if let Some(l) = self.shared.load().limiters.get(name) {
            l.set(None, None);
        }
        info!("limit {name} back to the configuration");
        self.save();
        Ok(json!({ "reset": name }))
    }

    /// Puts one CLI limit in force.
    fn apply_limit(&mut self, name: &str, change: &LimitOverride) -> Result<()> {
        // Also for the state file's limits, which do not come through `handle`.
        crate::control::protocol::check_burst(name, change.burst).map_err(|e| anyhow!(e))?;
        if KERNEL.contains(&name) && self.filter.is_none() {
            // Without XDP: the connection rate is the gate's; packets are not limited.
            if name == "pps" {
                bail!(
                    "without the XDP filter there is no packet rate limit (only syn, at accept time)"
                );
            }
            let limit = match &change.rate {
                None => None,
                Some(text) => {
                    let rate = kernel_rate(text)?;
                    Some(RateLimit {
                        rate,
                        burst: change.burst.unwrap_or(rate).max(1),
                    })
                }
            };
            self.gate.set_rate(limit, self.config.ipv6_prefix());
            return Ok(());
        }
        if let Some(f) = self.filter.as_mut().filter(|_| KERNEL.contains(&name)) {
            let (interval, tolerance) = match &change.rate {
                None => (0, 0),
                Some(text) => {
                    let rate = kernel_rate(text)?;
                    gcra::params(rate, change.burst.unwrap_or(rate).max(1))
                }
            };
            return write_kernel_limit(&mut f.maps, name, (interval, tolerance));
        }
        let state = self.shared.load();
        let limiter = state.limiters.get(name).ok_or_else(|| {
            anyhow!(
                "no limit {name}: expected pps, syn or a [limit.NAME] zone of the configuration"
            )
        })?;
        let rate = match &change.rate {
            None => bail!("a [limit.{name}] zone cannot be turned off; remove it from its routes"),
            Some(text) => text
                .parse::<Rate>()
                .map_err(|e| anyhow!("rate `{text}`: {}", e.0))?,
        };
        limiter.set(Some(rate), change.burst);
        Ok(())
    }

    /// After a start or a reload: the CLI limits from the state file, again.
    pub fn apply_limits(&mut self) {
        let limits: Vec<(String, LimitOverride)> = self
            .runtime
            .state
            .limits
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, change) in limits {
            if let Err(e) = self.apply_limit(&name, &change) {
                log::warn!("limit {name} from the state file not applied: {e:#}");
            }
        }
    }
}

/// Writes one kernel limit (`pps` or `syn`) as GCRA (interval, tolerance)
/// into the live config map, the other settings untouched.
fn write_kernel_limit(
    maps: &mut crate::filter::FilterMaps,
    name: &str,
    (interval, tolerance): (u64, u64),
) -> Result<()> {
    let mut cfg = maps.config()?;
    if name == "pps" {
        (cfg.pps_interval_ns, cfg.pps_tolerance_ns) = (interval, tolerance);
    } else {
        (cfg.syn_interval_ns, cfg.syn_tolerance_ns) = (interval, tolerance);
    }
    Ok(maps.write_config(cfg)?)
}
