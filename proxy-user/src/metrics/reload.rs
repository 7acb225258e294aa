//! Which configuration is running: a generation counter bumped by every
//! applied reload and the time it was applied (as Prometheus's own
//! `prometheus_config_last_reload_*`), so a scrape shows whether a
//! `rampart reload` took and when.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    time::SystemTime,
};

use super::text::Text;

#[derive(Debug)]
pub struct ReloadMetrics {
    /// 1 for the configuration the daemon started with, +1 per applied reload.
    generation: AtomicU64,
    /// When the running configuration was applied, in Unix seconds.
    applied_at: AtomicU64,
    /// False after a reload failed (the previous configuration still runs).
    last_ok: AtomicBool,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Default for ReloadMetrics {
    fn default() -> Self {
        ReloadMetrics {
            generation: AtomicU64::new(1),
            applied_at: AtomicU64::new(now()),
            last_ok: AtomicBool::new(true),
        }
    }
}

impl ReloadMetrics {
    /// A reload was applied.
    pub fn applied(&self) {
        self.generation.fetch_add(1, Relaxed);
        self.applied_at.store(now(), Relaxed);
        self.last_ok.store(true, Relaxed);
    }

    /// A reload failed; the running configuration stays.
    pub fn failed(&self) {
        self.last_ok.store(false, Relaxed);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    pub fn render(&self, t: &mut Text) {
        for (name, kind, help, value) in [
            (
                "rampart_config_generation",
                "counter",
                "configuration generation: 1 at start, +1 for every applied reload",
                self.generation.load(Relaxed),
            ),
            (
                "rampart_config_last_reload_timestamp_seconds",
                "gauge",
                "Unix time the running configuration was applied (start or last applied reload)",
                self.applied_at.load(Relaxed),
            ),
            (
                "rampart_config_last_reload_successful",
                "gauge",
                "1 if the last reload was applied (or none was tried), 0 if it failed and the previous configuration runs",
                u64::from(self.last_ok.load(Relaxed)),
            ),
        ] {
            t.family(name, kind, help);
            t.sample(name, &[], value);
        }
    }
}
